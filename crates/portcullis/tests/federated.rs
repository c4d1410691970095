//! Federated login, the bad answers: an upstream identity provider that can be made to
//! misbehave (a wrong nonce, an ID token signed by a key it does not publish or for another
//! audience, a failed token request, being down), served on 127.0.0.1 by this test, because
//! a certified provider cannot be made to send them. The happy path against a real provider
//! (oidc-provider, with real MCP clients and Chromium) is tests/e2e/federated.sh.
//!
//! Each refusal leaves nothing behind: no account, no link, no signed-in browser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::auth::*;
use portcullis_authz::fetch::FetchPolicy;
use portcullis_authz::upstream::{GithubEndpoints, Preset, UpstreamConfig};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

const CLIENT_ID: &str = "portcullis-at-idp";
const CLIENT_SECRET: &str = "idp client secret";
const CALLBACK: &str = "http://127.0.0.1:8080/oauth/upstream/callback";

/// How the fake provider answers the token request for one code.
#[derive(Clone)]
struct Issue {
    sub: String,
    email: Option<String>,
    nonce: String,
    challenge: String,
    /// Sign with the key the provider does not publish.
    unpublished_key: bool,
    aud: Value,
    /// The token endpoint answers this OAuth error instead.
    error: Option<&'static str>,
    /// Extra ID token claims.
    extra: Value,
}

struct Key {
    pair: EcdsaKeyPair,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])});
    Key { pair, jwk }
}

fn sign(k: &Key, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "kid": k.jwk["kid"], "typ": "JWT"});
    let mut t = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = k.pair.sign(&SystemRandom::new(), t.as_bytes()).unwrap();
    t.push('.');
    t.push_str(&B64.encode(sig.as_ref()));
    t
}

struct Fake {
    issuer: String,
    published: Key,
    unpublished: Key,
    codes: Mutex<HashMap<String, Issue>>,
    /// Access token -> the userinfo answer.
    userinfo: Mutex<HashMap<String, Value>>,
    token_requests: Mutex<u32>,
}

/// The fake provider on a free loopback port; its tasks end with the test's runtime.
struct Provider {
    fake: Arc<Fake>,
    handle: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// What the token endpoint answers for `code`.
    fn answer(&self, code: &str, issue: Issue) {
        self.fake
            .codes
            .lock()
            .unwrap()
            .insert(code.to_owned(), issue);
    }
}

async fn provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        issuer: issuer.clone(),
        published: key("published"),
        unpublished: key("unpublished"),
        codes: Mutex::default(),
        userinfo: Mutex::default(),
        token_requests: Mutex::new(0),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/login/oauth/access_token", post(token))
        .route("/api/user", get(github_user))
        .route("/api/user/emails", get(github_emails))
        .with_state(fake.clone());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Provider { fake, handle }
}

