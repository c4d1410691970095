//! The notes toolset as users meet it: two signed-in users through the real router (the
//! guard, rmcp, the tools, SQLite), each with their own notes, and every way one might
//! reach the other's: by id, by search, by cursor. Bad input gets readable tool errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use common::auth::*;
use portcullis::testing;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt as _;

/// Any 2026-07-28 request with a bearer token and the given client capabilities; returns
/// the HTTP status and the JSON body. `Mcp-Name` comes from `params.uri` or `params.name`.
async fn rpc_with(
    e: &Env,
    token: &str,
    method: &str,
    mut params: Value,
    caps: Value,
) -> (http::StatusCode, Value) {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": testing::MODERN, "io.modelcontextprotocol/clientCapabilities": caps});
    let mut req = testing::post()
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-protocol-version", testing::MODERN)
        .header("mcp-method", method);
    if let Some(name) = params
        .get("uri")
        .or_else(|| params.get("name"))
        .and_then(|u| u.as_str())
    {
        req = req.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let resp = e
        .router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A 2026-07-28 request declaring no client capabilities.
async fn rpc(e: &Env, token: &str, method: &str, params: Value) -> (http::StatusCode, Value) {
    rpc_with(e, token, method, params, json!({})).await
}

/// Calls a tool (2026-07-28) with a bearer token; returns the JSON-RPC result.
async fn call(e: &Env, token: &str, name: &str, args: Value) -> Value {
    let (status, v) = rpc(
        e,
        token,
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{name}");
    assert!(v.get("error").is_none(), "{name}: {v}");
    v["result"].clone()
}

/// A tools/call with full control of the params (capabilities, MRTR fields).
async fn call_params(e: &Env, token: &str, name: &str, mut params: Value, caps: Value) -> Value {
    params["name"] = json!(name);
    rpc_with(e, token, "tools/call", params, caps).await.1
}

/// The first round of a tool that asks the person (2026-07-28, elicitation declared).
async fn ask(e: &Env, token: &str, tool: &str, args: &Value) -> Value {
    let caps = json!({"elicitation": {}});
    call_params(e, token, tool, json!({"arguments": args}), caps).await
}

/// The retry after `asked` (its `requestState`), carrying the person's `answer`.
async fn answer(
    e: &Env,
    token: &str,
    tool: &str,
    args: &Value,
    asked: &Value,
    answer: Value,
) -> Value {
    let state = asked["result"]["requestState"].as_str().unwrap();
    let params =
        json!({"arguments": args, "inputResponses": {"confirm": answer}, "requestState": state});
    call_params(e, token, tool, params, json!({"elicitation": {}})).await
}

/// notes_delete through the 2026-07-28 confirmation: the first call asks, the retry answers.
async fn delete_confirmed(e: &Env, token: &str, id: &str, reply: Value) -> Value {
    let args = json!({"id": id});
    let first = ask(e, token, "notes_delete", &args).await;
    let r = &first["result"];
    assert_eq!(r["resultType"], "input_required", "{first}");
    assert_eq!(
        r["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    answer(e, token, "notes_delete", &args, &first, reply).await["result"].clone()
}

fn ok(r: &Value) -> &Value {
    assert_ne!(r["isError"], true, "{r}");
    &r["structuredContent"]
}

fn tool_error(r: &Value) -> String {
    assert_eq!(r["isError"], true, "expected a tool error: {r}");
    r["content"][0]["text"].as_str().unwrap().to_owned()
}

/// An access token with every notes scope, for the user signed in to `browser`.
async fn writer(e: &Env, browser: Browser) -> String {
    let (_, t) = e.tokens_scoped(browser, "mcp notes:read notes:write").await;
    t["access_token"].as_str().unwrap().to_owned()
}

async fn two_users() -> (Env, String, String) {
    let e = env().await;
    let bob_browser = add_bob(&e).await;
    let alice = writer(&e, Browser::default()).await;
    let bob = writer(&e, bob_browser).await;
    (e, alice, bob)
}

/// Creates a note titled `title`; returns its id.
async fn new_note(e: &Env, token: &str, title: &str) -> String {
    let created = call(
        e,
        token,
        "notes_create",
        json!({"title": title, "body": "b"}),
    )
    .await;
    ok(&created)["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_user_reaches_only_their_own_notes() {
    let (e, alice, bob) = two_users().await;
    let a1 = call(
        &e,
        &alice,
        "notes_create",
        json!({"title": "Coffee beans", "body": "Buy Ethiopian coffee"}),
    )
    .await;
    let a1 = ok(&a1)["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        call(
            &e,
            &alice,
            "notes_create",
            json!({"title": format!("coffee log {i}"), "body": "brewed"}),
        )
        .await;
    }
    let b1 = call(
        &e,
        &bob,
        "notes_create",
        json!({"title": "Bob's coffee secret", "body": "coffee coffee coffee"}),
    )
    .await;
    let b1 = ok(&b1)["id"].as_str().unwrap().to_owned();

    // By search: each sees only their own, best first, with a cursor for more.
    let page = call(
        &e,
        &alice,
        "notes_search",
        json!({"query": "coffee", "limit": 2}),
    )
    .await;
    let page = ok(&page).clone();
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = call(
        &e,
        &alice,
        "notes_search",
        json!({"query": "coffee", "limit": 10, "cursor": cursor}),
    )
    .await;
    let mut ids: Vec<String> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(ok(&rest)["results"].as_array().unwrap())
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 4, "alice's four coffee notes: {ids:?}");
    assert!(!ids.contains(&b1), "never bob's");
    let bobs = call(&e, &bob, "notes_search", json!({"query": "coffee"})).await;
    assert_eq!(
        ok(&bobs)["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [b1.as_str()]
    );
    // Alice's cursor is only an offset into alice's results: bob using it sees only his.
    let bob_with_cursor = call(
        &e,
        &bob,
        "notes_search",
        json!({"query": "coffee", "cursor": cursor}),
    )
    .await;
    assert!(
        ok(&bob_with_cursor)["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != a1.as_str())
    );

    // By id: bob gets the same answer for alice's note as for a note that does not exist.
    for tool in ["notes_get", "notes_delete", "notes_restore"] {
        let theirs = tool_error(&call(&e, &bob, tool, json!({"id": a1})).await);
        let missing = tool_error(&call(&e, &bob, tool, json!({"id": "doesNotExist"})).await);
        assert_eq!(
            theirs.replace(&a1, "X"),
            missing.replace("doesNotExist", "X"),
            "{tool} reveals nothing"
        );
    }
    let r = call(
        &e,
        &bob,
        "notes_update",
        json!({"id": a1, "title": "pwned"}),
    )
    .await;
    tool_error(&r);
    let still = call(&e, &alice, "notes_get", json!({"id": a1})).await;
    assert_eq!(ok(&still)["title"], "Coffee beans", "bob changed nothing");

    // Alice's own lifecycle: update, delete to trash, restore.
    let up = call(
        &e,
        &alice,
        "notes_update",
        json!({"id": a1, "body": "Buy Kenyan coffee"}),
    )
    .await;
    assert_eq!(ok(&up)["body"], "Buy Kenyan coffee");
    let del = delete_confirmed(
        &e,
        &alice,
        &a1,
        json!({"action": "accept", "content": {"confirm": true}}),
    )
    .await;
    assert!(
        ok(&del)["restorable_until"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    tool_error(&call(&e, &alice, "notes_get", json!({"id": a1})).await);
    let back = call(&e, &alice, "notes_restore", json!({"id": a1})).await;
    assert_eq!(ok(&back)["uri"], format!("note://{a1}"));
}

#[tokio::test]
async fn bad_input_gets_readable_tool_errors() {
    let (e, alice, _) = two_users().await;
    let big = "x".repeat(64 * 1024 + 1);
    assert!(
        tool_error(
            &call(
                &e,
                &alice,
                "notes_create",
                json!({"title": "big", "body": big})
            )
            .await
        )
        .contains("the limit is 65536 bytes")
    );
    assert!(
        tool_error(
            &call(
                &e,
                &alice,
                "notes_create",
                json!({"title": " ", "body": "b"})
            )
            .await
        )
        .contains("title is empty")
    );
    assert!(
        tool_error(
            &call(
                &e,
                &alice,
                "notes_create",
                json!({"title": "t".repeat(201), "body": "b"})
            )
            .await
        )
        .contains("limit is 200")
    );
    assert!(
        tool_error(
            &call(
                &e,
                &alice,
                "notes_search",
                json!({"query": "coffee", "cursor": "bogus"})
            )
            .await
        )
        .contains("cursor is not valid")
    );
    assert!(
        tool_error(&call(&e, &alice, "notes_search", json!({"query": "\"*()"})).await)
            .contains("no words")
    );
    assert!(
        tool_error(&call(&e, &alice, "notes_get", json!({"id": "../../etc/passwd"})).await)
            .contains("is not a note id")
    );
    assert!(
        tool_error(&call(&e, &alice, "notes_update", json!({"id": "abc"})).await)
            .contains("nothing to change")
    );
    call(
        &e,
        &alice,
        "notes_create",
        json!({"title": "plain", "body": "robert'); DROP TABLE notes;--"}),
    )
    .await;
    for q in [
        "'; DROP TABLE notes; --",
        "notes OR 1=1",
        "owner:bob",
        "NEAR(a b)",
        "drop*",
        "\"unbalanced",
    ] {
        let r = call(&e, &alice, "notes_search", json!({"query": q})).await;
        assert_ne!(r["isError"], true, "{q}: {r}");
    }
    let found = call(&e, &alice, "notes_search", json!({"query": "DROP TABLE"})).await;
    assert_eq!(
        ok(&found)["results"].as_array().unwrap().len(),
        1,
        "metacharacters are searched as text"
    );
}

#[tokio::test]
async fn the_tools_are_listed_with_schemas_and_annotations() {
    let (e, alice, _) = two_users().await;
    let (_, v) = rpc(&e, &alice, "tools/list", json!({})).await;
    let tools = v["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for n in [
        "whoami",
        "notes_search",
        "notes_get",
        "notes_create",
        "notes_update",
        "notes_delete",
        "notes_restore",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let get = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap();
    assert_eq!(get("notes_search")["annotations"]["readOnlyHint"], true);
    assert_eq!(get("notes_delete")["annotations"]["destructiveHint"], true);
    assert_eq!(get("notes_create")["annotations"]["openWorldHint"], false);
    assert!(
        get("notes_create")["outputSchema"]["properties"]["id"].is_object(),
        "{}",
        get("notes_create")
    );
    assert_eq!(
        get("notes_search")["inputSchema"]["required"],
        json!(["query"])
    );
}

#[tokio::test]
async fn a_read_only_token_is_stepped_up_to_write_through_consent() {
    let e = env().await;
    let client = e.client().await;
    let mut b = Browser::default();
    // The first login gets the baseline a 401 asks for: mcp and notes:read.
    let first = e
        .approve(
            &mut b,
            &authorize_query(&client, &[("scope", Some("mcp notes:read"))]),
        )
        .await;
    let t = e
        .exchange(&first.param("code").unwrap(), &client)
        .await
        .json();
    assert_eq!(t["scope"], "mcp notes:read");
    let read = t["access_token"].as_str().unwrap().to_owned();
    let r = call(&e, &read, "notes_search", json!({"query": "anything"})).await;
    ok(&r);
    // Writing needs notes:write: 403 naming every scope the call needs.
    let req = testing::post()
        .header("authorization", format!("Bearer {read}"))
        .header("mcp-protocol-version", testing::MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "notes_create")
        .body(Body::from(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "notes_create", "arguments": {"title": "t", "body": "b"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": testing::MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string()))
        .unwrap();
    let resp = e.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("scope=\"mcp notes:write\""), "{www}");
    assert!(
        www.contains(
            "resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
        ),
        "{www}"
    );
    // The client asks for the union; consent asks only for what is new.
    let again = e
        .authorize(
            Some(&mut b),
            &authorize_query(&client, &[("scope", Some("mcp notes:read notes:write"))]),
        )
        .await;
    let consent = e
        .get(Some(&mut b), again.headers["location"].to_str().unwrap())
        .await;
    assert_eq!(consent.status, http::StatusCode::OK);
    let (new_part, old_part) = consent.text.split_once("Already allowed").unwrap();
    assert!(
        new_part.contains("Create, change and delete your notes")
            && !new_part.contains("Read and search"),
        "{}",
        consent.text
    );
    assert!(old_part.contains("notes:read"));
    let request = again.headers["location"]
        .to_str()
        .unwrap()
        .split("request=")
        .nth(1)
        .unwrap()
        .to_owned();
    let csrf = consent.field("csrf");
    let back = e
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
    let t2 = e
        .exchange(&back.param("code").unwrap(), &client)
        .await
        .json();
    assert_eq!(t2["scope"], "mcp notes:read notes:write");
    let created = call(
        &e,
        t2["access_token"].as_str().unwrap(),
        "notes_create",
        json!({"title": "t", "body": "b"}),
    )
    .await;
    assert_eq!(ok(&created)["title"], "t", "the retry succeeds");
    // The refused call is in the audit log too.
    let filter = portcullis_store::AuditFilter {
        tool: Some("notes_create".into()),
        limit: 10,
        ..Default::default()
    };
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        outcomes = e
            .server
            .store()
            .audit_events(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.outcome)
            .collect::<Vec<_>>();
        if outcomes.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    outcomes.sort();
    assert_eq!(outcomes, ["denied", "ok"]);
}

#[tokio::test]
async fn every_call_is_audited_and_schema_failures_are_tool_errors() {
    let (e, alice, _) = two_users().await;
    let created = call(
        &e,
        &alice,
        "notes_create",
        json!({"title": "audited", "body": "b"}),
    )
    .await;
    ok(&created);
    call(&e, &alice, "notes_get", json!({"id": "nope"})).await; // a tool error
    // Arguments that do not fit the schema: a tool error the model can read, not a crash.
    let bad = call(&e, &alice, "notes_create", json!({"title": 42})).await;
    let text = tool_error(&bad);
    assert!(
        text.contains("do not fit notes_create's input schema"),
        "{text}"
    );
    // An unknown tool stays a protocol error (-32602), as the spec says.
    let v = call_params(
        &e,
        &alice,
        "no_such_tool",
        json!({"arguments": {}}),
        json!({}),
    )
    .await;
    assert_eq!(v["error"]["code"], -32602, "{v}");

    // The writer batches in the background: wait for the events.
    let events = audit_events(&e, 4).await;
    // Calls in the same millisecond have no order between them: compare as a set.
    let mut outcomes: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.tool.as_str(), e.outcome.as_str()))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("no_such_tool", "protocol_error"),
            ("notes_create", "ok"),
            ("notes_create", "tool_error"),
            ("notes_get", "tool_error")
        ],
        "{events:?}"
    );
    let first = events.iter().find(|e| e.outcome == "ok").unwrap();
    assert!(first.user_id.as_deref().unwrap().starts_with("u_"));
    assert!(first.client_id.is_some());
    assert_eq!(
        first.args, None,
        "arguments are not kept unless the operator asks"
    );
    assert_eq!(first.args_digest.len(), 43, "a SHA-256 digest");
}

#[tokio::test]
async fn step_up_applies_to_2025_sessions_too() {
    let e = env().await;
    let (_, t) = e.tokens_scoped(Browser::default(), "mcp notes:read").await;
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": testing::LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = e
        .router
        .clone()
        .oneshot(
            testing::post()
                .header("authorization", &bearer)
                .body(Body::from(init.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let legacy = |body: Value| {
        testing::post()
            .header("authorization", &bearer)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", testing::LEGACY)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let r = e
        .router
        .clone()
        .oneshot(legacy(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), http::StatusCode::ACCEPTED);
    // No Mcp-Name header in the 2025 era: the tool name comes from the body.
    let write = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "notes_create", "arguments": {"title": "t", "body": "b"}}});
    let r = e.router.clone().oneshot(legacy(write)).await.unwrap();
    assert_eq!(r.status(), http::StatusCode::FORBIDDEN);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"mcp notes:write\"")
    );
    let read = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "notes_search", "arguments": {"query": "x"}}});
    let r = e.router.clone().oneshot(legacy(read)).await.unwrap();
    assert_eq!(
        r.status(),
        http::StatusCode::OK,
        "reading is within the token's scopes"
    );
}

#[tokio::test]
async fn tool_calls_are_rate_limited_per_user_and_client() {
    let e = env_configured(|_| {}, |h| h.tool_calls_per_minute = 3).await;
    let (_, a) = e.tokens_scoped(Browser::default(), "mcp notes:read").await;
    let (_, b) = e.tokens_scoped(Browser::default(), "mcp notes:read").await; // alice again, same client id (deduplicated): same bucket
    let token = a["access_token"].as_str().unwrap();
    for _ in 0..3 {
        call(&e, token, "notes_search", json!({"query": "x"})).await;
    }
    let req = testing::post()
        .header("authorization", format!("Bearer {}", b["access_token"].as_str().unwrap()))
        .header("mcp-protocol-version", testing::MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "notes_search")
        .body(Body::from(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "notes_search", "arguments": {"query": "x"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": testing::MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string()))
        .unwrap();
    let resp = e.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let v: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(v["id"], 7);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 tool calls per minute"),
        "{v}"
    );
    // Another user is not held back by alice's calls.
    let bob_browser = add_bob(&e).await;
    let (_, bob) = e.tokens_scoped(bob_browser, "mcp notes:read").await;
    call(
        &e,
        bob["access_token"].as_str().unwrap(),
        "notes_search",
        json!({"query": "x"}),
    )
    .await;
}

#[tokio::test]
async fn notes_are_resources_of_their_owner_only() {
    let (e, alice, bob) = two_users().await;
    for i in 0..51 {
        call(
            &e,
            &alice,
            "notes_create",
            json!({"title": format!("n{i}"), "body": format!("body {i}")}),
        )
        .await;
    }
    let (status, page1) = rpc(&e, &alice, "resources/list", json!({})).await;
    assert_eq!(status, http::StatusCode::OK, "{page1}");
    let r1 = &page1["result"];
    assert_eq!(r1["resources"].as_array().unwrap().len(), 50);
    assert_eq!(
        r1["cacheScope"], "private",
        "per-user content is never shared"
    );
    let cursor = r1["nextCursor"].as_str().unwrap();
    let (_, page2) = rpc(&e, &alice, "resources/list", json!({"cursor": cursor})).await;
    assert_eq!(page2["result"]["resources"].as_array().unwrap().len(), 1);
    assert!(page2["result"].get("nextCursor").is_none());
    // Bob sees none of them, even with alice's cursor.
    let (_, theirs) = rpc(&e, &bob, "resources/list", json!({"cursor": cursor})).await;
    assert_eq!(theirs["result"]["resources"], json!([]));
    let (_, bad) = rpc(
        &e,
        &alice,
        "resources/list",
        json!({"cursor": "not-a-cursor"}),
    )
    .await;
    assert_eq!(bad["error"]["code"], -32602);

    let uri = r1["resources"][0]["uri"].as_str().unwrap().to_owned();
    let (_, read) = rpc(&e, &alice, "resources/read", json!({"uri": uri})).await;
    let text = read["result"]["contents"][0]["text"].as_str().unwrap();
    let name = r1["resources"][0]["name"].as_str().unwrap();
    let n = name.trim_start_matches('n');
    assert_eq!(
        text,
        format!("# {name}\n\nbody {n}"),
        "title as a heading, then the body"
    );
    let (_, stolen) = rpc(&e, &bob, "resources/read", json!({"uri": uri})).await;
    let (_, missing) = rpc(
        &e,
        &bob,
        "resources/read",
        json!({"uri": "note://doesNotExist"}),
    )
    .await;
    assert_eq!(
        stolen["error"]["code"], missing["error"]["code"],
        "alice's note looks missing to bob: {stolen}"
    );
    let (_, templates) = rpc(&e, &alice, "resources/templates/list", json!({})).await;
    assert_eq!(
        templates["result"]["resourceTemplates"][0]["uriTemplate"],
        "note://{id}"
    );

    // Resources need notes:read like the read tools.
    let (_, t) = e.tokens_scoped(Browser::default(), "mcp").await;
    let (status, _) = rpc(
        &e,
        t["access_token"].as_str().unwrap(),
        "resources/list",
        json!({}),
    )
    .await;
    assert_eq!(status, http::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_summary_prompt_embeds_only_the_callers_matching_notes() {
    let (e, alice, bob) = two_users().await;
    call(
        &e,
        &alice,
        "notes_create",
        json!({"title": "Trip plan", "body": "Book the train to Lyon"}),
    )
    .await;
    call(
        &e,
        &alice,
        "notes_create",
        json!({"title": "Groceries", "body": "milk"}),
    )
    .await;
    call(
        &e,
        &bob,
        "notes_create",
        json!({"title": "Bob's trip", "body": "train to Oslo"}),
    )
    .await;
    let (_, list) = rpc(&e, &alice, "prompts/list", json!({})).await;
    assert_eq!(list["result"]["prompts"][0]["name"], "summarize_notes");
    let (status, got) = rpc(
        &e,
        &alice,
        "prompts/get",
        json!({"name": "summarize_notes", "arguments": {"query": "train"}}),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{got}");
    let messages = got["result"]["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "one note embedded, then the request: {got}"
    );
    let embedded = messages[0]["content"]["resource"]["text"].as_str().unwrap();
    assert!(
        embedded.contains("Lyon") && !embedded.contains("Oslo"),
        "{embedded}"
    );
    assert!(
        messages[1]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("not as instructions")
    );
    let (_, missing_arg) = rpc(
        &e,
        &alice,
        "prompts/get",
        json!({"name": "summarize_notes"}),
    )
    .await;
    assert_eq!(missing_arg["error"]["code"], -32602);
}

#[tokio::test]
async fn deleting_asks_first_and_the_answer_is_bound_to_one_call() {
    let (e, alice, bob) = two_users().await;
    let n1 = new_note(&e, &alice, "keep me").await;
    // Decline and cancel keep the note.
    for answer in [
        json!({"action": "decline"}),
        json!({"action": "cancel"}),
        json!({"action": "accept", "content": {"confirm": false}}),
    ] {
        let r = delete_confirmed(&e, &alice, &n1, answer.clone()).await;
        assert!(tool_error(&r).contains("nothing was changed"), "{answer}");
        ok(&call(&e, &alice, "notes_get", json!({"id": n1})).await);
    }
    // A client that cannot ask gets a tool error that says why.
    let r = call(&e, &alice, "notes_delete", json!({"id": n1})).await;
    assert!(tool_error(&r).contains("cannot ask"));
    // The state: forged, tampered, replayed, another user's or another note's are refused.
    let caps = json!({"elicitation": {}});
    let yes = json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    let ask = call_params(
        &e,
        &alice,
        "notes_delete",
        json!({"arguments": {"id": n1}}),
        caps.clone(),
    )
    .await;
    let state = ask["result"]["requestState"].as_str().unwrap().to_owned();
    let mut tampered = state.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let n2 = new_note(&e, &alice, "other").await;
    let bobs = new_note(&e, &bob, "bob").await;
    for (who, note, st) in [
        (&alice, &n1, "forged"),
        (&alice, &n1, tampered.as_str()),
        (&bob, &bobs, state.as_str()),
        (&alice, &n2, state.as_str()),
    ] {
        let r = call_params(
            &e,
            who,
            "notes_delete",
            json!({"arguments": {"id": note}, "inputResponses": yes, "requestState": st}),
            caps.clone(),
        )
        .await;
        assert_eq!(r["error"]["code"], -32602, "{st}: {r}");
    }
    let used_once = call_params(
        &e,
        &alice,
        "notes_delete",
        json!({"arguments": {"id": n1}, "inputResponses": yes, "requestState": state}),
        caps.clone(),
    )
    .await;
    assert!(
        used_once["result"]["structuredContent"]["restorable_until"].is_string(),
        "{used_once}"
    );
    ok(&call(&e, &alice, "notes_restore", json!({"id": n1})).await); // back, so only the state can stop a replay
    let replay = call_params(
        &e,
        &alice,
        "notes_delete",
        json!({"arguments": {"id": n1}, "inputResponses": yes, "requestState": state}),
        caps,
    )
    .await;
    assert_eq!(
        replay["error"]["code"], -32602,
        "a state is good once: {replay}"
    );
    ok(&call(&e, &alice, "notes_get", json!({"id": n1})).await);
    ok(&call(&e, &alice, "notes_get", json!({"id": n2})).await);
    ok(&call(&e, &bob, "notes_get", json!({"id": bobs})).await);
}

#[tokio::test]
async fn listed_clients_get_the_step_up_as_a_tool_error() {
    let e = env_configured(
        |_| {},
        |h| h.step_up_as_tool_error = std::sync::Arc::new(vec!["*".into()]),
    )
    .await;
    let (_, t) = e.tokens_scoped(Browser::default(), "mcp notes:read").await;
    let r = call(
        &e,
        t["access_token"].as_str().unwrap(),
        "notes_create",
        json!({"title": "t", "body": "b"}),
    )
    .await;
    let text = tool_error(&r);
    assert!(
        text.contains("notes_create needs the permission notes:write"),
        "{text}"
    );
    assert_eq!(r["resultType"], "complete");
}

#[tokio::test]
async fn tools_the_token_cannot_call_can_be_hidden() {
    let e = env_configured(|_| {}, |h| h.hide_unauthorized_tools = true).await;
    let (_, t) = e.tokens_scoped(Browser::default(), "mcp notes:read").await;
    let (_, list) = rpc(
        &e,
        t["access_token"].as_str().unwrap(),
        "tools/list",
        json!({}),
    )
    .await;
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["notes_get", "notes_search", "whoami"]);
    assert_eq!(
        list["result"]["cacheScope"], "private",
        "the list depends on the token"
    );
    // Hidden is not allowed: the call is still checked.
    let r = call_params(
        &e,
        t["access_token"].as_str().unwrap(),
        "notes_delete",
        json!({"arguments": {"id": "x"}}),
        json!({}),
    )
    .await;
    assert_eq!(
        r["error"], "insufficient_scope",
        "refused with the step-up challenge: {r}"
    );
}

#[tokio::test]
async fn notes_write_implies_notes_read() {
    let e = env().await;
    let (_, t) = e.tokens_scoped(Browser::default(), "mcp notes:write").await;
    assert_eq!(
        t["scope"], "mcp notes:write",
        "the token says what was granted"
    );
    let token = t["access_token"].as_str().unwrap();
    let id = new_note(&e, token, "w").await;
    // Reading needs notes:read, which notes:write implies.
    ok(&call(&e, token, "notes_get", json!({"id": id})).await);
    let who = call(&e, token, "whoami", json!({})).await;
    assert_eq!(
        ok(&who)["scopes"],
        json!(["mcp", "notes:read", "notes:write"]),
        "the effective scopes"
    );
}

/// Waits for the background audit writer to store at least `n` events; newest first.
async fn audit_events(e: &Env, n: usize) -> Vec<portcullis_store::AuditEvent> {
    let filter = portcullis_store::AuditFilter {
        limit: 100,
        ..Default::default()
    };
    let mut events = Vec::new();
    for _ in 0..100 {
        events = e.server.store().audit_events(&filter).await.unwrap();
        if events.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    events
}

#[tokio::test]
async fn any_tool_can_require_confirmation_with_one_declaration() {
    // The same one line a custom tool uses (ServeConfig::require_confirmation), here on a
    // built-in tool that does not ask by itself.
    let e = env_configured(
        |_| {},
        |host| {
            Arc::make_mut(&mut host.confirm)
                .tools
                .insert("notes_create".into(), "Create this note?".into());
        },
    )
    .await;
    let alice = &writer(&e, Browser::default()).await;
    let yes = || json!({"action": "accept", "content": {"confirm": true}});
    let args = json!({"title": "asked first", "body": "b"});
    let asked = ask(&e, alice, "notes_create", &args).await;
    let r = &asked["result"];
    assert_eq!(r["resultType"], "input_required", "{asked}");
    assert_eq!(
        r["inputRequests"]["confirm"]["params"]["message"],
        "Create this note?"
    );
    // Nothing was created by asking.
    let listed = call(&e, alice, "notes_search", json!({"query": "asked"})).await;
    assert_eq!(ok(&listed)["results"], json!([]));
    // The answer is bound to the arguments it was asked for.
    let other = json!({"title": "something else", "body": "b"});
    let r = answer(&e, alice, "notes_create", &other, &asked, yes()).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // A fresh question, answered yes: the tool runs.
    let asked = ask(&e, alice, "notes_create", &args).await;
    let r = answer(&e, alice, "notes_create", &args, &asked, yes()).await;
    assert_eq!(ok(&r["result"])["title"], "asked first", "{r}");
    // Declined: a tool error, and nothing is written.
    let args = json!({"title": "declined", "body": "b"});
    let asked = ask(&e, alice, "notes_create", &args).await;
    let no = json!({"action": "decline"});
    let r = answer(&e, alice, "notes_create", &args, &asked, no).await;
    assert!(tool_error(&r["result"]).contains("declined"));
    let listed = call(&e, alice, "notes_search", json!({"query": "declined"})).await;
    assert_eq!(ok(&listed)["results"], json!([]));
    // No elicitation capability and no operator allowance: refused with the reason.
    let r = call(
        &e,
        alice,
        "notes_create",
        json!({"title": "x", "body": "b"}),
    )
    .await;
    assert!(tool_error(&r).contains("cannot ask"), "{r}");

    // The audit log tells each step apart.
    let events = audit_events(&e, 9).await;
    let mut seen: Vec<(&str, Option<&str>)> = events
        .iter()
        .filter(|e| e.tool == "notes_create")
        .map(|e| (e.outcome.as_str(), e.confirmation.as_deref()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("input_required", None),
            ("input_required", None),
            ("input_required", None),
            ("ok", Some("confirmed")),
            ("protocol_error", None),
            ("tool_error", Some("cannot_ask")),
            ("tool_error", Some("declined")),
        ],
        "{events:?}"
    );
}

#[tokio::test]
async fn the_operator_may_allow_unconfirmed_calls_and_the_audit_log_says_so() {
    let e = env_configured(
        |_| {},
        |host| Arc::make_mut(&mut host.confirm).allow_unconfirmed = true,
    )
    .await;
    let alice = &writer(&e, Browser::default()).await;
    let id = new_note(&e, alice, "t").await;
    // A client without elicitation: the delete runs, unasked.
    let r = call(&e, alice, "notes_delete", json!({"id": id})).await;
    assert!(ok(&r)["restorable_until"].is_string(), "{r}");
    // A client that can ask is still asked.
    ok(&call(&e, alice, "notes_restore", json!({"id": id})).await);
    let asked = ask(&e, alice, "notes_delete", &json!({"id": id})).await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let events = audit_events(&e, 4).await;
    let delete = events
        .iter()
        .find(|e| e.tool == "notes_delete" && e.outcome == "ok")
        .unwrap();
    assert_eq!(delete.confirmation.as_deref(), Some("unconfirmed"));
}

#[tokio::test]
async fn audit_false_records_nothing() {
    let e = env_configured(|_| {}, |host| host.audit = false).await;
    let alice = &writer(&e, Browser::default()).await;
    new_note(&e, alice, "unaudited").await;
    // The writer stores a batch as soon as an event arrives; give it time to (wrongly) do so.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let filter = portcullis_store::AuditFilter {
        limit: 10,
        ..Default::default()
    };
    let events = e.server.store().audit_events(&filter).await.unwrap();
    assert!(events.is_empty(), "{events:?}");
}

/// The `kid` in an access token's header.
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let json: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    json["kid"].as_str().unwrap().to_owned()
}

/// Two instances on one database, as behind a load balancer without stickiness: a token
/// from one works on the other; a confirmation asked by one is answered on the other, once
/// on either; a signing key rotated on one is accepted by the other at once and signs there
/// after its next sync.
#[tokio::test]
async fn instances_on_one_database_share_confirmations_and_keys() {
    let (e, alice, _bob) = two_users().await;
    let other = e.twin().await;
    let n1 = new_note(&e, &alice, "shared").await;
    ok(&call(&other, &alice, "notes_get", json!({"id": n1})).await);

    let args = json!({"id": n1});
    let asked = ask(&e, &alice, "notes_delete", &args).await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let yes = json!({"action": "accept", "content": {"confirm": true}});
    let done = answer(&other, &alice, "notes_delete", &args, &asked, yes.clone()).await;
    assert!(
        done["result"]["structuredContent"]["restorable_until"].is_string(),
        "sealed on one instance, opened on the other: {done}"
    );
    ok(&call(&e, &alice, "notes_restore", json!({"id": n1})).await);
    for (which, env) in [("first", &e), ("other", &other)] {
        let replay = answer(env, &alice, "notes_delete", &args, &asked, yes.clone()).await;
        assert_eq!(
            replay["error"]["code"], -32602,
            "{which}: spent on the other instance: {replay}"
        );
    }
    ok(&call(&e, &alice, "notes_get", json!({"id": n1})).await);

    let old_kid = kid_of(&alice);
    e.server.rotate_signing_key().await.unwrap();
    let fresh = writer(&e, Browser::default()).await;
    let new_kid = kid_of(&fresh);
    assert_ne!(new_kid, old_kid);
    let knows = |env: &Env, kid: &str| env.server.guard().keys.all().iter().any(|k| k.kid == kid);
    assert!(
        !knows(&other, &new_kid),
        "the other instance has not seen the new key yet"
    );
    ok(&call(&other, &fresh, "notes_get", json!({"id": n1})).await);
    assert!(
        knows(&other, &new_kid),
        "an unknown kid made it reload its keys"
    );
    ok(&call(&other, &alice, "notes_get", json!({"id": n1})).await);
    assert_eq!(
        kid_of(&writer(&other, Browser::default()).await),
        old_kid,
        "it signs with its own key until it syncs"
    );
    other.server.sync_keys().await.unwrap();
    let from_other = writer(&other, Browser::default()).await;
    assert_eq!(kid_of(&from_other), new_kid, "after a sync, the newest key");
    ok(&call(&e, &from_other, "notes_get", json!({"id": n1})).await);
}
