//! The rmcp `ServerHandler`: routes each request to the catalogue, prompts and
//! resources, and adds the era-specific pieces (2025 `logging/setLevel` and
//! `resources/subscribe`, 2026-07-28 caching hints and `subscriptions/listen`).

// Logging and `resources/subscribe` are deprecated (SEP-2577, 2026-07-28) but are the
// 2025 protocol this fixture must still serve.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    CompletionInfo, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, Reference,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::broadcast;

use crate::catalog::ToolId;
use crate::shared::{Change, Shared};
use crate::{asking, mrtr, prompts, resources, tools};

/// How long cacheable 2026-07-28 list results stay fresh.
const LIST_TTL_MS: u64 = 300_000;

/// One handler: made per 2025 session or per 2026-07-28 request by the host's factory.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub shared: Shared,
    pub session: Arc<Session>,
}

/// Per-handler state. On a 2025 session it lives as long as the session; on
/// 2026-07-28 every request gets a fresh handler, so only `listener` matters there.
#[derive(Debug, Default)]
pub struct Session {
    log_level: Mutex<Option<LoggingLevel>>,
    subscriptions: Mutex<BTreeSet<String>>,
    /// A `subscriptions/listen` stream's receiver, taken when the filter is accepted so
    /// no change is missed between the acknowledgement and `listen`.
    listener: Mutex<Option<broadcast::Receiver<Change>>>,
}

impl Session {
    pub fn log_level(&self) -> Option<LoggingLevel> {
        *self
            .log_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(uri)
    }
}

impl Fixture {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            session: Arc::new(Session::default()),
        }
    }
}

