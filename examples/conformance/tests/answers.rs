//! The fixture's exact answers over the real router (gate, rmcp, handler), on both
//! eras. The conformance suite's own checks are lenient (it often only checks that
//! content is non-empty or that a request was made), so these pin the values: texts,
//! base64 data, MIME types, error codes, MRTR rounds, listen streams and the 2025
//! server-to-client round trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis::host::{HostConfig, OriginPolicy, OriginRule, mcp_router};
use portcullis::testing::{self, LEGACY, MODERN, Reply, call, legacy, modern, post};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const IMAGE: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The `tools/list` order the fixture promises.
const TOOL_NAMES: [&str; 28] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_reconnection",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_missing_capability",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
    "test_header_param",
];

// ---------------------------------------------------------------------------------
// Helpers

/// A fresh fixture (its own requestState key and change channel) on the host.
fn router() -> Router {
    let config = HostConfig {
        policy: OriginPolicy {
            origins: vec![OriginRule::parse("http://localhost:*").unwrap()],
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
        },
        ..HostConfig::default()
    };
    mcp_router(&config, conformance_fixture::factory().unwrap()).0
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    testing::send(router, request).await.unwrap()
}

/// A 2026-07-28 request whose result must be `complete`; returns that result.
async fn complete(router: &Router, method: &str, name: Option<&str>, params: Value) -> Value {
    let reply = send(router, modern(1, method, name, params)).await;
    assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text);
    let result = reply.result().clone();
    assert_eq!(result["resultType"], "complete", "{method}: {}", reply.text);
    result
}

/// Calls `tool` on 2026-07-28 with `params` merged into `{name, arguments: {}}`.
fn tool_call(id: i64, tool: &str, extra: Value) -> Request<Body> {
    let mut params = json!({"name": tool, "arguments": {}});
    if let Value::Object(extra) = extra {
        params.as_object_mut().unwrap().extend(extra);
    }
    modern(id, "tools/call", Some(tool), params)
}

/// `_meta` declaring `capabilities`.
fn declaring(capabilities: Value) -> Value {
    json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": capabilities}})
}

/// Every client capability MRTR can ask for.
fn all_caps() -> Value {
    json!({"sampling": {}, "elicitation": {}, "roots": {}})
}

fn text_content(text: &str) -> Value {
    json!([{"type": "text", "text": text}])
}

/// The only text of a tool or prompt result.
fn only_text(result: &Value) -> &str {
    let content = &result["content"];
    assert_eq!(content.as_array().map(Vec::len), Some(1), "{result}");
    assert_eq!(content[0]["type"], "text", "{result}");
    content[0]["text"].as_str().unwrap()
}

/// The error of the last message, which must be one.
fn error_of(reply: &Reply) -> &Value {
    let error = &reply.last()["error"];
    assert!(error.is_object(), "expected an error: {}", reply.text);
    error
}

fn accept(content: Value) -> Value {
    json!({"action": "accept", "content": content})
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text},
           "model": "m", "stopReason": "endTurn"})
}

fn one_root() -> Value {
    json!({"roots": [{"uri": "file:///work", "name": "work"}]})
}

