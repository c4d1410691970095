//! The account page: a signed-in person sees the applications connected to their account,
//! disconnects any of them, and changes their password. Signed out, the page is a sign-in
//! form of its own that comes back here.
//!
//! Same rules as the login and consent pages: the browser session cookie, a CSRF token on
//! every form, the same password check and throttle, and the page headers of
//! [`pages::page`] (no framing, no caching). Every query is keyed by the session's user:
//! a form naming someone else's client touches only the sender's own grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Form as AxumForm, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_oauth::client::{ClientSettings, is_metadata_document_id};
use portcullis_oauth::{ScopeSet, secret};
use portcullis_store::{GrantFilter, GrantInfo, GrantSelector, User};
use serde::Deserialize;

use super::authorize::{
    Peer, Refused, Session, csrf_ok, hash_password, server_error_page, valid_password, with_cookie,
};
use super::pages::{self, page, see_other};
use super::{AuthServer, now, paths};

/// The page after a form, without the form being sent again on reload.
fn csrf_refused() -> Response {
    pages::error(
        StatusCode::FORBIDDEN,
        "This form was not accepted",
        "The form's security token is missing or does not match this browser's session. Nothing was changed.",
        "Open your account page again and repeat the step. If you did not submit a form, someone may have tried to act for you.",
    )
}

/// The signed-in user of a session, if the session has one and the account still exists.
async fn signed_in(s: &AuthServer, session: &Session) -> Result<Option<User>, Response> {
    let Some(id) = &session.row.user_id else {
        return Ok(None);
    };
    s.store.user_by_id(id).await.map_err(server_error_page)
}

/// What one connected application looks like on the page: all the user's live grants for
/// one client, merged.
struct App {
    client_id: String,
    name: String,
    /// What identifies the client beyond its self-chosen name.
    host: String,
    host_note: &'static str,
    scopes: Vec<(String, String)>,
    first: i64,
    last: Option<i64>,
}

// ---------- GET /account ----------

#[derive(Debug, Deserialize)]
pub(super) struct AccountQuery {
    #[serde(default)]
    done: String,
}

pub(super) async fn show(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    Query(q): Query<AccountQuery>,
) -> Response {
    let now = now();
    let session = match s.current_session(&headers, now).await {
        Ok(Some(sess)) => sess,
        Ok(None) => match s.new_session(None, now).await {
            Ok(sess) => sess,
            Err(r) => return r,
        },
        Err(r) => return r,
    };
    let user = match signed_in(&s, &session).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let resp = match user {
        None => login_form(&s, &session, "", StatusCode::OK, None),
        Some(user) => {
            let notice = match q.done.as_str() {
                "disconnected" => Some(
                    "The application was disconnected: its access ends within seconds, and connecting it again will ask for your approval.",
                ),
                "nothing" => {
                    Some("That application was not connected to your account: nothing changed.")
                }
                "unlinked" => Some(
                    "Your account at the identity provider is no longer linked: sign in here with your password.",
                ),
                "linked" => Some(
                    "Your account at the identity provider is linked: you can sign in with it from now on.",
                ),
                "password" => Some(
                    "Your password was changed. Every other browser signed in as you was signed out; connected applications keep their access until you disconnect them.",
                ),
                _ => None,
            };
            account_page(
                &s,
                &session.row.csrf,
                &user,
                StatusCode::OK,
                notice,
                None,
                now,
            )
            .await
        }
    };
    with_cookie(resp, &session)
}

fn login_form(
    s: &AuthServer,
    session: &Session,
    username: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    page(
        status,
        &pages::AccountLogin {
            csrf: &session.row.csrf,
            username,
            upstream: s.upstream_name(),
            password: s.config.password_login,
            error,
        },
    )
}

async fn account_page(
    s: &AuthServer,
    csrf: &str,
    user: &User,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<String>,
    now: i64,
) -> Response {
    let filter = GrantFilter {
        user_id: Some(user.id.clone()),
        ..GrantFilter::default()
    };
    let grants = match s.store.grants(&filter, now).await {
        Ok(g) => g,
        Err(e) => return server_error_page(e),
    };
    let apps: Vec<pages::AppView> = connected_apps(s, grants)
        .into_iter()
        .map(|a| pages::AppView {
            client_id: a.client_id,
            name: a.name,
            host: a.host,
            host_note: a.host_note,
            scopes: a.scopes,
            first: utc(a.first),
            last: a.last.map_or_else(|| "not yet".to_owned(), utc),
        })
        .collect();
    let upstream_linked = match s.upstream_issuer() {
        Some(issuer) => match s.store.upstream_issuers(&user.id).await {
            Ok(linked) => linked.iter().any(|i| i == issuer),
            Err(e) => return server_error_page(e),
        },
        None => false,
    };
    page(
        status,
        &pages::Account {
            username: &user.username,
            csrf,
            apps,
            has_password: !user.password_hash.is_empty(),
            upstream: s.upstream_name(),
            upstream_linked,
            notice,
            error,
        },
    )
}

