//! State shared by every handler instance in the process.
//!
//! The host makes one handler per 2025 session and one per 2026-07-28 request, so
//! anything that must outlive a request lives here and reaches the handlers through the
//! factory closure: the key that seals `requestState`, and the channel on which list
//! changes and resource updates reach `subscriptions/listen` streams and 2025 sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{RequestStateCodec, SealOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::resources::WATCHED_URI;

/// Something listeners may want to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    ToolList,
    PromptList,
    ResourceUpdated(String),
}

/// How often the watched resource changes (its description promises every 3 seconds).
const WATCH_PERIOD: Duration = Duration::from_secs(3);

/// How long a sealed `requestState` stays valid: a client answering an elicitation
/// may take a while, but not forever.
const STATE_TTL: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct Shared(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    codec: RequestStateCodec,
    changes: broadcast::Sender<Change>,
    /// Makes every sealed state unique, so each MRTR round gets a different one.
    nonce: AtomicU64,
    watched_revision: AtomicU64,
}

impl Shared {
    /// Creates the shared state with a fresh random sealing key.
    pub fn new() -> Result<Self, String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|err| format!("no OS random source: {err}"))?;
        let codec = RequestStateCodec::try_new(key.to_vec()).map_err(|err| err.to_string())?;
        let (changes, _) = broadcast::channel(64);
        Ok(Self(Arc::new(Inner {
            codec,
            changes,
            nonce: AtomicU64::new(0),
            watched_revision: AtomicU64::new(0),
        })))
    }

    /// Seals `state` for the tool or prompt `owner`; only that owner can open it again.
    pub fn seal<T: Serialize>(&self, owner: &str, state: &T) -> Result<String, String> {
        let sealed = Sealed {
            nonce: self.0.nonce.fetch_add(1, Ordering::Relaxed),
            state,
        };
        let payload = serde_json::to_vec(&sealed).map_err(|err| err.to_string())?;
        let options = SealOptions::new()
            .associated_data(owner.as_bytes())
            .ttl(STATE_TTL);
        Ok(self.0.codec.seal_with(&payload, &options))
    }

    /// Opens a state sealed by [`Self::seal`] for the same `owner`; `None` when it was
    /// forged, altered, expired or sealed for someone else.
    pub fn open<T: DeserializeOwned>(&self, owner: &str, sealed: &str) -> Option<T> {
        let payload = self.0.codec.open_with(sealed, owner.as_bytes()).ok()?;
        serde_json::from_slice::<Opened<T>>(&payload)
            .ok()
            .map(|opened| opened.state)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.0.changes.subscribe()
    }

    /// Tells every listener; nobody listening is not an error.
    pub fn announce(&self, change: Change) {
        let _ = self.0.changes.send(change);
    }

    pub fn watched_revision(&self) -> u64 {
        self.0.watched_revision.load(Ordering::Relaxed)
    }

    /// Bumps the watched resource every few seconds and announces it, forever.
    pub async fn run_watched_resource(self) {
        let mut ticks = tokio::time::interval(WATCH_PERIOD);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.0.watched_revision.fetch_add(1, Ordering::Relaxed);
            self.announce(Change::ResourceUpdated(WATCHED_URI.to_owned()));
        }
    }
}

#[derive(Serialize)]
struct Sealed<'a, T> {
    nonce: u64,
    state: &'a T,
}

#[derive(serde::Deserialize)]
struct Opened<T> {
    state: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_state_opens_only_intact_and_for_its_owner() {
        let shared = Shared::new().unwrap();
        let sealed = shared.seal("tool_a", &"round-2").unwrap();
        assert_eq!(
            shared.open::<String>("tool_a", &sealed).as_deref(),
            Some("round-2")
        );
        assert_eq!(shared.open::<String>("tool_b", &sealed), None);
        assert_eq!(
            shared.open::<String>("tool_a", &format!("{sealed}-TAMPERED")),
            None
        );
        // Another process (another key) cannot open it either.
        assert_eq!(
            Shared::new().unwrap().open::<String>("tool_a", &sealed),
            None
        );
    }

    #[test]
    fn every_seal_is_different() {
        let shared = Shared::new().unwrap();
        assert_ne!(shared.seal("t", &1).unwrap(), shared.seal("t", &1).unwrap());
    }
}
