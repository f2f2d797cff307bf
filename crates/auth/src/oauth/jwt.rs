//! A JWS in compact serialization (RFC 7515): `header.payload.signature`,
//! each part base64url without padding; header and payload are JSON
//! objects (the payload holds the JWT claims, RFC 7519).

use base64::Engine;
use serde_json::{Map, Value};

use super::{TokenError, MAX_TOKEN_BYTES};

/// A parsed, not yet verified, JWS.
#[derive(Debug)]
pub struct CompactJws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// The signature's bytes (empty for `alg: none`).
    pub signature: Vec<u8>,
    /// `header.payload` as sent: what the signature covers.
    pub signing_input: String,
}

impl CompactJws {
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::invalid(format!(
                "the token is {} bytes, over the {MAX_TOKEN_BYTES} allowed",
                token.len()
            )));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::invalid(
                "a JWS compact serialization has three dot-separated parts",
            ));
        };
        let header_json = object(&decode(header, "header")?, "header")?;
        let claims = object(&decode(payload, "payload")?, "payload")?;
        Ok(CompactJws {
            header: header_json,
            claims,
            signature: decode(signature, "signature")?,
            signing_input: token[..header.len() + 1 + payload.len()].to_string(),
        })
    }

    /// A string header parameter.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim (seconds since the epoch, possibly fractional)
    /// in ms; `Ok(None)` when absent, an error when not a number.
    pub fn claim_ms(&self, name: &str) -> Result<Option<i64>, TokenError> {
        match self.claims.get(name) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(s) if s.is_finite() => Ok(Some((s * 1000.0) as i64)),
                _ => Err(TokenError::invalid(format!(
                    "the claim {name:?} is not a number of seconds"
                ))),
            },
        }
    }
}

/// base64url, without padding (tolerating padding, as Kafka's decoder does).
pub fn decode(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| TokenError::invalid(format!("the {what} is not base64url: {e}")))
}

fn object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TokenError::invalid(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(TokenError::invalid(format!("the {what} is not JSON: {e}"))),
    }
}
