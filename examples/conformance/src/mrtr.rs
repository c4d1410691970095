//! Asking the client for input (elicitation, sampling, roots) on either protocol era.
//!
//! - 2025 sessions: the server sends the request to the client on the call's own SSE
//!   stream and waits for the answer.
//! - 2026-07-28 (stateless): the server may not send requests; it answers with an
//!   `InputRequiredResult` (MRTR, SEP-2322) and reads the answers from
//!   `inputResponses` when the client retries.
//!
//! Tools describe what they need once, as keyed [`InputRequest`]s, and [`ask`] does
//! whichever the era calls for. On both eras the client's answers arrive as the JSON
//! of an `ElicitResult`, `CreateMessageResult` or `ListRootsResult`.

// Sampling and roots are deprecated by SEP-2577 but are still the protocol's requests.
#![allow(deprecated)]

use std::collections::BTreeMap;

use rmcp::ErrorData;
use rmcp::RoleServer;
use rmcp::model::{
    CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequest,
    ElicitRequestParams, ElicitResult, ErrorCode, InputRequest, InputRequests, InputRequiredResult,
    InputResponses, ListRootsRequest, ListRootsResult, ProtocolVersion, SamplingMessage,
};
use rmcp::service::RequestContext;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// True when the request uses the 2026-07-28 stateless lifecycle.
pub fn is_stateless(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// An `elicitation/create` form request; `schema` is the `requestedSchema`.
pub fn elicit(message: &str, schema: Value) -> Result<InputRequest, ErrorData> {
    let requested_schema = serde_json::from_value(schema).map_err(|err| {
        ErrorData::internal_error(format!("fixture bug: bad elicitation schema: {err}"), None)
    })?;
    Ok(InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema,
        },
    )))
}

/// An `elicitation/create` form request for one required string field.
pub fn elicit_string(message: &str, field: &str) -> Result<InputRequest, ErrorData> {
    elicit(
        message,
        json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}),
    )
}

/// A `sampling/createMessage` request with one user message.
pub fn sample(prompt: &str, max_tokens: u32) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(prompt)],
        max_tokens,
    )))
}

/// A `roots/list` request.
pub fn list_roots() -> InputRequest {
    InputRequest::ListRoots(ListRootsRequest::default())
}

/// The client capability an input request relies on.
fn capability_of(request: &InputRequest) -> &'static str {
    match request {
        InputRequest::CreateMessage(_) => "sampling",
        InputRequest::ListRoots(_) => "roots",
        _ => "elicitation",
    }
}

/// Which of `sampling`, `elicitation`, `roots` the request's client declared (from the
/// request `_meta` on 2026-07-28, from `initialize` on a 2025 session).
pub fn declared(ctx: &RequestContext<RoleServer>, capability: &str) -> bool {
    let Some(caps) = ctx.client_capabilities() else {
        return false;
    };
    match capability {
        "sampling" => caps.sampling.is_some(),
        "elicitation" => caps.elicitation.is_some(),
        "roots" => caps.roots.is_some(),
        _ => false,
    }
}

/// -32021 naming the capabilities the client must declare (HTTP 400 on 2026-07-28).
pub fn missing_capabilities(names: &[&str]) -> ErrorData {
    let required: Map<String, Value> = names
        .iter()
        .map(|name| ((*name).to_owned(), json!({})))
        .collect();
    ErrorData::new(
        ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!(
            "this request needs the client capabilities [{}], which the client did not declare; \
             declare them in _meta io.modelcontextprotocol/clientCapabilities (or at initialize)",
            names.join(", ")
        ),
        Some(json!({"requiredCapabilities": required})),
    )
}

/// Fails with -32021 unless the client declared every capability the requests need.
pub fn require_capabilities(
    ctx: &RequestContext<RoleServer>,
    requests: &[(&str, InputRequest)],
) -> Result<(), ErrorData> {
    let mut missing: Vec<&str> = requests
        .iter()
        .map(|(_, request)| capability_of(request))
        .filter(|capability| !declared(ctx, capability))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing_capabilities(&missing))
    }
}

/// What came of asking.
#[derive(Debug)]
pub enum Outcome {
    /// Every request has a valid answer.
    Answered(Answers),
    /// 2026-07-28 only: these must go back to the client in an `InputRequiredResult`.
    NeedInput(InputRequests),
}

/// Gets answers to `requests` from the client: directly on a 2025 session, from the
/// retry's `inputResponses` on 2026-07-28. A response that is missing re-requests all
/// of them (the server keeps no state between rounds); a malformed one is -32602.
/// Keys in `responses` that were not asked for are ignored.
pub async fn ask(
    ctx: &RequestContext<RoleServer>,
    responses: Option<&InputResponses>,
    requests: Vec<(&str, InputRequest)>,
) -> Result<Outcome, ErrorData> {
    require_capabilities(ctx, &requests)?;
    if !is_stateless(ctx) {
        let mut answers = BTreeMap::new();
        for (key, request) in requests {
            answers.insert(key.to_owned(), ask_session_peer(ctx, key, request).await?);
        }
        return Ok(Outcome::Answered(Answers(answers)));
    }

    let mut answers = BTreeMap::new();
    for (key, request) in &requests {
        let Some(response) = responses.and_then(|r| r.get(*key)) else {
            continue;
        };
        validate_response(key, request, response)?;
        answers.insert((*key).to_owned(), response.clone());
    }
    if answers.len() == requests.len() {
        Ok(Outcome::Answered(Answers(answers)))
    } else {
        Ok(Outcome::NeedInput(
            requests
                .into_iter()
                .map(|(key, request)| (key.to_owned(), request))
                .collect(),
        ))
    }
}

