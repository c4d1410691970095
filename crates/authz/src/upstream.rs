//! Federated login: people sign in at an upstream identity provider, and Portcullis stays
//! the authorization server for MCP clients. This module is the provider side of it: the
//! authorization URL (code flow with PKCE, `state` and `nonce`), the code exchange, the ID
//! token check (signature against the provider's JWKS, `iss`, `aud`, `azp`, `exp`, `nonce`),
//! userinfo where the ID token says too little, and the allow-lists deciding who may sign in.
//! GitHub is plain OAuth 2.0: its user API names the person.
//!
//! The provider's tokens are used once, here, and then dropped: MCP clients only ever get
//! Portcullis's own tokens. Every fetch (discovery, keys, token, userinfo) goes through the
//! SSRF fence ([`crate::fetch`]). Discovery is lazy and cached, so an upstream that is down
//! when Portcullis starts only affects sign-ins through it, and only while it is down.

use std::sync::Arc;

use portcullis_oauth::jws;
use serde_json::{Map, Value};

use crate::fetch::{Fenced, FetchError, FetchPolicy, basic_auth};
use crate::guard::LEEWAY_SECS;
use crate::remote_keys::RemoteKeys;

const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long discovered metadata is used before it is read again.
const METADATA_TTL: i64 = 24 * 3600;
/// After a failed discovery, the least wait before the next attempt.
const DISCOVERY_RETRY: i64 = 5;
const ID_TOKEN_ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// Known providers: what they need beyond an issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Any OpenID Connect provider, found by discovery from its issuer.
    Oidc,
    Google,
    /// Microsoft Entra ID; the issuer names the tenant.
    Entra,
    /// Keycloak; the issuer is the realm's URL.
    Keycloak,
    /// GitHub: OAuth 2.0 and its user API (GitHub is not an OpenID provider).
    Github,
}

impl Preset {
    /// The issuer to use when none is configured, if the preset has one.
    pub fn default_issuer(self) -> Option<&'static str> {
        match self {
            Preset::Google => Some("https://accounts.google.com"),
            Preset::Github => Some(GITHUB_ISSUER),
            _ => None,
        }
    }

    pub fn default_scopes(self) -> &'static str {
        match self {
            Preset::Github => "read:user user:email",
            _ => "openid email profile",
        }
    }

    /// The words on the sign-in button: "Sign in with …".
    pub fn display_name(self) -> Option<&'static str> {
        match self {
            Preset::Oidc => None,
            Preset::Google => Some("Google"),
            Preset::Entra => Some("Microsoft"),
            Preset::Keycloak => Some("Keycloak"),
            Preset::Github => Some("GitHub"),
        }
    }

    /// Whether anyone at all may hold an account there (so an allow-list is expected).
    pub fn open_to_anyone(self) -> bool {
        matches!(self, Preset::Google | Preset::Github)
    }
}

/// What identifies GitHub accounts in links: GitHub has no OpenID issuer.
pub const GITHUB_ISSUER: &str = "https://github.com";

/// GitHub's endpoints (settable for tests only).
#[derive(Debug, Clone)]
pub struct GithubEndpoints {
    pub authorize: String,
    pub token: String,
    pub api: String,
}

impl Default for GithubEndpoints {
    fn default() -> Self {
        Self {
            authorize: "https://github.com/login/oauth/authorize".into(),
            token: "https://github.com/login/oauth/access_token".into(),
            api: "https://api.github.com".into(),
        }
    }
}

/// Settings of the upstream provider.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub preset: Preset,
    /// The button's words: "Sign in with {name}".
    pub name: String,
    /// The provider's issuer, exactly as its metadata states it ([`GITHUB_ISSUER`] for GitHub).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: String,
    /// E-mail domains allowed to sign in (the provider must say the address is verified).
    pub allowed_domains: Vec<String>,
    /// Claims that must have these values (a list claim must contain the value).
    pub required_claims: Vec<(String, String)>,
    pub fetch: FetchPolicy,
    pub github: GithubEndpoints,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("preset", &self.preset)
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("allowed_domains", &self.allowed_domains)
            .field("required_claims", &self.required_claims)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in through the provider failed. Each maps to a page that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The provider could not be reached or answered with a server error: try later.
    #[error("{0}")]
    Unavailable(String),
    /// The provider's setup does not fit this server's settings: the operator must act.
    #[error("{0}")]
    Misconfigured(String),
    /// The provider said no (the person declined, or it refused the code).
    #[error("{0}")]
    Refused(String),
    /// The provider's answer did not verify (signature, issuer, audience, nonce, expiry).
    #[error("{0}")]
    Unverified(String),
    /// The person signed in, but the allow-lists do not admit them.
    #[error("{0}")]
    NotAllowed(String),
}

