//! Who may call the MCP endpoint: the resource guard ([`guard`]), which turns a bearer
//! token into a [`Principal`] every tool handler can read, and the embedded OAuth 2.1
//! authorization server ([`server`]) that issues those tokens.
//!
//! The guard depends on the OAuth core and not on the authorization server, so the same
//! guard can serve tokens from an external authorization server.

pub mod external;
pub mod fetch;
pub mod forwarded;
pub mod guard;
pub mod remote_keys;
pub mod server;
pub mod time;
pub mod upstream;

use std::sync::Arc;

use portcullis_oauth::ScopeSet;
use schemars::JsonSchema;
use serde::Serialize;

/// Who is calling: the verified identity behind one request.
///
/// A tool reads it from the request extensions; the guard inserts it before the MCP host
/// sees the request, so a handler never has to trust anything the client said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user the token was issued to; `None` when nobody authenticated.
    pub user: Option<String>,
    /// The OAuth client that holds the token.
    pub client_id: Option<String>,
    /// The scopes the token carries.
    pub scopes: ScopeSet,
    /// The grant the token belongs to, so a revocation can be checked and audited.
    pub grant_id: Option<String>,
}

impl Principal {
    /// The caller on an unauthenticated (loopback, development) server.
    pub fn anonymous() -> Self {
        Self {
            user: None,
            client_id: None,
            scopes: ScopeSet::default(),
            grant_id: None,
        }
    }

    /// One shared anonymous principal, so unauthenticated requests allocate nothing.
    pub fn shared_anonymous() -> Arc<Self> {
        static ANONYMOUS: std::sync::OnceLock<Arc<Principal>> = std::sync::OnceLock::new();
        ANONYMOUS
            .get_or_init(|| Arc::new(Principal::anonymous()))
            .clone()
    }

    pub fn is_anonymous(&self) -> bool {
        self.user.is_none()
    }

    /// A view of the principal safe to show the caller (it holds no secret).
    pub fn describe(&self) -> PrincipalView {
        PrincipalView {
            authenticated: !self.is_anonymous(),
            user: self.user.clone(),
            client_id: self.client_id.clone(),
            scopes: self.scopes.iter().map(str::to_owned).collect(),
            grant_id: self.grant_id.clone(),
        }
    }
}

/// The serializable description of a [`Principal`].
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct PrincipalView {
    pub authenticated: bool,
    pub user: Option<String>,
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    pub grant_id: Option<String>,
}

/// How the MCP endpoint decides who may call it.
#[derive(Debug, Clone, Default)]
pub enum AuthMode {
    /// No authentication: every caller is [`Principal::anonymous`]. Only safe on loopback.
    #[default]
    None,
    /// OAuth bearer tokens, verified by the guard.
    Bearer(Arc<guard::Guard>),
}

impl AuthMode {
    /// The principal for a request under this mode, or the challenge to answer with.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        token_in_query: bool,
        now: i64,
    ) -> Result<Arc<Principal>, guard::Challenge> {
        match self {
            AuthMode::None => Ok(Principal::shared_anonymous()),
            AuthMode::Bearer(g) => g.authenticate(authorization, token_in_query, now).await,
        }
    }

    /// The step-up check of one tool call (see [`guard::Guard::step_up`]); always `Ok`
    /// without authentication.
    pub fn step_up(
        &self,
        principal: &Principal,
        tool: &str,
        tool_scopes: &ScopeSet,
    ) -> Result<(), guard::Challenge> {
        match self {
            AuthMode::None => Ok(()),
            AuthMode::Bearer(g) => g.step_up(principal, tool, tool_scopes),
        }
    }

    /// Whether this mode may listen on a non-loopback address.
    pub fn allows_public_bind(&self) -> bool {
        match self {
            AuthMode::None => false,
            AuthMode::Bearer(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn anonymous_principal_describes_itself_as_unauthenticated() {
        let view = AuthMode::None
            .authenticate(None, false, 0)
            .await
            .unwrap()
            .describe();
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["authenticated"], false);
        assert!(json["user"].is_null());
        assert_eq!(json["scopes"], serde_json::json!([]));
        assert!(!AuthMode::None.allows_public_bind());
    }

    #[test]
    fn authenticated_principal_lists_scopes_sorted() {
        let p = Principal {
            user: Some("alice".into()),
            client_id: Some("https://client.example/meta.json".into()),
            scopes: ScopeSet::parse("notes:write notes:read").unwrap(),
            grant_id: Some("g1".into()),
        };
        let view = p.describe();
        assert!(view.authenticated);
        assert_eq!(view.scopes, vec!["notes:read", "notes:write"]);
    }
}
