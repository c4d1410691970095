//! `portcullis user`: the accounts that sign in to MCP clients.

use std::io::Read as _;

use clap::{Args, Subcommand};
use portcullis_store::{LinkPurpose, Store};
use ring::rand::SystemRandom;

use crate::config::DatabaseArg;
use crate::time::{rfc3339, unix_now};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account with a password read from standard input
    /// (`echo "$PASSWORD" | portcullis user add alice --password-stdin`). To let the person
    /// choose their own password, use `user invite` instead.
    Add {
        /// The name to sign in with: 1 to 64 letters, digits and . _ @ -
        #[arg(allow_hyphen_values = true)]
        username: String,
        /// Read the password (at least 12 characters) from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The account will administer the server.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Print a one-time link where the person creates their account by choosing a password.
    Invite {
        /// The name the account will have.
        #[arg(allow_hyphen_values = true)]
        username: String,
        /// The account will administer the server.
        #[arg(long)]
        admin: bool,
        /// How long the link works: 30m, 72h, 7d.
        #[arg(long, default_value = "72h", value_parser = super::parse_duration)]
        expires: i64,
        #[command(flatten)]
        link: LinkArgs,
        /// Print {"link": …, "expires": …} instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// List the accounts, with how many apps each has connected.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it can no longer sign in, every app connected to it is
    /// disconnected (its tokens are refused within seconds) and its browsers are signed out.
    Disable {
        #[arg(allow_hyphen_values = true)]
        username: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Let a disabled account sign in again (its apps must connect again).
    Enable {
        #[arg(allow_hyphen_values = true)]
        username: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Print a one-time link where the person chooses a new password, or, with
    /// --password-stdin, set the new password now.
    ResetPassword {
        #[arg(allow_hyphen_values = true)]
        username: String,
        /// Read the new password from standard input instead of printing a link.
        #[arg(long)]
        password_stdin: bool,
        /// How long the link works: 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
        expires: i64,
        #[command(flatten)]
        link: LinkArgs,
        /// Print {"link": …, "expires": …} instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// What a command that prints a link needs: the database, and where the server is.
#[derive(Debug, Args)]
pub struct LinkArgs {
    #[command(flatten)]
    db: DatabaseArg,
    /// The MCP endpoint's public URL, as `serve` has it (the link goes to the same host).
    #[arg(long, env = "PORTCULLIS_PUBLIC_URL")]
    public_url: Option<String>,
}

impl LinkArgs {
    fn issuer(&self) -> Result<String, String> {
        let url = self.public_url.as_deref().ok_or(
            "the link needs the server's public URL: pass --public-url (or set public_url in the --config file, or PORTCULLIS_PUBLIC_URL)",
        )?;
        let parsed =
            url::Url::parse(url).map_err(|e| format!("--public-url {url:?} is not a URL: {e}"))?;
        Ok(parsed.origin().ascii_serialization())
    }
}

fn read_password() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}

async fn user(store: &Store, name: &str) -> Result<portcullis_store::User, String> {
    store
        .user_by_name(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named {name:?}: `portcullis user list` shows the accounts"))
}

fn print_link(json: bool, what: &str, link: &str, expires: i64) {
    let until = rfc3339(unix_now() + expires);
    if json {
        println!("{}", serde_json::json!({ "link": link, "expires": until }));
    } else {
        println!("{what} (works once, until {until}):\n{link}");
    }
}

pub fn run(command: UserCommand) -> Result<(), String> {
    let rng = SystemRandom::new();
    match command {
        UserCommand::Add {
            username,
            admin,
            db,
            ..
        } => {
            let password = read_password()?;
            super::block_on("user add", async move {
                let store = super::open_store(&db).await?;
                portcullis_authz::server::create_user(&store, &rng, &username, &password, admin)
                    .await?;
                println!("created {}{username}", if admin { "admin " } else { "" });
                Ok(())
            })
        }
        UserCommand::Invite {
            username,
            admin,
            expires,
            link,
            json,
        } => super::block_on("user invite", async move {
            let issuer = link.issuer()?;
            let store = super::open_store(&link.db).await?;
            let url = portcullis_authz::server::password_link(
                &store,
                &rng,
                &issuer,
                &username,
                LinkPurpose::Invite,
                admin,
                expires,
            )
            .await?;
            print_link(json, &format!("Send this to {username}"), &url, expires);
            Ok(())
        }),
        UserCommand::List { db, json } => super::block_on("user list", async move {
            let store = super::open_store(&db).await?;
            let users = store
                .list_users(unix_now())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "username": u.username, "id": u.id, "admin": u.is_admin,
                            "created": rfc3339(u.created_at),
                            "disabled": u.disabled_at.map(rfc3339),
                            "connected_apps": u.live_grants,
                            "signs_in_with": u.upstream.as_deref().unwrap_or("password"),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
                return Ok(());
            }
            println!(
                "{:<24}  {:<6}  {:<8}  {:>4}  {:<20}  {:<24}  id",
                "username", "role", "state", "apps", "created", "signs in with"
            );
            for u in &users {
                println!(
                    "{:<24}  {:<6}  {:<8}  {:>4}  {:<20}  {:<24}  {}",
                    u.username,
                    if u.is_admin { "admin" } else { "user" },
                    if u.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    },
                    u.live_grants,
                    rfc3339(u.created_at),
                    u.upstream.as_deref().unwrap_or("password"),
                    u.id
                );
            }
            Ok(())
        }),
        UserCommand::Disable { username, db } => super::block_on("user disable", async move {
            let store = super::open_store(&db).await?;
            let u = user(&store, &username).await?;
            store
                .set_user_disabled(&u.id, Some(unix_now()))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "disabled {username}: it cannot sign in, and its apps are disconnected (running servers refuse their tokens within seconds)"
            );
            Ok(())
        }),
        UserCommand::Enable { username, db } => super::block_on("user enable", async move {
            let store = super::open_store(&db).await?;
            let u = user(&store, &username).await?;
            store
                .set_user_disabled(&u.id, None)
                .await
                .map_err(|e| e.to_string())?;
            println!("enabled {username}: it can sign in again; its apps must connect again");
            Ok(())
        }),
        UserCommand::ResetPassword {
            username,
            password_stdin,
            expires,
            link,
            json,
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            super::block_on("user reset-password", async move {
                let store = super::open_store(&link.db).await?;
                if let Some(password) = password {
                    let u = user(&store, &username).await?;
                    portcullis_authz::server::set_password(&store, &rng, &u.id, &password).await?;
                    println!("new password set for {username}; its browsers are signed out");
                    return Ok(());
                }
                let issuer = link.issuer()?;
                let url = portcullis_authz::server::password_link(
                    &store,
                    &rng,
                    &issuer,
                    &username,
                    LinkPurpose::Reset,
                    false,
                    expires,
                )
                .await?;
                print_link(json, &format!("Send this to {username}"), &url, expires);
                Ok(())
            })
        }
    }
}
