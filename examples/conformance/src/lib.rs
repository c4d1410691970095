//! `conformance-fixture`: the server the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`) is pointed at.
//!
//! Why it exists: the suite tests a server against a fixed contract (the tools,
//! resources and prompts of its reference "everything" server). Portcullis's own tools
//! are not that contract, so this crate serves it instead, on exactly the code the
//! product runs: the binary (`main.rs`) takes `portcullis::config::ServeArgs` for flags
//! (hence the same loopback Origin/Host policy) and calls `portcullis::server::run`,
//! i.e. rmcp's Streamable HTTP service behind Portcullis's gate. A conformance failure
//! here is therefore a failure of Portcullis's host (or of rmcp), not of a test-only
//! server.
//!
//! Both protocol eras are served from one endpoint: 2025 sessions (initialize,
//! `Mcp-Session-Id`, server-to-client requests on the call's SSE stream) and the
//! stateless 2026-07-28 wire (per-request `_meta`, MRTR, `subscriptions/listen`).
//!
//! The library half exists so tests (`tests/answers.rs`) can build the same router in
//! process: [`factory`] makes the handler factory to pass to
//! `portcullis::host::mcp_router` or `portcullis::server::run`.
//!
//! Modules: `server` (the rmcp `ServerHandler`), `catalog` (tool names, descriptions,
//! schemas, order), `tools` (tools that answer on their own), `asking` (tools that need
//! the client), `mrtr` (asking the client on either era), `prompts`, `resources`, and
//! `shared` (process-wide state: the `requestState` key and the change channel).

mod asking;
mod catalog;
mod mrtr;
mod prompts;
mod resources;
mod server;
mod shared;
mod tools;

pub use crate::server::Fixture;
pub use crate::shared::Shared;

/// Creates the process-wide state (a fresh random `requestState` key), starts the task
/// that changes the watched resource every few seconds, and returns the factory that
/// makes one [`Fixture`] per 2025 session or 2026-07-28 request.
///
/// Must be called inside a Tokio runtime (it spawns the watched-resource task there).
/// Fails only when the OS has no random source for the key.
pub fn factory() -> Result<impl Fn() -> Fixture + Send + Sync + Clone + 'static, String> {
    let shared =
        Shared::new().map_err(|err| format!("cannot create the requestState key: {err}"))?;
    tokio::spawn(shared.clone().run_watched_resource());
    Ok(move || Fixture::new(shared.clone()))
}
