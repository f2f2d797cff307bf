//! SASL/PLAIN's server side as Kafka's `PlainSaslServer`: one message
//! `[authzid] NUL authcid NUL passwd` (RFC 4616), checked against the
//! configured password, with Kafka's error messages.
//!
//! Invariants: the password comparison takes the same time whether the
//! user exists or not and wherever the passwords differ; after one token
//! the exchange is over either way.

use super::{ct_eq_hashed, Credentials, SaslStep};
use crate::AuthError;

/// Compared against when the user does not exist, so an unknown user costs
/// the same as a wrong password.
const ABSENT_USER_PASSWORD: &[u8] = b"\0sluice: no such user\0";

/// The three fields of a PLAIN message, split as Kafka splits them.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage {
    pub authorization_id: String,
    pub username: String,
    pub password: String,
}

impl PlainMessage {
    /// Splits at NUL into exactly three tokens (Kafka decodes the bytes as
    /// UTF-8, replacing invalid sequences, before splitting).
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthError> {
        let text = String::from_utf8_lossy(bytes);
        let tokens: Vec<&str> = text.splitn(4, '\0').collect();
        if tokens.len() != 3 {
            return Err(AuthError::SaslAuthentication(format!(
                "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
                tokens.len()
            )));
        }
        Ok(PlainMessage {
            authorization_id: tokens[0].to_string(),
            username: tokens[1].to_string(),
            password: tokens[2].to_string(),
        })
    }
}

/// One PLAIN exchange.
#[derive(Debug, Default)]
pub struct PlainServer {
    done: bool,
}

impl PlainServer {
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn evaluate(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
    ) -> Result<SaslStep, AuthError> {
        if std::mem::replace(&mut self.done, true) {
            return Err(AuthError::SaslInvalid(
                "PLAIN takes a single message".into(),
            ));
        }
        let message = PlainMessage::parse(token)?;
        if message.username.is_empty() {
            return Err(AuthError::SaslAuthentication(
                "Authentication failed: username not specified".into(),
            ));
        }
        if message.password.is_empty() {
            return Err(AuthError::SaslAuthentication(
                "Authentication failed: password not specified".into(),
            ));
        }
        let expected = credentials.plain_password(&message.username);
        let matches = ct_eq_hashed(
            message.password.as_bytes(),
            expected
                .as_deref()
                .map_or(ABSENT_USER_PASSWORD, str::as_bytes),
        );
        if !(matches && expected.is_some()) {
            return Err(AuthError::SaslAuthentication(
                "Authentication failed: Invalid username or password".into(),
            ));
        }
        if !message.authorization_id.is_empty() && message.authorization_id != message.username {
            return Err(AuthError::SaslAuthentication(
                "Authentication failed: Client requested an authorization id that is different from username".into(),
            ));
        }
        Ok(SaslStep::Complete {
            response: Vec::new(),
            authorization_id: message.username,
            credential_expires_at_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{ScramCredential, ScramMechanism};
    use proptest::prelude::*;

    struct Users;
    impl Credentials for Users {
        fn plain_password(&self, user: &str) -> Option<String> {
            (user == "alice").then(|| "alice-secret".to_string())
        }
        fn scram_credential(&self, _: ScramMechanism, _: &str) -> Option<ScramCredential> {
            None
        }
    }

    fn run(token: &[u8]) -> Result<SaslStep, AuthError> {
        PlainServer::new().evaluate(token, &Users)
    }

    #[test]
    fn accepts_the_right_password_with_or_without_authzid() {
        for token in [&b"\0alice\0alice-secret"[..], b"alice\0alice\0alice-secret"] {
            assert_eq!(
                run(token).unwrap(),
                SaslStep::Complete {
                    response: vec![],
                    authorization_id: "alice".into(),
                    credential_expires_at_ms: None,
                }
            );
        }
    }

    #[test]
    fn kafka_messages() {
        let msg = |t: &[u8]| match run(t) {
            Err(AuthError::SaslAuthentication(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            msg(b"\0alice\0wrong"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            msg(b"\0bob\0alice-secret"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            msg(b"\0\0x"),
            "Authentication failed: username not specified"
        );
        assert_eq!(
            msg(b"\0alice\0"),
            "Authentication failed: password not specified"
        );
        assert_eq!(
            msg(b"bob\0alice\0alice-secret"),
            "Authentication failed: Client requested an authorization id that is different from username"
        );
        assert_eq!(
            msg(b"alice-secret"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 1"
        );
        assert_eq!(
            msg(b"a\0b\0c\0d"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 4"
        );
    }

    #[test]
    fn one_message_only() {
        let mut s = PlainServer::new();
        s.evaluate(b"\0alice\0alice-secret", &Users).unwrap();
        assert!(s.evaluate(b"\0alice\0alice-secret", &Users).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = run(&bytes);
        }

        #[test]
        fn parse_round_trips(a in "[^\0]{0,20}", u in "[^\0]{0,20}", p in "[^\0]{0,20}") {
            let m = PlainMessage::parse(format!("{a}\0{u}\0{p}").as_bytes()).unwrap();
            prop_assert_eq!(m, PlainMessage { authorization_id: a, username: u, password: p });
        }
    }
}
