//! Tools that need the client: sampling, elicitation (with SEP-1034 defaults and
//! SEP-1330 enums), roots, and the SEP-2322 multi round-trip tools. Each works on both
//! eras through [`mrtr::ask`]; the `requestState` ones seal their state with the
//! process key so a forged or altered state is refused.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, InputRequest,
    ProgressNotificationParam,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::mrtr::{self, Answers, Outcome, ask, input_required};
use crate::server::Fixture;

type Ctx = RequestContext<RoleServer>;

fn text(message: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(message)]).into())
}

fn string_arg<'a>(params: &'a CallToolRequestParams, name: &str) -> Result<&'a str, ErrorData> {
    params
        .arguments
        .as_ref()
        .and_then(|args| args.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!("missing string argument {name:?}; pass it in arguments"),
                None,
            )
        })
}

/// Asks once and either finishes with `done(answers)` or hands the requests back.
async fn ask_then(
    ctx: &Ctx,
    params: &CallToolRequestParams,
    requests: Vec<(&str, InputRequest)>,
    done: impl FnOnce(&Answers) -> String,
) -> Result<CallToolResponse, ErrorData> {
    match ask(ctx, params.input_responses.as_ref(), requests).await? {
        Outcome::Answered(answers) => text(done(&answers)),
        Outcome::NeedInput(requests) => Ok(input_required(requests, None).into()),
    }
}

fn elicitation_summary(answers: &Answers, key: &str) -> String {
    format!(
        "action={}, content={}",
        answers.action(key),
        answers.content(key)
    )
}

pub async fn sampling(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let prompt = string_arg(params, "prompt")?;
    ask_then(
        ctx,
        params,
        vec![("completion", mrtr::sample(prompt, 100))],
        |a| {
            format!(
                "LLM response: {}",
                a.sampled_text("completion")
                    .unwrap_or_else(|| "(no text)".into())
            )
        },
    )
    .await
}

pub async fn elicitation(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let message = string_arg(params, "message")?;
    let schema = json!({
        "type": "object",
        "properties": {"response": {"type": "string", "description": "User's response"}},
        "required": ["response"],
    });
    let request = mrtr::elicit(message, schema)?;
    ask_then(ctx, params, vec![("response", request)], |a| {
        format!("User response: {}", elicitation_summary(a, "response"))
    })
    .await
}

/// SEP-1034: a default for every primitive type.
pub async fn elicitation_defaults(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": true},
        },
        "required": [],
    });
    let request = mrtr::elicit(
        "Please review and update the form fields with defaults",
        schema,
    )?;
    ask_then(ctx, params, vec![("form", request)], |a| {
        format!("Elicitation completed: {}", elicitation_summary(a, "form"))
    })
    .await
}

/// SEP-1330: every enum shape (untitled, titled, legacy, multi-select).
pub async fn elicitation_enums(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Select one option",
                "enum": ["option1", "option2", "option3"],
            },
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {"anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]},
            },
        },
        "required": [],
    });
    let request = mrtr::elicit("Please select options from the enum fields", schema)?;
    ask_then(ctx, params, vec![("form", request)], |a| {
        format!("Elicitation completed: {}", elicitation_summary(a, "form"))
    })
    .await
}

pub async fn ask_elicitation(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let request = mrtr::elicit_string("What is your name?", "name")?;
    ask_then(ctx, params, vec![("user_name", request)], |a| {
        match a.field("user_name", "name") {
            Ok(name) => format!("Hello, {name}!"),
            Err(why) => format!("No greeting: the user {why}"),
        }
    })
    .await
}

pub async fn ask_sampling(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let request = mrtr::sample("What is the capital of France?", 100);
    ask_then(ctx, params, vec![("sample_request", request)], |a| {
        format!(
            "Sampling result: {}",
            a.sampled_text("sample_request")
                .unwrap_or_else(|| "(no text)".into())
        )
    })
    .await
}

pub async fn ask_roots(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    ask_then(
        ctx,
        params,
        vec![("roots_request", mrtr::list_roots())],
        |a| format!("Found {} root(s)", a.root_count("roots_request")),
    )
    .await
}

