//! `portcullis doctor`: it passes a real Portcullis, and against small servers that each
//! reproduce one fault seen in the field, it fails exactly that check and names the fault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser as _;
use http::{HeaderValue, Method, StatusCode};
use portcullis::config::ServeArgs;
use portcullis::doctor::{self, Options, Outcome, Report};
use portcullis::tools::PortcullisTools;
use serde_json::{Value, json};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- helpers

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-doctor-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options() -> Options {
    Options {
        timeout: Duration::from_secs(5),
        ..Options::default()
    }
}

fn failed(report: &Report) -> BTreeSet<&'static str> {
    report.ids(Outcome::Fail).into_iter().collect()
}

fn set(ids: &[&'static str]) -> BTreeSet<&'static str> {
    ids.iter().copied().collect()
}

/// The row's detail and fix, for matching words in them.
fn words(report: &Report, id: &str) -> String {
    let row = report.row(id).unwrap_or_else(|| panic!("no row {id}"));
    format!("{} || {}", row.detail, row.fix.as_deref().unwrap_or(""))
}

#[derive(clap::Parser)]
struct ServeCli {
    #[command(flatten)]
    args: ServeArgs,
}

/// A real `portcullis serve` (embedded authorization server, notes, the binary's own
/// configuration path) on a free loopback port, in-process. Returns its MCP URL.
struct Portcullis {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    dir: PathBuf,
}

impl Drop for Portcullis {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_portcullis() -> Portcullis {
    start_portcullis_with(|_| {}).await
}

/// [`start_portcullis`] with its checked configuration adjusted.
async fn start_portcullis_with(
    tweak: impl FnOnce(&mut portcullis::config::ServeConfig),
) -> Portcullis {
    let dir = temp_dir("serve");
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let db = format!("sqlite://{}", dir.join("portcullis.db").display());
    let key = dir.join("portcullis.key");
    let cli = ServeCli::try_parse_from([
        "serve",
        "--bind",
        &bind,
        "--database-url",
        &db,
        "--master-key-file",
        key.to_str().unwrap(),
        "--shutdown-grace",
        "1",
    ])
    .unwrap();
    let mut config = cli.args.into_config().unwrap();
    tweak(&mut config);
    let url = config.public_url.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Its own thread and runtime: the server's future is not `Send` across an await in
    // the way `tokio::spawn` needs (sqlx's higher-ranked executor bounds).
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _ = runtime.block_on(portcullis::server::run(
            config,
            PortcullisTools::with_notes,
            async {
                let _ = stopped.await;
            },
        ));
    });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Portcullis {
        url,
        stop: Some(stop),
        dir,
    }
}

// ---------------------------------------------------------------- (a) Portcullis itself

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portcullis_in_its_test_configuration_passes_every_check() {
    let server = start_portcullis().await;
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let report = doctor::run(&server.url, &options()).await.unwrap();
    let table = report.to_table();
    println!("{table}");
    assert!(!report.failed(), "{table}");
    assert_eq!(report.count(Outcome::Warn), 0, "{table}");
    assert_eq!(report.count(Outcome::Skip), 0, "{table}");
    // Every check ran and passed, one row each.
    let ids: Vec<&str> = report.checks.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            "reachability",
            "challenge",
            "challenge_scope",
            "prm_path",
            "prm_root",
            "prm_pointer",
            "as_metadata",
            "pkce",
            "registration",
            "redirect_claude",
            "redirect_chatgpt",
            "redirect_vscode",
            "redirect_cursor",
            "redirect_inspector",
            "cors_mcp",
            "cors_oauth",
        ]
    );
    assert!(words(&report, "reachability").contains("loopback"));
    assert!(words(&report, "challenge").contains(&format!(
        "resource_metadata=\"{}\"",
        server
            .url
            .replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    )));
    assert!(words(&report, "cors_oauth").contains("token endpoint"));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("registered 5 test client(s)")),
        "{:?}",
        report.notes
    );

    // --no-register leaves the redirect rows skipped and registers nothing.
    let quiet = doctor::run(
        &server.url,
        &Options {
            register: false,
            ..options()
        },
    )
    .await
    .unwrap();
    assert!(!quiet.failed(), "{}", quiet.to_table());
    assert_eq!(
        quiet.ids(Outcome::Skip),
        [
            "redirect_claude",
            "redirect_chatgpt",
            "redirect_vscode",
            "redirect_cursor",
            "redirect_inspector"
        ]
    );
    assert!(quiet.notes.is_empty(), "{:?}", quiet.notes);

    // The resource must be the URL exactly as given: with a trailing slash it is not.
    let slash = doctor::run(&format!("{}/", server.url), &options())
        .await
        .unwrap();
    assert!(slash.failed(), "{}", slash.to_table());
}

