//! Direct HTTPS (`--tls-cert`, `--tls-key`): rustls with the ring provider, HTTP/1.1 only
//! (ALPN `http/1.1`), and a certificate that can be replaced while serving.
//!
//! The certificate lives behind a resolver that every new handshake asks; a reload swaps
//! what the resolver holds, so connections already open keep going with the certificate
//! they started with, and new ones get the new one. Reloads happen when the files change
//! (their modification time and size are polled) and on SIGHUP. A replacement that does not
//! load (half written, not PEM, key not matching) is logged and the previous certificate
//! stays in service.

use std::fmt;
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

/// Where the certificate and key are, and how often to look for new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files are checked for changes; `None`: only on SIGHUP.
    pub poll: Option<Duration>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the certificate and key: both PEM, the key usable and matching the
/// certificate. Errors name the flag and the file and say what to do.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
    };
    let cert_pem = read("--tls-cert", &files.cert)?;
    let key_pem = read("--tls-key", &files.key)?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {cert_path} is not a valid PEM file: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {cert_path} holds no certificate: expected PEM with \
             -----BEGIN CERTIFICATE----- blocks, the server's certificate first"
        ));
    }
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(format!(
                "--tls-key {key_path} holds no private key: expected PEM with a \
                 -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY) block"
            ));
        }
        Err(e) => {
            return Err(format!(
                "--tls-key {key_path} is not a valid PEM private key: {e}"
            ));
        }
    };
    let provider = provider();
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        format!(
            "--tls-key {key_path} is not a usable private key ({e}): use an RSA, ECDSA P-256/P-384 or Ed25519 key"
        )
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "the private key in --tls-key {key_path} does not match the certificate in --tls-cert {cert_path}: \
                 give the key the certificate was issued for"
            ))
        }
        // The key type cannot report its public key: nothing to compare, accept it.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(format!(
            "--tls-cert {cert_path}: the first certificate cannot be used ({e})"
        )),
    }
}

/// A short digest of the server's certificate, to tell in the logs which one is in use.
pub fn fingerprint(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return "none".to_owned();
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    let hex: String = digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Hands every new handshake the current certificate.
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("certificate", &fingerprint(&self.get()))
            .finish()
    }
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// The certificate new handshakes get.
    pub fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The TLS side of the listener: the acceptor for new connections and the certificate
/// behind it.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<CertResolver>,
    files: TlsFiles,
    /// SIGHUP, listened for from the start (so one sent as soon as the server is ready
    /// reloads instead of ending the process), until the reloader takes it.
    #[cfg(unix)]
    hangup: Arc<Mutex<Option<tokio::signal::unix::Signal>>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .field("resolver", &self.resolver)
            .finish()
    }
}

impl Tls {
    /// Loads the certificate and key (an error says what is wrong with which file) and
    /// makes the server configuration: TLS 1.2 and 1.3, HTTP/1.1.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let key = load(&files)?;
        tracing::info!(
            cert = %files.cert.display(),
            fingerprint = %fingerprint(&key),
            "TLS certificate loaded"
        );
        let resolver = Arc::new(CertResolver::new(key));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        #[cfg(unix)]
        let hangup = if tokio::runtime::Handle::try_current().is_ok() {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP: the certificate is reloaded only when its files change");
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            resolver,
            files,
            #[cfg(unix)]
            hangup: Arc::new(Mutex::new(hangup)),
        })
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.resolver.get()
    }

    /// Loads the files again; on success new handshakes get the new certificate, on
    /// failure the reason is logged and the previous certificate stays.
    pub fn reload(&self, why: &str) -> bool {
        match load(&self.files) {
            Ok(key) => {
                let new = fingerprint(&key);
                let old = fingerprint(&self.resolver.get());
                self.resolver.set(key);
                if new == old {
                    tracing::info!(fingerprint = %new, trigger = why, "TLS certificate reloaded (unchanged)");
                } else {
                    tracing::info!(fingerprint = %new, previous = %old, trigger = why, "TLS certificate reloaded: new connections use the new certificate");
                }
                true
            }
            Err(e) => {
                tracing::error!(
                    trigger = why,
                    "cannot reload the TLS certificate, still serving the previous one: {e}"
                );
                false
            }
        }
    }

    /// Watches for new certificates until `stop`: on SIGHUP (unix) at once, and, when
    /// polling, after the files changed and then stayed unchanged for one more poll (so a
    /// certificate and key being written one after the other are read together).
    pub fn spawn_reloader(&self, stop: CancellationToken) {
        #[cfg(unix)]
        let mut hangup = match self.hangup.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let tls = self.clone();
        tokio::spawn(async move {
            let mut loaded = tls.stamps();
            let mut seen = loaded;
            let mut ticker = tls.files.poll.map(|every| {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let tick = async {
                    match ticker.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(unix)]
                let hup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await.is_some(),
                        None => std::future::pending::<bool>().await,
                    }
                };
                #[cfg(not(unix))]
                let hup = std::future::pending::<bool>();
                tokio::select! {
                    () = stop.cancelled() => return,
                    got = hup => {
                        if got {
                            let now = tls.stamps();
                            tls.reload("SIGHUP");
                            loaded = now;
                            seen = now;
                        }
                    }
                    () = tick => {
                        let now = tls.stamps();
                        if now != seen {
                            // Changed since the last look: wait one more poll for it to settle.
                            seen = now;
                        } else if now != loaded {
                            tls.reload("the certificate files changed");
                            loaded = now;
                        }
                    }
                }
            }
        });
    }

    /// What tells a changed file: modification time and size of both files.
    fn stamps(&self) -> [Option<(SystemTime, u64)>; 2] {
        let stamp = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        [stamp(&self.files.cert), stamp(&self.files.key)]
    }
}
