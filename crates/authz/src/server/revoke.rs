//! Revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Revoking either token of a grant revokes the whole grant: its refresh tokens are
//! refused at once and its access tokens within the guard's revocation poll (at once on
//! this instance). Introspection is for confidential clients only (authenticated with
//! their secret); public clients cannot call it.

use std::sync::Arc;

use axum::extract::{Form as AxumForm, State};
use axum::http::HeaderMap;
use axum::response::Response;
use portcullis_oauth::client::TokenAuthMethod;
use portcullis_oauth::grant::single;
use portcullis_oauth::jwt::{self, Expectation};
use portcullis_oauth::{OAuthError, secret};

use super::{AuthServer, internal, now, reply};
use crate::guard::LEEWAY_SECS;

/// A leeway wide enough that expiry is not judged here (ten years).
const ANY_TIME: i64 = 10 * 365 * 86_400;

/// What a token turned out to be.
struct Found {
    grant_id: String,
    client_id: String,
    claims: Option<jwt::AccessClaims>,
}

impl AuthServer {
    async fn find_token(
        &self,
        token: &str,
        hint: Option<&str>,
    ) -> Result<Option<Found>, OAuthError> {
        let as_refresh = async {
            let Some(row) = self
                .store
                .refresh(&secret::hash(token))
                .await
                .map_err(internal)?
            else {
                return Ok(None);
            };
            let Some(grant) = self.store.grant(&row.grant_id).await.map_err(internal)? else {
                return Ok(None);
            };
            Ok::<_, OAuthError>(Some(Found {
                grant_id: grant.id,
                client_id: grant.client_id,
                claims: None,
            }))
        };
        let as_access = || {
            // Signature, issuer and audience must hold; expiry need not (revoking an
            // expired token is harmless, and RFC 7009 wants 200 either way).
            let claims = self.guard.keys.verify(
                token,
                &Expectation {
                    issuer: &self.config.issuer,
                    audience: &self.config.resource,
                    now: now(),
                    leeway: ANY_TIME,
                },
            );
            claims.ok().map(|c| Found {
                grant_id: c.grant_id.clone(),
                client_id: c.client_id.clone(),
                claims: Some(c),
            })
        };
        if hint == Some("access_token") || token.matches('.').count() == 2 {
            if let Some(f) = as_access() {
                return Ok(Some(f));
            }
            return as_refresh.await;
        }
        if let Some(f) = as_refresh.await? {
            return Ok(Some(f));
        }
        Ok(as_access())
    }
}

pub(super) async fn revoke(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(form): AxumForm<Vec<(String, String)>>,
) -> Response {
    let now = now();
    let result = async {
        let client = s.authenticate_client(&headers, &form, now).await?;
        let token = single(&form, "token")?
            .ok_or_else(|| OAuthError::invalid_request("parameter token is required"))?;
        if let Some(found) = s
            .find_token(token, single(&form, "token_type_hint")?)
            .await?
            && found.client_id == client.id
        {
            s.store
                .revoke_grant(&found.grant_id, now)
                .await
                .map_err(internal)?;
            s.guard.revoked.insert(&found.grant_id, now);
            tracing::info!(grant = %found.grant_id, "grant revoked by its client");
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    // RFC 7009 section 2.2: 200 also for unknown or foreign tokens.
    reply(result.map(|()| serde_json::json!({})))
}

pub(super) async fn introspect(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(form): AxumForm<Vec<(String, String)>>,
) -> Response {
    let now = now();
    let result = async {
        let client = s.authenticate_client(&headers, &form, now).await?;
        if client.settings.token_endpoint_auth_method == TokenAuthMethod::None {
            return Err(OAuthError::invalid_client(
                "introspection needs an authenticated (confidential) client",
            ));
        }
        let token = single(&form, "token")?
            .ok_or_else(|| OAuthError::invalid_request("parameter token is required"))?;
        let inactive = serde_json::json!({"active": false});
        let Some(found) = s
            .find_token(token, single(&form, "token_type_hint")?)
            .await?
        else {
            return Ok(inactive);
        };
        let Some(grant) = s.store.grant(&found.grant_id).await.map_err(internal)? else {
            return Ok(inactive);
        };
        if grant.revoked_at.is_some() || grant.expires_at <= now {
            return Ok(inactive);
        }
        Ok(match found.claims {
            Some(c) if c.exp + LEEWAY_SECS > now => serde_json::json!({
                "active": true,
                "token_type": "Bearer",
                "scope": c.scope,
                "client_id": c.client_id,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "exp": c.exp,
                "iat": c.iat,
                "jti": c.jti,
            }),
            Some(_) => inactive,
            None => {
                let row = s
                    .store
                    .refresh(&secret::hash(token))
                    .await
                    .map_err(internal)?;
                match row {
                    Some(r)
                        if r.idle_expires_at > now
                            && r.rotated_at
                                .is_none_or(|at| now - at <= s.config.refresh_grace) =>
                    {
                        serde_json::json!({
                            "active": true,
                            "token_type": "refresh_token",
                            "scope": r.scopes,
                            "client_id": grant.client_id,
                            "sub": grant.user_id,
                            "exp": r.idle_expires_at.min(grant.expires_at),
                            "iat": r.issued_at,
                        })
                    }
                    _ => inactive,
                }
            }
        })
    }
    .await;
    reply(result)
}
