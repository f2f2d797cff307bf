//! Bearer-token validation for SASL/OAUTHBEARER (KIP-255, KIP-768), as
//! Kafka's broker validates tokens:
//! - [`UnsecuredValidator`]: Kafka's default when no server callback
//!   handler is configured (`OAuthBearerUnsecuredValidatorCallbackHandler`):
//!   unsigned JWS (`alg: none`) for development, its options read from the
//!   JAAS entry (`unsecuredValidator*`).
//! - [`JwksValidator`]: Kafka's `OAuthBearerValidatorCallbackHandler`:
//!   a JWT signed with a key of the configured JWKS (RS256/384/512,
//!   ES256/384), with `exp` (and `iat`/`nbf` when present) checked within
//!   the clock skew, the expected audience and issuer when configured, and
//!   the principal from the subject claim.
//!
//! Pure: the caller gives the current time and the JWKS document; no
//! sockets, no files, no clock. Invariants: every input is bounded
//! ([`MAX_TOKEN_BYTES`], [`jwks::MAX_JWKS_BYTES`], [`jwks::MAX_KEYS`]); no
//! input panics; a token is accepted only with a verified signature
//! (JWKS) or an explicit `alg: none` (unsecured), never both ways.

pub mod jwks;
pub mod jwt;

use std::collections::BTreeMap;

pub use jwks::{JsonWebKeySet, JwksValidator, JwksValidatorConfig};
use jwt::CompactJws;

/// Longest token considered. The SASL gate bounds the whole message by
/// `sasl.server.max.receive.size` first; this keeps the decoder's work
/// bounded when called alone.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// A token that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The principal name (the subject claim): the connection becomes
    /// `User:<principal>`.
    pub principal: String,
    /// When the token expires (the `exp` claim), in ms since the epoch.
    pub expires_at_ms: i64,
    /// The scope claim's values.
    pub scope: Vec<String>,
}

/// Why a token was refused: `status` is the RFC 6750 error code Kafka
/// sends back in its JSON challenge, `reason` is for the broker's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    pub status: &'static str,
    pub scope: Option<String>,
    pub reason: String,
}

impl TokenError {
    pub fn invalid(reason: impl Into<String>) -> Self {
        TokenError {
            status: "invalid_token",
            scope: None,
            reason: reason.into(),
        }
    }

    /// Kafka's JSON error challenge (`OAuthBearerSaslServer.jsonErrorResponse`).
    pub fn challenge(&self) -> String {
        let mut json = format!("{{\"status\":\"{}\"", self.status);
        if let Some(scope) = &self.scope {
            json.push_str(&format!(", \"scope\":\"{}\"", escape_json(scope)));
        }
        json.push('}');
        json
    }
}

fn escape_json(s: &str) -> String {
    serde_json::to_string(s)
        .map(|q| q[1..q.len() - 1].to_string())
        .unwrap_or_default()
}

/// How a listener validates OAUTHBEARER tokens.
#[derive(Clone, Debug)]
pub enum BearerValidator {
    Unsecured(UnsecuredValidator),
    Jwks(JwksValidator),
}

impl BearerValidator {
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidatedToken, TokenError> {
        match self {
            BearerValidator::Unsecured(v) => v.validate(token, now_ms),
            BearerValidator::Jwks(v) => v.validate(token, now_ms),
        }
    }
}

/// Kafka's unsecured validator and its JAAS options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsecuredValidator {
    /// `unsecuredValidatorPrincipalClaimName` (default `sub`).
    pub principal_claim: String,
    /// `unsecuredValidatorScopeClaimName` (default `scope`).
    pub scope_claim: String,
    /// `unsecuredValidatorRequiredScope`: space-separated scopes every
    /// token must hold.
    pub required_scope: Vec<String>,
    /// `unsecuredValidatorAllowableClockSkewMs` (default 0).
    pub clock_skew_ms: i64,
}

impl Default for UnsecuredValidator {
    fn default() -> Self {
        UnsecuredValidator {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            clock_skew_ms: 0,
        }
    }
}

