//! Portcullis's built-in tools. `whoami` tells the caller who the server thinks it is:
//! the first thing an operator checks after connecting a client, and the proof that
//! the guard's principal reaches tool handlers. [`notes`] is the per-user notes toolset.

pub mod confirm;
pub mod notes;

use std::sync::{Arc, LazyLock};

use portcullis_authz::{Principal, PrincipalView};

use rmcp::ErrorData;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};

/// The handler the `portcullis` binary serves.
///
/// rmcp builds a handler for every 2026-07-28 request, so the tool router (whose input
/// and output schemas are generated on construction) is built once and shared.
#[derive(Debug, Clone)]
pub struct PortcullisTools {
    tool_router: Arc<ToolRouter<Self>>,
    /// Whether the notes toolset (tools and `note://` resources) is on.
    notes: bool,
}

static TOOL_ROUTER: LazyLock<Arc<ToolRouter<PortcullisTools>>> =
    LazyLock::new(|| Arc::new(PortcullisTools::tool_router()));
static WITH_NOTES: LazyLock<Arc<ToolRouter<PortcullisTools>>> =
    LazyLock::new(|| Arc::new(PortcullisTools::tool_router() + PortcullisTools::notes_router()));

impl Default for PortcullisTools {
    fn default() -> Self {
        Self::new()
    }
}

/// True when the request speaks 2026-07-28 or later (stateless, with caching hints and
/// MRTR) rather than a 2025-era session.
pub fn is_modern(ctx: &rmcp::service::RequestContext<rmcp::RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str())
}

/// Reads the principal the guard put on the HTTP request (shared, cheap to clone).
pub fn principal_of(parts: &http::request::Parts) -> Arc<Principal> {
    // The gate inserts a principal on every request; a missing one means a request that
    // did not pass the gate, which must never be treated as more than anonymous.
    parts
        .extensions
        .get::<Arc<Principal>>()
        .cloned()
        .unwrap_or_else(Principal::shared_anonymous)
}

/// A tool argument that gives the handler the verified caller: `Caller(principal)`.
///
/// rmcp's `Extension<http::request::Parts>` would clone every header and extension of
/// the request on every call; this clones only the principal.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl std::ops::Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        let principal = context
            .as_request_context()
            .extensions
            .get::<http::request::Parts>()
            .map(principal_of)
            .unwrap_or_else(Principal::shared_anonymous);
        Ok(Caller(principal))
    }
}

#[tool_router(router = tool_router)]
impl PortcullisTools {
    /// `whoami` only.
    pub fn new() -> Self {
        Self {
            tool_router: TOOL_ROUTER.clone(),
            notes: false,
        }
    }

    /// `whoami` and the notes toolset: what `portcullis serve` offers by default.
    pub fn with_notes() -> Self {
        Self {
            tool_router: WITH_NOTES.clone(),
            notes: true,
        }
    }

    /// Reports who is calling.
    #[tool(
        name = "whoami",
        title = "Who am I",
        description = "Reports who this MCP server believes is calling: the user, the OAuth client and the scopes of the access token (or that the caller is anonymous when the server runs without authentication). Use it to check that a connection is set up as intended.",
        annotations(
            title = "Who am I",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub async fn whoami(&self, Caller(caller): Caller) -> Json<PrincipalView> {
        Json(caller.describe())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PortcullisTools {
    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, ErrorData> {
        // The host narrows the list (and makes it private) when tools are hidden by scope.
        let mut result = rmcp::model::ListToolsResult::with_all_items(self.tool_router.list_all());
        if is_modern(&context) {
            result = result
                .with_ttl_ms(0)
                .with_cache_scope(rmcp::model::CacheScope::Public);
        }
        Ok(result)
    }

    async fn list_prompts(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        notes::list_prompts(self.notes, &context)
    }

    async fn get_prompt(
        &self,
        request: rmcp::model::GetPromptRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, ErrorData> {
        notes::get_prompt(self.notes, request, context).await
    }

    async fn list_resources(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        notes::list_resources(self.notes, request, context).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        notes::list_resource_templates(self.notes, &context)
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        notes::read_resource(self.notes, request, context).await
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.notes {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("portcullis", env!("CARGO_PKG_VERSION"))
                    .with_title("Portcullis"),
            )
            .with_instructions(
                "Portcullis: a remote MCP server. Call `whoami` to see which user, client and scopes this connection acts as.",
            )
    }
}
