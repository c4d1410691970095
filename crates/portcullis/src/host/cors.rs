//! CORS for browser-based MCP clients (the Inspector's web UI, web-hosted clients): on
//! the MCP endpoint, the well-known documents and the authorization server's endpoints.
//!
//! Origins are the same allow-list the gate uses for `Origin` checks. A preflight
//! (`OPTIONS`) is answered here, before the gate, so it never needs a token.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

use super::OriginPolicy;

const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
];
const EXPOSE: &str = "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version";

fn header_allowed(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    ALLOW_HEADERS.contains(&name.as_str()) || name.starts_with("mcp-param-")
}

/// The middleware: answers preflights and adds CORS headers for allowed origins.
pub async fn cors(State(policy): State<OriginPolicy>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| policy.origin_allowed(o));
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight || request.method() == Method::OPTIONS {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::VARY,
            HeaderValue::from_static("Origin, Access-Control-Request-Headers"),
        );
        if let (true, Some(origin)) = (allowed, origin) {
            let asked = request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let granted: Vec<&str> = asked
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty() && header_allowed(n))
                .collect();
            let mut list = ALLOW_HEADERS.join(", ");
            for g in granted
                .iter()
                .filter(|g| g.to_ascii_lowercase().starts_with("mcp-param-"))
            {
                list.push_str(", ");
                list.push_str(g);
            }
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            if let Ok(v) = HeaderValue::from_str(&list) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        return resp;
    }
    let mut resp: Response<Body> = next.run(request).await;
    if let (true, Some(origin)) = (allowed, origin) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}
