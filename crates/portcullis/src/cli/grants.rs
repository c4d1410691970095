//! `portcullis client …` and `portcullis grant …`: the operator's view of which
//! applications are registered, who has connected them, and the means to cut them off.
//!
//! They work on the database directly, so they run beside live servers: a revocation is
//! written to the grants table, and every running instance refuses the revoked grants'
//! access tokens within its revocation poll (2 seconds) and their refresh tokens at once.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use portcullis_oauth::client::ClientSettings;
use portcullis_store::{ClientSummary, Grant, GrantFilter, GrantInfo, GrantSelector, Store};
use serde_json::{Value, json};

use crate::config::DatabaseArg;
use crate::time::{rfc3339, unix_now};

/// `portcullis client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List the registered clients (and clients known by a metadata document that have live
    /// grants): id, name, kind, when registered and last used, and how many live grants.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one client: its registered metadata and its live grants with their users.
    Show {
        /// The client id, as `portcullis client list` prints it (ids may start with `-`).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[command(flatten)]
        db: DatabaseArg,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every grant of a client and delete its registration. Its users are
    /// disconnected (running servers refuse its tokens within 2 seconds); the application
    /// has to register again, and each user to approve it again, to reconnect.
    Revoke {
        /// The client id, as `portcullis client list` prints it (ids may start with `-`).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

/// `portcullis grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(subcommand)]
    pub command: GrantCommand,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// List live grants (a user's approval of one client, with the tokens issued under it),
    /// optionally only one user's or one client's.
    List {
        /// Only this user's grants (username or user id).
        #[arg(long, value_name = "NAME|ID", allow_hyphen_values = true)]
        user: Option<String>,
        /// Only this client's grants.
        #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client: Option<String>,
        /// Revoked and expired grants too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        db: DatabaseArg,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke grants: one by its id, all of a user's, all of a client's, or a user's grants
    /// of one client. Running servers refuse their access tokens within 2 seconds, and their
    /// refresh tokens at once; the user is asked to approve again on reconnecting.
    ///
    /// Examples: `portcullis grant revoke --user alice`,
    /// `portcullis grant revoke --user alice --client CLIENT_ID`,
    /// `portcullis grant revoke GRANT_ID`.
    Revoke {
        /// The grant id, as `portcullis grant list` prints it (ids may start with `-`).
        #[arg(conflicts_with_all = ["user", "client"], allow_hyphen_values = true)]
        grant_id: Option<String>,
        /// This user's grants (username or user id).
        #[arg(long, value_name = "NAME|ID", allow_hyphen_values = true)]
        user: Option<String>,
        /// This client's grants.
        #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client: Option<String>,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

/// What went wrong, for the operator; every failure exits with 1 unless it says otherwise.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

/// Runs `portcullis client …`.
pub fn client(args: ClientArgs) -> ExitCode {
    let (db, name) = match &args.command {
        ClientCommand::List { db, .. } => (db.clone(), "client list"),
        ClientCommand::Show { db, .. } => (db.clone(), "client show"),
        ClientCommand::Revoke { db, .. } => (db.clone(), "client revoke"),
    };
    run(name, &db, |store| async move {
        match args.command {
            ClientCommand::List { json, .. } => list_clients(&store, json).await,
            ClientCommand::Show {
                client_id, json, ..
            } => show_client(&store, &client_id, json).await,
            ClientCommand::Revoke { client_id, .. } => revoke_client(&store, &client_id).await,
        }
    })
}

/// Runs `portcullis grant …`.
pub fn grant(args: GrantArgs) -> ExitCode {
    let (db, name) = match &args.command {
        GrantCommand::List { db, .. } => (db.clone(), "grant list"),
        GrantCommand::Revoke { db, .. } => (db.clone(), "grant revoke"),
    };
    if let GrantCommand::Revoke {
        grant_id: None,
        user: None,
        client: None,
        ..
    } = &args.command
    {
        eprintln!(
            "portcullis grant revoke: say which grants to revoke: a GRANT_ID, --user NAME|ID, --client CLIENT_ID, or --user with --client (there is no \"revoke everything\"). `portcullis grant list` shows them."
        );
        return ExitCode::from(2);
    }
    run(name, &db, |store| async move {
        match args.command {
            GrantCommand::List {
                user,
                client,
                all,
                json,
                ..
            } => list_grants(&store, user.as_deref(), client.as_deref(), all, json).await,
            GrantCommand::Revoke {
                grant_id,
                user,
                client,
                ..
            } => {
                revoke_grants(
                    &store,
                    grant_id.as_deref(),
                    user.as_deref(),
                    client.as_deref(),
                )
                .await
            }
        }
    })
}

/// Opens the database, runs `f` on a single-threaded runtime, closes it, and turns the
/// outcome into an exit code (errors on stderr, prefixed with the command).
fn run<F, Fut>(command: &str, db: &DatabaseArg, f: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("portcullis {command}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let store = super::open_store(db).await.map_err(fail)?;
        let result = f(store.clone()).await;
        store.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("portcullis {command}: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

// ---------- reading ----------

fn settings_of(json: Option<&str>) -> Option<ClientSettings> {
    serde_json::from_str(json?).ok()
}

fn name_of(settings: Option<&ClientSettings>) -> Option<String> {
    settings
        .and_then(|s| s.client_name.clone())
        .filter(|n| !n.trim().is_empty())
}

fn time(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

fn time_text(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_owned(), rfc3339)
}

/// A user named by username or by id.
async fn find_user(store: &Store, who: &str) -> Result<portcullis_store::User, Failure> {
    if let Some(u) = store.user_by_name(who).await? {
        return Ok(u);
    }
    store
        .user_by_id(who)
        .await?
        .ok_or_else(|| fail(format!("no user named or with id {who:?}")))
}

/// The client `client_id` as listed, or an error naming it: a registration, or a
/// metadata-document client that has grants (live or ended).
async fn find_client(store: &Store, client_id: &str, now: i64) -> Result<ClientSummary, Failure> {
    if let Some(c) = store
        .client_summaries(now)
        .await?
        .into_iter()
        .find(|c| c.client_id == client_id)
    {
        return Ok(c);
    }
    // A document client's id is its document's URL; a deleted registration is gone even
    // if its revoked grants linger until they expire.
    let document = client_id.starts_with("https://") || client_id.starts_with("http://");
    let filter = GrantFilter {
        client_id: Some(client_id.to_owned()),
        include_ended: true,
        ..GrantFilter::default()
    };
    if !document || store.grants(&filter, now).await?.is_empty() {
        return Err(fail(format!(
            "no client with id {client_id:?}: `portcullis client list` shows the known ones"
        )));
    }
    Ok(ClientSummary {
        client_id: client_id.to_owned(),
        kind: "document".to_owned(),
        settings: None,
        created_at: None,
        last_used_at: None,
        live_grants: 0,
    })
}

fn client_json(c: &ClientSummary) -> Value {
    let settings = settings_of(c.settings.as_deref());
    json!({
        "client_id": c.client_id,
        "name": name_of(settings.as_ref()),
        "kind": c.kind,
        "created_at": time(c.created_at),
        "last_used_at": time(c.last_used_at),
        "live_grants": c.live_grants,
    })
}

fn grant_json(g: &GrantInfo, now: i64) -> Value {
    let settings = settings_of(g.client_settings.as_deref());
    json!({
        "grant_id": g.grant.id,
        "user_id": g.grant.user_id,
        "username": g.username,
        "client_id": g.grant.client_id,
        "client_name": name_of(settings.as_ref()),
        "scopes": g.grant.scopes.split_whitespace().collect::<Vec<_>>(),
        "resource": g.grant.resource,
        "created_at": rfc3339(g.grant.created_at),
        "last_used_at": time(g.last_used_at),
        "expires_at": rfc3339(g.grant.expires_at),
        "revoked_at": time(g.grant.revoked_at),
        "live": live(&g.grant, now),
    })
}

fn live(g: &Grant, now: i64) -> bool {
    g.revoked_at.is_none() && g.expires_at > now
}

fn status(g: &Grant, now: i64) -> String {
    match g.revoked_at {
        Some(at) => format!("revoked {}", rfc3339(at)),
        None if g.expires_at <= now => format!("expired {}", rfc3339(g.expires_at)),
        None => "live".to_owned(),
    }
}

/// Prints rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_json(v: &Value) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn list_clients(store: &Store, as_json: bool) -> Result<(), Failure> {
    let now = unix_now();
    let clients = store.client_summaries(now).await?;
    if as_json {
        return print_json(&Value::Array(clients.iter().map(client_json).collect()));
    }
    if clients.is_empty() {
        println!("No client is registered.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            let settings = settings_of(c.settings.as_deref());
            vec![
                c.client_id.clone(),
                name_of(settings.as_ref()).unwrap_or_else(|| "-".to_owned()),
                c.kind.clone(),
                time_text(c.created_at),
                time_text(c.last_used_at),
                c.live_grants.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CLIENT ID",
            "NAME",
            "KIND",
            "CREATED",
            "LAST USED",
            "LIVE GRANTS",
        ],
        &rows,
    );
    Ok(())
}

async fn show_client(store: &Store, client_id: &str, as_json: bool) -> Result<(), Failure> {
    let now = unix_now();
    let c = find_client(store, client_id, now).await?;
    let settings = settings_of(c.settings.as_deref());
    let filter = GrantFilter {
        client_id: Some(client_id.to_owned()),
        ..GrantFilter::default()
    };
    let grants = store.grants(&filter, now).await?;
    if as_json {
        let mut v = client_json(&c);
        if let Some(s) = &settings {
            v["redirect_uris"] = json!(s.redirect_uris);
            v["grant_types"] = json!(s.grant_types);
            v["token_endpoint_auth_method"] = json!(s.token_endpoint_auth_method.as_str());
            v["client_uri"] = json!(s.client_uri);
            v["software_id"] = json!(s.software_id);
            v["software_version"] = json!(s.software_version);
        }
        v["live_grants"] = json!(grants.len());
        v["grants"] = Value::Array(grants.iter().map(|g| grant_json(g, now)).collect());
        return print_json(&v);
    }
    let field = |k: &str, v: &str| println!("{:<16}{v}", format!("{k}:"));
    field("Client ID", &c.client_id);
    match &settings {
        Some(s) => {
            field(
                "Name",
                &format!(
                    "{} (chosen by the client itself)",
                    name_of(Some(s)).unwrap_or_else(|| "-".to_owned())
                ),
            );
            field("Kind", "registered (dynamic client registration)");
            field("Redirect URIs", &s.redirect_uris.join(", "));
            field("Grant types", &s.grant_types.join(", "));
            field(
                "Token auth",
                &format!(
                    "{}{}",
                    s.token_endpoint_auth_method.as_str(),
                    if s.token_endpoint_auth_method.as_str() == "none" {
                        " (public client)"
                    } else {
                        " (confidential client, with a secret)"
                    }
                ),
            );
            if let Some(uri) = &s.client_uri {
                field("Client URI", uri);
            }
        }
        None => field(
            "Kind",
            "metadata document (its settings live at the client id URL and are not stored here)",
        ),
    }
    field("Created", &time_text(c.created_at));
    field("Last used", &time_text(c.last_used_at));
    field("Live grants", &grants.len().to_string());
    if !grants.is_empty() {
        println!();
        grant_table(&grants, now, false);
    }
    Ok(())
}

fn grant_table(grants: &[GrantInfo], now: i64, with_status: bool) {
    let mut header = vec![
        "GRANT ID",
        "USER",
        "CLIENT ID",
        "CLIENT NAME",
        "SCOPES",
        "CREATED",
        "LAST USED",
    ];
    if with_status {
        header.push("STATUS");
    }
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            let settings = settings_of(g.client_settings.as_deref());
            let mut row = vec![
                g.grant.id.clone(),
                g.username
                    .clone()
                    .unwrap_or_else(|| format!("{} (deleted)", g.grant.user_id)),
                g.grant.client_id.clone(),
                name_of(settings.as_ref()).unwrap_or_else(|| "-".to_owned()),
                g.grant.scopes.clone(),
                rfc3339(g.grant.created_at),
                time_text(g.last_used_at),
            ];
            if with_status {
                row.push(status(&g.grant, now));
            }
            row
        })
        .collect();
    table(&header, &rows);
}

async fn list_grants(
    store: &Store,
    user: Option<&str>,
    client: Option<&str>,
    all: bool,
    as_json: bool,
) -> Result<(), Failure> {
    let now = unix_now();
    let user_id = match user {
        Some(u) => Some(find_user(store, u).await?.id),
        None => None,
    };
    if let Some(c) = client {
        find_client(store, c, now).await?;
    }
    let filter = GrantFilter {
        user_id,
        client_id: client.map(str::to_owned),
        include_ended: all,
    };
    let grants = store.grants(&filter, now).await?;
    if as_json {
        return print_json(&Value::Array(
            grants.iter().map(|g| grant_json(g, now)).collect(),
        ));
    }
    if grants.is_empty() {
        println!(
            "No {}grants{}.",
            if all { "" } else { "live " },
            match (user, client) {
                (Some(u), Some(c)) => format!(" of {u} for client {c}"),
                (Some(u), None) => format!(" of {u}"),
                (None, Some(c)) => format!(" for client {c}"),
                (None, None) => String::new(),
            }
        );
        return Ok(());
    }
    grant_table(&grants, now, all);
    Ok(())
}

// ---------- revoking ----------

const TAKES_EFFECT: &str =
    "Running servers refuse their access tokens within 2 seconds and their refresh tokens at once.";

fn describe_revoked(revoked: &[Grant]) {
    for g in revoked {
        println!("  {}  user {}  client {}", g.id, g.user_id, g.client_id);
    }
}

async fn revoke_client(store: &Store, client_id: &str) -> Result<(), Failure> {
    let now = unix_now();
    let c = find_client(store, client_id, now).await?;
    let name = name_of(settings_of(c.settings.as_deref()).as_ref())
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let (revoked, deleted) = store.delete_client(client_id, now).await?;
    println!(
        "Client {client_id}{name}: revoked {} live grant(s){}.",
        revoked.len(),
        if deleted {
            " and deleted its registration"
        } else {
            "; it has no registration here to delete (a metadata-document client can connect again if a user approves it)"
        }
    );
    describe_revoked(&revoked);
    if !revoked.is_empty() {
        println!("{TAKES_EFFECT}");
    }
    if deleted {
        println!(
            "To reconnect, the application must register again and each user approve it again."
        );
    }
    Ok(())
}

async fn revoke_grants(
    store: &Store,
    grant_id: Option<&str>,
    user: Option<&str>,
    client: Option<&str>,
) -> Result<(), Failure> {
    let now = unix_now();
    if let Some(id) = grant_id {
        let Some(g) = store.grant(id).await? else {
            return Err(fail(format!(
                "no grant with id {id:?}: `portcullis grant list` shows them"
            )));
        };
        if !live(&g, now) {
            println!(
                "Grant {id} is {} already; nothing changed.",
                status(&g, now)
            );
            return Ok(());
        }
        let revoked = store.revoke_grants(GrantSelector::Id(id), now).await?;
        println!("Revoked {} grant(s):", revoked.len());
        describe_revoked(&revoked);
        println!("{TAKES_EFFECT}");
        return Ok(());
    }
    let user = match user {
        Some(u) => Some(find_user(store, u).await?),
        None => None,
    };
    if let Some(c) = client {
        find_client(store, c, now).await?;
    }
    let selector = match (&user, client) {
        (Some(u), Some(c)) => GrantSelector::UserClient {
            user_id: &u.id,
            client_id: c,
        },
        (Some(u), None) => GrantSelector::User(&u.id),
        (None, Some(c)) => GrantSelector::Client(c),
        (None, None) => return Err(fail("say which grants to revoke")),
    };
    let revoked = store.revoke_grants(selector, now).await?;
    if revoked.is_empty() {
        println!("No live grant matched; nothing changed.");
        return Ok(());
    }
    println!("Revoked {} grant(s):", revoked.len());
    describe_revoked(&revoked);
    println!("{TAKES_EFFECT} The user is asked to approve the application again on reconnecting.");
    Ok(())
}
