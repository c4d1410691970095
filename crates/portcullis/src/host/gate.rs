//! The gate in front of rmcp's Streamable HTTP service.
//!
//! rmcp serves the protocol; this layer adds what a public server needs around it and
//! what rmcp 3.11 does not do (each point says why):
//! - `Origin`/`Host` allow-lists answered with 403 before anything else runs;
//! - the principal from the resource guard, put in the request extensions for tools;
//! - a body limit with a JSON-RPC 413, and clear 400s for malformed JSON and batches
//!   (so a client learns what to fix instead of a generic transport failure);
//! - a JSON-RPC id reused on one 2025 session while the first request is still in
//!   flight is refused at once (rmcp 3.11 leaves the second request hanging);
//! - a per-request deadline that ends a stuck tool call with a JSON-RPC error;
//! - a count of in-flight requests, so graceful shutdown can wait for them;
//! - `DELETE` of an unknown session is a 404 (rmcp 3.11 answers 202 to any id), and a
//!   session really ended is 204 (rmcp's 202 is logged as a failure by the Python SDK).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body::Frame;
use http_body_util::BodyExt as _;
use portcullis_authz::{AuthMode, Principal};
use portcullis_oauth::ScopeSet;
use rmcp::transport::streamable_http_server::SessionManager as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::origin::OriginPolicy;

/// JSON-RPC error codes the gate answers with.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INTERNAL_ERROR: i64 = -32603;

/// Shared state of the gate: configuration plus the live request bookkeeping.
#[derive(Debug)]
pub struct Gate {
    pub policy: OriginPolicy,
    pub auth: AuthMode,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Scopes each tool needs beyond the base scope (tool name -> scopes).
    pub tool_scopes: Arc<HashMap<String, ScopeSet>>,
    /// Scopes whole methods need.
    pub method_scopes: Arc<HashMap<String, ScopeSet>>,
    /// Clients answered with a tool error instead of a 403 step-up.
    pub step_up_as_tool_error: Arc<Vec<String>>,
    /// Whether `tools/list` shows only what the token can call.
    pub hide_unauthorized_tools: bool,
    /// Tool calls per user and client, when limited.
    pub tool_limit: Option<super::limit::RateLimiter>,
    /// Where 2025-era sessions of all instances are recorded, when several share a
    /// database (`--instance-url`); requests for another instance's session are relayed.
    pub directory: Option<super::relay::SessionDirectory>,
    inflight_ids: Mutex<HashSet<Arc<str>>>,
    tracker: Arc<InflightTracker>,
    sessions: Arc<LocalSessionManager>,
    /// Who opened each 2025-era session: a session id is a handle, never a credential,
    /// so a request naming another user's session is answered as if it did not exist.
    owners: RwLock<HashMap<Arc<str>, Option<String>>>,
}

impl Gate {
    pub fn new(
        policy: OriginPolicy,
        auth: AuthMode,
        max_body_bytes: usize,
        request_timeout: Duration,
        sessions: Arc<LocalSessionManager>,
    ) -> Self {
        Self {
            policy,
            auth,
            max_body_bytes,
            request_timeout,
            tool_scopes: Arc::new(HashMap::new()),
            method_scopes: Arc::new(HashMap::new()),
            step_up_as_tool_error: Arc::default(),
            hide_unauthorized_tools: false,
            tool_limit: None,
            directory: None,
            inflight_ids: Mutex::new(HashSet::new()),
            tracker: Arc::new(InflightTracker::default()),
            sessions,
            owners: RwLock::new(HashMap::new()),
        }
    }

    /// False when `session` was opened by someone other than `principal`.
    fn session_usable_by(&self, session: &str, principal: &Principal) -> bool {
        match self.owners.read() {
            Ok(owners) => owners
                .get(session)
                .is_none_or(|owner| *owner == principal.user),
            Err(_) => false,
        }
    }

    /// Whether this instance opened `session` (and has not seen it end).
    fn holds_session(&self, session: &str) -> bool {
        self.owners
            .read()
            .map(|owners| owners.contains_key(session))
            .unwrap_or(false)
    }

