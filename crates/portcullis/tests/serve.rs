//! The listener and the binary over real sockets: graceful shutdown finishes in-flight
//! requests, SIGTERM stops the binary cleanly, and an unauthenticated public bind is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use portcullis::host::{HostConfig, OriginPolicy, mcp_router};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::SlowTools;

/// One HTTP/1.1 request on its own connection; returns (status line, body).
async fn http_post(
    addr: std::net::SocketAddr,
    body: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn sleep_call(ms: u64) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "sleep", "arguments": {"ms": ms},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string()
}

const MODERN_HEADERS: &[(&str, &str)] = &[
    ("MCP-Protocol-Version", "2026-07-28"),
    ("Mcp-Method", "tools/call"),
    ("Mcp-Name", "sleep"),
];

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = HostConfig {
        policy: OriginPolicy {
            origins: vec![],
            hosts: vec!["127.0.0.1".into()],
        },
        ..HostConfig::default()
    };
    let (router, handle) = mcp_router(&config, SlowTools::new);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portcullis::server::serve(
        listener,
        router,
        handle,
        Duration::from_secs(5),
        async {
            let _ = stop_rx.await;
        },
    ));

    let in_flight =
        tokio::spawn(async move { http_post(addr, &sleep_call(700), MODERN_HEADERS).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    stop_tx.send(()).unwrap();

    let (status, body) = in_flight.await.unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("done"), "the in-flight call finished: {body}");
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("server stops once idle")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

fn binary() -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

type StderrLines = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

/// `portcullis serve --auth none` on a free port, logging at info with `env` added; returns
/// the child, the rest of its stderr, the port, and the log lines up to "portcullis ready".
async fn start_binary(
    env: &[(&str, &str)],
) -> (tokio::process::Child, StderrLines, u16, Vec<String>) {
    // Find a free port, then let the binary bind it.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = binary()
        .args([
            "serve",
            "--auth",
            "none",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env("PORTCULLIS_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let ready = line.contains("portcullis ready");
            seen.push(line);
            if ready {
                return;
            }
        }
        panic!("binary exited before it was ready");
    })
    .await
    .unwrap();
    (child, lines, port, seen)
}

#[tokio::test]
async fn binary_refuses_unauthenticated_public_bind() {
    let output = binary()
        .args(["serve", "--auth", "none", "--bind", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve without authentication"),
        "{stderr}"
    );
}

#[tokio::test]
async fn binary_serves_and_stops_on_sigterm() {
    let (mut child, _lines, port, seen) = start_binary(&[]).await;
    let ready = seen.last().unwrap().clone();
    assert!(
        ready.contains(&format!("http://127.0.0.1:{port}/mcp")),
        "{ready}"
    );

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "whoami", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "whoami"),
    ];
    let (status, body) = http_post(addr, &call.to_string(), &headers).await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"authenticated\":false"), "{body}");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits promptly on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// One raw HTTP/1.1 request; returns the whole response text (head and body).
async fn http_raw(addr: std::net::SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// `PORTCULLIS_LOG_FORMAT=json`: every log line is a JSON object, and a line written while
/// serving a request carries that request's id, the one the response names in
/// `X-Request-Id` (the caller's own when it is a plain token, a fresh one otherwise).
#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let (mut child, mut lines, port, seen) =
        start_binary(&[("PORTCULLIS_LOG_FORMAT", "json")]).await;
    for line in &seen {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A request the origin policy refuses (it logs a warning inside the request).
    let refused = http_raw(
        addr,
        &format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://evil.example\r\nX-Request-Id: test-req-42\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("x-request-id: test-req-42"),
        "{refused}"
    );
    let logged = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("refused by origin policy") {
                return line;
            }
        }
        panic!("no log line for the refusal");
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(v["span"]["id"], "test-req-42", "{logged}");
    assert_eq!(v["level"], "WARN");
    // An id that is not a plain token is replaced, never echoed.
    let replaced = http_raw(
        addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Request-Id: bad id\"x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let id = replaced
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no x-request-id: {replaced}"));
    assert!(!id.contains("bad"), "{id}");
    child.kill().await.unwrap();
}
