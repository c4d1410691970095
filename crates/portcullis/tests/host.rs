//! The MCP host as a client meets it over HTTP: both eras, and every kind of bad input
//! answered with a clear error while the server keeps serving. Driven through the real
//! router with `tower::ServiceExt::oneshot` (no socket), except where a socket matters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis::host::{HostConfig, OriginPolicy, OriginRule, mcp_router};
use portcullis::testing::{self, MODERN, Reply, call, legacy, modern, post};
use portcullis::tools::PortcullisTools;
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod common;
use common::SlowTools;

async fn send(router: &Router, request: Request<Body>) -> Reply {
    testing::send(router, request).await.unwrap()
}

async fn open_session(router: &Router) -> String {
    testing::open_session(router, json!({})).await.unwrap()
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

fn config() -> HostConfig {
    HostConfig {
        policy: OriginPolicy {
            origins: vec![OriginRule::parse("http://localhost:*").unwrap()],
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
        },
        max_body_bytes: 4096,
        request_timeout: Duration::from_secs(1),
        ..HostConfig::default()
    }
}

fn product() -> Router {
    mcp_router(&config(), PortcullisTools::new).0
}

fn slow() -> Router {
    mcp_router(&config(), SlowTools::new).0
}

/// The server still answers a well-formed request after a bad one.
async fn assert_still_serving(router: &Router) {
    let reply = send(router, modern(99, "tools/list", None, json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.last()["result"]["tools"].is_array(),
        "{:?}",
        reply.last()
    );
}

fn error_of(reply: &Reply) -> (i64, String) {
    reply
        .error()
        .unwrap_or_else(|| panic!("no error in {:?}", reply.messages))
}

#[tokio::test]
async fn modern_discover_and_whoami() {
    let router = product();
    let reply = send(&router, modern(1, "server/discover", None, json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let result = &reply.last()["result"];
    assert_eq!(result["resultType"], "complete");
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == MODERN)
    );
    assert!(result["ttlMs"].as_u64().is_some());
    assert!(result["cacheScope"].is_string());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "portcullis"
    );
    assert!(
        reply.headers.get("mcp-session-id").is_none(),
        "2026-07-28 is stateless"
    );

    let reply = send(&router, modern(2, "tools/list", None, json!({}))).await;
    let tools = &reply.last()["result"];
    assert_eq!(tools["resultType"], "complete");
    assert!(tools["ttlMs"].is_u64() && tools["cacheScope"].is_string());
    let whoami = &tools["tools"][0];
    assert_eq!(whoami["name"], "whoami");
    assert_eq!(whoami["annotations"]["readOnlyHint"], true);

    let reply = send(
        &router,
        modern(
            3,
            "tools/call",
            Some("whoami"),
            json!({"name": "whoami", "arguments": {}}),
        ),
    )
    .await;
    let result = &reply.last()["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["structuredContent"]["authenticated"], false);
    assert!(result["structuredContent"]["user"].is_null());
}

#[tokio::test]
async fn legacy_session_whoami_and_2026_initialize_answered_as_2025() {
    let router = product();
    let session = open_session(&router).await;
    let reply = send(&router, legacy(&session, &call(1, "whoami", json!({})))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let result = &reply.last()["result"];
    assert_eq!(result["structuredContent"]["authenticated"], false);
    assert!(
        result.get("resultType").is_none(),
        "legacy results carry no resultType"
    );

    // A client that names 2026-07-28 in `initialize` still speaks the 2025 handshake.
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": MODERN, "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}
    });
    let reply = send(&router, post().body(Body::from(init.to_string())).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.last()["result"]["protocolVersion"], "2025-11-25");

    // DELETE ends the session; it is then unknown.
    let delete = Request::delete("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(delete).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let reply = send(&router, legacy(&session, &call(2, "whoami", json!({})))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text.contains("Session not found"), "{}", reply.text);

    // Ending an unknown (or already ended) session is a 404 that says what to do.
    let delete = Request::delete("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("mcp-session-id", &session)
        .body(Body::empty())
        .unwrap();
    let reply = send(&router, delete).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(error_of(&reply).1.contains("initialize"));
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let router = product();
    let reply = send(&router, post().body(Body::from("{\"jsonrpc\": ")).unwrap()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (code, message) = error_of(&reply);
    assert_eq!(code, -32700);
    assert!(message.contains("not valid JSON"), "{message}");
    assert_still_serving(&router).await;
}

#[tokio::test]
async fn batch_is_refused_with_reason() {
    let router = product();
    let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]);
    let reply = send(&router, post().body(Body::from(batch.to_string())).unwrap()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (code, message) = error_of(&reply);
    assert_eq!(code, -32600);
    assert!(message.contains("one message per POST"), "{message}");
    assert_still_serving(&router).await;
}

#[tokio::test]
async fn body_over_limit_is_413() {
    let router = product();
    let big = "x".repeat(5000);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": big}});
    let reply = send(&router, post().body(Body::from(body.to_string())).unwrap()).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, message) = error_of(&reply);
    assert!(message.contains("4096 byte limit"), "{message}");
    assert_still_serving(&router).await;
}

#[tokio::test]
async fn unknown_method_is_404_on_modern_and_an_error_on_legacy() {
    let router = product();
    let reply = send(&router, modern(1, "no/such", None, json!({}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&reply).0, -32601);

    let session = open_session(&router).await;
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "no/such", "params": {}});
    let reply = send(&router, legacy(&session, &body)).await;
    assert_eq!(error_of(&reply).0, -32601);
    assert_eq!(reply.last()["id"], 7);
    assert_still_serving(&router).await;
}