/// The person the provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    /// What to call the local account when it is first made.
    pub username_hint: String,
    /// An e-mail address the provider says is verified.
    pub verified_email: Option<String>,
    pub claims: Map<String, Value>,
}

#[derive(Debug)]
struct Discovered {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    /// Whether to send the client secret in the form instead of HTTP Basic.
    secret_in_form: bool,
    keys: Option<Arc<RemoteKeys>>,
    read_at: i64,
}

/// The upstream provider, ready to send people to and take them back from.
#[derive(Debug)]
pub struct Upstream {
    pub config: UpstreamConfig,
    fenced: Fenced,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
    last_failure: std::sync::Mutex<Option<(i64, UpstreamError)>>,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Result<Self, String> {
        let fenced = Fenced::new(config.fetch.clone())?;
        if config.fetch.allow_loopback {
            tracing::warn!(
                "TEST SETTING ON: the upstream identity provider may be on a loopback address; never use this in production"
            );
        }
        Ok(Self {
            config,
            fenced,
            discovered: tokio::sync::Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
        })
    }

    /// Where to send the browser: the provider's authorization endpoint with this attempt's
    /// `state`, `nonce` and PKCE challenge.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
        now: i64,
    ) -> Result<String, UpstreamError> {
        let d = self.discovered(now).await?;
        let mut url = url::Url::parse(&d.authorization_endpoint).map_err(|_| {
            UpstreamError::Misconfigured(format!(
                "the provider's authorization endpoint {:?} is not a URL",
                d.authorization_endpoint
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.config.scopes)
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            if self.config.preset != Preset::Github {
                q.append_pair("nonce", nonce);
            }
        }
        Ok(url.into())
    }

    /// Checks that the provider can be used now (metadata read); for readiness and the
    /// operator's start-up log.
    pub async fn check(&self, now: i64) -> Result<(), UpstreamError> {
        self.discovered(now).await.map(|_| ())
    }

    /// Exchanges the code the provider sent back and returns the verified person.
    pub async fn finish(
        &self,
        code: &str,
        code_verifier: &str,
        nonce: &str,
        redirect_uri: &str,
        now: i64,
    ) -> Result<Identity, UpstreamError> {
        let d = self.discovered(now).await?;
        let tokens = self.exchange(&d, code, code_verifier, redirect_uri).await?;
        let access_token = tokens.get("access_token").and_then(Value::as_str);
        let identity = if self.config.preset == Preset::Github {
            let token = access_token.ok_or_else(|| {
                UpstreamError::Unverified("GitHub's token answer holds no access_token".into())
            })?;
            self.github_identity(token).await?
        } else {
            self.oidc_identity(&d, &tokens, access_token, nonce, now)
                .await?
        };
        self.admit(&identity)?;
        Ok(identity)
    }

    /// The token request's form and, for `client_secret_basic`, its `Authorization` header.
    fn token_request(
        &self,
        d: &Discovered,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> (String, Option<String>) {
        let c = &self.config;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", code_verifier);
        if d.secret_in_form {
            form.append_pair("client_id", &c.client_id)
                .append_pair("client_secret", &c.client_secret);
            return (form.finish(), None);
        }
        (
            form.finish(),
            Some(basic_auth(&c.client_id, &c.client_secret)),
        )
    }

    async fn exchange(
        &self,
        d: &Discovered,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let c = &self.config;
        let (form, authorization) = self.token_request(d, code, code_verifier, redirect_uri);
        let answer = self
            .fenced
            .post_form(
                &d.token_endpoint,
                form,
                authorization.as_deref(),
                MAX_ANSWER_BYTES,
            )
            .await
            .map_err(|e| self.unreachable("token endpoint", &e))?;
        let body = match answer.json() {
            Some(Value::Object(m)) => m,
            _ => {
                return Err(UpstreamError::Unavailable(format!(
                    "{}'s token endpoint answered HTTP {} without JSON",
                    c.name, answer.status
                )));
            }
        };
        // GitHub reports errors with status 200 and an `error` member.
        if let Some(error) = body.get("error").and_then(Value::as_str) {
            let description = body
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            if error == "invalid_client" || error == "unauthorized_client" {
                return Err(UpstreamError::Misconfigured(format!(
                    "{} refused this server's client credentials ({error}: {description}); check --login-client-id and the client secret",
                    c.name
                )));
            }
            return Err(UpstreamError::Refused(format!(
                "{} refused the sign-in code ({error}{}{description})",
                c.name,
                if description.is_empty() { "" } else { ": " }
            )));
        }
        if answer.status >= 500 {
            return Err(UpstreamError::Unavailable(format!(
                "{}'s token endpoint answered HTTP {}",
                c.name, answer.status
            )));
        }
        if answer.status != 200 {
            return Err(UpstreamError::Refused(format!(
                "{}'s token endpoint answered HTTP {}",
                c.name, answer.status
            )));
        }
        Ok(body)
    }

    async fn oidc_identity(
        &self,
        d: &Discovered,
        tokens: &Map<String, Value>,
        access_token: Option<&str>,
        nonce: &str,
        now: i64,
    ) -> Result<Identity, UpstreamError> {
        let c = &self.config;
        let unverified = |why: String| UpstreamError::Unverified(why);
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                unverified(format!(
                    "{} sent no ID token (is the openid scope in --login-scopes?)",
                    c.name
                ))
            })?;
        let keys = d.keys.as_ref().ok_or_else(|| {
            UpstreamError::Misconfigured(format!("{} publishes no jwks_uri", c.issuer))
        })?;
        let signed = keys
            .verify(&self.fenced, id_token, &ID_TOKEN_ALGORITHMS, now)
            .await
            .map_err(|e| unverified(format!("the ID token from {} was refused: {e}", c.name)))?;
        let claims = signed.claims;
        jws::check_claims(
            &claims,
            &c.issuer,
            std::slice::from_ref(&c.client_id),
            now,
            LEEWAY_SECS,
        )
        .map_err(|e| unverified(format!("the ID token from {} was refused: {e}", c.name)))?;
        // Several audiences: the authorized party must be this server (OIDC Core 3.1.3.7).
        if let Some(Value::Array(auds)) = claims.get("aud")
            && auds.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(c.client_id.as_str())
        {
            return Err(unverified(
                "the ID token names several audiences and this server is not its authorized party (azp)".into(),
            ));
        }
        match claims.get("nonce").and_then(Value::as_str) {
            Some(n)
                if portcullis_oauth::secret::constant_time_eq(n.as_bytes(), nonce.as_bytes()) => {}
            _ => {
                return Err(unverified(
                    "the ID token's nonce does not match this sign-in (a replayed or substituted answer)".into(),
                ));
            }
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unverified("the ID token names nobody (no sub)".into()))?
            .to_owned();
        let mut claims = claims;
        // Userinfo fills in what the ID token leaves out (some providers put only `sub` there).
        let wants_more = !claims.contains_key("email")
            || self
                .config
                .required_claims
                .iter()
                .any(|(k, _)| !claims.contains_key(k));
        if wants_more && let (Some(endpoint), Some(token)) = (&d.userinfo_endpoint, access_token) {
            let info = self
                .fenced
                .get_json_authorized(endpoint, &format!("Bearer {token}"), MAX_ANSWER_BYTES)
                .await
                .map_err(|e| self.unreachable("userinfo endpoint", &e))?;
            let Some(Value::Object(info)) = info.json() else {
                return Err(unverified(format!(
                    "{}'s userinfo answer is not a JSON object",
                    c.name
                )));
            };
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(unverified(format!(
                    "{}'s userinfo answer is about someone else (sub differs from the ID token's)",
                    c.name
                )));
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        let verified_email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|_| claims.get("email_verified") == Some(&Value::Bool(true)))
            .map(str::to_owned);
        let hint = ["preferred_username", "email", "name"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .unwrap_or(&subject)
            .to_owned();
        Ok(Identity {
            issuer: c.issuer.clone(),
            subject,
            username_hint: hint,
            verified_email,
            claims,
        })
    }

    async fn github_identity(&self, token: &str) -> Result<Identity, UpstreamError> {
        let api = self.config.github.api.trim_end_matches('/');
        let auth = format!("Bearer {token}");
        let user = self
            .fenced
            .get_json_authorized(&format!("{api}/user"), &auth, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| self.unreachable("user API", &e))?;
        let Some(Value::Object(user)) = user.json() else {
            return Err(UpstreamError::Unverified(
                "GitHub's user API answer is not a JSON object".into(),
            ));
        };
        let subject = match user.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(UpstreamError::Unverified(
                    "GitHub's user API names nobody (no id)".into(),
                ));
            }
        };
        let login = user
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or(&subject)
            .to_owned();
        // The primary verified address, from the e-mail API (needs the user:email scope).
        let mut verified_email = None;
        if !self.config.allowed_domains.is_empty() {
            let emails = self
                .fenced
                .get_json_authorized(&format!("{api}/user/emails"), &auth, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| self.unreachable("e-mail API", &e))?;
            if let Some(Value::Array(list)) = emails.json() {
                let verified = |e: &&Value| e.get("verified") == Some(&Value::Bool(true));
                let pick = list
                    .iter()
                    .filter(verified)
                    .find(|e| e.get("primary") == Some(&Value::Bool(true)))
                    .or_else(|| list.iter().find(verified));
                verified_email = pick
                    .and_then(|e| e.get("email"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
        }
        let mut claims = user;
        claims.insert("sub".into(), Value::String(subject.clone()));
        Ok(Identity {
            issuer: GITHUB_ISSUER.to_owned(),
            subject,
            username_hint: login,
            verified_email,
            claims,
        })
    }

    /// The allow-lists: a verified e-mail address in an allowed domain (when domains are
    /// set), and every required claim with its value.
    pub fn admit(&self, who: &Identity) -> Result<(), UpstreamError> {
        let c = &self.config;
        if !c.allowed_domains.is_empty() {
            let domain = who
                .verified_email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            let Some(domain) = domain else {
                return Err(UpstreamError::NotAllowed(format!(
                    "{} did not give a verified e-mail address for your account, and this server admits only addresses at {}",
                    c.name,
                    c.allowed_domains.join(", ")
                )));
            };
            if !c
                .allowed_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain))
            {
                return Err(UpstreamError::NotAllowed(format!(
                    "accounts at {domain} may not sign in here; this server admits only addresses at {}",
                    c.allowed_domains.join(", ")
                )));
            }
        }
        for (claim, wanted) in &c.required_claims {
            let ok = match who.claims.get(claim) {
                Some(Value::String(s)) => s == wanted,
                Some(Value::Array(items)) => items.iter().any(|v| match v {
                    Value::String(s) => s == wanted,
                    Value::Bool(b) => wanted == if *b { "true" } else { "false" },
                    Value::Number(n) => n.as_i64().is_some_and(|n| wanted.parse() == Ok(n)),
                    _ => false,
                }),
                Some(Value::Bool(b)) => b.to_string() == *wanted,
                Some(Value::Number(n)) => n.to_string() == *wanted,
                _ => false,
            };
            if !ok {
                return Err(UpstreamError::NotAllowed(format!(
                    "your {} account does not have {claim}={wanted}, which this server requires",
                    c.name
                )));
            }
        }
        Ok(())
    }

    fn unreachable(&self, what: &str, e: &FetchError) -> UpstreamError {
        tracing::warn!(provider = %self.config.issuer, error = %e, "upstream {what} failed");
        match e {
            FetchError::NotHttps | FetchError::Forbidden(_) => UpstreamError::Misconfigured(
                format!("{}'s {what} is not allowed: {e}", self.config.name),
            ),
            _ => UpstreamError::Unavailable(format!(
                "{}'s {what} could not be reached: {e}",
                self.config.name
            )),
        }
    }

    /// The provider's metadata: read on first use and every [`METADATA_TTL`]; an old copy
    /// keeps serving while a reread fails.
    async fn discovered(&self, now: i64) -> Result<Arc<Discovered>, UpstreamError> {
        let mut held = self.discovered.lock().await;
        if let Some(d) = held.as_ref()
            && d.read_at + METADATA_TTL > now
        {
            return Ok(d.clone());
        }
        // Right after a failure, no new attempt: the old copy if there is one, else the error.
        if let Some(e) = self.recent_failure(now) {
            return held.clone().ok_or(e);
        }
        match self.discover(now).await {
            Ok(d) => {
                let d = Arc::new(d);
                *held = Some(d.clone());
                Ok(d)
            }
            Err(e) => {
                tracing::warn!(provider = %self.config.issuer, error = %e, "cannot read the upstream identity provider's metadata");
                self.note_failure(now, &e);
                held.clone().ok_or(e)
            }
        }
    }

    fn note_failure(&self, now: i64, e: &UpstreamError) {
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some((now, e.clone()));
        }
    }

    /// The last discovery failure, if it is too recent to try again.
    fn recent_failure(&self, now: i64) -> Option<UpstreamError> {
        let last = self.last_failure.lock().ok()?;
        let (at, e) = last.as_ref()?;
        (at + DISCOVERY_RETRY > now).then(|| e.clone())
    }

    async fn discover(&self, now: i64) -> Result<Discovered, UpstreamError> {
        let c = &self.config;
        if c.preset == Preset::Github {
            return Ok(Discovered {
                authorization_endpoint: c.github.authorize.clone(),
                token_endpoint: c.github.token.clone(),
                userinfo_endpoint: None,
                secret_in_form: true,
                keys: None,
                read_at: now,
            });
        }
        let issuer = c.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let fetched = self
            .fenced
            .get_json(&url, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                FetchError::Status(404) => UpstreamError::Misconfigured(format!(
                    "{url} does not exist: is --login-issuer the provider's OpenID issuer?"
                )),
                FetchError::Status(s) if s < 500 => UpstreamError::Misconfigured(format!(
                    "{url} answered HTTP {s}: is --login-issuer the provider's OpenID issuer?"
                )),
                other => self.unreachable("metadata", &other),
            })?;
        let Some(Value::Object(doc)) = fetched.json() else {
            return Err(UpstreamError::Misconfigured(format!(
                "{url} is not a JSON object"
            )));
        };
        match doc.get("issuer").and_then(Value::as_str) {
            Some(stated) if stated == c.issuer => {}
            Some(stated) => {
                return Err(UpstreamError::Misconfigured(format!(
                    "{url} says its issuer is {stated:?}, not {:?}: set --login-issuer to exactly what it says, if you trust it",
                    c.issuer
                )));
            }
            None => {
                return Err(UpstreamError::Misconfigured(format!(
                    "{url} names no issuer"
                )));
            }
        }
        let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        let need = |name: &str| {
            field(name).ok_or_else(|| UpstreamError::Misconfigured(format!("{url} has no {name}")))
        };
        let methods: Vec<&str> = doc
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // OpenID Discovery's default is client_secret_basic.
        let secret_in_form = !methods.is_empty()
            && !methods.contains(&"client_secret_basic")
            && methods.contains(&"client_secret_post");
        let jwks_uri = need("jwks_uri")?;
        let keys = Arc::new(RemoteKeys::new(jwks_uri));
        Ok(Discovered {
            authorization_endpoint: need("authorization_endpoint")?,
            token_endpoint: need("token_endpoint")?,
            userinfo_endpoint: field("userinfo_endpoint"),
            secret_in_form,
            keys: Some(keys),
            read_at: now,
        })
    }
}

