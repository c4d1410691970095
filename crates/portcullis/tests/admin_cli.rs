//! `portcullis client …` and `portcullis grant …`, run as the binary against the database of
//! an in-process server whose clients and grants come from real OAuth flows: listings,
//! their JSON, clear errors for unknown names, and revocations that the server honours
//! (refresh refused at once, access tokens within the revocation poll).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::auth::*;
use http::StatusCode;
use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", self.stdout))
    }
}

fn run(e: &Env, args: &[&str]) -> Out {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .args(["--database-url", &e.database_url])
        .env_remove("PORTCULLIS_DATABASE_URL")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn by_id<'a>(list: &'a Value, key: &str, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

/// Registers a client named `name` and connects it as the browser's user.
async fn connect(e: &Env, mut b: Browser, name: &str) -> (String, Value) {
    let r = e
        .register(serde_json::json!({"client_name": name, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let client = r.json()["client_id"].as_str().unwrap().to_owned();
    let back = e.approve(&mut b, &authorize_query(&client, &[])).await;
    let t = e.exchange(&back.param("code").unwrap(), &client).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    (client, t.json())
}

#[tokio::test]
async fn clients_and_grants_are_listed_shown_and_revoked() {
    let e = env().await;
    let (alices_client, alice) = connect(&e, Browser::default(), "Test client").await;
    let bob = add_bob(&e).await;
    let (bobs_client, bobs) = connect(&e, bob, "Bob's app").await;

    // client list: JSON array, and a table.
    let list = run(&e, &["client", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let c = by_id(&list, "client_id", &alices_client);
    assert_eq!(c["name"], "Test client");
    assert_eq!(c["kind"], "registered");
    assert_eq!(c["live_grants"], 1);
    assert!(c["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(c["last_used_at"].is_string(), "tokens were issued: {c}");
    let out = run(&e, &["client", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("CLIENT ID") && lines[0].ends_with("LIVE GRANTS"),
        "{}",
        out.stdout
    );
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(out.stdout.contains(&alices_client));

    // client show: metadata and the live grants with their users.
    let show = run(&e, &["client", "show", &alices_client, "--json"]).json();
    assert_eq!(show["redirect_uris"], serde_json::json!([REDIRECT]));
    assert_eq!(show["token_endpoint_auth_method"], "none");
    assert_eq!(show["live_grants"], 1);
    assert_eq!(show["grants"][0]["username"], "alice");
    assert_eq!(show["grants"][0]["scopes"], serde_json::json!(["mcp"]));
    let out = run(&e, &["client", "show", &alices_client]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("Redirect URIs:") && out.stdout.contains(REDIRECT),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("alice"), "{}", out.stdout);
    let out = run(&e, &["client", "show", "no-such-client"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no client with id \"no-such-client\""),
        "{}",
        out.stderr
    );
    // Generated ids may start with `-` (base64url): they are ids, not options.
    for args in [
        &["client", "show", "-rno-such-client"][..],
        &["client", "revoke", "-rno-such-client"][..],
        &["grant", "list", "--client", "-rno-such-client"][..],
    ] {
        let out = run(&e, args);
        assert!(
            !out.stderr.contains("unexpected argument"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = run(&e, &["client", "show", "-rno-such-client"]);
    assert!(
        out.stderr
            .contains("no client with id \"-rno-such-client\""),
        "{}",
        out.stderr
    );

    // grant list: all, per user (by name or id), per client; unknown names are errors.
    let grants = run(&e, &["grant", "list", "--json"]).json();
    assert_eq!(grants.as_array().unwrap().len(), 2);
    let mine = run(&e, &["grant", "list", "--user", "alice", "--json"]).json();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let g = &mine[0];
    assert_eq!(g["client_id"], alices_client.as_str());
    assert_eq!(g["client_name"], "Test client");
    assert_eq!(g["live"], true);
    assert_eq!(g["revoked_at"], Value::Null);
    let by_user_id = run(
        &e,
        &[
            "grant",
            "list",
            "--user",
            g["user_id"].as_str().unwrap(),
            "--json",
        ],
    )
    .json();
    assert_eq!(by_user_id, mine);
    let none = run(
        &e,
        &[
            "grant",
            "list",
            "--user",
            "bob",
            "--client",
            &alices_client,
            "--json",
        ],
    )
    .json();
    assert_eq!(none, serde_json::json!([]));
    let out = run(&e, &["grant", "list", "--user", "nobody"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no user named or with id \"nobody\""),
        "{}",
        out.stderr
    );
    let out = run(&e, &["grant", "list", "--client", "nope"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no client with id"), "{}", out.stderr);

    // grant revoke needs a selector.
    let out = run(&e, &["grant", "revoke"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("say which grants to revoke"),
        "{}",
        out.stderr
    );
    let out = run(&e, &["grant", "revoke", "--user", "nobody"]);
    assert_eq!(out.code, 1);

    // Revoking bob's grants: his refresh token fails at once, his access token within the
    // server's revocation poll; alice's still work.
    e.server.spawn_upkeep();
    let out = run(&e, &["grant", "revoke", "--user", "bob"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Revoked 1 grant(s)"), "{}", out.stdout);
    let r = e
        .refresh(bobs["refresh_token"].as_str().unwrap(), &bobs_client)
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    let started = Instant::now();
    while e.mcp(bobs["access_token"].as_str()).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        e.mcp(alice["access_token"].as_str()).await.status,
        StatusCode::OK
    );
    let out = run(&e, &["grant", "revoke", "--user", "bob"]);
    assert!(out.stdout.contains("nothing changed"), "{}", out.stdout);
    let all = run(&e, &["grant", "list", "--all"]);
    assert!(all.stdout.lines().next().unwrap().ends_with("STATUS"));
    assert!(all.stdout.contains("revoked 20"), "{}", all.stdout);

    // One grant by its id.
    let (third_client, third) = connect(&e, Browser::default(), "Third app").await;
    let listed = run(&e, &["grant", "list", "--client", &third_client, "--json"]).json();
    let id = listed[0]["grant_id"].as_str().unwrap().to_owned();
    let out = run(&e, &["grant", "revoke", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&id));
    assert!(
        e.server
            .store()
            .grant(&id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    let r = e
        .refresh(third["refresh_token"].as_str().unwrap(), &third_client)
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
    let out = run(&e, &["grant", "revoke", &id]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("already; nothing changed"),
        "{}",
        out.stdout
    );
    let out = run(&e, &["grant", "revoke", "no-such-grant"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no grant with id"), "{}", out.stderr);
    let out = run(&e, &["grant", "revoke", &id, "--user", "alice"]);
    assert_eq!(out.code, 2, "an id and a selector together are refused");

    // client revoke: its grants end and the registration goes.
    let out = run(&e, &["client", "revoke", &alices_client]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("(Test client): revoked 1 live grant(s) and deleted its registration"),
        "{}",
        out.stdout
    );
    let r = e
        .refresh(alice["refresh_token"].as_str().unwrap(), &alices_client)
        .await;
    assert_eq!(r.json()["error"], "invalid_client", "{}", r.text);
    let list = run(&e, &["client", "list", "--json"]).json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["client_id"] != alices_client.as_str())
    );
    let out = run(&e, &["client", "revoke", &alices_client]);
    assert_eq!(out.code, 1, "gone: {}", out.stdout);
}
