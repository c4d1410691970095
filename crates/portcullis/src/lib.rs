//! Portcullis: a remote MCP server with OAuth 2.1 built in.
//!
//! This crate is the MCP host (rmcp's Streamable HTTP service behind Portcullis's gate,
//! [`host`]), the built-in tools ([`tools`]), and the pieces of the `portcullis` binary
//! that other programs reuse: configuration ([`config`]) and the listener with graceful
//! shutdown ([`server`]), and an in-process client for tests ([`testing`]).

pub mod audit;
pub mod cli;
pub mod config;
pub mod health;
pub mod host;
pub mod metrics;
pub mod request_id;
pub mod server;
pub mod testing;
pub mod time;
pub mod tools;

pub use portcullis_authz::{AuthMode, Principal};