/// A local username made from what the provider calls the person: the allowed characters
/// only, at most 56 of them, or `user` when nothing is left.
pub fn username_from_hint(hint: &str) -> String {
    let name: String = hint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._@-".contains(*c))
        .take(56)
        .collect();
    if name.is_empty() {
        "user".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(domains: &[&str], claims: &[(&str, &str)]) -> Upstream {
        Upstream::new(UpstreamConfig {
            preset: Preset::Oidc,
            name: "Example".into(),
            issuer: "https://idp.example".into(),
            client_id: "portcullis".into(),
            client_secret: "s".into(),
            scopes: "openid email".into(),
            allowed_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            required_claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            fetch: FetchPolicy::default(),
            github: GithubEndpoints::default(),
        })
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn who(email: Option<&str>, claims: Value) -> Identity {
        Identity {
            issuer: "https://idp.example".into(),
            subject: "s1".into(),
            username_hint: "x".into(),
            verified_email: email.map(str::to_owned),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn domain_allow_list_needs_a_verified_address_in_a_listed_domain() {
        let u = upstream(&["example.com"], &[]);
        assert!(u.admit(&who(Some("a@Example.COM"), Value::Null)).is_ok());
        assert!(matches!(
            u.admit(&who(Some("a@example.com.evil.org"), Value::Null)),
            Err(UpstreamError::NotAllowed(_))
        ));
        assert!(matches!(
            u.admit(&who(None, serde_json::json!({"email": "a@example.com"}))),
            Err(UpstreamError::NotAllowed(m)) if m.contains("verified")
        ));
        assert!(upstream(&[], &[]).admit(&who(None, Value::Null)).is_ok());
    }

    #[test]
    fn required_claims_match_strings_and_list_members() {
        let u = upstream(&[], &[("groups", "mcp-users"), ("hd", "example.com")]);
        let ok = serde_json::json!({"groups": ["staff", "mcp-users"], "hd": "example.com"});
        assert!(u.admit(&who(None, ok)).is_ok());
        let missing = serde_json::json!({"groups": ["staff"], "hd": "example.com"});
        assert!(matches!(
            u.admit(&who(None, missing)),
            Err(UpstreamError::NotAllowed(m)) if m.contains("groups=mcp-users")
        ));
        assert!(u.admit(&who(None, serde_json::json!({}))).is_err());
    }

    #[test]
    fn usernames_keep_only_allowed_characters() {
        assert_eq!(username_from_hint("Ann Lee <ann@x.org>"), "AnnLeeann@x.org");
        assert_eq!(username_from_hint("日本"), "user");
        assert_eq!(username_from_hint(&"a".repeat(99)).len(), 56);
    }
}
