//! JWT access tokens (RFC 9068) signed with Ed25519 (`alg: EdDSA`, RFC 8037).
//!
//! Signing and verification take keys and `now` as arguments. Verification accepts
//! exactly one algorithm and refuses everything else (`none` included) before it looks
//! at the payload, so a forged header can never pick how a token is checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SecureRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The JOSE `typ` of an access token (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
const ALG: &str = "EdDSA";

/// The claims of a Portcullis access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    /// The audience: the protected resource (RFC 8707). Written as a string when there is
    /// one; on input an array is accepted too.
    #[serde(deserialize_with = "one_or_many", serialize_with = "string_if_one")]
    pub aud: Vec<String>,
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// The grant this token was issued under, so a revoked grant stops its tokens.
    pub grant_id: String,
}

fn string_if_one<S: serde::Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key could not be generated")]
    Generate,
    #[error("the stored signing key is not a valid Ed25519 PKCS#8 document")]
    Invalid,
}

/// A private signing key with its key id.
pub struct SigningKey {
    kid: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key as a PKCS#8 document, to be stored (encrypted) and loaded with [`Self::from_pkcs8`].
    pub fn generate_pkcs8(rng: &dyn SecureRandom) -> Result<Vec<u8>, KeyError> {
        Ed25519KeyPair::generate_pkcs8(rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| KeyError::Generate)
    }

    pub fn from_pkcs8(kid: impl Into<String>, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Invalid)?;
        Ok(Self {
            kid: kid.into(),
            pair,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            kid: self.kid.clone(),
            public: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `claims` as a compact JWS with `typ: at+jwt`. Ed25519 is deterministic, so the
    /// same claims always give the same token (the refresh grace window relies on this).
    pub fn sign(&self, claims: &AccessClaims) -> String {
        let header = serde_json::json!({"alg": ALG, "typ": ACCESS_TOKEN_TYPE, "kid": self.kid});
        // Serializing these plain structs cannot fail; an empty object would only fail verification.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(header.len() * 2 + payload.len() * 2 + 90);
        B64.encode_string(&header, &mut token);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let sig = self.pair.sign(token.as_bytes());
        token.push('.');
        B64.encode_string(sig.as_ref(), &mut token);
        token
    }
}

/// A public key that verifies tokens, as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub kid: String,
    /// The raw 32-byte Ed25519 public key.
    pub public: Vec<u8>,
}

impl VerifyingKey {
    /// The key as a JWK (RFC 8037).
    pub fn to_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "use": "sig",
            "alg": ALG,
            "kid": self.kid,
            "x": B64.encode(&self.public),
        })
    }

    /// Reads an Ed25519 JWK; other key types are skipped by returning `None`.
    pub fn from_jwk(jwk: &serde_json::Value) -> Option<Self> {
        if jwk.get("kty")?.as_str()? != "OKP" || jwk.get("crv")?.as_str()? != "Ed25519" {
            return None;
        }
        let public = B64.decode(jwk.get("x")?.as_str()?).ok()?;
        (public.len() == 32).then(|| Self {
            kid: jwk
                .get("kid")
                .and_then(|k| k.as_str())
                .unwrap_or("")
                .to_owned(),
            public,
        })
    }
}

/// What a token must say to be accepted here.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
}

/// Why a token was refused. The messages go into `error_description`, so they say what
/// is wrong without echoing the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    #[error("the access token's algorithm {0:?} is not accepted; tokens must be signed with EdDSA")]
    Algorithm(String),
    #[error("the token is not an access token (typ must be at+jwt)")]
    NotAnAccessToken,
    #[error("the access token was signed with an unknown key; get a new token")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    BadSignature,
    #[error("the access token was issued by another authorization server")]
    WrongIssuer,
    #[error(
        "the access token was issued for another resource (aud); request a token for this server"
    )]
    WrongAudience,
    #[error("the access token has expired; refresh it or authorize again")]
    Expired,
    #[error("the access token is not valid yet (nbf/iat in the future)")]
    NotYetValid,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Verifies a compact JWS access token: header (alg, typ, kid), signature, then claims.
