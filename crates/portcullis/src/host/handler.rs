//! What every tool behind Portcullis gets without writing it.
//!
//! The host wraps each handler the factory makes in [`Guarded`], so the built-in tools and a
//! developer's own `#[tool_router]` tools are treated alike:
//! - every `tools/call` goes to the audit log (who, which client, outcome, duration, digest of
//!   the arguments, and how a confirmation went);
//! - tools the operator or developer marked with [`ServeConfig::require_confirmation`] ask
//!   the person before they run ([`crate::tools::confirm`]);
//! - arguments that miss a tool's input schema come back as a tool error a model can act on;
//! - with `--hide-unauthorized-tools`, `tools/list` leaves out what the token cannot call.
//!
//! Everything else is passed to the inner handler untouched.
//!
//! [`ServeConfig::require_confirmation`]: crate::config::ServeConfig::require_confirmation

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use portcullis_authz::Principal;
use rmcp::model::*;
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::audit::{AuditLog, Outcome};
use crate::host::gate::ToolVisibility;
use crate::tools::confirm::{self, CallConfirmation, Confirmation};
use crate::tools::principal_of;

/// Tools that ask the person before they act, and what to do when the client cannot ask.
#[derive(Debug, Clone, Default)]
pub struct ConfirmPolicy {
    /// Tool name → the question put to the person.
    pub tools: HashMap<String, String>,
    /// Let such tools run for clients without the elicitation capability (recorded in the
    /// audit log as `unconfirmed`) instead of refusing them.
    pub allow_unconfirmed: bool,
}

/// A handler with Portcullis's per-call mechanisms around it.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    policy: Arc<ConfirmPolicy>,
}

impl<S: ServerHandler> Guarded<S> {
    pub fn new(inner: S, policy: Arc<ConfirmPolicy>) -> Self {
        Self { inner, policy }
    }

    /// Asks the person (when the policy names the tool), then runs it.
    async fn confirm_then_call(
        &self,
        question: &str,
        principal: &Principal,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
        let asked = confirm::confirm(
            &context,
            principal.user.as_deref().unwrap_or_default(),
            &request.name,
            &arguments,
            question,
            request.request_state.clone(),
            request.input_responses.clone(),
        )
        .await?;
        match asked {
            Confirmation::Confirmed => self.inner.call_tool(request, context).await,
            Confirmation::Ask(ask) => Ok(ask.into()),
            Confirmation::Refused(why) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(why)]).into())
            }
        }
    }
}

/// rmcp already answers arguments that do not deserialize with a tool error; say what to do
/// about it in the words a model acts on (SEP-1303).
fn reword_schema_error(tool: &str, result: &mut Result<CallToolResponse, ErrorData>) {
    if let Ok(CallToolResponse::Complete(r)) = result
        && r.is_error == Some(true)
        && let Some(first) = r.content.first_mut()
        && let Some(text) = first.as_text().map(|t| t.text.clone())
        && let Some(detail) = text.strip_prefix("failed to deserialize parameters: ")
    {
        *first = ContentBlock::text(format!(
            "the arguments do not fit {tool}'s input schema ({detail}); fix them and call again"
        ));
    }
}

/// Passes a method straight to the inner handler.
macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {$(
        fn $name(
            &self,
            $($arg: $ty),*
        ) -> impl Future<Output = $out> + MaybeSendFuture + '_ {
            self.inner.$name($($arg),*)
        }
    )*};
}

