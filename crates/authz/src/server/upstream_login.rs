//! Sign-in through the upstream identity provider ([`crate::upstream`]): one more button on
//! the sign-in page and on the account page.
//!
//! `POST /oauth/upstream` (the button, with the page's CSRF token) parks this attempt's
//! `state`, `nonce` and PKCE verifier server-side, bound to the browser session, and sends
//! the browser to the provider. `GET /oauth/upstream/callback` takes the attempt back once
//! (a replayed callback finds nothing), verifies the provider's answer, links or creates the
//! account, and signs the browser in with a fresh session id. The MCP client's request then
//! goes on to Portcullis's own consent page, whatever the provider asked or answered: the
//! consent is this server's, per user and client.

use std::sync::Arc;

use axum::extract::{Form as AxumForm, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use portcullis_oauth::{CodeChallenge, secret};
use portcullis_store::{UpstreamCreated, User};
use serde::{Deserialize, Serialize};

use super::authorize::{csrf_ok, csrf_page, new_user_id, server_error_page, with_cookie};
use super::pages::{self, see_other};
use super::{AuthServer, now, paths};
use crate::upstream::{Identity, UpstreamError, username_from_hint};

/// How long the provider has to send the browser back.
const ATTEMPT_TTL: i64 = 600;
const VERIFIER_LABEL: &str = "portcullis upstream pkce verifier";

/// One sign-in attempt at the provider, kept until its callback.
#[derive(Serialize, Deserialize)]
struct Attempt {
    /// The pending MCP authorization request to go on with, or empty for the account page.
    request: String,
    nonce: String,
    /// The PKCE verifier, sealed under the master key.
    verifier: String,
    /// The signed-in account to link the identity to (from the account page), instead of
    /// signing in with it.
    #[serde(default)]
    link_user: Option<String>,
}

/// The store key of an attempt: its own namespace among pending requests.
fn attempt_key(state: &str) -> String {
    secret::hash(&format!("upstream:{state}"))
}

#[derive(Debug, Deserialize)]
pub(super) struct StartForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    /// Non-empty: link the identity to the signed-in account.
    #[serde(default)]
    link: String,
}

fn expired() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "This sign-in is not open in this browser any more: it was finished already, took longer than 10 minutes, or was started in another browser.",
        "Start the sign-in again from your application (or from the account page).",
    )
}

/// The page for a provider failure; nothing was created when it shows.
fn upstream_failed(s: &AuthServer, e: &UpstreamError) -> Response {
    let name = s
        .upstream
        .as_ref()
        .map(|u| u.config.name.clone())
        .unwrap_or_default();
    match e {
        UpstreamError::Unavailable(m) => {
            let mut r = pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{name} cannot be reached"),
                &format!("{m}. Nothing was changed."),
                "Try again in a minute. If it keeps happening, tell the server's operator.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            r
        }
        UpstreamError::Misconfigured(m) => {
            tracing::error!(error = %m, "upstream sign-in is misconfigured");
            pages::error(
                StatusCode::BAD_GATEWAY,
                &format!("Sign-in with {name} is not set up correctly"),
                &format!("{m}. Nothing was changed."),
                "Tell the server's operator; `portcullis config check` shows the sign-in settings.",
            )
        }
        UpstreamError::Refused(m) => pages::error(
            StatusCode::FORBIDDEN,
            &format!("{name} did not sign you in"),
            &format!("{m}. Nothing was changed."),
            "Start the sign-in again from your application if you want to continue.",
        ),
        UpstreamError::Unverified(m) => {
            tracing::warn!(error = %m, "upstream answer refused");
            pages::error(
                StatusCode::BAD_REQUEST,
                &format!("The answer from {name} was not accepted"),
                &format!("{m}. Nothing was changed."),
                "Start the sign-in again from your application. If you did not start a sign-in, someone may have tried to act for you: close this page.",
            )
        }
        UpstreamError::NotAllowed(m) => pages::error(
            StatusCode::FORBIDDEN,
            "This account may not sign in here",
            &format!("You signed in at {name}, but {m}."),
            "Sign in with another account, or ask the server's operator to admit yours.",
        ),
    }
}

impl AuthServer {
    fn upstream_redirect_uri(&self) -> String {
        format!("{}{}", self.config.issuer, paths::UPSTREAM_CALLBACK)
    }
}

// ---------- POST /oauth/upstream ----------

