//! `portcullis audit`: reads the audit log from the database, filtered, newest first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_store::{AuditEvent, Store, User};

fn event(id: &str, at_ms: i64, user: &str, tool: &str, outcome: &str) -> AuditEvent {
    AuditEvent {
        event_id: id.into(),
        at_ms,
        user_id: Some(user.into()),
        client_id: Some("client-1".into()),
        tool: tool.into(),
        outcome: outcome.into(),
        duration_us: 1500,
        args_digest: "digest".into(),
        args: None,
        confirmation: None,
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn audit_lists_filters_and_explains_bad_input() {
    let dir = std::env::temp_dir().join(format!("portcullis-audit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("p.db").display());
    let store = Store::open(&url).await.unwrap();
    store
        .create_user(
            &User {
                id: "u_alice".into(),
                username: "alice".into(),
                password_hash: "x".into(),
                is_admin: false,
                disabled: false,
            },
            0,
        )
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    store
        .insert_audit(&[
            event("a", now - 3 * 86_400_000, "u_alice", "notes_get", "ok"),
            event("b", now - 60_000, "u_alice", "notes_create", "denied"),
            AuditEvent {
                confirmation: Some("unconfirmed".into()),
                ..event("c", now - 30_000, "u_bob", "notes_delete", "ok")
            },
        ])
        .await
        .unwrap();
    store.close().await;

    let (code, out, err) = run(&["--database-url", &url]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("notes_delete")
            && lines[0].contains("user=u_bob")
            && lines[0].ends_with("confirmation=unconfirmed"),
        "newest first: {out}"
    );
    assert!(
        lines[1].contains("denied") && lines[1].contains("1.5 ms"),
        "{out}"
    );

    let (_, out, _) = run(&["--database-url", &url, "--user", "alice", "--since", "1d"]);
    assert_eq!(out.lines().count(), 1, "by username, within a day: {out}");
    assert!(out.contains("notes_create"));

    let (_, out, _) = run(&["--database-url", &url, "--tool", "notes_get", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["user_id"], "u_alice");
    assert_eq!(v["confirmation"], serde_json::Value::Null);

    let (code, _, err) = run(&["--database-url", &url, "--since", "5x"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown unit"), "{err}");
    let (code, _, err) = run(&["--database-url", "mysql://nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("use sqlite://PATH or postgres://"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `portcullis migrate`: brings a new database to the latest schema and says so; a bad URL
/// is a clear error and exit code 1.
#[test]
fn migrate_creates_the_schema_and_explains_bad_urls() {
    let dir = std::env::temp_dir().join(format!("portcullis-migrate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("p.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let latest = Store::latest_schema_version();
    assert!(latest >= 10);
    assert!(
        stdout.contains(&format!(
            "schema at version {latest} (this release: {latest})"
        )),
        "{stdout}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("use sqlite://PATH or postgres://"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
