//! The database going away under a running server, and coming back: requests that need it
//! get a quick 503 (or, from a tool, an error that says to retry) and change nothing; the
//! server recovers by itself when the database returns, and everything written before and
//! during the outage is there afterwards.
//!
//! The outage is real network loss between the server and PostgreSQL: a TCP relay in front
//! of the machine's PostgreSQL is cut (its connections reset, its port closed) and
//! restored on the same port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use common::auth::*;
use portcullis::testing;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

/// A TCP relay to `upstream` that can be cut and restored on the same port.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut relay = Relay {
            addr,
            upstream,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every relayed connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// The outage: open connections are dropped and new ones are refused.
    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// A tools/call (2026-07-28) with a bearer token; returns the JSON-RPC result.
async fn call(e: &Env, token: &str, name: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": name, "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": testing::MODERN,
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let req = testing::post()
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-protocol-version", testing::MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", name)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = e.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK, "{name}");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["result"].clone()
}

fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_database_outage_gives_quick_503s_and_the_server_recovers_by_itself() {
    let Some(db) = portcullis_store::testing::fresh_postgres("portcullis_outage")
        .await
        .unwrap()
    else {
        eprintln!("PostgreSQL tests are off (PORTCULLIS_TEST_POSTGRES=off)");
        return;
    };
    let url = url::Url::parse(&db).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let mut relay = Relay::start(upstream).await;
    let mut through = url.clone();
    through.set_port(Some(relay.addr.port())).unwrap();
    let e = env_on(Some(through.as_str()), |_| {}, |_| {}).await;

    let (client, t) = e
        .tokens_scoped(Browser::default(), "mcp notes:read notes:write")
        .await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let before = call(
        &e,
        &access,
        "notes_create",
        json!({"title": "before the outage", "body": "kept"}),
    )
    .await;
    assert_ne!(before["isError"], true, "{before}");

    let ready = e.get(None, "/readyz").await;
    assert_eq!(ready.status, http::StatusCode::OK, "{}", ready.text);
    assert_eq!(
        ready.json()["checks"],
        json!({"database": "ok", "signing_keys": "ok"})
    );

    relay.cut().await;

    // Readiness says so, for the load balancer; liveness does not change.
    let ready = e.get(None, "/readyz").await;
    assert_eq!(ready.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "unavailable");
    assert_ne!(ready.json()["checks"]["database"], "ok", "{}", ready.text);
    assert_eq!(ready.headers["retry-after"], "5");
    assert_eq!(e.get(None, "/healthz").await.status, http::StatusCode::OK);

    // The token endpoint: 503 temporarily_unavailable with Retry-After, within seconds.
    let started = Instant::now();
    let r = e.refresh(&refresh, &client).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a refresh waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        r.status,
        http::StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        r.text
    );
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(r.headers["retry-after"], "5");
    // The login page: a 503 page that says to retry, not a 500.
    let page = e
        .get(
            Some(&mut Browser::default()),
            &format!("/oauth/authorize?{}", authorize_query(&client, &[])),
        )
        .await;
    assert_eq!(page.status, http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text.contains("Wait a few seconds"), "{}", page.text);
    // A tool that needs the database says so; one that does not still works, since tokens
    // are checked without it.
    let during = call(
        &e,
        &access,
        "notes_create",
        json!({"title": "during the outage", "body": "refused"}),
    )
    .await;
    assert_eq!(during["isError"], true, "{during}");
    assert!(text_of(&during).contains("try again in a few seconds"));
    let whoami = call(&e, &access, "whoami", json!({})).await;
    assert_ne!(whoami["isError"], true, "{whoami}");

    relay.restore().await;

    // Back without a restart: the same refresh token works (the outage spent nothing).
    let mut renewed = e.refresh(&refresh, &client).await;
    for _ in 0..20 {
        if renewed.status == http::StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        renewed = e.refresh(&refresh, &client).await;
    }
    assert_eq!(renewed.status, http::StatusCode::OK, "{}", renewed.text);
    assert_eq!(e.get(None, "/readyz").await.status, http::StatusCode::OK);
    let access = renewed.json()["access_token"].as_str().unwrap().to_owned();
    let after = call(
        &e,
        &access,
        "notes_create",
        json!({"title": "after the outage", "body": "kept"}),
    )
    .await;
    assert_ne!(after["isError"], true, "{after}");
    let found = call(&e, &access, "notes_search", json!({"query": "outage"})).await;
    let mut titles: Vec<String> = found["structuredContent"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        ["after the outage", "before the outage"],
        "what was written before is intact, and nothing was half-written during"
    );
    // The audit events of the calls made during the outage waited and were written.
    let store = e.server.store().clone();
    let mut during_audited = false;
    for _ in 0..40 {
        let events = store
            .audit_events(&portcullis_store::AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        if events.iter().filter(|ev| ev.tool == "notes_create").count() == 3
            && events.iter().any(|ev| ev.tool == "whoami")
        {
            during_audited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(during_audited, "every call is in the audit log");
    drop(e);
    portcullis_store::testing::drop_postgres(&db).await;
}
