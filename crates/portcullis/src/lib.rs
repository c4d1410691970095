//! Portcullis: a remote MCP server with OAuth 2.1 built in.
//!
//! This crate is the MCP host (rmcp's Streamable HTTP service behind Portcullis's gate,
//! [`host`]), the built-in tools ([`tools`]), and the pieces of the `portcullis` binary
//! that other programs reuse: configuration ([`config`]), the listener with graceful
//! shutdown ([`server`]) and its HTTPS with certificate reload ([`tls`]), an in-process
//! client for tests ([`testing`]), and the connector doctor that checks any deployed MCP
//! server as clients see it ([`doctor`]).

pub mod audit;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod health;
pub mod host;
pub mod metrics;
pub mod request_id;
pub mod server;
pub mod settings;
pub mod testing;
pub mod time;
pub mod tls;
pub mod tools;

pub use portcullis_authz::{AuthMode, Principal};
