//! Client ID Metadata Documents: when a `client_id` is an `https` URL, the document at
//! that URL describes the client. Fetching a URL that any client names is an SSRF risk,
//! so the fetch is fenced:
//! - `https` only; every resolved address must be public (loopback, private, link-local,
//!   unique-local and metadata ranges are refused after DNS resolution), and the
//!   connection goes to the checked address, so a second DNS answer cannot swap it;
//! - no redirects, 5 KB at most, 5 seconds in all, `application/json` only;
//! - the document's `client_id` must equal the URL.
//!
//! Documents are cached per their `Cache-Control` (bounded), and a stale copy is used
//! when a refetch fails, so a client's brief outage does not lock its users out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use portcullis_oauth::address;
use portcullis_oauth::client::{self, ClientMetadata, ClientSettings, Source};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CACHE_MAX: usize = 1_000;
const DEFAULT_FRESH: i64 = 300;
const MIN_FRESH: i64 = 60;
const MAX_FRESH: i64 = 86_400;
const MAX_STALE: i64 = 7 * 86_400;

/// Test-only relaxations, off by default and logged loudly when on.
#[derive(Debug, Clone, Default)]
pub struct CimdPolicy {
    /// Allow documents on loopback addresses (and over plain http there).
    pub allow_loopback: bool,
    /// Extra trusted root certificates (PEM), for a test server's self-signed certificate.
    pub extra_roots: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    #[error("client_id {0:?} is not an https URL with a path")]
    NotHttps(String),
    #[error(
        "the client metadata document's host resolves to {0}, a non-public address; it will not be fetched"
    )]
    Forbidden(IpAddr),
    #[error("the client metadata document's host could not be resolved")]
    Dns,
    #[error("could not connect to the client metadata document's host")]
    Connect,
    #[error("the TLS connection to the client metadata document's host failed")]
    Tls,
    #[error("fetching the client metadata document took longer than 5 seconds")]
    Timeout,
    #[error("the client metadata document URL answered HTTP {0}; it must answer 200")]
    Status(u16),
    #[error(
        "the client metadata document URL redirects; redirects are not followed, serve the document at the client_id URL itself"
    )]
    Redirect,
    #[error("the client metadata document is larger than 5 KB")]
    TooLarge,
    #[error("the client metadata document is not served as application/json")]
    NotJson,
    #[error("the client metadata document is not valid: {0}")]
    Invalid(String),
    #[error("the client metadata document's client_id differs from the URL it was fetched from")]
    ClientIdMismatch,
}

#[derive(Debug, Clone)]
struct Entry {
    settings: ClientSettings,
    fresh_until: i64,
    fetched_at: i64,
}

#[derive(Debug)]
pub(super) struct CimdFetcher {
    policy: CimdPolicy,
    tls: Arc<rustls::ClientConfig>,
    cache: Mutex<HashMap<String, Entry>>,
}

impl CimdFetcher {
    pub(super) fn new(policy: CimdPolicy) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if policy.allow_loopback {
            tracing::warn!(
                "TEST SETTING ON: client metadata documents may be fetched from loopback addresses; never use this in production"
            );
        }
        if let Some(path) = &policy.extra_roots {
            tracing::warn!(file = %path.display(), "TEST SETTING ON: extra root certificates trusted for client metadata documents");
            match CertificateDer::pem_file_iter(path) {
                Ok(certs) => {
                    for cert in certs.flatten() {
                        if let Err(e) = roots.add(cert) {
                            tracing::warn!(error = %e, "an extra root certificate was refused");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the extra root certificates"),
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup for client metadata fetches failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            policy,
            tls: Arc::new(tls),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The client described by the document at `url`, from the cache while fresh.
    pub(super) async fn get(&self, url: &str, now: i64) -> Result<ClientSettings, CimdError> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(url).cloned());
        if let Some(e) = &cached
            && e.fresh_until > now
        {
            return Ok(e.settings.clone());
        }
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(url))
            .await
            .unwrap_or(Err(CimdError::Timeout))
        {
            Ok((settings, max_age)) => {
                if let Ok(mut c) = self.cache.lock() {
                    if c.len() >= CACHE_MAX {
                        c.retain(|_, e| e.fresh_until > now);
                        if c.len() >= CACHE_MAX {
                            c.clear();
                        }
                    }
                    let fresh = max_age.unwrap_or(DEFAULT_FRESH).clamp(MIN_FRESH, MAX_FRESH);
                    c.insert(
                        url.to_owned(),
                        Entry {
                            settings: settings.clone(),
                            fresh_until: now + fresh,
                            fetched_at: now,
                        },
                    );
                }
                Ok(settings)
            }
            Err(err) => match cached {
                Some(e) if e.fetched_at + MAX_STALE > now => {
                    tracing::warn!(client_id = url, error = %err, "client metadata refetch failed; using the cached copy");
                    Ok(e.settings)
                }
                _ => Err(err),
            },
        }
    }

    /// The settings of a document already in the cache, fresh or not, without fetching:
    /// for pages that only name the client.
    pub(super) fn cached(&self, url: &str) -> Option<ClientSettings> {
        self.cache.lock().ok()?.get(url).map(|e| e.settings.clone())
    }

    /// Whether `url` may be a client id under this policy.
    pub(super) fn accepts_id(&self, url: &str) -> bool {
        if client::is_metadata_document_id(url) {
            return true;
        }
        self.policy.allow_loopback
            && url::Url::parse(url).is_ok_and(|u| {
                u.scheme() == "http"
                    && u.host()
                        .is_some_and(|h| portcullis_oauth::redirect::is_loopback_host(&h))
                    && u.path() != "/"
            })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        address::is_public(ip) || (self.policy.allow_loopback && ip.is_loopback())
    }

    /// Resolves `host` and returns the address to connect to, refusing the whole host if
    /// any of its addresses is not allowed.
    pub(super) async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, CimdError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| CimdError::Dns)?
            .collect();
        if let Some(bad) = addrs.iter().find(|a| !self.allowed(a.ip())) {
            return Err(CimdError::Forbidden(bad.ip()));
        }
        addrs.first().copied().ok_or(CimdError::Dns)
    }

