//! `portcullis serve` settings: flags, each also an environment variable
//! (`PORTCULLIS_` + the flag in upper case), turned into a checked [`ServeConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use portcullis_authz::AuthMode;
use portcullis_authz::forwarded::ProxyRange;
use portcullis_authz::server::{AsConfig, CimdPolicy};
use portcullis_authz::upstream::{GithubEndpoints, Preset, UpstreamConfig};

use crate::host::{HostConfig, OriginPolicy, OriginRule};
use crate::tls::TlsFiles;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "PORTCULLIS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The MCP endpoint's public URL, exactly as clients type it (e.g.
    /// https://mcp.example.com/mcp). Defaults to http://<bind><mcp-path>.
    #[arg(long, env = "PORTCULLIS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Path of the MCP endpoint on this listener. Defaults to the public URL's path, or /mcp.
    #[arg(long, env = "PORTCULLIS_MCP_PATH")]
    pub mcp_path: Option<String>,

    /// Browser origins allowed to call the endpoint, comma-separated
    /// (scheme://host[:port], port may be *). Loopback origins are allowed when bound to loopback.
    #[arg(long, env = "PORTCULLIS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Extra Host header values to accept (host or host:port), comma-separated. The public
    /// URL's host, and loopback names when bound to loopback, are always accepted.
    #[arg(long, env = "PORTCULLIS_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PORTCULLIS_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds a request may take before it is cancelled with an error.
    #[arg(long, env = "PORTCULLIS_REQUEST_TIMEOUT", default_value_t = 60)]
    pub request_timeout: u64,

    /// Seconds to wait for in-flight requests on SIGTERM/SIGINT before exiting anyway.
    #[arg(long, env = "PORTCULLIS_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,

    /// Who may call the tools: `embedded` (OAuth 2.1, this server issues the tokens),
    /// `external` (tokens from the authorization server named by --issuer; this server only
    /// checks them) or `none` (no authentication; loopback addresses only, for development).
    #[arg(long, env = "PORTCULLIS_AUTH", value_enum, default_value_t = AuthChoice::Embedded)]
    pub auth: AuthChoice,

    /// With --auth external: the external authorization server's issuer URL, exactly as its
    /// metadata states it (https://idp.example.com/realms/main).
    #[arg(long, env = "PORTCULLIS_ISSUER")]
    pub issuer: Option<String>,

    /// With --auth external: the `aud` values accepted, comma-separated (default: the public
    /// URL). For providers that name the API otherwise, e.g. api://portcullis.
    #[arg(long, env = "PORTCULLIS_AUDIENCE", value_delimiter = ',')]
    pub audience: Vec<String>,

    /// With --auth external: the claim that holds the scopes, `scope` or `scp`.
    #[arg(long, env = "PORTCULLIS_SCOPE_CLAIM", default_value = "scope")]
    pub scope_claim: String,

    /// With --auth external: check tokens as signed JWTs against the issuer's keys (`jwt`),
    /// or ask the issuer's introspection endpoint (`introspection`, for opaque tokens).
    #[arg(long, env = "PORTCULLIS_TOKEN_CHECK", value_enum, default_value_t = TokenCheckChoice::Jwt)]
    pub token_check: TokenCheckChoice,

    /// With --token-check introspection: this server's client id at the issuer.
    #[arg(long, env = "PORTCULLIS_INTROSPECTION_CLIENT_ID")]
    pub introspection_client_id: Option<String>,

    /// With --token-check introspection: file holding that client's secret
    /// (PORTCULLIS_INTROSPECTION_CLIENT_SECRET takes the secret itself).
    #[arg(long, env = "PORTCULLIS_INTROSPECTION_CLIENT_SECRET_FILE")]
    pub introspection_client_secret_file: Option<std::path::PathBuf>,

    /// Offer the built-in notes toolset (each signed-in user's own notes). `--notes false`
    /// leaves only `whoami`.
    #[arg(long, env = "PORTCULLIS_NOTES", default_value_t = true, action = clap::ArgAction::Set)]
    pub notes: bool,

    /// List only the tools the caller's token can call (every call is checked either way).
    #[arg(long, env = "PORTCULLIS_HIDE_UNAUTHORIZED_TOOLS")]
    pub hide_unauthorized_tools: bool,

    /// Clients that mishandle a 403 step-up, comma-separated: client ids or metadata URLs, or
    /// prefixes ending in `*`. A tool call missing a scope is answered to them as a tool
    /// error naming the scope.
    #[arg(long, env = "PORTCULLIS_STEP_UP_AS_TOOL_ERROR", value_delimiter = ',')]
    pub step_up_as_tool_error: Vec<String>,

    /// Let tools that need the person's confirmation (notes_delete) run for clients that
    /// cannot ask (no elicitation capability). Each such call is recorded in the audit log as
    /// `unconfirmed`. Off by default: those calls are refused with a tool error.
    #[arg(long, env = "PORTCULLIS_ALLOW_UNCONFIRMED")]
    pub allow_unconfirmed: bool,

    /// Tool calls allowed per minute for one user through one client (0 turns the limit off).
    #[arg(long, env = "PORTCULLIS_TOOL_CALLS_PER_MINUTE", default_value_t = 600)]
    pub tool_calls_per_minute: u32,

    /// Record every tool call in the audit log. `--audit false` is for benchmarks that
    /// measure what auditing costs; a deployment keeps it on.
    #[arg(long, env = "PORTCULLIS_AUDIT", default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub audit: bool,

    /// Keep each tool call's arguments in the audit log (by default only a digest).
    #[arg(long, env = "PORTCULLIS_AUDIT_ARGUMENTS")]
    pub audit_arguments: bool,

    /// Days audit events are kept.
    #[arg(long, env = "PORTCULLIS_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,

    #[command(flatten)]
    pub db: DatabaseArg,

    /// File holding the master key that encrypts signing keys at rest; created (mode 0600)
    /// on first start. PORTCULLIS_MASTER_KEY (base64 of 32 bytes) takes precedence.
    #[arg(
        long,
        env = "PORTCULLIS_MASTER_KEY_FILE",
        default_value = "portcullis.key"
    )]
    pub master_key_file: std::path::PathBuf,

    /// Name of the first admin account, created on first start when its password is given
    /// (PORTCULLIS_ADMIN_PASSWORD or --admin-password-file); else a one-time setup link is
    /// logged.
    #[arg(long, env = "PORTCULLIS_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,

    /// Let anyone who reaches the sign-in page create an account ("Create account and
    /// continue"). Off by default: accounts come from `portcullis user add` or `user invite`.
    #[arg(long, env = "PORTCULLIS_ALLOW_SIGNUP")]
    pub allow_signup: bool,

    /// File holding the first admin account's password (instead of PORTCULLIS_ADMIN_PASSWORD).
    #[arg(long, env = "PORTCULLIS_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<std::path::PathBuf>,

    /// Access token lifetime, in seconds.
    #[arg(long, env = "PORTCULLIS_ACCESS_TOKEN_TTL", default_value_t = 3600)]
    pub access_token_ttl: i64,

    /// Refresh tokens expire after this many seconds unused.
    #[arg(long, env = "PORTCULLIS_REFRESH_TOKEN_IDLE_TTL", default_value_t = 30 * 86_400)]
    pub refresh_token_idle_ttl: i64,

    /// A login's refresh chain ends after this many seconds, used or not.
    #[arg(long, env = "PORTCULLIS_REFRESH_TOKEN_MAX_TTL", default_value_t = 90 * 86_400)]
    pub refresh_token_max_ttl: i64,

    /// Seconds after a refresh during which presenting the same refresh token again (a
    /// client retrying after a lost response, or two instances racing) returns the same new
    /// pair instead of revoking the grant as a replay. 0 to 300.
    #[arg(long, env = "PORTCULLIS_REFRESH_GRACE", default_value_t = 45)]
    pub refresh_grace: i64,

    /// Serve Prometheus metrics at http://ADDR/metrics, on this separate listener (keep it
    /// private: loopback or an internal address). Off when not set.
    #[arg(long, env = "PORTCULLIS_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// This instance's own address as the other instances on the same database reach it
    /// (`http://10.0.0.5:8080`). Set it when several instances share one database behind a
    /// load balancer without sticky sessions: a 2025-era request for a session another
    /// instance holds is relayed there. Plain HTTP, inside your network.
    #[arg(long, env = "PORTCULLIS_INSTANCE_URL")]
    pub instance_url: Option<String>,

    /// Reverse proxies whose X-Forwarded-For names the real client (for rate limits and
    /// logs), comma-separated: addresses or CIDR ranges (127.0.0.1, 10.0.0.0/8, fd00::/8).
    /// Forwarded headers from anyone else are ignored. The public URL is never taken from
    /// forwarded headers: set --public-url.
    #[arg(long, env = "PORTCULLIS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ProxyRange>,

    /// Serve HTTPS with this certificate chain (PEM file, the server's certificate first,
    /// then intermediates). Needs --tls-key. Reloaded without a restart when the file
    /// changes, or on SIGHUP.
    #[arg(long, env = "PORTCULLIS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC). Needs --tls-cert.
    #[arg(long, env = "PORTCULLIS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Seconds between checks of --tls-cert and --tls-key for a new certificate; 0 checks
    /// only on SIGHUP.
    #[arg(long, env = "PORTCULLIS_TLS_RELOAD_INTERVAL", default_value_t = 5)]
    pub tls_reload_interval: u64,

    /// Let people sign in through an upstream identity provider (federated login; Portcullis
    /// stays the authorization server): oidc (any OpenID Connect issuer, with --login-issuer),
    /// google, entra, keycloak or github.
    #[arg(long, env = "PORTCULLIS_LOGIN_PROVIDER", value_enum)]
    pub login_provider: Option<LoginProviderChoice>,

    /// The provider's issuer URL, exactly as its metadata states it (google has a default;
    /// entra: https://login.microsoftonline.com/TENANT-ID/v2.0; keycloak: the realm's URL).
    #[arg(long, env = "PORTCULLIS_LOGIN_ISSUER")]
    pub login_issuer: Option<String>,

    /// This server's client id at the provider. Register the redirect URI
    /// PUBLIC-ORIGIN/oauth/upstream/callback there.
    #[arg(long, env = "PORTCULLIS_LOGIN_CLIENT_ID")]
    pub login_client_id: Option<String>,

    /// A file holding this server's client secret at the provider (or set
    /// PORTCULLIS_LOGIN_CLIENT_SECRET).
    #[arg(long, env = "PORTCULLIS_LOGIN_CLIENT_SECRET_FILE")]
    pub login_client_secret_file: Option<PathBuf>,

    /// Scopes asked of the provider (default: openid email profile; github: read:user user:email).
    #[arg(long, env = "PORTCULLIS_LOGIN_SCOPES")]
    pub login_scopes: Option<String>,

    /// The provider's name on the sign-in button ("Sign in with NAME").
    #[arg(long, env = "PORTCULLIS_LOGIN_NAME")]
    pub login_name: Option<String>,

    /// Only people with a verified e-mail address in these domains may sign in upstream.
    #[arg(long, env = "PORTCULLIS_LOGIN_ALLOWED_DOMAINS", value_delimiter = ',')]
    pub login_allowed_domains: Vec<String>,

    /// Only people whose ID token (or userinfo) has these claims may sign in upstream:
    /// CLAIM=VALUE, comma-separated (a list claim must contain VALUE), e.g. groups=mcp-users.
    #[arg(long, env = "PORTCULLIS_LOGIN_REQUIRED_CLAIMS", value_delimiter = ',')]
    pub login_required_claims: Vec<String>,

    /// Let any account at google or github sign in (without it, those need
    /// --login-allowed-domains or --login-required-claims).
    #[arg(long, env = "PORTCULLIS_LOGIN_ALLOW_ANY_ACCOUNT")]
    pub login_allow_any_account: bool,

    /// Accept usernames and passwords of local accounts (false: upstream sign-in only).
    #[arg(long, env = "PORTCULLIS_PASSWORD_LOGIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub password_login: bool,

    /// TEST ONLY: let the upstream identity provider be on a loopback address (and plain http
    /// there). Never in production.
    #[arg(long, env = "PORTCULLIS_INSECURE_LOGIN_LOOPBACK", hide = true)]
    pub insecure_login_loopback: bool,

    /// TEST ONLY: where GitHub's web and API endpoints are (BASE/login/oauth/..., BASE/api).
    #[arg(long, env = "PORTCULLIS_LOGIN_GITHUB_BASE", hide = true)]
    pub login_github_base: Option<String>,

    /// TEST ONLY: fetch client metadata documents from loopback addresses. Never in production.
    #[arg(
        long,
        env = "PORTCULLIS_INSECURE_CLIENT_METADATA_LOOPBACK",
        hide = true
    )]
    pub insecure_client_metadata_loopback: bool,

    /// TEST ONLY: let the external authorization server be on a loopback address (and plain
    /// http there). Never in production.
    #[arg(long, env = "PORTCULLIS_INSECURE_ISSUER_LOOPBACK", hide = true)]
    pub insecure_issuer_loopback: bool,

    /// TEST ONLY: extra root certificates (PEM) trusted when fetching client metadata documents.
    #[arg(long, env = "PORTCULLIS_CLIENT_METADATA_EXTRA_CA", hide = true)]
    pub client_metadata_extra_ca: Option<std::path::PathBuf>,
}

