//! The embedded OAuth 2.1 authorization server: metadata, the authorization endpoint
//! with its login and consent pages, token, registration, revocation, introspection and
//! JWKS. One file per endpoint; this file holds the state they share and the router.
//!
//! This is the only place where an [`OAuthError`] becomes an HTTP response.

mod account_page;
mod accounts;
mod authorize;
mod cimd;
mod clients;
pub mod crypto;
mod keys;
mod pages;
mod register;
mod revoke;
mod throttle;
mod token;
mod upstream_login;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_oauth::{ErrorCode, OAuthError, ScopeSet};
use portcullis_store::Store;
use ring::rand::SystemRandom;

pub use accounts::{password_link, set_password};
pub use authorize::create_user;
pub use cimd::CimdPolicy;
pub use crypto::MasterKey;

use crate::guard::{Guard, GuardConfig, KeySet, RevocationList};

/// Where each endpoint lives, relative to the issuer.
pub mod paths {
    pub const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
    pub const PRM: &str = crate::guard::PRM_PATH;
    pub const AUTHORIZE: &str = "/oauth/authorize";
    pub const LOGIN: &str = "/oauth/login";
    pub const CONSENT: &str = "/oauth/consent";
    pub const TOKEN: &str = "/oauth/token";
    pub const REGISTER: &str = "/oauth/register";
    pub const REVOKE: &str = "/oauth/revoke";
    pub const INTROSPECT: &str = "/oauth/introspect";
    pub const JWKS: &str = "/oauth/jwks";
    pub const SETUP: &str = "/setup";
    /// One-time links: accept an invitation, or choose a new password.
    pub const PASSWORD: &str = "/oauth/password";
    pub const STYLE: &str = "/oauth/style.css";
    /// The signed-in user's own page: connected applications, password.
    pub const ACCOUNT: &str = "/account";
    pub const ACCOUNT_LOGIN: &str = "/account/login";
    pub const ACCOUNT_LOGOUT: &str = "/account/logout";
    pub const ACCOUNT_REVOKE: &str = "/account/revoke";
    pub const ACCOUNT_PASSWORD: &str = "/account/password";
    pub const ACCOUNT_UNLINK: &str = "/account/unlink";
    /// Sign-in through the upstream identity provider: the button, and its way back.
    pub const UPSTREAM: &str = "/oauth/upstream";
    pub const UPSTREAM_CALLBACK: &str = "/oauth/upstream/callback";
}

/// A scope this server grants, with the words the consent page uses for it.
#[derive(Debug, Clone)]
pub struct ScopeInfo {
    pub name: &'static str,
    pub description: &'static str,
}

/// The scope every MCP request needs.
pub const BASE_SCOPE: ScopeInfo = ScopeInfo {
    name: "mcp",
    description: "Connect to this server and use its tools as you",
};

/// The notes toolset's scopes.
pub const NOTES_READ: ScopeInfo = ScopeInfo {
    name: "notes:read",
    description: "Read and search your notes",
};
pub const NOTES_WRITE: ScopeInfo = ScopeInfo {
    name: "notes:write",
    description: "Create, change and delete your notes",
};

