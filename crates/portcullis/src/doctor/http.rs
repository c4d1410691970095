//! The doctor's HTTP client: one HTTP/1.1 request per connection, over TCP or rustls,
//! with a time limit, a 1 MiB response cap and no redirects followed (a redirect is
//! reported as what it is, since MCP clients differ in whether they follow one).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use url::Url;

/// Largest response body read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header, joined with ", " (how repeated list headers combine).
    pub fn header_all(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The start of the body as text, for error details.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > 160 {
            let cut: String = one_line.chars().take(160).collect();
            format!("{cut}…")
        } else {
            one_line
        }
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not a URL this client can fetch (http or https with a host)")]
    BadUrl(String),
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("no complete answer within {0} seconds")]
    Timeout(u64),
    #[error("the response is larger than 1 MiB")]
    TooLarge,
    #[error("HTTP exchange failed: {0}")]
    Http(String),
}

impl Client {
    /// A client trusting the Mozilla roots, plus the PEM certificates in `ca_file`.
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    format!("--ca-file {} holds a bad certificate: {e}", path.display())
                })?;
                roots.add(cert).map_err(|e| {
                    format!(
                        "--ca-file {}: a certificate cannot be a root: {e}",
                        path.display()
                    )
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "--ca-file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(tls),
            timeout,
        })
    }

    pub async fn get(&self, url: &Url, headers: &[(&str, &str)]) -> Result<Response, FetchError> {
        self.send(Method::GET, url, headers, None).await
    }

    /// Sends one request and reads the whole answer, within the time limit.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, FetchError> {
        let secs = self.timeout.as_secs().max(1);
        tokio::time::timeout(self.timeout, self.exchange(method, url, headers, body))
            .await
            .unwrap_or(Err(FetchError::Timeout(secs)))
    }

    async fn exchange(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, FetchError> {
        let started = Instant::now();
        let bad = || FetchError::BadUrl(url.to_string());
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let host = url.host_str().ok_or_else(bad)?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().ok_or_else(bad)?;
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare_host, port))
            .await
            .map_err(|e| FetchError::Dns {
                host: bare_host.to_owned(),
                reason: e.to_string(),
            })?
            .collect();
        let mut last_error = None;
        let mut tcp = None;
        for addr in &addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => {
                    last_error = Some(FetchError::Connect {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        let Some(tcp) = tcp else {
            return Err(last_error.unwrap_or_else(|| FetchError::Dns {
                host: bare_host.to_owned(),
                reason: "no addresses".to_owned(),
            }));
        };
        let (target, authority) = portcullis_authz::fetch::request_target(url);
        let mut builder = http::Request::builder()
            .method(method)
            .uri(target)
            .header(http::header::HOST, authority)
            .header(
                http::header::USER_AGENT,
                concat!("portcullis-doctor/", env!("CARGO_PKG_VERSION")),
            )
            .header(http::header::CONNECTION, "close");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = if https {
            let name = ServerName::try_from(bare_host.to_owned()).map_err(|_| bad())?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls {
                    host: bare_host.to_owned(),
                    reason: describe_tls_error(&e, bare_host),
                })?;
            exchange_on(TokioIo::new(stream), request).await?
        } else {
            exchange_on(TokioIo::new(tcp), request).await?
        };
        let status = response.status();
        let headers = response.headers().clone();
        if headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|len| len > MAX_BODY_BYTES)
        {
            return Err(FetchError::TooLarge);
        }
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Http(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        })
    }
}

async fn exchange_on<T>(
    io: TokioIo<T>,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, FetchError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))
}

/// A TLS failure in words a person deploying a server can act on.
fn describe_tls_error(error: &std::io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("{error} (is this port serving TLS? try http:// if it is not)");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "the certificate is not signed by a trusted authority (self-signed, a private CA, or the server does not send its intermediate certificates)".to_owned(),
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the certificate is not valid yet (check the server's clock)".to_owned()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("the certificate is not valid for the name {host}")
            }
            C::Revoked => "the certificate has been revoked".to_owned(),
            C::BadSignature | C::BadEncoding => "the certificate is malformed or badly signed".to_owned(),
            other => format!("invalid certificate: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server ended the handshake with the alert {alert:?}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer with TLS (is this port serving plain http? try http://)"
                .to_owned()
        }
        other => other.to_string(),
    }
}
