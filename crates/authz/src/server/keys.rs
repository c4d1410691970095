//! The signing key ring: the active Ed25519 key, retired keys kept in the JWKS until the
//! last token they signed has expired, and the server's HMAC secret. Private halves are
//! stored sealed under the master key.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_oauth::jwt::{AccessClaims, SigningKey};
use portcullis_store::{KeyRow, Store};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::{AsConfig, MasterKey, StartError};
use crate::guard::{KeySet, LEEWAY_SECS};

const KEY_LABEL: &str = "portcullis signing key v1";
const HMAC_LABEL: &str = "portcullis hmac secret v1";
const REQUEST_STATE_LABEL: &str = "portcullis request state v1";

pub(super) struct KeyRing {
    master: MasterKey,
    active: RwLock<Arc<SigningKey>>,
    /// When the active key was made (Unix seconds), for scheduled rotation.
    active_since: std::sync::atomic::AtomicI64,
    public: Arc<KeySet>,
    hmac: hmac::Key,
    /// Seals MRTR `requestState` values; the same on every instance of one database.
    request_state: Arc<MasterKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

fn keys_err(e: impl std::fmt::Display) -> StartError {
    StartError::Keys(e.to_string())
}

impl KeyRing {
    pub(super) async fn load(
        master: MasterKey,
        store: &Store,
        rng: &SystemRandom,
        public: Arc<KeySet>,
        config: &AsConfig,
        now: i64,
    ) -> Result<Self, StartError> {
        let secret = shared_secret(&master, store, rng, "hmac", HMAC_LABEL, now).await?;
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let request_state = shared_secret(
            &master,
            store,
            rng,
            "request-state",
            REQUEST_STATE_LABEL,
            now,
        )
        .await?;
        let request_state = MasterKey::from_bytes(&request_state)
            .map(Arc::new)
            .ok_or_else(|| keys_err("the request-state key is unusable"))?;

        let rows = store.signing_keys().await?;
        let current = rows.iter().rev().find(|r| r.retired_at.is_none());
        let (active, since) = match current {
            Some(row) if row.created_at + config.key_rotation > now => {
                (open_key(&master, row)?, row.created_at)
            }
            _ => {
                let key = new_key(&master, store, rng, now).await?;
                tracing::info!(kid = key.kid(), "signing key created");
                (key, now)
            }
        };
        let ring = Self {
            master,
            active: RwLock::new(Arc::new(active)),
            active_since: std::sync::atomic::AtomicI64::new(since),
            public,
            hmac,
            request_state,
        };
        ring.publish(store, config, now).await?;
        Ok(ring)
    }

    /// Replaces the active key; the previous one stays in the JWKS until its tokens expire.
    pub(super) async fn rotate(
        &self,
        store: &Store,
        rng: &SystemRandom,
        config: &AsConfig,
        now: i64,
    ) -> Result<(), StartError> {
        let key = new_key(&self.master, store, rng, now).await?;
        tracing::info!(
            kid = key.kid(),
            "signing key rotated; the previous key stays published until its tokens expire"
        );
        if let Ok(mut a) = self.active.write() {
            *a = Arc::new(key);
        }
        self.active_since
            .store(now, std::sync::atomic::Ordering::Relaxed);
        self.publish(store, config, now).await
    }

    /// Rotates when the active key is older than the configured rotation period, and
    /// drops retired keys whose tokens have all expired.
    pub(super) async fn upkeep(
        &self,
        store: &Store,
        rng: &SystemRandom,
        config: &AsConfig,
        now: i64,
    ) -> Result<(), StartError> {
        if self.active_since.load(std::sync::atomic::Ordering::Relaxed) + config.key_rotation <= now
        {
            self.rotate(store, rng, config, now).await
        } else {
            self.publish(store, config, now).await
        }
    }

    async fn publish(&self, store: &Store, config: &AsConfig, now: i64) -> Result<(), StartError> {
        let horizon = now - config.access_ttl - LEEWAY_SECS;
        store.drop_retired_keys(horizon).await?;
        self.sync(store, config, now).await
    }