/// A response body read message by message, without waiting for it to end.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    async fn open(router: &Router, request: Request<Body>) -> Self {
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let kind = response.headers()["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next JSON-RPC message (SSE `data:`), or `None` if none comes `within`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if !data.is_empty() {
                    return Some(serde_json::from_str(&data).unwrap());
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Reads until a message satisfies `wanted` and returns it.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let message = self
                .next(Duration::from_secs(5))
                .await
                .expect("the awaited message never came");
            if wanted(&message) {
                return message;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// 2026-07-28: discovery and lists

/// What the fixture advertises, on both eras.
fn capabilities() -> Value {
    json!({
        "completions": {},
        // Logs still flow on 2026-07-28 when a request's `_meta` sets a logLevel.
        "logging": {},
        "prompts": {"listChanged": true},
        "resources": {"subscribe": true, "listChanged": true},
        "tools": {"listChanged": true},
    })
}

#[tokio::test]
async fn discover_names_the_version_the_capabilities_and_the_server() {
    let router = router();
    let result = complete(&router, "server/discover", None, json!({})).await;
    let versions = result["supportedVersions"].as_array().unwrap();
    assert!(
        versions.contains(&json!(MODERN)) && versions.contains(&json!(LEGACY)),
        "{result}"
    );
    assert_eq!(result["capabilities"], capabilities());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"],
        json!({"name": "portcullis-conformance-fixture", "version": env!("CARGO_PKG_VERSION"),
               "title": "Portcullis conformance fixture"}),
    );
    assert_eq!(
        (&result["ttlMs"], &result["cacheScope"]),
        (&json!(0), &json!("private"))
    );
    // Every advertised capability is backed by its handler.
    for method in ["tools/list", "prompts/list", "resources/list"] {
        complete(&router, method, None, json!({})).await;
    }
    let params = json!({"ref": {"type": "ref/prompt", "name": "test_simple_prompt"},
                        "argument": {"name": "a", "value": ""}});
    complete(&router, "completion/complete", None, params).await;
}

#[tokio::test]
async fn tools_list_is_the_catalogue_in_a_fixed_order() {
    let router = router();
    let mut orders = Vec::new();
    for _ in 0..3 {
        let result = complete(&router, "tools/list", None, json!({})).await;
        assert_eq!(
            (&result["ttlMs"], &result["cacheScope"]),
            (&json!(300_000), &json!("public"))
        );
        let tools = result["tools"].as_array().unwrap().clone();
        for tool in &tools {
            assert!(
                tool["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{tool}"
            );
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        }
        orders.push(tools.iter().map(|t| t["name"].clone()).collect::<Vec<_>>());
    }
    assert_eq!(orders[0], TOOL_NAMES.map(Value::from).to_vec());
    assert!(orders.iter().all(|order| *order == orders[0]));
}

#[tokio::test]
async fn lists_of_prompts_resources_and_templates_are_exact() {
    let router = router();
    let names = |result: &Value, list: &str, field: &str| -> Vec<Value> {
        result[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item[field].clone())
            .collect()
    };
    let prompts = complete(&router, "prompts/list", None, json!({})).await;
    assert_eq!(
        names(&prompts, "prompts", "name"),
        [
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
            "test_input_required_result_prompt",
        ]
    );
    assert_eq!(
        prompts["prompts"][1]["arguments"],
        json!([
            {"name": "arg1", "description": "First test argument", "required": true},
            {"name": "arg2", "description": "Second test argument", "required": true},
        ])
    );
    let resources = complete(&router, "resources/list", None, json!({})).await;
    assert_eq!(
        names(&resources, "resources", "uri"),
        [
            "test://static-text",
            "test://static-binary",
            "test://watched-resource"
        ]
    );
    assert_eq!(
        names(&resources, "resources", "mimeType"),
        ["text/plain", "image/png", "text/plain"]
    );
    let templates = complete(&router, "resources/templates/list", None, json!({})).await;
    assert_eq!(
        templates["resourceTemplates"],
        json!([{"uriTemplate": "test://template/{id}/data", "name": "template",
                "title": "Resource Template",
                "description": "A resource template with parameter substitution",
                "mimeType": "application/json"}])
    );
    for result in [&prompts, &resources, &templates] {
        assert_eq!(
            (&result["ttlMs"], &result["cacheScope"]),
            (&json!(300_000), &json!("public"))
        );
    }
}

// ---------------------------------------------------------------------------------
// 2026-07-28: tools that answer on their own

#[tokio::test]
async fn content_tools_answer_exact_content() {
    let router = router();
    let cases = [
        (
            "test_simple_text",
            text_content("This is a simple text response for testing."),
        ),
        (
            "test_image_content",
            json!([{"type": "image", "data": IMAGE, "mimeType": "image/png"}]),
        ),
        (
            "test_audio_content",
            json!([{"type": "audio", "data": AUDIO, "mimeType": "audio/wav"}]),
        ),
        (
            "test_embedded_resource",
            json!([{"type": "resource", "resource": {"uri": "test://embedded-resource",
                    "mimeType": "text/plain", "text": "This is an embedded resource content."}}]),
        ),
        (
            "test_multiple_content_types",
            json!([
                {"type": "text", "text": "Multiple content types test:"},
                {"type": "image", "data": IMAGE, "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://mixed-content-resource",
                 "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}},
            ]),
        ),
        ("test_logging_tool", text_content("Logging evaluated")),
        (
            "test_trigger_tool_change",
            text_content("Mutation triggered"),
        ),
    ];
    for (tool, content) in cases {
        let reply = send(&router, tool_call(1, tool, json!({}))).await;
        // JSON, not a stream: nothing (e.g. a log without a logLevel) came first.
        assert_eq!(reply.messages.len(), 1, "{tool}: {}", reply.text);
        let result = reply.result();
        assert_eq!(result["resultType"], "complete", "{tool}");
        assert_eq!(result["content"], content, "{tool}");
        assert_ne!(result["isError"], true, "{tool}");
    }
}

#[tokio::test]
async fn error_tool_is_a_result_with_is_error() {
    let router = router();
    let reply = send(&router, tool_call(7, "test_error_handling", json!({}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.last()["id"], 7);
    let result = reply.result();
    assert_eq!(result["isError"], true);
    assert_eq!(
        result["content"],
        text_content("This tool intentionally returns an error for testing")
    );
}

#[tokio::test]
async fn unknown_tool_and_missing_arguments_are_invalid_params() {
    let router = router();
    let reply = send(&router, tool_call(3, "no_such_tool", json!({}))).await;
    assert_eq!(error_of(&reply)["code"], -32602);
    assert_eq!(reply.last()["id"], 3);
    let reply = send(&router, tool_call(4, "test_header_param", json!({}))).await;
    assert_eq!(error_of(&reply)["code"], -32602);
}

#[tokio::test]
async fn progress_carries_the_token_verbatim_before_the_result() {
    let router = router();
    for token in [json!("progress-test-1"), json!(17)] {
        let extra = json!({"_meta": {"progressToken": token}});
        let reply = send(&router, tool_call(2, "test_tool_with_progress", extra)).await;
        let [first, second, third, last] = reply.messages.as_slice() else {
            panic!(
                "expected three notifications and the result: {}",
                reply.text
            );
        };
        for (message, step) in [(first, 0u8), (second, 50), (third, 100)] {
            assert_eq!(
                message,
                &json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                    "progressToken": token, "progress": f64::from(step), "total": 100.0,
                    "message": format!("Completed step {step} of 100")}}),
            );
        }
        assert_eq!(last["id"], 2);
        let text = match &token {
            Value::String(token) => token.clone(),
            other => other.to_string(),
        };
        assert_eq!(last["result"]["content"], text_content(&text));
    }
}

// ---------------------------------------------------------------------------------
// 2026-07-28: resources, prompts, completion

#[tokio::test]
async fn resource_reads_are_exact() {
    let router = router();
    let cases = [
        (
            "test://static-text",
            json!({"uri": "test://static-text", "mimeType": "text/plain",
                   "text": "This is the content of the static text resource."}),
        ),
        (
            "test://static-binary",
            json!({"uri": "test://static-binary", "mimeType": "image/png", "blob": IMAGE}),
        ),
        (
            "test://template/123/data",
            json!({"uri": "test://template/123/data", "mimeType": "application/json",
                   "text": "{\"data\":\"Data for ID: 123\",\"id\":\"123\",\"templateTest\":true}"}),
        ),
    ];
    for (uri, contents) in cases {
        let result = complete(&router, "resources/read", Some(uri), json!({"uri": uri})).await;
        assert_eq!(result["contents"], json!([contents]), "{uri}");
        assert_eq!(
            (&result["ttlMs"], &result["cacheScope"]),
            (&json!(300_000), &json!("public"))
        );
    }
    let watched = "test://watched-resource";
    let result = complete(
        &router,
        "resources/read",
        Some(watched),
        json!({"uri": watched}),
    )
    .await;
    assert_eq!(result["ttlMs"], 3_000);
    assert!(
        result["contents"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Watched resource content, revision ")
    );
}

#[tokio::test]
async fn missing_resource_is_invalid_params_naming_the_uri() {
    let router = router();
    for uri in [
        "test://nonexistent-resource-for-conformance-testing",
        "test://template//data",
    ] {
        let reply = send(
            &router,
            modern(9, "resources/read", Some(uri), json!({"uri": uri})),
        )
        .await;
        let error = error_of(&reply);
        assert_eq!(error["code"], -32602, "{uri}");
        assert_eq!(error["data"]["uri"], uri);
        assert_eq!(reply.last()["id"], 9);
    }
}

#[tokio::test]
async fn prompts_answer_exact_messages() {
    let router = router();
    let user = |content: Value| json!({"role": "user", "content": content});
    let text = |text: &str| json!({"type": "text", "text": text});
    let cases = [
        (
            "test_simple_prompt",
            json!({}),
            vec![user(text("This is a simple prompt for testing."))],
        ),
        (
            "test_prompt_with_arguments",
            json!({"arg1": "testValue1", "arg2": "testValue2"}),
            vec![user(text(
                "Prompt with arguments: arg1='testValue1', arg2='testValue2'",
            ))],
        ),
        (
            "test_prompt_with_embedded_resource",
            json!({"resourceUri": "test://example-resource"}),
            vec![
                user(
                    json!({"type": "resource", "resource": {"uri": "test://example-resource",
                     "mimeType": "text/plain", "text": "Embedded resource content for testing."}}),
                ),
                user(text("Please process the embedded resource above.")),
            ],
        ),
        (
            "test_prompt_with_image",
            json!({}),
            vec![
                user(json!({"type": "image", "data": IMAGE, "mimeType": "image/png"})),
                user(text("Please analyze the image above.")),
            ],
        ),
    ];
    for (name, arguments, messages) in cases {
        let params = json!({"name": name, "arguments": arguments});
        let result = complete(&router, "prompts/get", Some(name), params).await;
        assert_eq!(result["messages"], json!(messages), "{name}");
    }
    let params = json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "x"}});
    let reply = send(
        &router,
        modern(5, "prompts/get", Some("test_prompt_with_arguments"), params),
    )
    .await;
    assert_eq!(error_of(&reply)["code"], -32602);
}

