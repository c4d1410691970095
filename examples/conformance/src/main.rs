//! The `conformance-fixture` binary: parses Portcullis's serve flags and serves the
//! fixture (the library half, `lib.rs`) with `portcullis::server::run`.
//!
//! Run: `conformance-fixture --bind 127.0.0.1:3999`, then point the suite at
//! `http://127.0.0.1:3999/mcp`.

use std::process::ExitCode;

use clap::Parser;
use portcullis::config::ServeArgs;

/// Serves the MCP conformance suite's reference server contract on Portcullis's host.
#[derive(Debug, Parser)]
#[command(name = "conformance-fixture", version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::server::init_tracing_from("FIXTURE_LOG", "info");

    portcullis::server::serve_main(
        "conformance-fixture",
        cli.serve,
        conformance_fixture::factory,
    )
}