#[tokio::test]
async fn missing_or_mismatched_method_and_name_headers() {
    let router = product();
    let params = json!({"name": "whoami", "arguments": {}, "_meta": meta()});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});

    let missing_method = post()
        .header("mcp-protocol-version", MODERN)
        .header("mcp-name", "whoami")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = send(&router, missing_method).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&reply).0, -32020);

    let missing_name = post()
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = send(&router, missing_name).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&reply).0, -32020);

    let wrong_name = modern(
        1,
        "tools/call",
        Some("other"),
        json!({"name": "whoami", "arguments": {}}),
    );
    let reply = send(&router, wrong_name).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (code, message) = error_of(&reply);
    assert_eq!(code, -32020);
    assert!(message.contains("other"), "{message}");

    let wrong_method = modern(1, "tools/list", None, json!({}));
    let (mut parts, body) = wrong_method.into_parts();
    parts
        .headers
        .insert("mcp-method", "tools/call".parse().unwrap());
    let reply = send(&router, Request::from_parts(parts, body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&reply).0, -32020);

    // A base64-encoded header value is decoded before comparing: "whoami".
    let encoded = modern(
        2,
        "tools/call",
        Some("=?base64?d2hvYW1p?="),
        json!({"name": "whoami", "arguments": {}}),
    );
    let reply = send(&router, encoded).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.messages);
    assert_eq!(
        reply.last()["result"]["structuredContent"]["authenticated"],
        false
    );
    assert_still_serving(&router).await;
}

#[tokio::test]
async fn unsupported_version_and_missing_meta() {
    let router = product();
    let mut params = json!({});
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2099-01-01",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
    let request = post()
        .header("mcp-protocol-version", "2099-01-01")
        .header("mcp-method", "tools/list")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = send(&router, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = &reply.last()["error"];
    assert_eq!(error["code"], -32022, "{error}");
    assert!(
        error["data"]["supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == MODERN),
        "{error}"
    );

    // 2026-07-28 without clientCapabilities in _meta.
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}});
    let request = post()
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/list")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = send(&router, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&reply).0, -32602);
    assert_still_serving(&router).await;
}