    /// Records the owner of a session the response just opened, and forgets sessions
    /// that ended (DELETE) or that rmcp no longer knows (404); in the session directory
    /// too, when there is one.
    async fn track_session(
        &self,
        requested: Option<&str>,
        opened: Option<&str>,
        status: StatusCode,
        principal: &Principal,
    ) {
        match (requested, opened) {
            (None, Some(new)) => {
                if let Ok(mut owners) = self.owners.write() {
                    owners.insert(Arc::from(new), principal.user.clone());
                }
                if let Some(dir) = &self.directory {
                    dir.opened(new, principal.user.as_deref()).await;
                }
            }
            (Some(old), _)
                if status == StatusCode::NOT_FOUND || status == StatusCode::NO_CONTENT =>
            {
                let held = self
                    .owners
                    .write()
                    .map(|mut owners| owners.remove(old).is_some())
                    .unwrap_or(false);
                if held && let Some(dir) = &self.directory {
                    dir.closed(old).await;
                }
            }
            _ => {}
        }
    }

    pub fn tracker(&self) -> Arc<InflightTracker> {
        self.tracker.clone()
    }

    /// Registers a (session, id) key; `false` when that pair is already in flight.
    fn claim_id(&self, key: &Arc<str>) -> bool {
        match self.inflight_ids.lock() {
            Ok(mut set) => set.insert(key.clone()),
            // A poisoned lock means a panic elsewhere; fail open rather than wedge the server.
            Err(poisoned) => poisoned.into_inner().insert(key.clone()),
        }
    }

    fn release_id(&self, key: &Arc<str>) {
        match self.inflight_ids.lock() {
            Ok(mut set) => set.remove(key),
            Err(poisoned) => poisoned.into_inner().remove(key),
        };
    }
}

/// Counts requests being worked on, for graceful shutdown.
#[derive(Debug, Default)]
pub struct InflightTracker {
    count: AtomicUsize,
    idle: Notify,
}

impl InflightTracker {
    pub fn current(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Resolves once no request is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.current() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn enter(self: &Arc<Self>) -> InflightToken {
        self.count.fetch_add(1, Ordering::SeqCst);
        InflightToken(self.clone())
    }
}

/// Held for as long as a request (including its streamed response) is in flight.
struct InflightToken(Arc<InflightTracker>);

impl Drop for InflightToken {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Releases a claimed (session, id) pair when the response is done or abandoned.
struct IdClaim {
    gate: Arc<Gate>,
    key: Arc<str>,
}

impl Drop for IdClaim {
    fn drop(&mut self) {
        self.gate.release_id(&self.key);
    }
}

/// What the gate needs to know of a message: just enough to route, never the params.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, borrow)]
    params: Option<EnvelopeParams<'a>>,
}

/// The part of `params` the gate reads: a tool call's name, for the step-up check.
#[derive(Deserialize)]
struct EnvelopeParams<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

/// The gate as a tower service around the MCP service `S` (rmcp's). Hand-written rather
/// than `axum::middleware::from_fn`, which clones the inner service and boxes a `Next`
/// on every request (about 5k instructions per request, measured with bench/instr.sh).
#[derive(Debug, Clone)]
pub struct GateService<S> {
    gate: Arc<Gate>,
    inner: S,
}

impl<S> GateService<S> {
    pub fn new(gate: Arc<Gate>, inner: S) -> Self {
        Self { gate, inner }
    }
}

impl<S, B> tower::Service<Request> for GateService<S>
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let gate = self.gate.clone();
        let next = Next(self.inner.clone());
        Box::pin(async move { Ok(run_gate(gate, request, next).await) })
    }
}

use crate::time::unix_now;

/// Present on a request when `tools/list` should show only the tools the caller's token can
/// call: the scopes each tool needs.
#[derive(Debug, Clone)]
pub struct ToolVisibility(pub Arc<HashMap<String, ScopeSet>>);

impl ToolVisibility {
    /// Whether `principal` may call `tool`.
    pub fn allows(&self, principal: &Principal, tool: &str) -> bool {
        self.0
            .get(tool)
            .is_none_or(|needed| principal.scopes.satisfies(needed))
    }
}

impl Gate {
    fn answers_step_up_as_tool_error(&self, principal: &Principal) -> bool {
        let Some(client) = principal.client_id.as_deref() else {
            return false;
        };
        self.step_up_as_tool_error
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => client.starts_with(prefix),
                None => client == p,
            })
    }
}

