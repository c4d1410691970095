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
use std::net::IpAddr;
use std::sync::Mutex;

use portcullis_oauth::client::{self, ClientMetadata, ClientSettings, Source};

use crate::fetch::{Fenced, FetchError};

pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
const CACHE_MAX: usize = 1_000;
const DEFAULT_FRESH: i64 = 300;
const MIN_FRESH: i64 = 60;
const MAX_FRESH: i64 = 86_400;
const MAX_STALE: i64 = 7 * 86_400;

/// The test-only relaxations of client metadata fetches (see [`crate::fetch::FetchPolicy`]).
pub type CimdPolicy = crate::fetch::FetchPolicy;

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

impl From<FetchError> for CimdError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::NotHttps => CimdError::NotHttps(String::new()),
            FetchError::Forbidden(ip) => CimdError::Forbidden(ip),
            FetchError::Dns => CimdError::Dns,
            FetchError::Connect => CimdError::Connect,
            FetchError::Tls => CimdError::Tls,
            FetchError::Timeout => CimdError::Timeout,
            FetchError::Status(s) => CimdError::Status(s),
            FetchError::Redirect => CimdError::Redirect,
            FetchError::TooLarge(_) => CimdError::TooLarge,
            FetchError::NotJson => CimdError::NotJson,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    settings: ClientSettings,
    fresh_until: i64,
    fetched_at: i64,
}

#[derive(Debug)]
pub(super) struct CimdFetcher {
    fenced: Fenced,
    cache: Mutex<HashMap<String, Entry>>,
}

impl CimdFetcher {
    pub(super) fn new(policy: CimdPolicy) -> Result<Self, String> {
        if policy.allow_loopback {
            tracing::warn!(
                "TEST SETTING ON: client metadata documents may be fetched from loopback addresses; never use this in production"
            );
        }
        if let Some(path) = &policy.extra_roots {
            tracing::warn!(file = %path.display(), "TEST SETTING ON: extra root certificates trusted for client metadata documents");
        }
        Ok(Self {
            fenced: Fenced::new(policy)?,
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
        match self.fetch(url).await {
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
        self.fenced.policy().allow_loopback
            && url::Url::parse(url).is_ok_and(|u| {
                u.scheme() == "http"
                    && u.host()
                        .is_some_and(|h| portcullis_oauth::redirect::is_loopback_host(&h))
                    && u.path() != "/"
            })
    }

    async fn fetch(&self, url: &str) -> Result<(ClientSettings, Option<i64>), CimdError> {
        if !self.accepts_id(url) {
            return Err(CimdError::NotHttps(url.to_owned()));
        }
        let fetched = self
            .fenced
            .get_json(url, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| match e {
                FetchError::NotHttps => CimdError::NotHttps(url.to_owned()),
                other => other.into(),
            })?;
        let meta: ClientMetadata =
            serde_json::from_slice(&fetched.body).map_err(|e| CimdError::Invalid(e.to_string()))?;
        if meta.client_id.as_deref() != Some(url) {
            return Err(CimdError::ClientIdMismatch);
        }
        let settings = client::validate(&meta, Source::MetadataDocument)
            .map_err(|e| CimdError::Invalid(e.description.into_owned()))?;
        Ok((settings, fetched.max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
