//! HTTPS served by Portcullis itself (`--tls-cert`, `--tls-key`), over real sockets with a
//! real TLS client: the endpoints and the metadata over https, the certificate replaced
//! while serving (new connections get the new one, open ones keep going, a broken file is
//! refused), clear start-up errors for bad settings, graceful shutdown over TLS, and
//! forwarded headers honoured only from trusted proxies.
//!
//! Certificates are made at test time with the `openssl` command.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis::host::{HostConfig, OriginPolicy, mcp_router};
use portcullis::tls::{Tls, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::SlowTools;

// ---- certificates ------------------------------------------------------------------------

/// A scratch directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("portcullis-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA in `dir`: ca.pem and ca.key.
fn make_ca(dir: &Dir) {
    openssl(
        &dir.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=portcullis test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
}

/// A certificate for 127.0.0.1 named `name` (its CN), signed by the CA: `{name}.pem` and
/// `{name}.key`. Returns the certificate (DER).
fn make_leaf(dir: &Dir, name: &str) -> Vec<u8> {
    openssl(
        &dir.0,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join(&format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir.0,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    der(&dir.join(&format!("{name}.pem")))
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// Puts `name`'s certificate and key where the server reads them (server.pem, server.key),
/// overwriting in place as an editor or `cp` would.
fn install(dir: &Dir, name: &str) {
    std::fs::copy(dir.join(&format!("{name}.pem")), dir.join("server.pem")).unwrap();
    std::fs::copy(dir.join(&format!("{name}.key")), dir.join("server.key")).unwrap();
}

// ---- a TLS client ------------------------------------------------------------------------

/// One keep-alive HTTPS connection: the certificate the server showed, the protocol it
/// chose, and a sender for any number of requests.
struct Conn {
    cert: Vec<u8>,
    alpn: Option<Vec<u8>>,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

async fn connect(port: u16, ca: &Path) -> Conn {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1".to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let (_, session) = tls.get_ref();
    let cert = session.peer_certificates().unwrap()[0].to_vec();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    Conn { cert, alpn, sender }
}

impl Conn {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, String) {
        self.sender.ready().await.unwrap();
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    async fn get(&mut self, path: &str) -> (StatusCode, HeaderMap, String) {
        self.send("GET", path, &[], "").await
    }
}

// ---- the binary --------------------------------------------------------------------------

fn binary() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .env_remove("PORTCULLIS_TLS_CERT")
        .env_remove("PORTCULLIS_TLS_KEY")
        .env_remove("PORTCULLIS_TRUSTED_PROXIES")
        .env_remove("PORTCULLIS_PUBLIC_URL");
    command
}

/// A running `portcullis serve`, its log lines collected as they come.
struct Server {
    child: tokio::process::Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `portcullis serve ARGS --bind 127.0.0.1:<free port>`, once it logged that it is ready.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = binary()
            .arg("serve")
            .args(args)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("PORTCULLIS_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let collected = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        let server = Self { child, port, log };
        server.wait_log(0, "portcullis ready").await;
        server
    }

    fn lines(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The first log line from line `from` on that contains `needle` (waits up to 10 s).
    async fn wait_log(&self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .find(|l| l.contains(needle))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with {needle:?}; the log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

/// Runs `portcullis serve ARGS` expecting it to refuse to start; returns (exit code, stderr).
async fn refused(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        binary()
            .arg("serve")
            .args(args)
            .args(["--auth", "none", "--bind", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the binary should have refused to start")
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// ---- the tests ---------------------------------------------------------------------------

#[tokio::test]
async fn https_serves_the_endpoints_and_https_metadata() {
    let dir = Dir::new("serve");
    make_ca(&dir);
    let leaf = make_leaf(&dir, "leaf");
    let server = Server::start(
        &[
            "--tls-cert",
            &dir.arg("leaf.pem"),
            "--tls-key",
            &dir.arg("leaf.key"),
            "--database-url",
            &format!("sqlite://{}", dir.arg("p.db")),
            "--master-key-file",
            &dir.arg("p.key"),
        ],
        &[],
    )
    .await;
    let port = server.port;
    let ready = server.wait_log(0, "portcullis ready").await;
    assert!(
        ready.contains(&format!("https://127.0.0.1:{port}/mcp")),
        "without --public-url the default is https: {ready}"
    );

    let mut conn = connect(port, &dir.join("ca.pem")).await;
    assert_eq!(conn.cert, leaf);
    assert_eq!(
        conn.alpn.as_deref(),
        Some(&b"http/1.1"[..]),
        "HTTP/1.1 only"
    );
    let (status, _, body) = conn.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The MCP endpoint asks for a token, pointing at https metadata.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "tls-test", "version": "0"}}});
    let (status, headers, _) = conn
        .send(
            "POST",
            "/mcp",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ],
            &initialize.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers["www-authenticate"].to_str().unwrap().to_owned();
    let prm_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no resource_metadata: {challenge}"));
    let origin = format!("https://127.0.0.1:{port}");
    let prm_path = prm_url
        .strip_prefix(&origin)
        .unwrap_or_else(|| panic!("resource_metadata is not on {origin}: {prm_url}"));

    // The same connection (keep-alive) fetches the metadata: everything says https.
    let (status, _, body) = conn.get(prm_path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let prm: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(prm["resource"], format!("{origin}/mcp"));
    assert_eq!(prm["authorization_servers"][0], origin);
    let (status, _, body) = conn.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let asm: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(asm["issuer"], origin);
    assert_eq!(asm["token_endpoint"], format!("{origin}/oauth/token"));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut plain,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut answer),
    )
    .await
    .unwrap();
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn certificate_reloads_for_new_connections_and_open_ones_continue() {
    let dir = Dir::new("reload");
    make_ca(&dir);
    let one = make_leaf(&dir, "one");
    let two = make_leaf(&dir, "two");
    let three = make_leaf(&dir, "three");
    make_leaf(&dir, "four");
    install(&dir, "one");
    let ca = dir.join("ca.pem");
    let server = Server::start(
        &[
            "--auth",
            "none",
            "--tls-cert",
            &dir.arg("server.pem"),
            "--tls-key",
            &dir.arg("server.key"),
            "--tls-reload-interval",
            "1",
        ],
        &[],
    )
    .await;
    let port = server.port;

    let mut open = connect(port, &ca).await;
    assert_eq!(open.cert, one);
    assert_eq!(open.get("/healthz").await.0, StatusCode::OK);

    // A new certificate, and SIGHUP: new connections get it.
    let mark = server.lines();
    install(&dir, "two");
    server.signal("HUP");
    let line = server.wait_log(mark, "TLS certificate reloaded").await;
    assert!(line.contains("sha256:"), "{line}");
    let mut fresh = connect(port, &ca).await;
    assert_eq!(fresh.cert, two, "a new connection sees the new certificate");
    assert_eq!(fresh.get("/healthz").await.0, StatusCode::OK);
    // The connection opened before the reload still serves requests.
    assert_eq!(open.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(open.cert, one);

    // A broken replacement is refused, loudly, and the previous certificate stays.
    let mark = server.lines();
    std::fs::write(dir.join("server.pem"), "this is not a certificate\n").unwrap();
    server.signal("HUP");
    let line = server
        .wait_log(mark, "cannot reload the TLS certificate")
        .await;
    assert!(line.contains("still serving the previous one"), "{line}");
    assert!(line.contains("holds no certificate"), "{line}");
    assert_eq!(connect(port, &ca).await.cert, two);
    // A key that does not match the certificate, the same.
    let mark = server.lines();
    std::fs::copy(dir.join("four.pem"), dir.join("server.pem")).unwrap();
    server.signal("HUP");
    let line = server
        .wait_log(mark, "cannot reload the TLS certificate")
        .await;
    assert!(line.contains("does not match the certificate"), "{line}");
    assert_eq!(connect(port, &ca).await.cert, two);
    assert_eq!(open.get("/healthz").await.0, StatusCode::OK);

    // Without a signal: the files are polled (every second here) and picked up.
    let mark = server.lines();
    install(&dir, "three");
    let line = server
        .wait_log(
            mark,
            "TLS certificate reloaded: new connections use the new certificate",
        )
        .await;
    assert!(line.contains("files changed"), "{line}");
    assert_eq!(connect(port, &ca).await.cert, three);
    assert_eq!(open.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(fresh.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_tls_settings_are_refused_with_the_reason() {
    let dir = Dir::new("bad");
    make_ca(&dir);
    make_leaf(&dir, "a");
    make_leaf(&dir, "b");
    let (cert_a, key_a, key_b) = (dir.arg("a.pem"), dir.arg("a.key"), dir.arg("b.key"));
    let missing = dir.arg("missing.pem");
    std::fs::write(dir.join("junk.pem"), "hello\n").unwrap();
    let junk = dir.arg("junk.pem");

    for (args, env, code, says) in [
        (
            vec!["--tls-cert", cert_a.as_str()],
            vec![],
            2,
            "--tls-cert needs --tls-key",
        ),
        (
            vec!["--tls-key", key_a.as_str()],
            vec![],
            2,
            "--tls-key needs --tls-cert",
        ),
        (
            vec![],
            vec![("PORTCULLIS_TLS_CERT", cert_a.as_str())],
            2,
            "--tls-cert needs --tls-key (PORTCULLIS_TLS_KEY)",
        ),
        (
            vec!["--tls-cert", missing.as_str(), "--tls-key", key_a.as_str()],
            vec![],
            1,
            "cannot read --tls-cert",
        ),
        (
            vec!["--tls-cert", junk.as_str(), "--tls-key", key_a.as_str()],
            vec![],
            1,
            "holds no certificate",
        ),
        (
            vec!["--tls-cert", cert_a.as_str(), "--tls-key", cert_a.as_str()],
            vec![],
            1,
            "holds no private key",
        ),
        (
            vec!["--tls-cert", cert_a.as_str(), "--tls-key", key_b.as_str()],
            vec![],
            1,
            "does not match the certificate",
        ),
        (
            vec!["--trusted-proxies", "10.0.0.0/8,10.1.2.3/8"],
            vec![],
            2,
            "did you mean 10.0.0.0/8?",
        ),
    ] {
        let (got, stderr) = refused(&args, &env).await;
        assert_eq!(got, code, "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} {env:?}: {stderr}");
        if code == 1 {
            assert!(
                stderr.contains(&missing) || stderr.contains(&dir.0.display().to_string()),
                "names the file: {stderr}"
            );
        }
        if args.contains(&"--trusted-proxies") {
            assert!(stderr.contains("--trusted-proxies"), "{stderr}");
        }
    }
}

/// Over TLS too, shutdown lets the request in flight finish, then stops.
#[tokio::test]
async fn tls_shutdown_finishes_in_flight_requests_then_stops() {
    let dir = Dir::new("shutdown");
    make_ca(&dir);
    make_leaf(&dir, "leaf");
    let tls = Tls::new(TlsFiles {
        cert: dir.join("leaf.pem"),
        key: dir.join("leaf.key"),
        poll: None,
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = HostConfig {
        policy: OriginPolicy {
            origins: vec![],
            hosts: vec!["127.0.0.1".into()],
        },
        ..HostConfig::default()
    };
    let (router, handle) = mcp_router(&config, SlowTools::new);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portcullis::server::serve_tls(
        listener,
        router,
        handle,
        Duration::from_secs(5),
        async {
            let _ = stop_rx.await;
        },
        tls,
    ));

    let mut conn = connect(port, &dir.join("ca.pem")).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "sleep", "arguments": {"ms": 700},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let in_flight = tokio::spawn(async move {
        conn.send(
            "POST",
            "/mcp",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "sleep"),
            ],
            &call.to_string(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    stop_tx.send(()).unwrap();
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("done"), "the in-flight call finished: {body}");
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("server stops once idle")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "no longer accepting"
    );
}

/// The client address in the request's log lines (`client_ip` in the JSON `span`) is the
/// X-Forwarded-For one only when the peer is a trusted proxy; over TLS the peer address
/// reaches the application as it does over plain HTTP.
#[tokio::test]
async fn forwarded_for_is_honoured_only_from_trusted_proxies() {
    let dir = Dir::new("forwarded");
    make_ca(&dir);
    make_leaf(&dir, "leaf");
    let (cert, key) = (dir.arg("leaf.pem"), dir.arg("leaf.key"));
    for (trusted, expected) in [
        ("127.0.0.1", "203.0.113.7"),
        ("10.0.0.0/8,fd00::/8", "127.0.0.1"),
        ("127.0.0.0/8", "203.0.113.7"),
    ] {
        let server = Server::start(
            &[
                "--auth",
                "none",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--trusted-proxies",
                trusted,
            ],
            &[("PORTCULLIS_LOG_FORMAT", "json")],
        )
        .await;
        let mut conn = connect(server.port, &dir.join("ca.pem")).await;
        // Refused by the origin policy, which logs a warning inside the request's span.
        let (status, _, _) = conn
            .send(
                "POST",
                "/mcp",
                &[
                    ("origin", "https://evil.example"),
                    ("x-request-id", "fwd-test-1"),
                    ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
                ],
                "",
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let line = server.wait_log(0, "refused by origin policy").await;
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["span"]["id"], "fwd-test-1", "{line}");
        assert_eq!(
            v["span"]["client_ip"], expected,
            "--trusted-proxies {trusted}: {line}"
        );
    }
}
