//! Baseline: a bare rmcp Streamable HTTP server with the same trivial `whoami` tool as
//! Portcullis and the same rmcp configuration, mounted in axum at `/mcp` with no
//! middleware of ours. The benchmark compares Portcullis against this.
//!
//! Usage: `bare-rmcp --bind 127.0.0.1:PORT`

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::View;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};

#[derive(Debug, Clone)]
struct BareTools {
    tool_router: ToolRouter<Self>,
}

#[tool_router(router = tool_router)]
impl BareTools {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// Reports who is calling.
    #[tool(
        name = "whoami",
        title = "Who am I",
        description = "Reports who this MCP server believes is calling.",
        annotations(
            title = "Who am I",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn whoami(&self) -> Json<View> {
        Json(View::anonymous())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BareTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bare-rmcp", env!("CARGO_PKG_VERSION")))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = common::bind_arg("bare-rmcp");
    // Exactly the rmcp settings Portcullis uses (see crates/portcullis/src/host/mod.rs).
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_max_request_body_bytes(1024 * 1024 + 1)
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let service = StreamableHttpService::new(
        || Ok(BareTools::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = Router::new().route_service("/mcp", service);
    common::serve(bind, router).await
}