/// Where accounts, clients, grants and keys are kept: `--database-url`, or a file holding
/// it (for a URL with a password in it). Every command that opens the database takes it.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArg {
    /// The database: sqlite://PATH (default sqlite://portcullis.db) or
    /// postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, env = "PORTCULLIS_DATABASE_URL")]
    pub database_url: Option<String>,

    /// File holding the database URL (keeps a database password out of the environment and
    /// the command line).
    #[arg(long, env = "PORTCULLIS_DATABASE_URL_FILE")]
    pub database_url_file: Option<std::path::PathBuf>,
}

impl DatabaseArg {
    pub const DEFAULT: &str = "sqlite://portcullis.db";

    /// The URL to open.
    pub fn url(&self) -> Result<String, ConfigError> {
        match (&self.database_url, &self.database_url_file) {
            (Some(_), Some(_)) => Err(ConfigError(
                "--database-url and --database-url-file are both set: keep one".into(),
            )),
            (Some(url), None) => Ok(url.clone()),
            (None, Some(file)) => {
                crate::settings::read_secret_file("--database-url-file", file).map_err(ConfigError)
            }
            (None, None) => Ok(Self::DEFAULT.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthChoice {
    Embedded,
    External,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoginProviderChoice {
    Oidc,
    Google,
    Entra,
    Keycloak,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenCheckChoice {
    Jwt,
    Introspection,
}

/// How the served endpoint is protected, before the async start-up makes it real.
#[derive(Debug, Clone)]
pub enum AuthPlan {
    None,
    Embedded {
        config: Box<AsConfig>,
        database_url: String,
    },
    /// Tokens from another authorization server; the database keeps the notes and the
    /// audit log.
    External {
        config: Box<portcullis_authz::external::ExternalConfig>,
        database_url: String,
    },
}

/// A checked configuration, ready to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_bind: Option<SocketAddr>,
    pub public_url: String,
    pub host: HostConfig,
    pub shutdown_grace: Duration,
    pub auth: AuthPlan,
    /// Serve HTTPS with these files (else plain HTTP).
    pub tls: Option<TlsFiles>,
}

impl ServeConfig {
    /// Makes calls to `tool` need `scope` (a 403 step-up challenge without it), and lets
    /// the embedded authorization server grant that scope, shown on the consent page as
    /// `description`. The one call a custom tool needs to get least privilege.
    pub fn require_scope(&mut self, tool: &str, scope: &'static str, description: &'static str) {
        if let Ok(set) = portcullis_oauth::ScopeSet::parse(scope) {
            std::sync::Arc::make_mut(&mut self.host.tool_scopes).insert(tool.to_owned(), set);
        }
        if let AuthPlan::Embedded { config, .. } = &mut self.auth
            && !config.scopes.iter().any(|s| s.name == scope)
        {
            config.scopes.push(portcullis_authz::server::ScopeInfo {
                name: scope,
                description,
            });
        }
    }

    /// Makes `tool` ask the person `question` (yes or no) before it runs: a form
    /// elicitation on both protocol eras, refused when the client cannot ask (unless the
    /// operator allows unconfirmed calls), and recorded in the audit log. The one call a
    /// destructive custom tool needs.
    pub fn require_confirmation(&mut self, tool: &str, question: &str) {
        std::sync::Arc::make_mut(&mut self.host.confirm)
            .tools
            .insert(tool.to_owned(), question.to_owned());
    }
}

/// A setting that cannot work, with what would.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ServeArgs {
    pub fn into_config(self) -> Result<ServeConfig, ConfigError> {
        let auth = AuthMode::None;
        let loopback = self.bind.ip().is_loopback();
        if !loopback && self.auth == AuthChoice::None {
            return Err(ConfigError(format!(
                "refusing to serve without authentication on {}: anyone who can reach that address could call the tools. \
                 Bind to a loopback address (--bind 127.0.0.1:{}), or drop --auth none.",
                self.bind,
                self.bind.port()
            )));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError(format!(
                "--max-body-bytes {} is too small for MCP messages: use at least 1024",
                self.max_body_bytes
            )));
        }
        if self.request_timeout == 0 {
            return Err(ConfigError(
                "--request-timeout must be at least 1 second".to_owned(),
            ));
        }

        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                poll: (self.tls_reload_interval > 0)
                    .then(|| Duration::from_secs(self.tls_reload_interval)),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError(
                    "--tls-cert needs --tls-key (PORTCULLIS_TLS_KEY): the certificate's private key, PEM".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "--tls-key needs --tls-cert (PORTCULLIS_TLS_CERT): the certificate chain, PEM"
                        .into(),
                ));
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };

        let (public_url, url_path, url_authority) = match &self.public_url {
            Some(url) => {
                let (authority, path) = parse_public_url(url)?;
                (url.clone(), path, Some(authority))
            }
            None => {
                let path = self.mcp_path.clone().unwrap_or_else(|| "/mcp".to_owned());
                (
                    format!("{scheme}://{}{path}", display_addr(self.bind)),
                    path,
                    None,
                )
            }
        };
        let mcp_path = self.mcp_path.clone().unwrap_or(url_path);
        if !mcp_path.starts_with('/') || mcp_path.len() < 2 {
            return Err(ConfigError(format!(
                "--mcp-path {mcp_path:?} must be an absolute path such as /mcp"
            )));
        }
        if ["/healthz", "/readyz", "/oauth", "/.well-known"]
            .iter()
            .any(|taken| mcp_path == *taken || mcp_path.starts_with(&format!("{taken}/")))
        {
            return Err(ConfigError(format!(
                "--mcp-path {mcp_path:?} is taken by Portcullis's own endpoints (/healthz, /readyz, /oauth/..., /.well-known/...): use another path such as /mcp"
            )));
        }

        let mut origins = Vec::new();
        for rule in &self.allowed_origins {
            if rule.trim().is_empty() {
                continue;
            }
            origins.push(
                OriginRule::parse(rule)
                    .map_err(|e| ConfigError(format!("--allowed-origins: {e}")))?,
            );
        }
        let mut hosts: Vec<String> = self
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        if let Some(authority) = &url_authority {
            hosts.push(authority.clone());
            if let Ok(rule) = OriginRule::parse(&origin_of(&public_url, authority)) {
                origins.push(rule);
            }
        }
        if loopback {
            for name in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.push(name.to_owned());
                for scheme in ["http", "https"] {
                    if let Ok(rule) = OriginRule::parse(&format!("{scheme}://{name}:*")) {
                        origins.push(rule);
                    }
                }
            }
        }

        if self.auth != AuthChoice::Embedded
            && (self.login_provider.is_some() || !self.password_login)
        {
            return Err(ConfigError(
                "--login-provider and --password-login apply only to the embedded authorization server: drop them, or drop --auth".into(),
            ));
        }
        if self.auth != AuthChoice::External {
            for (set, name) in [
                (self.issuer.is_some(), "--issuer"),
                (!self.audience.is_empty(), "--audience"),
                (
                    self.introspection_client_id.is_some(),
                    "--introspection-client-id",
                ),
            ] {
                if set {
                    return Err(ConfigError(format!(
                        "{name} applies only with --auth external: add --auth external, or drop {name}"
                    )));
                }
            }
        }
        let plan = match self.auth {
            AuthChoice::None => AuthPlan::None,
            AuthChoice::External => self.external_plan(&public_url)?,
            AuthChoice::Embedded => {
                for (name, v) in [
                    ("--access-token-ttl", self.access_token_ttl),
                    ("--refresh-token-idle-ttl", self.refresh_token_idle_ttl),
                    ("--refresh-token-max-ttl", self.refresh_token_max_ttl),
                ] {
                    if v < 60 {
                        return Err(ConfigError(format!(
                            "{name} {v} is too short: use at least 60 seconds"
                        )));
                    }
                }
                if !(0..=300).contains(&self.refresh_grace) {
                    return Err(ConfigError(format!(
                        "--refresh-grace {} is out of range: use 0 to 300 seconds",
                        self.refresh_grace
                    )));
                }
                let mut c = AsConfig::for_resource(&public_url).map_err(ConfigError)?;
                c.refresh_grace = self.refresh_grace;
                c.access_ttl = self.access_token_ttl;
                c.refresh_idle_ttl = self.refresh_token_idle_ttl;
                c.refresh_absolute_ttl =
                    self.refresh_token_max_ttl.max(self.refresh_token_idle_ttl);
                c.trusted_proxies = self.trusted_proxies.clone();
                c.master_key_file = self.master_key_file.clone();
                c.master_key_env = std::env::var("PORTCULLIS_MASTER_KEY")
                    .ok()
                    .filter(|v| !v.is_empty());
                c.admin_user = self.admin_user.clone();
                c.admin_password = self.admin_password()?;
                c.allow_signup = self.allow_signup;
                c.upstream = self.upstream_login()?;
                c.password_login = self.password_login;
                if !c.password_login && c.upstream.is_none() {
                    return Err(ConfigError(
                        "--password-login false leaves no way to sign in: add --login-provider, or keep password sign-in".into(),
                    ));
                }
                c.cimd = CimdPolicy {
                    allow_loopback: self.insecure_client_metadata_loopback,
                    extra_roots: self.client_metadata_extra_ca.clone(),
                };
                AuthPlan::Embedded {
                    config: Box::new(c),
                    database_url: self.db.url()?,
                }
            }
        };

        let instance_url = self
            .instance_url
            .as_deref()
            .map(check_instance_url)
            .transpose()?;
        if instance_url.is_some() && tls.is_some() {
            return Err(ConfigError(
                "--instance-url relays requests between instances over plain HTTP, which a listener serving \
                 HTTPS (--tls-cert) does not accept: terminate TLS at the load balancer instead"
                    .into(),
            ));
        }
        if instance_url.is_some() && matches!(plan, AuthPlan::None) {
            return Err(ConfigError(
                "--instance-url needs the database that instances share: drop --auth none".into(),
            ));
        }

        if self.metrics_bind.is_some_and(|m| m == self.bind) {
            return Err(ConfigError(format!(
                "--metrics-bind {} is the address the MCP endpoint serves on: give metrics their own port",
                self.bind
            )));
        }

        Ok(ServeConfig {
            auth: plan,
            bind: self.bind,
            metrics_bind: self.metrics_bind,
            public_url,
            host: HostConfig {
                mcp_path,
                policy: OriginPolicy { origins, hosts },
                auth,
                max_body_bytes: self.max_body_bytes,
                request_timeout: Duration::from_secs(self.request_timeout),
                audit: self.audit,
                tool_calls_per_minute: self.tool_calls_per_minute,
                hide_unauthorized_tools: self.hide_unauthorized_tools,
                step_up_as_tool_error: std::sync::Arc::new(
                    self.step_up_as_tool_error
                        .iter()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                ),
                audit_arguments: self.audit_arguments,
                confirm: std::sync::Arc::new(crate::host::ConfirmPolicy {
                    tools: Default::default(),
                    allow_unconfirmed: self.allow_unconfirmed,
                }),
                audit_retention: Duration::from_secs(self.audit_retention_days.max(1) * 86_400),
                tool_scopes: std::sync::Arc::new(if self.notes {
                    crate::tools::notes::tool_scopes()
                } else {
                    Default::default()
                }),
                method_scopes: std::sync::Arc::new(if self.notes {
                    crate::tools::notes::method_scopes()
                } else {
                    Default::default()
                }),
                instance_url,
                trusted_proxies: self.trusted_proxies.clone().into(),
                ..HostConfig::default()
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            tls,
        })
    }
}

impl ServeArgs {
    /// `--auth external`: the issuer, how its tokens are checked, and what they must say.
    fn external_plan(&self, public_url: &str) -> Result<AuthPlan, ConfigError> {
        use portcullis_authz::external::{ExternalConfig, TokenCheck};
        let issuer = self.issuer.as_deref().ok_or_else(|| {
            ConfigError(
                "--auth external needs --issuer: the authorization server's issuer URL, e.g. https://idp.example.com".into(),
            )
        })?;
        let parsed = url::Url::parse(issuer).map_err(|e| {
            ConfigError(format!(
                "--issuer {issuer:?} is not a URL ({e}): give e.g. https://idp.example.com"
            ))
        })?;
        let loopback_http = parsed.scheme() == "http"
            && self.insecure_issuer_loopback
            && parsed
                .host()
                .is_some_and(|h| portcullis_oauth::redirect::is_loopback_host(&h));
        if parsed.scheme() != "https" && !loopback_http {
            return Err(ConfigError(format!(
                "--issuer {issuer:?} must be an https URL (clients and this server fetch its metadata)"
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ConfigError(format!(
                "--issuer {issuer:?} must not have a query or fragment"
            )));
        }
        let mut c = ExternalConfig::new(issuer, public_url);
        let audiences: Vec<String> = self
            .audience
            .iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if !audiences.is_empty() {
            c.audiences = audiences;
        }
        if !matches!(self.scope_claim.as_str(), "scope" | "scp") {
            return Err(ConfigError(format!(
                "--scope-claim {:?} is not supported: use scope or scp",
                self.scope_claim
            )));
        }
        c.scope_claim = self.scope_claim.clone();
        c.check = match self.token_check {
            TokenCheckChoice::Jwt => TokenCheck::Jwt,
            TokenCheckChoice::Introspection => {
                let client_id = self.introspection_client_id.clone().ok_or_else(|| {
                    ConfigError(
                        "--token-check introspection needs --introspection-client-id (this server's client at the issuer)".into(),
                    )
                })?;
                let client_secret = secret_from_env_or_file(
                    "PORTCULLIS_INTROSPECTION_CLIENT_SECRET",
                    "--introspection-client-secret-file",
                    self.introspection_client_secret_file.as_deref(),
                )?
                .ok_or_else(|| {
                    ConfigError(
                        "--token-check introspection needs the client's secret: --introspection-client-secret-file FILE or PORTCULLIS_INTROSPECTION_CLIENT_SECRET".into(),
                    )
                })?;
                TokenCheck::Introspection {
                    client_id,
                    client_secret,
                }
            }
        };
        c.fetch.allow_loopback = self.insecure_issuer_loopback;
        Ok(AuthPlan::External {
            config: Box::new(c),
            database_url: self.db.url()?,
        })
    }

    /// Federated login: the upstream provider from the --login-* settings, checked.
    fn upstream_login(&self) -> Result<Option<UpstreamConfig>, ConfigError> {
        let Some(choice) = self.login_provider else {
            for (set, name) in [
                (self.login_issuer.is_some(), "--login-issuer"),
                (self.login_client_id.is_some(), "--login-client-id"),
                (
                    self.login_client_secret_file.is_some(),
                    "--login-client-secret-file",
                ),
                (
                    !self.login_allowed_domains.is_empty(),
                    "--login-allowed-domains",
                ),
                (
                    !self.login_required_claims.is_empty(),
                    "--login-required-claims",
                ),
            ] {
                if set {
                    return Err(ConfigError(format!(
                        "{name} applies only with --login-provider (oidc, google, entra, keycloak or github): add it, or drop {name}"
                    )));
                }
            }
            return Ok(None);
        };
        let preset = match choice {
            LoginProviderChoice::Oidc => Preset::Oidc,
            LoginProviderChoice::Google => Preset::Google,
            LoginProviderChoice::Entra => Preset::Entra,
            LoginProviderChoice::Keycloak => Preset::Keycloak,
            LoginProviderChoice::Github => Preset::Github,
        };
        let issuer = match (&self.login_issuer, preset) {
            (Some(_), Preset::Github) => {
                return Err(ConfigError(
                    "--login-issuer does not apply to github (GitHub is not an OpenID provider): drop it".into(),
                ));
            }
            (Some(i), _) => i.clone(),
            (None, p) => p.default_issuer().map(str::to_owned).ok_or_else(|| {
                ConfigError(match p {
                    Preset::Entra => "--login-provider entra needs --login-issuer https://login.microsoftonline.com/TENANT-ID/v2.0 (your directory's tenant id)".into(),
                    Preset::Keycloak => "--login-provider keycloak needs --login-issuer https://KEYCLOAK-HOST/realms/REALM".into(),
                    _ => "--login-provider oidc needs --login-issuer: the provider's issuer URL".into(),
                })
            })?,
        };
        if preset != Preset::Github {
            let parsed = url::Url::parse(&issuer).map_err(|e| {
                ConfigError(format!("--login-issuer {issuer:?} is not a URL ({e})"))
            })?;
            let loopback_http = parsed.scheme() == "http"
                && self.insecure_login_loopback
                && parsed
                    .host()
                    .is_some_and(|h| portcullis_oauth::redirect::is_loopback_host(&h));
            if parsed.scheme() != "https" && !loopback_http {
                return Err(ConfigError(format!(
                    "--login-issuer {issuer:?} must be an https URL"
                )));
            }
            if preset == Preset::Entra
                && ["/common/", "/organizations/", "/consumers/"]
                    .iter()
                    .any(|t| parsed.path().starts_with(t))
            {
                return Err(ConfigError(format!(
                    "--login-issuer {issuer:?} is a multi-tenant endpoint, whose ID tokens name each user's own tenant: give your tenant's issuer, https://login.microsoftonline.com/TENANT-ID/v2.0"
                )));
            }
        }
        let client_id = self.login_client_id.clone().ok_or_else(|| {
            ConfigError(
                "--login-provider needs --login-client-id: this server's client id at the provider"
                    .into(),
            )
        })?;
        let client_secret = secret_from_env_or_file(
            "PORTCULLIS_LOGIN_CLIENT_SECRET",
            "--login-client-secret-file",
            self.login_client_secret_file.as_deref(),
        )?
        .ok_or_else(|| {
            ConfigError(
                "--login-provider needs the client secret: --login-client-secret-file FILE or PORTCULLIS_LOGIN_CLIENT_SECRET".into(),
            )
        })?;
        let allowed_domains: Vec<String> = self
            .login_allowed_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let mut required_claims = Vec::new();
        for rule in &self.login_required_claims {
            let rule = rule.trim();
            if rule.is_empty() {
                continue;
            }
            let (k, v) = rule
                .split_once('=')
                .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--login-required-claims {rule:?} is not CLAIM=VALUE (e.g. groups=mcp-users)"
                    ))
                })?;
            required_claims.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        if preset == Preset::Entra && !allowed_domains.is_empty() {
            return Err(ConfigError(
                "--login-allowed-domains needs verified e-mail addresses, and Entra ID sends no email_verified claim, so it would refuse everyone: \
                 the tenant's issuer already admits only your directory's members and guests; narrow it with --login-required-claims (e.g. groups=GROUP-ID)".into(),
            ));
        }
        if preset.open_to_anyone()
            && allowed_domains.is_empty()
            && required_claims.is_empty()
            && !self.login_allow_any_account
        {
            return Err(ConfigError(format!(
                "--login-provider {} lets anyone with an account there sign in: say who may, with --login-allowed-domains example.com                  (or --login-required-claims), or allow everyone with --login-allow-any-account",
                preset.display_name().unwrap_or("").to_ascii_lowercase()
            )));
        }
        let name = self
            .login_name
            .clone()
            .or_else(|| preset.display_name().map(str::to_owned))
            .unwrap_or_else(|| {
                url::Url::parse(&issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| issuer.clone())
            });
        let mut github = GithubEndpoints::default();
        if let Some(base) = &self.login_github_base {
            let base = base.trim_end_matches('/');
            github = GithubEndpoints {
                authorize: format!("{base}/login/oauth/authorize"),
                token: format!("{base}/login/oauth/access_token"),
                api: format!("{base}/api"),
            };
        }
        Ok(Some(UpstreamConfig {
            preset,
            name,
            issuer,
            client_id,
            client_secret,
            scopes: self
                .login_scopes
                .clone()
                .unwrap_or_else(|| preset.default_scopes().to_owned()),
            allowed_domains,
            required_claims,
            fetch: portcullis_authz::fetch::FetchPolicy {
                allow_loopback: self.insecure_login_loopback,
                extra_roots: None,
            },
            github,
        }))
    }

