//! The audit trail of tool calls. Written in batches by the server's audit writer, read by
//! `portcullis audit`, and trimmed to the configured retention.

use std::fmt::Write as _;

use sqlx::Row;

use crate::{Result, Store};

/// One tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub tool: String,
    /// `ok`, `tool_error`, `protocol_error`, `denied` or `input_required` (the call asked
    /// the person and awaits the answer).
    pub outcome: String,
    pub duration_us: i64,
    /// SHA-256 of the arguments as sent (canonical JSON), base64url.
    pub args_digest: String,
    /// The arguments themselves, only when the operator turned that on.
    pub args: Option<String>,
    /// For tools that ask the person first: `confirmed`, `declined`, `cannot_ask` (refused:
    /// the client cannot ask) or `unconfirmed` (ran unasked, as the operator allows).
    pub confirmation: Option<String>,
}

/// What `audit_events` returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub tool: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// Columns of one audit row, as inserted.
const COLUMNS: usize = 10;

impl Store {
    /// Writes a batch: multi-row inserts of up to 100 events each, in one transaction
    /// (one round trip per hundred events rather than per event).
    pub async fn insert_audit(&self, events: &[AuditEvent]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(100) {
            let mut sql = String::from(
                "INSERT INTO audit (event_id, at_ms, user_id, client_id, tool, outcome, duration_us, args_digest, args, confirmation) VALUES",
            );
            for i in 0..chunk.len() {
                sql.push(if i > 0 { ',' } else { ' ' });
                for c in 1..=COLUMNS {
                    let sep = if c == 1 { '(' } else { ',' };
                    let _ = write!(sql, "{sep}${}", i * COLUMNS + c);
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT DO NOTHING");
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(&e.event_id)
                    .bind(e.at_ms)
                    .bind(&e.user_id)
                    .bind(&e.client_id)
                    .bind(&e.tool)
                    .bind(&e.outcome)
                    .bind(e.duration_us)
                    .bind(&e.args_digest)
                    .bind(&e.args)
                    .bind(&e.confirmation);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events matching `filter`, newest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT event_id, at_ms, user_id, client_id, tool, outcome, duration_us, args_digest, args, confirmation FROM audit
             WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR tool = $2)
               AND at_ms >= $3 AND at_ms <= $4
             ORDER BY at_ms DESC, event_id DESC LIMIT $5",
        )
        .bind(&filter.user_id)
        .bind(&filter.tool)
        .bind(filter.since_ms.unwrap_or(0))
        .bind(filter.until_ms.unwrap_or(i64::MAX))
        .bind(filter.limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    event_id: r.try_get("event_id")?,
                    at_ms: r.try_get("at_ms")?,
                    user_id: r.try_get("user_id")?,
                    client_id: r.try_get("client_id")?,
                    tool: r.try_get("tool")?,
                    outcome: r.try_get("outcome")?,
                    duration_us: r.try_get("duration_us")?,
                    args_digest: r.try_get("args_digest")?,
                    args: r.try_get("args")?,
                    confirmation: r.try_get("confirmation")?,
                })
            })
            .collect()
    }

    /// Deletes events older than `before_ms`.
    pub async fn purge_audit(&self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