pub fn verify<'k>(
    token: &str,
    key_for: impl Fn(&str) -> Option<&'k VerifyingKey>,
    expected: &Expectation<'_>,
) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != ALG {
        return Err(TokenError::Algorithm(header.alg));
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::NotAnAccessToken);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(&key_for)
        .ok_or(TokenError::UnknownKey)?;
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    let signed = &token[..h.len() + 1 + p.len()];
    UnparsedPublicKey::new(&ED25519, &key.public)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: AccessClaims = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != expected.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !claims.aud.iter().any(|a| a == expected.audience) {
        return Err(TokenError::WrongAudience);
    }
    if claims.exp + expected.leeway <= expected.now {
        return Err(TokenError::Expired);
    }
    let not_before = claims.nbf.unwrap_or(claims.iat).max(claims.iat);
    if not_before - expected.leeway > expected.now {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn key(kid: &str) -> SigningKey {
        let doc = SigningKey::generate_pkcs8(&SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8(kid, &doc).unwrap()
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://as.example".into(),
            sub: "alice".into(),
            aud: vec!["https://mcp.example/mcp".into()],
            client_id: "c1".into(),
            scope: "mcp".into(),
            exp: 2_000,
            iat: 1_000,
            nbf: None,
            jti: "j1".into(),
            grant_id: "g1".into(),
        }
    }

    const EXPECT: Expectation<'static> = Expectation {
        issuer: "https://as.example",
        audience: "https://mcp.example/mcp",
        now: 1_500,
        leeway: 30,
    };

    fn check(token: &str, k: &VerifyingKey) -> Result<AccessClaims, TokenError> {
        verify(token, |kid| (kid == k.kid).then_some(k), &EXPECT)
    }

    fn forge(header: &serde_json::Value, claims: &AccessClaims, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(serde_json::to_vec(header).unwrap()),
            B64.encode(serde_json::to_vec(claims).unwrap()),
            sig
        )
    }

    #[test]
    fn round_trip_and_determinism() {
        let k = key("k1");
        let t = k.sign(&claims());
        assert_eq!(t, k.sign(&claims()), "Ed25519 signing is deterministic");
        assert_eq!(check(&t, &k.verifying_key()).unwrap(), claims());
        let jwk = k.verifying_key().to_jwk();
        assert_eq!(VerifyingKey::from_jwk(&jwk).unwrap(), k.verifying_key());
    }

    #[test]
    fn claims_are_checked() {
        let k = key("k1");
        let vk = k.verifying_key();
        let mut c = claims();
        c.iss = "https://evil.example".into();
        assert_eq!(check(&k.sign(&c), &vk), Err(TokenError::WrongIssuer));
        let mut c = claims();
        c.aud = vec!["https://other.example/mcp".into()];
        assert_eq!(check(&k.sign(&c), &vk), Err(TokenError::WrongAudience));
        let mut c = claims();
        c.exp = 1_400;
        assert_eq!(check(&k.sign(&c), &vk), Err(TokenError::Expired));
        c.exp = 1_490; // inside the leeway
        assert!(check(&k.sign(&c), &vk).is_ok());
        let mut c = claims();
        c.nbf = Some(1_600);
        assert_eq!(check(&k.sign(&c), &vk), Err(TokenError::NotYetValid));
    }

    #[test]
    fn forged_headers_and_payloads_are_refused() {
        let k = key("k1");
        let vk = k.verifying_key();
        let none = forge(
            &serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}),
            &claims(),
            "",
        );
        assert_eq!(check(&none, &vk), Err(TokenError::Algorithm("none".into())));
        let hs = forge(
            &serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}),
            &claims(),
            "c2ln",
        );
        assert_eq!(check(&hs, &vk), Err(TokenError::Algorithm("HS256".into())));
        // An ID token (typ JWT) signed with the right key is still not an access token.
        let good = k.sign(&claims());
        let sig = good.rsplit('.').next().unwrap();
        let jwt = forge(
            &serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}),
            &claims(),
            sig,
        );
        assert_eq!(check(&jwt, &vk), Err(TokenError::NotAnAccessToken));
        // Tampered payload, original signature.
        let mut c = claims();
        c.sub = "mallory".into();
        let tampered = forge(
            &serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"}),
            &c,
            sig,
        );
        assert_eq!(check(&tampered, &vk), Err(TokenError::BadSignature));
        // Signed by a key this server does not know.
        let stranger = key("k2").sign(&claims());
        assert_eq!(check(&stranger, &vk), Err(TokenError::UnknownKey));
        // Signed by another key that claims our kid.
        let impostor = key("k1").sign(&claims());
        assert_eq!(check(&impostor, &vk), Err(TokenError::BadSignature));
        assert_eq!(check("abc", &vk), Err(TokenError::Malformed));
        assert_eq!(check("a.b.c.d", &vk), Err(TokenError::Malformed));
    }

    #[test]
    fn aud_may_be_an_array() {
        let k = key("k1");
        let vk = k.verifying_key();
        let mut c = claims();
        c.aud = vec!["x".into(), "https://mcp.example/mcp".into()];
        let t = k.sign(&c);
        assert_eq!(check(&t, &vk).unwrap().aud.len(), 2);
    }
}
