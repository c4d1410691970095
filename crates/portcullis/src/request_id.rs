//! A request id on every request: taken from the caller's `X-Request-Id` when it is a
//! plain token (a proxy's, so one id follows the request end to end), else made here; sent
//! back in `X-Request-Id`, and recorded on a `request` span so that every log line written
//! while serving the request carries it (`PORTCULLIS_LOG_FORMAT=json` puts it in each JSON
//! line). The span also carries the client's address (`client_ip`): the peer, or what a
//! trusted proxy says in `X-Forwarded-For` (see [`portcullis_authz::forwarded`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use portcullis_authz::forwarded::{ProxyRange, client_ip};
use tracing::Instrument as _;

const HEADER: &str = "x-request-id";

/// A caller's id is kept only if it is short and made of safe characters: it goes into
/// logs and back into a header.
fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A new id: a random per-process prefix and a counter (unique without a random draw per
/// request).
fn fresh() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    });
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Middleware (state: the trusted proxies): see the module documentation.
pub async fn tag(
    State(trusted): State<Arc<[ProxyRange]>>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(fresh, str::to_owned);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(HEADER, value);
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = client_ip(peer, request.headers(), &trusted);
    let span = tracing::info_span!("request", id = %id, client_ip = %ip, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_kept() {
        assert!(acceptable("abc-123_X.y"));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(65)));
        assert!(!acceptable("has space"));
        assert!(!acceptable("new\nline"));
        assert!(!acceptable("quote\"d"));
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert!(acceptable(&a));
    }
}
