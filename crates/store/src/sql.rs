//! The SQL store. Grouped by job, in the order a login flows through them.

use crate::{Result, StoreError};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// A migration: one script for both backends, or one per backend where they differ
/// (full-text search). Shared scripts are written in the SQL both accept; the one small
/// difference, binary columns (`BLOB` in SQLite, `BYTEA` in PostgreSQL), is applied by
/// [`Dialect::ddl`].
enum Migration {
    Shared(&'static str),
    PerBackend {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

const MIGRATIONS: &[(i64, Migration)] = &[
    (
        1,
        Migration::Shared(include_str!("../migrations/0001_auth.sql")),
    ),
    (
        2,
        Migration::Shared(include_str!("../migrations/0002_notes.sql")),
    ),
    (
        3,
        Migration::PerBackend {
            sqlite: include_str!("../migrations/0003_search_sqlite.sql"),
            postgres: include_str!("../migrations/0003_search_postgres.sql"),
        },
    ),
    (
        4,
        Migration::Shared(include_str!("../migrations/0004_audit.sql")),
    ),
    (
        5,
        Migration::Shared(include_str!("../migrations/0005_audit_confirmation.sql")),
    ),
    (
        6,
        Migration::PerBackend {
            sqlite: include_str!("../migrations/0006_search_owner_sqlite.sql"),
            postgres: include_str!("../migrations/0006_search_owner_postgres.sql"),
        },
    ),
    (
        7,
        Migration::PerBackend {
            sqlite: include_str!("../migrations/0007_search_live_only_sqlite.sql"),
            postgres: include_str!("../migrations/0007_search_live_only_postgres.sql"),
        },
    ),
    (
        8,
        Migration::PerBackend {
            sqlite: include_str!("../migrations/0008_search_marked_sqlite.sql"),
            postgres: include_str!("../migrations/0008_search_marked_postgres.sql"),
        },
    ),
    (
        9,
        Migration::Shared(include_str!("../migrations/0009_spent_states.sql")),
    ),
    (
        10,
        Migration::Shared(include_str!("../migrations/0010_mcp_sessions.sql")),
    ),
    (
        11,
        Migration::Shared(include_str!("../migrations/0011_accounts.sql")),
    ),
    (
        12,
        Migration::Shared(include_str!("../migrations/0012_grant_use.sql")),
    ),
    (
        13,
        Migration::Shared(include_str!("../migrations/0013_upstream_links.sql")),
    ),
];

/// The migration after which the SQLite full-text index is refilled from Rust (its words
/// carry the owner's mark, which SQL cannot compute).
const REINDEX_AT: i64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn ddl(self, m: &Migration) -> String {
        match (self, m) {
            (Dialect::Sqlite, Migration::Shared(sql)) => (*sql).to_owned(),
            (Dialect::Postgres, Migration::Shared(sql)) => sql.replace("BLOB", "BYTEA"),
            (Dialect::Sqlite, Migration::PerBackend { sqlite, .. }) => (*sqlite).to_owned(),
            (Dialect::Postgres, Migration::PerBackend { postgres, .. }) => (*postgres).to_owned(),
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
}

/// What [`Store::create_upstream_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamCreated {
    Created,
    /// Another account has this username; nothing was created.
    NameTaken,
    /// The upstream identity is already linked (a sign-in raced this one); nothing was created.
    AlreadyLinked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    /// An operator disabled the account: it cannot sign in.
    pub disabled: bool,
}

/// A user as the operator's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// Grants neither revoked nor expired: the apps connected to the account.
    pub live_grants: i64,
    /// The upstream identity provider the account signs in with, if it is linked to one.
    pub upstream: Option<String>,
}

/// What a one-time password link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Creates the account named in the link, with the password the person chooses.
    Invite,
    /// Replaces the password of the account named in the link.
    Reset,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invite => "invite",
            LinkPurpose::Reset => "reset",
        }
    }
}

