//! The token endpoint: `authorization_code` and `refresh_token`, dispatched with a
//! `match` on the parsed request.
//!
//! - A code is spent atomically; a second use revokes the whole grant.
//! - A refresh token rotates on every use. A retry of the same refresh within the grace
//!   window gets the same new pair (the new refresh token is derived from the old one
//!   with the server's HMAC key, and the access token is re-signed from the recorded
//!   claims, Ed25519 being deterministic); a reuse after the window revokes the grant.

use std::sync::Arc;

use axum::extract::{Form as AxumForm, State};
use axum::http::HeaderMap;
use axum::response::Response;
use portcullis_oauth::grant::TokenRequest;
use portcullis_oauth::jwt::AccessClaims;
use portcullis_oauth::{CodeChallenge, ErrorCode, OAuthError, ScopeSet, secret};
use portcullis_store::{CodeRedemption, Grant, RefreshUse, Rotation};

use super::clients::Client;
use super::{AuthServer, internal, now, reply};

pub(super) async fn token(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(form): AxumForm<Vec<(String, String)>>,
) -> Response {
    let now = now();
    let result = async {
        let request = TokenRequest::parse(&form)?;
        let client = s.authenticate_client(&headers, &form, now).await?;
        match request {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
            } => {
                s.redeem_code(
                    &client,
                    &code,
                    redirect_uri.as_deref(),
                    code_verifier.as_deref(),
                    resource.as_deref(),
                    now,
                )
                .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
            } => {
                s.refresh(
                    &client,
                    &refresh_token,
                    scope.as_ref(),
                    resource.as_deref(),
                    now,
                )
                .await
            }
        }
    }
    .await;
    reply(result)
}

fn check_resource(grant: &Grant, resource: Option<&str>) -> Result<(), OAuthError> {
    match resource {
        Some(r) if r != grant.resource => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!(
                "resource {r:?} differs from the one authorized: use {}",
                grant.resource
            ),
        )),
        _ => Ok(()),
    }
}

impl AuthServer {
    async fn revoke_everywhere(&self, grant_id: &str, now: i64) -> Result<(), OAuthError> {
        self.store
            .revoke_grant(grant_id, now)
            .await
            .map_err(internal)?;
        self.guard.revoked.insert(grant_id, now);
        Ok(())
    }

    /// Notes that a client and a grant got tokens: the client stays registered, and the
    /// account page shows when the grant was last used. Best effort: a failure here does
    /// not fail the token request.
    async fn record_use(&self, client_id: &str, grant_id: &str, now: i64) {
        let _ = self.store.touch_client(client_id, now).await;
        if let Err(e) = self.store.touch_grant(grant_id, now).await {
            tracing::warn!(error = %e, "could not record the grant's last use");
        }
    }

