//! The audit trail: every tool call, with who, through which client, the outcome, the
//! duration and a digest of the arguments. Calls hand their event to a bounded queue and a
//! background writer stores the queue in batches (one transaction per batch), so auditing
//! costs a call a channel send, not a database write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_authz::Principal;
use portcullis_store::{AuditEvent, Store};
use tokio::sync::mpsc;

const QUEUE: usize = 16_384;
const BATCH: usize = 512;
/// How long the writer waits for more events before it stores a batch that is not full.
const LINGER: Duration = Duration::from_millis(50);

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The tool ran and reported an error to the model (`isError`).
    ToolError,
    /// A JSON-RPC error (unknown tool, server fault).
    ProtocolError,
    /// Refused before it ran (missing scope).
    Denied,
    /// The tool asked the person (2026-07-28 `input_required`) and did not act yet.
    InputRequired,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Denied => "denied",
            Outcome::InputRequired => "input_required",
        }
    }
}

/// The audit writer's front end, shared by every request.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
    keep_arguments: bool,
    dropped: AtomicU64,
    /// Event ids are this instance's random prefix and a zero-padded counter: unique
    /// without a random read per call, and increasing, so each insert appends to the
    /// primary-key index instead of landing at a random place in it (an unpadded counter
    /// sorts "…-a" after "…-10").
    prefix: String,
    counter: AtomicU64,
}

use crate::time::unix_now_ms as now_ms;

/// Writes one batch. While the database is unreachable the batch is kept and retried
/// (backing off to 5 s); new events wait in the queue meanwhile, and only what overflows it
/// is dropped and counted. The insert ignores events already stored, so a retry after a
/// commit whose answer was lost writes nothing twice.
async fn write_batch(store: &Store, batch: &[AuditEvent]) {
    let mut wait = Duration::from_millis(250);
    loop {
        match store.insert_audit(batch).await {
            Ok(()) => return,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, events = batch.len(), "database unavailable: audit events kept, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, events = batch.len(), "could not write audit events");
                return;
            }
        }
    }
}

impl AuditLog {
    /// Starts the writer. Events older than `retention` are deleted hourly.
    pub fn spawn(store: Store, keep_arguments: bool, retention: Duration) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        tokio::spawn(async move {
            let mut purge = tokio::time::interval(Duration::from_secs(3600));
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => {
                        if n == 0 {
                            break; // every sender is gone: the server is shutting down
                        }
                        // Under load, wait a moment for the batch to fill: one transaction
                        // per few hundred events rather than one per handful.
                        if batch.len() < BATCH {
                            tokio::time::sleep(LINGER).await;
                            while batch.len() < BATCH && let Ok(event) = rx.try_recv() {
                                batch.push(event);
                            }
                        }
                        write_batch(&store, &batch).await;
                        batch.clear();
                    }
                    _ = purge.tick() => {
                        let before = now_ms() - retention.as_millis() as i64;
                        if let Err(e) = store.purge_audit(before).await {
                            tracing::warn!(error = %e, "could not purge old audit events");
                        }
                    }
                }
            }
        });
        let mut nonce = [0u8; 9];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
        Arc::new(Self {
            tx,
            keep_arguments,
            dropped: AtomicU64::new(0),
            prefix: B64.encode(nonce),
            counter: AtomicU64::new(0),
        })
    }

    /// Queues one event. If the writer has fallen 16k events behind, the event is dropped
    /// and counted rather than slowing every call down; the log says so.
    pub fn record(
        &self,
        principal: &Principal,
        tool: &str,
        outcome: Outcome,
        duration: Duration,
        arguments_json: Option<String>,
        confirmation: Option<&'static str>,
    ) {
        let args_json = arguments_json.unwrap_or_else(|| "{}".to_owned());
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let event = AuditEvent {
            event_id: format!("{}-{n:016x}", self.prefix),
            at_ms: now_ms(),
            user_id: principal.user.clone(),
            client_id: principal.client_id.clone(),
            tool: tool.to_owned(),
            outcome: outcome.as_str().to_owned(),
            duration_us: duration.as_micros().min(i64::MAX as u128) as i64,
            args_digest: portcullis_oauth::secret::hash(&args_json),
            args: self.keep_arguments.then_some(args_json),
            confirmation: confirmation.map(str::to_owned),
        };
        if self.tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(dropped = n, "audit queue full: events dropped");
            }
        }
    }
}
