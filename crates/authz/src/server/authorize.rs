//! The authorization endpoint and the pages behind it: login, consent, first-admin setup.
//!
//! Order of checks (OAuth 2.1 section 4.1.2.1): anything wrong with the client or its
//! redirect URI shows an error page and never redirects; everything else is reported to
//! the client by redirect, always with `state` and `iss` (RFC 9207).
//!
//! A browser session (a cookie holding a random id; the store keeps its hash) carries the
//! CSRF token of every form. A pending authorization request is stored server-side,
//! bound to that session, and finished once.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, Form as AxumForm, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use portcullis_oauth::grant::single;
use portcullis_oauth::{CodeChallenge, ErrorCode, OAuthError, ScopeSet, redirect, secret};
use portcullis_store::{BrowserSession, Grant, NewCode, Store, User};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::clients::{Client, Lookup};
use super::pages::{self, page};
use super::{AuthServer, now, paths};

const SESSION_TTL: i64 = 8 * 3600;
const ANON_SESSION_TTL: i64 = 3600;
const REQUEST_TTL: i64 = 600;

/// A validated authorization request, kept until the user approves or denies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    /// Whether the request named the redirect URI (then the token request must repeat it).
    #[serde(default)]
    redirect_given: bool,
    state: Option<String>,
    code_challenge: String,
    scopes: String,
    resource: String,
}

pub(super) type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

// ---------- sessions and cookies ----------

fn cookie_name(s: &AuthServer) -> &'static str {
    if s.config.secure_cookies() {
        "__Host-portcullis"
    } else {
        "portcullis_session"
    }
}

fn set_cookie(s: &AuthServer, value: &str, max_age: i64) -> HeaderValue {
    let secure = if s.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(s)
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_value<'a>(s: &AuthServer, headers: &'a HeaderMap) -> Option<&'a str> {
    let name = cookie_name(s);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

pub(super) struct Session {
    pub(super) id: String,
    pub(super) row: BrowserSession,
    set_cookie: Option<HeaderValue>,
}

impl AuthServer {
    pub(super) async fn current_session(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Option<Session>, Response> {
        let Some(id) = cookie_value(self, headers) else {
            return Ok(None);
        };
        match self.store.session(&secret::hash(id), now).await {
            Ok(Some(row)) => Ok(Some(Session {
                id: id.to_owned(),
                row,
                set_cookie: None,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(server_error_page(e)),
        }
    }

    pub(super) async fn new_session(
        &self,
        user_id: Option<&str>,
        now: i64,
    ) -> Result<Session, Response> {
        let (Some(id), Some(csrf)) = (secret::generate(&self.rng), secret::generate(&self.rng))
        else {
            return Err(server_error_page("random source failed"));
        };
        let ttl = if user_id.is_some() {
            SESSION_TTL
        } else {
            ANON_SESSION_TTL
        };
        self.store
            .create_session(&secret::hash(&id), &csrf, user_id, now, now + ttl)
            .await
            .map_err(server_error_page)?;
        let cookie = set_cookie(self, &id, ttl);
        Ok(Session {
            id,
            row: BrowserSession {
                user_id: user_id.map(str::to_owned),
                csrf,
                expires_at: now + ttl,
            },
            set_cookie: Some(cookie),
        })
    }

    /// The session after a sign-in: a new id (so an id planted before sign-in is worth
    /// nothing after it), with the authorization requests pending in this browser moved to
    /// it and the old session deleted.
    pub(super) async fn signed_in_session(
        &self,
        old: &Session,
        user_id: &str,
        now: i64,
    ) -> Result<Session, Response> {
        let fresh = self.new_session(Some(user_id), now).await?;
        let old = secret::hash(&old.id);
        let moved = async {
            self.store
                .rebind_auth_requests(&old, &secret::hash(&fresh.id))
                .await?;
            self.store.delete_session(&old).await
        };
        moved.await.map_err(server_error_page)?;
        Ok(fresh)
    }
}

pub(super) fn with_cookie(mut resp: Response, session: &Session) -> Response {
    if let Some(c) = &session.set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    resp
}

pub(super) fn server_error_page<E: std::fmt::Display + 'static>(e: E) -> Response {
    let unavailable_oauth = (&e as &dyn std::any::Any)
        .downcast_ref::<portcullis_oauth::OAuthError>()
        .is_some_and(|o| o.code == portcullis_oauth::ErrorCode::TemporarilyUnavailable);
    if unavailable_oauth || super::unavailable(&e) {
        tracing::warn!(error = %e, "authorization page: database unavailable");
        let mut resp = pages::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The server cannot reach its database just now, so nothing was changed.",
            "Wait a few seconds and reload this page.",
        );
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(super::RETRY_AFTER_SECS),
        );
        return resp;
    }
    tracing::error!(error = %e, "authorization page failed");
    pages::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not finish this step.",
        "Try again from your application. If it keeps happening, tell the server's operator.",
    )
}

