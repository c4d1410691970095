//! `conformance-fixture`: the server the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`) is pointed at.
//!
//! Why it exists: the suite tests a server against a fixed contract (the tools,
//! resources and prompts of its reference "everything" server). Portcullis's own tools
//! are not that contract, so this binary serves it instead, on exactly the code the
//! product runs: `portcullis::config::ServeArgs` for flags (hence the same loopback
//! Origin/Host policy) and `portcullis::server::run`, i.e. rmcp's Streamable HTTP
//! service behind Portcullis's gate. A conformance failure here is therefore a
//! failure of Portcullis's host (or of rmcp), not of a test-only server.
//!
//! Both protocol eras are served from one endpoint: 2025 sessions (initialize,
//! `Mcp-Session-Id`, server-to-client requests on the call's SSE stream) and the
//! stateless 2026-07-28 wire (per-request `_meta`, MRTR, `subscriptions/listen`).
//!
//! Run: `conformance-fixture --bind 127.0.0.1:3999`, then point the suite at
//! `http://127.0.0.1:3999/mcp`.
//!
//! Modules: `server` (the rmcp `ServerHandler`), `catalog` (tool names, descriptions,
//! schemas, order), `tools` (tools that answer on their own), `asking` (tools that need
//! the client), `mrtr` (asking the client on either era), `prompts`, `resources`, and
//! `shared` (process-wide state: the `requestState` key and the change channel).

mod asking;
mod catalog;
mod mrtr;
mod prompts;
mod resources;
mod server;
mod shared;
mod tools;

use std::process::ExitCode;

use clap::Parser;
use portcullis::config::ServeArgs;

use crate::server::Fixture;
use crate::shared::Shared;

/// Serves the MCP conformance suite's reference server contract on Portcullis's host.
#[derive(Debug, Parser)]
#[command(name = "conformance-fixture", version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIXTURE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let config = match cli.serve.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("conformance-fixture: {err}");
            return ExitCode::from(2);
        }
    };
    let shared = match Shared::new() {
        Ok(shared) => shared,
        Err(err) => {
            eprintln!("conformance-fixture: cannot create the requestState key: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("conformance-fixture: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        tokio::spawn(shared.clone().run_watched_resource());
        portcullis::server::run(
            config,
            move || Fixture::new(shared.clone()),
            portcullis::server::shutdown_signal(),
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("conformance-fixture: {err}");
            ExitCode::FAILURE
        }
    }
}
