//! Tokens from an external authorization server: Portcullis is then only the resource
//! server. The external server is found by discovery (RFC 8414, then OpenID Connect
//! Discovery) and must name itself with exactly the configured issuer. Its tokens are
//! checked one of two ways:
//! - **JWT** (RFC 9068 and what most providers issue): the signature against the provider's
//!   JWKS ([`RemoteKeys`]: kept per its `Cache-Control`, fetched again on an unknown `kid`
//!   at most once per [`JWKS_REFETCH_FLOOR`]), then `iss`, `aud`, `exp`, `nbf`;
//! - **introspection** (RFC 7662, for opaque tokens): the provider is asked, and an active
//!   answer is kept until the token expires or [`INTROSPECTION_CACHE_MAX`] passes, whichever
//!   is first; the cache is bounded.
//!
//! Providers disagree on names, so the audience (`api://portcullis` instead of the URL) and
//! the scope claim (`scp`, as a string or a list) are settings. Every fetch goes through the
//! SSRF fence ([`crate::fetch`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_oauth::ScopeSet;
use portcullis_oauth::jws::{self, JwsError};
use serde_json::{Map, Value};

use crate::Principal;
use crate::fetch::{Fenced, FetchError, FetchPolicy, basic_auth};
use crate::guard::LEEWAY_SECS;
use crate::remote_keys::RemoteKeys;

pub use crate::remote_keys::JWKS_REFETCH_FLOOR;
/// Longest an introspection answer is reused (the token's expiry may cut it shorter).
pub const INTROSPECTION_CACHE_MAX: i64 = 300;
const INTROSPECTION_CACHE_SIZE: usize = 10_000;
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// How the external server's tokens are checked.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Jwt,
    Introspection {
        client_id: String,
        client_secret: String,
    },
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenCheck::Jwt => f.write_str("Jwt"),
            TokenCheck::Introspection { client_id, .. } => f
                .debug_struct("Introspection")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Settings of external mode.
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    /// The external server's issuer, exactly as its metadata states it.
    pub issuer: String,
    /// `aud` values accepted: the resource URL, or what the provider puts there instead.
    pub audiences: Vec<String>,
    /// The claim holding the scopes: `scope` (space-separated) or `scp` (either form).
    pub scope_claim: String,
    pub check: TokenCheck,
    /// Signature algorithms accepted on JWTs.
    pub algorithms: Vec<String>,
    pub fetch: FetchPolicy,
}

impl ExternalConfig {
    pub fn new(issuer: &str, resource: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audiences: vec![resource.to_owned()],
            scope_claim: "scope".to_owned(),
            check: TokenCheck::Jwt,
            algorithms: ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
                .map(str::to_owned)
                .to_vec(),
            fetch: FetchPolicy::default(),
        }
    }
}