/// Groups grants by client, most recently used first.
fn connected_apps(s: &AuthServer, grants: Vec<GrantInfo>) -> Vec<App> {
    let mut by_client: BTreeMap<String, Vec<GrantInfo>> = BTreeMap::new();
    for g in grants {
        by_client
            .entry(g.grant.client_id.clone())
            .or_default()
            .push(g);
    }
    let mut apps: Vec<App> = by_client
        .into_iter()
        .map(|(client_id, grants)| {
            let settings: Option<ClientSettings> = grants
                .iter()
                .find_map(|g| g.client_settings.as_deref())
                .and_then(|j| serde_json::from_str(j).ok());
            let document = is_metadata_document_id(&client_id) || s.cimd.accepts_id(&client_id);
            let (name, host, host_note) = describe(s, &client_id, document, settings.as_ref());
            let scopes = grants
                .iter()
                .map(|g| g.grant.scopes.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let scopes = ScopeSet::parse(&scopes)
                .unwrap_or_default()
                .iter()
                .map(|name| {
                    let d = s
                        .config
                        .known_scope(name)
                        .map(|i| i.description)
                        .unwrap_or(name);
                    (name.to_owned(), d.to_owned())
                })
                .collect();
            App {
                name,
                host,
                host_note,
                scopes,
                first: grants.iter().map(|g| g.grant.created_at).min().unwrap_or(0),
                last: grants.iter().filter_map(|g| g.last_used_at).max(),
                client_id,
            }
        })
        .collect();
    apps.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.name.cmp(&b.name)));
    apps
}

/// The client's name, and the host that identifies it without trusting its self-chosen
/// name: a metadata-document client's id is a URL on its own host; a registered client is
/// known by where it sends people back (what the consent page shows too).
fn describe(
    s: &AuthServer,
    client_id: &str,
    document: bool,
    settings: Option<&ClientSettings>,
) -> (String, String, &'static str) {
    let named = |settings: Option<&ClientSettings>| {
        settings
            .and_then(|c| c.client_name.clone())
            .filter(|n| !n.trim().is_empty())
    };
    if document {
        let host = url::Url::parse(client_id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| client_id.to_owned());
        let name = named(s.cimd.cached(client_id).as_ref()).unwrap_or_else(|| host.clone());
        return (name, host, "the host of its client id");
    }
    let Some(settings) = settings else {
        return (
            client_id.to_owned(),
            "unknown".to_owned(),
            "its registration has expired",
        );
    };
    let mut hosts: Vec<String> = Vec::new();
    for uri in &settings.redirect_uris {
        let h = url::Url::parse(uri)
            .ok()
            .map(|u| {
                u.host_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{}:", u.scheme()))
            })
            .unwrap_or_else(|| uri.clone());
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    (
        named(Some(settings)).unwrap_or_else(|| client_id.to_owned()),
        hosts.join(", "),
        "where it sends you back",
    )
}

/// Unix seconds as "2026-01-31 14:05 UTC".
fn utc(secs: i64) -> String {
    let c = crate::time::civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

// ---------- POST /account/login ----------

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

// Forms that carry passwords leave them out of their Debug output.
impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordForm").finish_non_exhaustive()
    }
}

/// The session a form came with, or the answer when there is none (expired: back to the
/// page, which starts over).
/// The browser session of a form post, once its CSRF token matches; without a session the
/// browser goes back to the account page, with a wrong token it is refused.
async fn form_session(
    s: &AuthServer,
    headers: &HeaderMap,
    csrf: &str,
    now: i64,
) -> Result<Session, Response> {
    let session = s
        .current_session(headers, now)
        .await?
        .ok_or_else(|| see_other(paths::ACCOUNT))?;
    if !csrf_ok(&session, csrf) {
        return Err(csrf_refused());
    }
    Ok(session)
}

/// A form from the signed-in account page: its session (CSRF checked) and the account,
/// or back to the page when nobody is signed in.
async fn form_user(
    s: &AuthServer,
    headers: &HeaderMap,
    csrf: &str,
    now: i64,
) -> Result<(Session, User), Response> {
    let session = form_session(s, headers, csrf, now).await?;
    match signed_in(s, &session).await? {
        Some(user) => Ok((session, user)),
        None => Err(see_other(paths::ACCOUNT)),
    }
}