async fn discovery(State(f): State<Arc<Fake>>) -> Response {
    axum::Json(json!({
        "issuer": f.issuer,
        "authorization_endpoint": format!("{}/authorize", f.issuer),
        "token_endpoint": format!("{}/token", f.issuer),
        "userinfo_endpoint": format!("{}/userinfo", f.issuer),
        "jwks_uri": format!("{}/jwks", f.issuer),
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
    .into_response()
}

async fn jwks(State(f): State<Arc<Fake>>) -> Response {
    axum::Json(json!({"keys": [f.published.jwk]})).into_response()
}

fn oauth_error(code: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": code, "error_description": "refused by the test provider"})),
    )
        .into_response()
}

async fn token(
    State(f): State<Arc<Fake>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    *f.token_requests.lock().unwrap() += 1;
    // Client authentication: Basic (OIDC) or in the form (GitHub).
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            CLIENT_ID,
            CLIENT_SECRET.replace(' ', "+")
        ))
    );
    let authed = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&basic)
        || (form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET));
    if !authed {
        return oauth_error("invalid_client");
    }
    let Some(issue) = form
        .get("code")
        .and_then(|c| f.codes.lock().unwrap().remove(c))
    else {
        return oauth_error("invalid_grant");
    };
    if form.get("redirect_uri").map(String::as_str) != Some(CALLBACK) {
        return oauth_error("invalid_grant");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = portcullis_oauth::CodeChallenge::from_verifier(&verifier)
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    if challenge != issue.challenge {
        return oauth_error("invalid_grant"); // PKCE
    }
    if let Some(e) = issue.error {
        return oauth_error(e);
    }
    let access = format!("upstream-access-{}", issue.sub);
    let mut info = json!({"sub": issue.sub});
    if let Some(e) = &issue.email {
        info["email"] = json!(e);
        info["email_verified"] = json!(true);
    }
    f.userinfo.lock().unwrap().insert(access.clone(), info);
    let now = portcullis_authz::server::now();
    let mut claims = json!({"iss": f.issuer, "sub": issue.sub, "aud": issue.aud, "nonce": issue.nonce,
        "iat": now, "exp": now + 300});
    for (k, v) in issue.extra.as_object().cloned().unwrap_or_default() {
        claims[k] = v;
    }
    let k = if issue.unpublished_key {
        &f.unpublished
    } else {
        &f.published
    };
    axum::Json(
        json!({"access_token": access, "token_type": "Bearer", "expires_in": 300,
        "id_token": sign(k, &claims)}),
    )
    .into_response()
}

fn bearer(f: &Fake, headers: &HeaderMap) -> Option<Value> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    f.userinfo.lock().unwrap().get(token).cloned()
}