pub(super) fn csrf_ok(session: &Session, presented: &str) -> bool {
    secret::constant_time_eq(session.row.csrf.as_bytes(), presented.as_bytes())
}

// ---------- redirects back to the client ----------

fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return server_error_page("registered redirect URI no longer parses");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    pages::see_other(url.as_str())
}

fn redirect_error(
    s: &AuthServer,
    redirect_uri: &str,
    state: Option<&str>,
    e: &OAuthError,
) -> Response {
    let mut params = vec![
        ("error", e.code.as_str()),
        ("error_description", e.description.as_ref()),
    ];
    if let Some(st) = state {
        params.push(("state", st));
    }
    params.push(("iss", &s.config.issuer));
    redirect_to(redirect_uri, &params)
}

// ---------- GET /oauth/authorize ----------

pub(super) async fn authorize(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = now();
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let bad = |message: &str, hint: &str| {
        pages::error(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            message,
            hint,
        )
    };

    // 1. The client and its redirect URI: errors here never redirect.
    let client_id = match single(&form, "client_id") {
        Ok(Some(c)) => c,
        Ok(None) => {
            return bad(
                "The application did not say who it is (client_id is missing).",
                "Start the sign-in again from your application.",
            );
        }
        Err(e) => {
            return bad(
                &e.description,
                "Start the sign-in again from your application.",
            );
        }
    };
    let client = match s.find_client(client_id, now).await {
        Lookup::Found(c) => c,
        Lookup::Unknown => {
            return bad(
                "This application is not registered with this server (unknown client_id).",
                "Its registration may have expired: remove the server from your application and add it again so it registers anew.",
            );
        }
        Lookup::Document(e) => {
            return bad(
                &format!("The application's metadata document was refused: {e}."),
                "Tell the application's developer.",
            );
        }
        Lookup::Failed(e) if e.code == portcullis_oauth::ErrorCode::TemporarilyUnavailable => {
            return server_error_page(e);
        }
        Lookup::Failed(_) => return server_error_page("client lookup failed"),
    };
    let redirect_uri = match single(&form, "redirect_uri") {
        Ok(Some(r)) => r.to_owned(),
        Ok(None) if client.settings.redirect_uris.len() == 1 => {
            client.settings.redirect_uris[0].clone()
        }
        Ok(None) => {
            return bad(
                "The request has no redirect_uri and the application registered several.",
                "Start the sign-in again from your application.",
            );
        }
        Err(e) => {
            return bad(
                &e.description,
                "Start the sign-in again from your application.",
            );
        }
    };
    if !client.settings.redirect_registered(&redirect_uri) {
        return bad(
            &format!(
                "The address to return to ({redirect_uri}) is not registered for this application."
            ),
            "Nothing was sent there. If you did not start this sign-in, close this page.",
        );
    }

    // 2. Everything else is the client's to fix: report it by redirect.
    let state = single(&form, "state").ok().flatten();
    let fail = |e: OAuthError| redirect_error(&s, &redirect_uri, state, &e);
    let pending = match validate_request(&s, &form, &client, &redirect_uri) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };

    // 3. Park the request in the browser session, then log in or ask for consent.
    let session = match s.current_session(&headers, now).await {
        Ok(Some(sess)) => sess,
        Ok(None) => match s.new_session(None, now).await {
            Ok(sess) => sess,
            Err(r) => return r,
        },
        Err(r) => return r,
    };
    let Some(request_id) = secret::generate(&s.rng) else {
        return server_error_page("random source failed");
    };
    let params = match serde_json::to_string(&pending) {
        Ok(p) => p,
        Err(e) => return server_error_page(e),
    };
    if let Err(e) = s
        .store
        .put_auth_request(
            &secret::hash(&request_id),
            &secret::hash(&session.id),
            &params,
            now + REQUEST_TTL,
        )
        .await
    {
        return server_error_page(e);
    }
    let resp = if session.row.user_id.is_some() {
        consent_redirect(&request_id)
    } else {
        page(
            StatusCode::OK,
            &pages::Login {
                client_name: &client.display_name(),
                request_id: &request_id,
                csrf: &session.row.csrf,
                username: "",
                signup: s.config.allow_signup && s.config.password_login,
                upstream: s.upstream_name(),
                password: s.config.password_login,
                error: None,
            },
        )
    };
    with_cookie(resp, &session)
}