/// The step-up refusal as a tool result, for clients that mishandle a 403: the model reads
/// which scope is missing and can tell the person to reconnect and approve it.
fn step_up_tool_error(
    id: Option<Value>,
    tool: &str,
    needed: &ScopeSet,
    principal: &Principal,
    modern: bool,
) -> Response {
    let missing = principal.scopes.missing(needed);
    let text = format!(
        "{tool} needs the permission {missing}, which this connection was not granted. Ask the person to reconnect this server and approve {missing}."
    );
    let mut result = json!({"content": [{"type": "text", "text": text}], "isError": true});
    if modern {
        result["resultType"] = json!("complete");
    }
    let body = json!({"jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "result": result});
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 401/403/400 with `WWW-Authenticate`, which starts an OAuth client's discovery.
fn challenge_response(challenge: portcullis_authz::guard::Challenge) -> Response {
    let status = StatusCode::from_u16(challenge.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut response = Response::new(Body::from(challenge.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&challenge.www_authenticate) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// The inner service, called once.
struct Next<S>(S);

impl<S, B> Next<S>
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    async fn run(mut self, request: Request) -> Response {
        match self.0.call(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        }
    }
}

async fn run_gate<S, B>(gate: Arc<Gate>, request: Request, next: Next<S>) -> Response
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    {
        let headers = request.headers();
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        if let Some(reason) = gate.policy.check(origin, host) {
            tracing::warn!(?origin, ?host, "refused by origin policy");
            return jsonrpc_error(StatusCode::FORBIDDEN, None, INVALID_REQUEST, &reason);
        }
    }

    let (mut parts, body) = request.into_parts();
    // Every request is authorized on its own: a session id is never a credential.
    let token_in_query = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token=")));
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let principal = match gate
        .auth
        .authenticate(authorization, token_in_query, unix_now())
        .await
    {
        Ok(principal) => principal,
        Err(challenge) => return challenge_response(challenge),
    };
    parts.extensions.insert(principal.clone());
    if gate.hide_unauthorized_tools {
        parts
            .extensions
            .insert(ToolVisibility(gate.tool_scopes.clone()));
    }
    let requested_session = session_header(&parts.headers).map(str::to_owned);
    if let Some(session) = &requested_session
        && !gate.session_usable_by(session, &principal)
    {
        tracing::warn!("request named a session opened by another user; refused");
        return no_such_session();
    }
    // Another instance's 2025 session: relay the request to it (once; see host::relay).
    if let (Some(session), Some(dir)) = (&requested_session, &gate.directory)
        && !gate.holds_session(session)
        && !parts.headers.contains_key(super::relay::RELAYED)
        && let Some(holder) = dir.holder(session).await
    {
        return match super::relay::relay(&holder, parts, body).await {
            Some(response) => response,
            None => {
                dir.closed(session).await;
                no_such_session()
            }
        };
    }
    let response = route(&gate, &principal, parts, body, next).await;
    let opened = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if requested_session.is_some() || opened.is_some() {
        gate.track_session(
            requested_session.as_deref(),
            opened.as_deref(),
            response.status(),
            &principal,
        )
        .await;
    }
    response
}

/// What the gate does with an authenticated request.
async fn route<S, B>(
    gate: &Arc<Gate>,
    principal: &Principal,
    parts: http::request::Parts,
    body: Body,
    next: Next<S>,
) -> Response
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let gate = gate.clone();

    if parts.method == Method::DELETE {
        return end_session(&gate, Request::from_parts(parts, body), next).await;
    }
    if parts.method != Method::POST {
        // GET opens a 2025-era stream: no body to check, no deadline.
        return next.run(Request::from_parts(parts, body)).await;
    }

    let bytes = match http_body_util::Limited::new(body, gate.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            let message = format!(
                "request body is larger than the {} byte limit; send smaller messages or raise --max-body-bytes (PORTCULLIS_MAX_BODY_BYTES)",
                gate.max_body_bytes
            );
            return jsonrpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                INVALID_REQUEST,
                &message,
            );
        }
        Err(err) => {
            let message = format!("could not read the request body: {err}");
            return jsonrpc_error(StatusCode::BAD_REQUEST, None, PARSE_ERROR, &message);
        }
    };

    let envelope = match parse_envelope(&bytes) {
        Ok(envelope) => envelope,
        Err(refusal) => return refusal.into_response(),
    };
    let is_request =
        envelope.method.is_some() && envelope.id.as_ref().is_some_and(|id| !id.is_null());
    let is_stream = envelope.method.as_deref() == Some("subscriptions/listen");
    // Step-up: a tool whose scope the token lacks is refused here with a 403 naming every
    // scope the call needs. The name comes from the body on both eras; on 2026-07-28 rmcp
    // then insists that `Mcp-Name` says the same.
    if envelope.method.as_deref() == Some("tools/call")
        && let Some(name) = envelope.params.as_ref().and_then(|p| p.name.as_deref())
        && let Some(needed) = gate.tool_scopes.get(name)
        && let Err(challenge) = gate.auth.step_up(principal, name, needed)
    {
        if let Some(audit) = parts.extensions.get::<Arc<crate::audit::AuditLog>>() {
            audit.record(
                principal,
                name,
                crate::audit::Outcome::Denied,
                std::time::Duration::ZERO,
                None,
                None,
            );
        }
        if gate.answers_step_up_as_tool_error(principal) {
            let modern = parts
                .headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v >= "2026-07-28");
            return step_up_tool_error(envelope.id.clone(), name, needed, principal, modern);
        }
        return challenge_response(challenge);
    }
    if let Some(method) = envelope.method.as_deref()
        && let Some(needed) = gate.method_scopes.get(method)
        && let Err(challenge) = gate.auth.step_up(principal, method, needed)
    {
        return challenge_response(challenge);
    }
    if envelope.method.as_deref() == Some("tools/call")
        && let Some(limiter) = &gate.tool_limit
        && let Some(user) = &principal.user
    {
        let key = format!("{user}|{}", principal.client_id.as_deref().unwrap_or(""));
        if let Err(wait) = limiter.check(&key, std::time::Instant::now()) {
            let message = format!(
                "rate limit: at most {} tool calls per minute for one user through one client; retry after {wait} s",
                limiter.per_minute()
            );
            let mut response = jsonrpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                envelope.id.clone(),
                INVALID_REQUEST,
                &message,
            );
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    }

    let session = session_header(&parts.headers);
    // Only the id is kept: the envelope borrows the body, which goes on to rmcp.
    let id = envelope.id;
    let claim = match (is_request, session, &id) {
        (true, Some(session), Some(id)) => {
            let key = inflight_key(session, id);
            if !gate.claim_id(&key) {
                let message = format!(
                    "request id {id} is already in flight on this session; wait for its response or use a new id"
                );
                return jsonrpc_error(
                    StatusCode::BAD_REQUEST,
                    Some(id.clone()),
                    INVALID_REQUEST,
                    &message,
                );
            }
            Some(IdClaim {
                gate: gate.clone(),
                key,
            })
        }
        _ => None,
    };

    let token = (!is_stream).then(|| gate.tracker.enter());
    let request = Request::from_parts(parts, Body::from(bytes));
    let keep = Keep {
        _claim: claim,
        _token: token,
    };

    if is_stream || !is_request {
        let response = next.run(request).await;
        return attach(response, keep, None);
    }

    // One timer serves both the wait for the response to start and, on a stream, the rest.
    let mut sleep = Box::pin(tokio::time::sleep(gate.request_timeout));
    let id = id.unwrap_or(Value::Null);
    tokio::select! {
        biased;
        response = next.run(request) => attach(
            response,
            keep,
            Some(Deadline {
                sleep,
                id,
                timeout: gate.request_timeout,
            }),
        ),
        () = &mut sleep => {
            tracing::warn!(timeout = ?gate.request_timeout, "request timed out before its response started");
            jsonrpc_error(
                StatusCode::OK,
                Some(id),
                INTERNAL_ERROR,
                &timeout_message(gate.request_timeout),
            )
        }
    }
}

