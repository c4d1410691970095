//! Client metadata (RFC 7591 section 2), as sent to the registration endpoint or served
//! as a Client ID Metadata Document, and the rules that turn it into a client we serve.

use crate::error::{ErrorCode, OAuthError};
use crate::redirect::{self, ApplicationType};
use serde::{Deserialize, Serialize};

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// A public client (native apps, CIMD clients): PKCE is its proof.
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl TokenAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// The metadata fields Portcullis reads; unknown fields are ignored (RFC 7591 section 2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub application_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub software_id: Option<String>,
    #[serde(default)]
    pub software_version: Option<String>,
}

/// A client's validated settings: what the store keeps and the flows consult.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub application_type: ApplicationTypeRepr,
    pub token_endpoint_auth_method: TokenAuthMethod,
    pub grant_types: Vec<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
}

/// [`ApplicationType`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationTypeRepr {
    Native,
    Web,
}

impl From<ApplicationType> for ApplicationTypeRepr {
    fn from(a: ApplicationType) -> Self {
        match a {
            ApplicationType::Native => Self::Native,
            ApplicationType::Web => Self::Web,
        }
    }
}

impl ClientSettings {
    pub fn allows_refresh(&self) -> bool {
        self.grant_types.iter().any(|g| g == "refresh_token")
    }

    pub fn redirect_registered(&self, requested: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| redirect::matches(r, requested))
    }
}

const MAX_REDIRECTS: usize = 20;
const MAX_FIELD: usize = 2_000;

fn bad_meta(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

/// Where the metadata came from: the rules differ slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Dynamic Client Registration (RFC 7591).
    Registration,
    /// A Client ID Metadata Document fetched from the `client_id` URL.
    MetadataDocument,
}

/// Validates client metadata.
///
/// Choices where the RFCs leave room: a missing `application_type` is inferred from the
/// redirect URIs (loopback or private-use scheme means `native`) instead of defaulting to
/// `web`, which would refuse the loopback redirects such clients always send; a missing
/// `grant_types` means `authorization_code` and `refresh_token`, so clients that do not
/// say get rotating refresh tokens rather than a re-login every hour.
pub fn validate(meta: &ClientMetadata, source: Source) -> Result<ClientSettings, OAuthError> {
    let uris = meta
        .redirect_uris
        .as_ref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "redirect_uris is required: list at least one redirect URI",
            )
        })?;
    if uris.len() > MAX_REDIRECTS {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("at most {MAX_REDIRECTS} redirect URIs may be registered"),
        ));
    }
    let app = match meta.application_type.as_deref() {
        None => redirect::infer_application_type(uris.iter().map(String::as_str)),
        Some(v) => ApplicationType::parse(v).ok_or_else(|| {
            bad_meta(format!(
                "application_type {v:?} is not supported: use \"native\" or \"web\""
            ))
        })?,
    };
    for uri in uris {
        if uri.len() > MAX_FIELD {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "a redirect URI is too long",
            ));
        }
        redirect::validate_registration(uri, app)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, e))?;
    }
    let grant_types = match &meta.grant_types {
        None => vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        Some(g) => {
            if let Some(other) = g
                .iter()
                .find(|g| *g != "authorization_code" && *g != "refresh_token")
            {
                return Err(bad_meta(format!(
                    "grant type {other:?} is not supported: use authorization_code and refresh_token"
                )));
            }
            if !g.iter().any(|g| g == "authorization_code") {
                return Err(bad_meta("grant_types must include authorization_code"));
            }
            let mut g = g.clone();
            g.dedup();
            g
        }
    };
    if let Some(rt) = &meta.response_types
        && rt.iter().any(|r| r != "code")
    {
        return Err(bad_meta("only the response type \"code\" is supported"));
    }
    let method = match (meta.token_endpoint_auth_method.as_deref(), source) {
        (None, Source::MetadataDocument) | (Some("none"), _) => TokenAuthMethod::None,
        // A document can't carry a secret; a key-based method is served as a public client
        // (PKCE still binds the code), which is what a document client without keys gets.
        (Some("private_key_jwt"), Source::MetadataDocument) => TokenAuthMethod::None,
        (None, Source::Registration) | (Some("client_secret_basic"), Source::Registration) => {
            // RFC 7591 defaults to client_secret_basic; a native client can't keep a secret.
            if meta.token_endpoint_auth_method.is_none() && app == ApplicationType::Native {
                TokenAuthMethod::None
            } else {
                TokenAuthMethod::ClientSecretBasic
            }
        }
        (Some("client_secret_post"), Source::Registration) => TokenAuthMethod::ClientSecretPost,
        (Some(m), _) => {
            return Err(bad_meta(format!(
                "token_endpoint_auth_method {m:?} is not supported here: use none (public client){}",
                if source == Source::Registration {
                    ", client_secret_basic or client_secret_post"
                } else {
                    ""
                }
            )));
        }
    };
    let short = |f: &Option<String>, name: &str| -> Result<Option<String>, OAuthError> {
        match f {
            Some(v) if v.len() > MAX_FIELD => Err(bad_meta(format!("{name} is too long"))),
            Some(v) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    };
    Ok(ClientSettings {
        client_name: short(&meta.client_name, "client_name")?,
        client_uri: short(&meta.client_uri, "client_uri")?,
        redirect_uris: uris.clone(),
        application_type: app.into(),
        token_endpoint_auth_method: method,
        grant_types,
        software_id: short(&meta.software_id, "software_id")?,
        software_version: short(&meta.software_version, "software_version")?,
    })
}