impl UnsecuredValidator {
    /// From the JAAS entry's options (Kafka's option names); unknown
    /// options are ignored as Kafka ignores them.
    pub fn from_jaas_options(options: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut v = UnsecuredValidator::default();
        if let Some(c) = options.get("unsecuredValidatorPrincipalClaimName") {
            v.principal_claim = non_empty(c, "unsecuredValidatorPrincipalClaimName")?;
        }
        if let Some(c) = options.get("unsecuredValidatorScopeClaimName") {
            v.scope_claim = non_empty(c, "unsecuredValidatorScopeClaimName")?;
        }
        if let Some(s) = options.get("unsecuredValidatorRequiredScope") {
            v.required_scope = s.split_whitespace().map(str::to_string).collect();
        }
        if let Some(ms) = options.get("unsecuredValidatorAllowableClockSkewMs") {
            v.clock_skew_ms = ms
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| {
                    format!("unsecuredValidatorAllowableClockSkewMs must be a non-negative integer, not {ms:?}")
                })?;
        }
        Ok(v)
    }

    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidatedToken, TokenError> {
        let jws = CompactJws::parse(token)?;
        if jws.header_str("alg") != Some("none") {
            return Err(TokenError::invalid(
                "an unsecured JWS must have the header \"alg\": \"none\"",
            ));
        }
        if !jws.signature.is_empty() {
            return Err(TokenError::invalid(
                "an unsecured JWS must have an empty signature",
            ));
        }
        let claims = ClaimRules {
            principal_claim: &self.principal_claim,
            scope_claim: &self.scope_claim,
            clock_skew_ms: self.clock_skew_ms,
            audience: &[],
            issuer: None,
        };
        let token = claims.check(&jws, now_ms)?;
        if let Some(missing) = self
            .required_scope
            .iter()
            .find(|s| !token.scope.contains(s))
        {
            return Err(TokenError {
                status: "insufficient_scope",
                scope: Some(self.required_scope.join(" ")),
                reason: format!("the token's scope lacks the required {missing:?}"),
            });
        }
        Ok(token)
    }
}

fn non_empty(v: &str, option: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        return Err(format!("{option} must not be empty"));
    }
    Ok(v.to_string())
}

/// The claim checks both validators share.
pub(crate) struct ClaimRules<'a> {
    pub principal_claim: &'a str,
    pub scope_claim: &'a str,
    pub clock_skew_ms: i64,
    /// When non-empty, the `aud` claim must name one of these.
    pub audience: &'a [String],
    pub issuer: Option<&'a str>,
}

impl ClaimRules<'_> {
    pub fn check(&self, jws: &CompactJws, now_ms: i64) -> Result<ValidatedToken, TokenError> {
        let exp = jws
            .claim_ms("exp")?
            .ok_or_else(|| TokenError::invalid("the token has no \"exp\" claim"))?;
        if now_ms > exp.saturating_add(self.clock_skew_ms) {
            return Err(TokenError::invalid(format!(
                "the token expired at {exp} ms (now {now_ms} ms)"
            )));
        }
        if let Some(iat) = jws.claim_ms("iat")? {
            if iat > now_ms.saturating_add(self.clock_skew_ms) {
                return Err(TokenError::invalid(format!(
                    "the token was issued in the future ({iat} ms, now {now_ms} ms)"
                )));
            }
        }
        if let Some(nbf) = jws.claim_ms("nbf")? {
            if nbf > now_ms.saturating_add(self.clock_skew_ms) {
                return Err(TokenError::invalid(format!(
                    "the token is not valid before {nbf} ms (now {now_ms} ms)"
                )));
            }
        }
        let principal = match jws.claims.get(self.principal_claim) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                return Err(TokenError::invalid(format!(
                    "the token has no string claim {:?} naming its principal",
                    self.principal_claim
                )))
            }
        };
        if !self.audience.is_empty() {
            let auds: Vec<&str> = match jws.claims.get("aud") {
                Some(serde_json::Value::String(a)) => vec![a.as_str()],
                Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
                _ => Vec::new(),
            };
            if !auds.iter().any(|a| self.audience.iter().any(|e| e == a)) {
                return Err(TokenError::invalid(format!(
                    "the token's audience {auds:?} is none of the expected {:?}",
                    self.audience
                )));
            }
        }
        if let Some(issuer) = self.issuer {
            if jws.claims.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
                return Err(TokenError::invalid(format!(
                    "the token's issuer is not the expected {issuer:?}"
                )));
            }
        }
        let scope = match jws.claims.get(self.scope_claim) {
            Some(serde_json::Value::String(s)) => {
                s.split_whitespace().map(str::to_string).collect()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Ok(ValidatedToken {
            principal,
            expires_at_ms: exp,
            scope,
        })
    }
}

#[cfg(test)]
mod tests;