/// Deployed on a public address, Portcullis allows only its own origin unless told
/// (`--allowed-origins`): the Inspector's web UI cannot connect, which the doctor warns of
/// without failing, since checking Origin is what the spec asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portcullis_without_the_inspectors_origin_gets_cors_warnings() {
    let server = start_portcullis_with(|config| {
        // What a non-loopback bind gets: the public URL's origin only.
        let own = config.public_url.trim_end_matches("/mcp").to_owned();
        config.host.policy.origins = vec![portcullis::host::OriginRule::parse(&own).unwrap()];
    })
    .await;
    let report = doctor::run(
        &server.url,
        &Options {
            register: false,
            ..options()
        },
    )
    .await
    .unwrap();
    println!("{}", report.to_table());
    assert!(!report.failed(), "{}", report.to_table());
    assert_eq!(report.ids(Outcome::Warn), ["cors_mcp", "cors_oauth"]);
    assert!(words(&report, "cors_mcp").contains("--allowed-origins http://localhost:6274"));
}

// ---------------------------------------------------------------- (b) broken servers

/// One fault each; the default is a server that does everything right.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// Protected resource metadata only at the root (the challenge points there).
    no_path_prm: bool,
    relative_resource_metadata: bool,
    no_scope_in_challenge: bool,
    /// `resource` is the origin instead of the MCP URL.
    wrong_resource: bool,
    no_cors: bool,
    /// CORS for the server's own origin only (an allow-list without the Inspector).
    own_origin_only: bool,
    no_s256: bool,
    /// The metadata's issuer has a trailing slash the resource metadata's lacks.
    issuer_mismatch: bool,
    /// Registration refuses private-use schemes (Cursor's cursor://).
    refuse_private_scheme: bool,
    /// Neither client ID metadata documents nor registration.
    no_registration: bool,
    /// The MCP endpoint is open (no OAuth at all).
    open: bool,
}

#[derive(Debug, Clone)]
struct Fake {
    base: String,
    faults: Faults,
}

async fn mcp(State(f): State<Fake>) -> Response {
    if f.faults.open {
        return (
            [("content-type", "application/json")],
            json!({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "open", "version": "1"}}}).to_string(),
        )
            .into_response();
    }
    let base = &f.base;
    let prm = if f.faults.relative_resource_metadata {
        "/.well-known/oauth-protected-resource/mcp".to_owned()
    } else if f.faults.no_path_prm {
        format!("{base}/.well-known/oauth-protected-resource")
    } else {
        format!("{base}/.well-known/oauth-protected-resource/mcp")
    };
    let scope = if f.faults.no_scope_in_challenge {
        String::new()
    } else {
        ", scope=\"mcp\"".to_owned()
    };
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_str(&format!("Bearer resource_metadata=\"{prm}\"{scope}")).unwrap(),
    );
    r
}

async fn prm(State(f): State<Fake>) -> Response {
    let resource = if f.faults.wrong_resource {
        f.base.clone()
    } else {
        format!("{}/mcp", f.base)
    };
    axum::Json(json!({
        "resource": resource,
        "authorization_servers": [f.base],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    }))
    .into_response()
}

async fn as_metadata(State(f): State<Fake>) -> Response {
    let base = &f.base;
    let issuer = if f.faults.issuer_mismatch {
        format!("{base}/")
    } else {
        base.clone()
    };
    let mut meta = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": if f.faults.no_s256 { json!(["plain"]) } else { json!(["S256"]) },
        "token_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": true,
    });
    if f.faults.no_registration {
        let m = meta.as_object_mut().unwrap();
        m.remove("registration_endpoint");
        m.remove("client_id_metadata_document_supported");
    }
    axum::Json(meta).into_response()
}

