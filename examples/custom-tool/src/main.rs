//! Your own tool behind Portcullis's OAuth; `greet` needs its own scope (403 step-up, consent
//! text). Takes every `serve` flag: `cargo run -p custom-tool -- --bind 127.0.0.1:8080`.
use clap::Parser;
use portcullis::{config::ServeArgs, server, tools::Caller};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use std::process::ExitCode;
#[derive(Debug, Clone)]
struct Greeter {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Greeter {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// `who` is the verified principal from the access token, never client input.
    #[tool(
        description = "Greets the signed-in user",
        annotations(read_only_hint = true)
    )]
    async fn greet(&self, Caller(who): Caller) -> String {
        format!("Hello, {}!", who.user.as_deref().unwrap_or("stranger"))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Greeter {}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    server::init_tracing();
    let mut config = match Cli::parse().serve.into_config() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    config.require_scope("greet", "greet", "Be greeted by name");
    let serve = server::run(config, Greeter::new, server::shutdown_signal());
    match tokio::runtime::Runtime::new().map(|rt| rt.block_on(serve)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) | Err(e) => fail(e),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("custom-tool: {e}");
    ExitCode::FAILURE
}
