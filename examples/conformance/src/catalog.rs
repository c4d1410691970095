//! The tool catalogue: names, descriptions and input schemas, in the fixed order
//! `tools/list` returns them (the suite checks the order is stable).
//!
//! One catalogue serves both eras. Tools that talk to the client work on either: they
//! ask over the session stream on 2025 and through MRTR on 2026-07-28 (see `mrtr.rs`).

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolId {
    SimpleText,
    Image,
    Audio,
    EmbeddedResource,
    MixedContent,
    WithLogging,
    WithProgress,
    ErrorHandling,
    Reconnection,
    Sampling,
    Elicitation,
    ElicitationDefaults,
    ElicitationEnums,
    JsonSchema202012,
    MissingCapability,
    AskElicitation,
    AskSampling,
    AskRoots,
    AskWithState,
    AskMultiple,
    AskMultiRound,
    AskTamperProof,
    AskByCapabilities,
    StreamingElicitation,
    LoggingTool,
    TriggerToolChange,
    TriggerPromptChange,
    HeaderParam,
}

impl ToolId {
    /// Every tool, in `tools/list` order.
    pub const ALL: [ToolId; 28] = [
        Self::SimpleText,
        Self::Image,
        Self::Audio,
        Self::EmbeddedResource,
        Self::MixedContent,
        Self::WithLogging,
        Self::WithProgress,
        Self::ErrorHandling,
        Self::Reconnection,
        Self::Sampling,
        Self::Elicitation,
        Self::ElicitationDefaults,
        Self::ElicitationEnums,
        Self::JsonSchema202012,
        Self::MissingCapability,
        Self::AskElicitation,
        Self::AskSampling,
        Self::AskRoots,
        Self::AskWithState,
        Self::AskMultiple,
        Self::AskMultiRound,
        Self::AskTamperProof,
        Self::AskByCapabilities,
        Self::StreamingElicitation,
        Self::LoggingTool,
        Self::TriggerToolChange,
        Self::TriggerPromptChange,
        Self::HeaderParam,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::SimpleText => "test_simple_text",
            Self::Image => "test_image_content",
            Self::Audio => "test_audio_content",
            Self::EmbeddedResource => "test_embedded_resource",
            Self::MixedContent => "test_multiple_content_types",
            Self::WithLogging => "test_tool_with_logging",
            Self::WithProgress => "test_tool_with_progress",
            Self::ErrorHandling => "test_error_handling",
            Self::Reconnection => "test_reconnection",
            Self::Sampling => "test_sampling",
            Self::Elicitation => "test_elicitation",
            Self::ElicitationDefaults => "test_elicitation_sep1034_defaults",
            Self::ElicitationEnums => "test_elicitation_sep1330_enums",
            Self::JsonSchema202012 => "json_schema_2020_12_tool",
            Self::MissingCapability => "test_missing_capability",
            Self::AskElicitation => "test_input_required_result_elicitation",
            Self::AskSampling => "test_input_required_result_sampling",
            Self::AskRoots => "test_input_required_result_list_roots",
            Self::AskWithState => "test_input_required_result_request_state",
            Self::AskMultiple => "test_input_required_result_multiple_inputs",
            Self::AskMultiRound => "test_input_required_result_multi_round",
            Self::AskTamperProof => "test_input_required_result_tampered_state",
            Self::AskByCapabilities => "test_input_required_result_capabilities",
            Self::StreamingElicitation => "test_streaming_elicitation",
            Self::LoggingTool => "test_logging_tool",
            Self::TriggerToolChange => "test_trigger_tool_change",
            Self::TriggerPromptChange => "test_trigger_prompt_change",
            Self::HeaderParam => "test_header_param",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::SimpleText => "Tests simple text content response",
            Self::Image => "Tests image content response",
            Self::Audio => "Tests audio content response",
            Self::EmbeddedResource => "Tests embedded resource content response",
            Self::MixedContent => {
                "Tests response with multiple content types (text, image, resource)"
            }
            Self::WithLogging => {
                "Tests tool that emits log messages during execution (on 2026-07-28 only when the request's _meta sets a logLevel)"
            }
            Self::WithProgress => {
                "Tests tool that reports progress notifications (needs a progressToken in _meta)"
            }
            Self::ErrorHandling => "Tests error response handling",
            Self::Reconnection => {
                "Tests SSE stream resumption (SEP-1699): answers after a short pause. The result arrives on the request's own stream; a client that lost the stream can resume it with Last-Event-ID."
            }
            Self::Sampling => {
                "Tests server-initiated sampling (LLM completion request); on 2026-07-28 the request is returned as an InputRequiredResult"
            }
            Self::Elicitation => {
                "Tests server-initiated elicitation (user input request); on 2026-07-28 the request is returned as an InputRequiredResult"
            }
            Self::ElicitationDefaults => "Tests elicitation with default values per SEP-1034",
            Self::ElicitationEnums => {
                "Tests elicitation with enum schema improvements per SEP-1330"
            }
            Self::JsonSchema202012 => {
                "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)"
            }
            Self::MissingCapability => {
                "Test tool requiring sampling: fails with -32021 unless the client declared the sampling capability"
            }
            Self::AskElicitation => "MRTR: returns InputRequiredResult with elicitation request",
            Self::AskSampling => "MRTR: returns InputRequiredResult with sampling request",
            Self::AskRoots => "MRTR: returns InputRequiredResult with roots/list request",
            Self::AskWithState => "MRTR: returns InputRequiredResult with requestState",
            Self::AskMultiple => "MRTR: returns InputRequiredResult with multiple input requests",
            Self::AskMultiRound => "MRTR: multi-round InputRequiredResult workflow",
            Self::AskTamperProof => {
                "MRTR: integrity-protected requestState; a tampered one is rejected with -32602"
            }
            Self::AskByCapabilities => {
                "MRTR: asks only for inputs whose client capabilities the request declared"
            }
            Self::StreamingElicitation => {
                "Diagnostic tool validating response streams: progress on the response stream, elicitation only through MRTR"
            }
            Self::LoggingTool => {
                "Diagnostic logging validator tool: logs only when the request's _meta sets a logLevel"
            }
            Self::TriggerToolChange => {
                "Conformance hook: announces notifications/tools/list_changed to listeners"
            }
            Self::TriggerPromptChange => {
                "Conformance hook: announces notifications/prompts/list_changed to listeners"
            }
            Self::HeaderParam => {
                "SEP-2243: its `region` argument is mirrored in the Mcp-Param-Region header, which must agree with the body"
            }
        }
    }

    fn input_schema(self) -> Value {
        match self {
            Self::Sampling => json!({
                "type": "object",
                "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
                "required": ["prompt"],
            }),
            Self::Elicitation => json!({
                "type": "object",
                "properties": {"message": {"type": "string", "description": "The message to show the user"}},
                "required": ["message"],
            }),
            Self::JsonSchema202012 => json_schema_2020_12(),
            Self::HeaderParam => json!({
                "type": "object",
                "properties": {
                    "region": {"type": "string", "description": "Any region name", "x-mcp-header": "Region"},
                },
                "required": ["region"],
            }),
            _ => json!({"type": "object", "properties": {}}),
        }
    }

    pub fn tool(self) -> Tool {
        let schema: JsonObject = match self.input_schema() {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        };
        Tool::new(self.name(), self.description(), Arc::new(schema))
    }
}

/// SEP-1613 / SEP-2106: a schema using the 2020-12 vocabulary, which must reach the
/// client unchanged.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            },
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_and_resolve() {
        let mut seen = std::collections::HashSet::new();
        for tool in ToolId::ALL {
            let name = tool.name();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(
                (1..=128).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
                "{name} breaks the tool name rules"
            );
            assert_eq!(ToolId::from_name(name), Some(tool));
            let listed = tool.tool();
            assert!(listed.description.is_some_and(|d| !d.is_empty()));
            assert_eq!(listed.input_schema.get("type"), Some(&json!("object")));
        }
    }
}