async fn token() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant", "error_description": "unknown code"})),
    )
        .into_response()
}

async fn register(State(f): State<Fake>, body: axum::body::Bytes) -> Response {
    let meta: Value = serde_json::from_slice(&body).unwrap();
    let uris: Vec<String> = meta["redirect_uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    if f.faults.refuse_private_scheme
        && let Some(bad) = uris
            .iter()
            .find(|u| !u.starts_with("https://") && !u.starts_with("http://"))
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_redirect_uri", "error_description": format!("redirect URI {bad} must use https or http")})),
        )
            .into_response();
    }
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"client_id": "c1", "redirect_uris": uris, "token_endpoint_auth_method": "none"}),
        ),
    )
        .into_response()
}

async fn cors(State(f): State<Fake>, request: Request, next: Next) -> Response {
    if f.faults.no_cors {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS;
    let origin = request
        .headers()
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if f.faults.own_origin_only && origin != f.base {
        return if preflight {
            StatusCode::NO_CONTENT.into_response()
        } else if request.uri().path() == "/mcp" && !origin.is_empty() {
            StatusCode::FORBIDDEN.into_response()
        } else {
            next.run(request).await
        };
    }
    let mut r = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("WWW-Authenticate"),
    );
    if preflight {
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            "access-control-allow-headers",
            HeaderValue::from_static(
                "Authorization, Content-Type, Mcp-Protocol-Version, Mcp-Session-Id",
            ),
        );
    }
    r
}

fn fake_router(base: String, faults: Faults) -> Router {
    let state = Fake { base, faults };
    let mut router = Router::new()
        .route("/mcp", post(mcp))
        .route("/.well-known/oauth-protected-resource", get(prm))
        .route("/.well-known/oauth-authorization-server", get(as_metadata))
        .route("/token", post(token))
        .route("/register", post(register));
    if !state.faults.no_path_prm {
        router = router.route("/.well-known/oauth-protected-resource/mcp", get(prm));
    }
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// Serves a fake on a free port; returns its MCP URL.
async fn fake(faults: Faults) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let router = fake_router(base.clone(), faults);
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("{base}/mcp")
}

async fn doctor_on(faults: Faults) -> Report {
    let url = fake(faults).await;
    let report = doctor::run(&url, &options()).await.unwrap();
    println!("{}", report.to_table());
    report
}

#[tokio::test]
async fn a_server_without_faults_passes() {
    let report = doctor_on(Faults::default()).await;
    assert!(!report.failed(), "{}", report.to_table());
    assert_eq!(
        report.count(Outcome::Pass),
        report.checks.len(),
        "{}",
        report.to_table()
    );
}

#[tokio::test]
async fn missing_path_inserted_resource_metadata_fails_that_check() {
    let report = doctor_on(Faults {
        no_path_prm: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["prm_path"]));
    let w = words(&report, "prm_path");
    assert!(w.contains("HTTP 404"), "{w}");
    assert!(
        w.contains("/.well-known/oauth-protected-resource/mcp"),
        "{w}"
    );
    assert!(w.contains("look there first"), "{w}");
}

#[tokio::test]
async fn relative_resource_metadata_fails_the_challenge() {
    let report = doctor_on(Faults {
        relative_resource_metadata: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["challenge"]));
    let w = words(&report, "challenge");
    assert!(w.contains("relative URL"), "{w}");
    // The fix gives the absolute URL to send instead.
    let url = report
        .url
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert!(w.contains(&format!("resource_metadata=\"{url}\"")), "{w}");
    assert_eq!(report.row("prm_pointer").unwrap().result, Outcome::Skip);
}

#[tokio::test]
async fn a_challenge_without_scope_is_a_warning() {
    let report = doctor_on(Faults {
        no_scope_in_challenge: true,
        ..Faults::default()
    })
    .await;
    assert!(!report.failed(), "{}", report.to_table());
    assert_eq!(report.ids(Outcome::Warn), ["challenge_scope"]);
}