#[tokio::test]
async fn completion_offers_resource_uris_only_where_they_fit() {
    let router = router();
    let complete_arg = |prompt: &str, argument: &str, value: &str| {
        json!({"ref": {"type": "ref/prompt", "name": prompt},
               "argument": {"name": argument, "value": value}})
    };
    let cases = [
        (
            complete_arg("test_prompt_with_arguments", "arg1", "test"),
            json!({"values": [], "total": 0, "hasMore": false}),
        ),
        (
            complete_arg(
                "test_prompt_with_embedded_resource",
                "resourceUri",
                "test://static",
            ),
            json!({"values": ["test://static-text", "test://static-binary"],
                   "total": 2, "hasMore": false}),
        ),
    ];
    for (params, completion) in cases {
        let result = complete(&router, "completion/complete", None, params).await;
        assert_eq!(result["completion"], completion);
    }
}

// ---------------------------------------------------------------------------------
// 2026-07-28: MRTR (SEP-2322)

/// One MRTR round of `tool`, declaring `caps`: `responses` and `state` go in the
/// retry's params.
async fn round(
    router: &Router,
    tool: &str,
    caps: Value,
    responses: Option<Value>,
    state: Option<&Value>,
) -> Reply {
    retry(router, tool, declaring(caps), responses, state).await
}

