//! `portcullis serve` with two things taken out: the per-tool scope checks and the audit log.
//! Everything else (bearer tokens, the notes tools, the store) is the product's own code.
//! bench/tools.sh measures `tools/call` on it and on `portcullis serve` in one run: the
//! difference is what scope checks and auditing cost.
//!
//! Takes every `serve` flag.

use clap::Parser;
use portcullis::config::ServeArgs;
use portcullis::server;
use portcullis::tools::PortcullisTools;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> std::process::ExitCode {
    server::init_tracing(); // as `portcullis serve` does, so both pay the same for logging
    let mut config = match Cli::parse().serve.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("unguarded: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    config.host.tool_scopes = Default::default();
    config.host.method_scopes = Default::default();
    config.host.audit = false;
    let serve = server::run(
        config,
        PortcullisTools::with_notes,
        server::shutdown_signal(),
    );
    match tokio::runtime::Runtime::new().map(|rt| rt.block_on(serve)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) | Err(e) => {
            eprintln!("unguarded: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