/// True when `client_id` names a metadata document (an `https` URL with a path), per the
/// Client ID Metadata Document draft.
pub fn is_metadata_document_id(client_id: &str) -> bool {
    url::Url::parse(client_id).is_ok_and(|u| {
        u.scheme() == "https" && u.path() != "/" && !u.path().is_empty() && u.fragment().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(json: serde_json::Value) -> ClientMetadata {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn cursor_style_mixed_redirects_register_as_native() {
        let m = meta(serde_json::json!({
            "client_name": "Cursor",
            "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback",
                              "https://www.cursor.com/agents/mcp/oauth/callback",
                              "http://localhost:7777/callback"],
            "token_endpoint_auth_method": "none"
        }));
        let c = validate(&m, Source::Registration).unwrap();
        assert_eq!(c.application_type, ApplicationTypeRepr::Native);
        assert!(c.allows_refresh());
        assert!(c.redirect_registered("http://localhost:1234/callback"));
    }

    #[test]
    fn bad_metadata_gets_the_rfc_error_codes() {
        let e = validate(&meta(serde_json::json!({})), Source::Registration).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRedirectUri);
        let e = validate(
            &meta(serde_json::json!({"redirect_uris": ["http://localhost/cb"], "application_type": "web"})),
            Source::Registration,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRedirectUri);
        let e = validate(
            &meta(serde_json::json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]})),
            Source::Registration,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
        let e = validate(
            &meta(serde_json::json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"})),
            Source::MetadataDocument,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
    }

    #[test]
    fn auth_method_defaults() {
        let web = validate(
            &meta(serde_json::json!({"redirect_uris": ["https://a.example/cb"]})),
            Source::Registration,
        )
        .unwrap();
        assert_eq!(
            web.token_endpoint_auth_method,
            TokenAuthMethod::ClientSecretBasic
        );
        let native = validate(
            &meta(serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"]})),
            Source::Registration,
        )
        .unwrap();
        assert_eq!(native.token_endpoint_auth_method, TokenAuthMethod::None);
    }

    #[test]
    fn metadata_document_ids() {
        assert!(is_metadata_document_id(
            "https://claude.ai/oauth/mcp-oauth-client-metadata"
        ));
        assert!(!is_metadata_document_id("https://claude.ai/"));
        assert!(!is_metadata_document_id("http://claude.ai/meta"));
        assert!(!is_metadata_document_id("8c1f2a"));
    }
}
