//! Tools that answer on their own: content types, errors, logging, progress, and the
//! hooks that announce list changes. The tools that ask the client for input are in
//! `asking.rs`.

// Logging is deprecated by SEP-2577 but is what these tools exercise.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ResourceContents,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use crate::mrtr;
use crate::server::Fixture;
use crate::shared::Change;

/// A 1x1 PNG.
pub const TEST_IMAGE_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A tiny WAV file.
pub const TEST_AUDIO_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// Pause between the steps of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

fn text(message: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(message)]).into())
}

pub fn simple_text() -> Result<CallToolResponse, ErrorData> {
    text("This is a simple text response for testing.")
}

pub fn image() -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::image(TEST_IMAGE_BASE64, "image/png")]).into())
}

pub fn audio() -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::audio(TEST_AUDIO_BASE64, "audio/wav")]).into())
}

pub fn embedded_resource() -> Result<CallToolResponse, ErrorData> {
    let resource = ResourceContents::text(
        "This is an embedded resource content.",
        "test://embedded-resource",
    )
    .with_mime_type("text/plain");
    Ok(CallToolResult::success(vec![ContentBlock::resource(resource)]).into())
}

pub fn mixed_content() -> Result<CallToolResponse, ErrorData> {
    let resource = ResourceContents::text(
        json!({"test": "data", "value": 123}).to_string(),
        "test://mixed-content-resource",
    )
    .with_mime_type("application/json");
    Ok(CallToolResult::success(vec![
        ContentBlock::text("Multiple content types test:"),
        ContentBlock::image(TEST_IMAGE_BASE64, "image/png"),
        ContentBlock::resource(resource),
    ])
    .into())
}

pub fn error_handling() -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::error(vec![ContentBlock::text(
        "This tool intentionally returns an error for testing",
    )])
    .into())
}

pub fn json_schema_2020_12(params: &CallToolRequestParams) -> Result<CallToolResponse, ErrorData> {
    let args = Value::Object(params.arguments.clone().unwrap_or_default());
    text(format!("JSON Schema 2020-12 tool called with: {args}"))
}

/// rmcp has already checked the `Mcp-Param-Region` header against the body.
pub fn header_param(params: &CallToolRequestParams) -> Result<CallToolResponse, ErrorData> {
    let region = params
        .arguments
        .as_ref()
        .and_then(|args| args.get("region"))
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params("missing string argument \"region\"", None))?;
    text(format!("Region: {region}"))
}

pub async fn reconnection() -> Result<CallToolResponse, ErrorData> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    text(
        "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
    )
}

/// Severity order, lowest first (`LoggingLevel` has no `Ord`).
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// Sends `message` as `notifications/message` if the client wants it: on 2026-07-28
/// only when the request's `_meta` sets a `logLevel` at or below `level`; on a 2025
/// session at or above the level `logging/setLevel` chose (everything until then).
async fn log(
    fixture: &Fixture,
    ctx: &RequestContext<RoleServer>,
    level: LoggingLevel,
    message: &str,
) {
    let threshold = if mrtr::is_stateless(ctx) {
        match ctx.meta.log_level() {
            Some(threshold) => threshold,
            None => return,
        }
    } else {
        fixture.session.log_level().unwrap_or(LoggingLevel::Debug)
    };
    if rank(level) < rank(threshold) {
        return;
    }
    let param = LoggingMessageNotificationParam::new(level, Value::from(message))
        .with_logger("conformance-fixture");
    if let Err(err) = ctx.peer.notify_logging_message(param).await {
        tracing::debug!(%err, "could not send a log message");
    }
}

pub async fn with_logging(
    fixture: &Fixture,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    log(fixture, ctx, LoggingLevel::Info, "Tool execution started").await;
    tokio::time::sleep(STEP).await;
    log(fixture, ctx, LoggingLevel::Info, "Tool processing data").await;
    tokio::time::sleep(STEP).await;
    log(fixture, ctx, LoggingLevel::Info, "Tool execution completed").await;
    text("Tool with logging executed successfully")
}

pub async fn logging_tool(
    fixture: &Fixture,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    log(
        fixture,
        ctx,
        LoggingLevel::Info,
        "Diagnostic trace logging activated",
    )
    .await;
    text("Logging evaluated")
}

/// Reports progress 0, 50 and 100 of 100 against the request's progress token, then
/// answers with the token (as text) so the caller can see it was echoed verbatim.
pub async fn with_progress(
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let Some(token) = ctx.meta.get_progress_token() else {
        return text("No progress token in _meta, so no progress was reported");
    };
    for (i, step) in [0u32, 50, 100].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(STEP).await;
        }
        let param = ProgressNotificationParam::new(token.clone(), f64::from(step))
            .with_total(100.0)
            .with_message(format!("Completed step {step} of 100"));
        ctx.peer.notify_progress(param).await.map_err(|err| {
            ErrorData::internal_error(format!("could not report progress: {err}"), None)
        })?;
    }
    let token = match serde_json::to_value(&token) {
        Ok(Value::String(token)) => token,
        Ok(other) => other.to_string(),
        Err(err) => return Err(ErrorData::internal_error(err.to_string(), None)),
    };
    text(token)
}

/// Announces a list change to every listener (2026 `subscriptions/listen` streams and
/// 2025 sessions alike).
pub fn trigger(fixture: &Fixture, change: Change) -> Result<CallToolResponse, ErrorData> {
    fixture.shared.announce(change);
    text("Mutation triggered")
}
