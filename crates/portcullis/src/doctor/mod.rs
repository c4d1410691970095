//! `portcullis doctor URL`: checks a deployed remote MCP server the way remote MCP clients
//! (Claude, ChatGPT, VS Code, Cursor, the MCP Inspector) meet it, and says what to fix.
//!
//! It relies only on the MCP authorization spec and the RFCs under it (RFC 9728 protected
//! resource metadata, RFC 8414 authorization server metadata, RFC 7591 registration,
//! client ID metadata documents), never on Portcullis internals, so it works against any
//! MCP server. Each check is a [`Row`] with a stable `id`:
//!
//! | id | what |
//! | --- | --- |
//! | `reachability` | the URL answers; https with a valid certificate |
//! | `challenge` | an unauthenticated `initialize` gets 401 + `Bearer resource_metadata="<absolute URL>"` |
//! | `challenge_scope` | the challenge names a `scope` |
//! | `prm_path` | protected resource metadata at the path-inserted well-known URL |
//! | `prm_root` | protected resource metadata at the root well-known URL |
//! | `prm_pointer` | the document `resource_metadata` points to |
//! | `as_metadata` | authorization server metadata (RFC 8414, then OIDC discovery), exact issuer |
//! | `pkce` | `code_challenge_methods_supported` includes S256 |
//! | `registration` | client ID metadata documents and/or dynamic registration |
//! | `cors_mcp` | CORS preflight and headers on the MCP endpoint |
//! | `cors_oauth` | CORS on the metadata documents and the authorization server's endpoints |
//! | `redirect_claude`, `redirect_chatgpt`, `redirect_vscode`, `redirect_cursor`, `redirect_inspector` | each client's redirect URIs accepted |

mod challenge;
mod cli;
mod http;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use ::http::Method;
use serde::Serialize;
use serde_json::{Value, json};
use url::Url;

pub use cli::{DoctorArgs, LONG_ABOUT, command};
pub use http::MAX_BODY_BYTES;

use self::http::{Client, FetchError, Response};

/// The browser origin of the MCP Inspector's web UI.
pub const INSPECTOR_ORIGIN: &str = "http://localhost:6274";
/// The protocol version of the `initialize` request sent.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// How to run the checks.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time limit of each HTTP exchange.
    pub timeout: Duration,
    /// Extra trusted root certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Register one test client per client family to check its redirect URIs.
    pub register: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            ca_file: None,
            register: true,
        }
    }
}

/// A usage error: the checks could not start (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable identifier (see the module documentation).
    pub id: &'static str,
    /// What is checked, for people.
    pub check: &'static str,
    pub result: Outcome,
    /// One line: what was found.
    pub detail: String,
    /// What to change, for failures and warnings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Everything the doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The MCP URL, as given.
    pub url: String,
    pub checks: Vec<Row>,
    /// Things to know that are not checks (e.g. the test registrations made).
    pub notes: Vec<String>,
}

impl Report {
    /// The row with this id.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.checks.iter().find(|r| r.id == id)
    }

    /// Ids of the rows with this outcome.
    pub fn ids(&self, outcome: Outcome) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|r| r.result == outcome)
            .map(|r| r.id)
            .collect()
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|r| r.result == outcome).count()
    }

    /// True when some check failed.
    pub fn failed(&self) -> bool {
        self.count(Outcome::Fail) > 0
    }
}

/// A client family whose redirect URIs are checked by registering them.
#[derive(Debug, Clone, Copy)]
pub struct ClientFamily {
    pub id: &'static str,
    pub name: &'static str,
    pub redirect_uris: &'static [&'static str],
    pub application_type: &'static str,
}

