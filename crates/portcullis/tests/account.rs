//! The account page, as a browser meets it through the real router: signing in on the page
//! itself, the connected applications, disconnecting one (its tokens stop, the consent is
//! forgotten), only ever one's own grants, and changing the password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::auth::*;
use http::StatusCode;

/// Signs `b` in on the account page as `user`; returns the answer to the form.
async fn sign_in(e: &Env, b: &mut Browser, user: &str, password: &str) -> Reply {
    let page = e.get(Some(b), "/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page.field("csrf");
    e.form(
        Some(b),
        "/account/login",
        &[("csrf", &csrf), ("username", user), ("password", password)],
    )
    .await
}

/// The account page of a signed-in browser.
async fn account(e: &Env, b: &mut Browser, user: &str, password: &str) -> Reply {
    let r = sign_in(e, b, user, password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/account");
    let page = e.get(Some(b), "/account").await;
    assert_eq!(page.status, StatusCode::OK);
    page
}

/// A second grant for an existing client, through the same browser (consent remembered).
async fn connect_again(e: &Env, b: &mut Browser, client: &str) -> serde_json::Value {
    let back = e.approve(b, &authorize_query(client, &[])).await;
    let t = e.exchange(&back.param("code").unwrap(), client).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    t.json()
}

async fn change_password(
    e: &Env,
    b: &mut Browser,
    csrf: &str,
    current: &str,
    new: &str,
    again: &str,
) -> Reply {
    e.form(
        Some(b),
        "/account/password",
        &[
            ("csrf", csrf),
            ("current_password", current),
            ("new_password", new),
            ("new_password_again", again),
        ],
    )
    .await
}

async fn disconnect(e: &Env, b: &mut Browser, client: &str) -> Reply {
    let page = e.get(Some(b), "/account").await;
    let csrf = page.field("csrf");
    e.form(
        Some(b),
        "/account/revoke",
        &[("csrf", &csrf), ("client_id", client)],
    )
    .await
}

#[tokio::test]
async fn signed_out_the_page_is_a_sign_in_form_then_it_lists_connected_apps_by_client() {
    let e = env().await;
    let mut app_browser = Browser::default();
    let client = e.client().await;
    let back = e
        .approve(&mut app_browser, &authorize_query(&client, &[]))
        .await;
    let t = e.exchange(&back.param("code").unwrap(), &client).await;
    assert_eq!(t.status, StatusCode::OK);
    connect_again(&e, &mut app_browser, &client).await;

    let mut b = Browser::default();
    let page = e.get(Some(&mut b), "/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains("action=\"/account/login\""),
        "{}",
        page.text
    );
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(b.cookie.is_some(), "a session for the form's CSRF token");

    // No CSRF token, no sign-in; a wrong password says so.
    let r = e
        .form(
            Some(&mut b),
            "/account/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = sign_in(&e, &mut b, "alice", "not the password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("Wrong username or password."), "{}", r.text);

    let before = b.cookie.clone();
    let page = account(&e, &mut b, "alice", PASSWORD).await;
    assert_ne!(b.cookie, before, "a new session id on sign-in");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.text.contains("Signed in as <strong>alice</strong>"));
    assert!(page.text.contains("<h3>Test client</h3>"), "{}", page.text);
    assert!(
        page.text.contains("<span class=\"host\">127.0.0.1</span>"),
        "the redirect URI's host: {}",
        page.text
    );
    assert!(
        page.text
            .contains("Connect to this server and use its tools as you")
    );
    assert_eq!(
        page.text.matches("name=\"client_id\"").count(),
        1,
        "two grants of one client are one entry"
    );
    assert!(
        !page.text.contains("<dd>not yet</dd>"),
        "tokens were issued, so it was used: {}",
        page.text
    );
    // Every form on the page carries the session's CSRF token.
    let csrf = page.field("csrf");
    assert_eq!(
        page.text.matches("<form method=\"post\"").count(),
        page.text
            .matches(&format!("name=\"csrf\" value=\"{csrf}\""))
            .count()
    );

    // Signing out leaves a sign-in form.
    let r = e
        .form(Some(&mut b), "/account/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = e.get(Some(&mut b), "/account").await;
    assert!(page.text.contains("action=\"/account/login\""));
}

#[tokio::test]
async fn disconnecting_stops_the_tokens_and_forgets_the_consent() {
    let e = env().await;
    let mut app_browser = Browser::default();
    let client = e.client().await;
    let back = e
        .approve(&mut app_browser, &authorize_query(&client, &[]))
        .await;
    let first = e
        .exchange(&back.param("code").unwrap(), &client)
        .await
        .json();
    let second = connect_again(&e, &mut app_browser, &client).await;
    for t in [&first, &second] {
        assert_eq!(
            e.mcp(t["access_token"].as_str()).await.status,
            StatusCode::OK
        );
    }

    let mut b = Browser::default();
    account(&e, &mut b, "alice", PASSWORD).await;
    // A form without the token changes nothing.
    let r = e
        .form(Some(&mut b), "/account/revoke", &[("client_id", &client)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text.contains("Nothing was changed"));
    assert_eq!(
        e.mcp(first["access_token"].as_str()).await.status,
        StatusCode::OK
    );

    let r = disconnect(&e, &mut b, &client).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/account?done=disconnected");
    for t in [&first, &second] {
        assert_eq!(
            e.mcp(t["access_token"].as_str()).await.status,
            StatusCode::UNAUTHORIZED,
            "every grant of the client"
        );
        let r = e
            .refresh(t["refresh_token"].as_str().unwrap(), &client)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"], "invalid_grant");
    }
    let page = e.get(Some(&mut b), "/account?done=disconnected").await;
    assert!(page.text.contains("The application was disconnected"));
    assert!(page.text.contains("id=\"no-apps\""), "{}", page.text);

    // Connecting again asks for consent again.
    let again = e
        .authorize(Some(&mut app_browser), &authorize_query(&client, &[]))
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let consent = e
        .get(
            Some(&mut app_browser),
            again.headers["location"].to_str().unwrap(),
        )
        .await;
    assert_eq!(
        consent.status,
        StatusCode::OK,
        "the consent page, not a code"
    );
    assert!(consent.text.contains("value=\"approve\""));
}

#[tokio::test]
async fn a_user_sees_and_disconnects_only_their_own_grants() {
    let e = env().await;
    let mut alice_app = Browser::default();
    let client = e.client().await;
    let back = e
        .approve(&mut alice_app, &authorize_query(&client, &[]))
        .await;
    let alice = e
        .exchange(&back.param("code").unwrap(), &client)
        .await
        .json();

    let mut bob = add_bob(&e).await;
    let page = account(&e, &mut bob, "bob", BOB_PASSWORD).await;
    assert!(
        page.text.contains("id=\"no-apps\""),
        "alice's app is not bob's: {}",
        page.text
    );
    // Bob posts alice's client id: nothing of alice's is touched.
    let r = disconnect(&e, &mut bob, &client).await;
    assert_eq!(r.headers["location"], "/account?done=nothing");
    assert_eq!(
        e.mcp(alice["access_token"].as_str()).await.status,
        StatusCode::OK
    );

    // Bob connects the same client, then disconnects it: only his grant ends.
    let mut bob_app = Browser {
        cookie: None,
        user: bob.user.clone(),
    };
    let back = e
        .approve(&mut bob_app, &authorize_query(&client, &[]))
        .await;
    let bobs = e
        .exchange(&back.param("code").unwrap(), &client)
        .await
        .json();
    let r = disconnect(&e, &mut bob, &client).await;
    assert_eq!(r.headers["location"], "/account?done=disconnected");
    assert_eq!(
        e.mcp(bobs["access_token"].as_str()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        e.mcp(alice["access_token"].as_str()).await.status,
        StatusCode::OK
    );
    let r = e
        .refresh(alice["refresh_token"].as_str().unwrap(), &client)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Alice's consent is still remembered: no consent page for her.
    let again = e
        .authorize(Some(&mut alice_app), &authorize_query(&client, &[]))
        .await;
    let consent = e
        .get(
            Some(&mut alice_app),
            again.headers["location"].to_str().unwrap(),
        )
        .await;
    assert_eq!(consent.status, StatusCode::SEE_OTHER);
    assert!(consent.param("code").is_some());
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_ends_other_sessions() {
    let e = env().await;
    let mut b = Browser::default();
    let page = account(&e, &mut b, "alice", PASSWORD).await;
    let csrf = page.field("csrf");
    let mut elsewhere = Browser::default();
    account(&e, &mut elsewhere, "alice", PASSWORD).await;
    const NEW: &str = "a brand new long password";
    let r = change_password(&e, &mut b, &csrf, PASSWORD, NEW, "something else entirely").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text
            .contains("The two new passwords are not the same. Nothing was changed."),
        "{}",
        r.text
    );
    let r = change_password(&e, &mut b, &csrf, PASSWORD, "short", "short").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("at least 12 characters"), "{}", r.text);
    let r = change_password(&e, &mut b, &csrf, "not my password", NEW, NEW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.text
            .contains("Your current password is not right. Nothing was changed."),
        "{}",
        r.text
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = change_password(&e, &mut b, "", PASSWORD, NEW, NEW).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token, no change");
    // Nothing changed so far: the old password still works.
    let r = sign_in(&e, &mut Browser::default(), "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    let r = change_password(&e, &mut b, &csrf, PASSWORD, NEW, NEW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/account?done=password");
    let page = e.get(Some(&mut b), "/account?done=password").await;
    assert!(
        page.text.contains("Your password was changed."),
        "this browser stays signed in"
    );
    let page = e.get(Some(&mut elsewhere), "/account").await;
    assert!(
        page.text.contains("action=\"/account/login\""),
        "the other browser was signed out"
    );

    let r = sign_in(&e, &mut Browser::default(), "alice", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    let r = sign_in(&e, &mut Browser::default(), "alice", NEW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // And at the OAuth login too.
    let (_, t) = e
        .tokens_as(Browser {
            cookie: None,
            user: Some(("alice".into(), NEW.into())),
        })
        .await;
    assert!(t["access_token"].is_string());
}

#[tokio::test]
async fn wrong_current_passwords_count_towards_the_sign_in_throttle() {
    let e = env().await;
    let mut b = Browser::default();
    let page = account(&e, &mut b, "alice", PASSWORD).await;
    let csrf = page.field("csrf");
    let mut statuses = vec![];
    for _ in 0..6 {
        let r = e
            .form(
                Some(&mut b),
                "/account/password",
                &[
                    ("csrf", csrf.as_str()),
                    ("current_password", "a wrong guess!!"),
                    ("new_password", "whatever long enough"),
                    ("new_password_again", "whatever long enough"),
                ],
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    // The same throttle as every sign-in: the account is locked for a while.
    let r = sign_in(&e, &mut Browser::default(), "alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_on_the_account_page() {
    let e = env().await;
    let mut bob = add_bob(&e).await;
    let id = e
        .server
        .store()
        .user_by_name("bob")
        .await
        .unwrap()
        .unwrap()
        .id;
    e.server
        .store()
        .set_user_disabled(&id, Some(1))
        .await
        .unwrap();
    let r = sign_in(&e, &mut bob, "bob", "a wrong password").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "no hint without the password"
    );
    let r = sign_in(&e, &mut bob, "bob", BOB_PASSWORD).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text.contains("This account is disabled."), "{}", r.text);
}