/// Adds the 2026-07-28 caching hints (SEP-2549) to a list result; 2025 results stay as
/// they were.
macro_rules! cacheable {
    ($ctx:expr, $result:expr) => {{
        let result = $result;
        if mrtr::is_stateless($ctx) {
            result
                .with_ttl_ms(LIST_TTL_MS)
                .with_cache_scope(CacheScope::Public)
        } else {
            result
        }
    }};
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(
            Implementation::new("portcullis-conformance-fixture", env!("CARGO_PKG_VERSION"))
                .with_title("Portcullis conformance fixture"),
        )
        .with_instructions(
            "The MCP conformance suite's reference server contract, served on Portcullis's host.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = ToolId::ALL.into_iter().map(ToolId::tool).collect();
        Ok(cacheable!(&ctx, ListToolsResult::with_all_items(tools)))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        ToolId::from_name(name).map(ToolId::tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = ToolId::from_name(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "no tool named {:?}; tools/list shows the available tools",
                    request.name
                ),
                None,
            ));
        };
        let ctx = &ctx;
        let params = &request;
        match tool {
            ToolId::SimpleText => tools::simple_text(),
            ToolId::Image => tools::image(),
            ToolId::Audio => tools::audio(),
            ToolId::EmbeddedResource => tools::embedded_resource(),
            ToolId::MixedContent => tools::mixed_content(),
            ToolId::WithLogging => tools::with_logging(self, ctx).await,
            ToolId::WithProgress => tools::with_progress(ctx).await,
            ToolId::ErrorHandling => tools::error_handling(),
            ToolId::Reconnection => tools::reconnection().await,
            ToolId::Sampling => asking::sampling(ctx, params).await,
            ToolId::Elicitation => asking::elicitation(ctx, params).await,
            ToolId::ElicitationDefaults => asking::elicitation_defaults(ctx, params).await,
            ToolId::ElicitationEnums => asking::elicitation_enums(ctx, params).await,
            ToolId::JsonSchema202012 => tools::json_schema_2020_12(params),
            ToolId::MissingCapability => asking::missing_capability(ctx),
            ToolId::AskElicitation => asking::ask_elicitation(ctx, params).await,
            ToolId::AskSampling => asking::ask_sampling(ctx, params).await,
            ToolId::AskRoots => asking::ask_roots(ctx, params).await,
            ToolId::AskWithState => asking::ask_with_state(self, ctx, params).await,
            ToolId::AskMultiple => asking::ask_multiple(self, ctx, params).await,
            ToolId::AskMultiRound => asking::ask_multi_round(self, ctx, params).await,
            ToolId::AskTamperProof => asking::ask_tamper_proof(self, ctx, params).await,
            ToolId::AskByCapabilities => asking::ask_by_capabilities(self, ctx, params).await,
            ToolId::StreamingElicitation => asking::streaming_elicitation(ctx, params).await,
            ToolId::LoggingTool => tools::logging_tool(self, ctx).await,
            ToolId::TriggerToolChange => tools::trigger(self, Change::ToolList),
            ToolId::TriggerPromptChange => tools::trigger(self, Change::PromptList),
            ToolId::HeaderParam => tools::header_param(params),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(cacheable!(
            &ctx,
            ListPromptsResult::with_all_items(prompts::list())
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&request, &ctx).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(cacheable!(
            &ctx,
            ListResourcesResult::with_all_items(resources::list())
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(cacheable!(
            &ctx,
            ListResourceTemplatesResult::with_all_items(resources::templates())
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let mut result = resources::read(&request.uri, self.shared.watched_revision())?;
        if mrtr::is_stateless(&ctx) {
            result.ttl_ms = Some(resources::ttl_ms(&request.uri));
            result.cache_scope = Some(CacheScope::Public);
        }
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        // Only the embedded-resource prompt's URI argument has meaningful candidates:
        // the URIs of the listed resources.
        let candidates: Vec<String> = match &request.r#ref {
            Reference::Prompt(prompt)
                if prompts::completes_resource_uri(&prompt.name, &request.argument.name) =>
            {
                resources::list()
                    .into_iter()
                    .map(|r| r.uri.clone())
                    .filter(|uri| uri.starts_with(&request.argument.value))
                    .collect()
            }
            _ => Vec::new(),
        };
        let total = u32::try_from(candidates.len()).unwrap_or(u32::MAX);
        let completion = CompletionInfo::with_pagination(candidates, Some(total), false)
            .map_err(|err| ErrorData::internal_error(err, None))?;
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .session
            .log_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(request.level);
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !resources::exists(&request.uri) {
            return Err(ErrorData::resource_not_found(
                format!("no resource at {} to subscribe to", request.uri),
                Some(serde_json::json!({"uri": request.uri})),
            ));
        }
        self.session
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request.uri);
        Ok(())
    }

    /// A 2025 session is established: forward list changes, and updates of the
    /// resources it subscribes to, until the session ends.
    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        let mut changes = self.shared.subscribe();
        let peer = ctx.peer;
        let session = self.session.clone();
        tokio::spawn(async move {
            loop {
                let change = match changes.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if peer.is_transport_closed() {
                    return;
                }
                let sent = match change {
                    Change::ToolList => peer.notify_tool_list_changed().await,
                    Change::PromptList => peer.notify_prompt_list_changed().await,
                    Change::ResourceUpdated(uri) if session.is_subscribed(&uri) => {
                        peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                            .await
                    }
                    Change::ResourceUpdated(_) => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.supported_by(&self.get_info().capabilities);
        if let Some(uris) = accepted.resource_subscriptions.as_mut() {
            uris.retain(|uri| resources::exists(uri));
        }
        *self
            .session
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(self.shared.subscribe());
        Some(accepted)
    }

    /// A 2026-07-28 `subscriptions/listen` stream: rmcp has sent the acknowledgement;
    /// forward the changes the accepted filter asks for until the client goes away.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let taken = self
            .session
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut changes = taken.unwrap_or_else(|| self.shared.subscribe());
        let accepted = context.accepted().clone();
        let sink = context.sink().clone();
        loop {
            let change = tokio::select! {
                () = context.cancelled() => return Ok(()),
                change = changes.recv() => change,
            };
            let change = match change {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            let sent = match change {
                Change::ToolList if accepted.tools_list_changed == Some(true) => {
                    sink.notify_tool_list_changed().await
                }
                Change::PromptList if accepted.prompts_list_changed == Some(true) => {
                    sink.notify_prompt_list_changed().await
                }
                Change::ResourceUpdated(uri)
                    if accepted
                        .resource_subscriptions
                        .as_ref()
                        .is_some_and(|uris| uris.contains(&uri)) =>
                {
                    sink.notify_resource_updated(uri).await
                }
                _ => Ok(()),
            };
            if let Err(err) = sent {
                tracing::debug!(%err, "listen stream closed");
                return Ok(());
            }
        }
    }
}
