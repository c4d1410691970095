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
    Serve(Box<ServeArgs>),
    /// Show the audit log of tool calls, newest first.
    Audit(AuditArgs),
    /// See and remove registered applications (OAuth clients): list, show, revoke.
    Client(portcullis::cli::grants::ClientArgs),
    /// See and revoke grants (a user's approval of an application): list, revoke.
    Grant(portcullis::cli::grants::GrantArgs),
    /// Create or upgrade the database schema, then exit (`serve` does this too on start;
    /// run it on its own before rolling out a new release to several instances).
    Migrate(MigrateArgs),
}

/// `--database-url`, as the commands that open the server's database take it.
#[derive(Debug, clap::Args)]
struct DatabaseArg {
    /// The server's database: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "PORTCULLIS_DATABASE_URL",
        default_value = "sqlite://portcullis.db"
    )]
    database_url: String,
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArg,
}

/// A single-threaded runtime for a command that talks to the database once.
fn runtime(command: &str) -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("portcullis {command}: cannot start the runtime: {e}"))
        .ok()
}

fn migrate(args: MigrateArgs) -> ExitCode {
    let Some(runtime) = runtime("migrate") else {
        return ExitCode::FAILURE;
    };
    let result: Result<i64, String> = runtime.block_on(async {
        let store = portcullis_store::Store::open(&args.db.database_url)
            .await
            .map_err(|e| format!("cannot open or migrate the database: {e}"))?;
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
            eprintln!("portcullis migrate: {e}");
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
    let (n, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not an age: use a number and s, m, h or d, e.g. 12h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    Ok(secs * 1000)
}

fn audit(args: AuditArgs) -> ExitCode {
    let Some(runtime) = runtime("audit") else {
        return ExitCode::FAILURE;
    };
    let result: Result<(), String> = runtime.block_on(async {
        let store = portcullis_store::Store::open(&args.db.database_url)
            .await
            .map_err(|e| format!("cannot open {}: {e}", args.db.database_url))?;
        let user_id = match &args.user {
            Some(u) => Some(match store.user_by_name(u).await.map_err(|e| e.to_string())? {
                Some(found) => found.id,
                None => u.clone(),
            }),
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
        let events = store.audit_events(&filter).await.map_err(|e| e.to_string())?;
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis audit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    server::init_tracing();
    match cli.command {
        Command::Audit(args) => audit(args),
        Command::Migrate(args) => migrate(args),
        Command::Client(args) => portcullis::cli::grants::client(args),
        Command::Grant(args) => portcullis::cli::grants::grant(args),
        Command::Serve(args) => {
            let args = *args;
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