fn validate_request(
    s: &AuthServer,
    form: &[(String, String)],
    client: &Client,
    redirect_uri: &str,
) -> Result<Pending, OAuthError> {
    match single(form, "response_type")? {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported: use code"),
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "response_type is required: use code",
            ));
        }
    }
    let challenge = single(form, "code_challenge")?.ok_or_else(|| {
        OAuthError::invalid_request(
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        )
    })?;
    let challenge = CodeChallenge::parse(challenge, single(form, "code_challenge_method")?)
        .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let resource = match single(form, "resource")? {
        None => s.config.resource.clone(),
        Some(r) if r == s.config.resource => r.to_owned(),
        Some(r) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "resource {r:?} is not served here: use {}",
                    s.config.resource
                ),
            ));
        }
    };
    let requested = ScopeSet::parse(single(form, "scope")?.unwrap_or(""))
        .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
    Ok(Pending {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        redirect_given: single(form, "redirect_uri")?.is_some(),
        state: single(form, "state")?.map(str::to_owned),
        code_challenge: challenge.as_str().to_owned(),
        scopes: s.config.grantable(&requested).to_string(),
        resource,
    })
}

fn consent_redirect(request_id: &str) -> Response {
    pages::see_other(&format!("{}?request={request_id}", paths::CONSENT))
}

// ---------- POST /oauth/login ----------

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `signup` when the person asked to create the account (only with self sign-up on).
    #[serde(default)]
    action: String,
}

/// Debug output of the forms that carry a password (or a setup token) leaves them out.
macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(LoginForm, username);
redacted_debug!(SetupForm, username);

/// The answer to a password form when password sign-in is turned off.
pub(super) fn password_login_off(s: &AuthServer) -> Response {
    let how = match s.upstream_name() {
        Some(name) => format!("Go back and use \"Sign in with {name}\"."),
        None => "Ask the server's operator how to sign in.".to_owned(),
    };
    pages::error(
        StatusCode::FORBIDDEN,
        "Password sign-in is turned off",
        "This server does not accept usernames and passwords.",
        &how,
    )
}

fn expired_page() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "The sign-in request is no longer open in this browser.",
        "Start the sign-in again from your application.",
    )
}

pub(super) fn csrf_page() -> Response {
    pages::error(
        StatusCode::FORBIDDEN,
        "This form was not accepted",
        "The form's security token is missing or does not match this browser's session.",
        "Start the sign-in again from your application. If you did not submit a form, someone may have tried to act for you.",
    )
}