/// DELETE ends a 2025-era session: 404 for an id that names no session, 204 once ended.
async fn end_session<S, B>(gate: &Gate, request: Request, next: Next<S>) -> Response
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let session = session_header(request.headers());
    if let Some(id) = session {
        let known = gate
            .sessions
            .has_session(&Arc::from(id))
            .await
            .unwrap_or(false);
        if !known {
            return no_such_session();
        }
    }
    let mut response = next.run(request).await;
    if response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

fn no_such_session() -> Response {
    jsonrpc_error(
        StatusCode::NOT_FOUND,
        None,
        INVALID_REQUEST,
        "no such session (it ended or expired); start a new one with initialize",
    )
}

/// The 2025-era session id a request names, if any.
fn session_header(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
}

/// Why a body could not be routed: the status, JSON-RPC code and message to answer with.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
}

impl Refusal {
    fn into_response(self) -> Response {
        jsonrpc_error(self.status, None, self.code, &self.message)
    }
}

fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, Refusal> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        return Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: INVALID_REQUEST,
            message: "JSON-RPC batches are not supported (removed in MCP 2025-06-18); send one message per POST".to_owned(),
        });
    }
    serde_json::from_slice::<Envelope>(bytes).map_err(|err| {
        let (code, message) = if err.is_data() {
            (
                INVALID_REQUEST,
                format!("invalid JSON-RPC message: {err}; send one JSON-RPC 2.0 object per POST"),
            )
        } else {
            (
                PARSE_ERROR,
                format!("Parse error: the body is not valid JSON ({err})"),
            )
        };
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
        }
    })
}

