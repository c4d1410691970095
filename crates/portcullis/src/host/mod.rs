//! The MCP host: rmcp's Streamable HTTP service mounted in axum behind Portcullis's gate.
//!
//! Both protocol eras are served on one path: rmcp routes `initialize` to a 2025-era
//! session and a request carrying 2026-07-28 `_meta` to its stateless path. The host is
//! generic over the rmcp `ServerHandler`, so the product's tools and the conformance
//! fixture run on exactly the same code.

pub mod cors;
pub mod gate;
pub mod handler;
pub mod limit;
pub mod origin;
pub mod relay;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use portcullis_authz::AuthMode;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use cors::CorsLayer;
pub use gate::{Gate, InflightTracker};
pub use handler::{ConfirmPolicy, Guarded};
pub use origin::{OriginPolicy, OriginRule};

/// Everything the host needs to know; the binary fills it from flags and environment.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Path of the MCP endpoint, e.g. `/mcp`.
    pub mcp_path: String,
    pub policy: OriginPolicy,
    pub auth: AuthMode,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Interval of SSE keep-alive comments on long-lived streams.
    pub sse_keep_alive: Duration,
    /// Scopes each tool needs beyond the base scope; a call without them gets a 403
    /// step-up challenge. Tools not listed need only the base scope.
    pub tool_scopes: Arc<std::collections::HashMap<String, portcullis_oauth::ScopeSet>>,
    /// Scopes whole methods need (e.g. `resources/read` for notes), checked the same way.
    pub method_scopes: Arc<std::collections::HashMap<String, portcullis_oauth::ScopeSet>>,
    /// List only the tools the caller's token can call (the call is enforced either way).
    pub hide_unauthorized_tools: bool,
    /// Clients (ids, or prefixes ending in `*`) that mishandle a 403: a tool call missing a
    /// scope is answered to them as a tool error naming the scope instead.
    pub step_up_as_tool_error: Arc<Vec<String>>,
    /// Tool calls allowed per minute for one user through one client (0: no limit).
    pub tool_calls_per_minute: u32,
    /// Record every tool call in the audit log (needs the database: embedded auth).
    pub audit: bool,
    /// Keep tool arguments in the audit log (otherwise only their digest).
    pub audit_arguments: bool,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// Tools that ask the person before they act.
    pub confirm: Arc<ConfirmPolicy>,
    /// This instance's address for the other instances on its database (`--instance-url`).
    pub instance_url: Option<String>,
    /// Where 2025-era sessions are recorded for those instances (the server builds it from
    /// `instance_url` and its store).
    pub session_directory: Option<relay::SessionDirectory>,
    /// Proxies whose `X-Forwarded-For` names the client (for the client address in logs).
    pub trusted_proxies: Arc<[portcullis_authz::forwarded::ProxyRange]>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            mcp_path: "/mcp".to_owned(),
            policy: OriginPolicy::default(),
            auth: AuthMode::None,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            sse_keep_alive: Duration::from_secs(15),
            tool_scopes: Arc::default(),
            method_scopes: Arc::default(),
            hide_unauthorized_tools: false,
            step_up_as_tool_error: Arc::default(),
            tool_calls_per_minute: 0,
            audit: true,
            audit_arguments: false,
            audit_retention: Duration::from_secs(90 * 86_400),
            confirm: Arc::default(),
            instance_url: None,
            session_directory: None,
            trusted_proxies: Arc::from(Vec::new()),
        }
    }
}

/// Handles the binary keeps to shut the host down gracefully.
#[derive(Debug, Clone)]
pub struct HostHandle {
    /// Cancelling this ends rmcp's sessions and long-lived streams.
    pub streams: CancellationToken,
    /// Requests still being worked on.
    pub inflight: Arc<InflightTracker>,
}

/// Builds the router that serves the MCP endpoint with handlers made by `factory`
/// (one per 2025 session, one per 2026-07-28 request).
pub fn mcp_router<S, F>(config: &HostConfig, factory: F) -> (Router, HostHandle)
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let streams = CancellationToken::new();
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_sse_keep_alive(Some(config.sse_keep_alive))
        .with_cancellation_token(streams.child_token())
        // The gate enforces the body limit, Host and Origin, with actionable messages.
        .with_max_request_body_bytes(config.max_body_bytes.saturating_add(1))
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let sessions = Arc::new(LocalSessionManager::default());
    // Every handler is wrapped: audit, confirmation and the rest apply to any tool.
    let confirm = config.confirm.clone();
    let service = StreamableHttpService::new(
        move || Ok(Guarded::new(factory(), confirm.clone())),
        sessions.clone(),
        rmcp_config,
    );
    let mut gate = Gate::new(
        config.policy.clone(),
        config.auth.clone(),
        config.max_body_bytes,
        config.request_timeout,
        sessions,
    );
    gate.tool_scopes = config.tool_scopes.clone();
    gate.method_scopes = config.method_scopes.clone();
    gate.step_up_as_tool_error = config.step_up_as_tool_error.clone();
    gate.hide_unauthorized_tools = config.hide_unauthorized_tools;
    gate.directory = config.session_directory.clone();
    gate.tool_limit = (config.tool_calls_per_minute > 0)
        .then(|| limit::RateLimiter::new(config.tool_calls_per_minute));
    let gate = Arc::new(gate);
    let handle = HostHandle {
        streams,
        inflight: gate.tracker(),
    };
    let router =
        Router::new().route_service(&config.mcp_path, gate::GateService::new(gate, service));
    (router, handle)
}