#[tokio::test]
async fn a_wrong_resource_fails_naming_both_values() {
    let report = doctor_on(Faults {
        wrong_resource: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(
        failed(&report),
        set(&["prm_path", "prm_root", "prm_pointer"])
    );
    let origin = report.url.trim_end_matches("/mcp").to_owned();
    let w = words(&report, "prm_path");
    assert!(
        w.contains(&format!(
            "\"resource\" is \"{origin}\" but the MCP URL is \"{}\"",
            report.url
        )),
        "{w}"
    );
    assert!(w.contains("set \"resource\" to exactly"), "{w}");
    // Without usable resource metadata, the authorization server cannot be found.
    assert_eq!(report.row("as_metadata").unwrap().result, Outcome::Skip);
}

#[tokio::test]
async fn no_cors_fails_the_cors_checks() {
    let report = doctor_on(Faults {
        no_cors: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["cors_mcp", "cors_oauth"]));
    let w = words(&report, "cors_mcp");
    assert!(w.contains("HTTP 405"), "{w}");
    assert!(w.contains("no Access-Control-Allow-Origin"), "{w}");
    assert!(w.contains("Inspector"), "{w}");
    let w = words(&report, "cors_oauth");
    assert!(
        w.contains("the resource metadata") && w.contains("the token endpoint"),
        "{w}"
    );
}

#[tokio::test]
async fn an_origin_allow_list_without_the_inspector_is_a_warning() {
    let report = doctor_on(Faults {
        own_origin_only: true,
        ..Faults::default()
    })
    .await;
    assert!(!report.failed(), "{}", report.to_table());
    assert_eq!(report.ids(Outcome::Warn), ["cors_mcp", "cors_oauth"]);
    let w = words(&report, "cors_mcp");
    assert!(
        w.contains("allows its own origin but refuses http://localhost:6274"),
        "{w}"
    );
    assert!(w.contains("--allowed-origins http://localhost:6274"), "{w}");
}

#[tokio::test]
async fn metadata_without_s256_fails_pkce() {
    let report = doctor_on(Faults {
        no_s256: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["pkce"]));
    let w = words(&report, "pkce");
    assert!(w.contains("lists plain but not S256"), "{w}");
    assert!(
        w.contains("\"code_challenge_methods_supported\": [\"S256\"]"),
        "{w}"
    );
}

#[tokio::test]
async fn an_issuer_mismatch_fails_the_metadata_check() {
    let report = doctor_on(Faults {
        issuer_mismatch: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["as_metadata"]));
    let base = report.url.trim_end_matches("/mcp").to_owned();
    let w = words(&report, "as_metadata");
    assert!(
        w.contains(&format!(
            "says \"issuer\": \"{base}/\" but the resource metadata names \"{base}\""
        )),
        "{w}"
    );
    assert!(w.contains("trailing slash"), "{w}");
}

#[tokio::test]
async fn registration_refusing_a_clients_redirect_uri_fails_that_client() {
    let report = doctor_on(Faults {
        refuse_private_scheme: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["redirect_cursor"]));
    let w = words(&report, "redirect_cursor");
    assert!(w.contains("Cursor would be refused"), "{w}");
    assert!(
        w.contains("invalid_redirect_uri: redirect URI cursor://anysphere.cursor-mcp/oauth/callback must use https or http"),
        "{w}"
    );
    assert!(w.contains("cursor:// private-use scheme"), "{w}");
    // The others were registered, and the note says so.
    assert_eq!(report.row("redirect_claude").unwrap().result, Outcome::Pass);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("registered 4 test client(s)") && n.contains("--no-register")),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn no_way_to_register_fails_registration() {
    let report = doctor_on(Faults {
        no_registration: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(failed(&report), set(&["registration"]));
    assert!(words(&report, "registration").contains("neither"));
    assert_eq!(report.row("redirect_vscode").unwrap().result, Outcome::Skip);
}

#[tokio::test]
async fn an_open_server_is_a_warning_and_oauth_checks_are_skipped() {
    let report = doctor_on(Faults {
        open: true,
        ..Faults::default()
    })
    .await;
    assert!(!report.failed(), "{}", report.to_table());
    assert_eq!(report.ids(Outcome::Warn), ["challenge"]);
    assert_eq!(report.row("pkce").unwrap().result, Outcome::Skip);
    assert_eq!(report.row("cors_mcp").unwrap().result, Outcome::Pass);
}

#[tokio::test]
async fn an_unreachable_server_fails_reachability_and_skips_the_rest() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let report = doctor::run(&format!("http://127.0.0.1:{port}/mcp"), &options())
        .await
        .unwrap();
    assert_eq!(failed(&report), set(&["reachability"]));
    assert!(words(&report, "reachability").contains("cannot connect"));
    assert_eq!(report.count(Outcome::Skip), report.checks.len() - 1);
}

// ---------------------------------------------------------------- TLS

/// A throwaway CA and a leaf certificate for 127.0.0.1 (openssl, as tests/e2e does).
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed to make the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
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
        "/CN=doctor test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.pem",
    ]);
}

