//! Accounts from the command line (`portcullis user …`, `portcullis keys …`) against the
//! database a running server uses, and the pages they lead to: invitation and reset links,
//! self sign-up, disabled accounts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::auth::*;
use http::StatusCode;
use serde_json::Value;

/// Runs `portcullis ARGS` with `stdin`, returning (exit code, stdout, stderr).
fn cli(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env_remove("PORTCULLIS_PUBLIC_URL")
        .env_remove("PORTCULLIS_MASTER_KEY")
        .env_remove("PORTCULLIS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let (code, out, err) = cli(args, stdin);
    assert_eq!(code, 0, "portcullis {args:?} failed: {err}");
    out
}

fn fails(args: &[&str], stdin: Option<&str>, says: &str) {
    let (code, out, err) = cli(args, stdin);
    assert_eq!(code, 1, "portcullis {args:?} should fail: {out}");
    assert!(err.contains(says), "portcullis {args:?}: {err}");
}

fn browser(user: &str, password: &str) -> Browser {
    Browser {
        cookie: None,
        user: Some((user.into(), password.into())),
    }
}

/// Signs `user` in through the authorization endpoint's form; returns the login answer.
async fn try_login(e: &Env, client: &str, user: &str, password: &str, action: &str) -> Reply {
    let mut b = Browser {
        cookie: None,
        user: None,
    };
    let page = e
        .authorize(Some(&mut b), &authorize_query(client, &[]))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    e.form(
        Some(&mut b),
        "/oauth/login",
        &[
            ("request", &page.field("request")),
            ("csrf", &page.field("csrf")),
            ("username", user),
            ("password", password),
            ("action", action),
        ],
    )
    .await
}

/// The path and query of a link the CLI printed (the in-process router has no host).
fn link_path(out: &str) -> String {
    let link = out
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {out:?}"));
    let url = url::Url::parse(link).unwrap();
    assert_eq!(url.origin().ascii_serialization(), ISSUER, "{link}");
    format!("{}?{}", url.path(), url.query().unwrap())
}

fn access_token((_client, tokens): (String, Value)) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn users_are_added_listed_disabled_and_enabled_from_the_command_line() {
    let e = env().await;
    e.server.spawn_upkeep();
    let db = e.database_url.clone();
    let client = e.client().await;

    let out = ok(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("bob's long password\n"),
    );
    assert!(out.contains("created bob"), "{out}");
    let access = access_token(e.tokens_as(browser("bob", BOB_PASSWORD)).await);
    assert_eq!(e.mcp(Some(&access)).await.status, StatusCode::OK);

    let list: Value = serde_json::from_str(&ok(
        &["user", "list", "--json", "--database-url", &db],
        None,
    ))
    .unwrap();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(list[0]["admin"], true);
    assert_eq!(list[1]["admin"], false);
    assert_eq!(list[1]["connected_apps"], 1);
    assert_eq!(list[1]["disabled"], Value::Null);
    let table = ok(&["user", "list", "--database-url", &db], None);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bob") && l.contains("active")),
        "{table}"
    );

    // Disabled: the token is refused within the revocation poll, sign-in is refused.
    let out = ok(&["user", "disable", "bob", "--database-url", &db], None);
    assert!(out.contains("disabled bob"), "{out}");
    let started = Instant::now();
    while e.mcp(Some(&access)).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "token still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = try_login(&e, &client, "bob", BOB_PASSWORD, "login").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.text.contains("This account is disabled"),
        "{}",
        refused.text
    );
    let list: Value = serde_json::from_str(&ok(
        &["user", "list", "--json", "--database-url", &db],
        None,
    ))
    .unwrap();
    assert!(list[1]["disabled"].is_string());
    assert_eq!(list[1]["connected_apps"], 0);

    ok(&["user", "enable", "bob", "--database-url", &db], None);
    let back = try_login(&e, &client, "bob", BOB_PASSWORD, "login").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text);

    // Bad input: each names what to do, and changes nothing.
    fails(
        &["user", "disable", "nobody", "--database-url", &db],
        None,
        "no user named \"nobody\"",
    );
    // A mistyped path is named, and no empty database is made there.
    let typo = e.dir.join("portcullis-typo.db");
    let typo_url = format!("sqlite://{}", typo.display());
    fails(
        &["user", "list", "--database-url", &typo_url],
        None,
        &format!("there is no database at {}", typo.display()),
    );
    assert!(!typo.exists(), "the typo did not become a database");
    fails(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("another long password"),
        "already exists",
    );
    fails(
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("short"),
        "at least 12 characters",
    );
    fails(
        &[
            "user",
            "add",
            "bad name",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("a long enough password"),
        "is not valid",
    );
    fails(
        &["user", "invite", "dave", "--database-url", &db],
        None,
        "--public-url",
    );
    let (code, _, err) = cli(&["user", "add", "carol", "--database-url", &db], None);
    assert_eq!(code, 2, "--password-stdin is required: {err}");
    assert!(err.contains("--password-stdin"), "{err}");
    let list: Value = serde_json::from_str(&ok(
        &["user", "list", "--json", "--database-url", &db],
        None,
    ))
    .unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing was created: {list}"
    );
}