    /// Catches up with the keys in the store, which other instances may have rotated:
    /// publishes every key whose tokens may still be valid, and signs from now on with the
    /// newest active key if it is not this instance's. Two instances that rotate at the
    /// same moment both retire what was active; the newer of their keys wins everywhere
    /// at the next sync, and both stay published until their tokens expire.
    pub(super) async fn sync(
        &self,
        store: &Store,
        config: &AsConfig,
        now: i64,
    ) -> Result<(), StartError> {
        let rows = store.signing_keys().await?;
        self.public
            .replace(KeySet::usable(&rows, now, config.access_ttl));
        let newest = rows.iter().rev().find(|r| r.retired_at.is_none());
        let current = self.active.read().ok().map(|k| k.kid().to_owned());
        if let Some(row) = newest
            && current.as_deref() != Some(row.kid.as_str())
        {
            let key = open_key(&self.master, row)?;
            tracing::info!(
                kid = key.kid(),
                "signing with the key another instance made"
            );
            if let Ok(mut a) = self.active.write() {
                *a = Arc::new(key);
            }
            self.active_since
                .store(row.created_at, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn request_state_key(&self) -> Arc<MasterKey> {
        self.request_state.clone()
    }

    pub(super) fn sign(&self, claims: &AccessClaims) -> Option<String> {
        self.active.read().ok().map(|k| k.sign(claims))
    }

    /// The refresh token that replaces `old`: derived, not random, so a retry of the
    /// same refresh inside the grace window yields the same token without storing it.
    pub(super) fn successor(&self, old: &str) -> String {
        let tag = hmac::sign(&self.hmac, format!("refresh-rotation\0{old}").as_bytes());
        B64.encode(tag.as_ref())
    }
}

/// A 32-byte secret shared by every instance on this database (made by whichever starts
/// first), sealed at rest under the master key.
async fn shared_secret(
    master: &MasterKey,
    store: &Store,
    rng: &SystemRandom,
    name: &str,
    label: &str,
    now: i64,
) -> Result<[u8; 32], StartError> {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret)
        .map_err(|_| keys_err("random source failed"))?;
    let sealed = master
        .seal(label, &secret, rng)
        .ok_or_else(|| keys_err("sealing failed"))?;
    let stored = store.secret_or_insert(name, &sealed, now).await?;
    master
        .open(label, &stored)
        .and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok())
        .ok_or_else(|| {
            keys_err("the server secrets in the database cannot be decrypted with this master key: start with the master key this database was created with")
        })
}

fn open_key(master: &MasterKey, row: &KeyRow) -> Result<SigningKey, StartError> {
    let pkcs8 = master.open(KEY_LABEL, &row.private_enc).ok_or_else(|| {
        keys_err(format!(
            "signing key {} cannot be decrypted with this master key: start with the master key this database was created with",
            row.kid
        ))
    })?;
    SigningKey::from_pkcs8(row.kid.clone(), &pkcs8).map_err(keys_err)
}

async fn new_key(
    master: &MasterKey,
    store: &Store,
    rng: &SystemRandom,
    now: i64,
) -> Result<SigningKey, StartError> {
    let pkcs8 = SigningKey::generate_pkcs8(rng).map_err(keys_err)?;
    let mut kid = [0u8; 9];
    rng.fill(&mut kid)
        .map_err(|_| keys_err("random source failed"))?;
    let key = SigningKey::from_pkcs8(B64.encode(kid), &pkcs8).map_err(keys_err)?;
    let row = KeyRow {
        kid: key.kid().to_owned(),
        private_enc: master
            .seal(KEY_LABEL, &pkcs8, rng)
            .ok_or_else(|| keys_err("sealing failed"))?,
        public_key: key.verifying_key().public,
        created_at: now,
        retired_at: None,
    };
    store.rotate_signing_key(&row, now).await?;
    Ok(key)
}
