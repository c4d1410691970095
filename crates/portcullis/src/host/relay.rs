//! 2025-era sessions behind a load balancer without stickiness.
//!
//! A 2025 session lives in the memory of the instance that opened it (rmcp's session
//! manager: the initialized peer, its streams, a call waiting for an `elicitation/create`
//! answer). Each instance records the sessions it opens in the database with its own
//! address (`--instance-url`); a request naming a session that another instance holds is
//! relayed there, streamed both ways, and answered from there. The holder authenticates the
//! relayed request again: the relay adds no trust. If the holder is gone, the session ended
//! with it: the record is dropped and the client gets the 404 that tells it to initialize
//! again. 2026-07-28 requests carry no session and are never relayed.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Uri};
use hyper_util::rt::TokioIo;
use portcullis_store::Store;

/// Marks a relayed request, so that it is never relayed a second time.
pub const RELAYED: &str = "x-portcullis-relayed";

/// Where the sessions of all instances are recorded, and this instance's own address.
#[derive(Debug, Clone)]
pub struct SessionDirectory {
    pub store: Store,
    /// `http://host:port` at which other instances reach this one.
    pub instance_url: String,
}

impl SessionDirectory {
    pub(crate) async fn opened(&self, session: &str, user: Option<&str>) {
        if let Err(e) = self
            .store
            .put_mcp_session(session, &self.instance_url, user, crate::time::unix_now())
            .await
        {
            tracing::warn!(error = %e, "could not record a new session; other instances will not find it");
        }
    }

    pub(crate) async fn closed(&self, session: &str) {
        if let Err(e) = self.store.delete_mcp_session(session).await {
            tracing::warn!(error = %e, "could not forget an ended session");
        }
    }

    /// The other instance that holds `session`, if one does.
    pub(crate) async fn holder(&self, session: &str) -> Option<String> {
        match self.store.mcp_session_instance(session).await {
            Ok(Some(url)) if url != self.instance_url => Some(url),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not look up which instance holds a session");
                None
            }
        }
    }
}

/// Relays a request to the instance at `holder`; `None` when it cannot be reached.
pub(crate) async fn relay(holder: &str, mut parts: Parts, body: Body) -> Option<Response> {
    let base: Uri = holder.parse().ok()?;
    let host = base.host()?.to_owned();
    let port = base.port_u16().unwrap_or(80);
    let stream = match tokio::net::TcpStream::connect((host.as_str(), port)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, holder, "the instance holding a session cannot be reached");
            return None;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "relay connection ended");
        }
    });
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    parts.headers.insert(RELAYED, HeaderValue::from_static("1"));
    let response = match sender
        .send_request(http::Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, holder, "relaying a session request failed");
            return None;
        }
    };
    Some(response.map(Body::new))
}