/// [`round`] with the rest of the params (`_meta`, `arguments`) given.
async fn retry(
    router: &Router,
    tool: &str,
    mut params: Value,
    responses: Option<Value>,
    state: Option<&Value>,
) -> Reply {
    if let Some(responses) = responses {
        params["inputResponses"] = responses;
    }
    if let Some(state) = state {
        params["requestState"] = state.clone();
    }
    send(router, tool_call(11, tool, params)).await
}

/// A round that must ask again: returns its `inputRequests` and `requestState`.
fn input_required(reply: &Reply) -> (Value, Value) {
    let result = reply.result();
    assert_eq!(result["resultType"], "input_required", "{}", reply.text);
    (
        result["inputRequests"].clone(),
        result["requestState"].clone(),
    )
}

fn keys(requests: &Value) -> Vec<&str> {
    requests
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn elicitation_asks_for_user_name_then_greets() {
    let router = router();
    let tool = "test_input_required_result_elicitation";
    let reply = round(&router, tool, all_caps(), None, None).await;
    let (requests, state) = input_required(&reply);
    assert_eq!(
        requests,
        json!({"user_name": {"method": "elicitation/create", "params": {
            "mode": "form", "message": "What is your name?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}},
                                "required": ["name"]}}}})
    );
    // Stateless: the reference issues no requestState for this tool either.
    assert!(state.is_null(), "{state}");

    let answer = json!({"user_name": accept(json!({"name": "Alice"})),
                        "unknown_extra_key": {"x": 1}});
    let reply = round(&router, tool, all_caps(), Some(answer), None).await;
    assert_eq!(reply.result()["resultType"], "complete");
    assert_eq!(only_text(reply.result()), "Hello, Alice!");

    // Accepted without the field: said so, not greeted.
    let empty = json!({"user_name": accept(json!({}))});
    let reply = round(&router, tool, all_caps(), Some(empty), None).await;
    assert_eq!(
        only_text(reply.result()),
        "No greeting: the user accepted without a name"
    );

    // A response under the wrong key (or none at all) is no answer: ask again.
    let wrong = json!({"wrong_key": accept(json!({"name": "Mallory"}))});
    for responses in [wrong, Value::Null] {
        let reply = round(&router, tool, all_caps(), Some(responses), None).await;
        assert_eq!(input_required(&reply).0, requests);
    }
}

