//! Secrets at rest: the master key, and sealing (AEAD) of everything it protects
//! (private signing keys, the server's HMAC secret). The master key never enters the
//! database; losing it makes the stored keys unreadable, so the log says where it is.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64STD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "PORTCULLIS_MASTER_KEY must be 32 bytes encoded as base64 (e.g. `openssl rand -base64 32`)"
    )]
    BadEnv,
    #[error(
        "master key file {0} must hold 32 bytes encoded as base64; restore it from your backup"
    )]
    BadFile(PathBuf),
    #[error("cannot read master key file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot create master key file {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("the system random source failed")]
    Random,
}

/// The key that encrypts server secrets in the store.
pub struct MasterKey(LessSafeKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn key_from(bytes: &[u8]) -> Option<MasterKey> {
    UnboundKey::new(&CHACHA20_POLY1305, bytes)
        .ok()
        .map(|k| MasterKey(LessSafeKey::new(k)))
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        key_from(bytes)
    }

    /// Loads the master key: from `env_value` (base64) when given, else from `file`,
    /// generating the file (mode 0600) on first start. Returns whether it was generated.
    pub fn load(
        env_value: Option<&str>,
        file: &Path,
        rng: &SystemRandom,
    ) -> Result<(Self, bool), MasterKeyError> {
        if let Some(v) = env_value {
            let bytes = B64STD
                .decode(v.trim())
                .map_err(|_| MasterKeyError::BadEnv)?;
            return key_from(&bytes)
                .filter(|_| bytes.len() == 32)
                .map(|k| (k, false))
                .ok_or(MasterKeyError::BadEnv);
        }
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let bytes = B64STD
                    .decode(text.trim())
                    .map_err(|_| MasterKeyError::BadFile(file.to_owned()))?;
                key_from(&bytes)
                    .filter(|_| bytes.len() == 32)
                    .map(|k| (k, false))
                    .ok_or_else(|| MasterKeyError::BadFile(file.to_owned()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rng.fill(&mut bytes).map_err(|_| MasterKeyError::Random)?;
                write_private(file, &B64STD.encode(bytes))
                    .map_err(|e| MasterKeyError::Write(file.to_owned(), e))?;
                key_from(&bytes)
                    .map(|k| (k, true))
                    .ok_or(MasterKeyError::Random)
            }
            Err(e) => Err(MasterKeyError::Read(file.to_owned(), e)),
        }
    }

    /// Encrypts `plain`, binding it to `label` (so a sealed value can't be moved to
    /// another purpose). Output: nonce || ciphertext || tag.
    pub fn seal(&self, label: &str, plain: &[u8], rng: &SystemRandom) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).ok()?;
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(out)
    }

    pub fn open(&self, label: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_label_binding() {
        let rng = SystemRandom::new();
        let k = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = k.seal("signing-key", b"secret", &rng).unwrap();
        assert_eq!(k.open("signing-key", &sealed).unwrap(), b"secret");
        assert!(
            k.open("hmac", &sealed).is_none(),
            "a sealed value is bound to its label"
        );
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open("signing-key", &sealed).is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(k.open("signing-key", &tampered).is_none());
    }

    #[test]
    fn generated_file_is_private_and_reloads() {
        let dir = std::env::temp_dir().join(format!("pc-mk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("master.key");
        let rng = SystemRandom::new();
        let (k1, generated) = MasterKey::load(None, &file, &rng).unwrap();
        assert!(generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (k2, generated) = MasterKey::load(None, &file, &rng).unwrap();
        assert!(!generated);
        let sealed = k1.seal("x", b"v", &rng).unwrap();
        assert_eq!(k2.open("x", &sealed).unwrap(), b"v");
        assert!(matches!(
            MasterKey::load(Some("short"), &file, &rng),
            Err(MasterKeyError::BadEnv)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
