//! The `portcullis` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::cli::config::CheckArgs;
use portcullis::cli::keys::KeysCommand;
use portcullis::cli::users::UserCommand;
use portcullis::config::{AuthChoice, DatabaseArg, ServeArgs};
use portcullis::server;
use portcullis::tools::PortcullisTools;

/// Portcullis: a remote MCP server with OAuth 2.1 built in.
///
/// Every setting is a flag, a PORTCULLIS_* environment variable, or a key in the TOML file
/// named by --config (flags win over the environment, the environment over the file).
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    after_help = "Start here:\n  portcullis serve                         serve http://127.0.0.1:8080/mcp (logs a link that creates the admin)\n  portcullis serve --config portcullis.toml\n  portcullis config check --config portcullis.toml\n  portcullis user invite bob --config portcullis.toml\n  portcullis doctor https://mcp.example.com/mcp\n\nEach command's --help lists its settings. The deployment guide is docs/deploy.md."
)]
struct Cli {
    /// A TOML file of settings: the flag names as keys (public_url = "https://…/mcp").
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the MCP endpoint (default http://127.0.0.1:8080/mcp).
    Serve(Box<ServeArgs>),
    /// Check a configuration without serving: `portcullis config check --config FILE`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage accounts: add, invite, list, disable, enable, reset-password.
    #[command(subcommand)]
    User(UserCommand),
    /// Show or rotate the keys that sign access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the audit log of tool calls, newest first.
    Audit(AuditArgs),
    /// See and remove registered applications (OAuth clients): list, show, revoke.
    Client(portcullis::cli::grants::ClientArgs),
    /// See and revoke grants (a user's approval of an application): list, revoke.
    Grant(portcullis::cli::grants::GrantArgs),
    /// Create or upgrade the database schema, then exit (`serve` does this too on start;
    /// run it on its own before rolling out a new release to several instances).
    Migrate(MigrateArgs),
    /// Check a deployed MCP server (any, not only Portcullis) the way Claude, ChatGPT,
    /// VS Code, Cursor and the MCP Inspector connect to it; prints each problem with its fix.
    #[command(long_about = portcullis::doctor::LONG_ABOUT)]
    Doctor(portcullis::doctor::DoctorArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the settings `serve` would use (same flags, variables and file) and print
    /// the effective configuration with secrets redacted. Exit 0 when valid, 2 when not.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArg,
}

fn migrate(args: MigrateArgs) -> ExitCode {
    let result = portcullis::cli::block_on("migrate", async {
        let store = portcullis::cli::open_or_create_store(&args.db).await?;
        let version = store.schema_version().await.map_err(|e| e.to_string())?;
        store.close().await;
        Ok(version)
    });
    match result {
        Ok(version) => {
            println!(
                "database schema at version {version} (this release: {})",
                portcullis_store::Store::latest_schema_version()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    #[command(flatten)]
    db: DatabaseArg,
    /// Only this user (username or user id).
    #[arg(long)]
    user: Option<String>,
    /// Only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only calls in the last N seconds, minutes, hours or days: 90s, 30m, 12h, 7d.
    #[arg(long, value_parser = parse_age)]
    since: Option<i64>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// "30m" -> milliseconds.
fn parse_age(s: &str) -> Result<i64, String> {
    portcullis::cli::parse_duration(s).map(|secs| secs * 1000)
}

fn audit(args: AuditArgs) -> ExitCode {
    let result = portcullis::cli::block_on("audit", async {
        let store = portcullis::cli::open_store(&args.db).await?;
        let user_id = match &args.user {
            Some(u) => Some(
                match store.user_by_name(u).await.map_err(|e| e.to_string())? {
                    Some(found) => found.id,
                    None => u.clone(),
                },
            ),
            None => None,
        };
        let now_ms = portcullis::time::unix_now_ms();
        let filter = portcullis_store::AuditFilter {
            user_id,
            tool: args.tool.clone(),
            since_ms: args.since.map(|age| now_ms - age),
            until_ms: None,
            limit: args.limit,
        };
        let events = store
            .audit_events(&filter)
            .await
            .map_err(|e| e.to_string())?;
        for e in events {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "time": portcullis::time::rfc3339(e.at_ms / 1000), "user_id": e.user_id, "client_id": e.client_id,
                        "tool": e.tool, "outcome": e.outcome, "duration_us": e.duration_us,
                        "args_sha256": e.args_digest, "args": e.args, "confirmation": e.confirmation,
                    })
                );
            } else {
                let confirmation = e
                    .confirmation
                    .map(|c| format!("  confirmation={c}"))
                    .unwrap_or_default();
                println!(
                    "{}  {:<14}  {:<16}  user={}  client={}  {:.1} ms  args=sha256:{}{confirmation}",
                    portcullis::time::rfc3339(e.at_ms / 1000),
                    e.outcome,
                    e.tool,
                    e.user_id.as_deref().unwrap_or("-"),
                    e.client_id.as_deref().unwrap_or("-"),
                    e.duration_us as f64 / 1000.0,
                    e.args_digest,
                );
            }
        }
        Ok(())
    });
    portcullis::cli::finish(result)
}

fn main() -> ExitCode {
    let layered = match portcullis::settings::parse::<Cli>(std::env::args_os().collect()) {
        Ok(layered) => layered,
        Err(portcullis::settings::LayerError::Clap(e)) => e.exit(),
        Err(portcullis::settings::LayerError::File(message)) => {
            eprintln!("portcullis: {message}");
            return ExitCode::from(2);
        }
    };
    server::init_tracing();
    match layered.cli.command {
        Command::Audit(args) => audit(args),
        Command::Migrate(args) => migrate(args),
        Command::Client(args) => portcullis::cli::grants::client(args),
        Command::Grant(args) => portcullis::cli::grants::grant(args),
        Command::User(command) => portcullis::cli::finish(portcullis::cli::users::run(command)),
        Command::Keys(command) => portcullis::cli::finish(portcullis::cli::keys::run(command)),
        Command::Config(ConfigCommand::Check(args)) => {
            match portcullis::cli::config::check(args, layered.file.as_deref(), &layered.settings) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("portcullis config check: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Doctor(args) => portcullis::doctor::command(args),
        Command::Serve(args) => {
            let args = *args;
            // Notes belong to signed-in users and live in the database: without the
            // authorization server (--auth none) there is neither, so only whoami is offered.
            let notes = args.notes && args.auth != AuthChoice::None;
            let tools = if notes {
                PortcullisTools::with_notes
            } else {
                PortcullisTools::new
            };
            server::serve_main("portcullis", args, move || Ok(tools))
        }
    }
}
