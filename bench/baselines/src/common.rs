//! What both baselines share with each other and with Portcullis: the `whoami` answer, the
//! `--bind` flag and serving with TCP_NODELAY on every accepted socket, so the comparison is fair.

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt as _;
use schemars::JsonSchema;
use serde::Serialize;

/// The same shape Portcullis's `whoami` returns for an anonymous caller.
#[derive(Debug, Serialize, JsonSchema)]
pub struct View {
    authenticated: bool,
    user: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    grant_id: Option<String>,
}

impl View {
    pub fn anonymous() -> Self {
        Self {
            authenticated: false,
            user: None,
            client_id: None,
            scopes: Vec::new(),
            grant_id: None,
        }
    }
}

/// `--bind ADDR` (default 127.0.0.1:8080); exits 2 on anything else.
pub fn bind_arg(program: &str) -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut bind = "127.0.0.1:8080".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().expect("--bind needs an address"),
            other => {
                eprintln!("usage: {program} [--bind ADDR]  (unknown argument {other})");
                std::process::exit(2);
            }
        }
    }
    bind.parse().expect("--bind must be host:port")
}

/// Serves `router` on `bind` with TCP_NODELAY, as `portcullis::server` does.
pub async fn serve(bind: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await
}