/// The key of a request in flight on a session. JSON-RPC ids are strings or numbers, and
/// `1` and `"1"` are different ids; a session id is visible ASCII, so `\n` separates.
fn inflight_key(session: &str, id: &Value) -> Arc<str> {
    let key = match id {
        Value::String(s) => format!("{session}\ns:{s}"),
        other => format!("{session}\nn:{other}"),
    };
    Arc::from(key)
}

fn timeout_message(timeout: Duration) -> String {
    format!(
        "the request did not finish within {} s and was cancelled; retry it, or ask the operator to raise --request-timeout (PORTCULLIS_REQUEST_TIMEOUT)",
        timeout.as_secs_f64()
    )
}

fn timeout_sse_frame(id: &Value, timeout: Duration) -> Bytes {
    let error = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": INTERNAL_ERROR, "message": timeout_message(timeout)},
    });
    Bytes::from(format!("event: message\ndata: {error}\n\n"))
}

/// A JSON-RPC error response with a message that says what to do.
pub fn jsonrpc_error(status: StatusCode, id: Option<Value>, code: i64, message: &str) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Things that must live exactly as long as the response body.
struct Keep {
    _claim: Option<IdClaim>,
    _token: Option<InflightToken>,
}

/// When a streamed request must end, and what to tell the client then (the error event
/// is built only if the deadline fires).
struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    id: Value,
    timeout: Duration,
}

fn attach(response: Response, keep: Keep, deadline: Option<Deadline>) -> Response {
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if !is_sse {
        // A JSON (or empty) body is already complete: the request is over, so the
        // bookkeeping in `keep` ends here and the body goes out untouched.
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = GuardedBody {
        inner: body,
        _keep: keep,
        deadline,
        done: false,
    };
    Response::from_parts(parts, Body::new(body))
}

/// The response body, with the request's bookkeeping and deadline riding along.
struct GuardedBody {
    inner: Body,
    _keep: Keep,
    deadline: Option<Deadline>,
    done: bool,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() {
                this.done = true;
            }
            return Poll::Ready(frame);
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.sleep.as_mut().poll(cx).is_ready()
        {
            tracing::warn!("streamed request exceeded its deadline; cancelling it");
            this.done = true;
            // Dropping the inner body closes rmcp's stream, which cancels the handler.
            this.inner = Body::empty();
            let frame = timeout_sse_frame(&deadline.id, deadline.timeout);
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.deadline.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.deadline.is_some() {
            // A deadline may append a final event, so the length is not known in advance.
            http_body::SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_keep_strings_and_numbers_apart() {
        assert_ne!(inflight_key("s", &json!(1)), inflight_key("s", &json!("1")));
        assert_eq!(inflight_key("s", &json!(7)), inflight_key("s", &json!(7)));
        assert_ne!(inflight_key("s", &json!(7)), inflight_key("t", &json!(7)));
    }

    #[test]
    fn batches_and_garbage_are_refused_with_reasons() {
        let batch = parse_envelope(b"  [{\"jsonrpc\":\"2.0\"}]");
        let batch = batch.err().unwrap();
        assert_eq!(batch.status, StatusCode::BAD_REQUEST);
        assert!(batch.message.contains("batches are not supported"));
        let garbage = parse_envelope(b"{not json");
        assert_eq!(garbage.err().unwrap().code, PARSE_ERROR);
        let ok = parse_envelope(
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"x":[1,2]}}"#,
        )
        .ok()
        .unwrap();
        assert_eq!(ok.method.as_deref(), Some("tools/list"));
        assert_eq!(ok.id, Some(json!(3)));
    }
}
