//! The resource guard: turns the `Authorization` header of an MCP request into a
//! [`Principal`], or into the challenge that tells an OAuth client how to get a token.
//!
//! Verification needs no I/O on the request path: the public keys and the list of revoked
//! grants are in memory. The embedded authorization server updates both the moment it
//! changes them, and a background poll of the store (every [`REVOCATION_POLL`]) carries
//! revocations made by other instances, so a revoked grant stops working within seconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use portcullis_oauth::ScopeSet;
use portcullis_oauth::jwt::{self, Expectation, TokenError, VerifyingKey};
use portcullis_store::{KeyRow, Store};

use crate::Principal;

/// Where the protected resource metadata lives (RFC 9728), before path insertion.
pub const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

/// How often the store is asked for grants revoked elsewhere.
pub const REVOCATION_POLL: Duration = Duration::from_secs(2);
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
const CACHE_MAX: usize = 10_000;

/// The keys that may have signed a valid token: the active key and retired keys whose
/// tokens have not all expired yet. Shared by the authorization server (which rotates
/// them) and the guard (which reads them).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: RwLock<Vec<VerifyingKey>>,
}

impl KeySet {
    pub fn replace(&self, keys: Vec<VerifyingKey>) {
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
    }

    /// The public halves of the stored keys that may have signed a token still valid at
    /// `now`: the active ones and those retired less than a token lifetime ago.
    pub fn usable(rows: &[KeyRow], now: i64, access_ttl: i64) -> Vec<VerifyingKey> {
        let horizon = now - access_ttl - LEEWAY_SECS;
        rows.iter()
            .filter(|r| r.retired_at.is_none_or(|at| at >= horizon))
            .map(|r| VerifyingKey {
                kid: r.kid.clone(),
                public: r.public_key.clone(),
            })
            .collect()
    }

    pub fn all(&self) -> Vec<VerifyingKey> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    pub fn verify(
        &self,
        token: &str,
        expected: &Expectation<'_>,
    ) -> Result<jwt::AccessClaims, TokenError> {
        let keys = self.keys.read().map_err(|_| TokenError::UnknownKey)?;
        jwt::verify(token, |kid| keys.iter().find(|k| k.kid == kid), expected)
    }
}

/// Grants revoked, with when; entries leave when their grant could no longer have live
/// access tokens.
#[derive(Debug, Default)]
pub struct RevocationList {
    revoked: RwLock<HashMap<String, i64>>,
}

impl RevocationList {
    pub fn insert(&self, grant_id: &str, at: i64) {
        if let Ok(mut r) = self.revoked.write() {
            r.insert(grant_id.to_owned(), at);
        }
    }

    pub fn contains(&self, grant_id: &str) -> bool {
        // A poisoned lock means a writer panicked mid-update: fail closed.
        self.revoked
            .read()
            .map(|r| r.contains_key(grant_id))
            .unwrap_or(true)
    }

    fn prune(&self, older_than: i64) {
        if let Ok(mut r) = self.revoked.write() {
            r.retain(|_, at| *at >= older_than);
        }
    }
}

/// Why a request was not let in, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub status: u16,
    /// The `WWW-Authenticate` header value.
    pub www_authenticate: String,
    /// A JSON body saying the same for humans.
    pub body: String,
}

/// Settings of the guard for one protected resource.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The MCP endpoint's public URL: the `resource` and the required `aud`.
    pub resource: String,
    /// Issuer whose tokens are accepted.
    pub issuer: String,
    /// Absolute URL of the protected resource metadata document.
    pub metadata_url: String,
    /// Scopes every MCP request needs.
    pub required_scopes: ScopeSet,
    /// Scopes a 401 challenge asks clients to request: the baseline a new login gets.
    pub challenge_scopes: ScopeSet,
    /// Scopes listed in the protected resource metadata.
    pub scopes_supported: Vec<String>,
    /// Lifetime of access tokens, which bounds how long a revocation must be remembered.
    pub access_ttl: i64,
    /// Broader scopes that satisfy narrower ones: `(broad, narrow)`, e.g.
    /// `("notes:write", "notes:read")`. A token holding the broad one acts as holding both.
    pub implied_scopes: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Cached {
    /// The whole token: a hit must match it byte for byte, not only its signature.
    token: Box<str>,
    principal: Arc<Principal>,
    exp: i64,
}