pub(super) async fn start(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(f): AxumForm<StartForm>,
) -> Response {
    let now = now();
    let Some(upstream) = s.upstream.as_ref() else {
        return pages::error(
            StatusCode::NOT_FOUND,
            "No other sign-in method",
            "This server signs people in with a username and password only.",
            "Go back and sign in with your username and password.",
        );
    };
    let session = match s.current_session(&headers, now).await {
        Ok(Some(sess)) => sess,
        Ok(None) => return expired(),
        Err(r) => return r,
    };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_page();
    }
    // Linking needs someone signed in here: the identity goes to their account.
    let link_user = if f.link.is_empty() {
        None
    } else {
        match &session.row.user_id {
            Some(u) => Some(u.clone()),
            None => return expired(),
        }
    };
    // The MCP request this sign-in is for must be open in this browser.
    if !f.request.is_empty() {
        match s
            .store
            .auth_request(&secret::hash(&f.request), &secret::hash(&session.id), now)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => return expired(),
            Err(e) => return server_error_page(e),
        }
    }
    let (Some(state), Some(nonce), Some(verifier)) = (
        secret::generate(&s.rng),
        secret::generate(&s.rng),
        secret::generate(&s.rng),
    ) else {
        return server_error_page("random source failed");
    };
    let challenge = match CodeChallenge::from_verifier(&verifier) {
        Ok(c) => c,
        Err(e) => return server_error_page(e),
    };
    // The provider first: when it cannot be reached, nothing is stored.
    let url = match upstream
        .authorization_url(
            &s.upstream_redirect_uri(),
            &state,
            &nonce,
            challenge.as_str(),
            now,
        )
        .await
    {
        Ok(u) => u,
        Err(e) => return upstream_failed(&s, &e),
    };
    let Some(sealed) = s
        .keys
        .request_state_key()
        .seal(VERIFIER_LABEL, verifier.as_bytes(), &s.rng)
    else {
        return server_error_page("sealing failed");
    };
    let attempt = Attempt {
        request: f.request,
        nonce,
        verifier: B64URL.encode(sealed),
        link_user,
    };
    let params = match serde_json::to_string(&attempt) {
        Ok(p) => p,
        Err(e) => return server_error_page(e),
    };
    if let Err(e) = s
        .store
        .put_auth_request(
            &attempt_key(&state),
            &secret::hash(&session.id),
            &params,
            now + ATTEMPT_TTL,
        )
        .await
    {
        return server_error_page(e);
    }
    see_other(&url)
}

// ---------- GET /oauth/upstream/callback ----------

#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