async fn userinfo(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    match bearer(&f, &headers) {
        Some(info) => axum::Json(info).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_user(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    match bearer(&f, &headers) {
        Some(info) => axum::Json(json!({"id": 4242, "login": info["sub"], "name": "Octo Cat"}))
            .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_emails(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    match bearer(&f, &headers) {
        Some(info) => axum::Json(json!([
            {"email": "octo@unverified.example", "primary": false, "verified": false},
            {"email": info["email"], "primary": true, "verified": true},
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

fn config(issuer: &str) -> UpstreamConfig {
    UpstreamConfig {
        preset: Preset::Oidc,
        name: "Example ID".into(),
        issuer: issuer.to_owned(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        scopes: "openid email profile".into(),
        allowed_domains: Vec::new(),
        required_claims: Vec::new(),
        fetch: FetchPolicy {
            allow_loopback: true,
            extra_roots: None,
        },
        github: GithubEndpoints::default(),
    }
}

async fn federated_env(upstream: UpstreamConfig) -> Env {
    env_with(move |c| c.upstream = Some(upstream)).await
}

/// The MCP client's request, then the sign-in page's upstream button: the answer to it.
async fn press_upstream(e: &Env, b: &mut Browser, client: &str) -> Reply {
    let page = e.authorize(Some(b), &authorize_query(client, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Sign in with "), "{}", page.text);
    e.form(
        Some(b),
        "/oauth/upstream",
        &[
            ("request", &page.field("request")),
            ("csrf", &page.field("csrf")),
        ],
    )
    .await
}

/// The MCP client's request up to the provider: the URL the browser is sent to.
async fn to_provider(e: &Env, b: &mut Browser, client: &str) -> url::Url {
    let go = press_upstream(e, b, client).await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.text);
    go.location().unwrap()
}

fn q(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// What the provider will answer for `code`, made from the authorization URL Portcullis
/// sent the browser to (its nonce and PKCE challenge).
fn issue(at: &url::Url, sub: &str, email: Option<&str>) -> Issue {
    Issue {
        sub: sub.into(),
        email: email.map(str::to_owned),
        nonce: q(at, "nonce"),
        challenge: q(at, "code_challenge"),
        unpublished_key: false,
        aud: json!(CLIENT_ID),
        error: None,
        extra: json!({}),
    }
}

/// A new browser through the upstream sign-in as `sub`: the browser and the callback's answer.
async fn signed_in(
    p: &Provider,
    e: &Env,
    client: &str,
    sub: &str,
    email: &str,
) -> (Browser, Reply) {
    let mut b = Browser::default();
    let at = to_provider(e, &mut b, client).await;
    let (state, code) = (q(&at, "state"), format!("code-{}", q(&at, "state")));
    p.answer(&code, issue(&at, sub, Some(email)));
    let back = callback(e, &mut b, &state, &code).await;
    (b, back)
}

/// Where a redirect points, fetched in the same browser.
async fn follow(e: &Env, b: &mut Browser, r: &Reply) -> Reply {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    e.get(Some(b), r.headers["location"].to_str().unwrap())
        .await
}

async fn callback(e: &Env, b: &mut Browser, state: &str, code: &str) -> Reply {
    callback_with(e, b, &[("state", state), ("code", code)]).await
}

/// The provider sending the browser back with these parameters.
async fn callback_with(e: &Env, b: &mut Browser, params: &[(&str, &str)]) -> Reply {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    e.get(Some(b), &format!("/oauth/upstream/callback?{query}"))
        .await
}

/// Consent after the upstream sign-in, the code, the token, and a tool call with it.
async fn consent_and_token(e: &Env, b: &mut Browser, back: &Reply, client: &str) -> Value {
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);
    let consent_uri = back.headers["location"].to_str().unwrap().to_owned();
    assert!(
        consent_uri.starts_with("/oauth/consent?request="),
        "{consent_uri}"
    );
    let request = consent_uri.split("request=").nth(1).unwrap().to_owned();
    let consent = e.get(Some(b), &consent_uri).await;
    let done = if consent.status == StatusCode::SEE_OTHER {
        consent
    } else {
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.text);
        let csrf = consent.field("csrf");
        e.form(
            Some(b),
            "/oauth/consent",
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("decision", "approve"),
            ],
        )
        .await
    };
    let code = done.param("code").unwrap();
    let t = e.exchange(&code, client).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    t.json()
}

async fn users(e: &Env) -> i64 {
    e.server.store().count_users().await.unwrap()
}

#[tokio::test]
async fn upstream_sign_in_links_an_account_and_asks_portcullis_consent() {
    let p = provider().await;
    let e = federated_env(config(&p.fake.issuer)).await;
    let before = users(&e).await;
    let client = e.client().await;
    let mut b = Browser::default();
    let account = e.get(None, "/account").await;
    assert!(
        account.text.contains("Sign in with Example ID"),
        "{}",
        account.text
    );
    let at = to_provider(&e, &mut b, &client).await;
    // The request at the provider: code flow, PKCE S256, state, nonce, our callback.
    assert_eq!(
        format!("{}{}", at.origin().ascii_serialization(), at.path()),
        format!("{}/authorize", p.fake.issuer)
    );
    assert_eq!(q(&at, "response_type"), "code");
    assert_eq!(q(&at, "client_id"), CLIENT_ID);
    assert_eq!(q(&at, "redirect_uri"), CALLBACK);
    assert_eq!(q(&at, "code_challenge_method"), "S256");
    assert_eq!(q(&at, "scope"), "openid email profile");
    assert!(q(&at, "state").len() >= 32 && q(&at, "nonce").len() >= 32);
    assert_ne!(q(&at, "state"), q(&at, "nonce"));

    // The ID token says only sub: the e-mail (and so the username) comes from userinfo.
    p.answer(
        "code-1",
        issue(&at, "upstream-alice", Some("carol@corp.example")),
    );
    let back = callback(&e, &mut b, &q(&at, "state"), "code-1").await;
    // Signed in, but Portcullis's consent page comes next, whatever the provider did.
    let consent = e
        .get(Some(&mut b), back.headers["location"].to_str().unwrap())
        .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.text);
    assert!(
        consent.text.contains("carol@corp.example"),
        "{}",
        consent.text
    );
    let tokens = consent_and_token(&e, &mut b, &back, &client).await;
    assert_eq!(users(&e).await, before + 1);

    // The client holds Portcullis's token (signed by Portcullis, for its resource), never
    // the provider's, and it works.
    let access = tokens["access_token"].as_str().unwrap();
    assert!(!access.contains("upstream-access"), "{access}");
    let claims: Value =
        serde_json::from_slice(&B64.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], RESOURCE);
    let who = e.mcp(Some(access)).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.text);
    let carol = e
        .server
        .store()
        .user_by_name("carol@corp.example")
        .await
        .unwrap()
        .unwrap();
    assert!(who.text.contains(&carol.id), "{}", who.text);

    // The same person again, in a new browser: the same account, and the consent given to
    // this client is remembered (for this user and this client only).
    let (mut b2, back2) = signed_in(&p, &e, &client, "upstream-alice", "carol@corp.example").await;
    let remembered = follow(&e, &mut b2, &back2).await;
    assert_eq!(
        remembered.status,
        StatusCode::SEE_OTHER,
        "{}",
        remembered.text
    );
    assert!(remembered.param("code").is_some());
    assert_eq!(users(&e).await, before + 1, "no second account");

    // Another person whose name is taken gets a numbered username, and is asked again.
    let (mut b3, back3) = signed_in(&p, &e, &client, "upstream-other", "carol@corp.example").await;
    let consent3 = follow(&e, &mut b3, &back3).await;
    assert_eq!(consent3.status, StatusCode::OK, "{}", consent3.text);
    assert!(
        consent3.text.contains("carol@corp.example-2"),
        "{}",
        consent3.text
    );
    p.handle.abort();
}

#[tokio::test]
async fn a_wrong_state_or_a_replayed_callback_is_refused() {
    let p = provider().await;
    let e = federated_env(config(&p.fake.issuer)).await;
    let before = users(&e).await;
    let client = e.client().await;
    let mut b = Browser::default();
    let at = to_provider(&e, &mut b, &client).await;
    p.answer("code-1", issue(&at, "s1", Some("a@corp.example")));

    // A state this browser never sent.
    let wrong = callback(&e, &mut b, "made-up-state", "code-1").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert!(wrong.text.contains("expired"), "{}", wrong.text);
    // The right state from another browser (no session, or another session).
    let mut other = Browser::default();
    let _ = e
        .authorize(Some(&mut other), &authorize_query(&client, &[]))
        .await;
    let foreign = callback(&e, &mut other, &q(&at, "state"), "code-1").await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST, "{}", foreign.text);
    assert_eq!(
        *p.fake.token_requests.lock().unwrap(),
        0,
        "no code was spent"
    );

    // The real callback works once; its replay finds nothing.
    let ok = callback(&e, &mut b, &q(&at, "state"), "code-1").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    let replay = callback(&e, &mut b, &q(&at, "state"), "code-1").await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
    assert_eq!(*p.fake.token_requests.lock().unwrap(), 1);
    assert_eq!(users(&e).await, before + 1);
    p.handle.abort();
}

/// Starts a sign-in, lets the provider answer `tweak(issue)`, and returns the page.
async fn answered(p: &Provider, e: &Env, tweak: impl FnOnce(&mut Issue)) -> (Reply, Browser) {
    let client = e.client().await;
    let mut b = Browser::default();
    let at = to_provider(e, &mut b, &client).await;
    let mut i = issue(&at, "s-bad", Some("mallory@corp.example"));
    tweak(&mut i);
    p.answer("c", i);
    let r = callback(e, &mut b, &q(&at, "state"), "c").await;
    (r, b)
}

#[tokio::test]
async fn id_tokens_with_a_wrong_nonce_key_audience_or_party_are_refused() {
    let p = provider().await;
    let e = federated_env(config(&p.fake.issuer)).await;
    let before = users(&e).await;
    type Tweak = Box<dyn FnOnce(&mut Issue)>;
    let cases: Vec<(&str, Tweak, &str)> = vec![
        (
            "wrong nonce",
            Box::new(|i| i.nonce = "another sign-in's nonce".into()),
            "nonce",
        ),
        (
            "no nonce",
            Box::new(|i| i.extra = json!({"nonce": null})),
            "nonce",
        ),
        (
            "unpublished key",
            Box::new(|i| i.unpublished_key = true),
            "key the issuer does not publish",
        ),
        (
            "other audience",
            Box::new(|i| i.aud = json!("someone-else")),
            "audience",
        ),
        (
            "several audiences, no azp",
            Box::new(|i| i.aud = json!([CLIENT_ID, "someone-else"])),
            "authorized party",
        ),
        (
            "other issuer",
            Box::new(|i| i.extra = json!({"iss": "https://evil.example"})),
            "another authorization server",
        ),
        (
            "expired",
            Box::new(|i| i.extra = json!({"exp": 1_000})),
            "expired",
        ),
    ];
    for (name, tweak, says) in cases {
        let (r, mut b) = answered(&p, &e, tweak).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        assert!(r.text.contains(says), "{name}: {}", r.text);
        assert!(r.text.contains("Nothing was changed"), "{name}: {}", r.text);
        // Not signed in: the account page still asks for a sign-in.
        let account = e.get(Some(&mut b), "/account").await;
        assert!(
            account.text.contains("Sign in with"),
            "{name}: {}",
            account.text
        );
    }
    assert_eq!(users(&e).await, before, "no account was created");
    p.handle.abort();
}

#[tokio::test]
async fn provider_refusals_and_allow_lists_create_nothing() {
    let p = provider().await;
    let mut c = config(&p.fake.issuer);
    c.allowed_domains = vec!["corp.example".into()];
    let e = federated_env(c).await;
    let before = users(&e).await;

    // The person declined at the provider.
    let client = e.client().await;
    let mut b = Browser::default();
    let at = to_provider(&e, &mut b, &client).await;
    let state = q(&at, "state");
    let declined =
        callback_with(&e, &mut b, &[("state", &state), ("error", "access_denied")]).await;
    assert_eq!(declined.status, StatusCode::FORBIDDEN, "{}", declined.text);
    assert!(declined.text.contains("declined"), "{}", declined.text);

    // The provider refused the code.
    let (r, _) = answered(&p, &e, |i| i.error = Some("invalid_grant")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("invalid_grant"), "{}", r.text);

    // An address outside the allowed domain; then none at all.
    let (r, _) = answered(&p, &e, |i| i.email = Some("eve@elsewhere.example".into())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("elsewhere.example"), "{}", r.text);
    let (r, _) = answered(&p, &e, |i| i.email = None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("verified e-mail"), "{}", r.text);

    // An answer from another provider (RFC 9207 iss).
    let mut b = Browser::default();
    let at = to_provider(&e, &mut b, &client).await;
    let state = q(&at, "state");
    let from = [
        ("state", state.as_str()),
        ("code", "x"),
        ("iss", "https://evil.example"),
    ];
    let mixed = callback_with(&e, &mut b, &from).await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST, "{}", mixed.text);
    assert!(mixed.text.contains("evil.example"), "{}", mixed.text);
    assert_eq!(users(&e).await, before);
    p.handle.abort();
}

#[tokio::test]
async fn an_upstream_that_is_down_gets_a_clear_page_and_nothing_is_half_made() {
    // Down before the sign-in starts: no attempt is stored, the page says what to do.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = federated_env(config(&format!("http://127.0.0.1:{port}"))).await;
    let client = e.client().await;
    let mut b = Browser::default();
    let go = press_upstream(&e, &mut b, &client).await;
    assert_eq!(go.status, StatusCode::SERVICE_UNAVAILABLE, "{}", go.text);
    assert!(go.text.contains("cannot be reached"), "{}", go.text);
    assert!(go.text.contains("Try again in a minute"), "{}", go.text);
    assert!(go.headers.contains_key("retry-after"));
    // Password sign-in still works while the provider is down.
    let (_, tokens) = e.tokens().await;
    assert!(tokens["access_token"].is_string());

    // Down between the redirect and the callback: the attempt is spent, nobody is made.
    let p = provider().await;
    let e = federated_env(config(&p.fake.issuer)).await;
    let before = users(&e).await;
    let client = e.client().await;
    let mut b = Browser::default();
    let at = to_provider(&e, &mut b, &client).await;
    p.answer("c", issue(&at, "s1", Some("a@corp.example")));
    p.handle.abort();
    let _ = p.handle.await;
    let r = callback(&e, &mut b, &q(&at, "state"), "c").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("Nothing was changed"), "{}", r.text);
    assert_eq!(users(&e).await, before);
    let account = e.get(Some(&mut b), "/account").await;
    assert!(
        account.text.contains("Sign in with"),
        "not signed in: {}",
        account.text
    );
}

#[tokio::test]
async fn provider_metadata_on_loopback_is_never_fetched_without_the_test_setting() {
    // A local listener stands where the issuer points; it must see no connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for issuer in [
        format!("https://localhost:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        let mut c = config(&issuer);
        c.fetch.allow_loopback = false;
        let e = federated_env(c).await;
        let client = e.client().await;
        let mut b = Browser::default();
        let go = press_upstream(&e, &mut b, &client).await;
        assert_eq!(go.status, StatusCode::BAD_GATEWAY, "{issuer}: {}", go.text);
        assert!(
            go.text.contains("not set up correctly"),
            "{issuer}: {}",
            go.text
        );
    }
    let accepted =
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the loopback listener saw a connection");
}

#[tokio::test]
async fn private_provider_addresses_are_refused_before_any_connection() {
    // The address filter judges the resolved address; an unroutable private address would
    // hang for the whole fetch deadline if a connection were tried, so a quick refusal that
    // names the address shows none was.
    for ip in [
        "10.255.255.1",
        "192.168.255.1",
        "169.254.169.254",
        "[fd00::1]",
    ] {
        let mut c = config(&format!("https://{ip}"));
        c.fetch.allow_loopback = false;
        let e = federated_env(c).await;
        let client = e.client().await;
        let mut b = Browser::default();
        let started = std::time::Instant::now();
        let go = press_upstream(&e, &mut b, &client).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{ip}"
        );
        assert_eq!(go.status, StatusCode::BAD_GATEWAY, "{ip}: {}", go.text);
        assert!(go.text.contains("non-public address"), "{ip}: {}", go.text);
    }
}

#[tokio::test]
async fn password_sign_in_can_be_turned_off() {
    let p = provider().await;
    let upstream = config(&p.fake.issuer);
    let e = env_with(move |c| {
        c.upstream = Some(upstream);
        c.password_login = false;
    })
    .await;
    // alice was made from the configured password; without it, no setup link is offered,
    // since nobody could use a password account.
    let upstream = config(&p.fake.issuer);
    let fresh = env_with(move |c| {
        c.upstream = Some(upstream);
        c.password_login = false;
        c.admin_password = None;
    })
    .await;
    assert_eq!(fresh.boot, portcullis_authz::server::Bootstrap::Ready);
    assert_eq!(users(&fresh).await, 0);
    let client = e.client().await;
    let mut b = Browser::default();
    let page = e
        .authorize(Some(&mut b), &authorize_query(&client, &[]))
        .await;
    assert!(
        page.text.contains("Sign in with Example ID"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("name=\"password\""), "{}", page.text);
    let refused = e
        .login(
            &mut b,
            &page.field("request"),
            &page.field("csrf"),
            PASSWORD,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(
        refused.text.contains("Sign in with Example ID"),
        "{}",
        refused.text
    );
    let account = e
        .form(
            Some(&mut b),
            "/account/login",
            &[
                ("csrf", &page.field("csrf")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(account.status, StatusCode::FORBIDDEN, "{}", account.text);
    p.handle.abort();
}

#[tokio::test]
async fn a_disabled_linked_account_is_refused_and_upstream_accounts_have_no_password() {
    let p = provider().await;
    let e = federated_env(config(&p.fake.issuer)).await;
    let client = e.client().await;
    let (mut b, back) = signed_in(&p, &e, &client, "s-dave", "dave@corp.example").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);
    let store = e.server.store();
    let dave = store
        .user_by_name("dave@corp.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dave.password_hash, "");
    // No password opens this account, not even the dummy hash's.
    let mut pw = Browser::default();
    let page = e
        .authorize(Some(&mut pw), &authorize_query(&client, &[]))
        .await;
    for guess in ["", "not a real password"] {
        let r = e
            .form(
                Some(&mut pw),
                "/oauth/login",
                &[
                    ("request", &page.field("request")),
                    ("csrf", &page.field("csrf")),
                    ("username", "dave@corp.example"),
                    ("password", guess),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{guess:?}: {}", r.text);
    }
    // The account page shows no password form for it.
    let account = e.get(Some(&mut b), "/account").await;
    assert!(
        account.text.contains("dave@corp.example"),
        "{}",
        account.text
    );
    assert!(
        !account.text.contains("Change your password"),
        "{}",
        account.text
    );

    store
        .set_user_disabled(&dave.id, Some(portcullis_authz::server::now()))
        .await
        .unwrap();
    let (_, refused) = signed_in(&p, &e, &client, "s-dave", "dave@corp.example").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("disabled"), "{}", refused.text);
    p.handle.abort();
}

#[tokio::test]
async fn github_sign_in_uses_its_user_api_and_verified_primary_address() {
    let p = provider().await;
    let mut c = config(GITHUB);
    c.preset = Preset::Github;
    c.name = "GitHub".into();
    c.scopes = Preset::Github.default_scopes().into();
    c.allowed_domains = vec!["corp.example".into()];
    c.github = GithubEndpoints {
        authorize: format!("{}/login/oauth/authorize", p.fake.issuer),
        token: format!("{}/login/oauth/access_token", p.fake.issuer),
        api: format!("{}/api", p.fake.issuer),
    };
    let e = env_with(move |cfg| cfg.upstream = Some(c)).await;
    let client = e.client().await;
    let mut b = Browser::default();
    let account = e.get(None, "/account").await;
    assert!(
        account.text.contains("Sign in with GitHub"),
        "{}",
        account.text
    );
    let at = to_provider(&e, &mut b, &client).await;
    assert_eq!(at.path(), "/login/oauth/authorize");
    assert_eq!(q(&at, "scope"), "read:user user:email");
    assert!(
        !at.query_pairs().any(|(k, _)| k == "nonce"),
        "GitHub takes no nonce"
    );
    let i = Issue {
        sub: "octocat".into(),
        email: Some("octo@corp.example".into()),
        nonce: String::new(),
        challenge: q(&at, "code_challenge"),
        unpublished_key: false,
        aud: json!(CLIENT_ID),
        error: None,
        extra: json!({}),
    };
    p.answer("gh", i);
    let back = callback(&e, &mut b, &q(&at, "state"), "gh").await;
    let tokens = consent_and_token(&e, &mut b, &back, &client).await;
    assert!(tokens["access_token"].is_string());
    let user = e
        .server
        .store()
        .user_by_name("octocat")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.server.store().upstream_issuers(&user.id).await.unwrap(),
        vec![GITHUB.to_owned()]
    );
    p.handle.abort();
}

const GITHUB: &str = portcullis_authz::upstream::GITHUB_ISSUER;

/// Signs `b` in on the account page with a password; the account page's CSRF token.
async fn account_sign_in(e: &Env, b: &mut Browser, user: &str, password: &str) -> String {
    let page = e.get(Some(b), "/account").await;
    let signed = e
        .form(
            Some(b),
            "/account/login",
            &[
                ("csrf", &page.field("csrf")),
                ("username", user),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    e.get(Some(b), "/account").await.field("csrf")
}

/// From the account page: link the provider's `sub` to the signed-in account.
async fn link(p: &Provider, e: &Env, b: &mut Browser, csrf: &str, sub: &str) -> Reply {
    let go = e
        .form(Some(b), "/oauth/upstream", &[("csrf", csrf), ("link", "1")])
        .await;
    assert_eq!(go.status, StatusCode::SEE_OTHER, "{}", go.text);
    let at = go.location().unwrap();
    p.answer("link", issue(&at, sub, Some("someone@corp.example")));
    callback(e, b, &q(&at, "state"), "link").await
}

#[tokio::test]
async fn a_password_account_links_and_unlinks_its_upstream_identity_on_the_account_page() {
    let p = provider().await;
    let e = federated_env(config(&p.fake.issuer)).await;
    let client = e.client().await;
    let before = users(&e).await;

    // Not signed in: nothing to link to.
    let mut stranger = Browser::default();
    let page = e.get(Some(&mut stranger), "/account").await;
    let refused = e
        .form(
            Some(&mut stranger),
            "/oauth/upstream",
            &[("csrf", &page.field("csrf")), ("link", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);

    let mut b = Browser::default();
    let csrf = account_sign_in(&e, &mut b, "alice", PASSWORD).await;
    let account = e.get(Some(&mut b), "/account").await;
    assert!(
        account.text.contains("Link your Example ID account"),
        "{}",
        account.text
    );
    let linked = link(&p, &e, &mut b, &csrf, "alice-at-idp").await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", linked.text);
    let account = follow(&e, &mut b, &linked).await;
    assert!(account.text.contains("is linked"), "{}", account.text);
    assert!(
        account.text.contains("id=\"upstream-linked\""),
        "{}",
        account.text
    );

    // Signing in upstream now opens alice's account: no new one.
    let (mut b2, back) = signed_in(&p, &e, &client, "alice-at-idp", "a@corp.example").await;
    let consent = follow(&e, &mut b2, &back).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.text);
    assert!(consent.text.contains("<dd>alice</dd>"), "{}", consent.text);
    assert_eq!(users(&e).await, before);

    // The same identity cannot be linked to bob too.
    let bob = add_bob(&e).await;
    let (bob_name, bob_password) = bob.user.clone().unwrap();
    let mut bb = Browser::default();
    let csrf = account_sign_in(&e, &mut bb, &bob_name, &bob_password).await;
    let conflict = link(&p, &e, &mut bb, &csrf, "alice-at-idp").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text);
    assert!(
        conflict.text.contains("Nothing was changed"),
        "{}",
        conflict.text
    );
    let owner = e
        .server
        .store()
        .user_by_upstream(&p.fake.issuer, "alice-at-idp", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.username, "alice");

    // Alice unlinks it again: the identity opens nothing here any more.
    let csrf = e.get(Some(&mut b), "/account").await.field("csrf");
    let unlinked = e
        .form(Some(&mut b), "/account/unlink", &[("csrf", &csrf)])
        .await;
    let account = follow(&e, &mut b, &unlinked).await;
    assert!(
        account.text.contains("no longer linked"),
        "{}",
        account.text
    );
    assert!(
        account.text.contains("Link your Example ID account"),
        "{}",
        account.text
    );
    let store = e.server.store();
    assert_eq!(
        store
            .user_by_upstream(&p.fake.issuer, "alice-at-idp", 0)
            .await
            .unwrap(),
        None
    );

    // An account made by the provider has no password: unlinking would lock it out.
    let (mut bd, _) = signed_in(&p, &e, &client, "s-erin", "erin@corp.example").await;
    let csrf = e.get(Some(&mut bd), "/account").await.field("csrf");
    let kept = e
        .form(Some(&mut bd), "/account/unlink", &[("csrf", &csrf)])
        .await;
    assert_eq!(kept.status, StatusCode::CONFLICT, "{}", kept.text);
    assert!(kept.text.contains("no password"), "{}", kept.text);
    assert!(
        store
            .user_by_upstream(&p.fake.issuer, "s-erin", 0)
            .await
            .unwrap()
            .is_some()
    );
    p.handle.abort();
}
