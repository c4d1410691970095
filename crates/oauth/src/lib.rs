//! The OAuth 2.1 core of Portcullis: wire-level rules as pure functions.
//!
//! This crate exists so the rules that decide who gets a token can be read and tested
//! without HTTP, SQL or a clock: callers pass `now` (and a random source) in, and nothing
//! here performs I/O. The authorization server and the resource guard both build on it;
//! an external authorization server setup uses it without the embedded server.

pub mod address;
pub mod client;
pub mod error;
pub mod grant;
pub mod jws;
pub mod jwt;
pub mod pkce;
pub mod redirect;
pub mod scope;
pub mod secret;

pub use error::{ErrorCode, OAuthError};
pub use pkce::{CodeChallenge, PkceError};
pub use scope::{Scope, ScopeError, ScopeSet};