/// Verifies bearer tokens for one resource.
#[derive(Debug)]
pub struct Guard {
    pub config: GuardConfig,
    pub keys: Arc<KeySet>,
    pub revoked: Arc<RevocationList>,
    /// Verified tokens keyed by their signature part, bounded by [`CACHE_MAX`].
    cache: RwLock<HashMap<Box<str>, Cached>>,
    /// Where signing keys are reread from when a token names an unknown one.
    key_source: OnceLock<Store>,
    /// When that last happened (Unix seconds).
    last_key_reload: AtomicI64,
    /// Set in external mode: tokens come from this authorization server instead.
    external: Option<Arc<crate::external::External>>,
}

impl Guard {
    pub fn new(config: GuardConfig, keys: Arc<KeySet>, revoked: Arc<RevocationList>) -> Self {
        Self {
            config,
            keys,
            revoked,
            cache: RwLock::new(HashMap::new()),
            key_source: OnceLock::new(),
            last_key_reload: AtomicI64::new(0),
            external: None,
        }
    }

    /// A guard for tokens that an external authorization server issues (see
    /// [`crate::external`]); `config.issuer` should be that server's issuer.
    pub fn external(config: GuardConfig, external: Arc<crate::external::External>) -> Self {
        Self {
            external: Some(external),
            ..Self::new(config, Arc::default(), Arc::default())
        }
    }

    /// Whether this guard can check tokens now: signing keys loaded (its own, or the
    /// external server's), or an introspection endpoint to ask.
    pub fn ready(&self) -> bool {
        match &self.external {
            Some(external) => external.ready(),
            None => !self.keys.all().is_empty(),
        }
    }

