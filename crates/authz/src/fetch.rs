//! Outbound HTTP to URLs that others name: client metadata documents, and an external or
//! upstream authorization server's metadata, keys and introspection endpoint. Each such
//! fetch is a server-side request forgery risk, so every one is fenced the same way:
//! - `https` only (plain `http` only to loopback, and only with the test setting);
//! - every address the host resolves to must be public: loopback, private, link-local,
//!   unique-local and cloud-metadata ranges are refused after DNS resolution, and the
//!   connection goes to the checked address, so a second DNS answer cannot swap it;
//! - no redirects, a size limit per call, JSON only, and a deadline.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use portcullis_oauth::address;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

/// How long one fetch may take in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Test-only relaxations, off by default and logged loudly when on.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    /// Allow loopback addresses (and plain http there).
    pub allow_loopback: bool,
    /// Extra trusted root certificates (PEM), for a test server's self-signed certificate.
    pub extra_roots: Option<PathBuf>,
}

/// Why a fetch failed. Callers wrap it in words about what they were fetching.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the URL is not https")]
    NotHttps,
    #[error("the host resolves to {0}, a non-public address; it will not be fetched")]
    Forbidden(IpAddr),
    #[error("the host could not be resolved")]
    Dns,
    #[error("could not connect to the host")]
    Connect,
    #[error("the TLS connection to the host failed")]
    Tls,
    #[error("the fetch took longer than 5 seconds")]
    Timeout,
    #[error("the URL answered HTTP {0}")]
    Status(u16),
    #[error("the URL redirects; redirects are not followed")]
    Redirect,
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer is not JSON")]
    NotJson,
}

/// A JSON answer: its status, body, and how long it may be cached (`Cache-Control`).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub body: Bytes,
    pub max_age: Option<i64>,
}

impl Fetched {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The fenced HTTP client; cheap to share.
#[derive(Debug)]
pub struct Fenced {
    policy: FetchPolicy,
    tls: Arc<rustls::ClientConfig>,
}

impl Fenced {
    pub fn new(policy: FetchPolicy) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &policy.extra_roots {
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
            .map_err(|e| format!("TLS setup for outbound fetches failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            policy,
            tls: Arc::new(tls),
        })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Whether `url` may be fetched at all: https, or http to a loopback host under the
    /// test setting.
    pub fn allows_url(&self, url: &url::Url) -> bool {
        match url.scheme() {
            "https" => url.host().is_some(),
            "http" => {
                self.policy.allow_loopback
                    && url
                        .host()
                        .is_some_and(|h| portcullis_oauth::redirect::is_loopback_host(&h))
            }
            _ => false,
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        address::is_public(ip) || (self.policy.allow_loopback && ip.is_loopback())
    }

    /// Resolves `host` and returns the address to connect to, refusing the whole host if
    /// any of its addresses is not allowed.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, FetchError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| FetchError::Dns)?
            .collect();
        if let Some(bad) = addrs.iter().find(|a| !self.allowed(a.ip())) {
            return Err(FetchError::Forbidden(bad.ip()));
        }
        addrs.first().copied().ok_or(FetchError::Dns)
    }

    /// GETs JSON from `url`: 200 only, at most `limit` bytes.
    pub async fn get_json(&self, url: &str, limit: usize) -> Result<Fetched, FetchError> {
        self.get(url, None, limit).await
    }

    /// GETs JSON from `url` with an `Authorization` header (a bearer token for a userinfo
    /// or user API): 200 only, at most `limit` bytes.
    pub async fn get_json_authorized(
        &self,
        url: &str,
        authorization: &str,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        self.get(url, Some(authorization), limit).await
    }

    async fn get(
        &self,
        url: &str,
        authorization: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let fetched = self.send(url, None, authorization, limit).await?;
        if fetched.status != 200 {
            return Err(FetchError::Status(fetched.status));
        }
        Ok(fetched)
    }

    /// POSTs a form to `url` (with an `Authorization` header when given) and returns the
    /// JSON answer whatever its status, for the caller to read OAuth errors from.
    pub async fn post_form(
        &self,
        url: &str,
        form: String,
        authorization: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        self.send(url, Some(form), authorization, limit).await
    }

    async fn send(
        &self,
        url: &str,
        form: Option<String>,
        authorization: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        tokio::time::timeout(
            FETCH_TIMEOUT,
            self.send_now(url, form, authorization, limit),
        )
        .await
        .unwrap_or(Err(FetchError::Timeout))
    }

    async fn send_now(
        &self,
        url: &str,
        form: Option<String>,
        authorization: Option<&str>,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::NotHttps)?;
        if !self.allows_url(&parsed) {
            return Err(FetchError::NotHttps);
        }
        let host = parsed.host_str().ok_or(FetchError::NotHttps)?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addr = self.resolve(bare_host, port).await?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|_| FetchError::Connect)?;
        let (path, authority) = request_target(&parsed);
        let mut request = http::Request::builder()
            .method(if form.is_some() { "POST" } else { "GET" })
            .uri(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "portcullis");
        if form.is_some() {
            request = request.header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        if let Some(auth) = authorization {
            request = request.header(http::header::AUTHORIZATION, auth);
        }
        let request = request
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|_| FetchError::NotHttps)?;
        let response = if parsed.scheme() == "https" {
            let name = ServerName::try_from(bare_host.to_owned()).map_err(|_| FetchError::Tls)?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|_| FetchError::Tls)?;
            exchange(TokioIo::new(tls), request).await?
        } else {
            exchange(TokioIo::new(tcp), request).await?
        };
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect);
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
            return Err(if status.is_success() {
                FetchError::NotJson
            } else {
                FetchError::Status(status.as_u16())
            });
        }
        let max_age = max_age(response.headers());
        if let Some(len) = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            && len > limit
        {
            return Err(FetchError::TooLarge(limit));
        }
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge(limit)
                } else {
                    FetchError::Connect
                }
            })?
            .to_bytes();
        Ok(Fetched {
            status: status.as_u16(),
            body,
            max_age,
        })
    }
}