#[tokio::test]
async fn an_invitation_and_a_reset_link_let_the_person_choose_a_password_once() {
    let e = env().await;
    let db = e.database_url.clone();
    let client = e.client().await;

    let out = ok(
        &[
            "user",
            "invite",
            "carol",
            "--public-url",
            RESOURCE,
            "--database-url",
            &db,
        ],
        None,
    );
    assert!(out.contains("works once"), "{out}");
    let link = link_path(&out);
    let page = e.get(None, &link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Create your account") && page.text.contains("carol"));
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");

    let token = token_of(&link);
    let submit = |password: &'static str, confirm: &'static str| {
        let token = token.clone();
        let e = &e;
        async move {
            e.form(
                None,
                "/oauth/password",
                &[
                    ("token", &token),
                    ("password", password),
                    ("confirm", confirm),
                ],
            )
            .await
        }
    };
    let r = submit("carol's long password", "carol's other password").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("The two passwords differ"), "{}", r.text);
    let r = submit("short", "short").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("at least 12 characters"), "{}", r.text);
    let r = submit("carol's long password", "carol's long password").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Account created"));
    let again = submit("carol's new password", "carol's new password").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "a link works once");
    assert_eq!(e.get(None, &link).await.status, StatusCode::NOT_FOUND);
    let wrong = e
        .form(
            None,
            "/oauth/password",
            &[
                ("token", "made-up"),
                ("password", "x".repeat(20).as_str()),
                ("confirm", "x".repeat(20).as_str()),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    let access = access_token(e.tokens_as(browser("carol", "carol's long password")).await);
    assert_eq!(e.mcp(Some(&access)).await.status, StatusCode::OK);
    fails(
        &[
            "user",
            "invite",
            "carol",
            "--public-url",
            RESOURCE,
            "--database-url",
            &db,
        ],
        None,
        "already exists",
    );

    // A reset link replaces the password; the old one stops working.
    let out = ok(
        &[
            "user",
            "reset-password",
            "carol",
            "--json",
            "--public-url",
            RESOURCE,
            "--database-url",
            &db,
        ],
        None,
    );
    let printed: Value = serde_json::from_str(&out).unwrap();
    let link = link_path(printed["link"].as_str().unwrap());
    assert!(
        e.get(None, &link)
            .await
            .text
            .contains("Choose a new password")
    );
    let r = e
        .form(
            None,
            "/oauth/password",
            &[
                ("token", &token_of(&link)),
                ("password", "carol's reset password"),
                ("confirm", "carol's reset password"),
            ],
        )
        .await;
    assert!(r.text.contains("Password changed"), "{}", r.text);
    let old = try_login(&e, &client, "carol", "carol's long password", "login").await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = try_login(&e, &client, "carol", "carol's reset password", "login").await;
    assert_eq!(new.status, StatusCode::SEE_OTHER, "{}", new.text);

    // Or the operator sets it directly.
    ok(
        &[
            "user",
            "reset-password",
            "carol",
            "--password-stdin",
            "--database-url",
            &db,
        ],
        Some("carol's operator password\n"),
    );
    let set = try_login(&e, &client, "carol", "carol's operator password", "login").await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.text);
    fails(
        &[
            "user",
            "reset-password",
            "nobody",
            "--public-url",
            RESOURCE,
            "--database-url",
            &db,
        ],
        None,
        "no user named",
    );
    let (code, _, err) = cli(
        &[
            "user",
            "invite",
            "erin",
            "--expires",
            "soon",
            "--public-url",
            RESOURCE,
            "--database-url",
            &db,
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("is not a duration"), "{err}");
}

#[tokio::test]
async fn self_sign_up_is_off_by_default_and_creates_a_plain_account_when_on() {
    let closed = env().await;
    let client = closed.client().await;
    let r = try_login(
        &closed,
        &client,
        "mallory",
        "mallory's long password",
        "signup",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text.contains("does not take sign-ups"), "{}", r.text);
    assert!(!r.text.contains("Create account and continue"));
    assert!(
        closed
            .server
            .store()
            .user_by_name("mallory")
            .await
            .unwrap()
            .is_none()
    );

    let open = env_with(|c| c.allow_signup = true).await;
    let client = open.client().await;
    let page = open.authorize(None, &authorize_query(&client, &[])).await;
    assert!(page.text.contains("Create account and continue"));
    let r = try_login(&open, &client, "dana", "dana's long password", "signup").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let dana = open
        .server
        .store()
        .user_by_name("dana")
        .await
        .unwrap()
        .unwrap();
    assert!(!dana.is_admin);
    let taken = try_login(&open, &client, "dana", "another long password", "signup").await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST);
    assert!(taken.text.contains("already exists"), "{}", taken.text);
    let short = try_login(&open, &client, "erin", "short", "signup").await;
    assert!(
        short.text.contains("at least 12 characters"),
        "{}",
        short.text
    );
}

