//! Helpers for tests that need a PostgreSQL database of their own (this crate's shared
//! suite and the server's integration tests). Not part of the supported API.

use sqlx::Connection as _;

/// The administrative URL of the test server: `PORTCULLIS_TEST_POSTGRES`, by default
/// `postgres://postgres@127.0.0.1:5432/test`; `None` when set to `off`.
pub fn postgres_admin() -> Option<String> {
    let url = std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    (url != "off").then_some(url)
}

/// Creates an empty database named after `prefix`, the process and the time, and returns
/// its URL; `Ok(None)` when PostgreSQL tests are off, and an error that says what to do
/// when the server cannot be reached.
pub async fn fresh_postgres(prefix: &str) -> Result<Option<String>, String> {
    let Some(admin) = postgres_admin() else {
        return Ok(None);
    };
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&admin).await.map_err(|e| {
        format!("PostgreSQL at {admin} is not reachable ({e}); start it, or set PORTCULLIS_TEST_POSTGRES=off to skip it")
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("{prefix}_{}_{nanos}", std::process::id());
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("cannot create the test database {name}: {e}"))?;
    let _ = conn.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(Some(format!("{base}/{name}")))
}

/// Drops a database made by [`fresh_postgres`] (by its URL), closing its connections.
pub async fn drop_postgres(url: &str) {
    let (Some(admin), Some((_, name))) = (postgres_admin(), url.rsplit_once('/')) else {
        return;
    };
    if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}