pub(super) async fn login(
    State(s): State<Arc<AuthServer>>,
    peer: Peer,
    headers: HeaderMap,
    AxumForm(f): AxumForm<LoginForm>,
) -> Response {
    if !s.config.password_login {
        return password_login_off(&s);
    }
    let now = now();
    let session = match s.current_session(&headers, now).await {
        Ok(Some(sess)) => sess,
        Ok(None) => return expired_page(),
        Err(r) => return r,
    };
    if !csrf_ok(&session, &f.csrf) {
        return csrf_page();
    }
    let req_hash = secret::hash(&f.request);
    let pending: Pending = match s
        .store
        .auth_request(&req_hash, &secret::hash(&session.id), now)
        .await
    {
        Ok(Some(p)) => match serde_json::from_str(&p) {
            Ok(p) => p,
            Err(e) => return server_error_page(e),
        },
        Ok(None) => return expired_page(),
        Err(e) => return server_error_page(e),
    };
    let client_name = match s.find_client(&pending.client_id, now).await {
        Lookup::Found(c) => c.display_name(),
        _ => pending.client_id.clone(),
    };
    let retry = |status: StatusCode, error: String| {
        page(
            status,
            &pages::Login {
                client_name: &client_name,
                request_id: &f.request,
                csrf: &session.row.csrf,
                username: &f.username,
                signup: s.config.allow_signup && s.config.password_login,
                upstream: s.upstream_name(),
                password: s.config.password_login,
                error: Some(error),
            },
        )
    };
    let ip = s.client_ip(peer.as_ref().map(|e| &e.0), &headers);
    if f.action == "signup" {
        if let Err(wait) = s.throttle.check_login(&f.username, ip, now) {
            return Refused::Throttled(wait).page("", retry);
        }
        if !s.config.allow_signup {
            return retry(
                StatusCode::FORBIDDEN,
                "This server does not take sign-ups. Ask its administrator for an invitation."
                    .to_owned(),
            );
        }
        // Sign-ups share the per-address budget of client registrations.
        if let Err(wait) = s.throttle.registration(ip, now) {
            return retry(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many new accounts from this address. Try again in {wait} seconds."),
            );
        }
        if let Err(e) = create_user(&s.store, &s.rng, &f.username, &f.password, false).await {
            return retry(
                StatusCode::BAD_REQUEST,
                format!("Account not created: {e}."),
            );
        }
        tracing::info!(user = %f.username, %ip, "account created by self sign-up");
    }
    let user = match s.check_password(&f.username, &f.password, ip, now).await {
        Ok(user) => user,
        Err(refused) => return refused.page("Wrong username or password.", retry),
    };
    let fresh = match s.signed_in_session(&session, &user.id, now).await {
        Ok(sess) => sess,
        Err(r) => return r,
    };
    tracing::info!(user = %user.username, "signed in");
    with_cookie(consent_redirect(&f.request), &fresh)
}

/// Why a password was not accepted.
pub(super) enum Refused {
    /// Too many failures for this account or address: wait this many seconds.
    Throttled(i64),
    Wrong,
    /// The password is right but an operator disabled the account.
    Disabled,
    /// The check itself failed (the database); the page to show.
    Failed(Response),
}

