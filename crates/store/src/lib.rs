//! Durable state for Portcullis: users, clients, browser sessions, consents, grants,
//! codes, refresh tokens, signing keys and server secrets.
//!
//! One SQL implementation serves every backend through sqlx's `Any` driver; the queries
//! are written in the SQL that SQLite and PostgreSQL share (`$n` parameters, `RETURNING`,
//! `ON CONFLICT`), and one set of migrations serves both (`migrations/`; binary columns are
//! the only DDL that differs). The shared test suite (`tests/store.rs`)
//! runs every contract on SQLite (file and memory) and on PostgreSQL. PostgreSQL works as a
//! store today; running several instances on it is the scale-out issue's work.
//!
//! Contracts worth knowing before calling:
//! - Only hashes of codes, refresh tokens and session ids come in; this crate never sees
//!   the values. Private keys and secrets come in already encrypted.
//! - Security-relevant steps are single atomic statements: [`Store::consume_code`] and
//!   [`Store::rotate_refresh`] mark and return in one step, so two racing redemptions can
//!   never both win, and the loser learns which grant to revoke.
//! - Times are Unix seconds, passed in by the caller.

mod audit;
mod notes;
mod sql;

pub use audit::{AuditEvent, AuditFilter};
pub use notes::{Note, NoteHit, NotesAfter, SearchTerm, search_terms};
#[doc(hidden)]
pub mod testing;
pub use sql::*;

/// What went wrong in the store. The message is for the log; callers map it to a generic
/// server error for the client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not be reached (down, restarting, out of connections)
    /// rather than refusing the query: worth a 503 and a retry, not a 500.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL: class 08 (connection exception), and 57P01-57P03 (the server is
            // shutting down, crashed, or not yet accepting connections).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