/// An unused, unexpired password link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordLink {
    pub username: String,
    pub purpose: LinkPurpose,
    pub is_admin: bool,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub client_id: String,
    /// Validated client metadata as JSON (the OAuth core's `ClientSettings`).
    pub settings: String,
    pub secret_hash: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub user_id: Option<String>,
    pub csrf: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scopes: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A grant with what the account page and the admin commands show beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantInfo {
    pub grant: Grant,
    /// When it last got tokens (a code exchange or a refresh); `None` before the first.
    pub last_used_at: Option<i64>,
    /// The user's name; `None` when the account no longer exists.
    pub username: Option<String>,
    /// The registered client's settings (JSON); `None` for a metadata-document client
    /// (not stored here) or a registration that has been deleted.
    pub client_settings: Option<String>,
}

/// Which grants [`Store::grants`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// Revoked and expired grants too (by default only live ones).
    pub include_ended: bool,
}

/// Which grants [`Store::revoke_grants`] revokes. There is no "all": revoking every grant
/// of every user is not one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSelector<'a> {
    Id(&'a str),
    User(&'a str),
    Client(&'a str),
    UserClient {
        user_id: &'a str,
        client_id: &'a str,
    },
}

/// A client as the admin commands list it: a registration, or a metadata-document client
/// known only through its live grants (its document is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSummary {
    pub client_id: String,
    /// `registered` (DCR), or `document` for a metadata-document client.
    pub kind: String,
    /// The registered settings (JSON); `None` for a document client.
    pub settings: Option<String>,
    /// When it registered; `None` for a document client.
    pub created_at: Option<i64>,
    /// When it last got tokens.
    pub last_used_at: Option<i64>,
    pub live_grants: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub grant_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub expires_at: i64,
}

/// The outcome of redeeming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Redeemed {
        grant: Grant,
        redirect_uri: String,
        code_challenge: String,
        expires_at: i64,
    },
    /// The code was spent before: a replay. The caller revokes this grant.
    Replayed {
        grant_id: String,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    pub grant_id: String,
    pub scopes: String,
    pub issued_at: i64,
    pub idle_expires_at: i64,
    pub rotated_at: Option<i64>,
    pub next_scopes: Option<String>,
    pub next_jti: Option<String>,
    pub next_iat: Option<i64>,
}

/// What the exchange that rotated a refresh token issued, kept so a retry inside the grace
/// window gets the same answer (the new refresh token is derived from the old one, and the
/// access token is re-signed from these claims; no token value is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation<'a> {
    pub next_scopes: &'a str,
    pub next_jti: &'a str,
    pub next_iat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// This call rotated the token; the caller stores the successor.
    Rotated(RefreshRow),
    /// Already rotated: the row says when, and what was issued then.
    AlreadyRotated(RefreshRow),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub kid: String,
    pub private_enc: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

fn opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

fn grant_from(row: &AnyRow) -> Result<Grant> {
    Ok(Grant {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        scopes: row.try_get("scopes")?,
        resource: row.try_get("resource")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: opt_i64(row, "revoked_at")?,
    })
}

fn refresh_from(row: &AnyRow) -> Result<RefreshRow> {
    Ok(RefreshRow {
        grant_id: row.try_get("grant_id")?,
        scopes: row.try_get("scopes")?,
        issued_at: row.try_get("issued_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        rotated_at: opt_i64(row, "rotated_at")?,
        next_scopes: row.try_get("next_scopes")?,
        next_jti: row.try_get("next_jti")?,
        next_iat: opt_i64(row, "next_iat")?,
    })
}

/// Adds an account unless its id or username is taken (then it affects no row).
fn insert_user(
    user: &User,
    now: i64,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(
        "INSERT INTO users (id, username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(i64::from(user.is_admin))
    .bind(now)
}

const USER_COLS: &str = "id, username, password_hash, is_admin, disabled_at";

fn user_from(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        disabled: opt_i64(row, "disabled_at")?.is_some(),
    })
}

const GRANT_COLS: &str =
    "id, user_id, client_id, scopes, resource, created_at, expires_at, revoked_at";
/// [`GRANT_COLS`] of the grants table aliased `g`.
const G_GRANT_COLS: &str =
    "g.id, g.user_id, g.client_id, g.scopes, g.resource, g.created_at, g.expires_at, g.revoked_at";