#[tokio::test]
async fn each_mrtr_tool_completes_with_its_exact_answer() {
    let router = router();
    // tool, keys asked for, whether a requestState is issued, responses, final text.
    let cases = [
        (
            "test_input_required_result_sampling",
            vec!["sample_request"],
            false,
            json!({"sample_request": sampled("The capital of France is Paris.")}),
            "Sampling result: The capital of France is Paris.",
        ),
        (
            "test_input_required_result_list_roots",
            vec!["roots_request"],
            false,
            json!({"roots_request": one_root()}),
            "Found 1 root(s)",
        ),
        (
            "test_input_required_result_request_state",
            vec!["confirm"],
            true,
            json!({"confirm": accept(json!({"ok": true}))}),
            "state-ok: requestState validated",
        ),
        (
            "test_input_required_result_tampered_state",
            vec!["confirm"],
            true,
            json!({"confirm": accept(json!({"ok": true}))}),
            "integrity-ok: state verified",
        ),
        (
            "test_input_required_result_multiple_inputs",
            vec!["client_roots", "greeting", "user_name"],
            true,
            json!({"user_name": accept(json!({"name": "Alice"})),
                   "greeting": sampled("Hello there!"), "client_roots": one_root()}),
            "Name: Alice; Greeting: Hello there!; Roots: 1",
        ),
        (
            "test_input_required_result_capabilities",
            vec!["elicit_input", "roots_input", "sample_input"],
            true,
            json!({"elicit_input": accept(json!({"value": "v"})),
                   "sample_input": sampled("s"), "roots_input": one_root()}),
            "capabilities-ok: received elicit_input,roots_input,sample_input",
        ),
    ];
    for (tool, asked, stateful, responses, text) in cases {
        let reply = round(&router, tool, all_caps(), None, None).await;
        let (requests, state) = input_required(&reply);
        assert_eq!(keys(&requests), asked, "{tool}");
        assert_eq!(state.is_string(), stateful, "{tool}: {state}");
        let state = stateful.then_some(&state);
        let reply = round(&router, tool, all_caps(), Some(responses), state).await;
        assert_eq!(
            reply.result()["resultType"],
            "complete",
            "{tool}: {}",
            reply.text
        );
        assert_eq!(only_text(reply.result()), text, "{tool}");
    }
}

#[tokio::test]
async fn sampling_request_is_exact() {
    let router = router();
    let tool = "test_input_required_result_sampling";
    let reply = round(&router, tool, all_caps(), None, None).await;
    assert_eq!(
        input_required(&reply).0["sample_request"],
        json!({"method": "sampling/createMessage", "params": {
            "messages": [{"role": "user",
                          "content": {"type": "text", "text": "What is the capital of France?"}}],
            "maxTokens": 100}})
    );
}

#[tokio::test]
async fn altered_or_replayed_request_state_is_refused() {
    let router = router();
    let confirm = || Some(json!({"confirm": accept(json!({"ok": true}))}));
    let tampered = "test_input_required_result_tampered_state";
    let other = "test_input_required_result_request_state";
    let (_, state) = input_required(&round(&router, tampered, all_caps(), None, None).await);
    let altered = json!(format!("{}-TAMPERED", state.as_str().unwrap()));
    let (_, foreign) = input_required(&round(&router, other, all_caps(), None, None).await);
    for (tool, state) in [
        (tampered, &altered),
        (tampered, &json!("forged")),
        // Sealed for another tool: the seal binds the state to the tool that issued it.
        (tampered, &foreign),
        (other, &state),
    ] {
        let reply = round(&router, tool, all_caps(), confirm(), Some(state)).await;
        let error = error_of(&reply);
        assert_eq!(error["code"], -32602, "{tool} {state}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("requestState integrity check failed"),
            "{error}"
        );
        assert_eq!(reply.last()["id"], 11);
    }
    // Answers without the state that asked for them are not trusted: ask afresh.
    let reply = round(&router, tampered, all_caps(), confirm(), None).await;
    let (requests, state) = input_required(&reply);
    assert_eq!(keys(&requests), ["confirm"]);
    assert!(state.is_string());
}

