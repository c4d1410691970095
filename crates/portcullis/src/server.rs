//! The listener: TCP_NODELAY on every connection, HTTPS when configured, and graceful
//! shutdown.
//!
//! axum's `serve` leaves Nagle's algorithm on; with small SSE frames and delayed ACKs that
//! stalls responses by about 40 ms each, so every accepted socket gets `TCP_NODELAY`.
//! Plain HTTP is served by axum's `serve`; HTTPS by an accept loop of ours (axum has none
//! for TLS) that does the handshake in each connection's task and hands the decrypted
//! stream to hyper's HTTP/1.1 server, with the peer address in the request extensions as
//! axum's `ConnectInfo`, like the plain listener.
//! On SIGTERM/SIGINT the listener stops accepting, in-flight requests finish (bounded by
//! the grace period), and only then are long-lived streams and sessions closed.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt as _;
use rmcp::ServerHandler;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use portcullis_authz::AuthMode;
use portcullis_authz::external::External;
use portcullis_authz::guard::{Guard, GuardConfig};
use portcullis_authz::server::{AuthServer, Bootstrap};
use portcullis_store::Store;

use crate::audit::AuditLog;

use crate::config::{AuthPlan, ServeArgs, ServeConfig};
use crate::host::{CorsLayer, HostConfig, HostHandle, mcp_router};
use crate::tls::Tls;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (over TLS; also what ends an
/// idle keep-alive connection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The whole life of a serving binary: checks the settings (exit 2 with the reason when
/// one is wrong), starts the runtime, makes the handler factory inside it, and serves until
/// SIGTERM or SIGINT. `program` prefixes every message.
pub fn serve_main<S, F>(
    program: &str,
    args: ServeArgs,
    factory: impl FnOnce() -> Result<F, String>,
) -> std::process::ExitCode
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    use std::process::ExitCode;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{program}: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{program}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let factory = factory().map_err(io::Error::other)?;
        run(config, factory, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `PORTCULLIS_LOG` (a `tracing` filter; default
/// `info,rmcp=warn`: rmcp logs every stateless request at info). The binary, the custom-tool
/// example and the benchmark servers all log this way.
pub fn init_tracing() {
    init_tracing_from("PORTCULLIS_LOG", "info,rmcp=warn");
}

/// Logs to stderr, filtered by the environment variable `var`, else by `default`; one JSON
/// object per line when `PORTCULLIS_LOG_FORMAT=json` (with the request span, so each line
/// carries its request id), else text.
pub fn init_tracing_from(var: &str, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(var)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("PORTCULLIS_LOG_FORMAT").as_deref() {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        Ok("text") | Err(_) => builder.init(),
        Ok(other) => {
            builder.init();
            tracing::warn!(
                value = other,
                "PORTCULLIS_LOG_FORMAT must be json or text; logging as text"
            );
        }
    }
}

/// Binds the configured address and serves the MCP endpoint with handlers from `factory`
/// until `shutdown` resolves.
pub async fn run<S, F>(
    config: ServeConfig,
    factory: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    // The certificate first: a wrong file is the likelier mistake, and says which file.
    let tls = config
        .tls
        .clone()
        .map(Tls::new)
        .transpose()
        .map_err(io::Error::other)?;
    let listener = TcpListener::bind(config.bind).await.map_err(|err| {
        io::Error::new(
            err.kind(),
            format!(
                "cannot listen on {}: {err} (is another server using the port? choose one with --bind)",
                config.bind
            ),
        )
    })?;
    let auth = match &config.auth {
        AuthPlan::None => {
            tracing::warn!(
                "authentication is off (--auth none): anyone who can reach this address can call the tools"
            );
            None
        }
        AuthPlan::Embedded {
            config: as_config,
            database_url,
        } => {
            let store = Store::open(database_url).await.map_err(|e| {
                io::Error::other(format!("cannot open the database {database_url}: {e}"))
            })?;
            let (server, boot) = AuthServer::start((**as_config).clone(), store)
                .await
                .map_err(|e| {
                    io::Error::other(format!("cannot start the authorization server: {e}"))
                })?;
            match boot {
                Bootstrap::Ready => {}
                Bootstrap::AdminCreated(name) => {
                    tracing::info!(user = %name, "admin account created with the configured password")
                }
                Bootstrap::SetupLink(link) => tracing::warn!(
                    "no account exists yet: open this one-time link to create the admin account: {link} \
                     (or create it with `portcullis user add`)"
                ),
            }
            server.spawn_upkeep();
            let checking = server.clone();
            tokio::spawn(async move { checking.check_upstream().await });
            // The 2025 sessions this instance held before a restart ended with it.
            if let Some(url) = &config.host.instance_url {
                match server.store().forget_instance_sessions(url).await {
                    Ok(n) if n > 0 => tracing::info!(
                        sessions = n,
                        "forgot the sessions of this instance's previous run"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not forget this instance's old sessions")
                    }
                }
            }
            Some(Protection::Embedded(server))
        }
        AuthPlan::External {
            config: external,
            database_url,
        } => {
            let store = Store::open(database_url).await.map_err(|e| {
                io::Error::other(format!("cannot open the database {database_url}: {e}"))
            })?;
            let issuer = external.issuer.clone();
            let external =
                External::discover((**external).clone(), portcullis_authz::server::now())
                    .await
                    .map_err(io::Error::other)?;
            let guard = Arc::new(Guard::external(
                external_guard_config(&config.public_url, &issuer)?,
                external,
            ));
            tracing::info!(%issuer, "accepting tokens from the external authorization server");
            Some(Protection::External(ExternalResource { guard, store }))
        }
    };
    if let Some(addr) = config.metrics_bind {
        let metrics = TcpListener::bind(addr).await.map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "cannot listen for metrics on {addr}: {err} (choose another --metrics-bind)"
                ),
            )
        })?;
        crate::metrics::enable();
        tracing::info!(listen = %addr, "metrics at /metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, crate::metrics::router()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let (router, handle) = app_router(config.host.clone(), auth, factory);
    let local = listener.local_addr()?;
    tracing::info!(
        listen = %local,
        mcp = %config.public_url,
        "portcullis ready"
    );
    serve_with(
        listener,
        router,
        handle,
        config.shutdown_grace,
        shutdown,
        tls,
    )
    .await
}

/// What protects the endpoint, once started.
#[derive(Debug, Clone)]
pub enum Protection {
    /// The embedded authorization server issues the tokens.
    Embedded(Arc<AuthServer>),
    /// An external authorization server issues them; this server checks them.
    External(ExternalResource),
}

/// External mode's pieces: the guard that checks the external tokens, and the database of
/// the notes and the audit log.
#[derive(Debug, Clone)]
pub struct ExternalResource {
    pub guard: Arc<Guard>,
    pub store: Store,
}

impl Protection {
    pub fn guard(&self) -> Arc<Guard> {
        match self {
            Protection::Embedded(server) => server.guard(),
            Protection::External(r) => r.guard.clone(),
        }
    }

    pub fn store(&self) -> &Store {
        match self {
            Protection::Embedded(server) => server.store(),
            Protection::External(r) => &r.store,
        }
    }
}

impl From<&Arc<AuthServer>> for Protection {
    fn from(server: &Arc<AuthServer>) -> Self {
        Protection::Embedded(server.clone())
    }
}

/// The guard of external mode: the same resource, scopes and metadata location as in
/// embedded mode (`AsConfig::guard_config`), with the external issuer.
pub fn external_guard_config(public_url: &str, issuer: &str) -> io::Result<GuardConfig> {
    let mut config = portcullis_authz::server::AsConfig::for_resource(public_url)
        .map_err(io::Error::other)?
        .guard_config();
    config.issuer = issuer.to_owned();
    Ok(config)
}

/// The whole application: the MCP endpoint behind the gate (with the guard of `auth`, when
/// given), the authorization server's routes (or, in external mode, the protected resource
/// metadata), and CORS around all of it.
pub fn app_router<'a, S, F>(
    mut host: HostConfig,
    auth: Option<impl Into<Protection> + 'a>,
    factory: F,
) -> (Router, HostHandle)
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let auth: Option<Protection> = auth.map(Into::into);
    if let Some(p) = &auth {
        host.auth = AuthMode::Bearer(p.guard());
        host.session_directory =
            host.instance_url
                .clone()
                .map(|instance_url| crate::host::relay::SessionDirectory {
                    store: p.store().clone(),
                    instance_url,
                });
    }
    let (mut router, handle) = mcp_router(&host, factory);
    if let Some(p) = &auth {
        // Every tool call (and every call refused for scope) goes to the audit log, unless
        // the audit is turned off (benchmarks measure what it costs).
        if host.audit {
            let audit = AuditLog::spawn(
                p.store().clone(),
                host.audit_arguments,
                host.audit_retention,
            );
            router = router.layer(axum::Extension(audit));
        }
        // Tools that keep data (the notes) find the database in the request extensions.
        router = router.layer(axum::Extension(p.store().clone()));
        router = match p {
            // Confirmations seal their requestState with the key all instances share.
            Protection::Embedded(server) => router
                .layer(axum::Extension(crate::tools::confirm::RequestStateKey(
                    server.request_state_key(),
                )))
                .merge(server.router()),
            Protection::External(r) => router.merge(r.guard.metadata_routes()),
        };
    }
    let mut router =
        router
            .layer(CorsLayer::new(host.policy.clone()))
            .merge(crate::health::router(
                auth.as_ref().map(|p| (p.store().clone(), p.guard())),
            ));
    if crate::metrics::enabled() {
        // After routing, so each request is counted under the pattern it matched.
        router = router.route_layer(axum::middleware::from_fn(crate::metrics::track));
    }
    let router = router.layer(axum::middleware::from_fn_with_state(
        host.trusted_proxies.clone(),
        crate::request_id::tag,
    ));
    (router, handle)
}

