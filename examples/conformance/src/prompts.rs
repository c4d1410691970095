//! Prompts: the suite's four reference prompts plus one that asks the client for input
//! (MRTR on 2026-07-28, an elicitation on the session stream on 2025).

use rmcp::model::{
    ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Prompt,
    PromptArgument, PromptMessage, ResourceContents, Role,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::Value;

use crate::mrtr::{self, Outcome};
use crate::tools::TEST_IMAGE_BASE64;

const SIMPLE: &str = "test_simple_prompt";
const WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
const WITH_RESOURCE: &str = "test_prompt_with_embedded_resource";
const WITH_IMAGE: &str = "test_prompt_with_image";
const ASKS_FOR_INPUT: &str = "test_input_required_result_prompt";

fn argument(name: &str, description: &str) -> PromptArgument {
    PromptArgument::new(name)
        .with_description(description)
        .with_required(true)
}

/// Every prompt, in `prompts/list` order.
pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(SIMPLE, Some("A simple prompt without arguments"), None)
            .with_title("Simple Test Prompt"),
        Prompt::new(
            WITH_ARGUMENTS,
            Some("A prompt with required arguments"),
            Some(vec![
                argument("arg1", "First test argument"),
                argument("arg2", "Second test argument"),
            ]),
        )
        .with_title("Prompt With Arguments"),
        Prompt::new(
            WITH_RESOURCE,
            Some("A prompt that includes an embedded resource"),
            Some(vec![argument(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        )
        .with_title("Prompt With Embedded Resource"),
        Prompt::new(
            WITH_IMAGE,
            Some("A prompt that includes image content"),
            None,
        )
        .with_title("Prompt With Image"),
        Prompt::new(
            ASKS_FOR_INPUT,
            Some("MRTR: prompt that requires elicitation input"),
            None,
        )
        .with_title("Prompt Requiring Input"),
    ]
}

/// Whether `argument` of `prompt` takes a resource URI (and so can be completed).
pub fn completes_resource_uri(prompt: &str, argument: &str) -> bool {
    prompt == WITH_RESOURCE && argument == "resourceUri"
}

fn string_argument<'a>(
    request: &'a GetPromptRequestParams,
    name: &str,
) -> Result<&'a str, ErrorData> {
    request
        .arguments
        .as_ref()
        .and_then(|args| args.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!(
                    "prompt {:?} needs the string argument {name:?}",
                    request.name
                ),
                None,
            )
        })
}

fn complete(messages: Vec<PromptMessage>) -> Result<GetPromptResponse, ErrorData> {
    Ok(GetPromptResult::new(messages).into())
}

pub async fn get(
    request: &GetPromptRequestParams,
    ctx: &RequestContext<RoleServer>,
) -> Result<GetPromptResponse, ErrorData> {
    match request.name.as_str() {
        SIMPLE => complete(vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )]),
        WITH_ARGUMENTS => {
            let arg1 = string_argument(request, "arg1")?;
            let arg2 = string_argument(request, "arg2")?;
            complete(vec![PromptMessage::new_text(
                Role::User,
                format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
            )])
        }
        WITH_RESOURCE => {
            let uri = string_argument(request, "resourceUri")?;
            let resource = ResourceContents::text("Embedded resource content for testing.", uri)
                .with_mime_type("text/plain");
            complete(vec![
                PromptMessage::new(Role::User, ContentBlock::resource(resource)),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ])
        }
        WITH_IMAGE => complete(vec![
            PromptMessage::new(
                Role::User,
                ContentBlock::image(TEST_IMAGE_BASE64, "image/png"),
            ),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]),
        ASKS_FOR_INPUT => {
            let ask = mrtr::elicit_string("What context should the prompt use?", "context")?;
            match mrtr::ask(
                ctx,
                request.input_responses.as_ref(),
                vec![("user_context", ask)],
            )
            .await?
            {
                Outcome::Answered(answers) => {
                    let context = answers
                        .field("user_context", "context")
                        .unwrap_or_else(|why| format!("(none: the user {why})"));
                    complete(vec![PromptMessage::new_text(
                        Role::User,
                        format!("Prompt with context: {context}"),
                    )])
                }
                Outcome::NeedInput(requests) => Ok(mrtr::input_required(requests, None).into()),
            }
        }
        other => Err(ErrorData::invalid_params(
            format!("no prompt named {other:?}; prompts/list shows the available prompts"),
            None,
        )),
    }
}
