//! Health endpoints for orchestrators and load balancers, outside the MCP gate and without
//! authentication; they reveal nothing but whether this instance can serve.
//!
//! - `GET /healthz`: the process is alive and answering (always 200).
//! - `GET /readyz`: it can serve requests now: 200 when the database answers within 2 s and
//!   signing keys are loaded, else 503 with `Retry-After` and which check failed, so a load
//!   balancer takes it out of rotation until it recovers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_authz::guard::Guard;
use portcullis_store::Store;
use serde_json::json;

/// How long `/readyz` waits for the database.
const DATABASE_CHECK: Duration = Duration::from_secs(2);

/// The two routes; `auth` is the database and the token guard, when the endpoint is
/// protected (readiness checks that the one answers and the other can check tokens).
pub fn router(auth: Option<(Store, Arc<Guard>)>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(move || readyz(auth.clone())))
}

async fn healthz() -> Response {
    reply(StatusCode::OK, json!({"status": "ok"}))
}

async fn readyz(auth: Option<(Store, Arc<Guard>)>) -> Response {
    let Some((store, guard)) = auth else {
        return reply(StatusCode::OK, json!({"status": "ready", "checks": {}}));
    };
    let database = match tokio::time::timeout(DATABASE_CHECK, store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            if e.is_unavailable() {
                "unreachable".to_owned()
            } else {
                "failing".to_owned()
            }
        }
        Err(_) => format!("no answer within {} s", DATABASE_CHECK.as_secs()),
    };
    let keys = if guard.ready() { "ok" } else { "none loaded" };
    let ready = database == "ok" && keys == "ok";
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {"database": database, "signing_keys": keys},
    });
    if ready {
        return reply(StatusCode::OK, body);
    }
    let mut resp = reply(StatusCode::SERVICE_UNAVAILABLE, body);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