const REFRESH_COLS: &str =
    "grant_id, scopes, issued_at, idle_expires_at, rotated_at, next_scopes, next_jti, next_iat";

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    /// `sqlite://PATH` is supported; `sqlite::memory:` gives a private in-memory database.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_at_version(url, i64::MAX).await
    }

    /// Opens like [`Store::open`], but migrates the schema no further than `version`: for
    /// tests that build a database as an older release left it, then upgrade it.
    #[doc(hidden)]
    pub async fn open_at_version(url: &str, version: i64) -> Result<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // A request waits at most 3 s for a connection: when the database is down it
            // gets a 503 quickly rather than hanging; the pool reconnects by itself (each
            // connection is checked before use) once the database is back.
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(std::time::Duration::from_secs(3))
                .connect(url)
                .await?;
            let store = Self {
                pool,
                dialect: Dialect::Postgres,
            };
            store.migrate(version).await?;
            return Ok(store);
        }
        let (url, max) = if url.starts_with("sqlite::memory:") {
            // Each connection to :memory: is its own database: keep exactly one.
            (url.to_owned(), 1)
        } else if url.starts_with("sqlite:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = if url.contains("mode=") {
                url.to_owned()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (url, 8)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; busy_timeout makes a
                    // second writer wait instead of failing; NORMAL sync is durable in WAL.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let store = Self {
            pool,
            dialect: Dialect::Sqlite,
        };
        store.migrate(version).await?;
        Ok(store)
    }

    /// A round trip to the database (readiness checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The schema version of the database (the last migration applied).
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM portcullis_schema")
            .fetch_one(&self.pool)
            .await?
            .try_get("v")?;
        Ok(v.unwrap_or(0))
    }

    /// The schema version this release migrates to.
    pub fn latest_schema_version() -> i64 {
        MIGRATIONS.last().map_or(0, |(v, _)| *v)
    }

    /// Every schema version this release knows, in order (they need not be contiguous).
    #[doc(hidden)]
    pub fn schema_versions() -> Vec<i64> {
        MIGRATIONS.iter().map(|(v, _)| *v).collect()
    }

    /// The connection pool, for tests that look under the store's methods.
    #[doc(hidden)]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the connections (tests drop their databases afterwards).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self, up_to: i64) -> Result<()> {
        // Instances that start together on one PostgreSQL database migrate one at a time:
        // a session-level advisory lock, held on this connection until it is returned. The
        // others wait, then find the schema up to date. (SQLite serializes its writers.)
        let mut conn = self.pool.acquire().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_lock(4242424242)")
                .execute(&mut *conn)
                .await?;
        }
        let result = self.migrate_on(&mut conn, up_to).await;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_unlock(4242424242)")
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn migrate_on(&self, conn: &mut sqlx::AnyConnection, up_to: i64) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS portcullis_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let done: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM portcullis_schema")
            .fetch_one(&mut *conn)
            .await?
            .try_get("v")?;
        let done = done.unwrap_or(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > done && *v <= up_to) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(&self.dialect.ddl(sql))
                .execute(&mut *tx)
                .await?;
            if *version == REINDEX_AT && self.dialect == Dialect::Sqlite {
                let notes = Store::reindex_notes(&mut tx).await?;
                tracing::info!(notes, "search index rebuilt");
            }
            sqlx::query("INSERT INTO portcullis_schema (version, applied_at) VALUES ($1, 0)")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "database schema migrated");
        }
        Ok(())
    }

    // ---- users ----

    pub async fn create_user(&self, user: &User, now: i64) -> Result<bool> {
        let r = insert_user(user, now).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Every account, by name, with its number of connected apps.
    pub async fn list_users(&self, now: i64) -> Result<Vec<UserSummary>> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.is_admin, u.created_at, u.disabled_at,
                    (SELECT COUNT(*) FROM grants g
                      WHERE g.user_id = u.id AND g.revoked_at IS NULL AND g.expires_at > $1) AS live,
                    (SELECT MIN(l.issuer) FROM upstream_links l WHERE l.user_id = u.id) AS upstream
             FROM users u ORDER BY u.username",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                    is_admin: r.try_get::<i64, _>("is_admin")? != 0,
                    created_at: r.try_get("created_at")?,
                    disabled_at: opt_i64(r, "disabled_at")?,
                    live_grants: r.try_get("live")?,
                    upstream: r.try_get("upstream")?,
                })
            })
            .collect()
    }

    /// Disables an account (`Some(now)`) or enables it again (`None`). Disabling also
    /// revokes every grant of the account and ends its browser sessions, so no app and no
    /// browser keeps acting for it. True when the account exists.
    pub async fn set_user_disabled(&self, user_id: &str, disabled_at: Option<i64>) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled_at)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(now) = disabled_at {
            sqlx::query(
                "UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces an account's password hash and ends its browser sessions (a password
    /// change signs every browser out). True when the account exists.
    pub async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- accounts linked to an upstream identity provider ----

    /// The account linked to `subject` at the upstream `issuer`, noting this sign-in.
    pub async fn user_by_upstream(
        &self,
        issuer: &str,
        subject: &str,
        now: i64,
    ) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM users u JOIN upstream_links l ON l.user_id = u.id
             WHERE l.issuer = $1 AND l.subject = $2",
            USER_COLS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        let user = row.as_ref().map(user_from).transpose()?;
        if user.is_some() {
            sqlx::query(
                "UPDATE upstream_links SET last_login_at = $1 WHERE issuer = $2 AND subject = $3",
            )
            .bind(now)
            .bind(issuer)
            .bind(subject)
            .execute(&self.pool)
            .await?;
        }
        Ok(user)
    }

    /// Creates `user` linked to `subject` at `issuer`, both or neither.
    pub async fn create_upstream_user(
        &self,
        user: &User,
        issuer: &str,
        subject: &str,
        now: i64,
    ) -> Result<UpstreamCreated> {
        let mut tx = self.pool.begin().await?;
        let made = insert_user(user, now).execute(&mut *tx).await?;
        if made.rows_affected() != 1 {
            return Ok(UpstreamCreated::NameTaken);
        }
        let linked = sqlx::query(
            "INSERT INTO upstream_links (issuer, subject, user_id, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(issuer)
        .bind(subject)
        .bind(&user.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if linked.rows_affected() != 1 {
            return Ok(UpstreamCreated::AlreadyLinked);
        }
        tx.commit().await?;
        Ok(UpstreamCreated::Created)
    }

    /// Links `subject` at `issuer` to an existing account; false when that identity is
    /// already linked (to this account or another).
    pub async fn link_upstream(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO upstream_links (issuer, subject, user_id, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes the account's link to `issuer`; true when there was one.
    pub async fn unlink_upstream(&self, user_id: &str, issuer: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM upstream_links WHERE user_id = $1 AND issuer = $2")
            .bind(user_id)
            .bind(issuer)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The upstream issuers an account signs in with.
    pub async fn upstream_issuers(&self, user_id: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT issuer FROM upstream_links WHERE user_id = $1 ORDER BY issuer")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("issuer")?))
            .collect::<Result<_>>()
    }

    // ---- one-time password links (invitations and resets) ----

    pub async fn create_password_link(
        &self,
        token_hash: &str,
        username: &str,
        purpose: LinkPurpose,
        is_admin: bool,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO password_links (token_hash, username, purpose, is_admin, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(username)
        .bind(purpose.as_str())
        .bind(i64::from(is_admin))
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The link, when it is neither used nor expired.
    pub async fn password_link(&self, token_hash: &str, now: i64) -> Result<Option<PasswordLink>> {
        let row = sqlx::query(
            "SELECT username, purpose, is_admin, expires_at FROM password_links
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let purpose = match r.try_get::<String, _>("purpose")?.as_str() {
                "invite" => LinkPurpose::Invite,
                "reset" => LinkPurpose::Reset,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "password link purpose {other:?}"
                    )));
                }
            };
            Ok(PasswordLink {
                username: r.try_get("username")?,
                purpose,
                is_admin: r.try_get::<i64, _>("is_admin")? != 0,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Spends a link: true for the one call that finds it unused and unexpired.
    pub async fn use_password_link(&self, token_hash: &str, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE password_links SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- clients (dynamic registration) ----

    /// Stores a registered client. With a `dedup_key`, an existing client with the same
    /// key is returned instead (identical public registrations share one client).
    pub async fn register_client(
        &self,
        row: &ClientRow,
        dedup_key: Option<&str>,
    ) -> Result<ClientRow> {
        if let Some(key) = dedup_key
            && let Some(existing) = self.client_by_dedup_key(key).await?
        {
            return Ok(existing);
        }
        sqlx::query(
            "INSERT INTO clients (client_id, kind, settings, secret_hash, dedup_key, created_at, last_used_at)
             VALUES ($1, 'registered', $2, $3, $4, $5, NULL)",
        )
        .bind(&row.client_id)
        .bind(&row.settings)
        .bind(&row.secret_hash)
        .bind(dedup_key)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(row.clone())
    }

    /// The public client registered with exactly these settings, if any.
    pub async fn client_by_dedup_key(&self, key: &str) -> Result<Option<ClientRow>> {
        self.client_where("dedup_key", key).await
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRow>> {
        self.client_where("client_id", client_id).await
    }

    async fn client_where(&self, column: &'static str, value: &str) -> Result<Option<ClientRow>> {
        let row = sqlx::query(&format!(
            "SELECT client_id, settings, secret_hash, created_at, last_used_at FROM clients WHERE {column} = $1"
        ))
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_from).transpose()
    }

    /// Records that a client was used (a code or refresh issued), which keeps it registered.
    pub async fn touch_client(&self, client_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE clients SET last_used_at = $1 WHERE client_id = $2")
            .bind(now)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn count_clients(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM clients")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Deletes registrations never used and older than `never_used_before`, and ones last
    /// used before `idle_before`. Returns how many went.
    pub async fn expire_clients(&self, never_used_before: i64, idle_before: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM clients WHERE (last_used_at IS NULL AND created_at < $1) OR last_used_at < $2",
        )
        .bind(never_used_before)
        .bind(idle_before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    // ---- browser sessions and pending authorization requests ----

    pub async fn create_session(
        &self,
        id_hash: &str,
        csrf: &str,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO browser_sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<BrowserSession>> {
        let row = sqlx::query(
            "SELECT user_id, csrf, expires_at FROM browser_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(BrowserSession {
                user_id: r.try_get("user_id")?,
                csrf: r.try_get("csrf")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM browser_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn put_auth_request(
        &self,
        id_hash: &str,
        session_hash: &str,
        params: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO auth_requests (id_hash, session_hash, params, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(id_hash)
            .bind(session_hash)
            .bind(params)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The pending request, only for the browser session that started it.
    pub async fn auth_request(
        &self,
        id_hash: &str,
        session_hash: &str,
        now: i64,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT params FROM auth_requests WHERE id_hash = $1 AND session_hash = $2 AND expires_at > $3",
        )
        .bind(id_hash)
        .bind(session_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("params")).transpose()?)
    }

    /// Moves pending requests to a new session id (login rotates the session id).
    pub async fn rebind_auth_requests(&self, old_session: &str, new_session: &str) -> Result<()> {
        sqlx::query("UPDATE auth_requests SET session_hash = $1 WHERE session_hash = $2")
            .bind(new_session)
            .bind(old_session)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a pending request; true when this call removed it (so it is finished once).
    pub async fn take_auth_request(&self, id_hash: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM auth_requests WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- consents ----

    pub async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("scopes")).transpose()?)
    }

    pub async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- grants and codes ----

    /// Creates a grant and its authorization code in one transaction.
    pub async fn create_grant_with_code(&self, grant: &Grant, code: &NewCode<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO grants (id, user_id, client_id, scopes, resource, created_at, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&grant.id)
        .bind(&grant.user_id)
        .bind(&grant.client_id)
        .bind(&grant.scopes)
        .bind(&grant.resource)
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(code.code_hash)
        .bind(code.grant_id)
        .bind(code.redirect_uri)
        .bind(code.code_challenge)
        .bind(code.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends a code: marks it used and returns its grant in one statement. A second call
    /// for the same code returns [`CodeRedemption::Replayed`].
    pub async fn consume_code(&self, code_hash: &str, now: i64) -> Result<CodeRedemption> {
        let spent = sqlx::query(
            "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL
             RETURNING grant_id, redirect_uri, code_challenge, expires_at",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        match spent {
            Some(r) => {
                let grant_id: String = r.try_get("grant_id")?;
                let grant = self.grant(&grant_id).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("code for missing grant {grant_id}"))
                })?;
                Ok(CodeRedemption::Redeemed {
                    grant,
                    redirect_uri: r.try_get("redirect_uri")?,
                    code_challenge: r.try_get("code_challenge")?,
                    expires_at: r.try_get("expires_at")?,
                })
            }
            None => {
                let row = sqlx::query("SELECT grant_id FROM auth_codes WHERE code_hash = $1")
                    .bind(code_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => CodeRedemption::Replayed {
                        grant_id: r.try_get("grant_id")?,
                    },
                    None => CodeRedemption::Unknown,
                })
            }
        }
    }

    pub async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        let row = sqlx::query(&format!("SELECT {GRANT_COLS} FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from).transpose()
    }

    /// Revokes a grant (idempotent); its access tokens stop working and its refresh tokens
    /// are refused from now on. True when this call revoked it.
    pub async fn revoke_grant(&self, id: &str, now: i64) -> Result<bool> {
        let r =
            sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records that a grant got tokens (a code exchange or a refresh).
    pub async fn touch_grant(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE grants SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Grants matching `filter`, with their user's name and their client's settings,
    /// ordered by client, then age. Live means neither revoked nor expired at `now`.
    pub async fn grants(&self, filter: &GrantFilter, now: i64) -> Result<Vec<GrantInfo>> {
        let mut sql = format!(
            "SELECT {G_GRANT_COLS}, g.last_used_at, u.username, c.settings FROM grants g
             LEFT JOIN users u ON u.id = g.user_id LEFT JOIN clients c ON c.client_id = g.client_id
             WHERE 1 = 1"
        );
        let mut args: Vec<&str> = Vec::new();
        if !filter.include_ended {
            sql.push_str(" AND g.revoked_at IS NULL AND g.expires_at > $1");
        }
        let first = if filter.include_ended { 1 } else { 2 };
        if let Some(u) = &filter.user_id {
            args.push(u);
            sql.push_str(&format!(" AND g.user_id = ${}", first + args.len() - 1));
        }
        if let Some(c) = &filter.client_id {
            args.push(c);
            sql.push_str(&format!(" AND g.client_id = ${}", first + args.len() - 1));
        }
        sql.push_str(" ORDER BY g.client_id, g.created_at, g.id");
        let mut q = sqlx::query(&sql);
        if !filter.include_ended {
            q = q.bind(now);
        }
        for a in args {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(GrantInfo {
                    grant: grant_from(r)?,
                    last_used_at: opt_i64(r, "last_used_at")?,
                    username: r.try_get("username")?,
                    client_settings: r.try_get("settings")?,
                })
            })
            .collect()
    }

    /// Revokes the live grants `selector` names and forgets the consents it covers (so the
    /// next authorization asks again), in one transaction. Returns the grants it revoked;
    /// the caller tells its guard (other instances learn within their revocation poll).
    pub async fn revoke_grants(&self, selector: GrantSelector<'_>, now: i64) -> Result<Vec<Grant>> {
        let mut tx = self.pool.begin().await?;
        let revoked = revoke_in(&mut tx, selector, now).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Revokes every grant of a client, forgets its consents and deletes its registration,
    /// in one transaction. Returns the grants revoked and whether a registration was deleted
    /// (a metadata-document client has none).
    pub async fn delete_client(&self, client_id: &str, now: i64) -> Result<(Vec<Grant>, bool)> {
        let mut tx = self.pool.begin().await?;
        let revoked = revoke_in(&mut tx, GrantSelector::Client(client_id), now).await?;
        let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        Ok((revoked, deleted))
    }

    /// Every registered client, and every metadata-document client with live grants, with
    /// its number of live grants at `now`; oldest registration first, document clients last.
    pub async fn client_summaries(&self, now: i64) -> Result<Vec<ClientSummary>> {
        let rows = sqlx::query(
            "SELECT c.client_id, c.kind, c.settings, c.created_at, c.last_used_at,
                    (SELECT COUNT(*) FROM grants g
                     WHERE g.client_id = c.client_id AND g.revoked_at IS NULL AND g.expires_at > $1) AS live
             FROM clients c ORDER BY c.created_at, c.client_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(ClientSummary {
                    client_id: r.try_get("client_id")?,
                    kind: r.try_get("kind")?,
                    settings: Some(r.try_get("settings")?),
                    created_at: Some(r.try_get("created_at")?),
                    last_used_at: opt_i64(r, "last_used_at")?,
                    live_grants: r.try_get("live")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT g.client_id, MAX(g.last_used_at) AS last_used_at, COUNT(*) AS live FROM grants g
             WHERE g.revoked_at IS NULL AND g.expires_at > $1
               AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.client_id = g.client_id)
             GROUP BY g.client_id ORDER BY g.client_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            out.push(ClientSummary {
                client_id: r.try_get("client_id")?,
                kind: "document".to_owned(),
                settings: None,
                created_at: None,
                last_used_at: opt_i64(r, "last_used_at")?,
                live_grants: r.try_get("live")?,
            });
        }
        Ok(out)
    }

    /// Grants revoked at or after `since` whose tokens may still be alive, for the
    /// resource guard's revocation list.
    pub async fn revoked_grants_since(&self, since: i64, now: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, revoked_at FROM grants WHERE revoked_at IS NOT NULL AND revoked_at >= $1 AND expires_at > $2",
        )
        .bind(since)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("revoked_at")?)))
            .collect()
    }

    // ---- refresh tokens ----

    pub async fn insert_refresh(
        &self,
        token_hash: &str,
        grant_id: &str,
        scopes: &str,
        issued_at: i64,
        idle_expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, scopes, issued_at, idle_expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(token_hash)
        .bind(grant_id)
        .bind(scopes)
        .bind(issued_at)
        .bind(idle_expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a refresh token rotated, recording what the exchange issues, in one
    /// statement. Only the first caller gets [`RefreshUse::Rotated`].
    pub async fn rotate_refresh(
        &self,
        token_hash: &str,
        now: i64,
        rotation: &Rotation<'_>,
    ) -> Result<RefreshUse> {
        let row = sqlx::query(&format!(
            "UPDATE refresh_tokens SET rotated_at = $1, next_scopes = $2, next_jti = $3, next_iat = $4
             WHERE token_hash = $5 AND rotated_at IS NULL RETURNING {REFRESH_COLS}"
        ))
        .bind(now)
        .bind(rotation.next_scopes)
        .bind(rotation.next_jti)
        .bind(rotation.next_iat)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = row {
            return Ok(RefreshUse::Rotated(refresh_from(&r)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => RefreshUse::AlreadyRotated(refresh_from(&r)?),
            None => RefreshUse::Unknown,
        })
    }

    /// Looks a refresh token up without using it (introspection, revocation).
    pub async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRow>> {
        let row = sqlx::query(&format!(
            "SELECT {REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(refresh_from).transpose()
    }

    // ---- signing keys and server secrets ----

    pub async fn signing_keys(&self) -> Result<Vec<KeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, private_enc, public_key, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    kid: r.try_get("kid")?,
                    private_enc: r.try_get("private_enc")?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: opt_i64(r, "retired_at")?,
                })
            })
            .collect()
    }

    /// Adds a key and retires every other active key at `now`, in one transaction.
    pub async fn rotate_signing_key(&self, key: &KeyRow, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_enc, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.private_enc)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes keys retired before `before` (their tokens have all expired).
    pub async fn drop_retired_keys(&self, before: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Records that `instance_url` holds the 2025-era MCP session `session_id`.
    pub async fn put_mcp_session(
        &self,
        session_id: &str,
        instance_url: &str,
        user_id: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mcp_sessions (session_id, instance_url, user_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id) DO UPDATE SET instance_url = $2, user_id = $3, created_at = $4",
        )
        .bind(session_id)
        .bind(instance_url)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The instance that holds a session, if any does.
    pub async fn mcp_session_instance(&self, session_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT instance_url FROM mcp_sessions WHERE session_id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("instance_url"))
                .transpose()?,
        )
    }

    pub async fn delete_mcp_session(&self, session_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM mcp_sessions WHERE session_id = $1")
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets every session of `instance_url` (it restarted: they ended with it).
    pub async fn forget_instance_sessions(&self, instance_url: &str) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM mcp_sessions WHERE instance_url = $1")
                .bind(instance_url)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Marks a single-use `nonce` (valid until `expires_at`) as spent: true the first time,
    /// false on every later call, whichever instance makes it.
    pub async fn spend_nonce(&self, nonce: &str, expires_at: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO spent_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(nonce)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores `value` under `name` unless one exists, and returns the stored one: two
    /// instances starting together agree on one secret.
    pub async fn secret_or_insert(&self, name: &str, value: &[u8], now: i64) -> Result<Vec<u8>> {
        sqlx::query("INSERT INTO server_secrets (name, value_enc, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query("SELECT value_enc FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?
                .try_get("value_enc")?,
        )
    }

    /// Deletes expired sessions, pending requests, codes and refresh tokens.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let mut n = 0;
        for sql in [
            "DELETE FROM browser_sessions WHERE expires_at <= $1",
            "DELETE FROM auth_requests WHERE expires_at <= $1",
            "DELETE FROM auth_codes WHERE expires_at <= $1 - 3600",
            "DELETE FROM refresh_tokens WHERE idle_expires_at <= $1",
            "DELETE FROM grants WHERE expires_at <= $1",
            "DELETE FROM spent_nonces WHERE expires_at <= $1",
            "DELETE FROM password_links WHERE expires_at <= $1",
        ] {
            n += sqlx::query(sql)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}

/// The body of [`Store::revoke_grants`], inside the caller's transaction.
async fn revoke_in(
    conn: &mut sqlx::AnyConnection,
    selector: GrantSelector<'_>,
    now: i64,
) -> Result<Vec<Grant>> {
    let (clause, args): (&str, Vec<&str>) = match selector {
        GrantSelector::Id(id) => ("id = $2", vec![id]),
        GrantSelector::User(u) => ("user_id = $2", vec![u]),
        GrantSelector::Client(c) => ("client_id = $2", vec![c]),
        GrantSelector::UserClient { user_id, client_id } => {
            ("user_id = $2 AND client_id = $3", vec![user_id, client_id])
        }
    };
    let sql = format!(
        "UPDATE grants SET revoked_at = $1 WHERE {clause} AND revoked_at IS NULL AND expires_at > $1
         RETURNING {GRANT_COLS}"
    );
    let mut q = sqlx::query(&sql).bind(now);
    for a in &args {
        q = q.bind(*a);
    }
    let revoked = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(grant_from)
        .collect::<Result<Vec<_>>>()?;
    // The consents the selector covers, as (user, client): reconnecting asks again.
    let covered: Vec<(Option<String>, Option<String>)> = match selector {
        GrantSelector::Id(_) => revoked
            .iter()
            .map(|g| (Some(g.user_id.clone()), Some(g.client_id.clone())))
            .collect(),
        GrantSelector::User(u) => vec![(Some(u.to_owned()), None)],
        GrantSelector::Client(c) => vec![(None, Some(c.to_owned()))],
        GrantSelector::UserClient { user_id, client_id } => {
            vec![(Some(user_id.to_owned()), Some(client_id.to_owned()))]
        }
    };
    for (user_id, client_id) in &covered {
        let q = match (user_id, client_id) {
            (Some(u), Some(c)) => {
                sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(u)
                    .bind(c)
            }
            (Some(u), None) => sqlx::query("DELETE FROM consents WHERE user_id = $1").bind(u),
            (None, Some(c)) => sqlx::query("DELETE FROM consents WHERE client_id = $1").bind(c),
            (None, None) => continue,
        };
        q.execute(&mut *conn).await?;
    }
    Ok(revoked)
}

fn client_from(r: &AnyRow) -> Result<ClientRow> {
    Ok(ClientRow {
        client_id: r.try_get("client_id")?,
        settings: r.try_get("settings")?,
        secret_hash: r.try_get("secret_hash")?,
        created_at: r.try_get("created_at")?,
        last_used_at: opt_i64(r, "last_used_at")?,
    })
}
