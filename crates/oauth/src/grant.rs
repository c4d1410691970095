//! Token endpoint requests, parsed into an enum at the edge (RFC 6749 section 4.1.3 and 6).

use crate::error::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;

/// Its `Debug` output names the grant but never the code, verifier or refresh token.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
        resource: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<ScopeSet>,
        resource: Option<String>,
    },
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AuthorizationCode {
                redirect_uri,
                resource,
                ..
            } => f
                .debug_struct("AuthorizationCode")
                .field("redirect_uri", redirect_uri)
                .field("resource", resource)
                .finish_non_exhaustive(),
            Self::RefreshToken {
                scope, resource, ..
            } => f
                .debug_struct("RefreshToken")
                .field("scope", scope)
                .field("resource", resource)
                .finish_non_exhaustive(),
        }
    }
}

/// A form body as name/value pairs, in order, duplicates kept so they can be refused.
pub type Form = [(String, String)];

/// Looks up a parameter that may appear at most once (RFC 6749 section 3.1).
pub fn single<'a>(form: &'a Form, name: &str) -> Result<Option<&'a str>, OAuthError> {
    let mut found = None;
    for (k, v) in form {
        if k == name {
            if found.is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} was sent more than once; send it once"
                )));
            }
            found = Some(v.as_str());
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

fn required<'a>(form: &'a Form, name: &str) -> Result<&'a str, OAuthError> {
    single(form, name)?
        .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name} is required")))
}

impl TokenRequest {
    pub fn parse(form: &Form) -> Result<Self, OAuthError> {
        let resource = single(form, "resource")?.map(str::to_owned);
        match required(form, "grant_type")? {
            "authorization_code" => Ok(Self::AuthorizationCode {
                code: required(form, "code")?.to_owned(),
                redirect_uri: single(form, "redirect_uri")?.map(str::to_owned),
                code_verifier: single(form, "code_verifier")?.map(str::to_owned),
                resource,
            }),
            "refresh_token" => Ok(Self::RefreshToken {
                refresh_token: required(form, "refresh_token")?.to_owned(),
                scope: single(form, "scope")?
                    .map(ScopeSet::parse)
                    .transpose()
                    .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?,
                resource,
            }),
            other => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type {other:?} is not supported: use authorization_code or refresh_token"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_both_grants_and_refuses_the_rest() {
        let r = TokenRequest::parse(&form(&[
            ("grant_type", "authorization_code"),
            ("code", "c"),
            ("code_verifier", "v"),
        ]))
        .unwrap();
        assert!(matches!(r, TokenRequest::AuthorizationCode { ref code, .. } if code == "c"));
        let r = TokenRequest::parse(&form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "r"),
            ("scope", "b a"),
        ]))
        .unwrap();
        assert!(
            matches!(r, TokenRequest::RefreshToken { scope: Some(ref s), .. } if s.to_string() == "a b")
        );
        let secret = TokenRequest::parse(&form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "s3cret"),
        ]))
        .unwrap();
        assert!(
            !format!("{secret:?}").contains("s3cret"),
            "Debug redacts the token"
        );
        let e = TokenRequest::parse(&form(&[("grant_type", "password")])).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        let e = TokenRequest::parse(&form(&[("grant_type", "authorization_code")])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = TokenRequest::parse(&form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "a"),
            ("refresh_token", "b"),
        ]))
        .unwrap_err();
        assert!(e.description.contains("more than once"));
    }
}