pub(super) async fn login(
    State(s): State<Arc<AuthServer>>,
    peer: Peer,
    headers: HeaderMap,
    AxumForm(f): AxumForm<LoginForm>,
) -> Response {
    if !s.config.password_login {
        return super::authorize::password_login_off(&s);
    }
    let now = now();
    let session = match form_session(&s, &headers, &f.csrf, now).await {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    let ip = s.client_ip(peer.as_ref().map(|e| &e.0), &headers);
    let user = match s.check_password(&f.username, &f.password, ip, now).await {
        Ok(user) => user,
        Err(refused) => {
            return refused.page("Wrong username or password.", |status, error| {
                login_form(&s, &session, &f.username, status, Some(error))
            });
        }
    };
    let fresh = match s.signed_in_session(&session, &user.id, now).await {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    tracing::info!(user = %user.username, "signed in to the account page");
    with_cookie(see_other(paths::ACCOUNT), &fresh)
}

// ---------- POST /account/logout ----------

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(f): AxumForm<CsrfForm>,
) -> Response {
    let now = now();
    let session = match form_session(&s, &headers, &f.csrf, now).await {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    if let Err(e) = s.store.delete_session(&secret::hash(&session.id)).await {
        return server_error_page(e);
    }
    see_other(paths::ACCOUNT)
}

// ---------- POST /account/revoke ----------

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    client_id: String,
}

/// Removes the link to the upstream provider. Only an account with a password may: without
/// one, nothing would open the account any more.
pub(super) async fn unlink(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(f): AxumForm<CsrfForm>,
) -> Response {
    let now = now();
    let (session, user) = match form_user(&s, &headers, &f.csrf, now).await {
        Ok(signed) => signed,
        Err(r) => return r,
    };
    let Some(issuer) = s.upstream_issuer() else {
        return see_other(paths::ACCOUNT);
    };
    if user.password_hash.is_empty() {
        return account_page(
            &s,
            &session.row.csrf,
            &user,
            StatusCode::CONFLICT,
            None,
            Some(
                "This account has no password, so the identity provider is its only way in: it stays linked. Ask the administrator for a password link (portcullis user reset-password) first."
                    .to_owned(),
            ),
            now,
        )
        .await;
    }
    match s.store.unlink_upstream(&user.id, issuer).await {
        Ok(_) => see_other(&format!("{}?done=unlinked", paths::ACCOUNT)),
        Err(e) => server_error_page(e),
    }
}

pub(super) async fn revoke(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(f): AxumForm<RevokeForm>,
) -> Response {
    let now = now();
    let (_, user) = match form_user(&s, &headers, &f.csrf, now).await {
        Ok(signed) => signed,
        Err(r) => return r,
    };
    // Keyed by the session's user: another person's client id revokes nothing of theirs.
    let selector = GrantSelector::UserClient {
        user_id: &user.id,
        client_id: &f.client_id,
    };
    let revoked = match s.store.revoke_grants(selector, now).await {
        Ok(r) => r,
        Err(e) => return server_error_page(e),
    };
    // This instance refuses the tokens at once; others within their revocation poll.
    for g in &revoked {
        s.guard.revoked.insert(&g.id, now);
    }
    if revoked.is_empty() {
        return see_other(&format!("{}?done=nothing", paths::ACCOUNT));
    }
    tracing::info!(user = %user.username, client_id = %f.client_id, grants = revoked.len(), "application disconnected by its user");
    see_other(&format!("{}?done=disconnected", paths::ACCOUNT))
}

// ---------- POST /account/password ----------

pub(super) async fn password(
    State(s): State<Arc<AuthServer>>,
    peer: Peer,
    headers: HeaderMap,
    AxumForm(f): AxumForm<PasswordForm>,
) -> Response {
    let now = now();
    let (session, user) = match form_user(&s, &headers, &f.csrf, now).await {
        Ok(signed) => signed,
        Err(r) => return r,
    };
    let again = |status: StatusCode, error: String| {
        account_page(
            &s,
            &session.row.csrf,
            &user,
            status,
            None,
            Some(format!("{error} Nothing was changed.")),
            now,
        )
    };
    if f.new_password != f.new_password_again {
        return again(
            StatusCode::BAD_REQUEST,
            "The two new passwords are not the same.".to_owned(),
        )
        .await;
    }
    if let Err(e) = valid_password(&f.new_password) {
        return again(StatusCode::BAD_REQUEST, format!("New password: {e}.")).await;
    }
    let ip = s.client_ip(peer.as_ref().map(|e| &e.0), &headers);
    if let Err(refused) = s
        .check_password(&user.username, &f.current_password, ip, now)
        .await
    {
        let (status, message) = match refused {
            Refused::Throttled(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong passwords. Try again in {} seconds.",
                    wait.max(1)
                ),
            ),
            Refused::Wrong => (
                StatusCode::UNAUTHORIZED,
                "Your current password is not right.".to_owned(),
            ),
            Refused::Disabled => (
                StatusCode::FORBIDDEN,
                "This account is disabled.".to_owned(),
            ),
            Refused::Failed(r) => return r,
        };
        return again(status, message).await;
    }
    let hash = match hash_password(&f.new_password, &s.rng).await {
        Ok(h) => h,
        Err(e) => return server_error_page(e),
    };
    // This ends every browser session of the account: whoever signed in elsewhere with
    // the old password is signed out. This browser continues under a new session id.
    match s.store.set_password_hash(&user.id, &hash).await {
        Ok(true) => {}
        Ok(false) => return see_other(paths::ACCOUNT),
        Err(e) => return server_error_page(e),
    }
    let fresh = match s.new_session(Some(&user.id), now).await {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    tracing::info!(user = %user.username, "password changed on the account page");
    with_cookie(
        see_other(&format!("{}?done=password", paths::ACCOUNT)),
        &fresh,
    )
}