    async fn fetch(&self, url: &str) -> Result<(ClientSettings, Option<i64>), CimdError> {
        if !self.accepts_id(url) {
            return Err(CimdError::NotHttps(url.to_owned()));
        }
        let parsed = url::Url::parse(url).map_err(|_| CimdError::NotHttps(url.to_owned()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| CimdError::NotHttps(url.to_owned()))?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addr = self.resolve(bare_host, port).await?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|_| CimdError::Connect)?;
        let mut path = parsed.path().to_owned();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        let authority = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                "portcullis (client metadata fetch)",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|_| CimdError::NotHttps(url.to_owned()))?;
        let response = if parsed.scheme() == "https" {
            let name = ServerName::try_from(bare_host.to_owned()).map_err(|_| CimdError::Tls)?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|_| CimdError::Tls)?;
            send(TokioIo::new(tls), request).await?
        } else {
            send(TokioIo::new(tcp), request).await?
        };
        let status = response.status();
        if status.is_redirection() {
            return Err(CimdError::Redirect);
        }
        if status != http::StatusCode::OK {
            return Err(CimdError::Status(status.as_u16()));
        }
        let json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"));
        if !json {
            return Err(CimdError::NotJson);
        }
        let max_age = max_age(response.headers());
        if let Some(len) = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            && len > MAX_DOCUMENT_BYTES
        {
            return Err(CimdError::TooLarge);
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CimdError::TooLarge
                } else {
                    CimdError::Connect
                }
            })?
            .to_bytes();
        let meta: ClientMetadata =
            serde_json::from_slice(&body).map_err(|e| CimdError::Invalid(e.to_string()))?;
        if meta.client_id.as_deref() != Some(url) {
            return Err(CimdError::ClientIdMismatch);
        }
        let settings = client::validate(&meta, Source::MetadataDocument)
            .map_err(|e| CimdError::Invalid(e.description.into_owned()))?;
        Ok((settings, max_age))
    }
}

async fn send<T>(
    io: TokioIo<T>,
    request: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, CimdError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| CimdError::Connect)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|_| CimdError::Connect)
}

fn max_age(headers: &http::HeaderMap) -> Option<i64> {
    let cc = headers
        .get(http::header::CACHE_CONTROL)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    if cc.contains("no-store") || cc.contains("no-cache") {
        return Some(0);
    }
    cc.split(',')
        .find_map(|d| d.trim().strip_prefix("max-age=")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_and_metadata_addresses_are_refused_before_any_connection() {
        let f = CimdFetcher::new(CimdPolicy::default()).unwrap();
        for (host, ip) in [
            ("10.0.0.1", "10.0.0.1"),
            ("169.254.169.254", "169.254.169.254"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("fd00::1", "fd00::1"),
        ] {
            assert_eq!(
                f.resolve(host, 443).await,
                Err(CimdError::Forbidden(ip.parse().unwrap())),
                "{host}"
            );
        }
        let err = f.resolve("localhost", 443).await.unwrap_err();
        assert!(err.to_string().contains("non-public"), "{err}");
        let loose = CimdFetcher::new(CimdPolicy {
            allow_loopback: true,
            extra_roots: None,
        })
        .unwrap();
        assert!(loose.resolve("127.0.0.1", 443).await.is_ok());
        assert!(
            matches!(
                loose.resolve("10.0.0.1", 443).await,
                Err(CimdError::Forbidden(_))
            ),
            "only loopback is relaxed"
        );
    }

    #[tokio::test]
    async fn a_stale_copy_serves_while_refetches_fail_for_a_week() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/doc.json",
            listener.local_addr().unwrap().port()
        );
        let body = serde_json::json!({"client_id": url, "client_name": "Doc", "redirect_uris": ["http://127.0.0.1/cb"]}).to_string();
        let server = tokio::spawn(async move {
            // One answer, then the listener is gone and every later fetch fails.
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await.unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=120\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            sock.write_all(head.as_bytes()).await.unwrap();
            sock.write_all(body.as_bytes()).await.unwrap();
        });
        let f = CimdFetcher::new(CimdPolicy {
            allow_loopback: true,
            extra_roots: None,
        })
        .unwrap();
        assert_eq!(
            f.get(&url, 1_000).await.unwrap().client_name.as_deref(),
            Some("Doc")
        );
        server.await.unwrap();
        assert!(
            f.get(&url, 1_100).await.is_ok(),
            "fresh for max-age: no fetch"
        );
        assert!(
            f.get(&url, 1_000 + 86_400).await.is_ok(),
            "stale copy while the refetch fails"
        );
        assert!(
            f.get(&url, 1_000 + MAX_STALE + 1).await.is_err(),
            "but not forever"
        );
    }

    #[test]
    fn cache_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=600".parse().unwrap(),
        );
        assert_eq!(max_age(&h), Some(600));
        h.insert(http::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(0));
    }
}