#[tokio::test]
async fn multi_round_gets_a_new_state_each_round() {
    let router = router();
    let tool = "test_input_required_result_multi_round";
    let reply = round(&router, tool, all_caps(), None, None).await;
    let (requests, first) = input_required(&reply);
    assert_eq!(
        requests["step1"]["params"]["message"],
        "Step 1: What is your name?"
    );
    let name = json!({"step1": accept(json!({"name": "Alice"}))});
    let reply = round(&router, tool, all_caps(), Some(name), Some(&first)).await;
    let (requests, second) = input_required(&reply);
    assert_eq!(keys(&requests), ["step2"]);
    assert_eq!(
        requests["step2"]["params"]["message"],
        "Step 2: What is your favorite color?"
    );
    assert!(second.is_string() && first.is_string());
    assert_ne!(first, second);
    let color = json!({"step2": accept(json!({"color": "blue"}))});
    let reply = round(&router, tool, all_caps(), Some(color), Some(&second)).await;
    assert_eq!(
        only_text(reply.result()),
        "Multi-round complete for Alice who likes blue"
    );
}

#[tokio::test]
async fn only_declared_capabilities_are_asked_for() {
    let router = router();
    let tool = "test_input_required_result_capabilities";
    let reply = round(&router, tool, json!({"sampling": {}}), None, None).await;
    let (requests, _) = input_required(&reply);
    assert_eq!(keys(&requests), ["sample_input"]);
    assert_eq!(requests["sample_input"]["method"], "sampling/createMessage");
    let reply = round(&router, tool, json!({}), None, None).await;
    assert_eq!(
        only_text(reply.result()),
        "capabilities-ok: the client declared none of elicitation, sampling or roots, so nothing was asked"
    );
}

#[tokio::test]
async fn undeclared_capability_is_400_and_32021() {
    let router = router();
    for (tool, needs) in [
        ("test_missing_capability", "sampling"),
        ("test_input_required_result_elicitation", "elicitation"),
        ("test_input_required_result_list_roots", "roots"),
    ] {
        let reply = round(&router, tool, json!({}), None, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{tool}");
        let error = error_of(&reply);
        assert_eq!(error["code"], -32021, "{tool}");
        assert_eq!(
            error["data"]["requiredCapabilities"],
            json!({needs: {}}),
            "{tool}"
        );
        assert_eq!(reply.last()["id"], 11);
    }
    let reply = round(
        &router,
        "test_missing_capability",
        json!({"sampling": {}}),
        None,
        None,
    )
    .await;
    assert_eq!(
        only_text(reply.result()),
        "Success: the client declared sampling"
    );
}

#[tokio::test]
async fn declined_and_cancelled_elicitations_are_not_accepted() {
    let router = router();
    for (action, done) in [("decline", "declined"), ("cancel", "cancelled")] {
        let answer = json!({"action": action});
        let cases = [
            (
                "test_elicitation",
                "response",
                format!("User response: action={action}, content={{}}"),
            ),
            (
                "test_input_required_result_elicitation",
                "user_name",
                format!("No greeting: the user {done}"),
            ),
            (
                "test_input_required_result_multi_round",
                "step1",
                format!("Multi-round ended at step 1: the user {done}"),
            ),
            (
                "test_input_required_result_request_state",
                "confirm",
                "state-ok: requestState validated, but the user did not confirm".to_owned(),
            ),
        ];
        for (tool, key, text) in cases {
            let mut params = declaring(all_caps());
            params["arguments"] = json!({"message": "Please provide your information"});
            let first = retry(&router, tool, params.clone(), None, None).await;
            let (_, state) = input_required(&first);
            let state = state.is_string().then_some(&state);
            let answer = Some(json!({key: answer}));
            let reply = retry(&router, tool, params, answer, state).await;
            assert_eq!(only_text(reply.result()), text, "{tool} {action}");
        }
    }
}

#[tokio::test]
async fn malformed_input_responses_are_not_answers() {
    let router = router();
    let tool = "test_input_required_result_elicitation";
    for bad in [json!(12345), json!("Alice"), json!({"action": "maybe"})] {
        let reply = round(
            &router,
            tool,
            all_caps(),
            Some(json!({"user_name": bad})),
            None,
        )
        .await;
        let error = error_of(&reply);
        assert_eq!(error["code"], -32602, "{bad}");
        assert_eq!(error["data"]["inputResponse"], "user_name", "{bad}");
    }
}

#[tokio::test]
async fn prompt_asks_for_context_then_completes() {
    let router = router();
    let name = "test_input_required_result_prompt";
    let get = |extra: Value| {
        let mut params = declaring(all_caps());
        params["name"] = json!(name);
        if let Value::Object(extra) = extra {
            params.as_object_mut().unwrap().extend(extra);
        }
        modern(3, "prompts/get", Some(name), params)
    };
    let reply = send(&router, get(json!({}))).await;
    let (requests, _) = input_required(&reply);
    assert_eq!(
        requests["user_context"]["params"]["message"],
        "What context should the prompt use?"
    );
    let answer =
        json!({"inputResponses": {"user_context": accept(json!({"context": "test context"}))}});
    let reply = send(&router, get(answer)).await;
    assert_eq!(
        reply.result()["messages"],
        json!([{"role": "user", "content": {"type": "text", "text": "Prompt with context: test context"}}])
    );
}

// ---------------------------------------------------------------------------------
// 2026-07-28: subscriptions/listen

/// Opens a listen stream for `filter` and checks its acknowledgement honours `honoured`.
async fn listen(router: &Router, id: i64, filter: Value, honoured: Value) -> Stream {
    let params = json!({"notifications": filter});
    let mut stream = Stream::open(router, modern(id, "subscriptions/listen", None, params)).await;
    let ack = stream.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        ack,
        json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
               "params": {"_meta": {SUBSCRIPTION_ID: id}, "notifications": honoured}})
    );
    stream
}

