//! SASL server mechanisms as Kafka's broker runs them: PLAIN (RFC 4616,
//! Kafka's `PlainSaslServer`), SCRAM-SHA-256/512 (RFC 5802/7677,
//! Kafka's `ScramSaslServer`) and OAUTHBEARER (RFC 7628, Kafka's
//! `OAuthBearerSaslServer`; tokens checked by [`crate::oauth`]).
//!
//! Owns the mechanism names, the exchange state machine ([`SaslServer`])
//! and the [`Credentials`] seam through which a mechanism asks for a
//! user's secret (PLAIN: the listener's JAAS users; SCRAM: the cluster
//! metadata) or validates a bearer token (the listener's validator). Pure: the caller supplies randomness (the SCRAM server nonce)
//! and the credentials.
//!
//! Invariants: no input panics; every message is bounded
//! ([`MAX_SCRAM_MESSAGE_BYTES`]; PLAIN by the broker's
//! `sasl.server.max.receive.size`); secrets are compared in constant time;
//! a failed or finished exchange accepts no further token.

mod login;
mod oauthbearer;
mod plain;
mod scram;
mod scram_client;
mod scram_messages;

use std::fmt;
use std::str::FromStr;

pub use login::{LoginExchange, SaslLogin};
pub use oauthbearer::{ClientInitialResponse, OAuthBearerServer};
pub use plain::PlainServer;
pub use scram::{ScramCredential, ScramMechanism, ScramServer};
pub use scram_client::ScramClient;
pub use scram_messages::{ClientFinalMessage, ClientFirstMessage, MAX_SCRAM_MESSAGE_BYTES};

use crate::oauth::{TokenError, ValidatedToken};
use crate::AuthError;

/// A SASL mechanism this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl SaslMechanism {
    /// Every mechanism, in Kafka's spelling.
    pub const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
        SaslMechanism::OAuthBearer,
    ];

    /// Kafka's name, e.g. `SCRAM-SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.mechanism_name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = AuthError;

    /// Mechanism names are case-sensitive, as in Kafka's SaslHandshake.
    fn from_str(s: &str) -> Result<Self, AuthError> {
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| AuthError::UnsupportedMechanism(s.to_string()))
    }
}

/// Where mechanisms find users' secrets.
pub trait Credentials {
    /// PLAIN: the password configured for `user`.
    fn plain_password(&self, user: &str) -> Option<String>;
    /// SCRAM: `user`'s credential for `mechanism`.
    fn scram_credential(&self, mechanism: ScramMechanism, user: &str) -> Option<ScramCredential>;
    /// OAUTHBEARER: the listener's verdict on `token`, now.
    fn validate_bearer(&self, _token: &str) -> Result<ValidatedToken, TokenError> {
        Err(TokenError::invalid("OAUTHBEARER is not configured"))
    }
}

/// What the server says after one client token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge and wait for the next token.
    Continue(Vec<u8>),
    /// Authenticated: send this last token (possibly empty); the
    /// connection's principal is `User:<authorization_id>`.
    Complete {
        response: Vec<u8>,
        authorization_id: String,
        /// When the credential stops being valid, in ms since the epoch:
        /// an OAUTHBEARER token's `exp` (Kafka's negotiated property
        /// `CREDENTIAL.LIFETIME.MS`), which bounds the session (KIP-368);
        /// `None` for passwords.
        credential_expires_at_ms: Option<i64>,
    },
}

/// One authentication exchange on one connection.
pub enum SaslServer {
    Plain(PlainServer),
    Scram(Box<ScramServer>),
    OAuthBearer(OAuthBearerServer),
}

impl SaslServer {
    /// A server for `mechanism`; `server_nonce` is SCRAM's fresh random
    /// nonce (printable ASCII without `,`; see [`ScramServer::nonce`]).
    pub fn new(mechanism: SaslMechanism, server_nonce: String) -> Self {
        match mechanism {
            SaslMechanism::Plain => SaslServer::Plain(PlainServer::new()),
            SaslMechanism::Scram(m) => {
                SaslServer::Scram(Box::new(ScramServer::new(m, server_nonce)))
            }
            SaslMechanism::OAuthBearer => SaslServer::OAuthBearer(OAuthBearerServer::new()),
        }
    }

    pub fn mechanism(&self) -> SaslMechanism {
        match self {
            SaslServer::Plain(_) => SaslMechanism::Plain,
            SaslServer::Scram(s) => SaslMechanism::Scram(s.mechanism()),
            SaslServer::OAuthBearer(_) => SaslMechanism::OAuthBearer,
        }
    }

    /// Evaluates the client's next token. An error ends the exchange:
    /// [`AuthError::SaslAuthentication`] carries a message the client may
    /// see, [`AuthError::SaslInvalid`] one for the log only.
    pub fn evaluate(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
    ) -> Result<SaslStep, AuthError> {
        match self {
            SaslServer::Plain(p) => p.evaluate(token, credentials),
            SaslServer::Scram(s) => s.evaluate(token, credentials),
            SaslServer::OAuthBearer(o) => o.evaluate(token, credentials),
        }
    }
}

/// Constant-time equality of two byte strings of possibly different
/// lengths: both are hashed first, so the time depends on neither content
/// nor where they differ.
pub(crate) fn ct_eq_hashed(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    ha.ct_eq(&hb).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names() {
        for m in SaslMechanism::ALL {
            assert_eq!(m.name().parse::<SaslMechanism>().unwrap(), m);
        }
        assert!("plain".parse::<SaslMechanism>().is_err());
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }

    #[test]
    fn hashed_comparison() {
        assert!(ct_eq_hashed(b"secret", b"secret"));
        assert!(!ct_eq_hashed(b"secret", b"secreT"));
        assert!(!ct_eq_hashed(b"secret", b"secret2"));
        assert!(ct_eq_hashed(b"", b""));
    }
}
