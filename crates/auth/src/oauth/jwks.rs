//! A JSON Web Key Set (RFC 7517) of public signing keys, and the JWT
//! validator that verifies tokens with it (Kafka's
//! `OAuthBearerValidatorCallbackHandler` with `sasl.oauthbearer.*`).
//!
//! Keys: RSA (`n`, `e`) for RS256/384/512 and PS256/384/512; EC P-256 and
//! P-384 (`x`, `y`) for ES256/384. A token's `kid` selects keys by id;
//! without one, every key of a fitting type is tried. Keys marked for
//! another use than `sig`, or for another algorithm, are never used.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::Value;

use super::jwt::{decode, CompactJws};
use super::{ClaimRules, TokenError, ValidatedToken};

/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Most keys kept from one JWKS.
pub const MAX_KEYS: usize = 256;

/// One usable public key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PublicKey {
    kid: Option<String>,
    /// The key's `alg`, if it names one.
    alg: Option<String>,
    material: KeyMaterial,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (0x04 || x || y) on `curve`.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// The public keys of a JWKS document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonWebKeySet {
    keys: Vec<PublicKey>,
}

impl JsonWebKeySet {
    /// Reads a JWKS document. Keys of unknown types or curves, or for
    /// encryption, are skipped (as jose4j skips them); a document with no
    /// usable key is refused.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the JWKS is {} bytes, over the {MAX_JWKS_BYTES} allowed",
                json.len()
            ));
        }
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let Some(Value::Array(entries)) = doc.get("keys") else {
            return Err("the JWKS has no \"keys\" array".into());
        };
        let keys: Vec<PublicKey> = entries
            .iter()
            .filter_map(public_key)
            .take(MAX_KEYS)
            .collect();
        if keys.is_empty() {
            return Err("the JWKS holds no RSA or EC (P-256, P-384) signing key".into());
        }
        Ok(JsonWebKeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key selected for `jws` verifies its signature.
    fn verifies(&self, jws: &CompactJws) -> Result<(), TokenError> {
        let alg = jws
            .header_str("alg")
            .ok_or_else(|| TokenError::invalid("the token's header has no \"alg\""))?;
        let Some((algorithm, kind)) = algorithm(alg) else {
            return Err(TokenError::invalid(format!(
                "the token's algorithm {alg:?} is not accepted (RS256/384/512, PS256/384/512, ES256/384)"
            )));
        };
        let kid = jws.header_str("kid");
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
            .filter(|k| kind.fits(&k.material))
            .peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::invalid(format!(
                "no key of the JWKS fits the token (kid {kid:?}, alg {alg})"
            )));
        }
        let message = jws.signing_input.as_bytes();
        let verified = candidates.any(|k| match &k.material {
            KeyMaterial::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(rsa_params(alg), message, &jws.signature)
                .is_ok(),
            KeyMaterial::Ec { point, .. } => UnparsedPublicKey::new(algorithm, point)
                .verify(message, &jws.signature)
                .is_ok(),
        });
        if verified {
            Ok(())
        } else {
            Err(TokenError::invalid("the token's signature does not verify"))
        }
    }
}

#[derive(Clone, Copy)]
enum KeyKind {
    Rsa,
    Ec(Curve),
}

impl KeyKind {
    fn fits(self, m: &KeyMaterial) -> bool {
        match (self, m) {
            (KeyKind::Rsa, KeyMaterial::Rsa { .. }) => true,
            (KeyKind::Ec(c), KeyMaterial::Ec { curve, .. }) => c == *curve,
            _ => false,
        }
    }
}

/// ring's verification algorithm for a JWS `alg`.
fn algorithm(alg: &str) -> Option<(&'static dyn VerificationAlgorithm, KeyKind)> {
    Some(match alg {
        "RS256" => (&signature::RSA_PKCS1_2048_8192_SHA256, KeyKind::Rsa),
        "RS384" => (&signature::RSA_PKCS1_2048_8192_SHA384, KeyKind::Rsa),
        "RS512" => (&signature::RSA_PKCS1_2048_8192_SHA512, KeyKind::Rsa),
        "PS256" => (&signature::RSA_PSS_2048_8192_SHA256, KeyKind::Rsa),
        "PS384" => (&signature::RSA_PSS_2048_8192_SHA384, KeyKind::Rsa),
        "PS512" => (&signature::RSA_PSS_2048_8192_SHA512, KeyKind::Rsa),
        "ES256" => (
            &signature::ECDSA_P256_SHA256_FIXED,
            KeyKind::Ec(Curve::P256),
        ),
        "ES384" => (
            &signature::ECDSA_P384_SHA384_FIXED,
            KeyKind::Ec(Curve::P384),
        ),
        _ => return None,
    })
}

fn rsa_params(alg: &str) -> &'static signature::RsaParameters {
    match alg {
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        _ => &signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

/// One JWK entry as a usable signing key, or `None` to skip it.
fn public_key(entry: &Value) -> Option<PublicKey> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let material = match field("kty")? {
        "RSA" => KeyMaterial::Rsa {
            n: decode(field("n")?, "n").ok()?,
            e: decode(field("e")?, "e").ok()?,
        },
        "EC" => {
            let (curve, len) = match field("crv")? {
                "P-256" => (Curve::P256, 32),
                "P-384" => (Curve::P384, 48),
                _ => return None,
            };
            let x = decode(field("x")?, "x").ok()?;
            let y = decode(field("y")?, "y").ok()?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::Ec { curve, point }
        }
        _ => return None,
    };
    Some(PublicKey {
        kid: field("kid").map(str::to_string),
        alg: field("alg").map(str::to_string),
        material,
    })
}

/// Kafka's `sasl.oauthbearer.*` validation settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksValidatorConfig {
    /// `sasl.oauthbearer.expected.audience` (empty: not checked).
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`.
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name` (default `sub`).
    pub sub_claim_name: String,
    /// `sasl.oauthbearer.scope.claim.name` (default `scope`).
    pub scope_claim_name: String,
    /// `sasl.oauthbearer.clock.skew.seconds` (default 30), in ms.
    pub clock_skew_ms: i64,
}

impl Default for JwksValidatorConfig {
    fn default() -> Self {
        JwksValidatorConfig {
            expected_audience: Vec::new(),
            expected_issuer: None,
            sub_claim_name: "sub".into(),
            scope_claim_name: "scope".into(),
            clock_skew_ms: 30_000,
        }
    }
}

/// Validates signed JWTs against a key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksValidator {
    pub keys: JsonWebKeySet,
    pub config: JwksValidatorConfig,
}

impl JwksValidator {
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidatedToken, TokenError> {
        let jws = CompactJws::parse(token)?;
        self.keys.verifies(&jws)?;
        ClaimRules {
            principal_claim: &self.config.sub_claim_name,
            scope_claim: &self.config.scope_claim_name,
            clock_skew_ms: self.config.clock_skew_ms,
            audience: &self.config.expected_audience,
            issuer: self.config.expected_issuer.as_deref(),
        }
        .check(&jws, now_ms)
    }
}