    /// The first admin's password: PORTCULLIS_ADMIN_PASSWORD, or the file named by
    /// --admin-password-file.
    fn admin_password(&self) -> Result<Option<String>, ConfigError> {
        secret_from_env_or_file(
            "PORTCULLIS_ADMIN_PASSWORD",
            "--admin-password-file",
            self.admin_password_file.as_deref(),
        )
    }
}

/// A secret given either in the environment variable `env` or in the file named by the
/// setting `flag` (never both): `None` when neither is set.
fn secret_from_env_or_file(
    env: &str,
    flag: &str,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, ConfigError> {
    let value = std::env::var(env).ok().filter(|v| !v.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "{env} and {flag} are both set: keep one"
        ))),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(file)) => crate::settings::read_secret_file(flag, file)
            .map(Some)
            .map_err(ConfigError),
        (None, None) => Ok(None),
    }
}

/// `--instance-url`: `http://host:port`, nothing after it.
fn check_instance_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError(format!(
            "--instance-url {raw:?} {why}: give this instance's address inside your network, like http://10.0.0.5:8080"
        ))
    };
    let uri: http::Uri = raw.parse().map_err(|_| bad("is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "must start with http:// (instances talk plain HTTP to each other)",
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("must not have a path"));
    }
    Ok(format!(
        "http://{}",
        uri.authority().map_or("", |a| a.as_str())
    ))
}