    /// The routes that serve the protected resource metadata (RFC 9728): at the root
    /// well-known path, and with the resource's path inserted, where clients look first.
    pub fn metadata_routes(self: &Arc<Self>) -> axum::Router {
        let path = url::Url::parse(&self.config.resource)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let inserted = format!("{PRM_PATH}{path}");
        let me = self.clone();
        let serve = move || {
            let doc = me.resource_metadata().to_string();
            async move {
                (
                    [
                        (axum::http::header::CONTENT_TYPE, "application/json"),
                        (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    doc,
                )
            }
        };
        axum::Router::new()
            .route(PRM_PATH, axum::routing::get(serve.clone()))
            .route(&inserted, axum::routing::get(serve))
    }

    /// The protected resource metadata document (RFC 9728).
    pub fn resource_metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.config.resource,
            "authorization_servers": [self.config.issuer],
            "scopes_supported": self.config.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "Portcullis MCP server",
        })
    }

    fn challenge(&self, status: u16, error: Option<(&str, &str)>, scope: &ScopeSet) -> Challenge {
        let mut h = format!("Bearer resource_metadata=\"{}\"", self.config.metadata_url);
        if !scope.is_empty() {
            h.push_str(&format!(", scope=\"{scope}\""));
        }
        let body = match error {
            Some((code, description)) => {
                h.push_str(&format!(
                    ", error=\"{code}\", error_description=\"{}\"",
                    description.replace('"', "'")
                ));
                serde_json::json!({"error": code, "error_description": description})
            }
            None => serde_json::json!({
                "error": "unauthorized",
                "error_description": "this MCP server needs an OAuth access token: follow resource_metadata in WWW-Authenticate to get one"
            }),
        };
        Challenge {
            status,
            www_authenticate: h,
            body: body.to_string(),
        }
    }

    /// Checks one request: the `Authorization` header value (if any), whether the query
    /// string carried a token, and the time. A token signed by a key this instance has not
    /// loaded (another instance has just rotated) makes it read the keys from the store once
    /// before answering; such reloads happen at most once a second.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        token_in_query: bool,
        now: i64,
    ) -> Result<Arc<Principal>, Challenge> {
        let token = self.bearer(authorization, token_in_query)?;
        if let Some(external) = &self.external {
            return self.authenticate_external(external, token, now).await;
        }
        let mut verified = self.verify(token, now);
        if matches!(verified, Err(GuardError::Token(TokenError::UnknownKey)))
            && self.reload_keys(now).await
        {
            verified = self.verify(token, now);
        }
        self.admit(verified)
    }

    async fn authenticate_external(
        &self,
        external: &crate::external::External,
        token: &str,
        now: i64,
    ) -> Result<Arc<Principal>, Challenge> {
        // A cached entry past its time is asked about again (an introspection answer is
        // kept for less than the token lives).
        if let Some(Ok(hit)) = self.cached(token, now) {
            return self.admit(Ok(hit));
        }
        let verified = match external.verify(token, now).await {
            Ok((principal, keep_until)) => {
                let principal = Arc::new(Principal {
                    scopes: self.effective_scopes(principal.scopes.clone()),
                    ..(*principal).clone()
                });
                self.remember(token, &principal, keep_until, now);
                Ok(principal)
            }
            Err(e) if e.is_unavailable() => {
                return Err(self.challenge(
                    503,
                    Some(("temporarily_unavailable", &e.to_string())),
                    &self.config.challenge_scopes,
                ));
            }
            Err(e) => Err(GuardError::External(e)),
        };
        self.admit(verified)
    }

    /// Lets the guard read signing keys it has not seen from `store` (see [`Self::authenticate`]).
    pub fn reload_keys_from(&self, store: Store) {
        let _ = self.key_source.set(store);
    }

    async fn reload_keys(&self, now: i64) -> bool {
        let Some(store) = self.key_source.get() else {
            return false;
        };
        let last = self.last_key_reload.load(Ordering::Relaxed);
        if last >= now
            || self
                .last_key_reload
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        match store.signing_keys().await {
            Ok(rows) => {
                self.keys
                    .replace(KeySet::usable(&rows, now, self.config.access_ttl));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reload signing keys");
                false
            }
        }
    }

    /// The bearer token of a request, or the challenge for its absence or misplacement.
    fn bearer<'a>(
        &self,
        authorization: Option<&'a [u8]>,
        token_in_query: bool,
    ) -> Result<&'a str, Challenge> {
        let ask = &self.config.challenge_scopes;
        if token_in_query {
            return Err(self.challenge(
                400,
                Some((
                    "invalid_request",
                    "access tokens are accepted only in the Authorization header, never in the URL",
                )),
                ask,
            ));
        }
        let Some(value) = authorization else {
            return Err(self.challenge(401, None, ask));
        };
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        token.ok_or_else(|| {
            self.challenge(
                401,
                Some((
                    "invalid_request",
                    "use the Bearer scheme: Authorization: Bearer <access token>",
                )),
                ask,
            )
        })
    }

    /// The answer for a verified (or refused) token: the principal if it holds the scopes
    /// every request needs, else the challenge.
    fn admit(
        &self,
        verified: Result<Arc<Principal>, GuardError>,
    ) -> Result<Arc<Principal>, Challenge> {
        let required = &self.config.required_scopes;
        let ask = &self.config.challenge_scopes;
        let principal = verified
            .map_err(|e| self.challenge(401, Some(("invalid_token", &e.to_string())), ask))?;
        if !principal.scopes.satisfies(required) {
            let missing = principal.scopes.missing(required);
            return Err(self.challenge(
                403,
                Some((
                    "insufficient_scope",
                    &format!("this request needs the scope(s) {missing}"),
                )),
                required,
            ));
        }
        Ok(principal)
    }

    /// Step-up for one tool call: `Ok` when the principal holds every scope the call needs
    /// (the base scopes and the tool's), else the 403 that names all of them, so a client
    /// can ask for exactly that in one go (it unions them with what it holds).
    pub fn step_up(
        &self,
        principal: &Principal,
        tool: &str,
        tool_scopes: &ScopeSet,
    ) -> Result<(), Challenge> {
        if principal.scopes.satisfies(tool_scopes)
            && principal.scopes.satisfies(&self.config.required_scopes)
        {
            return Ok(());
        }
        let all = ScopeSet::parse(&format!("{} {tool_scopes}", self.config.required_scopes))
            .unwrap_or_default();
        let missing = principal.scopes.missing(&all);
        Err(self.challenge(
            403,
            Some(("insufficient_scope", &format!("the tool {tool} needs the scope(s) {missing}; authorize again with scope \"{all}\""))),
            &all,
        ))
    }

    /// Verifies a token: cached answers are reused until the token's `exp`, and every
    /// answer is checked against the revocation list.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<Principal>, GuardError> {
        if let Some(hit) = self.cached(token, now) {
            return hit;
        }
        let claims = self.keys.verify(
            token,
            &Expectation {
                issuer: &self.config.issuer,
                audience: &self.config.resource,
                now,
                leeway: LEEWAY_SECS,
            },
        )?;
        let principal = Arc::new(Principal {
            user: Some(claims.sub),
            client_id: Some(claims.client_id),
            scopes: self.effective_scopes(
                ScopeSet::parse(&claims.scope)
                    .map_err(|_| GuardError::Token(TokenError::Malformed))?,
            ),
            grant_id: Some(claims.grant_id),
        });
        self.remember(token, &principal, claims.exp, now);
        self.not_revoked(principal)
    }

    /// A token verified before, while it may still be used: keyed by the signature part
    /// (signatures differ whenever the signed bytes do), and a hit still compares the whole
    /// token, so a tampered payload never matches.
    fn cached(&self, token: &str, now: i64) -> Option<Result<Arc<Principal>, GuardError>> {
        let key = token.rsplit('.').next().unwrap_or(token);
        let (principal, exp) = self.cache.read().ok().and_then(|c| {
            c.get(key)
                .filter(|c| &*c.token == token)
                .map(|c| (c.principal.clone(), c.exp))
        })?;
        if exp + LEEWAY_SECS <= now {
            return Some(Err(GuardError::Token(TokenError::Expired)));
        }
        Some(self.not_revoked(principal))
    }

    /// Keeps a verified token's principal until `exp` (bounded by [`CACHE_MAX`] entries).
    fn remember(&self, token: &str, principal: &Arc<Principal>, exp: i64, now: i64) {
        let key = token.rsplit('.').next().unwrap_or(token);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.retain(|_, c| c.exp + LEEWAY_SECS > now);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(
                key.into(),
                Cached {
                    token: token.into(),
                    principal: principal.clone(),
                    exp,
                },
            );
        }
    }

    /// The scopes a token acts with: what it holds, plus what those imply.
    fn effective_scopes(&self, held: ScopeSet) -> ScopeSet {
        let implied: Vec<&str> = self
            .config
            .implied_scopes
            .iter()
            .filter(|(broad, narrow)| held.contains(broad) && !held.contains(narrow))
            .map(|(_, narrow)| narrow.as_str())
            .collect();
        if implied.is_empty() {
            return held;
        }
        ScopeSet::parse(&format!("{held} {}", implied.join(" "))).unwrap_or(held)
    }

    fn not_revoked(&self, p: Arc<Principal>) -> Result<Arc<Principal>, GuardError> {
        match &p.grant_id {
            Some(g) if self.revoked.contains(g) => Err(GuardError::Revoked),
            _ => Ok(p),
        }
    }

    /// Keeps the revocation list in step with the store until `stop` resolves.
    pub async fn poll_revocations(self: Arc<Self>, store: Store, clock: fn() -> i64) {
        let mut since = clock() - self.config.access_ttl - LEEWAY_SECS;
        let mut tick = tokio::time::interval(REVOCATION_POLL);
        loop {
            tick.tick().await;
            let now = clock();
            match store.revoked_grants_since(since, now).await {
                Ok(rows) => {
                    for (g, at) in rows {
                        self.revoked.insert(&g, at);
                    }
                    // Ask again with overlap: a revocation committed by another instance
                    // with a slightly older clock must not fall between two polls.
                    since = now - 10;
                    self.revoked
                        .prune(now - self.config.access_ttl - 2 * LEEWAY_SECS);
                }
                Err(e) => tracing::warn!(error = %e, "could not read revoked grants; retrying"),
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the grant behind this access token was revoked; authorize again")]
    Revoked,
    #[error(transparent)]
    External(#[from] crate::external::ExternalError),
}