    async fn redeem_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        resource: Option<&str>,
        now: i64,
    ) -> Result<serde_json::Value, OAuthError> {
        let (grant, stored_redirect, challenge, expires_at) = match self
            .store
            .consume_code(&secret::hash(code), now)
            .await
            .map_err(internal)?
        {
            CodeRedemption::Redeemed {
                grant,
                redirect_uri,
                code_challenge,
                expires_at,
            } => (grant, redirect_uri, code_challenge, expires_at),
            CodeRedemption::Replayed { grant_id } => {
                self.revoke_everywhere(&grant_id, now).await?;
                tracing::warn!(grant = %grant_id, "authorization code reused: grant revoked");
                return Err(OAuthError::invalid_grant(
                    "this authorization code was already used; every token issued from it has been revoked: authorize again",
                ));
            }
            CodeRedemption::Unknown => {
                return Err(OAuthError::invalid_grant(
                    "unknown authorization code: authorize again",
                ));
            }
        };
        if grant.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "this authorization code was issued to another client",
            ));
        }
        if expires_at <= now {
            return Err(OAuthError::invalid_grant(
                "this authorization code has expired: authorize again",
            ));
        }
        if grant.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant(
                "this authorization was revoked: authorize again",
            ));
        }
        match redirect_uri {
            _ if stored_redirect.is_empty() => {}
            Some(r) if r == stored_redirect => {}
            Some(_) => {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the one on the authorization request",
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "redirect_uri is required: send the one used on the authorization request",
                ));
            }
        }
        let verifier = verifier
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
        CodeChallenge::parse(&challenge, Some("S256"))
            .and_then(|c| c.verify(verifier))
            .map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
        check_resource(&grant, resource)?;
        self.record_use(&client.id, &grant.id, now).await;
        let refresh = if client.settings.allows_refresh() {
            let token =
                secret::generate(&self.rng).ok_or_else(|| internal("random source failed"))?;
            let idle = (now + self.config.refresh_idle_ttl).min(grant.expires_at);
            self.store
                .insert_refresh(&secret::hash(&token), &grant.id, &grant.scopes, now, idle)
                .await
                .map_err(internal)?;
            Some(token)
        } else {
            None
        };
        let jti = secret::generate(&self.rng).ok_or_else(|| internal("random source failed"))?;
        self.token_response(&grant, &grant.scopes, &jti, now, refresh)
    }

    async fn refresh(
        &self,
        client: &Client,
        token: &str,
        scope: Option<&ScopeSet>,
        resource: Option<&str>,
        now: i64,
    ) -> Result<serde_json::Value, OAuthError> {
        let hash = secret::hash(token);
        let row = self
            .store
            .refresh(&hash)
            .await
            .map_err(internal)?
            .ok_or_else(|| OAuthError::invalid_grant("unknown refresh token: authorize again"))?;
        let grant = self
            .store
            .grant(&row.grant_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                OAuthError::invalid_grant("this authorization no longer exists: authorize again")
            })?;
        if grant.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "this refresh token was issued to another client",
            ));
        }
        if grant.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant(
                "this authorization was revoked: authorize again",
            ));
        }
        if row.idle_expires_at <= now || grant.expires_at <= now {
            return Err(OAuthError::invalid_grant(
                "this refresh token has expired: authorize again",
            ));
        }
        check_resource(&grant, resource)?;
        let held = ScopeSet::parse(&row.scopes).unwrap_or_default();
        let scopes = match scope {
            None => held.clone(),
            Some(asked) if held.satisfies(asked) && !asked.is_empty() => asked.clone(),
            Some(asked) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!(
                        "a refresh can keep or narrow scopes, not add them: {} was not granted; authorize again to ask for it",
                        held.missing(asked)
                    ),
                ));
            }
        };
        let scopes = scopes.to_string();
        let jti = secret::generate(&self.rng).ok_or_else(|| internal("random source failed"))?;
        let rotation = Rotation {
            next_scopes: &scopes,
            next_jti: &jti,
            next_iat: now,
        };
        let successor = self.keys.successor(token);
        match self
            .store
            .rotate_refresh(&hash, now, &rotation)
            .await
            .map_err(internal)?
        {
            RefreshUse::Rotated(_) => {
                let idle = (now + self.config.refresh_idle_ttl).min(grant.expires_at);
                self.store
                    .insert_refresh(&secret::hash(&successor), &grant.id, &scopes, now, idle)
                    .await
                    .map_err(internal)?;
                self.record_use(&client.id, &grant.id, now).await;
                self.token_response(&grant, &scopes, &jti, now, Some(successor))
            }
            RefreshUse::AlreadyRotated(prev) => {
                let within_grace = prev
                    .rotated_at
                    .is_some_and(|at| now - at <= self.config.refresh_grace);
                match (within_grace, prev.next_scopes, prev.next_jti, prev.next_iat) {
                    (true, Some(next_scopes), Some(next_jti), Some(next_iat))
                        if next_scopes == scopes || scope.is_none() =>
                    {
                        // The same answer as the first exchange: same refresh token, same access token.
                        self.token_response(
                            &grant,
                            &next_scopes,
                            &next_jti,
                            next_iat,
                            Some(successor),
                        )
                    }
                    _ => {
                        self.revoke_everywhere(&grant.id, now).await?;
                        tracing::warn!(grant = %grant.id, "refresh token reused after rotation: grant revoked");
                        Err(OAuthError::invalid_grant(
                            "this refresh token was already used; the authorization has been revoked for safety: authorize again",
                        ))
                    }
                }
            }
            RefreshUse::Unknown => Err(OAuthError::invalid_grant(
                "unknown refresh token: authorize again",
            )),
        }
    }

    fn token_response(
        &self,
        grant: &Grant,
        scopes: &str,
        jti: &str,
        iat: i64,
        refresh: Option<String>,
    ) -> Result<serde_json::Value, OAuthError> {
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            sub: grant.user_id.clone(),
            aud: vec![grant.resource.clone()],
            client_id: grant.client_id.clone(),
            scope: scopes.to_owned(),
            exp: iat + self.config.access_ttl,
            iat,
            nbf: None,
            jti: jti.to_owned(),
            grant_id: grant.id.clone(),
        };
        let access = self
            .keys
            .sign(&claims)
            .ok_or_else(|| internal("signing key unavailable"))?;
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": (claims.exp - now()).clamp(0, self.config.access_ttl),
            "scope": scopes,
        });
        if let Some(r) = refresh {
            body["refresh_token"] = serde_json::Value::String(r);
        }
        Ok(body)
    }
}
