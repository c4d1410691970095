//! Dynamic Client Registration (RFC 7591). Deprecated by MCP 2026-07-28 in favour of
//! metadata documents, and kept because most clients in the field still register:
//! - a body cap, a per-address rate limit and a global cap on registered clients;
//! - identical public registrations share one client, so a client that registers on
//!   every connect does not fill the table;
//! - registrations never used within a day, or idle for 90 days, expire (see upkeep), and
//!   the token endpoint then answers `invalid_client` so the client registers again.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use portcullis_oauth::client::{self, ClientMetadata, Source, TokenAuthMethod};
use portcullis_oauth::{ErrorCode, OAuthError, secret};
use portcullis_store::ClientRow;
use sha2::{Digest, Sha256};

use super::{AuthServer, internal, json_response, now, oauth_error};

pub(super) async fn register(
    State(s): State<Arc<AuthServer>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = now();
    let ip = s.client_ip(peer.as_ref().map(|e| &e.0), &headers);
    if let Err(wait) = s.throttle.registration(ip, now) {
        let mut r = oauth_error(&OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many registrations from this address; try again in {wait} seconds"),
        ));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    match s.register_client(&body, now).await {
        Ok(v) => json_response(StatusCode::CREATED, &v, "no-store"),
        Err(e) => oauth_error(&e),
    }
}

impl AuthServer {
    async fn register_client(
        &self,
        body: &[u8],
        now: i64,
    ) -> Result<serde_json::Value, OAuthError> {
        if body.len() > self.config.max_registration_bytes {
            return Err(OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                format!(
                    "the registration body is larger than {} bytes",
                    self.config.max_registration_bytes
                ),
            ));
        }
        let meta: ClientMetadata = serde_json::from_slice(body).map_err(|e| {
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                format!("the registration body is not a JSON client metadata object: {e}"),
            )
        })?;
        let settings = client::validate(&meta, Source::Registration)?;
        let settings_json = serde_json::to_string(&settings).map_err(internal)?;
        let public = settings.token_endpoint_auth_method == TokenAuthMethod::None;
        // A public client holds nothing secret, so identical registrations can share one id.
        let dedup = public.then(|| format!("{:x}", Sha256::digest(settings_json.as_bytes())));
        let existing = match &dedup {
            Some(key) => self
                .store
                .client_by_dedup_key(key)
                .await
                .map_err(internal)?,
            None => None,
        };
        if existing.is_none()
            && self.store.count_clients().await.map_err(internal)? >= self.config.max_clients
        {
            tracing::warn!("client registration refused: the registered-client cap is reached");
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this server has reached its limit of registered clients; try again later",
            ));
        }
        let (secret_value, secret_hash) = if public {
            (None, None)
        } else {
            let v = secret::generate(&self.rng).ok_or_else(|| internal("random source failed"))?;
            let h = secret::hash(&v);
            (Some(v), Some(h))
        };
        let client_id =
            secret::generate(&self.rng).ok_or_else(|| internal("random source failed"))?;
        let row = ClientRow {
            client_id,
            settings: settings_json.clone(),
            secret_hash,
            created_at: now,
            last_used_at: None,
        };
        let stored = match existing {
            Some(c) => c,
            None => self
                .store
                .register_client(&row, dedup.as_deref())
                .await
                .map_err(internal)?,
        };
        let mut out = serde_json::json!({
            "client_id": stored.client_id,
            "client_id_issued_at": stored.created_at,
            "redirect_uris": settings.redirect_uris,
            "grant_types": settings.grant_types,
            "response_types": ["code"],
            "token_endpoint_auth_method": settings.token_endpoint_auth_method.as_str(),
            "application_type": match settings.application_type { client::ApplicationTypeRepr::Native => "native", client::ApplicationTypeRepr::Web => "web" },
        });
        if let Some(name) = &settings.client_name {
            out["client_name"] = name.clone().into();
        }
        if let Some(v) = secret_value {
            out["client_secret"] = v.into();
            out["client_secret_expires_at"] = 0.into();
        }
        tracing::info!(client_id = %stored.client_id, public, "client registered");
        Ok(out)
    }
}