/// The redirect URIs each client sends (as reported by the clients' users; the digest of the
/// MCP spec lists them), registered as one body per client.
pub const CLIENT_FAMILIES: &[ClientFamily] = &[
    ClientFamily {
        id: "redirect_claude",
        name: "Claude",
        redirect_uris: &[
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
        ],
        application_type: "web",
    },
    ClientFamily {
        id: "redirect_chatgpt",
        name: "ChatGPT",
        redirect_uris: &["https://chatgpt.com/connector_platform_oauth_redirect"],
        application_type: "web",
    },
    ClientFamily {
        id: "redirect_vscode",
        name: "VS Code",
        redirect_uris: &["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
        application_type: "native",
    },
    ClientFamily {
        id: "redirect_cursor",
        name: "Cursor",
        redirect_uris: &[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:54321/callback",
        ],
        application_type: "native",
    },
    ClientFamily {
        id: "redirect_inspector",
        name: "MCP Inspector",
        redirect_uris: &["http://localhost:6274/oauth/callback"],
        application_type: "native",
    },
];

/// Checks the MCP server at `url`. Fails only when the checks cannot start (a bad URL or
/// an unreadable `ca_file`); everything the server does wrong is a row in the report.
pub async fn run(url: &str, options: &Options) -> Result<Report, UsageError> {
    let target = parse_target(url)?;
    let client = Client::new(options.timeout, options.ca_file.as_deref()).map_err(UsageError)?;
    let mut doctor = Doctor {
        client,
        raw: url.trim().to_owned(),
        url: target,
        register: options.register,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    doctor.check_all().await;
    Ok(Report {
        url: doctor.raw,
        checks: doctor.rows,
        notes: doctor.notes,
    })
}

fn parse_target(raw: &str) -> Result<Url, UsageError> {
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|e| {
        UsageError(format!(
            "{raw:?} is not an absolute URL ({e}); give the MCP endpoint's full URL, e.g. https://mcp.example.com/mcp"
        ))
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(UsageError(format!(
            "{raw:?} is not an http(s) URL; give the MCP endpoint's full URL, e.g. https://mcp.example.com/mcp"
        )));
    }
    if url.host().is_none() {
        return Err(UsageError(format!("{raw:?} has no host")));
    }
    if url.fragment().is_some() {
        return Err(UsageError(format!(
            "{raw:?} has a #fragment, which no MCP URL has; drop it"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UsageError(format!(
            "{raw:?} holds credentials; give the URL without user:password@"
        )));
    }
    Ok(url)
}

/// True for `localhost`, `*.localhost` and loopback addresses.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `https://h/.well-known/{suffix}{path}`: the well-known URL with the path inserted
/// (RFC 8414 section 3.1, RFC 9728 section 3.1), a terminating `/` removed first.
fn well_known(base: &Url, suffix: &str) -> Option<Url> {
    let path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_fragment(None);
    url.set_path(&format!("/.well-known/{suffix}{path}"));
    Some(url)
}

fn root_well_known(base: &Url, suffix: &str) -> Option<Url> {
    let mut url = base.join(&format!("/.well-known/{suffix}")).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// A fetched JSON document, or why there is none.
#[derive(Debug, Clone)]
enum Doc {
    Found {
        json: serde_json::Map<String, Value>,
        response: Box<Response>,
    },
    Problem {
        detail: String,
        fix: String,
        /// 404 (or 410): simply not there.
        missing: bool,
    },
}

/// A protected resource metadata document and how it fared.
#[derive(Debug, Clone)]
struct Prm {
    outcome: Outcome,
    detail: String,
    fix: Option<String>,
    doc: Option<serde_json::Map<String, Value>>,
    missing: bool,
    /// The `resource` differs from the MCP URL.
    mismatch: bool,
}

struct Doctor {
    client: Client,
    /// The URL as given (what `resource` must equal).
    raw: String,
    url: Url,
    register: bool,
    rows: Vec<Row>,
    notes: Vec<String>,
}

const SKIP_UNREACHABLE: &str = "the server is not reachable (see above)";

struct Ids;
impl Ids {
    const ALL: &'static [(&'static str, &'static str)] = &[
        ("reachability", "Reachability and TLS"),
        ("challenge", "401 challenge (WWW-Authenticate)"),
        ("challenge_scope", "Challenge names a scope"),
        ("prm_path", "Resource metadata, path-inserted URL"),
        ("prm_root", "Resource metadata, root URL"),
        ("prm_pointer", "Resource metadata, resource_metadata URL"),
        ("as_metadata", "Authorization server metadata"),
        ("pkce", "PKCE S256 advertised"),
        ("registration", "Client registration (CIMD / DCR)"),
        ("redirect_claude", "Redirect URIs: Claude"),
        ("redirect_chatgpt", "Redirect URIs: ChatGPT"),
        ("redirect_vscode", "Redirect URIs: VS Code"),
        ("redirect_cursor", "Redirect URIs: Cursor"),
        ("redirect_inspector", "Redirect URIs: MCP Inspector"),
        ("cors_mcp", "CORS on the MCP endpoint"),
        ("cors_oauth", "CORS on discovery and token endpoints"),
    ];

    fn title(id: &str) -> (&'static str, &'static str) {
        Self::ALL
            .iter()
            .copied()
            .find(|(i, _)| *i == id)
            .unwrap_or(("unknown", "unknown check"))
    }
}

impl Doctor {
    fn push(&mut self, id: &str, result: Outcome, detail: impl Into<String>, fix: Option<String>) {
        let (id, check) = Ids::title(id);
        self.rows.push(Row {
            id,
            check,
            result,
            detail: detail.into(),
            fix,
        });
    }
    fn pass(&mut self, id: &str, detail: impl Into<String>) {
        self.push(id, Outcome::Pass, detail, None);
    }
    fn warn(&mut self, id: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(id, Outcome::Warn, detail, Some(fix.into()));
    }
    fn fail(&mut self, id: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(id, Outcome::Fail, detail, Some(fix.into()));
    }
    fn skip(&mut self, id: &str, detail: impl Into<String>) {
        self.push(id, Outcome::Skip, detail, None);
    }
    /// Skips every check not reported yet, in the canonical order.
    fn skip_rest(&mut self, detail: &str) {
        for (id, _) in Ids::ALL {
            if !self.rows.iter().any(|r| r.id == *id) {
                self.skip(id, detail);
            }
        }
    }

    /// Puts the rows in the canonical order.
    fn sort(&mut self) {
        let order = |id: &str| {
            Ids::ALL
                .iter()
                .position(|(i, _)| *i == id)
                .unwrap_or(usize::MAX)
        };
        self.rows.sort_by_key(|r| order(r.id));
    }

    async fn check_all(&mut self) {
        let init = self.initialize(None).await;
        let response = match init {
            Ok(r) => r,
            Err(e) => {
                self.unreachable(&e);
                self.skip_rest(SKIP_UNREACHABLE);
                return;
            }
        };
        self.reachability(&response);
        let pointer = self.challenge(&response);
        if response.status.is_success() {
            self.skip_rest(
                "the server answered without asking for a token, so there is no OAuth to check",
            );
            // CORS still matters to browser clients of an open server.
            self.rows
                .retain(|r| r.id != "cors_mcp" && r.id != "cors_oauth");
            self.cors_mcp().await;
            self.skip("cors_oauth", "no OAuth on this server");
            self.sort();
            return;
        }

        let prm_doc = self.resource_metadata(pointer.as_ref()).await;
        let as_meta = match &prm_doc {
            Some(doc) => self.authorization_server(doc).await,
            None => {
                for id in ["as_metadata", "pkce"] {
                    self.skip(
                        id,
                        "no usable protected resource metadata names an authorization server",
                    );
                }
                None
            }
        };
        let cors_refused_on_purpose = self.cors_mcp().await;
        self.cors_oauth(prm_doc.as_ref(), as_meta.as_ref(), cors_refused_on_purpose)
            .await;
        match &as_meta {
            Some(meta) => {
                self.registration(meta);
                self.redirects(meta).await;
            }
            None => {
                self.skip("registration", "no authorization server metadata");
                for family in CLIENT_FAMILIES {
                    self.skip(family.id, "no authorization server metadata");
                }
            }
        }
        self.sort();
    }

    /// The unauthenticated `initialize` POST a client starts with.
    async fn initialize(&self, origin: Option<&str>) -> Result<Response, FetchError> {
        let body = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "portcullis-doctor", "version": env!("CARGO_PKG_VERSION")}
            }
        });
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        self.client
            .send(
                Method::POST,
                &self.url,
                &headers,
                Some(body.to_string().into_bytes()),
            )
            .await
    }

    // ------------------------------------------------------------------ 1. reachability

    fn unreachable(&mut self, e: &FetchError) {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let fix = match e {
            FetchError::Dns { .. } => format!(
                "check the host name {host}: it must resolve in public DNS for Claude and ChatGPT, whose connections come from their own servers"
            ),
            FetchError::Connect { .. } => format!(
                "start the server, or open the port to the internet (firewall, security group, WAF); remote clients connect from their vendors' servers, so {host} must be reachable from outside your network"
            ),
            FetchError::Tls { .. } => "install a certificate from a public CA (e.g. Let's Encrypt) valid for this host name, with its intermediate certificates; for a private CA pass --ca-file (but hosted clients such as Claude will still refuse it)".to_owned(),
            FetchError::Timeout(_) => "check that the server is up and that nothing (firewall, proxy) silently drops the connection; raise --timeout if it is just slow".to_owned(),
            FetchError::TooLarge => "answer an unauthenticated initialize with a short 401".to_owned(),
            FetchError::BadUrl(_) | FetchError::Http(_) => "check that the URL is the MCP endpoint, served over HTTP/1.1 or HTTP/2".to_owned(),
        };
        self.fail(
            "reachability",
            format!("{} did not answer: {e}", self.url),
            fix,
        );
    }

    fn reachability(&mut self, r: &Response) {
        let ms = r.elapsed.as_millis();
        let host = self.url.host_str().unwrap_or_default().to_owned();
        if self.url.scheme() == "https" {
            self.pass(
                "reachability",
                format!(
                    "https, certificate valid for {host}; HTTP {} in {ms} ms",
                    r.status.as_u16()
                ),
            );
        } else if is_loopback(&self.url) {
            self.pass(
                "reachability",
                format!("plain http on the loopback host {host} (fine for local testing); HTTP {} in {ms} ms", r.status.as_u16()),
            );
        } else {
            self.warn(
                "reachability",
                format!("plain http on {host}: tokens would cross the network unencrypted, and Claude, ChatGPT and most clients require https for remote servers; HTTP {} in {ms} ms", r.status.as_u16()),
                "serve https with a certificate from a public CA (a reverse proxy such as Caddy or nginx in front works) and give clients the https URL",
            );
        }
    }

    // ------------------------------------------------------------------ 2. the challenge

    /// Checks the answer to the unauthenticated `initialize`; returns the absolute
    /// `resource_metadata` URL when there is one.
    fn challenge(&mut self, r: &Response) -> Option<Url> {
        let status = r.status.as_u16();
        let path_prm = well_known(&self.url, "oauth-protected-resource")
            .map(|u| u.to_string())
            .unwrap_or_default();
        let example = format!(
            "WWW-Authenticate: Bearer resource_metadata=\"{path_prm}\", scope=\"<scopes>\""
        );
        if r.status.is_success() {
            self.warn(
                "challenge",
                format!("HTTP {status} to an initialize without a token: this server does not require authorization"),
                format!("if it should, answer requests without a valid token with 401 and {example}"),
            );
            return None;
        }
        if r.status.is_redirection() {
            let to = r.header("location").unwrap_or("(no Location)").to_owned();
            self.fail(
                "challenge",
                format!("HTTP {status} redirect to {to}: MCP clients do not follow redirects of their POSTs"),
                format!("give clients the final URL ({to}), or serve the MCP endpoint at {} itself", self.raw),
            );
            self.skip("challenge_scope", "no 401");
            return None;
        }
        if status != 401 {
            let hint = match status {
                403 => {
                    "clients start OAuth only on a 401; a 403 here often comes from a Host or Origin check that does not know the public host name, or from a WAF"
                }
                404 | 405 => {
                    "is this the MCP endpoint (it often ends in /mcp)? It must accept POST"
                }
                400 | 406 | 415 => {
                    "the server refused the request before authentication; check the token first and answer 401 without one"
                }
                _ => "clients need a 401 to start OAuth",
            };
            self.fail(
                "challenge",
                format!(
                    "HTTP {status} (expected 401) to an initialize without a token: {}",
                    r.excerpt()
                ),
                format!("{hint}: answer 401 with {example}"),
            );
            self.skip("challenge_scope", "no 401");
            return None;
        }
        let header = r.header_all("www-authenticate").unwrap_or_default();
        let challenges = challenge::parse(&header);
        let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        else {
            let found = if header.is_empty() {
                "no WWW-Authenticate header".to_owned()
            } else {
                format!("WWW-Authenticate: {header}")
            };
            self.fail(
                "challenge",
                format!("401 with {found}, so clients cannot discover how to log in"),
                format!("send {example}"),
            );
            self.skip("challenge_scope", "no Bearer challenge");
            return None;
        };
        match bearer.param("scope") {
            Some(scope) if !scope.trim().is_empty() => {
                self.pass("challenge_scope", format!("scope=\"{scope}\""))
            }
            _ => self.warn(
                "challenge_scope",
                "the challenge has no scope=, so clients fall back to all of scopes_supported (VS Code requests every one, and IdPs reject foreign ones)",
                "add scope=\"<the scopes a client needs to use the server>\" to the challenge",
            ),
        }
        let Some(rm) = bearer.param("resource_metadata") else {
            self.fail(
                "challenge",
                "401 with a Bearer challenge but no resource_metadata: Claude does not start OAuth without it (\"Couldn't reach the MCP server\")",
                format!("send {example}"),
            );
            return None;
        };
        match Url::parse(rm) {
            Ok(abs) if abs.scheme() == "https" || abs.scheme() == "http" => {
                self.pass(
                    "challenge",
                    format!("401 with Bearer resource_metadata=\"{rm}\""),
                );
                Some(abs)
            }
            Ok(_) => {
                self.fail(
                    "challenge",
                    format!("resource_metadata=\"{rm}\" is not an http(s) URL"),
                    format!("send {example}"),
                );
                None
            }
            Err(_) => {
                let resolved = self
                    .url
                    .join(rm)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| path_prm.clone());
                self.fail(
                    "challenge",
                    format!("resource_metadata=\"{rm}\" is a relative URL; Claude and other clients need an absolute one and do not start OAuth"),
                    format!("send the absolute URL built from the public host: resource_metadata=\"{resolved}\" (behind a proxy, configure the public URL or honour X-Forwarded-Proto/Host)"),
                );
                None
            }
        }
    }

    // ------------------------------------------------------------------ 3. resource metadata

    async fn fetch_json(&self, url: &Url, origin: Option<&str>) -> Doc {
        let mut headers = vec![("accept", "application/json")];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let r = match self.client.get(url, &headers).await {
            Ok(r) => r,
            Err(e) => {
                return Doc::Problem {
                    detail: format!("{url} could not be fetched: {e}"),
                    fix: "serve the document at this URL, reachable like the MCP endpoint"
                        .to_owned(),
                    missing: false,
                };
            }
        };
        let status = r.status.as_u16();
        if r.status.is_redirection() {
            let to = r.header("location").unwrap_or("(no Location)").to_owned();
            return Doc::Problem {
                detail: format!("{url} redirects (HTTP {status}) to {to}"),
                fix: "serve the document at this URL itself: not every client follows redirects for metadata".to_owned(),
                missing: false,
            };
        }
        if status == 401 || status == 403 {
            return Doc::Problem {
                detail: format!("{url} answers HTTP {status}: it is behind authentication"),
                fix: "serve /.well-known/* without authentication (a common bug: the auth middleware also covers the well-known paths)".to_owned(),
                missing: false,
            };
        }
        if status != 200 {
            return Doc::Problem {
                detail: format!("{url} answers HTTP {status}"),
                fix: "serve the JSON document here with 200".to_owned(),
                missing: status == 404 || status == 410,
            };
        }
        match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Object(json)) => Doc::Found {
                json,
                response: Box::new(r),
            },
            Ok(_) | Err(_) => Doc::Problem {
                detail: format!(
                    "{url} answers 200 but not with a JSON object: {}",
                    r.excerpt()
                ),
                fix: "serve the metadata as a JSON object with Content-Type: application/json"
                    .to_owned(),
                missing: false,
            },
        }
    }

    /// Fetches and judges a protected resource metadata document.
    async fn prm(&self, url: &Url) -> Prm {
        match self.fetch_json(url, None).await {
            Doc::Problem {
                detail,
                fix,
                missing,
            } => Prm {
                outcome: Outcome::Fail,
                detail,
                fix: Some(fix),
                doc: None,
                missing,
                mismatch: false,
            },
            Doc::Found { json, .. } => self.judge_prm(url, json),
        }
    }

    fn judge_prm(&self, url: &Url, json: serde_json::Map<String, Value>) -> Prm {
        let fail = |detail: String, fix: String, mismatch: bool, doc| Prm {
            outcome: Outcome::Fail,
            detail,
            fix: Some(fix),
            doc,
            missing: false,
            mismatch,
        };
        let expected = &self.raw;
        let resource = json
            .get("resource")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let servers: Vec<String> = json
            .get("authorization_servers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let Some(resource) = resource else {
            return fail(
                format!("{url} has no \"resource\" (RFC 9728 requires it)"),
                format!("add \"resource\": \"{expected}\""),
                false,
                None,
            );
        };
        let mut outcome = Outcome::Pass;
        let mut note = String::new();
        let mut fix = None;
        if &resource != expected {
            let same_after_parsing = Url::parse(&resource).ok().is_some_and(|r| r == self.url);
            if same_after_parsing {
                outcome = Outcome::Warn;
                note = format!(
                    "; but \"resource\" is \"{resource}\", which differs from the URL given, \"{expected}\", in spelling only"
                );
                fix = Some(format!(
                    "some clients compare the strings: give users exactly \"{resource}\", or make \"resource\" \"{expected}\""
                ));
            } else {
                return fail(
                    format!(
                        "\"resource\" is \"{resource}\" but the MCP URL is \"{expected}\"; Claude, VS Code and other clients reject the mismatch"
                    ),
                    format!(
                        "set \"resource\" to exactly \"{expected}\" (scheme, host, port, path and trailing slash as users type it), or give users the URL \"{resource}\""
                    ),
                    true,
                    Some(json),
                );
            }
        }
        if servers.is_empty() {
            return fail(
                format!("{url} lists no \"authorization_servers\""),
                "add \"authorization_servers\": [\"<your authorization server's issuer URL>\"]"
                    .to_owned(),
                false,
                None,
            );
        }
        Prm {
            outcome,
            detail: format!(
                "resource \"{resource}\", authorization server {}{note}",
                servers.join(", ")
            ),
            fix,
            doc: Some(json),
            missing: false,
            mismatch: false,
        }
    }

    /// The three ways to the protected resource metadata; returns the document clients
    /// would use (the pointer's, else the path-inserted one, else the root one).
    async fn resource_metadata(
        &mut self,
        pointer: Option<&Url>,
    ) -> Option<serde_json::Map<String, Value>> {
        let path_url = well_known(&self.url, "oauth-protected-resource");
        let root_url = root_well_known(&self.url, "oauth-protected-resource");
        let (Some(path_url), Some(root_url)) = (path_url, root_url) else {
            self.skip_rest("the well-known URLs cannot be built from this URL");
            return None;
        };
        let has_path = !self.url.path().trim_end_matches('/').is_empty();

        let path = if has_path {
            Some(self.prm(&path_url).await)
        } else {
            None
        };
        let root = self.prm(&root_url).await;
        let ptr = match pointer {
            Some(p) if *p == path_url && path.is_some() => path.clone(),
            Some(p) if *p == root_url => Some(root.clone()),
            Some(p) => Some(self.prm(p).await),
            None => None,
        };
        let usable = |p: &Option<Prm>| {
            p.as_ref()
                .filter(|p| p.outcome != Outcome::Fail)
                .and_then(|p| p.doc.clone())
        };

        match &path {
            None => self.skip(
                "prm_path",
                format!(
                    "the MCP URL has no path, so the path-inserted URL is the root one, {root_url}"
                ),
            ),
            Some(p) => {
                let detail = format!("{path_url}: {}", strip_url(&p.detail, &path_url));
                let fix = if p.missing {
                    Some(format!(
                        "serve the protected resource metadata at {path_url} (Claude, the Inspector and the SDKs look there first), with \"resource\": \"{}\"",
                        self.raw
                    ))
                } else {
                    p.fix.clone()
                };
                self.push("prm_path", p.outcome, detail, fix);
            }
        }

        let others_work = usable(&path).is_some() || usable(&ptr).is_some();
        let detail = format!("{root_url}: {}", strip_url(&root.detail, &root_url));
        if root.outcome == Outcome::Fail && others_work && (root.missing || root.mismatch) {
            // Clients try the root URL last, so with a working document elsewhere this
            // breaks only clients that look nowhere else.
            let why = if root.missing {
                "clients that try only the root URL (older SDKs, some gateways) will not find the metadata"
            } else {
                "clients use it only when the other locations fail, so this is harmless unless they do; a server with one MCP endpoint should say the same thing at both"
            };
            let fix = if root.missing {
                format!(
                    "also serve the document at {root_url}, with \"resource\": \"{}\"",
                    self.raw
                )
            } else {
                root.fix.clone().unwrap_or_default()
            };
            self.warn("prm_root", format!("{detail}; {why}"), fix);
        } else {
            let fix = if root.missing {
                Some(format!(
                    "serve the protected resource metadata at {root_url}, with \"resource\": \"{}\" and your authorization server in \"authorization_servers\"",
                    self.raw
                ))
            } else {
                root.fix.clone()
            };
            self.push("prm_root", root.outcome, detail, fix);
        }

        match (&ptr, pointer) {
            (Some(p), Some(url)) => {
                let which = if Some(url) == Some(&path_url) && has_path {
                    " (the path-inserted URL)"
                } else if *url == root_url {
                    " (the root URL)"
                } else {
                    ""
                };
                let detail = format!("{url}{which}: {}", strip_url(&p.detail, url));
                self.push("prm_pointer", p.outcome, detail, p.fix.clone());
            }
            _ => self.skip(
                "prm_pointer",
                "no absolute resource_metadata in the challenge (see above)",
            ),
        }

        usable(&ptr)
            .or_else(|| usable(&path))
            .or_else(|| usable(&Some(root)))
    }

    // ------------------------------------------------------------------ 4. the authorization server

    async fn authorization_server(
        &mut self,
        prm: &serde_json::Map<String, Value>,
    ) -> Option<AsMeta> {
        let servers: Vec<&str> = prm
            .get("authorization_servers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(issuer) = servers.first().map(|s| (*s).to_owned()) else {
            self.skip("as_metadata", "no authorization server named");
            self.skip("pkce", "no authorization server named");
            return None;
        };
        let more = if servers.len() > 1 {
            format!(
                " (the first of {}; clients pick one, the others were not checked)",
                servers.len()
            )
        } else {
            String::new()
        };
        let issuer_url = match Url::parse(&issuer) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => u,
            Ok(u) if u.scheme() == "http" => {
                self.note_http_issuer(&issuer);
                u
            }
            _ => {
                self.fail(
                    "as_metadata",
                    format!("the authorization server \"{issuer}\" is not an https URL"),
                    "list the authorization server's issuer URL (https) in \"authorization_servers\"",
                );
                self.skip("pkce", "no authorization server metadata");
                return None;
            }
        };
        let path = issuer_url.path().trim_end_matches('/').to_owned();
        let mut candidates: Vec<(Url, bool)> = Vec::new();
        let origin_join = |p: &str| -> Option<Url> {
            let mut u = issuer_url.clone();
            u.set_path(p);
            u.set_query(None);
            u.set_fragment(None);
            Some(u)
        };
        if path.is_empty() {
            candidates
                .extend(origin_join("/.well-known/oauth-authorization-server").map(|u| (u, true)));
            candidates.extend(origin_join("/.well-known/openid-configuration").map(|u| (u, false)));
        } else {
            candidates.extend(
                origin_join(&format!("/.well-known/oauth-authorization-server{path}"))
                    .map(|u| (u, true)),
            );
            candidates.extend(
                origin_join(&format!("/.well-known/openid-configuration{path}"))
                    .map(|u| (u, false)),
            );
            candidates.extend(
                origin_join(&format!("{path}/.well-known/openid-configuration"))
                    .map(|u| (u, false)),
            );
        }
        let mut tried = Vec::new();
        let mut found = None;
        for (url, rfc8414) in &candidates {
            match self.fetch_json(url, None).await {
                Doc::Found { json, .. } => {
                    found = Some((url.clone(), *rfc8414, json));
                    break;
                }
                Doc::Problem { detail, .. } => tried.push(detail),
            }
        }
        let Some((meta_url, rfc8414, json)) = found else {
            self.fail(
                "as_metadata",
                format!("no metadata for the authorization server {issuer}{more}: {}", tried.join("; ")),
                format!(
                    "serve RFC 8414 metadata at {} (2025-06-18 clients look only there), with \"issuer\": \"{issuer}\"",
                    candidates.first().map(|(u, _)| u.to_string()).unwrap_or_default()
                ),
            );
            self.skip("pkce", "no authorization server metadata");
            return None;
        };

        let mut problems = Vec::new();
        match json.get("issuer").and_then(Value::as_str) {
            Some(i) if i == issuer => {}
            Some(i) => problems.push((
                format!("{meta_url} says \"issuer\": \"{i}\" but the resource metadata names \"{issuer}\"; clients must reject metadata whose issuer differs"),
                format!("make the two identical, character for character (trailing slash included): either \"authorization_servers\": [\"{i}\"] or \"issuer\": \"{issuer}\""),
            )),
            None => problems.push((
                format!("{meta_url} has no \"issuer\""),
                format!("add \"issuer\": \"{issuer}\""),
            )),
        }
        for field in ["authorization_endpoint", "token_endpoint"] {
            if json.get(field).and_then(Value::as_str).is_none() {
                problems.push((
                    format!("{meta_url} has no \"{field}\""),
                    format!("add \"{field}\" (an https URL)"),
                ));
            }
        }
        if problems.is_empty() {
            if rfc8414 {
                self.pass("as_metadata", format!("{meta_url}: issuer {issuer}{more}"));
            } else {
                self.warn(
                    "as_metadata",
                    format!("found only through OpenID Connect discovery at {meta_url} (issuer {issuer}){more}; 2025-06-18 clients look only for RFC 8414 metadata"),
                    format!("also serve the same document at {}", candidates.first().map(|(u, _)| u.to_string()).unwrap_or_default()),
                );
            }
        } else {
            let detail: Vec<String> = problems.iter().map(|(d, _)| d.clone()).collect();
            let fix: Vec<String> = problems.iter().map(|(_, f)| f.clone()).collect();
            self.fail("as_metadata", detail.join("; "), fix.join("; "));
        }

        let methods: Option<Vec<&str>> = json
            .get("code_challenge_methods_supported")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        match methods {
            Some(m) if m.contains(&"S256") => self.pass("pkce", format!("code_challenge_methods_supported: {}", m.join(", "))),
            Some(m) => self.fail(
                "pkce",
                format!("code_challenge_methods_supported lists {} but not S256; MCP clients require S256 and refuse to continue", if m.is_empty() { "nothing".to_owned() } else { m.join(", ") }),
                "support PKCE with S256 and advertise \"code_challenge_methods_supported\": [\"S256\"]",
            ),
            None => self.fail(
                "pkce",
                "no code_challenge_methods_supported: MCP clients must refuse an authorization server that does not advertise S256",
                "support PKCE with S256 and advertise \"code_challenge_methods_supported\": [\"S256\"] in the metadata",
            ),
        }

        Some(AsMeta {
            url: meta_url,
            json,
        })
    }

    fn note_http_issuer(&mut self, issuer: &str) {
        self.notes.push(format!(
            "the authorization server {issuer} uses plain http on a public host; OAuth requires https for every endpoint"
        ));
    }

    // ------------------------------------------------------------------ 5. registration

    fn registration(&mut self, meta: &AsMeta) {
        let json = &meta.json;
        let cimd = json
            .get("client_id_metadata_document_supported")
            .and_then(Value::as_bool)
            == Some(true);
        let auth_methods: Vec<&str> = json
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let none = auth_methods.contains(&"none");
        let dcr = json.get("registration_endpoint").and_then(Value::as_str);
        let methods = if auth_methods.is_empty() {
            "token_endpoint_auth_methods_supported absent (defaults to client_secret_basic)"
                .to_owned()
        } else {
            format!(
                "token_endpoint_auth_methods_supported: {}",
                auth_methods.join(", ")
            )
        };
        match (cimd, none, dcr) {
            (true, true, Some(reg)) => self.pass(
                "registration",
                format!("client ID metadata documents (with \"none\") and dynamic registration at {reg}"),
            ),
            (true, true, None) => self.warn(
                "registration",
                "client ID metadata documents only (with \"none\"); no registration_endpoint, so clients without CIMD support (VS Code, Cursor, older SDKs) cannot register",
                "also offer dynamic client registration (RFC 7591) as a registration_endpoint, or have users of those clients enter a pre-registered client id",
            ),
            (true, false, dcr) => self.warn(
                "registration",
                format!(
                    "client_id_metadata_document_supported is true but \"none\" is not in token_endpoint_auth_methods_supported ({methods}); Claude uses CIMD only when both are advertised{}",
                    if dcr.is_some() { ", and falls back to dynamic registration" } else { ", and there is no registration_endpoint to fall back to" }
                ),
                "add \"none\" to token_endpoint_auth_methods_supported (public clients authenticate with PKCE only)",
            ),
            (false, _, Some(reg)) => self.warn(
                "registration",
                format!("dynamic client registration only (at {reg}); no client_id_metadata_document_supported, so clients that prefer metadata documents (Claude, the Inspector) register a new client on every connection"),
                "support client ID metadata documents (MCP 2025-11-25 recommends them; 2026-07-28 deprecates DCR): advertise \"client_id_metadata_document_supported\": true and \"none\" in token_endpoint_auth_methods_supported",
            ),
            (false, _, None) => self.fail(
                "registration",
                "neither client_id_metadata_document_supported nor a registration_endpoint: MCP clients have no way to get a client id and must ask the user for one",
                "support client ID metadata documents (\"client_id_metadata_document_supported\": true, \"none\" in token_endpoint_auth_methods_supported) and/or dynamic client registration (\"registration_endpoint\")",
            ),
        }
    }

    // ------------------------------------------------------------------ 7. redirect URIs

    async fn redirects(&mut self, meta: &AsMeta) {
        let cimd = meta
            .json
            .get("client_id_metadata_document_supported")
            .and_then(Value::as_bool)
            == Some(true);
        let Some(endpoint) = meta
            .json
            .get("registration_endpoint")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            for family in CLIENT_FAMILIES {
                if cimd {
                    self.pass(
                        family.id,
                        format!("no dynamic registration: the server checks {}'s redirect URIs against {}'s own client metadata document", family.name, family.name),
                    );
                } else {
                    self.skip(
                        family.id,
                        "the server offers no way to register (see Client registration)",
                    );
                }
            }
            return;
        };
        if !self.register {
            for family in CLIENT_FAMILIES {
                self.skip(family.id, "--no-register: no test client registered");
            }
            return;
        }
        let Ok(endpoint_url) = self.url.join(&endpoint) else {
            for family in CLIENT_FAMILIES {
                self.fail(
                    family.id,
                    format!("registration_endpoint \"{endpoint}\" is not a URL"),
                    "advertise the registration endpoint as an absolute https URL",
                );
            }
            return;
        };
        let mut registered = 0;
        let mut deleted = 0;
        for family in CLIENT_FAMILIES {
            let body = json!({
                "client_name": format!("portcullis doctor check ({} redirect URIs)", family.name),
                "redirect_uris": family.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "application_type": family.application_type,
            });
            let result = self
                .client
                .send(
                    Method::POST,
                    &endpoint_url,
                    &[
                        ("content-type", "application/json"),
                        ("accept", "application/json"),
                    ],
                    Some(body.to_string().into_bytes()),
                )
                .await;
            let uris = family.redirect_uris.join(", ");
            let r = match result {
                Ok(r) => r,
                Err(e) => {
                    self.fail(
                        family.id,
                        format!("registration request failed: {e}"),
                        "make the registration endpoint reachable like the MCP endpoint",
                    );
                    continue;
                }
            };
            let status = r.status.as_u16();
            let json: Option<serde_json::Map<String, Value>> = match serde_json::from_slice(&r.body)
            {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            };
            if r.status.is_success() {
                let Some(json) =
                    json.filter(|j| j.get("client_id").and_then(Value::as_str).is_some())
                else {
                    self.fail(family.id, format!("HTTP {status} without a client_id: {}", r.excerpt()), "answer a registration with 201 and a JSON body holding client_id (RFC 7591 section 3.2.1)");
                    continue;
                };
                registered += 1;
                if self.unregister(&json).await {
                    deleted += 1;
                }
                let echoed: Option<Vec<&str>> = json
                    .get("redirect_uris")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect());
                let dropped: Vec<&str> = match &echoed {
                    Some(e) => family
                        .redirect_uris
                        .iter()
                        .copied()
                        .filter(|u| !e.contains(u))
                        .collect(),
                    None => Vec::new(),
                };
                if dropped.is_empty() {
                    self.pass(
                        family.id,
                        format!("registered with {uris} ({})", family.application_type),
                    );
                } else {
                    self.fail(
                        family.id,
                        format!("the registration succeeded but the server dropped {}; {} will be refused at the authorization endpoint", dropped.join(", "), family.name),
                        format!("register every redirect URI a client sends, or refuse the registration with invalid_redirect_uri: {}", dropped.join(", ")),
                    );
                }
                continue;
            }
            let error = json
                .as_ref()
                .and_then(|j| j.get("error").and_then(Value::as_str))
                .unwrap_or("")
                .to_owned();
            let description = json
                .as_ref()
                .and_then(|j| j.get("error_description").and_then(Value::as_str))
                .map(str::to_owned)
                .unwrap_or_else(|| r.excerpt());
            let said = if error.is_empty() {
                description.clone()
            } else {
                format!("{error}: {description}")
            };
            match status {
                429 => self.warn(
                    family.id,
                    format!("not checked: the registration endpoint is rate-limiting (HTTP 429: {said})"),
                    "run the doctor again later",
                ),
                401 | 403 => self.fail(
                    family.id,
                    format!("registration needs authorization (HTTP {status}: {said}); MCP clients register anonymously"),
                    "allow open dynamic registration (rate-limited), or support client ID metadata documents",
                ),
                _ => self.fail(
                    family.id,
                    format!("{} would be refused: registering {uris} ({}) got HTTP {status}, {said}", family.name, family.application_type),
                    redirect_fix(family),
                ),
            }
        }
        if registered > 0 {
            let cleaned = if deleted > 0 {
                format!(" {deleted} of them were deleted again (RFC 7592).")
            } else {
                " The server offers no way to delete them (RFC 7592); they are public clients without secrets, named \"portcullis doctor check (...)\".".to_owned()
            };
            self.notes.push(format!(
                "This run registered {registered} test client(s) at {endpoint_url} to check redirect URIs.{cleaned} Use --no-register to skip this."
            ));
        }
    }

    /// Deletes a test registration through RFC 7592 when the server offers it.
    async fn unregister(&self, json: &serde_json::Map<String, Value>) -> bool {
        let (Some(uri), Some(token)) = (
            json.get("registration_client_uri").and_then(Value::as_str),
            json.get("registration_access_token")
                .and_then(Value::as_str),
        ) else {
            return false;
        };
        let Ok(url) = self.url.join(uri) else {
            return false;
        };
        let auth = format!("Bearer {token}");
        self.client
            .send(
                Method::DELETE,
                &url,
                &[("authorization", auth.as_str())],
                None,
            )
            .await
            .is_ok_and(|r| r.status.is_success())
    }

    // ------------------------------------------------------------------ 6. CORS

    /// The preflight a browser sends before its POST, and the CORS headers on the actual
    /// 401. Returns true when the server refused the Inspector's origin on purpose (403).
    async fn cors_mcp(&mut self) -> bool {
        let requested = [
            "authorization",
            "content-type",
            "mcp-protocol-version",
            "mcp-session-id",
        ];
        let acrh = requested.join(", ");
        let preflight = self
            .client
            .send(
                Method::OPTIONS,
                &self.url,
                &[
                    ("origin", INSPECTOR_ORIGIN),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", acrh.as_str()),
                ],
                None,
            )
            .await;
        let fix = format!(
            "answer OPTIONS {} without authentication, with Access-Control-Allow-Origin: {INSPECTOR_ORIGIN} (or your allow-list), Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS and Access-Control-Allow-Headers: authorization, content-type, accept, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id; add Access-Control-Allow-Origin and Access-Control-Expose-Headers: WWW-Authenticate, Mcp-Session-Id to the responses. Only browser-based clients (the MCP Inspector's web UI, web-hosted clients) need this; Claude and ChatGPT connect from their servers",
            self.url.path()
        );
        let p = match preflight {
            Ok(p) => p,
            Err(e) => {
                self.fail(
                    "cors_mcp",
                    format!("the preflight OPTIONS failed: {e}"),
                    fix,
                );
                return false;
            }
        };
        let status = p.status.as_u16();
        if (status == 403 || (p.status.is_success() && !allows_origin(&p)))
            && self.own_origin_allowed().await
        {
            // CORS works, for an allow-list of origins without the Inspector's: a choice
            // (the spec asks servers to check Origin), with a cost worth saying.
            self.warn(
                "cors_mcp",
                format!("the server allows its own origin but refuses {INSPECTOR_ORIGIN} (HTTP {status} to the preflight): an Origin allow-list without the MCP Inspector's web UI, which therefore cannot connect"),
                format!("if browser clients should connect, add their origins to the allow-list ({INSPECTOR_ORIGIN} for the Inspector; for Portcullis: --allowed-origins {INSPECTOR_ORIGIN})"),
            );
            return true;
        }
        let mut problems = Vec::new();
        if !p.status.is_success() {
            problems.push(match status {
                401 => "the preflight OPTIONS requires authentication (browsers never send a token on a preflight)".to_owned(),
                404 | 405 => format!("the preflight OPTIONS gets HTTP {status}: OPTIONS is not handled"),
                _ => format!("the preflight OPTIONS gets HTTP {status}"),
            });
        }
        let acao = p.header("access-control-allow-origin");
        match acao {
            Some(o) if o == INSPECTOR_ORIGIN || o == "*" => {}
            Some(o) => problems.push(format!(
                "the preflight allows the origin {o}, not {INSPECTOR_ORIGIN}"
            )),
            None => problems.push("the preflight has no Access-Control-Allow-Origin".to_owned()),
        }
        if acao.is_some() {
            let allowed = p
                .header_all("access-control-allow-headers")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
            let wildcard = allowed.contains(&"*");
            let missing: Vec<&str> = requested
                .iter()
                .copied()
                // A `*` covers every header except Authorization (Fetch standard).
                .filter(|h| !(allowed.contains(h) || (wildcard && *h != "authorization")))
                .collect();
            if !missing.is_empty() {
                let note = if wildcard && missing.contains(&"authorization") {
                    " (the * wildcard does not cover Authorization)"
                } else {
                    ""
                };
                problems.push(format!(
                    "Access-Control-Allow-Headers lacks {}{note}",
                    missing.join(", ")
                ));
            }
        }
        if !problems.is_empty() {
            self.fail("cors_mcp", problems.join("; "), fix);
            return false;
        }
        // The actual request: the browser can read the 401 and its challenge only with
        // Access-Control-Allow-Origin and WWW-Authenticate exposed.
        match self.initialize(Some(INSPECTOR_ORIGIN)).await {
            Ok(r) => {
                let acao = r.header("access-control-allow-origin");
                let expose = r
                    .header_all("access-control-expose-headers")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let exposed = expose
                    .split(',')
                    .map(str::trim)
                    .any(|h| h == "www-authenticate" || h == "*");
                if !acao.is_some_and(|o| o == INSPECTOR_ORIGIN || o == "*") {
                    self.fail(
                        "cors_mcp",
                        format!("the preflight passes, but the POST's HTTP {} answer has no Access-Control-Allow-Origin for {INSPECTOR_ORIGIN}, so the browser hides it", r.status.as_u16()),
                        fix,
                    );
                } else if r.status.as_u16() == 401 && !exposed {
                    self.warn(
                        "cors_mcp",
                        "the preflight passes, but the 401 does not expose WWW-Authenticate (Access-Control-Expose-Headers), so a browser client cannot read resource_metadata and must guess the well-known URLs",
                        "add Access-Control-Expose-Headers: WWW-Authenticate, Mcp-Session-Id to responses",
                    );
                } else {
                    self.pass(
                        "cors_mcp",
                        format!("preflight from {INSPECTOR_ORIGIN} allowed (HTTP {status}) with the MCP headers; the {} answer is readable{}", r.status.as_u16(), if exposed { ", WWW-Authenticate exposed" } else { "" }),
                    );
                }
            }
            Err(e) => self.fail(
                "cors_mcp",
                format!("the POST with an Origin failed: {e}"),
                fix,
            ),
        }
        false
    }

    /// Whether a preflight from the MCP URL's own origin is granted (telling an allow-list
    /// apart from no CORS at all).
    async fn own_origin_allowed(&self) -> bool {
        let own = self.url.origin().ascii_serialization();
        self.client
            .send(
                Method::OPTIONS,
                &self.url,
                &[
                    ("origin", own.as_str()),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization, content-type",
                    ),
                ],
                None,
            )
            .await
            .is_ok_and(|r| {
                r.status.is_success()
                    && r.header("access-control-allow-origin")
                        .is_some_and(|o| o == own || o == "*")
            })
    }

    /// CORS on the metadata documents and the authorization server's endpoints that a
    /// browser client calls during login.
    async fn cors_oauth(
        &mut self,
        prm: Option<&serde_json::Map<String, Value>>,
        meta: Option<&AsMeta>,
        refused_on_purpose: bool,
    ) {
        if prm.is_none() && meta.is_none() {
            self.skip("cors_oauth", "no metadata documents found");
            return;
        }
        let mut checked = Vec::new();
        let mut problems = Vec::new();
        let prm_url = [
            well_known(&self.url, "oauth-protected-resource"),
            root_well_known(&self.url, "oauth-protected-resource"),
        ];
        let mut targets: Vec<(String, Url)> = Vec::new();
        if prm.is_some() {
            for u in prm_url.into_iter().flatten() {
                if matches!(self.fetch_json(&u, None).await, Doc::Found { .. }) {
                    targets.push(("the resource metadata".to_owned(), u));
                    break;
                }
            }
        }
        if let Some(m) = meta {
            targets.push((
                "the authorization server metadata".to_owned(),
                m.url.clone(),
            ));
        }
        for (what, url) in targets {
            match self.fetch_json(&url, Some(INSPECTOR_ORIGIN)).await {
                Doc::Found { response, .. } => {
                    checked.push(what.clone());
                    if !allows_origin(&response) {
                        problems.push(format!("{what} ({url}) has no Access-Control-Allow-Origin"));
                    }
                }
                Doc::Problem { detail, .. } => problems.push(format!("{what}: {detail}")),
            }
        }
        if let Some(m) = meta {
            if let Some(token) = m
                .json
                .get("token_endpoint")
                .and_then(Value::as_str)
                .and_then(|t| self.url.join(t).ok())
            {
                // A harmless token request (an invalid code): the browser reads its answer
                // only when it carries Access-Control-Allow-Origin.
                let body = "grant_type=authorization_code&code=portcullis-doctor-probe&client_id=portcullis-doctor-probe&redirect_uri=http%3A%2F%2Flocalhost%3A6274%2Foauth%2Fcallback&code_verifier=portcullis-doctor-probe-verifier-0000000000000000";
                match self
                    .client
                    .send(
                        Method::POST,
                        &token,
                        &[
                            ("origin", INSPECTOR_ORIGIN),
                            ("content-type", "application/x-www-form-urlencoded"),
                        ],
                        Some(body.as_bytes().to_vec()),
                    )
                    .await
                {
                    Ok(r) => {
                        checked.push("the token endpoint".to_owned());
                        if !allows_origin(&r) {
                            problems.push(format!("the token endpoint ({token}) answers without Access-Control-Allow-Origin"));
                        }
                    }
                    Err(e) => problems.push(format!("the token endpoint ({token}): {e}")),
                }
            }
            if let Some(reg) = m
                .json
                .get("registration_endpoint")
                .and_then(Value::as_str)
                .and_then(|t| self.url.join(t).ok())
            {
                match self
                    .client
                    .send(
                        Method::OPTIONS,
                        &reg,
                        &[
                            ("origin", INSPECTOR_ORIGIN),
                            ("access-control-request-method", "POST"),
                            ("access-control-request-headers", "content-type"),
                        ],
                        None,
                    )
                    .await
                {
                    Ok(r) => {
                        checked.push("the registration endpoint".to_owned());
                        let headers = r
                            .header_all("access-control-allow-headers")
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        let ok_headers = headers
                            .split(',')
                            .map(str::trim)
                            .any(|h| h == "content-type" || h == "*");
                        if !r.status.is_success() || !allows_origin(&r) || !ok_headers {
                            problems.push(format!("the registration endpoint ({reg}) does not allow a preflight for a JSON POST (HTTP {})", r.status.as_u16()));
                        }
                    }
                    Err(e) => problems.push(format!("the registration endpoint ({reg}): {e}")),
                }
            }
        }
        if problems.is_empty() {
            self.pass(
                "cors_oauth",
                format!("{INSPECTOR_ORIGIN} allowed on {}", checked.join(", ")),
            );
            return;
        }
        let detail = format!(
            "{}; browser-based clients (the MCP Inspector's web UI) cannot log in",
            problems.join("; ")
        );
        let fix = "send Access-Control-Allow-Origin (the metadata documents are public, so * is fine) on /.well-known/*, the token and registration endpoints, and answer their OPTIONS preflights without authentication".to_owned();
        if refused_on_purpose {
            self.warn("cors_oauth", detail, fix);
        } else {
            self.fail("cors_oauth", detail, fix);
        }
    }
}