impl Refused {
    /// The answer: `render(status, message)` draws the form again with the message
    /// (`wrong` for a wrong password), or the error page when the check failed.
    pub(super) fn page(
        self,
        wrong: &str,
        render: impl Fn(StatusCode, String) -> Response,
    ) -> Response {
        match self {
            Refused::Throttled(wait) => {
                let wait = wait.max(1);
                let mut r = render(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many failed sign-ins. Try again in {wait} seconds."),
                );
                if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            Refused::Wrong => render(StatusCode::UNAUTHORIZED, wrong.to_owned()),
            Refused::Disabled => render(
                StatusCode::FORBIDDEN,
                "This account is disabled. Ask the administrator of this server.".to_owned(),
            ),
            Refused::Failed(r) => r,
        }
    }
}

impl AuthServer {
    /// Checks a username and password the way every form that takes a password does: the
    /// throttle first (per account and per address), then Argon2 against the stored hash,
    /// or against a dummy hash when there is no such user, so timing does not tell which
    /// usernames exist. A failure counts towards the throttle; a success clears the
    /// account's count. A disabled account is refused after its password is checked.
    pub(super) async fn check_password(
        &self,
        username: &str,
        password: &str,
        ip: std::net::IpAddr,
        now: i64,
    ) -> Result<User, Refused> {
        if let Err(wait) = self.throttle.check_login(username, ip, now) {
            return Err(Refused::Throttled(wait));
        }
        let user = match self.store.user_by_name(username).await {
            Ok(u) => u,
            Err(e) => return Err(Refused::Failed(server_error_page(e))),
        };
        // Accounts that sign in upstream only have no hash: they are checked like strangers.
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| dummy_hash().to_owned());
        let password = password.to_owned();
        let valid = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .unwrap_or(false);
        let Some(user) = user.filter(|u| valid && !u.password_hash.is_empty()) else {
            self.throttle.login_failed(username, ip, now);
            tracing::info!(%ip, "failed sign-in");
            return Err(Refused::Wrong);
        };
        self.throttle.login_succeeded(username);
        // Said only to whoever knows the password.
        if user.disabled {
            tracing::info!(user = %user.username, %ip, "sign-in refused: account disabled");
            return Err(Refused::Disabled);
        }
        Ok(user)
    }
}

// ---------- GET and POST /oauth/consent ----------

#[derive(Debug, Deserialize)]
pub(super) struct ConsentQuery {
    #[serde(default)]
    request: String,
}

struct ConsentContext {
    session: Session,
    user_id: String,
    pending: Pending,
    client: Client,
    already: ScopeSet,
}

async fn consent_context(
    s: &AuthServer,
    headers: &HeaderMap,
    request: &str,
    now: i64,
) -> Result<ConsentContext, Response> {
    let session = s
        .current_session(headers, now)
        .await?
        .ok_or_else(expired_page)?;
    let user_id = session.row.user_id.clone().ok_or_else(expired_page)?;
    let pending = s
        .store
        .auth_request(&secret::hash(request), &secret::hash(&session.id), now)
        .await
        .map_err(server_error_page)?
        .ok_or_else(expired_page)?;
    let pending: Pending = serde_json::from_str(&pending).map_err(server_error_page)?;
    let client = match s.find_client(&pending.client_id, now).await {
        Lookup::Found(c) => c,
        _ => return Err(expired_page()),
    };
    let already = s
        .store
        .consent(&user_id, &client.id)
        .await
        .map_err(server_error_page)?
        .and_then(|c| ScopeSet::parse(&c).ok())
        .unwrap_or_default();
    Ok(ConsentContext {
        session,
        user_id,
        pending,
        client,
        already,
    })
}

fn localhost_only(client: &Client) -> bool {
    client.document
        && redirect::all_loopback(client.settings.redirect_uris.iter().map(String::as_str))
}