/// The `requestState` of a single-round tool. It carries nothing but its seal, which
/// binds it to the tool that issued it.
#[derive(Debug, Serialize, Deserialize)]
struct Issued;

/// Where a sealed single-round ask stands.
enum Sealed {
    Answered(Answers),
    /// The `InputRequiredResult` to send back.
    Waiting(CallToolResponse),
}

/// One round that carries a sealed `requestState`: the state must come back intact
/// (-32602 otherwise) before the answers are trusted, and on 2026-07-28 a retry without
/// it starts over.
async fn ask_sealed(
    fixture: &Fixture,
    ctx: &Ctx,
    params: &CallToolRequestParams,
    requests: Vec<(&str, InputRequest)>,
) -> Result<Sealed, ErrorData> {
    let owner = params.name.as_ref();
    let state_ok = match params.request_state.as_deref() {
        None => false,
        Some(sealed) => {
            fixture
                .shared
                .open::<Issued>(owner, sealed)
                .ok_or_else(mrtr::tampered_state)?;
            true
        }
    };
    // Answers without the state that asked for them are not trusted: ask afresh.
    let responses = params.input_responses.as_ref().filter(|_| state_ok);
    match ask(ctx, responses, requests).await? {
        Outcome::Answered(answers) => Ok(Sealed::Answered(answers)),
        Outcome::NeedInput(requests) => {
            let state = fixture
                .shared
                .seal(owner, &Issued)
                .map_err(|err| ErrorData::internal_error(err, None))?;
            Ok(Sealed::Waiting(
                input_required(requests, Some(state)).into(),
            ))
        }
    }
}

fn confirm_request() -> Result<InputRequest, ErrorData> {
    mrtr::elicit(
        "Please confirm",
        json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}),
    )
}

fn confirmed(answers: &Answers) -> bool {
    answers.action("confirm") == "accept" && answers.get("confirm")["content"]["ok"] == true
}

pub async fn ask_with_state(
    fixture: &Fixture,
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    match ask_sealed(fixture, ctx, params, vec![("confirm", confirm_request()?)]).await? {
        Sealed::Answered(answers) if confirmed(&answers) => {
            text("state-ok: requestState validated")
        }
        Sealed::Answered(_) => {
            text("state-ok: requestState validated, but the user did not confirm")
        }
        Sealed::Waiting(pending) => Ok(pending),
    }
}

pub async fn ask_tamper_proof(
    fixture: &Fixture,
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    match ask_sealed(fixture, ctx, params, vec![("confirm", confirm_request()?)]).await? {
        Sealed::Answered(answers) if confirmed(&answers) => text("integrity-ok: state verified"),
        Sealed::Answered(_) => text("integrity-ok: state verified, but the user did not confirm"),
        Sealed::Waiting(pending) => Ok(pending),
    }
}

pub async fn ask_multiple(
    fixture: &Fixture,
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let requests = vec![
        (
            "user_name",
            mrtr::elicit_string("What is your name?", "name")?,
        ),
        ("greeting", mrtr::sample("Generate a greeting", 50)),
        ("client_roots", mrtr::list_roots()),
    ];
    match ask_sealed(fixture, ctx, params, requests).await? {
        Sealed::Answered(a) => text(format!(
            "Name: {}; Greeting: {}; Roots: {}",
            a.field("user_name", "name")
                .unwrap_or_else(|why| format!("({why})")),
            a.sampled_text("greeting")
                .unwrap_or_else(|| "(no text)".into()),
            a.root_count("client_roots"),
        )),
        Sealed::Waiting(pending) => Ok(pending),
    }
}

/// Asks only for what the request's client capabilities allow.
pub async fn ask_by_capabilities(
    fixture: &Fixture,
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let mut requests = Vec::new();
    if mrtr::declared(ctx, "elicitation") {
        requests.push((
            "elicit_input",
            mrtr::elicit_string("Elicitation input", "value")?,
        ));
    }
    if mrtr::declared(ctx, "sampling") {
        requests.push(("sample_input", mrtr::sample("Sample request", 50)));
    }
    if mrtr::declared(ctx, "roots") {
        requests.push(("roots_input", mrtr::list_roots()));
    }
    if requests.is_empty() {
        return text(
            "capabilities-ok: the client declared none of elicitation, sampling or roots, so nothing was asked",
        );
    }
    match ask_sealed(fixture, ctx, params, requests).await? {
        Sealed::Answered(answers) => text(format!(
            "capabilities-ok: received {}",
            answers.keys().join(",")
        )),
        Sealed::Waiting(pending) => Ok(pending),
    }
}

