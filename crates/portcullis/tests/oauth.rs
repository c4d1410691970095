//! The embedded authorization server and the guard, as a client and a browser meet them:
//! the whole login flow through the real router (no socket), and every bad input the issue
//! lists, each with the exact error expected. Sockets appear only where the point is what
//! a listener sees (client metadata documents).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis::testing;
use portcullis_authz::server::{AsConfig, AuthServer, Bootstrap, CimdPolicy, ScopeInfo};
use portcullis_oauth::jwt::{AccessClaims, SigningKey};
use portcullis_store::Store;
use serde_json::{Value, json};
use tower::ServiceExt as _;

// ---------------------------------------------------------------- the flow and metadata

#[tokio::test]
async fn full_flow_tools_see_the_user_and_the_token_works_only_in_the_header() {
    let e = env().await;
    let none = e.mcp(None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&none),
        format!(
            "Bearer resource_metadata=\"{ISSUER}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp notes:read\""
        )
    );

    let (client, t) = e.tokens().await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "mcp");
    let ok = e.mcp(t["access_token"].as_str()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let who: Value = serde_json::from_str(&ok.text).unwrap();
    let who = &who["result"]["structuredContent"];
    assert_eq!(who["authenticated"], true);
    assert_eq!(who["client_id"], client.as_str());
    assert!(who["user"].as_str().unwrap().starts_with("u_"));

    // A token in the query string is refused even when it is valid.
    let req = testing::post().uri(format!(
        "/mcp?access_token={}",
        t["access_token"].as_str().unwrap()
    ));
    let resp = e
        .router
        .clone()
        .oneshot(req.body(Body::from("{}")).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_request\"")
    );

    // The access token is an RFC 9068 JWT for this resource.
    let at = t["access_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(at.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let claims: Value =
        serde_json::from_slice(&B64.decode(at.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["client_id"], client.as_str());
    for c in ["sub", "exp", "iat", "jti", "grant_id", "scope"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }
}

#[tokio::test]
async fn metadata_documents_say_what_clients_need() {
    let e = env().await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = e.get(None, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let m = r.json();
        assert_eq!(m["resource"], RESOURCE);
        assert_eq!(m["authorization_servers"], json!([ISSUER]));
        assert_eq!(
            m["scopes_supported"],
            json!(["mcp", "notes:read"]),
            "minimal: the baseline"
        );
        assert_eq!(m["bearer_methods_supported"], json!(["header"]));
    }
    let m = e
        .get(None, "/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert!(
        m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    let jwks = e.get(None, "/oauth/jwks").await.json();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
}

#[tokio::test]
async fn cors_preflight_needs_no_token_and_exposes_the_challenge() {
    let e = env().await;
    let pre = e
        .send(
            None,
            Request::options("/mcp")
                .header("origin", "http://localhost:6274")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, mcp-protocol-version, content-type, mcp-param-region",
                ),
            Body::empty(),
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "http://localhost:6274"
    );
    let allowed = pre.headers["access-control-allow-headers"]
        .to_str()
        .unwrap();
    for h in [
        "authorization",
        "mcp-method",
        "mcp-name",
        "mcp-protocol-version",
        "content-type",
        "last-event-id",
        "mcp-param-region",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    let denied = e.mcp(None).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    let r = e
        .send(
            None,
            Request::get("/.well-known/oauth-protected-resource")
                .header("origin", "http://localhost:6274"),
            Body::empty(),
        )
        .await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://localhost:6274"
    );
    assert!(
        r.headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("WWW-Authenticate")
    );
    let other = e
        .send(
            None,
            Request::get("/.well-known/oauth-protected-resource")
                .header("origin", "https://evil.example"),
            Body::empty(),
        )
        .await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
}

// ---------------------------------------------------------------- authorization requests

#[tokio::test]
async fn pkce_is_required_and_plain_is_refused_by_redirect_with_iss_and_state() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let missing = e
        .authorize(
            Some(&mut b),
            &authorize_query(
                &client,
                &[("code_challenge", None), ("code_challenge_method", None)],
            ),
        )
        .await;
    assert_eq!(missing.status, StatusCode::SEE_OTHER);
    assert_eq!(missing.param("error").as_deref(), Some("invalid_request"));
    assert!(
        missing
            .param("error_description")
            .unwrap()
            .contains("PKCE is required")
    );
    assert_eq!(missing.param("state").as_deref(), Some("st-1"));
    assert_eq!(missing.param("iss").as_deref(), Some(ISSUER));
    let plain = e
        .authorize(
            Some(&mut b),
            &authorize_query(&client, &[("code_challenge_method", Some("plain"))]),
        )
        .await;
    assert_eq!(plain.param("error").as_deref(), Some("invalid_request"));
    assert!(
        plain
            .param("error_description")
            .unwrap()
            .contains("plain is not allowed")
    );
    let other = e
        .authorize(
            Some(&mut b),
            &authorize_query(&client, &[("resource", Some("https://other.example/mcp"))]),
        )
        .await;
    assert_eq!(other.param("error").as_deref(), Some("invalid_target"));
    assert_eq!(other.param("iss").as_deref(), Some(ISSUER));
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_get_a_page_and_no_redirect() {
    let e = env().await;
    let client = e.client().await;
    let cases = [
        (authorize_query("no-such-client", &[]), "not registered"),
        (
            authorize_query(
                &client,
                &[("redirect_uri", Some("https://evil.example/cb"))],
            ),
            "not registered for this application",
        ),
        (
            authorize_query(
                &client,
                &[("redirect_uri", Some("http://127.0.0.1:53683/other"))],
            ),
            "not registered for this application",
        ),
        (
            authorize_query(
                &client,
                &[("redirect_uri", Some("http://localhost:53683/callback"))],
            ),
            "not registered for this application",
        ),
    ];
    for (query, needle) in cases {
        let r = e.get(None, &format!("/oauth/authorize?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            r.headers.get("location").is_none(),
            "never redirects: {query}"
        );
        assert!(r.text.contains(needle), "{needle} in {}", r.text);
        assert_eq!(r.headers["x-frame-options"], "DENY");
    }
    // Loopback redirects match on any port.
    let mut b = Browser::default();
    let ok = e
        .authorize(
            Some(&mut b),
            &authorize_query(
                &client,
                &[("redirect_uri", Some("http://127.0.0.1:41999/callback"))],
            ),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn consent_forms_without_the_right_csrf_token_are_refused() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let page = e
        .authorize(Some(&mut b), &authorize_query(&client, &[]))
        .await;
    let request = page.field("request");
    let csrf = page.field("csrf");
    let no_csrf = e
        .form(
            Some(&mut b),
            "/oauth/login",
            &[
                ("request", &request),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let login = e.login(&mut b, &request, &csrf, PASSWORD).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let consent = e
        .get(Some(&mut b), login.headers["location"].to_str().unwrap())
        .await;
    let real = consent.field("csrf");
    assert_ne!(real, csrf, "login rotates the session and its token");
    for bad in [None, Some("wrong"), Some(csrf.as_str())] {
        let mut pairs = vec![("request", request.as_str()), ("decision", "approve")];
        if let Some(c) = bad {
            pairs.push(("csrf", c));
        }
        let r = e.form(Some(&mut b), "/oauth/consent", &pairs).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
        assert!(r.headers.get("location").is_none());
        assert!(r.text.contains("security token"));
    }
    // Another browser (no session) cannot finish this request either.
    let r = e
        .form(
            Some(&mut Browser::default()),
            "/oauth/consent",
            &[
                ("request", &request),
                ("csrf", &real),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let ok = e
        .form(
            Some(&mut b),
            "/oauth/consent",
            &[
                ("request", &request),
                ("csrf", &real),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert!(ok.param("code").is_some());
}

#[tokio::test]
async fn wrong_password_is_refused_and_repeated_failures_are_throttled() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let page = e
        .authorize(Some(&mut b), &authorize_query(&client, &[]))
        .await;
    let (request, csrf) = (page.field("request"), page.field("csrf"));
    let mut statuses = vec![];
    for _ in 0..6 {
        let r = e.login(&mut b, &request, &csrf, "wrong password!").await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    // Even the right password waits while the account is throttled.
    let r = e.login(&mut b, &request, &csrf, PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn client_names_with_html_are_escaped_and_consent_is_remembered() {
    let e = env().await;
    let r = e.register(json!({"client_name": "<script>alert(1)</script>", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).await;
    let client = r.json()["client_id"].as_str().unwrap().to_owned();
    let page = e
        .authorize(
            Some(&mut Browser::default()),
            &authorize_query(&client, &[]),
        )
        .await;
    assert!(!page.text.contains("<script>"), "{}", page.text);
    assert!(
        page.text
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
    );
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let mut b = Browser::default();
    let first = e.approve(&mut b, &authorize_query(&client, &[])).await;
    assert!(first.param("code").is_some());
    // Same user, client and scopes: no consent page the second time.
    let second = e
        .authorize(Some(&mut b), &authorize_query(&client, &[]))
        .await;
    let consent = e
        .get(Some(&mut b), second.headers["location"].to_str().unwrap())
        .await;
    assert_eq!(consent.status, StatusCode::SEE_OTHER);
    assert!(consent.param("code").is_some());
}

// ---------------------------------------------------------------- token endpoint

#[tokio::test]
async fn code_exchange_refuses_a_wrong_verifier_and_a_reused_code_revokes_the_grant() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let code = e
        .approve(&mut b, &authorize_query(&client, &[]))
        .await
        .param("code")
        .unwrap();
    let wrong = e
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"x".repeat(43)),
            ("client_id", &client),
        ])
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json()["error"], "invalid_grant");
    assert!(
        wrong.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier does not match")
    );

    let code = e
        .approve(&mut b, &authorize_query(&client, &[]))
        .await
        .param("code")
        .unwrap();
    let first = e.exchange(&code, &client).await;
    assert_eq!(first.status, StatusCode::OK);
    let t = first.json();
    assert_eq!(
        e.mcp(t["access_token"].as_str()).await.status,
        StatusCode::OK
    );
    let replay = e.exchange(&code, &client).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert!(
        replay.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let dead = e.mcp(t["access_token"].as_str()).await;
    assert_eq!(
        dead.status,
        StatusCode::UNAUTHORIZED,
        "the grant's access token is dead"
    );
    assert!(www(&dead).contains("revoked"));
    let refresh = e
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ])
        .await;
    assert_eq!(
        refresh.json()["error"],
        "invalid_grant",
        "and so is its refresh token"
    );
}

#[tokio::test]
async fn token_requests_with_missing_or_foreign_parts_get_the_rfc_errors() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let code = e
        .approve(&mut b, &authorize_query(&client, &[]))
        .await
        .param("code")
        .unwrap();
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("grant_type", "password"), ("client_id", &client)],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", "gone"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", &client),
            ],
            400,
            "invalid_grant",
        ),
    ];
    for (pairs, status, error) in cases {
        let r = e.token(&pairs).await;
        assert_eq!(r.status.as_u16(), status, "{pairs:?}: {}", r.text);
        assert_eq!(r.json()["error"], error, "{pairs:?}");
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    // The unspent code still works once the request is right, but not for another resource.
    let other = e
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client),
            ("resource", "https://other.example/mcp"),
        ])
        .await;
    assert_eq!(other.json()["error"], "invalid_target");
}

