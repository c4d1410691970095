//! The `portcullis doctor` command: arguments, then the report on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{Options, run};

/// `portcullis doctor --help`: what is checked, the exit codes and examples. The `doctor`
/// subcommand takes it with `#[command(long_about = LONG_ABOUT)]`.
pub const LONG_ABOUT: &str =
    "Check a deployed remote MCP server the way Claude, ChatGPT, VS Code, Cursor and the \
MCP Inspector connect to it, and say what to fix.

Give the MCP endpoint's URL exactly as users type it into their client (for example \
https://mcp.example.com/mcp). The doctor follows the MCP authorization spec, so it works \
with any MCP server, not only Portcullis:

  1. the URL answers, over https with a valid certificate;
  2. an initialize request without a token gets 401 with
     WWW-Authenticate: Bearer resource_metadata=\"<absolute URL>\", scope=\"...\";
  3. the protected resource metadata (RFC 9728) is at the path-inserted and root
     well-known URLs, with \"resource\" equal to the URL given;
  4. the authorization server's metadata (RFC 8414 / OpenID discovery) has the same
     issuer, PKCE S256 and its endpoints;
  5. clients can register: client ID metadata documents and/or dynamic registration;
  6. the redirect URIs of Claude, ChatGPT, VS Code, Cursor and the Inspector are
     accepted (this REGISTERS one test client per client at the server's registration
     endpoint; --no-register skips it);
  7. CORS lets browser-based clients (the Inspector's web UI) in.

Each failure comes with its fix. Exit status: 0 when no check failed (warnings \
allowed), 1 when a check failed, 2 when the URL or an option is wrong.

Examples:
  portcullis doctor https://mcp.example.com/mcp
  portcullis doctor --no-register --json https://mcp.example.com/mcp
  portcullis doctor --ca-file internal-ca.pem https://mcp.internal.example/mcp";

/// The arguments of `portcullis doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The MCP endpoint's URL, exactly as users give it to their client.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Seconds to wait for each HTTP answer.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,

    /// Extra trusted root certificates (PEM file), for servers with a private CA.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Do not register test clients; the redirect URI checks are skipped.
    #[arg(long)]
    pub no_register: bool,

    /// Print a JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the checks and prints the report: exit 0 when no check failed, 1 when one did,
/// 2 on a usage error.
pub fn command(args: DoctorArgs) -> ExitCode {
    if args.timeout == 0 {
        eprintln!("portcullis doctor: --timeout must be at least 1 second");
        return ExitCode::from(2);
    }
    let options = Options {
        timeout: Duration::from_secs(args.timeout),
        ca_file: args.ca_file.clone(),
        register: !args.no_register,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis doctor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(run(&args.url, &options)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis doctor: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report.to_json()) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("portcullis doctor: cannot write the JSON report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.to_table());
    }
    if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