/// Settings of the embedded authorization server.
#[derive(Debug, Clone)]
pub struct AsConfig {
    /// The issuer: the public URL's origin, e.g. `https://mcp.example.com`.
    pub issuer: String,
    /// The protected resource: the MCP endpoint's public URL.
    pub resource: String,
    /// Path of the MCP endpoint (for the path-inserted metadata URL).
    pub mcp_path: String,
    pub access_ttl: i64,
    pub refresh_idle_ttl: i64,
    pub refresh_absolute_ttl: i64,
    pub code_ttl: i64,
    /// Seconds in which a retried refresh of the previous token gets the same new pair.
    pub refresh_grace: i64,
    /// Signing keys older than this are replaced at start.
    pub key_rotation: i64,
    pub scopes: Vec<ScopeInfo>,
    /// What a login gets when it asks for no scope this server knows, and what a 401
    /// challenge asks for: the low-risk baseline. More is asked for by step-up (403).
    pub default_scopes: Vec<&'static str>,
    /// Broader scopes that satisfy narrower ones, as `(broad, narrow)`.
    pub implied_scopes: Vec<(&'static str, &'static str)>,
    pub cimd: CimdPolicy,
    /// Peers (addresses or ranges) whose `X-Forwarded-For` names the real client address.
    pub trusted_proxies: Vec<crate::forwarded::ProxyRange>,
    /// Where the master key is kept when `master_key_env` is not set.
    pub master_key_file: PathBuf,
    pub master_key_env: Option<String>,
    /// First admin account, created on first start when set.
    pub admin_user: String,
    pub admin_password: Option<String>,
    /// Largest registration body accepted, in bytes.
    pub max_registration_bytes: usize,
    /// Registered clients allowed in total.
    pub max_clients: i64,
    /// Anyone may create an account from the sign-in page.
    pub allow_signup: bool,
    /// Sign-in through an upstream identity provider (federated login), if any.
    pub upstream: Option<crate::upstream::UpstreamConfig>,
    /// Whether local accounts may sign in with a password (off: upstream sign-in only).
    pub password_login: bool,
}

impl AsConfig {
    /// Defaults for a server whose MCP endpoint is `resource` (its origin is the issuer).
    pub fn for_resource(resource: &str) -> Result<Self, String> {
        let url = url::Url::parse(resource)
            .map_err(|e| format!("public URL {resource:?} is not a URL: {e}"))?;
        let issuer = url.origin().ascii_serialization();
        if issuer == "null" {
            return Err(format!(
                "public URL {resource:?} must be http:// or https://"
            ));
        }
        Ok(Self {
            issuer,
            resource: resource.to_owned(),
            mcp_path: url.path().to_owned(),
            access_ttl: 3600,
            refresh_idle_ttl: 30 * 86_400,
            refresh_absolute_ttl: 90 * 86_400,
            code_ttl: 60,
            refresh_grace: 45,
            key_rotation: 90 * 86_400,
            scopes: vec![BASE_SCOPE, NOTES_READ, NOTES_WRITE],
            default_scopes: vec![BASE_SCOPE.name, NOTES_READ.name],
            // Whoever may change notes may read them.
            implied_scopes: vec![(NOTES_WRITE.name, NOTES_READ.name)],
            cimd: CimdPolicy::default(),
            trusted_proxies: Vec::new(),
            master_key_file: PathBuf::from("portcullis.key"),
            master_key_env: None,
            admin_user: "admin".to_owned(),
            admin_password: None,
            max_registration_bytes: 16 * 1024,
            max_clients: 10_000,
            allow_signup: false,
            upstream: None,
            password_login: true,
        })
    }