#[tokio::test]
async fn refresh_rotates_retries_in_the_grace_window_get_the_same_pair_and_scope_cannot_grow() {
    let e = env().await;
    let (client, t) = e.tokens().await;
    let rt = t["refresh_token"].as_str().unwrap();
    let first = e.refresh(rt, &client).await;
    assert_eq!(first.status, StatusCode::OK);
    let retry = e.refresh(rt, &client).await;
    assert_eq!(
        retry.status,
        StatusCode::OK,
        "a retried refresh inside the grace window"
    );
    assert_eq!(retry.json()["refresh_token"], first.json()["refresh_token"]);
    assert_eq!(retry.json()["access_token"], first.json()["access_token"]);
    assert_ne!(first.json()["refresh_token"], t["refresh_token"]);
    let next = first.json()["refresh_token"].as_str().unwrap().to_owned();
    let up = e
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", &client),
            ("scope", "mcp admin"),
        ])
        .await;
    assert_eq!(up.status, StatusCode::BAD_REQUEST);
    assert_eq!(up.json()["error"], "invalid_scope");
    let same = e
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &next),
            ("client_id", &client),
            ("scope", "mcp"),
        ])
        .await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "keeping the scope is allowed: {}",
        same.text
    );
}

#[tokio::test]
async fn refresh_reuse_after_the_grace_window_revokes_the_grant() {
    let e = env_with(|c| c.refresh_grace = -1).await; // every reuse is past the window
    let (client, t) = e.tokens().await;
    let rt = t["refresh_token"].as_str().unwrap();
    let first = e.refresh(rt, &client).await;
    assert_eq!(first.status, StatusCode::OK);
    let reuse = e.refresh(rt, &client).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    assert!(
        reuse.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    let newest = first.json();
    assert_eq!(
        e.mcp(newest["access_token"].as_str()).await.status,
        StatusCode::UNAUTHORIZED,
        "the new access token dies too"
    );
    let r = e
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", newest["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ])
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
}

