//! `portcullis keys`: the signing keys of access tokens.

use clap::{Args, Subcommand};
use portcullis_authz::server::{AsConfig, AuthServer};

use crate::config::DatabaseArg;
use crate::time::rfc3339;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: the active one signs new tokens; older ones stay published
    /// until the tokens they signed expire.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key and sign with it from now on. Running servers on the same
    /// database adopt it within seconds; tokens signed by the old key keep working until
    /// they expire. Needs the master key the server uses.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    db: DatabaseArg,
    /// The server's master key file (PORTCULLIS_MASTER_KEY, base64, takes precedence).
    #[arg(
        long,
        env = "PORTCULLIS_MASTER_KEY_FILE",
        default_value = "portcullis.key"
    )]
    master_key_file: std::path::PathBuf,
}

pub fn run(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::List { db, json } => super::block_on("keys list", async move {
            let store = super::open_store(&db).await?;
            let keys = store.signing_keys().await.map_err(|e| e.to_string())?;
            let active = keys
                .iter()
                .filter(|k| k.retired_at.is_none())
                .max_by_key(|k| k.created_at)
                .map(|k| k.kid.clone());
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kid": k.kid, "created": rfc3339(k.created_at),
                            "retired": k.retired_at.map(rfc3339),
                            "active": Some(&k.kid) == active.as_ref(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!("{:<24}  {:<20}  {:<20}  state", "kid", "created", "retired");
                for k in &keys {
                    println!(
                        "{:<24}  {:<20}  {:<20}  {}",
                        k.kid,
                        rfc3339(k.created_at),
                        k.retired_at.map(rfc3339).unwrap_or_else(|| "-".into()),
                        if Some(&k.kid) == active.as_ref() {
                            "active"
                        } else {
                            "published"
                        }
                    );
                }
            }
            Ok(())
        }),
        KeysCommand::Rotate(args) => super::block_on("keys rotate", async move {
            let env_key = std::env::var("PORTCULLIS_MASTER_KEY")
                .ok()
                .filter(|v| !v.is_empty());
            if env_key.is_none() && !args.master_key_file.exists() {
                return Err(format!(
                    "no master key at {}: run this where the server keeps its master key, or name it with --master-key-file (a new key would not open the stored signing keys)",
                    args.master_key_file.display()
                ));
            }
            let store = super::open_store(&args.db).await?;
            if store
                .signing_keys()
                .await
                .map_err(|e| e.to_string())?
                .is_empty()
            {
                return Err(
                    "this database has no signing keys yet: start the server once first".into(),
                );
            }
            // The issuer does not matter for rotation; the key ring only needs the master key.
            let mut config = AsConfig::for_resource("http://127.0.0.1/mcp")?;
            config.master_key_file = args.master_key_file.clone();
            config.master_key_env = env_key;
            let (server, _) = AuthServer::start(config, store.clone())
                .await
                .map_err(|e| e.to_string())?;
            server
                .rotate_signing_key()
                .await
                .map_err(|e| e.to_string())?;
            let newest = store
                .signing_keys()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|k| k.retired_at.is_none())
                .max_by_key(|k| k.created_at)
                .map(|k| k.kid)
                .unwrap_or_default();
            println!(
                "new signing key {newest}; running servers on this database sign with it within a few seconds, and tokens signed before keep working until they expire"
            );
            Ok(())
        }),
    }
}