async fn trigger(router: &Router, tool: &str) {
    let reply = send(router, tool_call(50, tool, json!({}))).await;
    assert_eq!(only_text(reply.result()), "Mutation triggered");
}

fn tagged(method: &str, id: i64) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": {"_meta": {SUBSCRIPTION_ID: id}}})
}

#[tokio::test]
async fn listen_delivers_only_what_the_filter_asks_for() {
    let router = router();
    let on = json!({"toolsListChanged": true});
    let mut tools = listen(&router, 42, on.clone(), on).await;
    let on = json!({"promptsListChanged": true});
    let mut prompts = listen(&router, 43, on.clone(), on).await;

    trigger(&router, "test_trigger_tool_change").await;
    let message = tools.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(message, tagged("notifications/tools/list_changed", 42));
    assert_eq!(prompts.next(Duration::from_millis(500)).await, None);

    trigger(&router, "test_trigger_prompt_change").await;
    let message = prompts.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(message, tagged("notifications/prompts/list_changed", 43));
    assert_eq!(tools.next(Duration::from_millis(500)).await, None);
}

#[tokio::test]
async fn listen_honours_only_existing_resources_and_reports_updates() {
    let router = router();
    let watched = "test://watched-resource";
    let filter = json!({"resourceSubscriptions": [watched, "test://nope"]});
    let honoured = json!({"resourceSubscriptions": [watched]});
    let mut stream = listen(&router, 44, filter, honoured).await;
    // The watched resource changes every 3 seconds.
    let update = stream.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        update,
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
               "params": {"_meta": {SUBSCRIPTION_ID: 44}, "uri": watched}})
    );
}

// ---------------------------------------------------------------------------------
// 2025-11-25 sessions

async fn session(router: &Router, capabilities: Value) -> String {
    testing::open_session(router, capabilities).await.unwrap()
}

fn request(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test]
async fn initialize_answers_version_capabilities_and_identity() {
    let router = router();
    let init = request(
        0,
        "initialize",
        json!({"protocolVersion": LEGACY, "capabilities": {},
               "clientInfo": {"name": "answers", "version": "1"}}),
    );
    let reply = send(&router, post().body(Body::from(init.to_string())).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.contains_key("mcp-session-id"));
    let result = reply.result();
    assert_eq!(result["protocolVersion"], LEGACY);
    assert_eq!(result["capabilities"], capabilities());
    assert_eq!(
        result["serverInfo"]["name"],
        "portcullis-conformance-fixture"
    );
    assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn session_utilities_answer_exactly_empty_results() {
    let router = router();
    let session = session(&router, json!({})).await;
    let watched = json!({"uri": "test://watched-resource"});
    for (method, params) in [
        ("ping", json!({})),
        ("logging/setLevel", json!({"level": "info"})),
        ("resources/subscribe", watched.clone()),
        ("resources/unsubscribe", watched),
    ] {
        let reply = send(&router, legacy(&session, &request(5, method, params))).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}");
        assert_eq!(
            reply.last(),
            &json!({"jsonrpc": "2.0", "id": 5, "result": {}}),
            "{method}"
        );
    }
    let missing = request(6, "resources/subscribe", json!({"uri": "test://nope"}));
    let reply = send(&router, legacy(&session, &missing)).await;
    assert_eq!(error_of(&reply)["data"]["uri"], "test://nope");
}