// The deprecated legacy methods (logging, resources/subscribe) are passed on like the rest.
#[allow(deprecated)]
impl<S: ServerHandler> ServerHandler for Guarded<S> {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = std::time::Instant::now();
        let parts = context.extensions.get::<http::request::Parts>();
        let audit = parts.and_then(|p| p.extensions.get::<Arc<AuditLog>>().cloned());
        let principal = parts
            .map(principal_of)
            .unwrap_or_else(Principal::shared_anonymous);
        let name = request.name.to_string();
        // Serialized once, before the arguments move into the call: the audit log keeps
        // their digest (or the text, when the operator asks).
        let arguments = audit.as_ref().map(|_| {
            request
                .arguments
                .as_ref()
                .and_then(|a| serde_json::to_string(a).ok())
                .unwrap_or_else(|| "{}".to_owned())
        });
        // The tool's own confirmation (notes_delete asks with the note's title) reports here
        // too, and reads whether unconfirmed calls are allowed.
        let asked = Arc::new(CallConfirmation::new(self.policy.allow_unconfirmed));
        context.extensions.insert(asked.clone());
        let mut result = match self.policy.tools.get(&name) {
            Some(question) => {
                self.confirm_then_call(question, &principal, request, context)
                    .await
            }
            None => self.inner.call_tool(request, context).await,
        };
        reword_schema_error(&name, &mut result);
        let outcome = match &result {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => Outcome::ToolError,
            Ok(CallToolResponse::InputRequired(_)) => Outcome::InputRequired,
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::ProtocolError,
        };
        if crate::metrics::enabled() {
            crate::metrics::global().tool_call(&name, outcome.as_str());
        }
        if let Some(audit) = audit {
            let confirmation = asked.recorded();
            audit.record(
                &principal,
                &name,
                outcome,
                started.elapsed(),
                arguments,
                confirmation,
            );
        }
        result
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let modern = crate::tools::is_modern(&context);
        let filter = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| {
                let visible = p.extensions.get::<ToolVisibility>()?;
                Some((visible.clone(), principal_of(p)))
            });
        let mut result = self.inner.list_tools(request, context).await?;
        if let Some((visible, principal)) = filter {
            result.tools.retain(|t| visible.allows(&principal, &t.name));
            if modern {
                result = result.with_cache_scope(CacheScope::Private); // depends on the token
            }
        }
        Ok(result)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, ErrorData> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    delegate! {
        ping(context: RequestContext<RoleServer>) -> Result<(), ErrorData>;
        initialize(request: InitializeRequestParams, context: RequestContext<RoleServer>) -> Result<InitializeResult, ErrorData>;
        discover(context: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData>;
        complete(request: CompleteRequestParams, context: RequestContext<RoleServer>) -> Result<CompleteResult, ErrorData>;
        set_level(request: SetLevelRequestParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData>;
        get_prompt(request: GetPromptRequestParams, context: RequestContext<RoleServer>) -> Result<GetPromptResponse, ErrorData>;
        list_prompts(request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListPromptsResult, ErrorData>;
        list_resources(request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListResourcesResult, ErrorData>;
        list_resource_templates(request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListResourceTemplatesResult, ErrorData>;
        read_resource(request: ReadResourceRequestParams, context: RequestContext<RoleServer>) -> Result<ReadResourceResponse, ErrorData>;
        listen(context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData>;
        subscribe(request: SubscribeRequestParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData>;
        unsubscribe(request: UnsubscribeRequestParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData>;
        on_custom_request(request: CustomRequest, context: RequestContext<RoleServer>) -> Result<CustomResult, ErrorData>;
        on_cancelled(notification: CancelledNotificationParam, context: NotificationContext<RoleServer>) -> ();
        on_progress(notification: ProgressNotificationParam, context: NotificationContext<RoleServer>) -> ();
        on_initialized(context: NotificationContext<RoleServer>) -> ();
        on_roots_list_changed(context: NotificationContext<RoleServer>) -> ();
        on_custom_notification(notification: CustomNotification, context: NotificationContext<RoleServer>) -> ();
        get_task(request: GetTaskParams, context: RequestContext<RoleServer>) -> Result<GetTaskResult, ErrorData>;
        update_task(request: UpdateTaskParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData>;
        cancel_task(request: CancelTaskParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData>;
        list_skills(request: Option<PaginatedRequestParams>, context: RequestContext<RoleServer>) -> Result<ListSkillsResult, ErrorData>;
        get_skill(request: GetSkillRequestParams, context: RequestContext<RoleServer>) -> Result<GetSkillResult, ErrorData>;
        read_resource_directory(request: ReadResourceDirectoryRequestParams, context: RequestContext<RoleServer>) -> Result<ReadResourceDirectoryResult, ErrorData>;
    }
}
