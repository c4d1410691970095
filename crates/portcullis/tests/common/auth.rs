//! The OAuth test harness shared by the integration tests: a server with the embedded
//! authorization server on a temporary SQLite file, driven in-process, with a "browser"
//! that keeps its cookie and logs in through the real pages.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis::host::{HostConfig, OriginPolicy, OriginRule};
use portcullis::server::app_router;
use portcullis::testing;
use portcullis::tools::PortcullisTools;
use portcullis_authz::server::{AsConfig, AuthServer, Bootstrap};
use portcullis_store::Store;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
pub const ISSUER: &str = "http://127.0.0.1:8080";
pub const PASSWORD: &str = "correct horse battery staple";
pub const REDIRECT: &str = "http://127.0.0.1:53683/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub struct Env {
    pub router: Router,
    pub server: Arc<AuthServer>,
    pub boot: Bootstrap,
    pub dir: std::path::PathBuf,
    pub database_url: String,
    /// A twin shares its original's directory, which only the original removes.
    pub twin: bool,
}

pub async fn env_with(tweak: impl FnOnce(&mut AsConfig)) -> Env {
    env_configured(tweak, |_| {}).await
}

/// A server with both the authorization server's and the host's settings adjusted.
pub async fn env_configured(
    tweak: impl FnOnce(&mut AsConfig),
    tweak_host: impl FnOnce(&mut HostConfig),
) -> Env {
    env_on(None, tweak, tweak_host).await
}

/// A server on `database_url` (a SQLite file in its own directory when `None`).
pub async fn env_on(
    database_url: Option<&str>,
    tweak: impl FnOnce(&mut AsConfig),
    tweak_host: impl FnOnce(&mut HostConfig),
) -> Env {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-oauth-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = AsConfig::for_resource(RESOURCE).unwrap();
    config.master_key_file = dir.join("portcullis.key");
    config.admin_user = "alice".into();
    config.admin_password = Some(PASSWORD.into());
    tweak(&mut config);
    let database_url = database_url.map_or_else(
        || format!("sqlite://{}", dir.join("portcullis.db").display()),
        str::to_owned,
    );
    let store = Store::open(&database_url).await.unwrap();
    let (server, boot) = AuthServer::start(config, store).await.unwrap();
    let mut host = notes_host();
    tweak_host(&mut host);
    let (router, _) = app_router(host, Some(&server), PortcullisTools::with_notes);
    Env {
        router,
        server,
        boot,
        dir,
        database_url,
        twin: false,
    }
}

fn notes_host() -> HostConfig {
    HostConfig {
        policy: OriginPolicy {
            origins: vec![OriginRule::parse("http://localhost:6274").unwrap()],
            hosts: vec![],
        },
        tool_scopes: Arc::new(portcullis::tools::notes::tool_scopes()),
        method_scopes: Arc::new(portcullis::tools::notes::method_scopes()),
        ..HostConfig::default()
    }
}

