//! Prometheus metrics, served on their own listener (`--metrics-bind`, off by default) so
//! they are never exposed on the public port.
//!
//! - `portcullis_http_requests_total{route,method,status}` and
//!   `portcullis_http_request_duration_seconds{route}`: every request, by the route it
//!   matched (the route's pattern, never the raw path, so the label set stays small);
//! - `portcullis_tokens_issued_total`: successful token responses (code and refresh grants);
//! - `portcullis_authorization_failures_total{reason}`: requests refused with a bearer
//!   challenge, by its `error` (`missing_token` when none was sent);
//! - `portcullis_tool_calls_total{tool,outcome}`: every tool call, as the audit log records it;
//! - `portcullis_rate_limited_total{route}`: `429` answers.
//!
//! One registry per process: a process serves one Portcullis.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Distinct tool names labelled before the rest are counted as `other`: a client can send
/// any name, and each label value is a new time series.
const MAX_TOOL_LABELS: usize = 200;

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    tokens_issued: Counter,
    auth_failures: Family<Labels, Counter>,
    tool_calls: Family<Labels, Counter>,
    rate_limited: Family<Labels, Counter>,
    tools_seen: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn new_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns counting on (the server does when it opens the metrics listener); until then the
/// hooks cost one atomic load.
pub fn enable() {
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram>::new_with_constructor(new_histogram as fn() -> Histogram);
        let tokens_issued = Counter::default();
        let auth_failures = Family::<Labels, Counter>::default();
        let tool_calls = Family::<Labels, Counter>::default();
        let rate_limited = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route pattern",
            latency.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued (authorization code and refresh grants)",
            tokens_issued.clone(),
        );
        registry.register(
            "authorization_failures",
            "Requests refused with a bearer challenge, by its error",
            auth_failures.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            tool_calls.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests answered 429, by route pattern",
            rate_limited.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            tokens_issued,
            auth_failures,
            tool_calls,
            rate_limited,
            tools_seen: Mutex::new(HashSet::new()),
        }
    })
}

impl Metrics {
    /// Counts one tool call (the host calls this where it writes the audit event).
    pub fn tool_call(&self, tool: &str, outcome: &str) {
        let tool = match self.tools_seen.lock() {
            Ok(seen) if seen.contains(tool) => tool.to_owned(),
            Ok(mut seen) if seen.len() < MAX_TOOL_LABELS => {
                seen.insert(tool.to_owned());
                tool.to_owned()
            }
            _ => "other".to_owned(),
        };
        self.tool_calls
            .get_or_create(&vec![("tool", tool), ("outcome", outcome.to_owned())])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn observe(&self, route: &str, method: &str, response: &Response, elapsed: f64) {
        let status = response.status();
        self.requests
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.as_u16().to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("route", route.to_owned())])
            .observe(elapsed);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited
                .get_or_create(&vec![("route", route.to_owned())])
                .inc();
        }
        if let Some(challenge) = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with("Bearer"))
        {
            let reason = challenge
                .split("error=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("missing_token");
            // Only the RFC 6750 codes become labels: the value comes from our own header,
            // but the set must stay closed.
            let reason = match reason {
                "invalid_request" | "invalid_token" | "insufficient_scope" | "missing_token" => {
                    reason
                }
                _ => "other",
            };
            self.auth_failures
                .get_or_create(&vec![("reason", reason.to_owned())])
                .inc();
        }
        if route == "/oauth/token" && status == StatusCode::OK {
            self.tokens_issued.inc();
        }
    }
}

/// Middleware: counts and times every request by the route it matched.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    global().observe(&route, &method, &response, started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`, for the metrics listener.
pub fn router() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            let mut resp = global().render().into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }),
    )
}
