//! Another server's signing keys (its JWKS), fetched through the SSRF fence and kept per
//! the answer's `Cache-Control`. A token naming an unknown `kid` makes the set be read
//! again (the server may have rotated), at most once per [`JWKS_REFETCH_FLOOR`], so made-up
//! kids cannot make this server hammer the other one. Used for an external authorization
//! server's access tokens and an upstream identity provider's ID tokens.

use std::sync::RwLock;

use portcullis_oauth::jws::{self, Jwk, JwsError, Signed};

use crate::fetch::Fenced;

/// Least time between two JWKS fetches caused by unknown key ids (or failures).
pub const JWKS_REFETCH_FLOOR: i64 = 10;
const MAX_JWKS_BYTES: usize = 64 * 1024;
const DEFAULT_FRESH: i64 = 3600;

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<Jwk>,
    fresh_until: i64,
    fetched_at: i64,
}

/// The keys published at one `jwks_uri`.
#[derive(Debug)]
pub struct RemoteKeys {
    uri: String,
    cache: RwLock<KeyCache>,
    refetching: tokio::sync::Mutex<()>,
}

impl RemoteKeys {
    pub fn new(uri: String) -> Self {
        Self {
            uri,
            cache: RwLock::new(KeyCache::default()),
            refetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a key set has been read.
    pub fn loaded(&self) -> bool {
        self.cache.read().is_ok_and(|k| !k.keys.is_empty())
    }

    /// Verifies a compact JWS with `alg` among `algorithms`, reading the keys first when
    /// none are held or they are stale, and again when the token names an unknown key.
    pub async fn verify(
        &self,
        fenced: &Fenced,
        token: &str,
        algorithms: &[&str],
        now: i64,
    ) -> Result<Signed, JwsError> {
        let check = || {
            let keys = self.cache.read().map_err(|_| JwsError::UnknownKey)?;
            jws::verify(token, &keys.keys, algorithms)
        };
        let mut signed = check();
        let stale = self.cache.read().is_ok_and(|k| k.fresh_until <= now);
        if (matches!(signed, Err(JwsError::UnknownKey)) || stale)
            && self.refresh_limited(fenced, now).await
        {
            signed = check();
        }
        signed
    }

    /// Rereads the JWKS if the last read is older than the floor; true when it did.
    async fn refresh_limited(&self, fenced: &Fenced, now: i64) -> bool {
        let fetched_at = || self.cache.read().map(|k| k.fetched_at).unwrap_or(0);
        let before = fetched_at();
        let _one_at_a_time = self.refetching.lock().await;
        let last = fetched_at();
        if last != before {
            return true; // reread by the request this one waited for: check again
        }
        if last > 0 && last + JWKS_REFETCH_FLOOR > now {
            return false;
        }
        match self.refresh(fenced, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "could not read signing keys");
                if let Ok(mut k) = self.cache.write() {
                    k.fetched_at = now; // the floor applies to failures too
                }
                false
            }
        }
    }

    /// Reads the key set now.
    pub async fn refresh(&self, fenced: &Fenced, now: i64) -> Result<(), String> {
        let uri = &self.uri;
        let fetched = fenced
            .get_json(uri, MAX_JWKS_BYTES)
            .await
            .map_err(|e| format!("{uri}: {e}"))?;
        let jwks = fetched
            .json()
            .ok_or_else(|| format!("{uri} is not a JWKS document"))?;
        let keys = Jwk::parse_set(&jwks);
        if keys.is_empty() {
            return Err(format!("{uri} holds no signing key this server can use"));
        }
        let fresh = fetched.max_age.unwrap_or(DEFAULT_FRESH).clamp(60, 86_400);
        if let Ok(mut k) = self.cache.write() {
            *k = KeyCache {
                keys,
                fresh_until: now + fresh,
                fetched_at: now,
            };
        }
        Ok(())
    }
}