pub(super) async fn callback(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let now = now();
    let Some(upstream) = s.upstream.as_ref() else {
        return expired();
    };
    let session = match s.current_session(&headers, now).await {
        Ok(Some(sess)) => sess,
        Ok(None) => return expired(),
        Err(r) => return r,
    };
    // The attempt must be this browser's, and is taken once: a replayed or forged callback
    // (wrong state, another browser's state, a second use) finds nothing.
    let key = attempt_key(&q.state);
    let attempt: Attempt = match s
        .store
        .auth_request(&key, &secret::hash(&session.id), now)
        .await
    {
        Ok(Some(p)) => match serde_json::from_str(&p) {
            Ok(a) => a,
            Err(_) => return expired(),
        },
        Ok(None) => {
            tracing::info!("upstream callback with an unknown, spent or foreign state");
            return expired();
        }
        Err(e) => return server_error_page(e),
    };
    match s.store.take_auth_request(&key).await {
        Ok(true) => {}
        Ok(false) => return expired(),
        Err(e) => return server_error_page(e),
    }
    let name = &upstream.config.name;
    if let Some(error) = &q.error {
        let said = q.error_description.as_deref().unwrap_or("");
        let why = if error == "access_denied" {
            format!("You (or {name}) declined the sign-in")
        } else {
            format!(
                "{name} answered {error}{}{said}",
                if said.is_empty() { "" } else { ": " }
            )
        };
        return upstream_failed(&s, &UpstreamError::Refused(why));
    }
    // RFC 9207: a provider that names itself must be the one this attempt went to.
    if let Some(iss) = &q.iss
        && iss != &upstream.config.issuer
    {
        return upstream_failed(
            &s,
            &UpstreamError::Unverified(format!(
                "the answer came from {iss:?}, not from {:?}",
                upstream.config.issuer
            )),
        );
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return upstream_failed(
            &s,
            &UpstreamError::Unverified(format!("{name} sent neither a code nor an error")),
        );
    };
    let verifier = B64URL
        .decode(&attempt.verifier)
        .ok()
        .and_then(|b| s.keys.request_state_key().open(VERIFIER_LABEL, &b))
        .and_then(|v| String::from_utf8(v).ok());
    let Some(verifier) = verifier else {
        return server_error_page("the sign-in attempt's verifier does not open");
    };
    let identity = match upstream
        .finish(
            code,
            &verifier,
            &attempt.nonce,
            &s.upstream_redirect_uri(),
            now,
        )
        .await
    {
        Ok(i) => i,
        Err(e) => return upstream_failed(&s, &e),
    };
    if let Some(user_id) = &attempt.link_user {
        return link(&s, &session, user_id, &identity, now).await;
    }
    let user = match s.linked_user(&identity, now).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.disabled {
        tracing::info!(user = %user.username, "upstream sign-in refused: account disabled");
        return pages::error(
            StatusCode::FORBIDDEN,
            "This account is disabled",
            &format!("You signed in at {name}, but the account it opens here is disabled."),
            "Ask the administrator of this server.",
        );
    }
    let fresh = match s.signed_in_session(&session, &user.id, now).await {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    tracing::info!(user = %user.username, provider = %upstream.config.issuer, "signed in through the upstream provider");
    let next = if attempt.request.is_empty() {
        paths::ACCOUNT.to_owned()
    } else {
        format!("{}?request={}", paths::CONSENT, attempt.request)
    };
    with_cookie(see_other(&next), &fresh)
}

/// Links the identity to the account signed in on the account page, unless it already
/// belongs to another account.
async fn link(
    s: &AuthServer,
    session: &super::authorize::Session,
    user_id: &str,
    who: &Identity,
    now: i64,
) -> Response {
    // Still the same person signed in as when the link was asked for.
    if session.row.user_id.as_deref() != Some(user_id) {
        return expired();
    }
    let linked = match s
        .store
        .link_upstream(&who.issuer, &who.subject, user_id, now)
        .await
    {
        Ok(l) => l,
        Err(e) => return server_error_page(e),
    };
    if !linked {
        let owner = match s
            .store
            .user_by_upstream(&who.issuer, &who.subject, now)
            .await
        {
            Ok(u) => u,
            Err(e) => return server_error_page(e),
        };
        if owner.as_ref().map(|u| u.id.as_str()) != Some(user_id) {
            let name = s.upstream_name().unwrap_or_default();
            return pages::error(
                StatusCode::CONFLICT,
                "That account is linked to someone else here",
                &format!(
                    "The {name} account you signed in with already opens another account on this server. Nothing was changed."
                ),
                "Sign in with that account instead, or ask the server's operator to move it.",
            );
        }
    }
    tracing::info!(provider = %who.issuer, "upstream identity linked to an account");
    see_other(&format!("{}?done=linked", paths::ACCOUNT))
}

impl AuthServer {
    /// The account linked to this upstream identity, made on its first sign-in with a
    /// username from what the provider calls the person (numbered when taken).
    async fn linked_user(&self, who: &Identity, now: i64) -> Result<User, Response> {
        if let Some(user) = self
            .store
            .user_by_upstream(&who.issuer, &who.subject, now)
            .await
            .map_err(server_error_page)?
        {
            return Ok(user);
        }
        let base = username_from_hint(&who.username_hint);
        for n in 1..=20 {
            let username = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let id =
                new_user_id(&self.rng).ok_or_else(|| server_error_page("random source failed"))?;
            let user = User {
                id,
                username,
                // No password: this account signs in through the provider only.
                password_hash: String::new(),
                is_admin: false,
                disabled: false,
            };
            match self
                .store
                .create_upstream_user(&user, &who.issuer, &who.subject, now)
                .await
                .map_err(server_error_page)?
            {
                UpstreamCreated::Created => {
                    tracing::info!(user = %user.username, provider = %who.issuer, "account created at first upstream sign-in");
                    return Ok(user);
                }
                UpstreamCreated::NameTaken => continue,
                UpstreamCreated::AlreadyLinked => {
                    // Another sign-in of the same person won the race.
                    return self
                        .store
                        .user_by_upstream(&who.issuer, &who.subject, now)
                        .await
                        .map_err(server_error_page)?
                        .ok_or_else(|| server_error_page("upstream link vanished"));
                }
            }
        }
        Err(server_error_page("no free username for the new account"))
    }
}