    /// What the resource guard checks and asks for: this resource, this issuer, the base
    /// scope on every request, and the baseline scopes in challenges and in the metadata
    /// (broader scopes are asked for by step-up challenges).
    pub fn guard_config(&self) -> GuardConfig {
        GuardConfig {
            resource: self.resource.clone(),
            issuer: self.issuer.clone(),
            metadata_url: self.resource_metadata_url(),
            required_scopes: ScopeSet::parse(BASE_SCOPE.name).unwrap_or_default(),
            challenge_scopes: ScopeSet::parse(&self.default_scopes.join(" ")).unwrap_or_default(),
            scopes_supported: self
                .default_scopes
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            access_ttl: self.access_ttl,
            implied_scopes: self
                .implied_scopes
                .iter()
                .map(|(b, n)| ((*b).to_owned(), (*n).to_owned()))
                .collect(),
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The path-inserted protected resource metadata URL (RFC 9728 section 3.1).
    pub fn resource_metadata_url(&self) -> String {
        let p = self.mcp_path.trim_end_matches('/');
        self.url(&format!("{}{p}", paths::PRM))
    }

    fn known_scope(&self, s: &str) -> Option<&ScopeInfo> {
        self.scopes.iter().find(|i| i.name == s)
    }

    /// The scopes to grant for a request: the known ones it asked for, or the base scope
    /// when it asked for none we know. Unknown scopes (`openid`, `offline_access`, another
    /// server's) are dropped rather than failing the login; the token says what it holds.
    fn grantable(&self, requested: &ScopeSet) -> ScopeSet {
        let known: Vec<&str> = requested
            .iter()
            .filter(|s| self.known_scope(s).is_some())
            .collect();
        // The base scope always comes along: without it the token cannot reach the server.
        let names = if known.is_empty() {
            self.default_scopes.join(" ")
        } else {
            format!("{} {}", BASE_SCOPE.name, known.join(" "))
        };
        ScopeSet::parse(&names).unwrap_or_default()
    }
}

/// The current time in Unix seconds: the one clock read of the authorization server.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The authorization server's shared state.
#[derive(Debug)]
pub struct AuthServer {
    pub config: AsConfig,
    store: Store,
    rng: SystemRandom,
    keys: keys::KeyRing,
    guard: Arc<Guard>,
    cimd: cimd::CimdFetcher,
    throttle: throttle::Throttle,
    upstream: Option<crate::upstream::Upstream>,
    /// Hash of the one-time setup token, while no account exists.
    setup_token: Mutex<Option<String>>,
}

/// What starting the authorization server prints for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    Ready,
    AdminCreated(String),
    /// No account exists: this one-time link creates the first admin.
    SetupLink(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    MasterKey(#[from] crypto::MasterKeyError),
    #[error(transparent)]
    Store(#[from] portcullis_store::StoreError),
    #[error("{0}")]
    Keys(String),
}

impl AuthServer {
    /// Loads (or creates) keys and secrets, creates the first admin account if asked, and
    /// returns the server with the guard that verifies its tokens.
    pub async fn start(
        config: AsConfig,
        store: Store,
    ) -> Result<(Arc<Self>, Bootstrap), StartError> {
        let rng = SystemRandom::new();
        let (master, generated) = MasterKey::load(
            config.master_key_env.as_deref(),
            &config.master_key_file,
            &rng,
        )?;
        if generated {
            tracing::warn!(
                file = %config.master_key_file.display(),
                "generated a new master key: it encrypts the signing keys in the database; back it up and keep it private"
            );
        }
        let key_set = Arc::new(KeySet::default());
        let keys =
            keys::KeyRing::load(master, &store, &rng, key_set.clone(), &config, now()).await?;
        let guard = Arc::new(Guard::new(
            config.guard_config(),
            key_set,
            Arc::new(RevocationList::default()),
        ));
        guard.reload_keys_from(store.clone());
        let cimd = cimd::CimdFetcher::new(config.cimd.clone()).map_err(StartError::Keys)?;
        let upstream = config
            .upstream
            .clone()
            .map(crate::upstream::Upstream::new)
            .transpose()
            .map_err(StartError::Keys)?;
        let server = Arc::new(Self {
            config,
            store,
            rng,
            keys,
            guard,
            cimd,
            throttle: throttle::Throttle::default(),
            upstream,
            setup_token: Mutex::new(None),
        });
        let boot = server.bootstrap_admin().await?;
        Ok((server, boot))
    }

    /// Replaces the signing key; the previous key stays in the JWKS until its tokens expire.
    pub async fn rotate_signing_key(&self) -> Result<(), StartError> {
        self.keys
            .rotate(&self.store, &self.rng, &self.config, now())
            .await
    }

    /// Catches up with signing keys rotated by another instance on the same database: they
    /// are published, and the newest active one signs from now on. The upkeep does this
    /// every [`crate::guard::REVOCATION_POLL`].
    pub async fn sync_keys(&self) -> Result<(), StartError> {
        self.keys.sync(&self.store, &self.config, now()).await
    }

    pub fn guard(&self) -> Arc<Guard> {
        self.guard.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The key that seals MRTR `requestState` values: shared through the database (sealed
    /// under the master key), so a state made by one instance opens on any other.
    pub fn request_state_key(&self) -> Arc<MasterKey> {
        self.keys.request_state_key()
    }

    /// Background upkeep: the revocation poll, and hourly expiry of unused registrations
    /// and of spent codes, sessions and refresh tokens.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        tokio::spawn(self.guard.clone().poll_revocations(self.store.clone(), now));
        // Keys rotated by another instance are published and signed with here within a
        // poll; a token signed by one this instance has not seen yet triggers a reload.
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::guard::REVOCATION_POLL);
            loop {
                tick.tick().await;
                if let Err(e) = me.sync_keys().await {
                    tracing::warn!(error = %e, "could not read signing keys; retrying");
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let now = now();
                if let Err(e) = me
                    .store
                    .expire_clients(now - 86_400, now - 90 * 86_400)
                    .await
                {
                    tracing::warn!(error = %e, "could not expire unused client registrations");
                }
                if let Err(e) = me.store.purge_expired(now).await {
                    tracing::warn!(error = %e, "could not purge expired authorization state");
                }
                if let Err(e) = me.keys.upkeep(&me.store, &me.rng, &me.config, now).await {
                    tracing::warn!(error = %e, "could not rotate or prune signing keys");
                }
            }
        });
    }

    async fn bootstrap_admin(&self) -> Result<Bootstrap, StartError> {
        if self.store.count_users().await? > 0 {
            return Ok(Bootstrap::Ready);
        }
        if let Some(password) = &self.config.admin_password {
            let name = self.config.admin_user.clone();
            if let Err(e) =
                authorize::create_user(&self.store, &self.rng, &name, password, true).await
            {
                // Instances starting together on one new database race to create the
                // admin: the one that loses finds it there, which is what it wanted.
                if self.store.user_by_name(&name).await?.is_some() {
                    return Ok(Bootstrap::Ready);
                }
                return Err(StartError::Keys(e));
            }
            return Ok(Bootstrap::AdminCreated(name));
        }
        // Without password sign-in, a setup link would make an account nobody can open:
        // people come in through the upstream provider instead.
        if !self.config.password_login {
            return Ok(Bootstrap::Ready);
        }
        let token = portcullis_oauth::secret::generate(&self.rng)
            .ok_or_else(|| StartError::Keys("random source failed".into()))?;
        if let Ok(mut t) = self.setup_token.lock() {
            *t = Some(portcullis_oauth::secret::hash(&token));
        }
        Ok(Bootstrap::SetupLink(format!(
            "{}{}?token={token}",
            self.config.issuer,
            paths::SETUP
        )))
    }

    /// The routes of the authorization server and of the protected resource metadata.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(paths::AS_METADATA, get(metadata))
            .route(paths::JWKS, get(jwks))
            .route(paths::AUTHORIZE, get(authorize::authorize))
            .route(paths::LOGIN, post(authorize::login))
            .route(
                paths::CONSENT,
                get(authorize::consent_page).post(authorize::consent),
            )
            .route(
                paths::SETUP,
                get(authorize::setup_page).post(authorize::setup),
            )
            .route(
                paths::PASSWORD,
                get(accounts::password_page).post(accounts::password),
            )
            .route(paths::ACCOUNT, get(account_page::show))
            .route(paths::ACCOUNT_LOGIN, post(account_page::login))
            .route(paths::ACCOUNT_LOGOUT, post(account_page::logout))
            .route(paths::ACCOUNT_REVOKE, post(account_page::revoke))
            .route(paths::ACCOUNT_PASSWORD, post(account_page::password))
            .route(paths::ACCOUNT_UNLINK, post(account_page::unlink))
            .route(paths::UPSTREAM, post(upstream_login::start))
            .route(paths::UPSTREAM_CALLBACK, get(upstream_login::callback))
            .route(paths::STYLE, get(pages::style))
            .route(paths::TOKEN, post(token::token))
            .route(paths::REGISTER, post(register::register))
            .route(paths::REVOKE, post(revoke::revoke))
            .route(paths::INTROSPECT, post(revoke::introspect))
            .with_state(self.clone())
            .merge(self.guard.metadata_routes())
    }

    /// Reads the upstream provider's metadata once, so a wrong setting shows in the log at
    /// start rather than at someone's first sign-in. An unreachable provider only makes
    /// sign-ins through it fail while it is down.
    pub async fn check_upstream(&self) {
        let Some(u) = &self.upstream else { return };
        let redirect = format!("{}{}", self.config.issuer, paths::UPSTREAM_CALLBACK);
        match u.check(now()).await {
            Ok(()) => tracing::info!(
                provider = %u.config.issuer,
                redirect_uri = %redirect,
                "upstream sign-in ready (register this redirect URI at the provider)"
            ),
            Err(e) => tracing::warn!(
                provider = %u.config.issuer,
                error = %e,
                "upstream sign-in is not usable yet; password sign-in and existing tokens are unaffected"
            ),
        }
    }

    /// The issuer upstream identities are linked under, when upstream sign-in is on.
    fn upstream_issuer(&self) -> Option<&str> {
        self.upstream.as_ref().map(|u| u.config.issuer.as_str())
    }

    /// The upstream provider's name on the sign-in buttons, when upstream sign-in is on.
    fn upstream_name(&self) -> Option<&str> {
        self.upstream.as_ref().map(|u| u.config.name.as_str())
    }

    /// The address a request came from, for rate limits: see [`crate::forwarded::client_ip`].
    fn client_ip(&self, peer: Option<&ConnectInfo<SocketAddr>>, headers: &HeaderMap) -> IpAddr {
        crate::forwarded::client_ip(peer.map(|c| c.0), headers, &self.config.trusted_proxies)
    }
}

async fn metadata(axum::extract::State(s): axum::extract::State<Arc<AuthServer>>) -> Response {
    let c = &s.config;
    let mut scopes: Vec<&str> = c.scopes.iter().map(|i| i.name).collect();
    scopes.push("offline_access");
    let body = serde_json::json!({
        "issuer": c.issuer,
        "authorization_endpoint": c.url(paths::AUTHORIZE),
        "token_endpoint": c.url(paths::TOKEN),
        "jwks_uri": c.url(paths::JWKS),
        "registration_endpoint": c.url(paths::REGISTER),
        "revocation_endpoint": c.url(paths::REVOKE),
        "introspection_endpoint": c.url(paths::INTROSPECT),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "resource_parameter_supported": true,
    });
    json_response(StatusCode::OK, &body, "public, max-age=300")
}

async fn jwks(axum::extract::State(s): axum::extract::State<Arc<AuthServer>>) -> Response {
    let keys: Vec<_> = s.guard.keys.all().iter().map(|k| k.to_jwk()).collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "keys": keys }),
        "public, max-age=300",
    )
}

fn json_response(status: StatusCode, body: &serde_json::Value, cache: &'static str) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The answer of a form endpoint: the JSON result, or the OAuth error.
fn reply(result: Result<serde_json::Value, OAuthError>) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, &body, "no-store"),
        Err(e) => oauth_error(&e),
    }
}

/// An OAuth error from the token, registration, revocation or introspection endpoint.
fn oauth_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = json_response(status, &e.to_json(), "no-store");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    resp
}

/// Logs a failure and gives the client the generic server error, or, when the database is
/// unreachable, `temporarily_unavailable` (503, with `Retry-After`) so it tries again.
fn internal<E: std::fmt::Display + 'static>(e: E) -> OAuthError {
    if unavailable(&e) {
        tracing::warn!(error = %e, "database unavailable");
        return OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the authorization server cannot reach its database just now; nothing was changed: retry in a few seconds",
        );
    }
    tracing::error!(error = %e, "authorization server failure");
    OAuthError::server_error()
}

/// Whether `e` is a store error saying the database is unreachable.
fn unavailable<E: 'static>(e: &E) -> bool {
    (e as &dyn std::any::Any)
        .downcast_ref::<portcullis_store::StoreError>()
        .is_some_and(portcullis_store::StoreError::is_unavailable)
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "5";
