//! Finding the client a request names, and authenticating it at the token endpoint.
//! A client is either registered here (DCR) or described by a metadata document at its
//! `client_id` URL (CIMD).

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64STD;
use portcullis_oauth::client::{ClientSettings, TokenAuthMethod};
use portcullis_oauth::grant::{Form, single};
use portcullis_oauth::{OAuthError, secret};

use super::cimd::CimdError;
use super::{AuthServer, internal};

#[derive(Debug, Clone)]
pub(super) struct Client {
    pub id: String,
    pub settings: ClientSettings,
    pub secret_hash: Option<String>,
    /// True for a metadata-document client (its id is the document's URL).
    pub document: bool,
}

impl Client {
    /// What the consent page calls the client: its self-chosen name, or its id.
    pub fn display_name(&self) -> String {
        self.settings
            .client_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| self.id.clone())
    }

    /// The host of a metadata-document client id, which the client cannot choose freely.
    pub fn id_host(&self) -> Option<String> {
        self.document
            .then(|| {
                url::Url::parse(&self.id)
                    .ok()?
                    .host_str()
                    .map(str::to_owned)
            })
            .flatten()
    }
}

#[derive(Debug)]
pub(super) enum Lookup {
    Found(Client),
    Unknown,
    Document(CimdError),
    Failed(OAuthError),
}

impl AuthServer {
    pub(super) async fn find_client(&self, client_id: &str, now: i64) -> Lookup {
        if self.cimd.accepts_id(client_id) {
            return match self.cimd.get(client_id, now).await {
                Ok(settings) => Lookup::Found(Client {
                    id: client_id.to_owned(),
                    settings,
                    secret_hash: None,
                    document: true,
                }),
                Err(e) => {
                    tracing::info!(client_id, error = %e, "client metadata document refused");
                    Lookup::Document(e)
                }
            };
        }
        match self.store.client(client_id).await {
            Ok(Some(row)) => match serde_json::from_str(&row.settings) {
                Ok(settings) => Lookup::Found(Client {
                    id: row.client_id,
                    settings,
                    secret_hash: row.secret_hash,
                    document: false,
                }),
                Err(e) => Lookup::Failed(internal(format!(
                    "stored client {client_id} is unreadable: {e}"
                ))),
            },
            Ok(None) => Lookup::Unknown,
            Err(e) => Lookup::Failed(internal(e)),
        }
    }

    /// Authenticates the client of a token, revocation or introspection request
    /// (RFC 6749 section 2.3): HTTP Basic, or `client_id` (+ `client_secret`) in the body.
    pub(super) async fn authenticate_client(
        &self,
        headers: &HeaderMap,
        form: &Form,
        now: i64,
    ) -> Result<Client, OAuthError> {
        let (id, presented) = match basic_credentials(headers)? {
            Some((id, secret)) => (id, Some(secret)),
            None => {
                let id = single(form, "client_id")?.ok_or_else(|| {
                    OAuthError::invalid_client("identify the client: send client_id (public clients) or HTTP Basic credentials")
                })?;
                (
                    id.to_owned(),
                    single(form, "client_secret")?.map(str::to_owned),
                )
            }
        };
        if let Some(form_id) = single(form, "client_id")?
            && form_id != id
        {
            return Err(OAuthError::invalid_client(
                "client_id in the body differs from the authenticated client",
            ));
        }
        let client = match self.find_client(&id, now).await {
            Lookup::Found(c) => c,
            Lookup::Unknown => {
                return Err(OAuthError::invalid_client(
                    "unknown client_id: the registration may have expired; register the client again",
                ));
            }
            Lookup::Document(e) => return Err(OAuthError::invalid_client(e.to_string())),
            Lookup::Failed(e) => return Err(e),
        };
        match (
            client.settings.token_endpoint_auth_method,
            &client.secret_hash,
        ) {
            (TokenAuthMethod::None, _) => Ok(client),
            (_, Some(stored)) => {
                let ok = presented.as_deref().is_some_and(|p| {
                    secret::constant_time_eq(secret::hash(p).as_bytes(), stored.as_bytes())
                });
                if ok {
                    Ok(client)
                } else {
                    Err(OAuthError::invalid_client(
                        "client authentication failed: send the client_secret issued at registration",
                    ))
                }
            }
            (_, None) => Err(internal(format!(
                "confidential client {id} has no stored secret"
            ))),
        }
    }
}

/// `Authorization: Basic` credentials, form-decoded per RFC 6749 section 2.3.1.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        OAuthError::invalid_client(
            "malformed HTTP Basic credentials: send base64(client_id:client_secret)",
        )
    };
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = B64STD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Ok(Some((
        unescape(id).ok_or_else(bad)?,
        unescape(secret).ok_or_else(bad)?,
    )))
}
