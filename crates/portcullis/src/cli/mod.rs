//! The administration commands of the `portcullis` binary, as library functions so tests
//! drive them as the binary does. Each returns what it printed's exit status; messages for
//! the operator go to stdout, failures to stderr.

pub mod config;
pub mod grants;
pub mod keys;
pub mod users;

use std::process::ExitCode;

/// A single-threaded runtime for a command that talks to the database a few times.
pub fn block_on<T>(
    command: &str,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(work)
        .map_err(|e| format!("portcullis {command}: {e}"))
}

/// Prints the failure, if any, and turns it into the exit status.
pub fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the server's database for a command that reads or changes what is in it: a SQLite
/// file must already exist (a mistyped path would otherwise become a new, empty database
/// and the command would report on nothing).
pub async fn open_store(
    db: &crate::config::DatabaseArg,
) -> Result<portcullis_store::Store, String> {
    let url = db.url().map_err(|e| e.to_string())?;
    if let Some(path) = sqlite_file(&url)
        && !std::path::Path::new(path).exists()
    {
        return Err(format!(
            "there is no database at {path}: check --database-url (or database_url in the --config file); `portcullis serve` or `portcullis migrate` creates it"
        ));
    }
    open_or_create_store(db).await
}

/// The file of a `sqlite://PATH` or `sqlite:PATH` URL; `None` for in-memory and other databases.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then_some(path)
}

/// Opens the server's database, creating and migrating it when it is new (`migrate`).
pub async fn open_or_create_store(
    db: &crate::config::DatabaseArg,
) -> Result<portcullis_store::Store, String> {
    let url = db.url().map_err(|e| e.to_string())?;
    portcullis_store::Store::open(&url).await.map_err(|e| {
        format!(
            "cannot open the database {}: {e}",
            crate::settings::redact("database_url", &url)
        )
    })
}

/// "72h" -> seconds: a number and s, m, h or d.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let (n, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use a number and s, m, h or d, e.g. 72h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => return Err(format!("unknown unit {other:?}: use s, m, h or d")),
    };
    if secs <= 0 {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(secs)
}