/// The fault-free fake over TLS with the leaf certificate; returns its MCP URL.
async fn tls_fake(dir: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tower::ServiceExt as _;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("https://{addr}");
    let app = fake_router(base.clone(), Faults::default());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("{base}/mcp")
}

#[tokio::test]
async fn tls_errors_are_named_and_a_private_ca_can_be_trusted() {
    let dir = temp_dir("tls");
    make_certificates(&dir);
    let url = tls_fake(&dir).await;

    let untrusted = doctor::run(&url, &options()).await.unwrap();
    assert_eq!(failed(&untrusted), set(&["reachability"]));
    let w = words(&untrusted, "reachability");
    assert!(w.contains("TLS handshake with 127.0.0.1 failed"), "{w}");
    assert!(w.contains("not signed by a trusted authority"), "{w}");
    assert!(w.contains("--ca-file"), "{w}");

    let trusted = doctor::run(
        &url,
        &Options {
            ca_file: Some(dir.join("ca.pem")),
            ..options()
        },
    )
    .await
    .unwrap();
    println!("{}", trusted.to_table());
    assert!(!trusted.failed(), "{}", trusted.to_table());
    assert!(words(&trusted, "reachability").contains("https, certificate valid for 127.0.0.1"));

    // A CA file without certificates is a usage error, not a report.
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let err = doctor::run(
        &url,
        &Options {
            ca_file: Some(empty),
            ..options()
        },
    )
    .await
    .unwrap_err();
    assert!(err.0.contains("holds no PEM certificate"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- (c) the binary

fn binary() -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_the_table_json_and_exit_codes() {
    let url = fake(Faults {
        relative_resource_metadata: true,
        ..Faults::default()
    })
    .await;

    let out = binary()
        .args(["doctor", "--timeout", "5", &url])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!("portcullis doctor: {url}")),
        "{stdout}"
    );
    assert!(stdout.contains("CHECK"), "{stdout}");
    let failing = stdout
        .lines()
        .find(|l| l.starts_with("401 challenge"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        failing.contains("FAIL") && failing.contains("relative URL"),
        "{failing}"
    );
    assert!(stdout.contains("fix: send the absolute URL"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");

    let out = binary()
        .args(["doctor", "--json", "--no-register", &url])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["url"], url.as_str());
    assert_eq!(report["summary"]["fail"], 1);
    let challenge = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "challenge")
        .unwrap();
    assert_eq!(challenge["result"], "fail");
    assert!(challenge["fix"].as_str().unwrap().contains("absolute"));
    let redirect = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "redirect_claude")
        .unwrap();
    assert_eq!(redirect["result"], "skip");

    // A healthy server: exit 0.
    let good = fake(Faults::default()).await;
    let out = binary()
        .args(["doctor", "--no-register", &good])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A bad URL: exit 2 with a message that says what to give.
    let out = binary()
        .args(["doctor", "mcp.example.com/mcp"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not an absolute URL"), "{stderr}");
    assert!(stderr.contains("https://mcp.example.com/mcp"), "{stderr}");
    assert!(out.stdout.is_empty());

    // And the help explains itself.
    let out = binary().args(["doctor", "--help"]).output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--no-register") && help.contains("REGISTERS"),
        "{help}"
    );
}
