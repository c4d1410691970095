//! Server-rendered pages (askama templates, escaped, checked at compile time) and the
//! security headers every page carries: no framing, no scripts, nothing cached.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A 303 to `to` (a path here, or a URL elsewhere), not cached, and sending no referrer
/// (the URL may carry a code or a state).
pub(super) fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct Login<'a> {
    pub client_name: &'a str,
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    /// Offer "Create account" (self sign-up is on).
    pub signup: bool,
    /// The upstream provider's name, for its "Sign in with …" button.
    pub upstream: Option<&'a str>,
    /// Show the username and password form.
    pub password: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub(super) struct Consent<'a> {
    pub client_name: &'a str,
    /// The host of a metadata-document client id; `None` for a registered client.
    pub client_host: Option<String>,
    pub redirect_host: String,
    pub username: &'a str,
    pub localhost_only: bool,
    /// (scope, description) pairs not consented to before.
    pub new_scopes: Vec<(String, String)>,
    pub granted: Vec<(String, String)>,
    pub request_id: &'a str,
    pub csrf: &'a str,
}

#[derive(Template)]
#[template(path = "account_login.html")]
pub(super) struct AccountLogin<'a> {
    pub csrf: &'a str,
    pub username: &'a str,
    pub upstream: Option<&'a str>,
    pub password: bool,
    pub error: Option<String>,
}

/// One connected application on the account page.
pub(super) struct AppView {
    pub client_id: String,
    pub name: String,
    pub host: String,
    /// What the host is (a document's host, or where the client sends people back).
    pub host_note: &'static str,
    /// (scope, description) pairs.
    pub scopes: Vec<(String, String)>,
    pub first: String,
    pub last: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub(super) struct Account<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
    pub apps: Vec<AppView>,
    /// The account has a password (it does not when it signs in upstream only).
    pub has_password: bool,
    /// The upstream provider's name, when upstream sign-in is on.
    pub upstream: Option<&'a str>,
    /// The account is linked to an identity at that provider.
    pub upstream_linked: bool,
    pub notice: Option<&'a str>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(super) struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub hint: &'a str,
    /// A success notice rather than an error.
    pub done: bool,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub(super) struct Setup<'a> {
    pub token: &'a str,
    pub username: &'a str,
    pub error: Option<String>,
}

/// A rendered page with the headers that keep it from being framed, scripted or cached.
pub(super) fn page(status: StatusCode, template: &impl Template) -> Response {
    let html = match template.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response();
        }
    };
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// An error page: the request is not redirected anywhere.
pub(super) fn error(status: StatusCode, title: &str, message: &str, hint: &str) -> Response {
    page(
        status,
        &ErrorPage {
            title,
            message,
            hint,
            done: false,
        },
    )
}

/// A page saying a step succeeded.
pub(super) fn notice(title: &str, message: &str, hint: &str) -> Response {
    page(
        StatusCode::OK,
        &ErrorPage {
            title,
            message,
            hint,
            done: true,
        },
    )
}

pub(super) async fn style() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        include_str!("../../templates/style.css"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "password.html")]
pub(super) struct PasswordLink<'a> {
    pub token: &'a str,
    pub username: &'a str,
    /// An invitation (creates the account) rather than a reset.
    pub invite: bool,
    pub error: Option<String>,
}