#[tokio::test]
async fn foreign_origin_and_host_are_forbidden() {
    let router = product();
    let mut request = modern(1, "tools/list", None, json!({}));
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let reply = send(&router, request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(error_of(&reply).1.contains("--allowed-origins"));

    let mut request = modern(1, "tools/list", None, json!({}));
    request
        .headers_mut()
        .insert("host", "attacker.example:8080".parse().unwrap());
    let reply = send(&router, request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(error_of(&reply).1.contains("DNS rebinding"));

    let mut request = modern(1, "tools/list", None, json!({}));
    request
        .headers_mut()
        .insert("origin", "http://localhost:6274".parse().unwrap());
    assert_eq!(send(&router, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn duplicate_in_flight_id_is_refused_at_once_then_reusable() {
    let router = slow();
    let session = open_session(&router).await;

    // The first request's response starts (SSE) but its body is not read yet.
    let first = router
        .clone()
        .oneshot(legacy(&session, &call(5, "sleep", json!({"ms": 600}))))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);

    let started = Instant::now();
    let reply = send(
        &router,
        legacy(&session, &call(5, "sleep", json!({"ms": 1}))),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "refused at once"
    );
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let (code, message) = error_of(&reply);
    assert_eq!(code, -32600);
    assert!(message.contains("already in flight"), "{message}");
    assert_eq!(reply.last()["id"], 5);

    // The same id on another session, or a string "5", is a different request.
    let other = open_session(&router).await;
    let reply = send(&router, legacy(&other, &call(5, "sleep", json!({"ms": 1})))).await;
    assert_eq!(reply.last()["result"]["content"][0]["text"], "done");

    // Once the first response is complete, the id may be used again.
    let bytes = first.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("done"));
    let reply = send(
        &router,
        legacy(&session, &call(5, "sleep", json!({"ms": 1}))),
    )
    .await;
    assert_eq!(reply.last()["result"]["content"][0]["text"], "done");
}

#[tokio::test]
async fn slow_requests_end_at_the_deadline_with_an_error() {
    let router = slow();
    let started = Instant::now();
    let request = modern(
        1,
        "tools/call",
        Some("sleep"),
        json!({"name": "sleep", "arguments": {"ms": 10_000}}),
    );
    let reply = send(&router, request).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let (code, message) = error_of(&reply);
    assert_eq!(code, -32603);
    assert!(message.contains("did not finish within 1 s"), "{message}");
    assert_eq!(reply.last()["id"], 1);

    let session = open_session(&router).await;
    let started = Instant::now();
    let reply = send(
        &router,
        legacy(&session, &call(2, "sleep", json!({"ms": 10_000}))),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let (code, message) = error_of(&reply);
    assert_eq!(code, -32603);
    assert!(message.contains("--request-timeout"), "{message}");
}

/// Signals when its one tool starts and when the request's cancellation fires.
#[derive(Clone)]
struct CancelProbe {
    started: std::sync::Arc<tokio::sync::Notify>,
    cancelled: std::sync::Arc<tokio::sync::Notify>,
}

impl rmcp::ServerHandler for CancelProbe {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }

    async fn call_tool(
        &self,
        _request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        if let Some(token) = context.meta.get_progress_token() {
            // A notification first makes the response a stream (SSE).
            let progress = rmcp::model::ProgressNotificationParam::new(token, 1.0);
            let _ = context.peer.notify_progress(progress).await;
        }
        self.started.notify_one();
        tokio::select! {
            _ = context.ct.cancelled() => self.cancelled.notify_one(),
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        Ok(
            rmcp::model::CallToolResult::success(vec![rmcp::model::ContentBlock::text("finished")])
                .into(),
        )
    }
}

#[tokio::test]
async fn closing_the_response_cancels_the_request() {
    for streamed in [false, true] {
        let probe = CancelProbe {
            started: Default::default(),
            cancelled: Default::default(),
        };
        let factory_probe = probe.clone();
        let router = mcp_router(&config(), move || factory_probe.clone()).0;
        let params = if streamed {
            json!({"name": "probe", "_meta": {"progressToken": "p1"}})
        } else {
            json!({"name": "probe"})
        };
        let request = modern(1, "tools/call", Some("probe"), params);
        let client = tokio::spawn(async move {
            let response = router.oneshot(request).await.unwrap();
            // JSON mode: the response never starts. Streamed: read the progress
            // notification. Either way the client then hangs up (abort below).
            let mut body = response.into_body();
            let _ = body.frame().await;
            std::future::pending::<()>().await;
        });
        tokio::time::timeout(Duration::from_secs(5), probe.started.notified())
            .await
            .expect("tool started");
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.abort();
        tokio::time::timeout(Duration::from_secs(5), probe.cancelled.notified())
            .await
            .unwrap_or_else(|_| panic!("cancelled when the client hung up (streamed: {streamed})"));
    }
}

/// Without the authorization server there is nothing to wait for: alive and ready, whatever
/// Host or Origin asks (the probes sit outside the MCP gate), and never cached.
#[tokio::test]
async fn health_and_readiness_without_a_database() {
    let (router, _) = portcullis::server::app_router(
        config(),
        None::<portcullis::server::Protection>,
        PortcullisTools::new,
    );
    for path in ["/healthz", "/readyz"] {
        let reply = send(
            &router,
            Request::get(path)
                .header("host", "10.1.2.3:8080")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.headers["cache-control"], "no-store");
        let body: Value = serde_json::from_str(&reply.text).unwrap();
        assert!(
            body["status"] == "ok" || body["status"] == "ready",
            "{path}: {body}"
        );
    }
}