#[tokio::test]
async fn keys_rotate_from_the_command_line_and_old_tokens_keep_working() {
    let e = env().await;
    e.server.spawn_upkeep();
    let db = e.database_url.clone();
    let key_file = e.dir.join("portcullis.key");
    let before = access_token(e.tokens().await);

    let keys: Value = serde_json::from_str(&ok(
        &["keys", "list", "--json", "--database-url", &db],
        None,
    ))
    .unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let first = keys[0]["kid"].as_str().unwrap().to_owned();

    fails(
        &[
            "keys",
            "rotate",
            "--database-url",
            &db,
            "--master-key-file",
            "/nonexistent/portcullis.key",
        ],
        None,
        "no master key at /nonexistent/portcullis.key",
    );
    let out = ok(
        &[
            "keys",
            "rotate",
            "--database-url",
            &db,
            "--master-key-file",
            key_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.contains("new signing key"), "{out}");
    let keys: Value = serde_json::from_str(&ok(
        &["keys", "list", "--json", "--database-url", &db],
        None,
    ))
    .unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let active: Vec<_> = keys.iter().filter(|k| k["active"] == true).collect();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0]["kid"], first.as_str());

    // The running server adopts the new key and still accepts tokens of the old one.
    assert_eq!(e.mcp(Some(&before)).await.status, StatusCode::OK);
    let new_kid = active[0]["kid"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let after = access_token(e.tokens().await);
        let header = after.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        if header["kid"] == new_kid.as_str() {
            assert_eq!(e.mcp(Some(&after)).await.status, StatusCode::OK);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still signing with the old key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Instances that start together on a new database all start: one creates the first admin,
/// the others find it (before, the losers of the race refused to start).
#[tokio::test]
async fn instances_starting_together_create_the_admin_once() {
    use portcullis_authz::server::{AsConfig, AuthServer, Bootstrap};
    let dir = std::env::temp_dir().join(format!(
        "portcullis-admin-race-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("p.db").display());
    let mut config = AsConfig::for_resource(RESOURCE).unwrap();
    config.master_key_env = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [7u8; 32],
    ));
    config.admin_user = "root".into();
    config.admin_password = Some(PASSWORD.into());
    portcullis_store::Store::open(&url).await.unwrap(); // the schema, as `migrate` would
    let starts = (0..4).map(|_| {
        let (config, url) = (config.clone(), url.clone());
        async move {
            let store = portcullis_store::Store::open(&url).await.unwrap();
            AuthServer::start(config, store).await.map(|(_, boot)| boot)
        }
    });
    let boots: Vec<Bootstrap> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("every instance starts"))
        .collect();
    let created = boots
        .iter()
        .filter(|b| matches!(b, Bootstrap::AdminCreated(_)))
        .count();
    assert_eq!(created, 1, "{boots:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