/// Where a multi-round conversation stands, sealed into `requestState` between rounds.
#[derive(Debug, Serialize, Deserialize)]
enum Round {
    /// Waiting for the name.
    Name,
    /// Got the name, waiting for the colour.
    Color { name: String },
}

/// Two rounds, each with its own input request and its own (different) `requestState`.
pub async fn ask_multi_round(
    fixture: &Fixture,
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let owner = params.name.as_ref();
    let round = match params.request_state.as_deref() {
        None => Round::Name,
        Some(sealed) => fixture
            .shared
            .open::<Round>(owner, sealed)
            .ok_or_else(mrtr::tampered_state)?,
    };
    let seal = |round: &Round| {
        fixture
            .shared
            .seal(owner, round)
            .map_err(|err| ErrorData::internal_error(err, None))
    };
    let step1 = || mrtr::elicit_string("Step 1: What is your name?", "name");
    let step2 = || mrtr::elicit_string("Step 2: What is your favorite color?", "color");
    let responses = params
        .input_responses
        .as_ref()
        .filter(|_| params.request_state.is_some());

    let name = match round {
        Round::Name => match ask(ctx, responses, vec![("step1", step1()?)]).await? {
            Outcome::NeedInput(requests) => {
                return Ok(input_required(requests, Some(seal(&Round::Name)?)).into());
            }
            Outcome::Answered(a) => {
                let name = match a.field("step1", "name") {
                    Ok(name) => name,
                    Err(why) => {
                        return text(format!("Multi-round ended at step 1: the user {why}"));
                    }
                };
                if mrtr::is_stateless(ctx) {
                    // The colour can only come in the next round.
                    let next = Round::Color { name };
                    let requests = [("step2".to_owned(), step2()?)].into_iter().collect();
                    return Ok(input_required(requests, Some(seal(&next)?)).into());
                }
                name
            }
        },
        Round::Color { name } => name,
    };
    match ask(ctx, responses, vec![("step2", step2()?)]).await? {
        Outcome::NeedInput(requests) => {
            let state = seal(&Round::Color { name })?;
            Ok(input_required(requests, Some(state)).into())
        }
        Outcome::Answered(a) => text(match a.field("step2", "color") {
            Ok(color) => format!("Multi-round complete for {name} who likes {color}"),
            Err(why) => format!("Multi-round ended at step 2: the user {why}"),
        }),
    }
}

/// Needs sampling: refuses with -32021 when the client did not declare it.
pub fn missing_capability(ctx: &Ctx) -> Result<CallToolResponse, ErrorData> {
    if !mrtr::declared(ctx, "sampling") {
        return Err(mrtr::missing_capabilities(&["sampling"]));
    }
    text("Success: the client declared sampling")
}

/// Streams a progress notification (when the request has a progress token), then asks
/// for a confirmation the era's way: never as a request on the 2026 response stream.
pub async fn streaming_elicitation(
    ctx: &Ctx,
    params: &CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    if let Some(token) = ctx.meta.get_progress_token() {
        let progress = ProgressNotificationParam::new(token, 50.0)
            .with_total(100.0)
            .with_message("Streaming: waiting for confirmation");
        if let Err(err) = ctx.peer.notify_progress(progress).await {
            tracing::debug!(%err, "could not report progress");
        }
    }
    let request = mrtr::elicit(
        "Continue streaming?",
        json!({"type": "object", "properties": {"continue": {"type": "boolean"}}, "required": ["continue"]}),
    )?;
    ask_then(ctx, params, vec![("continue", request)], |a| {
        format!("Streaming complete: {}", elicitation_summary(a, "continue"))
    })
    .await
}
