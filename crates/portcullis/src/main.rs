//! The `portcullis` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config::{AuthChoice, ServeArgs};
use portcullis::server;
use portcullis::tools::PortcullisTools;

/// Portcullis: a remote MCP server with OAuth 2.1 built in.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the MCP endpoint (default http://127.0.0.1:8080/mcp).
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => {
            // Notes belong to signed-in users and live in the database: without the
            // authorization server (--auth none) there is neither, so only whoami is offered.
            let notes = args.notes && args.auth == AuthChoice::Embedded;
            let tools = if notes {
                PortcullisTools::with_notes
            } else {
                PortcullisTools::new
            };
            server::serve_main("portcullis", args, move || Ok(tools))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        // rmcp logs every stateless request at info; keep its warnings only by default.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
