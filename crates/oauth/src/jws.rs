//! Tokens another server signed: access tokens from an external authorization server, and
//! (for federated login) ID tokens from an upstream OpenID provider. Their keys come from a
//! JWKS document (RFC 7517), and they use the algorithms real providers use: RSA (RS*, PS*),
//! ECDSA (ES256, ES384) and EdDSA.
//!
//! The header's `alg` must be one this side allows, and must fit the key it names: a key's
//! own `alg` (when the JWKS gives one) and its type decide, so a token cannot pick a weaker
//! check (`none`, HMAC with a public key as the secret, or RSA against an EC key).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};

/// Every algorithm this module can verify.
pub const SUPPORTED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A public key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The algorithm the JWKS pins the key to, if it does.
    pub alg: Option<String>,
    key: KeyMaterial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (0x04 ‖ x ‖ y).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl Jwk {
    /// Reads one JWK; `None` for keys that are not for signatures or of a type this module
    /// cannot use (they are skipped, not an error: a JWKS may hold encryption keys too).
    pub fn parse(jwk: &Value) -> Option<Self> {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| text(name).and_then(|v| B64.decode(v).ok());
        if text("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let key = match (text("kty")?, text("crv")) {
            ("RSA", _) => {
                // Big-endian integers; a leading zero byte (seen in the wild) is dropped.
                let unsigned =
                    |v: Vec<u8>| v.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
                let n = unsigned(bytes("n")?);
                // RSA keys under 2048 bits are refused (ring refuses them too).
                if n.len() < 256 {
                    return None;
                }
                KeyMaterial::Rsa {
                    n,
                    e: unsigned(bytes("e")?),
                }
            }
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                let size = if crv == "P-256" { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if crv == "P-256" {
                    KeyMaterial::P256(point)
                } else {
                    KeyMaterial::P384(point)
                }
            }
            ("OKP", Some("Ed25519")) => {
                let x = bytes("x")?;
                (x.len() == 32).then_some(())?;
                KeyMaterial::Ed25519(x)
            }
            _ => return None,
        };
        Some(Self {
            kid: text("kid").map(str::to_owned),
            alg: text("alg").map(str::to_owned),
            key,
        })
    }

    /// The keys of a JWKS document (`{"keys": [...]}`) this module can use.
    pub fn parse_set(jwks: &Value) -> Vec<Jwk> {
        jwks.get("keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Jwk::parse).collect())
            .unwrap_or_default()
    }

    /// How to check `alg` with this key, if the two fit.
    fn check(&self, alg: &str) -> Option<Check> {
        if self.alg.as_deref().is_some_and(|pinned| pinned != alg) {
            return None;
        }
        Some(match (&self.key, alg) {
            (KeyMaterial::Rsa { .. }, "RS256") => {
                Check::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256)
            }
            (KeyMaterial::Rsa { .. }, "RS384") => {
                Check::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384)
            }
            (KeyMaterial::Rsa { .. }, "RS512") => {
                Check::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512)
            }
            (KeyMaterial::Rsa { .. }, "PS256") => Check::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
            (KeyMaterial::Rsa { .. }, "PS384") => Check::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
            (KeyMaterial::Rsa { .. }, "PS512") => Check::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
            (KeyMaterial::P256(_), "ES256") => Check::Point(&signature::ECDSA_P256_SHA256_FIXED),
            (KeyMaterial::P384(_), "ES384") => Check::Point(&signature::ECDSA_P384_SHA384_FIXED),
            (KeyMaterial::Ed25519(_), "EdDSA") => Check::Point(&signature::ED25519),
            _ => return None,
        })
    }

    fn verify(&self, check: Check, signed: &[u8], sig: &[u8]) -> bool {
        match (&self.key, check) {
            (KeyMaterial::Rsa { n, e }, Check::Rsa(params)) => RsaPublicKeyComponents { n, e }
                .verify(params, signed, sig)
                .is_ok(),
            (
                KeyMaterial::P256(point) | KeyMaterial::P384(point) | KeyMaterial::Ed25519(point),
                Check::Point(alg),
            ) => UnparsedPublicKey::new(alg, point)
                .verify(signed, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// The ring check for one algorithm: RSA keys come as components, the others as bytes.
#[derive(Clone, Copy)]
enum Check {
    Rsa(&'static signature::RsaParameters),
    Point(&'static dyn VerificationAlgorithm),
}

/// Why a signed token was refused. Messages go into `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("the token was signed with a key the issuer does not publish; get a new token")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
}

/// A token whose signature checked out: its header's `typ` and its claims, not yet judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub alg: String,
    pub typ: Option<String>,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
}

/// Verifies a compact JWS against `keys`, with `alg` among `allowed`. With a `kid` in the
/// header only that key is tried; without one, every key that fits the algorithm.
pub fn verify(token: &str, keys: &[Jwk], allowed: &[&str]) -> Result<Signed, JwsError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header: Map<String, Value> = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwsError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwsError::Malformed)?;
    if !allowed.contains(&alg) || !SUPPORTED_ALGORITHMS.contains(&alg) {
        return Err(JwsError::Algorithm(alg.to_owned()));
    }
    // Critical extensions this module does not understand make the token unusable (RFC 7515 4.1.11).
    if header.contains_key("crit") {
        return Err(JwsError::Algorithm(format!("{alg} with crit")));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let sig = B64.decode(s).map_err(|_| JwsError::Malformed)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let mut candidates = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .filter_map(|k| k.check(alg).map(|c| (k, c)))
        .peekable();
    if candidates.peek().is_none() {
        return Err(JwsError::UnknownKey);
    }
    if !candidates.any(|(k, c)| k.verify(c, signed, &sig)) {
        return Err(JwsError::BadSignature);
    }
    let claims: Map<String, Value> = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwsError::Malformed)?;
    Ok(Signed {
        alg: alg.to_owned(),
        typ: header.get("typ").and_then(Value::as_str).map(str::to_owned),
        kid: kid.map(str::to_owned),
        claims,
    })
}

/// Why a verified token's claims do not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the token was issued by another authorization server (iss)")]
    WrongIssuer,
    #[error("the token was issued for another audience (aud); request a token for this server")]
    WrongAudience,
    #[error("the token has expired; refresh it or authorize again")]
    Expired,
    #[error("the token is not valid yet (nbf/iat in the future)")]
    NotYetValid,
    #[error("the token lacks the {0} claim")]
    Missing(&'static str),
}

/// The registered claims every token must satisfy: `iss` equal to `issuer`, an `aud`
/// (string or array) holding one of `audiences`, `exp` in the future and `nbf`/`iat` not,
/// all with `leeway` seconds of clock skew.
pub fn check_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    audiences: &[String],
    now: i64,
    leeway: i64,
) -> Result<(), ClaimsError> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == issuer => {}
        Some(_) => return Err(ClaimsError::WrongIssuer),
        None => return Err(ClaimsError::Missing("iss")),
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.iter().any(|x| x == a),
        Some(Value::Array(all)) => all
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => return Err(ClaimsError::Missing("aud")),
    };
    if !aud_ok {
        return Err(ClaimsError::WrongAudience);
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = number("exp").ok_or(ClaimsError::Missing("exp"))?;
    if exp + leeway <= now {
        return Err(ClaimsError::Expired);
    }
    for name in ["nbf", "iat"] {
        if number(name).is_some_and(|t| t - leeway > now) {
            return Err(ClaimsError::NotYetValid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn es256() -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
        });
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
        let mut token = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = pair.sign(&SystemRandom::new(), token.as_bytes()).unwrap();
        token.push('.');
        token.push_str(&B64.encode(sig.as_ref()));
        token
    }

    fn claims() -> Value {
        serde_json::json!({"iss": "https://idp.example", "aud": ["https://mcp.example/mcp", "x"],
            "sub": "alice", "exp": 2_000, "iat": 1_000, "scope": "mcp"})
    }

    #[test]
    fn es256_tokens_verify_against_their_jwk_and_nothing_else() {
        let (pair, jwk) = es256();
        let keys = vec![Jwk::parse(&jwk).unwrap()];
        let token = sign(
            &pair,
            serde_json::json!({"alg": "ES256", "kid": "ec1", "typ": "at+jwt"}),
            claims(),
        );
        let ok = verify(&token, &keys, &["ES256", "RS256"]).unwrap();
        assert_eq!(ok.typ.as_deref(), Some("at+jwt"));
        assert_eq!(ok.claims["sub"], "alice");
        assert_eq!(
            verify(&token, &keys, &["RS256"]),
            Err(JwsError::Algorithm("ES256".into()))
        );
        // The header cannot choose another algorithm for the same key.
        let forged = sign(
            &pair,
            serde_json::json!({"alg": "RS256", "kid": "ec1"}),
            claims(),
        );
        assert_eq!(
            verify(&forged, &keys, &["ES256", "RS256"]),
            Err(JwsError::UnknownKey)
        );
        for alg in ["none", "HS256"] {
            let t = format!(
                "{}.{}.",
                B64.encode(format!(r#"{{"alg":"{alg}"}}"#)),
                B64.encode(claims().to_string())
            );
            assert_eq!(
                verify(&t, &keys, SUPPORTED_ALGORITHMS),
                Err(JwsError::Algorithm(alg.into()))
            );
        }
        let other = sign(
            &pair,
            serde_json::json!({"alg": "ES256", "kid": "ec2"}),
            claims(),
        );
        assert_eq!(verify(&other, &keys, &["ES256"]), Err(JwsError::UnknownKey));
        let (stranger, _) = es256();
        let wrong_key = sign(
            &stranger,
            serde_json::json!({"alg": "ES256", "kid": "ec1"}),
            claims(),
        );
        assert_eq!(
            verify(&wrong_key, &keys, &["ES256"]),
            Err(JwsError::BadSignature)
        );
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'A');
        assert!(verify(&tampered, &keys, &["ES256"]).is_err());
        // A key pinned to another algorithm is not used for this one.
        let mut pinned = jwk.clone();
        pinned["alg"] = "ES384".into();
        assert_eq!(
            verify(&token, &[Jwk::parse(&pinned).unwrap()], &["ES256"]),
            Err(JwsError::UnknownKey)
        );
        // Without a kid, every fitting key is tried.
        let no_kid = sign(&pair, serde_json::json!({"alg": "ES256"}), claims());
        assert!(verify(&no_kid, &keys, &["ES256"]).is_ok());
    }

    #[test]
    fn rs256_and_ps256_tokens_verify_with_the_published_modulus() {
        use ring::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair};
        let pair = RsaKeyPair::from_der(include_bytes!("../testdata/rsa2048.der")).unwrap();
        let public = pair.public().as_ref();
        // The public key is DER: SEQUENCE { INTEGER n, INTEGER e }; read the two integers.
        let (n, e) = der_rsa_public(public);
        let jwk =
            serde_json::json!({"kty": "RSA", "kid": "r1", "n": B64.encode(n), "e": B64.encode(e)});
        let keys = vec![Jwk::parse(&jwk).unwrap()];
        for (alg, padding) in [
            (
                "RS256",
                &RSA_PKCS1_SHA256 as &dyn ring::signature::RsaEncoding,
            ),
            ("PS256", &RSA_PSS_SHA256),
        ] {
            let mut token = format!(
                "{}.{}",
                B64.encode(format!(r#"{{"alg":"{alg}","kid":"r1"}}"#)),
                B64.encode(claims().to_string())
            );
            let mut sig = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &SystemRandom::new(), token.as_bytes(), &mut sig)
                .unwrap();
            token.push('.');
            token.push_str(&B64.encode(&sig));
            assert_eq!(verify(&token, &keys, &[alg]).unwrap().alg, alg);
            let mut bad = sig.clone();
            bad[10] ^= 1;
            let forged = format!("{}.{}", token.rsplit_once('.').unwrap().0, B64.encode(&bad));
            assert_eq!(verify(&forged, &keys, &[alg]), Err(JwsError::BadSignature));
        }
    }

    /// (n, e) of a DER RSAPublicKey.
    fn der_rsa_public(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        fn read(d: &[u8]) -> (u8, &[u8], &[u8]) {
            let tag = d[0];
            let (len, start) = if d[1] & 0x80 == 0 {
                (d[1] as usize, 2)
            } else {
                let n = (d[1] & 0x7f) as usize;
                (
                    d[2..2 + n].iter().fold(0usize, |a, b| a << 8 | *b as usize),
                    2 + n,
                )
            };
            (tag, &d[start..start + len], &d[start + len..])
        }
        let (_, seq, _) = read(der);
        let (_, n, rest) = read(seq);
        let (_, e, _) = read(rest);
        (n.to_vec(), e.to_vec())
    }

    #[test]
    fn jwks_skip_what_cannot_verify_signatures() {
        let (_, ec) = es256();
        let set = serde_json::json!({"keys": [
            ec,
            {"kty": "EC", "crv": "P-256", "use": "enc", "x": "AA", "y": "AA"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": B64.encode([1u8; 128]), "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "x": B64.encode([1u8; 32])},
            {"kty": "RSA", "n": B64.encode([0xC5u8; 256]), "e": "AQAB", "kid": "r1", "alg": "RS256"},
        ]});
        let keys = Jwk::parse_set(&set);
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(
            kids,
            [Some("ec1"), Some("r1")],
            "1024-bit RSA, HMAC, encryption keys skipped"
        );
    }

    #[test]
    fn claims_are_checked_for_issuer_audience_and_time() {
        let c = claims();
        let c = c.as_object().unwrap();
        let aud = vec!["https://mcp.example/mcp".to_owned()];
        assert_eq!(
            check_claims(c, "https://idp.example", &aud, 1_500, 30),
            Ok(())
        );
        assert_eq!(
            check_claims(c, "https://other.example", &aud, 1_500, 30),
            Err(ClaimsError::WrongIssuer)
        );
        assert_eq!(
            check_claims(
                c,
                "https://idp.example",
                &["api://portcullis".into()],
                1_500,
                30
            ),
            Err(ClaimsError::WrongAudience)
        );
        assert_eq!(
            check_claims(c, "https://idp.example", &aud, 2_030, 30),
            Err(ClaimsError::Expired)
        );
        assert_eq!(
            check_claims(c, "https://idp.example", &aud, 2_029, 30),
            Ok(())
        );
        assert_eq!(
            check_claims(c, "https://idp.example", &aud, 969, 30),
            Err(ClaimsError::NotYetValid)
        );
        let mut no_exp = c.clone();
        no_exp.remove("exp");
        assert_eq!(
            check_claims(&no_exp, "https://idp.example", &aud, 1_500, 30),
            Err(ClaimsError::Missing("exp"))
        );
        let mut one = c.clone();
        one.insert("aud".into(), "https://mcp.example/mcp".into());
        assert_eq!(
            check_claims(&one, "https://idp.example", &aud, 1_500, 30),
            Ok(())
        );
    }
}
