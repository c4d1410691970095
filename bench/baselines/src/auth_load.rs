//! Load tool for the authorization benchmarks (bench/auth.sh).
//!
//! - `auth-load token URL`: registers a client, logs in as the admin (password from
//!   PORTCULLIS_ADMIN_PASSWORD), approves, exchanges the code and prints the access token.
//! - `auth-load refresh URL CONNS SECONDS`: makes CONNS grants the same way, then each of CONNS
//!   connections refreshes its own grant in a loop (every answer's new refresh token is used
//!   for the next request, so each request is a real rotation) for SECONDS; prints one
//!   `BENCH rps=… p50_us=… p99_us=… errors=…` line.
//!
//! It speaks HTTP/1.1 with keep-alive through hyper, like any client would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench tool: fail loudly

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

const VERIFIER: &str = "bench-verifier-bench-verifier-bench-verifier-0123";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Conn {
    host: String,
    sender: SendRequest<Full<Bytes>>,
    cookie: Option<String>,
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Conn {
    async fn open(base: &url::Url) -> Self {
        let host = format!(
            "{}:{}",
            base.host_str().unwrap(),
            base.port_or_known_default().unwrap()
        );
        let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self {
            host,
            sender,
            cookie: None,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: String,
    ) -> Reply {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        self.sender.ready().await.unwrap();
        let resp = self
            .sender
            .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        if let Some(set) = resp.headers().get("set-cookie") {
            self.cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        Reply {
            status,
            location,
            body,
        }
    }

    async fn form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(
            "POST",
            path,
            Some("application/x-www-form-urlencoded"),
            body,
        )
        .await
    }
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn path_of(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(u) => format!("{}?{}", u.path(), u.query().unwrap_or("")),
        Err(_) => location.to_owned(),
    }
}

fn code_of(location: &str) -> String {
    let u = url::Url::parse(location).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .1
        .into_owned()
}

/// Registers a client and returns it with `n` fresh token responses (one grant each).
async fn grants(mcp: &url::Url, n: usize) -> (String, Vec<serde_json::Value>) {
    let password = std::env::var("PORTCULLIS_ADMIN_PASSWORD").expect("PORTCULLIS_ADMIN_PASSWORD");
    let mut c = Conn::open(mcp).await;
    let reg = c
        .send("POST", "/oauth/register", Some("application/json"),
            serde_json::json!({"client_name": "bench", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string())
        .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let client: String = serde_json::from_str::<serde_json::Value>(&reg.body).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let challenge = portcullis_oauth::CodeChallenge::from_verifier(VERIFIER).unwrap();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", mcp.as_str()),
        ])
        .finish();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = c
            .send(
                "GET",
                &format!("/oauth/authorize?{query}"),
                None,
                String::new(),
            )
            .await;
        if r.status == 200 {
            let (request, csrf) = (field(&r.body, "request"), field(&r.body, "csrf"));
            r = c
                .form(
                    "/oauth/login",
                    &[
                        ("request", &request),
                        ("csrf", &csrf),
                        ("username", "admin"),
                        ("password", &password),
                    ],
                )
                .await;
            assert_eq!(r.status, 303, "login: {}", r.body);
        }
        let consent_path = path_of(r.location.as_deref().unwrap());
        let request = consent_path.split("request=").nth(1).unwrap().to_owned();
        let mut r = c.send("GET", &consent_path, None, String::new()).await;
        if r.status == 200 {
            let csrf = field(&r.body, "csrf");
            r = c
                .form(
                    "/oauth/consent",
                    &[
                        ("request", &request),
                        ("csrf", &csrf),
                        ("decision", "approve"),
                    ],
                )
                .await;
        }
        let code = code_of(r.location.as_deref().unwrap());
        let t = c
            .form(
                "/oauth/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                    ("client_id", &client),
                ],
            )
            .await;
        assert_eq!(t.status, 200, "token: {}", t.body);
        out.push(serde_json::from_str(&t.body).unwrap());
    }
    (client, out)
}

async fn refresh_load(mcp: url::Url, conns: usize, seconds: u64) {
    let (client, tokens) = grants(&mcp, conns).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for t in tokens {
        let (mcp, client) = (mcp.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(&mcp).await;
            let mut rt = t["refresh_token"].as_str().unwrap().to_owned();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let start = Instant::now();
                let r = c
                    .form(
                        "/oauth/token",
                        &[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &rt),
                            ("client_id", &client),
                        ],
                    )
                    .await;
                lat.push(start.elapsed().as_micros() as u64);
                let next = serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["refresh_token"].as_str().map(str::to_owned));
                match (r.status, next) {
                    (200, Some(n)) if n != rt => rt = n,
                    _ => {
                        errors += 1;
                        eprintln!("refresh failed: {} {}", r.status, r.body);
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds as f64);
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "BENCH requests={} rps={:.1} p50_us={} p99_us={} errors={}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        errors
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: auth-load token MCP_URL | auth-load refresh MCP_URL CONNS SECONDS";
    let mcp = url::Url::parse(args.get(2).expect(usage)).expect("MCP_URL");
    match args.get(1).map(String::as_str) {
        Some("token") => {
            let (_, t) = grants(&mcp, 1).await;
            println!("{}", t[0]["access_token"].as_str().unwrap());
        }
        Some("refresh") => {
            let conns = args.get(3).and_then(|c| c.parse().ok()).expect(usage);
            let seconds = args.get(4).and_then(|c| c.parse().ok()).expect(usage);
            refresh_load(mcp, conns, seconds).await;
        }
        _ => panic!("{usage}"),
    }
}