/// An `InputRequiredResult` carrying `requests` and, when given, `state`.
pub fn input_required(requests: InputRequests, state: Option<String>) -> InputRequiredResult {
    InputRequiredResult::new(Some(requests), state)
}

/// The -32602 for a `requestState` this server did not issue (or that was altered).
pub fn tampered_state() -> ErrorData {
    ErrorData::invalid_params(
        "requestState integrity check failed: it was not issued by this server for this request, \
         was altered, or has expired; retry without requestState to start over",
        None,
    )
}

/// Sends one request to a 2025 client on the current call's stream and returns its
/// answer as JSON.
async fn ask_session_peer(
    ctx: &RequestContext<RoleServer>,
    key: &str,
    request: InputRequest,
) -> Result<Value, ErrorData> {
    let failed = |err: &dyn std::fmt::Display| {
        ErrorData::internal_error(format!("asking the client for {key:?} failed: {err}"), None)
    };
    let answer = match request {
        InputRequest::CreateMessage(request) => ctx
            .peer
            .create_message(request.params)
            .await
            .map_err(|err| failed(&err))
            .and_then(|result| to_json(&result))?,
        InputRequest::ListRoots(_) => ctx
            .peer
            .list_roots()
            .await
            .map_err(|err| failed(&err))
            .and_then(|result| to_json(&result))?,
        InputRequest::Elicitation(request) => ctx
            .peer
            .create_elicitation(request.params)
            .await
            .map_err(|err| failed(&err))
            .and_then(|result| to_json(&result))?,
        _ => return Err(failed(&"unsupported input request kind")),
    };
    Ok(answer)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ErrorData> {
    serde_json::to_value(value).map_err(|err| ErrorData::internal_error(err.to_string(), None))
}

/// Checks that a client's response has the shape of the result its request asks for.
fn validate_response(key: &str, request: &InputRequest, response: &Value) -> Result<(), ErrorData> {
    fn check<T: DeserializeOwned>(response: &Value) -> Result<(), String> {
        if !response.is_object() {
            return Err("it is not an object".to_owned());
        }
        serde_json::from_value::<T>(response.clone())
            .map(drop)
            .map_err(|err| err.to_string())
    }
    let (expected, verdict) = match request {
        InputRequest::CreateMessage(_) => (
            "CreateMessageResult",
            check::<CreateMessageResult>(response),
        ),
        InputRequest::ListRoots(_) => ("ListRootsResult", check::<ListRootsResult>(response)),
        _ => ("ElicitResult", check::<ElicitResult>(response)),
    };
    verdict.map_err(|why| {
        ErrorData::invalid_params(
            format!("inputResponses[{key:?}] must be an {expected}, but {why}"),
            Some(json!({"inputResponse": key})),
        )
    })
}

/// The client's answers, keyed like the requests.
#[derive(Debug, Default)]
pub struct Answers(BTreeMap<String, Value>);

impl Answers {
    pub fn get(&self, key: &str) -> &Value {
        self.0.get(key).unwrap_or(&Value::Null)
    }

    /// The keys answered, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// An elicitation's `action` (`accept`, `decline` or `cancel`).
    pub fn action(&self, key: &str) -> &str {
        self.get(key)["action"].as_str().unwrap_or("cancel")
    }

    /// An elicitation's `content` (`{}` when the user did not accept).
    pub fn content(&self, key: &str) -> Value {
        match &self.get(key)["content"] {
            Value::Object(map) => Value::Object(map.clone()),
            _ => json!({}),
        }
    }

    /// A string field of an accepted elicitation; otherwise what the user did instead
    /// (`declined`, `cancelled`, or `accepted without a <field>`), so a result never
    /// passes a refusal off as an answer.
    pub fn field(&self, key: &str, field: &str) -> Result<String, String> {
        match self.action(key) {
            "accept" => self.get(key)["content"][field]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("accepted without a {field}")),
            "decline" => Err("declined".to_owned()),
            _ => Err("cancelled".to_owned()),
        }
    }

    /// The text a sampling answer carries (its first text block).
    pub fn sampled_text(&self, key: &str) -> Option<String> {
        let content = &self.get(key)["content"];
        let block = match content {
            Value::Array(blocks) => blocks.iter().find(|b| b["type"] == "text"),
            other => Some(other),
        };
        block.and_then(|b| b["text"].as_str()).map(str::to_owned)
    }

    /// How many roots a `roots/list` answer lists.
    pub fn root_count(&self, key: &str) -> usize {
        self.get(key)["roots"].as_array().map_or(0, Vec::len)
    }
}