#[derive(Debug, Clone)]
struct AsMeta {
    url: Url,
    json: serde_json::Map<String, Value>,
}

fn allows_origin(r: &Response) -> bool {
    r.header("access-control-allow-origin")
        .is_some_and(|o| o == INSPECTOR_ORIGIN || o == "*")
}

/// A detail without a leading copy of the URL it is about (rows name the URL first).
fn strip_url(detail: &str, url: &Url) -> String {
    let u = url.to_string();
    detail
        .strip_prefix(&u)
        .map(|d| d.trim_start().to_owned())
        .unwrap_or_else(|| detail.to_owned())
}

fn redirect_fix(family: &ClientFamily) -> String {
    let why = match family.id {
        "redirect_vscode" => {
            "; VS Code falls back from port 33418 to any free port, so match loopback redirects on any port (RFC 8252)"
        }
        "redirect_cursor" => {
            "; Cursor sends its three URIs in one registration, and refusing one refuses them all: accept the cursor:// private-use scheme for native clients"
        }
        "redirect_inspector" => {
            "; localhost and 127.0.0.1 are different hosts for exact matching, and loopback redirects must match on any port"
        }
        "redirect_chatgpt" => {
            "; newer ChatGPT connectors use https://chatgpt.com/connector/oauth/<id>, so accept those too"
        }
        _ => "",
    };
    format!(
        "accept these redirect URIs in dynamic registration with application_type \"{}\": {}{why}",
        family.application_type,
        family.redirect_uris.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_insert_the_path() {
        let u = Url::parse("https://h.example/mcp").unwrap();
        assert_eq!(
            well_known(&u, "oauth-protected-resource").map(|u| u.to_string()),
            Some("https://h.example/.well-known/oauth-protected-resource/mcp".to_owned())
        );
        assert_eq!(
            root_well_known(&u, "oauth-protected-resource").map(|u| u.to_string()),
            Some("https://h.example/.well-known/oauth-protected-resource".to_owned())
        );
        let slash = Url::parse("https://h.example:8443/a/b/").unwrap();
        assert_eq!(
            well_known(&slash, "oauth-protected-resource").map(|u| u.to_string()),
            Some("https://h.example:8443/.well-known/oauth-protected-resource/a/b".to_owned())
        );
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for bad in [
            "mcp.example.com/mcp",
            "ftp://h/mcp",
            "https://h/mcp#x",
            "https://u:p@h/mcp",
            "",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert!(parse_target(" https://h.example/mcp ").is_ok());
    }
}
