//! Prometheus metrics as an operator scrapes them: requests by route and status, tokens
//! issued, authorization failures by reason, tool calls by tool and outcome, rate-limit
//! hits; tool names a client makes up do not grow the label set without bound. (Its own
//! test binary: the metrics registry is per process.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use common::auth::*;
use portcullis::testing;
use serde_json::json;
use tower::ServiceExt as _;

/// A 2026-07-28 tools/call with `token` (or none); returns the HTTP status.
async fn call(e: &Env, token: Option<&str>, name: &str) -> http::StatusCode {
    let mut req = testing::post()
        .header("mcp-protocol-version", testing::MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", name);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": testing::MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}});
    let resp = e
        .router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    resp.status()
}

/// The value of the sample line that starts with `series` (name and labels as written).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_what_an_operator_watches() {
    portcullis::metrics::enable();
    let e = env_configured(|_| {}, |h| h.tool_calls_per_minute = 5).await;
    assert_eq!(
        call(&e, None, "whoami").await,
        http::StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&e, Some("not-a-token"), "whoami").await,
        http::StatusCode::UNAUTHORIZED
    );
    let (_, t) = e.tokens_scoped(Browser::default(), "mcp notes:read").await;
    let token = t["access_token"].as_str().unwrap();
    assert_eq!(call(&e, Some(token), "whoami").await, http::StatusCode::OK);
    // A scope the token lacks: 403 insufficient_scope.
    assert_eq!(
        call(&e, Some(token), "notes_create").await,
        http::StatusCode::FORBIDDEN
    );
    // Made-up tool names, then the limit of 5 calls a minute.
    for n in 0..3 {
        call(&e, Some(token), &format!("made_up_{n}")).await;
    }
    let mut limited = false;
    for _ in 0..6 {
        if call(&e, Some(token), "whoami").await == http::StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the limit of 5 calls a minute was reached");

    let resp = portcullis::metrics::router()
        .oneshot(http::Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        sample(
            &text,
            "portcullis_authorization_failures_total{reason=\"missing_token\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "portcullis_authorization_failures_total{reason=\"invalid_token\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "portcullis_authorization_failures_total{reason=\"insufficient_scope\"}"
        ),
        1.0
    );
    assert_eq!(sample(&text, "portcullis_tokens_issued_total"), 1.0);
    assert!(
        sample(
            &text,
            "portcullis_tool_calls_total{tool=\"whoami\",outcome=\"ok\"}"
        ) >= 1.0
    );
    assert_eq!(
        sample(
            &text,
            "portcullis_tool_calls_total{tool=\"made_up_0\",outcome=\"protocol_error\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "portcullis_rate_limited_total{route=\"/mcp\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "portcullis_http_requests_total{route=\"/oauth/token\",method=\"POST\",status=\"200\"}"
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            "portcullis_http_request_duration_seconds_count{route=\"/mcp\"}"
        ) >= 8.0
    );
    assert!(!text.contains(token), "no token ever reaches the metrics");

    // Made-up tool names stop being labels after a bound.
    for n in 0..250 {
        portcullis::metrics::global().tool_call(&format!("flood_{n}"), "protocol_error");
    }
    let text = portcullis::metrics::global().render();
    let labelled = text
        .lines()
        .filter(|l| l.starts_with("portcullis_tool_calls_total{"))
        .count();
    assert!(labelled <= 201, "{labelled} tool series");
    assert!(text.contains("tool=\"other\""));
}