pub(super) async fn consent_page(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ConsentQuery>,
) -> Response {
    let now = now();
    let ctx = match consent_context(&s, &headers, &q.request, now).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let requested = ScopeSet::parse(&ctx.pending.scopes).unwrap_or_default();
    // Remembered consent covers this request: no page. A metadata document with only
    // localhost redirects can be presented by anyone, so it always asks.
    if ctx.already.satisfies(&requested) && !localhost_only(&ctx.client) {
        if !matches!(
            s.store.take_auth_request(&secret::hash(&q.request)).await,
            Ok(true)
        ) {
            return expired_page();
        }
        return issue_code(&s, &ctx.user_id, &ctx.pending, now).await;
    }
    let describe = |name: &str| {
        let d = s
            .config
            .known_scope(name)
            .map(|i| i.description)
            .unwrap_or(name);
        (name.to_owned(), d.to_owned())
    };
    let new_scopes = ctx
        .already
        .missing(&requested)
        .iter()
        .map(describe)
        .collect();
    let granted = if localhost_only(&ctx.client) {
        Vec::new()
    } else {
        requested
            .iter()
            .filter(|x| ctx.already.contains(x))
            .map(describe)
            .collect()
    };
    let username = match s.store.user_by_id(&ctx.user_id).await {
        Ok(u) => u.map(|u| u.username).unwrap_or_default(),
        Err(e) => return server_error_page(e),
    };
    let redirect_host = url::Url::parse(&ctx.pending.redirect_uri)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(str::to_owned)
                .or_else(|| Some(format!("{}:", u.scheme())))
        })
        .unwrap_or_default();
    page(
        StatusCode::OK,
        &pages::Consent {
            client_name: &ctx.client.display_name(),
            client_host: ctx.client.id_host(),
            redirect_host,
            username: &username,
            localhost_only: localhost_only(&ctx.client),
            new_scopes,
            granted,
            request_id: &q.request,
            csrf: &ctx.session.row.csrf,
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct ConsentForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

pub(super) async fn consent(
    State(s): State<Arc<AuthServer>>,
    headers: HeaderMap,
    AxumForm(f): AxumForm<ConsentForm>,
) -> Response {
    let now = now();
    let ctx = match consent_context(&s, &headers, &f.request, now).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !csrf_ok(&ctx.session, &f.csrf) {
        return csrf_page();
    }
    if !matches!(
        s.store.take_auth_request(&secret::hash(&f.request)).await,
        Ok(true)
    ) {
        return expired_page();
    }
    let p = &ctx.pending;
    if f.decision != "approve" {
        let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied access");
        return redirect_error(&s, &p.redirect_uri, p.state.as_deref(), &e);
    }
    let requested = ScopeSet::parse(&p.scopes).unwrap_or_default();
    let union = ScopeSet::parse(&format!("{} {}", ctx.already, requested)).unwrap_or(requested);
    if let Err(e) = s
        .store
        .save_consent(&ctx.user_id, &ctx.client.id, &union.to_string(), now)
        .await
    {
        return server_error_page(e);
    }
    issue_code(&s, &ctx.user_id, p, now).await
}

async fn issue_code(s: &AuthServer, user_id: &str, p: &Pending, now: i64) -> Response {
    let (Some(grant_id), Some(code)) = (secret::generate(&s.rng), secret::generate(&s.rng)) else {
        return server_error_page("random source failed");
    };
    let grant = Grant {
        id: grant_id.clone(),
        user_id: user_id.to_owned(),
        client_id: p.client_id.clone(),
        scopes: p.scopes.clone(),
        resource: p.resource.clone(),
        created_at: now,
        expires_at: now + s.config.refresh_absolute_ttl,
        revoked_at: None,
    };
    let code_hash = secret::hash(&code);
    let new_code = NewCode {
        code_hash: &code_hash,
        grant_id: &grant_id,
        // Empty when the request left it out: the token request may then leave it out too
        // (OAuth 2.1 section 4.1.3).
        redirect_uri: if p.redirect_given {
            &p.redirect_uri
        } else {
            ""
        },
        code_challenge: &p.code_challenge,
        expires_at: now + s.config.code_ttl,
    };
    if let Err(e) = s.store.create_grant_with_code(&grant, &new_code).await {
        return server_error_page(e);
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(st) = &p.state {
        params.push(("state", st));
    }
    params.push(("iss", &s.config.issuer));
    redirect_to(&p.redirect_uri, &params)
}

// ---------- users ----------

fn argon2() -> Argon2<'static> {
    // Argon2id with the library's defaults (19 MiB, 2 passes, 1 lane): OWASP's baseline.
    Argon2::default()
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to verify against when the user does not exist, so timing does not reveal
/// which usernames are real.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password_blocking("not a real password", &SystemRandom::new()).unwrap_or_default()
    })
}

