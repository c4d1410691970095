//! CORS for browser-based MCP clients (the Inspector's web UI, web-hosted clients): on
//! the MCP endpoint, the well-known documents and the authorization server's endpoints.
//!
//! Origins are the same allow-list the gate uses for `Origin` checks. A preflight
//! (`OPTIONS`) is answered here, before the gate, so it never needs a token.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::Either;
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

/// The layer: answers preflights and adds CORS headers for allowed origins.
///
/// A hand-written tower service rather than `axum::middleware::from_fn`: requests without
/// an `Origin` header (every non-browser client) go straight to the inner service with no
/// boxing, which the benchmark showed `from_fn` costs on every request.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    policy: Arc<OriginPolicy>,
}

impl CorsLayer {
    pub fn new(policy: OriginPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> tower::Layer<S> for CorsLayer {
    type Service = Cors<S>;
    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    policy: Arc<OriginPolicy>,
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request> for Cors<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Boxed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let origin = request.headers().get(header::ORIGIN).cloned();
        if origin.is_none() && request.method() != Method::OPTIONS {
            return Either::Left(self.inner.call(request));
        }
        let allowed = origin
            .as_ref()
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| self.policy.origin_allowed(o));
        if request.method() == Method::OPTIONS {
            return Either::Right(Box::pin(std::future::ready(Ok(preflight(
                &request,
                allowed.then_some(origin).flatten(),
            )))));
        }
        let fut = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let mut resp = fut.await?;
            if let (true, Some(origin)) = (allowed, origin) {
                let h = resp.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE),
                );
                h.append(header::VARY, HeaderValue::from_static("Origin"));
            }
            Ok(resp)
        }))
    }
}

/// The answer to an `OPTIONS` request: 204, with the CORS grant when the origin is allowed.
fn preflight(request: &Request, origin: Option<HeaderValue>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Headers"),
    );
    let Some(origin) = origin else { return resp };
    let asked = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut list = ALLOW_HEADERS.join(", ");
    for g in asked
        .split(',')
        .map(str::trim)
        .filter(|n| n.to_ascii_lowercase().starts_with("mcp-param-") && header_allowed(n))
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
    resp
}