/// The session's standalone GET stream, where rmcp sends notifications that are not
/// tied to a request (logs, list changes).
async fn standalone(router: &Router, session: &str) -> Stream {
    let request = Request::get("/mcp")
        .header("host", "127.0.0.1:8080")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY)
        .body(Body::empty())
        .unwrap();
    Stream::open(router, request).await
}

#[tokio::test]
async fn session_logs_follow_set_level_and_list_changes_reach_the_session() {
    let router = router();
    let session = session(&router, json!({})).await;
    let mut stream = standalone(&router, &session).await;
    for (level, logged) in [("warning", 0), ("info", 3)] {
        let set = request(1, "logging/setLevel", json!({"level": level}));
        send(&router, legacy(&session, &set)).await;
        let body = call(2, "test_tool_with_logging", json!({}));
        let reply = send(&router, legacy(&session, &body)).await;
        assert_eq!(
            only_text(reply.result()),
            "Tool with logging executed successfully"
        );
        let expected = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for data in &expected[..logged] {
            let log = stream.next(Duration::from_secs(5)).await.unwrap();
            assert_eq!(
                log,
                json!({"jsonrpc": "2.0", "method": "notifications/message",
                       "params": {"level": "info", "logger": "conformance-fixture", "data": data}})
            );
        }
        assert_eq!(
            stream.next(Duration::from_millis(300)).await,
            None,
            "{level}"
        );
    }
    let body = call(3, "test_trigger_tool_change", json!({}));
    send(&router, legacy(&session, &body)).await;
    assert_eq!(
        stream.next(Duration::from_secs(5)).await.unwrap(),
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    );
}

/// Calls a tool on a 2025 session with `capabilities`, waits for the server's request to
/// the client, answers it with `answer`, and returns that request (its method and
/// params) and the call's result.
async fn ask_on_session(
    tool: &str,
    args: Value,
    capabilities: Value,
    answer: Value,
) -> (Value, Value) {
    let router = router();
    let session = session(&router, capabilities).await;
    let mut stream = Stream::open(&router, legacy(&session, &call(21, tool, args))).await;
    // The first message with an id: the server's request, or the call's own result.
    let asked = stream.until(|m| m.get("id").is_some()).await;
    assert!(
        asked["method"].is_string(),
        "the call ended without asking: {asked}"
    );
    let response = json!({"jsonrpc": "2.0", "id": asked["id"], "result": answer});
    let reply = send(&router, legacy(&session, &response)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let done = stream.until(|m| m["id"] == 21).await;
    // rmcp adds a `_meta` progressToken of its own to every request it sends.
    let mut request = json!({"method": asked["method"], "params": asked["params"]});
    request["params"].as_object_mut().unwrap().remove("_meta");
    (request, done["result"].clone())
}

#[tokio::test]
async fn session_sampling_round_trip() {
    let prompt = "What is the capital of France?";
    let (asked, result) = ask_on_session(
        "test_sampling",
        json!({"prompt": prompt}),
        json!({"sampling": {}}),
        sampled("Paris"),
    )
    .await;
    assert_eq!(
        asked,
        json!({"method": "sampling/createMessage", "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": 100}})
    );
    assert_eq!(only_text(&result), "LLM response: Paris");
}

#[tokio::test]
async fn session_elicitation_round_trips() {
    let message = "Please provide your information";
    let cases = [
        (
            accept(json!({"response": "yes"})),
            r#"User response: action=accept, content={"response":"yes"}"#,
        ),
        (
            json!({"action": "decline"}),
            "User response: action=decline, content={}",
        ),
    ];
    for (answer, text) in cases {
        let (asked, result) = ask_on_session(
            "test_elicitation",
            json!({"message": message}),
            json!({"elicitation": {}}),
            answer,
        )
        .await;
        assert_eq!(
            asked,
            json!({"method": "elicitation/create", "params": {
                "mode": "form", "message": message, "requestedSchema": {"type": "object",
                    "properties": {"response": {"type": "string", "description": "User's response"}},
                    "required": ["response"]}}})
        );
        assert_eq!(only_text(&result), text);
    }
}

#[tokio::test]
async fn session_without_the_capability_is_refused() {
    let router = router();
    let session = session(&router, json!({})).await;
    let body = call(3, "test_sampling", json!({"prompt": "p"}));
    let reply = send(&router, legacy(&session, &body)).await;
    let error = error_of(&reply);
    assert_eq!(error["code"], -32021);
    assert_eq!(
        error["data"]["requiredCapabilities"],
        json!({"sampling": {}})
    );
}