/// Hashes a password off the async threads (Argon2id takes tens of milliseconds).
pub(super) async fn hash_password(password: &str, rng: &SystemRandom) -> Result<String, String> {
    let password = password.to_owned();
    let rng = rng.clone();
    tokio::task::spawn_blocking(move || hash_password_blocking(&password, &rng))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| "password hashing failed".to_owned())
}

/// The rule every new password meets.
pub(super) fn valid_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 12 {
        return Err("the password must have at least 12 characters".to_owned());
    }
    Ok(())
}

fn hash_password_blocking(password: &str, rng: &SystemRandom) -> Option<String> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).ok()?;
    let salt = SaltString::encode_b64(&salt).ok()?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

pub(super) fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// A new account's id: random, `u_` and 16 letters and digits.
pub(super) fn new_user_id(rng: &SystemRandom) -> Option<String> {
    let mut id = [0u8; 12];
    rng.fill(&mut id).ok()?;
    Some(format!("u_{}", B64.encode(id).replace(['+', '/'], "x")))
}

/// Creates a local account with an Argon2id password hash.
pub async fn create_user(
    store: &Store,
    rng: &SystemRandom,
    username: &str,
    password: &str,
    is_admin: bool,
) -> Result<(), String> {
    if !valid_username(username) {
        return Err(format!(
            "username {username:?} is not valid: use 1 to 64 letters, digits and . _ @ -"
        ));
    }
    valid_password(password)?;
    let id = new_user_id(rng).ok_or_else(|| "random source failed".to_owned())?;
    let hash = hash_password(password, rng).await?;
    let user = User {
        id,
        username: username.to_owned(),
        password_hash: hash,
        is_admin,
        disabled: false,
    };
    match store.create_user(&user, now()).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("a user named {username:?} already exists")),
        Err(e) => Err(e.to_string()),
    }
}

// ---------- first-admin setup ----------

#[derive(Debug, Deserialize)]
pub(super) struct SetupQuery {
    #[serde(default)]
    token: String,
}

fn setup_token_ok(s: &AuthServer, token: &str) -> bool {
    s.setup_token
        .lock()
        .ok()
        .and_then(|t| t.clone())
        .is_some_and(|h| secret::constant_time_eq(h.as_bytes(), secret::hash(token).as_bytes()))
}

fn setup_gone() -> Response {
    pages::error(
        StatusCode::NOT_FOUND,
        "This setup link is not valid",
        "The admin account already exists, or the link is wrong.",
        "Use the link printed in the server log at first start, or create users with the command line.",
    )
}

pub(super) async fn setup_page(
    State(s): State<Arc<AuthServer>>,
    axum::extract::Query(q): axum::extract::Query<SetupQuery>,
) -> Response {
    if !setup_token_ok(&s, &q.token) {
        return setup_gone();
    }
    page(
        StatusCode::OK,
        &pages::Setup {
            token: &q.token,
            username: "admin",
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn setup(
    State(s): State<Arc<AuthServer>>,
    AxumForm(f): AxumForm<SetupForm>,
) -> Response {
    if !setup_token_ok(&s, &f.token) {
        return setup_gone();
    }
    if let Err(e) = create_user(&s.store, &s.rng, &f.username, &f.password, true).await {
        return page(
            StatusCode::BAD_REQUEST,
            &pages::Setup {
                token: &f.token,
                username: &f.username,
                error: Some(e),
            },
        );
    }
    if let Ok(mut t) = s.setup_token.lock() {
        *t = None;
    }
    tracing::info!(user = %f.username, "admin account created through the setup link");
    pages::notice(
        "Admin account created",
        "You can now sign in from any MCP client you connect to this server.",
        "This setup link no longer works.",
    )
}
