//! Settings from a TOML file under environment variables and flags: the binary served from a
//! file with overrides, commands reading the same file, and `config check` explaining each
//! broken setting by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-config-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `portcullis` with the settings this test gives and none from the caller's environment.
fn portcullis() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PORTCULLIS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `portcullis ARGS` → (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = portcullis()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_server_runs_from_a_file_with_environment_and_flags_on_top() {
    let dir = temp_dir("serve");
    let (port, from_file, from_env, from_flag) = (
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    );
    write(&dir, "admin.pw", "a password from a file\n");
    let file = write(
        &dir,
        "portcullis.toml",
        &format!(
            r#"# A deployment's settings.
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}/tools/mcp"
database_url = "sqlite://{dir}/p.db"
master_key_file = "{dir}/p.key"
admin_user = "from-file"
admin_password_file = "{dir}/admin.pw"
allowed_origins = ["https://one.example", "https://two.example"]
metrics_bind = "127.0.0.1:{from_file}"
"#,
            dir = dir.display()
        ),
    );
    let mut child = tokio::process::Command::from(portcullis())
        .args(["serve", "--config", file.to_str().unwrap()])
        .args(["--metrics-bind", &format!("127.0.0.1:{from_flag}")])
        .env("PORTCULLIS_METRICS_BIND", format!("127.0.0.1:{from_env}"))
        .env("PORTCULLIS_ADMIN_USER", "from-env")
        .env("PORTCULLIS_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            assert!(
                !line.contains("a password from a file"),
                "a secret reached the log: {line}"
            );
            if line.contains("portcullis ready") {
                return;
            }
        }
        panic!("the server exited before it was ready");
    })
    .await
    .unwrap();

    // The file's public URL and path.
    let (status, body) = get(port, "/.well-known/oauth-protected-resource/tools/mcp")
        .await
        .unwrap();
    assert!(status.contains("200"), "{status}");
    let prm: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        prm["resource"],
        format!("http://127.0.0.1:{port}/tools/mcp")
    );
    // Flag over environment over file.
    let (status, _) = get(from_flag, "/metrics").await.unwrap();
    assert!(
        status.contains("200"),
        "metrics on the flag's port: {status}"
    );
    assert!(
        get(from_env, "/metrics").await.is_none(),
        "not on the environment's port"
    );
    assert!(
        get(from_file, "/metrics").await.is_none(),
        "not on the file's port"
    );

    // Other commands read the same file: the admin was named by the environment, over the
    // file, with the password from the file the file names.
    let config = file.to_str().unwrap();
    let (code, out, err) = run(&["user", "list", "--json", "--config", config], &[]);
    assert_eq!(code, 0, "{err}");
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users[0]["username"], "from-env", "{users}");
    assert_eq!(users.as_array().unwrap().len(), 1);
    // `config check` shows where each value came from.
    let (code, out, err) = run(
        &[
            "config",
            "check",
            "--config",
            config,
            "--bind",
            "127.0.0.1:1",
        ],
        &[("PORTCULLIS_ADMIN_USER", "from-env")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_owned()
    };
    assert!(line("bind").contains("\"127.0.0.1:1\"") && line("bind").ends_with("# flag"));
    assert!(
        line("admin_user").contains("from-env")
            && line("admin_user").contains("# environment PORTCULLIS_ADMIN_USER")
    );
    assert!(line("public_url").ends_with("# file"));
    assert!(line("allowed_origins").contains(r#"["https://one.example", "https://two.example"]"#));
    assert!(line("request_timeout").ends_with("# default"));

    child.start_kill().unwrap();
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_check_names_each_broken_setting_and_hides_secrets() {
    let dir = temp_dir("check");
    let check = |text: &str| {
        let file = write(&dir, "p.toml", text);
        run(
            &["config", "check", "--config", file.to_str().unwrap()],
            &[],
        )
    };

    let (code, out, err) = check(
        "database_url = \"postgres://app:s3cret-pw@db.internal/portcullis\"\npublic_url = \"https://mcp.example.com/mcp\"\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("postgres://app:****@db.internal/portcullis"),
        "{out}"
    );
    assert!(!out.contains("s3cret-pw") && !err.contains("s3cret-pw"));
    let (code, out, _) = run(
        &[
            "config",
            "check",
            "--json",
            "--config",
            dir.join("p.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["settings"]["public_url"]["source"], "file");
    assert_eq!(
        json["settings"]["database_url"]["value"],
        "postgres://app:****@db.internal/portcullis"
    );

    for (text, says) in [
        (
            "publc_url = \"https://x.example/mcp\"\n",
            "unknown setting `publc_url`: did you mean public_url?",
        ),
        ("colour = \"blue\"\n", "unknown setting `colour`"),
        (
            "access_token_ttl = \"soon\"\n",
            "`access_token_ttl`: invalid value 'soon'",
        ),
        (
            "access_token_ttl = 10\n",
            "--access-token-ttl 10 is too short: use at least 60 seconds (set as `access_token_ttl` in",
        ),
        (
            "public_url = \"mcp.example.com/mcp\"\n",
            "(set as `public_url` in",
        ),
        (
            "bind = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n",
            "`bind` takes one value, not a list",
        ),
        ("notes = \"maybe\"\n", "`notes`: invalid value 'maybe'"),
        ("allow_signup = 1\n", "`allow_signup` must be true or false"),
        (
            "bind = { host = \"x\" }\n",
            "`bind` must be a string, number, boolean or a list of them",
        ),
        ("bind = \"127.0.0.1:1\nx\n", "is not valid TOML"),
        (
            "admin_password_file = \"/nonexistent/admin.pw\"\n",
            "--admin-password-file /nonexistent/admin.pw: cannot read it",
        ),
        (
            "database_url = \"sqlite://a.db\"\ndatabase_url_file = \"/x\"\n",
            "--database-url and --database-url-file are both set",
        ),
    ] {
        let (code, out, err) = check(text);
        assert_eq!(code, 2, "{text:?} should be refused: {out}");
        assert!(err.contains(says), "{text:?}: {err}");
    }
    let (code, _, err) = run(&["config", "check", "--config", "/nonexistent/p.toml"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read the configuration file /nonexistent/p.toml"),
        "{err}"
    );
    // An environment value that breaks a rule is traced to its variable.
    let (code, _, err) = run(&["config", "check"], &[("PORTCULLIS_REFRESH_GRACE", "999")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("(set by the environment variable PORTCULLIS_REFRESH_GRACE)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The files `deploy/` ships stay valid: the sample configuration passes `config check`, and
/// the systemd unit passes `systemd-analyze verify` where systemd is installed.
#[test]
fn the_shipped_deployment_files_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sample = root.join("deploy/portcullis.toml");
    let (code, out, err) = run(
        &["config", "check", "--config", sample.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("MCP endpoint https://mcp.example.com/mcp"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("trusted_proxies") && l.ends_with("# file")),
        "{out}"
    );

    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the unit file is not verified here");
        return;
    };
    let dir = temp_dir("unit");
    let unit = std::fs::read_to_string(root.join("deploy/portcullis.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/portcullis",
            env!("CARGO_BIN_EXE_portcullis"),
        );
    let path = write(&dir, "portcullis.service", &unit);
    let out = std::process::Command::new(analyze)
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr);
    // Outside a booted systemd, verify may note the missing system manager; anything about
    // the unit itself names the file.
    assert!(
        !complaints.contains("portcullis.service"),
        "systemd-analyze verify: {complaints}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(tool))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