fn display_addr(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
    }
}

/// Splits `scheme://authority/path` into (authority, path), refusing what a client could not use.
fn parse_public_url(url: &str) -> Result<(String, String), ConfigError> {
    let bad = |why: &str| {
        ConfigError(format!(
            "--public-url {url:?} {why}: give the MCP endpoint's full URL, e.g. https://mcp.example.com/mcp"
        ))
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("must use https (or http for local testing)"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("has no valid host"));
    }
    if path.len() < 2 {
        return Err(bad("needs the endpoint's path"));
    }
    Ok((authority.to_ascii_lowercase(), path.to_owned()))
}

fn origin_of(public_url: &str, authority: &str) -> String {
    let scheme = public_url.split("://").next().unwrap_or("https");
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let mut argv = vec!["portcullis"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().serve.into_config()
    }

    #[test]
    fn instance_url_metrics_bind_and_refresh_grace_are_checked() {
        let c = config(&["--instance-url", "http://10.0.0.5:8080/"]).unwrap();
        assert_eq!(c.host.instance_url.as_deref(), Some("http://10.0.0.5:8080"));
        for (bad, says) in [
            ("https://10.0.0.5:8080", "must start with http://"),
            ("http://10.0.0.5:8080/mcp", "must not have a path"),
            ("10.0.0.5:8080", "must start with http://"),
            ("not a url", "is not a URL"),
        ] {
            let e = config(&["--instance-url", bad]).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains("--instance-url"),
                "{bad}: {e}"
            );
        }
        let e = config(&["--auth", "none", "--instance-url", "http://10.0.0.5:8080"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("drop --auth none"), "{e}");
        let e = config(&["--metrics-bind", "127.0.0.1:8080"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("give metrics their own port"), "{e}");
        let c = config(&["--metrics-bind", "127.0.0.1:9464"]).unwrap();
        assert_eq!(c.metrics_bind, Some("127.0.0.1:9464".parse().unwrap()));
        let e = config(&["--refresh-grace", "301"]).unwrap_err().to_string();
        assert!(e.contains("--refresh-grace 301 is out of range"), "{e}");
        assert!(config(&["--refresh-grace", "0"]).is_ok());
    }

    #[test]
    fn tls_needs_both_files_and_makes_the_default_url_https() {
        let c = config(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(c.public_url, "https://127.0.0.1:8080/mcp");
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("c.pem"));
        assert_eq!(tls.poll, Some(Duration::from_secs(5)));
        let c = config(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-reload-interval",
            "0",
        ])
        .unwrap();
        assert_eq!(c.tls.unwrap().poll, None, "0: only on SIGHUP");
        assert!(config(&[]).unwrap().tls.is_none());
        let e = config(&["--tls-cert", "c.pem"]).unwrap_err().to_string();
        assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
        let e = config(&["--tls-key", "k.pem"]).unwrap_err().to_string();
        assert!(e.contains("--tls-key needs --tls-cert"), "{e}");
        let e = config(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--instance-url",
            "http://10.0.0.5:8080",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("terminate TLS at the load balancer"), "{e}");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let c = config(&["--trusted-proxies", "127.0.0.1,10.0.0.0/8,fd00::/8"]).unwrap();
        assert_eq!(c.host.trusted_proxies.len(), 3);
        let AuthPlan::Embedded {
            config: as_config, ..
        } = &c.auth
        else {
            panic!("embedded by default")
        };
        assert_eq!(as_config.trusted_proxies.len(), 3);
        assert!(c.host.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));
        let mut argv = vec!["portcullis", "--trusted-proxies", "10.0.0.0/8,proxy.local"];
        let e = match Cli::try_parse_from(argv.drain(..)) {
            Ok(_) => panic!("a name is not an address"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("--trusted-proxies"), "{e}");
        assert!(e.contains("is not an IP address or range"), "{e}");
    }

    #[test]
    fn defaults_serve_mcp_on_loopback() {
        let c = config(&[]).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8080/mcp");
        assert_eq!(c.host.mcp_path, "/mcp");
        assert_eq!(
            c.host
                .policy
                .check(Some("http://localhost:6274"), Some("localhost:8080")),
            None
        );
        assert!(
            c.host
                .policy
                .check(Some("https://evil.example"), Some("127.0.0.1:8080"))
                .is_some()
        );
    }

    #[test]
    fn require_scope_guards_the_tool_and_lets_the_server_grant_it() {
        let mut c = config(&[]).unwrap();
        c.require_scope("greet", "greet", "Be greeted by name");
        assert_eq!(c.host.tool_scopes["greet"].to_string(), "greet");
        assert!(
            c.host.tool_scopes.contains_key("notes_create"),
            "the built-in scopes stay"
        );
        let AuthPlan::Embedded { config, .. } = &c.auth else {
            panic!("embedded by default")
        };
        assert!(
            config
                .scopes
                .iter()
                .any(|s| s.name == "greet" && s.description == "Be greeted by name")
        );
    }

    #[test]
    fn unauthenticated_public_bind_is_refused_with_advice() {
        let err = config(&["--auth", "none", "--bind", "0.0.0.0:8080"])
            .unwrap_err()
            .0;
        assert!(
            err.contains("refusing to serve without authentication"),
            "{err}"
        );
        assert!(err.contains("--bind 127.0.0.1:8080"), "{err}");
    }

    #[test]
    fn public_url_sets_path_and_allowed_host() {
        let c = config(&["--public-url", "https://mcp.example.com/tools/mcp"]).unwrap();
        assert_eq!(c.host.mcp_path, "/tools/mcp");
        assert_eq!(
            c.host
                .policy
                .check(Some("https://mcp.example.com"), Some("mcp.example.com")),
            None
        );
    }

    #[test]
    fn upstream_login_settings_are_checked_and_presets_fill_in() {
        let secret_file =
            std::env::temp_dir().join(format!("portcullis-login-secret-{}", std::process::id()));
        std::fs::write(&secret_file, "s3cret\n").unwrap();
        let secret = secret_file.to_str().unwrap();
        let base = [
            "--login-client-id",
            "cid",
            "--login-client-secret-file",
            secret,
        ];
        let with = |extra: &[&str]| {
            let mut a: Vec<&str> = base.to_vec();
            a.extend_from_slice(extra);
            config(&a)
        };
        let as_config = |c: ServeConfig| match c.auth {
            AuthPlan::Embedded { config, .. } => *config,
            other => panic!("{other:?}"),
        };
        let google = as_config(
            with(&[
                "--login-provider",
                "google",
                "--login-allowed-domains",
                "@Corp.Example",
            ])
            .unwrap(),
        );
        let up = google.upstream.unwrap();
        assert_eq!(up.issuer, "https://accounts.google.com");
        assert_eq!(up.name, "Google");
        assert_eq!(up.client_secret, "s3cret");
        assert_eq!(up.allowed_domains, vec!["corp.example".to_owned()]);
        assert!(
            !format!("{up:?}").contains("s3cret"),
            "Debug hides the secret"
        );
        let kc = as_config(
            with(&[
                "--login-provider",
                "keycloak",
                "--login-issuer",
                "https://kc.example/realms/staff",
                "--login-required-claims",
                "groups=mcp, email_verified=true",
                "--password-login",
                "false",
            ])
            .unwrap(),
        );
        assert!(!kc.password_login);
        let up = kc.upstream.unwrap();
        assert_eq!(up.name, "Keycloak");
        assert_eq!(
            up.required_claims,
            vec![
                ("groups".to_owned(), "mcp".to_owned()),
                ("email_verified".to_owned(), "true".to_owned())
            ]
        );
        for (args, needle) in [
            (
                &["--login-provider", "google"][..],
                "--login-allow-any-account",
            ),
            (
                &["--login-provider", "github"][..],
                "--login-allowed-domains",
            ),
            (&["--login-provider", "oidc"][..], "needs --login-issuer"),
            (&["--login-provider", "entra"][..], "TENANT-ID"),
            (
                &[
                    "--login-provider",
                    "entra",
                    "--login-issuer",
                    "https://login.microsoftonline.com/t1/v2.0",
                    "--login-allowed-domains",
                    "x.com",
                ][..],
                "email_verified",
            ),
            (
                &[
                    "--login-provider",
                    "entra",
                    "--login-issuer",
                    "https://login.microsoftonline.com/common/v2.0",
                ][..],
                "multi-tenant",
            ),
            (
                &[
                    "--login-provider",
                    "oidc",
                    "--login-issuer",
                    "http://idp.example",
                ][..],
                "https",
            ),
            (
                &[
                    "--login-provider",
                    "github",
                    "--login-issuer",
                    "https://github.com",
                    "--login-allow-any-account",
                ][..],
                "does not apply to github",
            ),
            (
                &[
                    "--login-provider",
                    "google",
                    "--login-required-claims",
                    "hd",
                ][..],
                "CLAIM=VALUE",
            ),
        ] {
            let err = with(args).unwrap_err().0;
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let err = config(&["--login-provider", "google", "--login-allow-any-account"])
            .unwrap_err()
            .0;
        assert!(err.contains("--login-client-id"), "{err}");
        let err = config(&["--login-issuer", "https://idp.example"])
            .unwrap_err()
            .0;
        assert!(err.contains("only with --login-provider"), "{err}");
        let err = config(&["--password-login", "false"]).unwrap_err().0;
        assert!(err.contains("no way to sign in"), "{err}");
        let err = config(&["--auth", "none", "--password-login", "false"])
            .unwrap_err()
            .0;
        assert!(err.contains("embedded authorization server"), "{err}");
        std::fs::remove_file(&secret_file).ok();
    }

    #[test]
    fn bad_settings_name_the_setting() {
        for (args, needle) in [
            (&["--public-url", "mcp.example.com/mcp"][..], "--public-url"),
            (&["--public-url", "ftp://x/mcp"][..], "https"),
            (&["--public-url", "https://x"][..], "path"),
            (&["--mcp-path", "mcp"][..], "--mcp-path"),
            (
                &["--mcp-path", "/readyz"][..],
                "is taken by Portcullis's own endpoints",
            ),
            (&["--mcp-path", "/oauth/token"][..], "is taken"),
            (&["--allowed-origins", "evil"][..], "--allowed-origins"),
            (&["--max-body-bytes", "10"][..], "--max-body-bytes"),
            (&["--request-timeout", "0"][..], "--request-timeout"),
        ] {
            let err = config(args).unwrap_err().0;
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
