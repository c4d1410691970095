//! Baseline: the practical ceiling. A bare axum `POST /mcp` handler that parses the
//! JSON-RPC body with serde_json and answers every request with the `whoami` tool result
//! as `application/json`. No MCP semantics at all (headers, sessions and the method are
//! ignored), so it measures HTTP + JSON cost only.
//!
//! Usage: `bare-axum --bind 127.0.0.1:PORT`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::View;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct JsonRpcRequest {
    #[allow(dead_code)]
    jsonrpc: String,
    #[serde(default)]
    id: Value,
    #[allow(dead_code)]
    method: String,
    #[allow(dead_code)]
    #[serde(default)]
    params: Value,
}

#[derive(Debug, Serialize)]
struct TextContent {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CallToolResult {
    content: Vec<TextContent>,
    structured_content: View,
    is_error: bool,
}

#[derive(Debug, Serialize)]
struct JsonRpcResponse {
    jsonrpc: &'static str,
    id: Value,
    result: CallToolResult,
}

async fn mcp(body: Bytes) -> Response {
    let request: JsonRpcRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let view = View::anonymous();
    let text = serde_json::to_string(&view).unwrap_or_default();
    let response = JsonRpcResponse {
        jsonrpc: "2.0",
        id: request.id,
        result: CallToolResult {
            content: vec![TextContent { kind: "text", text }],
            structured_content: view,
            is_error: false,
        },
    };
    match serde_json::to_vec(&response) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = common::bind_arg("bare-axum");
    let router = Router::new().route("/mcp", post(mcp));
    common::serve(bind, router).await
}