/// What an HTTP/1.1 request to `url` names: the path with its query (the request target)
/// and the `Host` header's value (the port only when the URL states one).
pub fn request_target(url: &url::Url) -> (String, String) {
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = url.host_str().unwrap_or("");
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    (target, authority)
}

/// HTTP Basic credentials of an OAuth client at another server: id and secret each
/// form-encoded first (RFC 6749 section 2.3.1), as the token and introspection endpoints
/// expect.
pub fn basic_auth(client_id: &str, client_secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(client_id),
            enc(client_secret)
        ))
    )
}

async fn exchange<T>(
    io: TokioIo<T>,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, FetchError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| FetchError::Connect)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|_| FetchError::Connect)
}

/// Seconds a response may be cached: `max-age`, or 0 for `no-store`/`no-cache`.
pub fn max_age(headers: &http::HeaderMap) -> Option<i64> {
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
        let f = Fenced::new(FetchPolicy::default()).unwrap();
        for (host, ip) in [
            ("10.0.0.1", "10.0.0.1"),
            ("169.254.169.254", "169.254.169.254"),
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("fd00::1", "fd00::1"),
            ("192.168.1.1", "192.168.1.1"),
            ("100.64.0.1", "100.64.0.1"),
        ] {
            assert_eq!(
                f.resolve(host, 443).await,
                Err(FetchError::Forbidden(ip.parse().unwrap())),
                "{host}"
            );
        }
        let err = f.resolve("localhost", 443).await.unwrap_err();
        assert!(err.to_string().contains("non-public"), "{err}");
        let loose = Fenced::new(FetchPolicy {
            allow_loopback: true,
            extra_roots: None,
        })
        .unwrap();
        assert!(loose.resolve("127.0.0.1", 443).await.is_ok());
        assert!(
            matches!(
                loose.resolve("10.0.0.1", 443).await,
                Err(FetchError::Forbidden(_))
            ),
            "only loopback is relaxed"
        );
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback_under_the_test_setting() {
        let strict = Fenced::new(FetchPolicy::default()).unwrap();
        let loose = Fenced::new(FetchPolicy {
            allow_loopback: true,
            extra_roots: None,
        })
        .unwrap();
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(strict.allows_url(&u("https://idp.example/.well-known/openid-configuration")));
        assert!(!strict.allows_url(&u("http://127.0.0.1:9/x")));
        assert!(loose.allows_url(&u("http://127.0.0.1:9/x")));
        assert!(!loose.allows_url(&u("http://idp.example/x")));
        assert!(!loose.allows_url(&u("ftp://127.0.0.1/x")));
        assert_eq!(
            strict
                .get_json("http://127.0.0.1:9/x", 100)
                .await
                .unwrap_err(),
            FetchError::NotHttps
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