// ---------------------------------------------------------------- the guard

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused_with_invalid_token() {
    let e = env().await;
    // A key the server trusts (added to its key set), to sign tokens whose claims are wrong.
    let trusted = SigningKey::from_pkcs8(
        "test-key",
        &SigningKey::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap(),
    )
    .unwrap();
    let guard = e.server.guard();
    let mut keys = guard.keys.all();
    keys.push(trusted.verifying_key());
    guard.keys.replace(keys);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let good = AccessClaims {
        iss: ISSUER.into(),
        sub: "u_x".into(),
        aud: vec![RESOURCE.into()],
        client_id: "c".into(),
        scope: "mcp".into(),
        exp: now + 600,
        iat: now,
        nbf: None,
        jti: "j".into(),
        grant_id: "g".into(),
    };
    assert_eq!(
        e.mcp(Some(&trusted.sign(&good))).await.status,
        StatusCode::OK,
        "the control token passes"
    );
    let stranger = SigningKey::from_pkcs8(
        "stranger",
        &SigningKey::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap(),
    )
    .unwrap();
    let good_token = trusted.sign(&good);
    let mut parts: Vec<String> = good_token.split('.').map(str::to_owned).collect();
    let mut tampered_claims = good.clone();
    tampered_claims.sub = "u_admin".into();
    parts[1] = B64.encode(serde_json::to_vec(&tampered_claims).unwrap());
    let tampered = parts.join(".");
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"at+jwt","kid":"test-key"}"#),
        B64.encode(serde_json::to_vec(&good).unwrap())
    );
    let cases = [
        (
            trusted.sign(&AccessClaims {
                aud: vec!["https://other.example/mcp".into()],
                ..good.clone()
            }),
            "another resource",
        ),
        (
            trusted.sign(&AccessClaims {
                iss: "https://evil.example".into(),
                ..good.clone()
            }),
            "another authorization server",
        ),
        (
            trusted.sign(&AccessClaims {
                exp: now - 120,
                iat: now - 800,
                ..good.clone()
            }),
            "expired",
        ),
        (none, "\\\"none\\\" is not accepted"),
        (tampered, "signature is invalid"),
        (stranger.sign(&good), "unknown key"),
        ("not-a-jwt".to_owned(), "not a well-formed JWT"),
    ];
    for (token, needle) in cases {
        let r = e.mcp(Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{needle}");
        let h = www(&r);
        assert!(h.contains("error=\"invalid_token\""), "{h}");
        assert!(h.contains("resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""), "{h}");
        assert!(
            r.text.contains(needle.trim_matches('\\')) || h.contains(needle),
            "{needle}: {h}"
        );
    }
}

#[tokio::test]
async fn a_revoked_grant_stops_at_once_and_rotated_keys_stay_published_until_their_tokens_expire() {
    let e = env().await;
    let (client, t) = e.tokens().await;
    let at = t["access_token"].as_str().unwrap();
    let old_kid = e.get(None, "/oauth/jwks").await.json()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    e.server.rotate_signing_key().await.unwrap();
    let jwks = e.get(None, "/oauth/jwks").await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "old and new key published: {kids:?}");
    assert!(kids.contains(&old_kid.as_str()));
    assert_eq!(
        e.mcp(Some(at)).await.status,
        StatusCode::OK,
        "a token from the old key still works"
    );
    let r = e
        .form(
            None,
            "/oauth/revoke",
            &[
                ("token", at),
                ("token_type_hint", "access_token"),
                ("client_id", &client),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(e.mcp(Some(at)).await.status, StatusCode::UNAUTHORIZED);
    // Unknown tokens are a 200 too (RFC 7009), and introspection needs a confidential client.
    let r = e
        .form(
            None,
            "/oauth/revoke",
            &[("token", "whatever"), ("client_id", &client)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = e
        .form(
            None,
            "/oauth/introspect",
            &[("token", at), ("client_id", &client)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_client");
}

#[tokio::test]
async fn introspection_answers_authenticated_confidential_clients() {
    let e = env().await;
    let conf = e.register(json!({"client_name": "backend", "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"})).await.json();
    let (id, secret) = (
        conf["client_id"].as_str().unwrap(),
        conf["client_secret"].as_str().unwrap(),
    );
    let (_, t) = e.tokens().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    let body = format!("token={}", t["access_token"].as_str().unwrap());
    let r = e
        .send(
            None,
            Request::post("/oauth/introspect")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", &basic),
            Body::from(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["active"], true);
    assert_eq!(r.json()["aud"], json!([RESOURCE]));
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:nope"))
    );
    let r = e
        .send(
            None,
            Request::post("/oauth/introspect")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", &wrong),
            Body::from("token=x"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------- registration

#[tokio::test]
async fn registration_validates_deduplicates_and_caps_the_body() {
    let e = env().await;
    let big = json!({"client_name": "x".repeat(20_000), "redirect_uris": [REDIRECT]});
    let r = e.register(big).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_client_metadata");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    let r = e
        .register(json!({"redirect_uris": ["http://example.com/cb"]}))
        .await;
    assert_eq!(r.json()["error"], "invalid_redirect_uri");
    let r = e
        .register(json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "web"}))
        .await;
    assert_eq!(r.json()["error"], "invalid_redirect_uri");
    let r = e
        .send(
            None,
            Request::post("/oauth/register").header("content-type", "application/json"),
            Body::from("{not json"),
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_client_metadata");
    let a = e.client().await;
    let b = e.client().await;
    assert_eq!(a, b, "identical public registrations share one client");
    let c = e.register(json!({"client_name": "Cursor", "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback", "https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:7777/callback"]})).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    assert_eq!(c.json()["application_type"], "native");
    assert_eq!(c.json()["token_endpoint_auth_method"], "none");
}

// ---------------------------------------------------------------- client metadata documents

/// A plain-HTTP listener on loopback serving bad documents, counting connections.
async fn document_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let doc = move |path: &str, id: Option<String>| {
        json!({"client_id": id.unwrap_or_else(|| format!("{base}{path}")), "client_name": "Doc client", "redirect_uris": [REDIRECT]}).to_string()
    };
    let (d1, d2) = (doc.clone(), doc.clone());
    let app = Router::new()
        .route(
            "/ok.json",
            axum::routing::get(move || async move {
                ([("content-type", "application/json")], d1("/ok.json", None))
            }),
        )
        .route(
            "/other-id.json",
            axum::routing::get(move || async move {
                (
                    [("content-type", "application/json")],
                    d2(
                        "/other-id.json",
                        Some("https://elsewhere.example/c.json".into()),
                    ),
                )
            }),
        )
        .route(
            "/big.json",
            axum::routing::get(|| async {
                (
                    [("content-type", "application/json")],
                    format!("{{\"pad\":\"{}\"}}", "x".repeat(6000)),
                )
            }),
        )
        .route(
            "/moved.json",
            axum::routing::get(|| async { (StatusCode::FOUND, [("location", "/ok.json")]) }),
        )
        .route(
            "/text.json",
            axum::routing::get(|| async { ([("content-type", "text/html")], "<html>") }),
        );
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let app = app.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| app.clone().oneshot(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn metadata_documents_on_loopback_are_refused_without_a_connection() {
    let e = env().await; // production policy
    let (addr, hits) = document_server().await;
    let id = format!("https://localhost:{}/ok.json", addr.port());
    let r = e.authorize(None, &authorize_query(&id, &[])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("non-public address"), "{}", r.text);
    assert!(r.headers.get("location").is_none());
    let id = format!("http://127.0.0.1:{}/ok.json", addr.port());
    let r = e.authorize(None, &authorize_query(&id, &[])).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "plain http client ids are not documents"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the listener saw no connection"
    );
}

#[tokio::test]
async fn bad_metadata_documents_are_refused_with_the_reason() {
    // The test-only policy allows loopback (and plain http there), so the fetch happens.
    let e = env_with(|c| {
        c.cimd = CimdPolicy {
            allow_loopback: true,
            extra_roots: None,
        }
    })
    .await;
    let (addr, hits) = document_server().await;
    let base = format!("http://127.0.0.1:{}", addr.port());
    for (path, needle) in [
        ("/moved.json", "redirects are not followed"),
        ("/big.json", "larger than 5 KB"),
        ("/other-id.json", "differs from the URL"),
        ("/text.json", "not served as application/json"),
        ("/missing.json", "answered HTTP 404"),
    ] {
        let r = e
            .authorize(None, &authorize_query(&format!("{base}{path}"), &[]))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(r.text.contains(needle), "{path}: {needle} in {}", r.text);
    }
    let ok = e
        .authorize(
            Some(&mut Browser::default()),
            &authorize_query(&format!("{base}/ok.json"), &[]),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.text.contains("Doc client"));
    // Its only redirect is loopback: consent warns, and names the document's host.
    let mut b = Browser::default();
    let page = e
        .authorize(
            Some(&mut b),
            &authorize_query(&format!("{base}/ok.json"), &[]),
        )
        .await;
    let login = e
        .login(
            &mut b,
            &page.field("request"),
            &page.field("csrf"),
            PASSWORD,
        )
        .await;
    let consent = e
        .get(Some(&mut b), login.headers["location"].to_str().unwrap())
        .await;
    assert!(
        consent.text.contains("lists only local addresses"),
        "{}",
        consent.text
    );
    assert!(
        consent.text.contains("(from 127.0.0.1)"),
        "{}",
        consent.text
    );
    assert!(hits.load(Ordering::SeqCst) >= 6);
    // The redirect URI must be listed in the document.
    let r = e
        .authorize(
            None,
            &authorize_query(
                &format!("{base}/ok.json"),
                &[("redirect_uri", Some("http://127.0.0.1:1/elsewhere"))],
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- sessions

#[tokio::test]
async fn a_2025_session_is_usable_only_by_the_user_who_opened_it() {
    let e = env().await;
    let bob_browser = add_bob(&e).await;
    let (_, alice) = e.tokens().await;
    let (_, bob) = e.tokens_as(bob_browser).await;
    let bearer = |t: &Value| format!("Bearer {}", t["access_token"].as_str().unwrap());
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": testing::LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let req = testing::post()
        .header("authorization", bearer(&alice))
        .body(Body::from(init.to_string()))
        .unwrap();
    let resp = e.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let call = |token: String| {
        testing::post()
            .header("authorization", token)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", testing::LEGACY)
            .body(Body::from(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
            ))
            .unwrap()
    };
    let stolen = e.router.clone().oneshot(call(bearer(&bob))).await.unwrap();
    assert_eq!(
        stolen.status(),
        StatusCode::NOT_FOUND,
        "bob cannot use alice's session"
    );
    let own = e
        .router
        .clone()
        .oneshot(call(bearer(&alice)))
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::ACCEPTED, "alice can");
    let anonymous = e
        .router
        .clone()
        .oneshot(
            testing::post()
                .header("mcp-session-id", &session)
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "and a session id alone is no credential"
    );
}

// ---------------------------------------------------------------- accounts, consent, cookies

#[tokio::test]
async fn first_start_without_a_password_prints_a_one_time_setup_link() {
    let e = env_with(|c| c.admin_password = None).await;
    let Bootstrap::SetupLink(link) = &e.boot else {
        panic!("expected a setup link, got {:?}", e.boot)
    };
    let path = link.strip_prefix(ISSUER).unwrap().to_owned();
    let token = path.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(
        e.get(None, "/setup?token=wrong").await.status,
        StatusCode::NOT_FOUND
    );
    let page = e.get(None, &path).await;
    assert_eq!(page.status, StatusCode::OK);
    let short = e
        .form(
            None,
            "/setup",
            &[
                ("token", &token),
                ("username", "root"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(short.text.contains("at least 12 characters"));
    let ok = e
        .form(
            None,
            "/setup",
            &[
                ("token", &token),
                ("username", "root"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        e.get(None, &path).await.status,
        StatusCode::NOT_FOUND,
        "the link works once"
    );
    assert!(
        e.server
            .store()
            .user_by_name("root")
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
}

#[tokio::test]
async fn a_new_scope_asks_again_for_only_what_is_new() {
    let e = env_with(|c| {
        c.scopes.push(ScopeInfo {
            name: "calendar:read",
            description: "Read your calendar",
        })
    })
    .await;
    let client = e.client().await;
    let mut b = Browser::default();
    let first = e.approve(&mut b, &authorize_query(&client, &[])).await;
    assert!(first.param("code").is_some());
    let again = e
        .authorize(
            Some(&mut b),
            &authorize_query(&client, &[("scope", Some("mcp calendar:read"))]),
        )
        .await;
    let consent = e
        .get(Some(&mut b), again.headers["location"].to_str().unwrap())
        .await;
    assert_eq!(consent.status, StatusCode::OK, "a new scope needs consent");
    assert!(
        consent.text.contains("It now also asks to"),
        "{}",
        consent.text
    );
    assert!(
        consent.text.contains("Read your calendar"),
        "{}",
        consent.text
    );
    let (new_part, old_part) = consent.text.split_once("Already allowed").unwrap();
    assert!(new_part.contains("calendar:read") && !new_part.contains("<code>mcp</code>"));
    assert!(old_part.contains("<code>mcp</code>"));
}

#[tokio::test]
async fn insufficient_scope_is_a_403_naming_the_scope() {
    let e = env().await;
    let key = SigningKey::from_pkcs8(
        "k2",
        &SigningKey::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap(),
    )
    .unwrap();
    let guard = e.server.guard();
    let mut keys = guard.keys.all();
    keys.push(key.verifying_key());
    guard.keys.replace(keys);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: "u".into(),
        aud: vec![RESOURCE.into()],
        client_id: "c".into(),
        scope: "other".into(),
        exp: now + 60,
        iat: now,
        nbf: None,
        jti: "j".into(),
        grant_id: "g".into(),
    };
    let r = e.mcp(Some(&key.sign(&claims))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let h = www(&r);
    assert!(h.contains("error=\"insufficient_scope\""), "{h}");
    assert!(h.contains("scope=\"mcp\""), "{h}");
    assert!(h.contains("resource_metadata="), "{h}");
}

#[tokio::test]
async fn https_deployments_get_host_prefixed_secure_cookies() {
    let dir = std::env::temp_dir().join(format!("portcullis-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = AsConfig::for_resource("https://mcp.example.com/mcp").unwrap();
    config.master_key_file = dir.join("k");
    config.admin_password = Some(PASSWORD.into());
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (server, _) = AuthServer::start(config, store).await.unwrap();
    let router = server.router();
    let reg =
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string();
    let resp = router
        .clone()
        .oneshot(
            Request::post("/oauth/register")
                .header("content-type", "application/json")
                .body(Body::from(reg))
                .unwrap(),
        )
        .await
        .unwrap();
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let query = authorize_query(
        body["client_id"].as_str().unwrap(),
        &[("resource", Some("https://mcp.example.com/mcp"))],
    );
    let resp = router
        .oneshot(
            Request::get(format!("/oauth/authorize?{query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-portcullis="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn the_redirect_uri_is_repeated_at_the_token_endpoint_only_when_it_was_sent() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    // Sent on the authorization request: must come back, unchanged.
    let code = e
        .approve(&mut b, &authorize_query(&client, &[]))
        .await
        .param("code")
        .unwrap();
    let pairs = |code: &str, redirect: Option<&'static str>| {
        let mut p = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
            ("client_id", client.clone()),
        ];
        if let Some(r) = redirect {
            p.push(("redirect_uri", r.to_owned()));
        }
        p
    };
    let send = |p: Vec<(&'static str, String)>| {
        let e = &e;
        async move {
            e.token(&p.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>())
                .await
        }
    };
    let missing = send(pairs(&code, None)).await;
    assert_eq!(missing.json()["error"], "invalid_request");
    let other = send(pairs(&code, Some("http://127.0.0.1:1/other"))).await;
    assert_eq!(other.json()["error"], "invalid_grant");
    // Left out of the authorization request (one registered URI): may be left out here too.
    let back = e
        .approve(&mut b, &authorize_query(&client, &[("redirect_uri", None)]))
        .await;
    assert!(
        back.location().unwrap().as_str().starts_with(REDIRECT),
        "sent to the registered URI"
    );
    let ok = send(pairs(&back.param("code").unwrap(), None)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn registration_stops_at_the_global_cap_with_a_retryable_error() {
    let e = env_with(|c| c.max_clients = 1).await;
    e.client().await;
    let r = e
        .register(json!({"client_name": "second", "redirect_uris": ["http://127.0.0.1/cb"]}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    // A client registering again with identical metadata still gets its existing id.
    let same = e.register(json!({"client_name": "Test client", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(same.status, StatusCode::CREATED, "{}", same.text);
}

#[tokio::test]
async fn the_database_holds_no_code_token_or_password_in_the_clear() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let code = e
        .approve(&mut b, &authorize_query(&client, &[]))
        .await
        .param("code")
        .unwrap();
    let t = e.exchange(&code, &client).await.json();
    let r = e
        .refresh(t["refresh_token"].as_str().unwrap(), &client)
        .await
        .json();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&e.dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("portcullis.db")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(bytes.len() > 4096, "the database files were read");
    let cookie = b.cookie.clone().unwrap();
    let session = cookie.split('=').nth(1).unwrap().to_owned();
    let secrets = [
        ("code", code),
        (
            "access token",
            t["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            "refresh token",
            t["refresh_token"].as_str().unwrap().to_owned(),
        ),
        (
            "rotated refresh token",
            r["refresh_token"].as_str().unwrap().to_owned(),
        ),
        ("browser session", session),
        ("password", PASSWORD.to_owned()),
    ];
    for (what, value) in secrets {
        let found = bytes.windows(value.len()).any(|w| w == value.as_bytes());
        assert!(!found, "the {what} is stored in the clear");
    }
}

#[tokio::test]
async fn denying_consent_sends_access_denied_back_with_state_and_iss() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    let page = e
        .authorize(Some(&mut b), &authorize_query(&client, &[]))
        .await;
    let request = page.field("request");
    let login = e
        .login(&mut b, &request, &page.field("csrf"), PASSWORD)
        .await;
    let consent = e
        .get(Some(&mut b), login.headers["location"].to_str().unwrap())
        .await;
    let csrf = consent.field("csrf");
    let denied = e
        .form(
            Some(&mut b),
            "/oauth/consent",
            &[("request", &request), ("csrf", &csrf), ("decision", "deny")],
        )
        .await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    assert!(denied.location().unwrap().as_str().starts_with(REDIRECT));
    assert_eq!(denied.param("error").as_deref(), Some("access_denied"));
    assert_eq!(denied.param("state").as_deref(), Some("st-1"));
    assert_eq!(denied.param("iss").as_deref(), Some(ISSUER));
    assert!(denied.param("code").is_none());
    // The request is finished: approving it afterwards does nothing.
    let late = e
        .form(
            Some(&mut b),
            "/oauth/consent",
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.headers.get("location").is_none());
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // In-process requests have no peer address (0.0.0.0): make that the trusted proxy, in
    // front of which sits a second proxy in a trusted range.
    let e = env_with(|c| {
        c.trusted_proxies = vec!["0.0.0.0".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]
    })
    .await;
    let register = |ip: &'static str| {
        let e = &e;
        async move {
            e.send(
                None,
                Request::post("/oauth/register")
                    .header("content-type", "application/json")
                    .header("x-forwarded-for", format!("203.0.113.9, {ip}, 10.1.2.3")),
                Body::from(
                    json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})
                        .to_string(),
                ),
            )
            .await
            .status
        }
    };
    for _ in 0..30 {
        assert_eq!(register("192.0.2.1").await, StatusCode::CREATED);
    }
    assert_eq!(
        register("192.0.2.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "limited per forwarded address"
    );
    assert_eq!(
        register("192.0.2.2").await,
        StatusCode::CREATED,
        "another client behind the proxy is not"
    );

    // Without a trusted proxy the header is ignored: everyone shares the peer's budget.
    let plain = env().await;
    for i in 0..31 {
        let r = plain
            .send(
                None,
                Request::post("/oauth/register")
                    .header("content-type", "application/json")
                    .header("x-forwarded-for", format!("198.51.100.{i}")),
                Body::from(
                    json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})
                        .to_string(),
                ),
            )
            .await;
        let expected = if i < 30 {
            StatusCode::CREATED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, expected, "request {i}");
    }
}
