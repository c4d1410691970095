//! Accounts beyond the first admin: passwords set by the person through a one-time link
//! (an invitation creates the account, a reset replaces its password), passwords set by the
//! operator, and disabling an account.
//!
//! A link is `https://issuer/oauth/password?token=…`; only the token's hash is stored, the
//! link expires, and spending it is one atomic statement, so it works once.

use std::sync::Arc;

use axum::extract::{Form as AxumForm, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_oauth::secret;
use portcullis_store::{LinkPurpose, Store};
use ring::rand::SystemRandom;
use serde::Deserialize;

use super::authorize::{create_user, hash_password, valid_password};
use super::pages::{self, page};
use super::{AuthServer, now, paths};

/// Makes a one-time link for `username` and returns its URL. For an invitation the
/// account must not exist yet; for a reset it must.
pub async fn password_link(
    store: &Store,
    rng: &SystemRandom,
    issuer: &str,
    username: &str,
    purpose: LinkPurpose,
    is_admin: bool,
    ttl_secs: i64,
) -> Result<String, String> {
    let exists = store
        .user_by_name(username)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    match purpose {
        LinkPurpose::Invite if exists => {
            return Err(format!(
                "a user named {username:?} already exists: send them a password reset instead"
            ));
        }
        LinkPurpose::Invite if !super::authorize::valid_username(username) => {
            return Err(format!(
                "username {username:?} is not valid: use 1 to 64 letters, digits and . _ @ -"
            ));
        }
        LinkPurpose::Reset if !exists => {
            return Err(format!(
                "no user named {username:?}: `portcullis user list` shows the accounts"
            ));
        }
        _ => {}
    }
    let token = secret::generate(rng).ok_or_else(|| "the random source failed".to_owned())?;
    let now = now();
    store
        .create_password_link(
            &secret::hash(&token),
            username,
            purpose,
            is_admin,
            now,
            now + ttl_secs,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{issuer}{}?token={token}", paths::PASSWORD))
}

/// Sets an account's password (at least 12 characters) and signs its browsers out.
pub async fn set_password(
    store: &Store,
    rng: &SystemRandom,
    user_id: &str,
    password: &str,
) -> Result<(), String> {
    valid_password(password)?;
    let hash = hash_password(password, rng).await?;
    match store.set_password_hash(user_id, &hash).await {
        Ok(true) => Ok(()),
        Ok(false) => Err("the account no longer exists".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LinkQuery {
    #[serde(default)]
    token: String,
}

fn link_gone() -> Response {
    pages::error(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "It was used already, it has expired, or it was copied incompletely.",
        "Ask the administrator of this server for a new link.",
    )
}

pub(super) async fn password_page(
    State(s): State<Arc<AuthServer>>,
    Query(q): Query<LinkQuery>,
) -> Response {
    match s.store.password_link(&secret::hash(&q.token), now()).await {
        Ok(Some(link)) => page(
            StatusCode::OK,
            &pages::PasswordLink {
                token: &q.token,
                username: &link.username,
                invite: link.purpose == LinkPurpose::Invite,
                error: None,
            },
        ),
        Ok(None) => link_gone(),
        Err(e) => super::authorize::server_error_page(e),
    }
}

#[derive(Deserialize)]
pub(super) struct LinkForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

impl std::fmt::Debug for LinkForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkForm").finish_non_exhaustive()
    }
}

pub(super) async fn password(
    State(s): State<Arc<AuthServer>>,
    AxumForm(f): AxumForm<LinkForm>,
) -> Response {
    let hash = secret::hash(&f.token);
    let now = now();
    let link = match s.store.password_link(&hash, now).await {
        Ok(Some(link)) => link,
        Ok(None) => return link_gone(),
        Err(e) => return super::authorize::server_error_page(e),
    };
    let invite = link.purpose == LinkPurpose::Invite;
    let retry = |error: String| {
        page(
            StatusCode::BAD_REQUEST,
            &pages::PasswordLink {
                token: &f.token,
                username: &link.username,
                invite,
                error: Some(error),
            },
        )
    };
    if f.password != f.confirm {
        return retry("The two passwords differ. Type the same password twice.".to_owned());
    }
    if let Err(e) = valid_password(&f.password) {
        return retry(format!("{}.", capitalized(&e)));
    }
    // Spent before the account changes: of two racing submissions, one wins.
    match s.store.use_password_link(&hash, now).await {
        Ok(true) => {}
        Ok(false) => return link_gone(),
        Err(e) => return super::authorize::server_error_page(e),
    }
    let done = match link.purpose {
        LinkPurpose::Invite => {
            create_user(&s.store, &s.rng, &link.username, &f.password, link.is_admin).await
        }
        LinkPurpose::Reset => match s.store.user_by_name(&link.username).await {
            Ok(Some(user)) => set_password(&s.store, &s.rng, &user.id, &f.password).await,
            Ok(None) => Err(format!(
                "there is no account named {:?} any more",
                link.username
            )),
            Err(e) => return super::authorize::server_error_page(e),
        },
    };
    match done {
        Ok(()) => {
            tracing::info!(user = %link.username, purpose = ?link.purpose, "password set through a one-time link");
            pages::notice(
                if invite {
                    "Account created"
                } else {
                    "Password changed"
                },
                "You can now sign in from any MCP client you connect to this server.",
                "This link no longer works.",
            )
        }
        Err(e) => pages::error(
            StatusCode::CONFLICT,
            "The password was not set",
            &format!("{}.", capitalized(&e)),
            "This link is now spent: ask the administrator of this server for a new one.",
        ),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
