//! In-process MCP over HTTP, for testing a server built on the host without a socket.
//!
//! It exists so Portcullis's own tests and a library user's tests speak to the real router
//! (gate, rmcp, handler) the way a client does: `modern` builds a 2026-07-28 request with
//! the headers and `_meta` it needs, `open_session` runs the 2025 handshake, and `send`
//! returns the status, headers and JSON-RPC messages (JSON or SSE) of the reply.

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The stateless protocol revision.
pub const MODERN: &str = "2026-07-28";
/// The newest 2025-era revision.
pub const LEGACY: &str = "2025-11-25";

/// What went wrong while talking to the router (a test failure, not a server answer).
pub type TestResult<T> = Result<T, String>;

/// A POST to `/mcp` with the headers every client sends.
pub fn post() -> http::request::Builder {
    Request::post("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

/// A 2026-07-28 request: `MCP-Protocol-Version`, `Mcp-Method` and (for calls, prompts
/// and reads) `Mcp-Name` headers, and `_meta` with the protocol version and the client
/// capabilities (empty unless `params._meta` already names them).
pub fn modern(id: i64, method: &str, name: Option<&str>, mut params: Value) -> Request<Body> {
    if !params.is_object() {
        params = json!({});
    }
    let meta = &mut params["_meta"];
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
    if meta
        .get("io.modelcontextprotocol/clientCapabilities")
        .is_none()
    {
        meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    }
    let mut builder = post()
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = name {
        builder = builder.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    with_body(builder, &body)
}

/// A 2025-era message on an open session.
pub fn legacy(session: &str, body: &Value) -> Request<Body> {
    let builder = post()
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY);
    with_body(builder, body)
}

/// A `tools/call` message body.
pub fn call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

fn with_body(builder: http::request::Builder, body: &Value) -> Request<Body> {
    // Only invalid header values make `body` fail; every value above is a valid constant
    // or comes from the caller's own test, so fall back to a request the server refuses.
    builder
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Request::new(Body::empty()))
}

/// A reply as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    /// The JSON-RPC messages: the JSON body, or each SSE `data:` payload in order.
    pub messages: Vec<Value>,
    /// The raw body.
    pub text: String,
}

impl Reply {
    /// The last JSON-RPC message (the response, after any notifications), or `null`.
    pub fn last(&self) -> &Value {
        self.messages.last().unwrap_or(&Value::Null)
    }

    /// The result of the last message, or `null`.
    pub fn result(&self) -> &Value {
        &self.last()["result"]
    }

    /// The error code and message of the last message, if it is an error.
    pub fn error(&self) -> Option<(i64, String)> {
        let error = &self.last()["error"];
        Some((
            error["code"].as_i64()?,
            error["message"].as_str().unwrap_or_default().to_owned(),
        ))
    }
}

/// Sends one request through the router and reads the whole reply.
pub async fn send(router: &Router, request: Request<Body>) -> TestResult<Reply> {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| format!("router failed: {e}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let is_sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let messages = if is_sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| serde_json::from_str(d).map_err(|e| format!("bad SSE data {d:?}: {e}")))
            .collect::<TestResult<Vec<_>>>()?
    } else {
        serde_json::from_str(&text)
            .map(|v| vec![v])
            .unwrap_or_default()
    };
    Ok(Reply {
        status,
        headers,
        messages,
        text,
    })
}

/// Runs the 2025-11-25 handshake with `capabilities` and returns the session id.
pub async fn open_session(router: &Router, capabilities: Value) -> TestResult<String> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": capabilities,
                   "clientInfo": {"name": "portcullis-test", "version": "1"}}
    });
    let reply = send(router, with_body(post(), &init)).await?;
    if reply.status != StatusCode::OK || reply.result()["protocolVersion"] != LEGACY {
        return Err(format!(
            "initialize failed: {} {}",
            reply.status, reply.text
        ));
    }
    let session = reply
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("initialize returned no Mcp-Session-Id")?
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = send(router, legacy(&session, &initialized)).await?;
    if reply.status != StatusCode::ACCEPTED {
        return Err(format!("notifications/initialized got {}", reply.status));
    }
    Ok(session)
}
