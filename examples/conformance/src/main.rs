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
        let factory = conformance_fixture::factory().map_err(std::io::Error::other)?;
        portcullis::server::run(config, factory, portcullis::server::shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("conformance-fixture: {err}");
            ExitCode::FAILURE
        }
    }
}
