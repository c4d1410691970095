//! PKCE (RFC 7636) with the only method OAuth 2.1 and MCP allow: S256.
//!
//! `plain` is refused at parse time, so a stored challenge is always an S256 one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Why a PKCE parameter was refused. The message tells the client what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge_method must be S256 (got {0:?}); plain is not allowed")]
    UnsupportedMethod(String),
    #[error(
        "code_challenge must be the base64url (no padding) SHA-256 of the verifier: 43 characters from [A-Za-z0-9-_]"
    )]
    MalformedChallenge,
    #[error(
        "code_verifier must be 43 to 128 characters from [A-Za-z0-9-._~] (RFC 7636 section 4.1)"
    )]
    MalformedVerifier,
    #[error("code_verifier does not match the code_challenge sent on the authorization request")]
    Mismatch,
}

/// A validated S256 code challenge, as received on the authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses the `code_challenge` and `code_challenge_method` parameters.
    /// A missing method means `plain` (RFC 7636 4.3), which is refused.
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        match method {
            Some("S256") => {}
            Some(other) => return Err(PkceError::UnsupportedMethod(other.to_owned())),
            None => return Err(PkceError::UnsupportedMethod("plain".to_owned())),
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// The challenge a verifier would produce: BASE64URL(SHA256(ASCII(verifier))).
    pub fn from_verifier(verifier: &str) -> Result<Self, PkceError> {
        validate_verifier(verifier)?;
        Ok(Self(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the token request's `code_verifier` against this challenge.
    pub fn verify(&self, verifier: &str) -> Result<(), PkceError> {
        let computed = Self::from_verifier(verifier)?;
        if constant_time_eq(computed.0.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }
}

fn validate_verifier(verifier: &str) -> Result<(), PkceError> {
    let ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if ok {
        Ok(())
    } else {
        Err(PkceError::MalformedVerifier)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        let computed = CodeChallenge::from_verifier(VERIFIER).unwrap();
        assert_eq!(computed.as_str(), CHALLENGE);
        let parsed = CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
        assert_eq!(parsed.verify(VERIFIER), Ok(()));
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        assert_eq!(
            CodeChallenge::parse(CHALLENGE, Some("plain")),
            Err(PkceError::UnsupportedMethod("plain".into()))
        );
        assert!(matches!(
            CodeChallenge::parse(CHALLENGE, None),
            Err(PkceError::UnsupportedMethod(_))
        ));
    }

    #[test]
    fn wrong_verifier_is_a_mismatch() {
        let parsed = CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
        let other = "a".repeat(43);
        assert_eq!(parsed.verify(&other), Err(PkceError::Mismatch));
    }

    #[test]
    fn malformed_inputs_are_refused() {
        assert_eq!(
            CodeChallenge::parse("short", Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        assert_eq!(
            CodeChallenge::parse(&format!("{}=", &CHALLENGE[..42]), Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        let parsed = CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
        assert_eq!(
            parsed.verify("too-short"),
            Err(PkceError::MalformedVerifier)
        );
        assert_eq!(
            parsed.verify(&"a".repeat(129)),
            Err(PkceError::MalformedVerifier)
        );
        assert_eq!(
            parsed.verify(&format!("{}!", "a".repeat(43))),
            Err(PkceError::MalformedVerifier)
        );
    }
}