impl Env {
    /// A second instance on the same database and master key, with its own memory: what a
    /// load balancer's other backend is.
    pub async fn twin(&self) -> Env {
        let store = Store::open(&self.database_url).await.unwrap();
        let (server, boot) = AuthServer::start(self.server.config.clone(), store)
            .await
            .unwrap();
        let (router, _) = app_router(notes_host(), Some(&server), PortcullisTools::with_notes);
        Env {
            router,
            server,
            boot,
            dir: self.dir.clone(),
            database_url: self.database_url.clone(),
            twin: true,
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.twin {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn location(&self) -> Option<url::Url> {
        let l = self.headers.get("location")?.to_str().ok()?;
        Some(
            url::Url::parse(l)
                .unwrap_or_else(|_| url::Url::parse(&format!("{ISSUER}{l}")).unwrap()),
        )
    }
    pub fn param(&self, name: &str) -> Option<String> {
        self.location()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.text))
            + marker.len();
        self.text[start..].split('"').next().unwrap().to_owned()
    }
}

pub async fn read(status: StatusCode, headers: HeaderMap, body: Body) -> Reply {
    let text = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply {
        status,
        headers,
        text,
    }
}

/// A browser: keeps the session cookie between requests.
#[derive(Default)]
pub struct Browser {
    pub cookie: Option<String>,
    /// Who logs in (username, password); alice when unset.
    pub user: Option<(String, String)>,
}

impl Env {
    pub async fn send(
        &self,
        browser: Option<&mut Browser>,
        req: http::request::Builder,
        body: Body,
    ) -> Reply {
        let mut req = req.header("host", "127.0.0.1:8080");
        if let Some(c) = browser.as_ref().and_then(|b| b.cookie.clone()) {
            req = req.header("cookie", c);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        if let (Some(b), Some(set)) = (browser, headers.get("set-cookie")) {
            b.cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        read(status, headers, resp.into_body()).await
    }

    pub async fn get(&self, browser: Option<&mut Browser>, uri: &str) -> Reply {
        self.send(browser, Request::get(uri), Body::empty()).await
    }

    pub async fn form(
        &self,
        browser: Option<&mut Browser>,
        uri: &str,
        pairs: &[(&str, &str)],
    ) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(
            browser,
            Request::post(uri).header("content-type", "application/x-www-form-urlencoded"),
            Body::from(body),
        )
        .await
    }

    pub async fn register(&self, metadata: Value) -> Reply {
        self.send(
            None,
            Request::post("/oauth/register").header("content-type", "application/json"),
            Body::from(metadata.to_string()),
        )
        .await
    }

    pub async fn client(&self) -> String {
        let r = self.register(json!({"client_name": "Test client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()["client_id"].as_str().unwrap().to_owned()
    }

    /// Logs in and approves; returns the redirect back to the client.
    pub async fn approve(&self, browser: &mut Browser, query: &str) -> Reply {
        let page = self
            .get(Some(browser), &format!("/oauth/authorize?{query}"))
            .await;
        if page.status == StatusCode::SEE_OTHER {
            // Already signed in: straight to consent (remembered, or asked again).
            let consent_uri = page.headers["location"].to_str().unwrap().to_owned();
            let request = consent_uri.split("request=").nth(1).unwrap().to_owned();
            let consent = self.get(Some(browser), &consent_uri).await;
            if consent.status == StatusCode::SEE_OTHER {
                return consent;
            }
            let csrf = consent.field("csrf");
            return self
                .form(
                    Some(browser),
                    "/oauth/consent",
                    &[
                        ("request", &request),
                        ("csrf", &csrf),
                        ("decision", "approve"),
                    ],
                )
                .await;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let (request, csrf) = (page.field("request"), page.field("csrf"));
        let (user, password) = browser
            .user
            .clone()
            .unwrap_or(("alice".into(), PASSWORD.into()));
        let after_login = self
            .form(
                Some(browser),
                "/oauth/login",
                &[
                    ("request", &request),
                    ("csrf", &csrf),
                    ("username", &user),
                    ("password", &password),
                ],
            )
            .await;
        assert_eq!(
            after_login.status,
            StatusCode::SEE_OTHER,
            "{}",
            after_login.text
        );
        let consent_uri = after_login.headers["location"].to_str().unwrap().to_owned();
        let consent = self.get(Some(browser), &consent_uri).await;
        if consent.status == StatusCode::SEE_OTHER {
            return consent; // remembered consent
        }
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.text);
        let csrf = consent.field("csrf");
        self.form(
            Some(browser),
            "/oauth/consent",
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("decision", "approve"),
            ],
        )
        .await
    }

    pub async fn login(
        &self,
        browser: &mut Browser,
        request: &str,
        csrf: &str,
        password: &str,
    ) -> Reply {
        self.form(
            Some(browser),
            "/oauth/login",
            &[
                ("request", request),
                ("csrf", csrf),
                ("username", "alice"),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn authorize(&self, browser: Option<&mut Browser>, query: &str) -> Reply {
        self.get(browser, &format!("/oauth/authorize?{query}"))
            .await
    }

    pub async fn token(&self, pairs: &[(&str, &str)]) -> Reply {
        self.form(None, "/oauth/token", pairs).await
    }

    pub async fn refresh(&self, refresh_token: &str, client: &str) -> Reply {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client),
        ])
        .await
    }

    pub async fn exchange(&self, code: &str, client: &str) -> Reply {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client),
        ])
        .await
    }

    /// Client, login, consent, code: the tokens of a fresh grant.
    pub async fn tokens(&self) -> (String, Value) {
        self.tokens_as(Browser::default()).await
    }

    pub async fn tokens_as(&self, b: Browser) -> (String, Value) {
        self.tokens_scoped(b, "mcp").await
    }

    /// Like [`Self::tokens_as`], asking for `scope`.
    pub async fn tokens_scoped(&self, mut b: Browser, scope: &str) -> (String, Value) {
        let client = self.client().await;
        let back = self
            .approve(&mut b, &authorize_query(&client, &[("scope", Some(scope))]))
            .await;
        let code = back.param("code").unwrap();
        let t = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", &client),
            ])
            .await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.text);
        (client, t.json())
    }

    pub async fn mcp(&self, token: Option<&str>) -> Reply {
        let mut req = testing::post()
            .header("mcp-protocol-version", testing::MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": testing::MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}});
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        read(status, headers, resp.into_body()).await
    }
}

pub fn challenge() -> String {
    portcullis_oauth::CodeChallenge::from_verifier(VERIFIER)
        .unwrap()
        .as_str()
        .to_owned()
}

pub fn authorize_query(client: &str, overrides: &[(&str, Option<&str>)]) -> String {
    let challenge = challenge();
    let mut params: Vec<(&str, Option<&str>)> = vec![
        ("response_type", Some("code")),
        ("client_id", Some(client)),
        ("redirect_uri", Some(REDIRECT)),
        ("code_challenge", Some(&challenge)),
        ("code_challenge_method", Some("S256")),
        ("state", Some("st-1")),
        ("scope", Some("mcp")),
        ("resource", Some(RESOURCE)),
    ];
    for (k, v) in overrides {
        params.retain(|(n, _)| n != k);
        params.push((k, *v));
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

pub fn www(r: &Reply) -> String {
    r.headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Bob's password, for tests with a second user.
pub const BOB_PASSWORD: &str = "bob's long password";

/// Creates the second user, bob, and returns a browser that logs in as him.
pub async fn add_bob(e: &Env) -> Browser {
    portcullis_authz::server::create_user(
        e.server.store(),
        &ring::rand::SystemRandom::new(),
        "bob",
        BOB_PASSWORD,
        false,
    )
    .await
    .unwrap();
    Browser {
        cookie: None,
        user: Some(("bob".into(), BOB_PASSWORD.into())),
    }
}