/// Serves `router` on `listener` with TCP_NODELAY and graceful shutdown.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    handle: HostHandle,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, router, handle, grace, shutdown, None).await
}

/// Serves `router` over HTTPS on `listener`, like [`serve`], reloading the certificate
/// when its files change or on SIGHUP.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    handle: HostHandle,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Tls,
) -> io::Result<()> {
    serve_with(listener, router, handle, grace, shutdown, Some(tls)).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    handle: HostHandle,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tls: Option<Tls>,
) -> io::Result<()> {
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        trigger.cancel();
    });

    let drain_stop = stop.clone();
    let drain_handle = handle.clone();
    tokio::spawn(async move {
        drain_stop.cancelled().await;
        let idle = tokio::time::timeout(grace, drain_handle.inflight.wait_idle()).await;
        if idle.is_err() {
            tracing::warn!(
                remaining = drain_handle.inflight.current(),
                "grace period over: abandoning in-flight requests"
            );
        }
        // Long-lived streams (2025 GET streams, sessions, listen subscriptions) end now.
        drain_handle.streams.cancel();
    });

    let server = async {
        match tls {
            None => {
                let listener = listener.tap_io(|tcp| {
                    if let Err(err) = tcp.set_nodelay(true) {
                        tracing::debug!(%err, "could not set TCP_NODELAY");
                    }
                });
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .await
            }
            Some(tls) => {
                tls.spawn_reloader(stop.clone());
                accept_tls(listener, router, tls, stop.clone()).await;
                Ok(())
            }
        }
    };
    let hard_stop = async {
        stop.cancelled().await;
        tokio::time::sleep(grace + Duration::from_secs(2)).await;
    };
    tokio::select! {
        result = server => result,
        () = hard_stop => {
            tracing::warn!("connections still open after the grace period; exiting");
            Ok(())
        }
    }
}

/// Accepts TLS connections until `stop`, then waits for the open ones: each finishes the
/// request it is serving and closes (idle keep-alive connections close at once).
async fn accept_tls(listener: TcpListener, router: Router, tls: Tls, stop: CancellationToken) {
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::error!(%err, "cannot accept connections; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        // Watched from the start, so shutdown also waits for (or ends) handshakes.
        let watcher = connections.watcher();
        let acceptor = tls.acceptor.clone();
        let router = router.clone();
        let http = http.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let stream = tokio::select! {
                () = stop.cancelled() => return,
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
            };
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    tower::ServiceExt::oneshot(router.clone(), request)
                },
            );
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