/// Why an external token was not accepted; the message goes to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    #[error(transparent)]
    Signature(#[from] JwsError),
    #[error(transparent)]
    Claims(#[from] jws::ClaimsError),
    #[error("the token is not an access token (typ {0:?})")]
    NotAnAccessToken(String),
    #[error("the token says nothing about who it is for (no {0} claim)")]
    NoSubject(&'static str),
    #[error("the token's scopes are not readable")]
    BadScopes,
    #[error("the authorization server says this token is not active; get a new one")]
    Inactive,
    #[error("the authorization server could not be asked about this token just now; retry")]
    Unavailable,
}

impl ExternalError {
    /// Whether a retry may succeed (the provider was unreachable), rather than the token
    /// being bad.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ExternalError::Unavailable)
    }
}

#[derive(Debug, Clone)]
struct Introspected {
    principal: Arc<Principal>,
    keep_until: i64,
}

/// The external authorization server, discovered and ready to check tokens.
#[derive(Debug)]
pub struct External {
    pub config: ExternalConfig,
    fenced: Fenced,
    introspection_endpoint: Option<String>,
    keys: Option<RemoteKeys>,
    introspected: Mutex<HashMap<[u8; 32], Introspected>>,
}

impl External {
    /// Reads the external server's metadata (and, for JWTs, its keys). Fails with a message
    /// for the operator when the issuer does not answer or does not match.
    pub async fn discover(config: ExternalConfig, now: i64) -> Result<Arc<Self>, String> {
        let fenced = Fenced::new(config.fetch.clone())?;
        if config.fetch.allow_loopback {
            tracing::warn!(
                "TEST SETTING ON: the external authorization server may be on a loopback address; never use this in production"
            );
        }
        let metadata = discover_metadata(&fenced, &config.issuer).await?;
        let field = |name: &str| {
            metadata
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let jwks_uri = field("jwks_uri");
        let introspection_endpoint = field("introspection_endpoint");
        match &config.check {
            TokenCheck::Jwt if jwks_uri.is_none() => {
                return Err(format!(
                    "{} publishes no jwks_uri, so its JWT access tokens cannot be checked: use --token-check introspection",
                    config.issuer
                ));
            }
            TokenCheck::Introspection { .. } if introspection_endpoint.is_none() => {
                return Err(format!(
                    "{} publishes no introspection_endpoint: use --token-check jwt (if its access tokens are JWTs)",
                    config.issuer
                ));
            }
            _ => {}
        }
        let external = Arc::new(Self {
            config,
            fenced,
            introspection_endpoint,
            keys: jwks_uri.map(RemoteKeys::new),
            introspected: Mutex::new(HashMap::new()),
        });
        if let (TokenCheck::Jwt, Some(keys)) = (&external.config.check, &external.keys) {
            keys.refresh(&external.fenced, now).await.map_err(|e| {
                format!(
                    "cannot read the signing keys of {}: {e}",
                    external.config.issuer
                )
            })?;
        }
        Ok(external)
    }

    /// Whether tokens can be checked now: keys loaded (JWT), or an endpoint to ask.
    pub fn ready(&self) -> bool {
        match self.config.check {
            TokenCheck::Jwt => self.keys.as_ref().is_some_and(RemoteKeys::loaded),
            TokenCheck::Introspection { .. } => self.introspection_endpoint.is_some(),
        }
    }

    /// Checks a token; the principal and until when it may be reused.
    pub async fn verify(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Arc<Principal>, i64), ExternalError> {
        match &self.config.check {
            TokenCheck::Jwt => self.verify_jwt(token, now).await,
            TokenCheck::Introspection {
                client_id,
                client_secret,
            } => self.introspect(token, client_id, client_secret, now).await,
        }
    }

    async fn verify_jwt(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Arc<Principal>, i64), ExternalError> {
        let algorithms: Vec<&str> = self.config.algorithms.iter().map(String::as_str).collect();
        let keys = self.keys.as_ref().ok_or(JwsError::UnknownKey)?;
        let signed = keys.verify(&self.fenced, token, &algorithms, now).await;
        let signed = signed?;
        if let Some(typ) = &signed.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(t.as_str(), "at+jwt" | "application/at+jwt" | "jwt") {
                return Err(ExternalError::NotAnAccessToken(typ.clone()));
            }
        }
        jws::check_claims(
            &signed.claims,
            &self.config.issuer,
            &self.config.audiences,
            now,
            LEEWAY_SECS,
        )?;
        let exp = signed
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .unwrap_or(now);
        Ok((Arc::new(self.principal(&signed.claims)?), exp))
    }

    async fn introspect(
        &self,
        token: &str,
        client_id: &str,
        client_secret: &str,
        now: i64,
    ) -> Result<(Arc<Principal>, i64), ExternalError> {
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        if let Some(hit) = self
            .introspected
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
            && hit.keep_until > now
        {
            return Ok((hit.principal, hit.keep_until));
        }
        let endpoint = self
            .introspection_endpoint
            .as_deref()
            .ok_or(ExternalError::Unavailable)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let basic = basic_auth(client_id, client_secret);
        let answer = match self
            .fenced
            .post_form(endpoint, form, Some(&basic), MAX_METADATA_BYTES)
            .await
        {
            Ok(a) if a.status == 200 => a.json().unwrap_or(Value::Null),
            Ok(a) => {
                tracing::warn!(
                    status = a.status,
                    "the introspection endpoint refused the request (check the introspection client id and secret)"
                );
                return Err(ExternalError::Unavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the introspection endpoint could not be reached");
                return Err(ExternalError::Unavailable);
            }
        };
        let Some(claims) = answer.as_object() else {
            return Err(ExternalError::Unavailable);
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(ExternalError::Inactive);
        }
        // The answer must say the token is ours: from this issuer (when it says), for this
        // audience (always), and unexpired.
        let mut judged = claims.clone();
        judged
            .entry("iss")
            .or_insert_with(|| Value::String(self.config.issuer.clone()));
        jws::check_claims(
            &judged,
            &self.config.issuer,
            &self.config.audiences,
            now,
            LEEWAY_SECS,
        )?;
        let exp = judged.get("exp").and_then(Value::as_i64).unwrap_or(now);
        let principal = Arc::new(self.principal(&judged)?);
        let keep_until = exp.min(now + INTROSPECTION_CACHE_MAX);
        if let Ok(mut cache) = self.introspected.lock() {
            if cache.len() >= INTROSPECTION_CACHE_SIZE {
                cache.retain(|_, e| e.keep_until > now);
                if cache.len() >= INTROSPECTION_CACHE_SIZE {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Introspected {
                    principal: principal.clone(),
                    keep_until,
                },
            );
        }
        Ok((principal, keep_until))
    }

    /// The caller a token's claims name: `sub`, the client (`client_id` or `azp`), and the
    /// scopes from the configured claim.
    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, ExternalError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(ExternalError::NoSubject("sub"))?;
        let client_id = ["client_id", "azp"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .map(str::to_owned);
        let scopes = match claims.get(&self.config.scope_claim) {
            None => ScopeSet::default(),
            Some(Value::String(s)) => ScopeSet::parse(s).map_err(|_| ExternalError::BadScopes)?,
            Some(Value::Array(items)) => {
                let words: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                ScopeSet::parse(&words.join(" ")).map_err(|_| ExternalError::BadScopes)?
            }
            Some(_) => return Err(ExternalError::BadScopes),
        };
        Ok(Principal {
            user: Some(sub.to_owned()),
            client_id,
            scopes,
            grant_id: None,
        })
    }
}

/// The authorization server metadata of `issuer`: RFC 8414 (path-aware), then OpenID
/// Connect Discovery; the first document whose `issuer` is exactly `issuer`.
async fn discover_metadata(fenced: &Fenced, issuer: &str) -> Result<Map<String, Value>, String> {
    let parsed =
        url::Url::parse(issuer).map_err(|e| format!("the issuer {issuer:?} is not a URL: {e}"))?;
    if !fenced.allows_url(&parsed) {
        return Err(format!("the issuer {issuer:?} must be an https URL"));
    }
    let origin = parsed.origin().ascii_serialization();
    let path = parsed.path().trim_end_matches('/');
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ];
    let mut problems = Vec::new();
    for url in &candidates {
        match fenced.get_json(url, MAX_METADATA_BYTES).await {
            Ok(fetched) => {
                let Some(Value::Object(doc)) = fetched.json() else {
                    problems.push(format!("{url}: not a JSON object"));
                    continue;
                };
                match doc.get("issuer").and_then(Value::as_str) {
                    Some(stated) if stated == issuer => return Ok(doc),
                    Some(stated) => problems.push(format!(
                        "{url} says its issuer is {stated:?}, not {issuer:?} (set --issuer to exactly what it says, if you trust it)"
                    )),
                    None => problems.push(format!("{url}: no issuer")),
                }
            }
            Err(FetchError::Status(404)) => problems.push(format!("{url}: not found")),
            Err(e) => problems.push(format!("{url}: {e}")),
        }
    }
    Err(format!(
        "cannot read the metadata of the authorization server {issuer}: {}",
        problems.join("; ")
    ))
}
