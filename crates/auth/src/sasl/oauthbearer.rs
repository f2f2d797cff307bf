//! SASL/OAUTHBEARER (RFC 7628) as Kafka's `OAuthBearerSaslServer` runs it:
//! the client's first message is a GS2 header (`n,` with an optional
//! `a=<authzid>`, then `,`) followed by `\x01`-separated `key=value` pairs
//! ending in `\x01\x01`, one of them `auth=Bearer <token>`; the others are
//! SASL extensions, which Sluice accepts and ignores as Kafka does when no
//! handler validates them. A valid token completes the exchange with an
//! empty response; an invalid one gets Kafka's JSON error challenge
//! (`{"status":"invalid_token"}`), and the client's `\x01` reply then
//! fails the authentication with that JSON as the message.

use super::{Credentials, SaslStep};
use crate::AuthError;

const SEPARATOR: u8 = 0x01;

/// Where one exchange is.
#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    /// The error challenge was sent; only `\x01` may follow.
    ErrorSent(String),
    Done,
}

#[derive(Debug, Default)]
pub struct OAuthBearerServer {
    state: State,
}

/// The parts of a client's first message this server uses.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientInitialResponse<'a> {
    pub authorization_id: Option<&'a str>,
    pub token: &'a str,
}

impl<'a> ClientInitialResponse<'a> {
    /// Parses the message, refusing anything Kafka's pattern refuses.
    pub fn parse(message: &'a [u8]) -> Result<Self, AuthError> {
        let invalid = |why: &str| {
            AuthError::SaslInvalid(format!("Invalid OAUTHBEARER client first message: {why}"))
        };
        let text = std::str::from_utf8(message).map_err(|_| invalid("not UTF-8"))?;
        let rest = text
            .strip_prefix("n,")
            .ok_or_else(|| invalid("no GS2 header"))?;
        let (authzid, rest) = rest
            .split_once(',')
            .ok_or_else(|| invalid("no GS2 header"))?;
        let authorization_id = match authzid {
            "" => None,
            a => Some(
                a.strip_prefix("a=")
                    .filter(|a| !a.is_empty() && !a.contains('='))
                    .ok_or_else(|| invalid("bad authorization id"))?,
            ),
        };
        // kvsep *(kvpair kvsep) kvsep, each kvpair ending in its own kvsep.
        let pairs = rest
            .strip_prefix(SEPARATOR as char)
            .and_then(|b| b.strip_suffix(SEPARATOR as char))
            .and_then(|b| b.strip_suffix(SEPARATOR as char))
            .ok_or_else(|| invalid("the key-value pairs do not end in %x01%x01"))?;
        let mut token = None;
        for pair in pairs.split(SEPARATOR as char) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid("a pair without ="))?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(invalid("a key that is not letters"));
            }
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
            {
                return Err(invalid("a value with bytes RFC 7628 does not allow"));
            }
            if key == "auth" {
                let (scheme, t) = value
                    .split_once(' ')
                    .ok_or_else(|| invalid("auth is not \"Bearer <token>\""))?;
                let t = t.trim_start_matches(' ');
                let token_ok = !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !scheme.eq_ignore_ascii_case("bearer") || !token_ok {
                    return Err(invalid("auth is not \"Bearer <token>\""));
                }
                token = Some(t);
            }
        }
        let token = token.ok_or_else(|| invalid("no auth pair"))?;
        Ok(ClientInitialResponse {
            authorization_id,
            token,
        })
    }
}

impl OAuthBearerServer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn evaluate(
        &mut self,
        message: &[u8],
        credentials: &dyn Credentials,
    ) -> Result<SaslStep, AuthError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => Err(AuthError::SaslInvalid(
                "the OAUTHBEARER exchange is over".into(),
            )),
            State::ErrorSent(challenge) => {
                if message == [SEPARATOR] {
                    Err(AuthError::SaslAuthentication(challenge))
                } else {
                    Err(AuthError::SaslInvalid(
                        "after an error challenge the client must send %x01".into(),
                    ))
                }
            }
            State::Start => {
                let first = ClientInitialResponse::parse(message)?;
                let token = match credentials.validate_bearer(first.token) {
                    Ok(t) => t,
                    Err(e) => {
                        let challenge = e.challenge();
                        self.state = State::ErrorSent(challenge.clone());
                        return Ok(SaslStep::Continue(challenge.into_bytes()));
                    }
                };
                if let Some(a) = first.authorization_id.filter(|a| *a != token.principal) {
                    return Err(AuthError::SaslAuthentication(format!(
                        "Authentication failed: Client requested an authorization id ({a}) that is different from the token's principal name ({})",
                        token.principal
                    )));
                }
                Ok(SaslStep::Complete {
                    response: Vec::new(),
                    authorization_id: token.principal,
                    credential_expires_at_ms: Some(token.expires_at_ms),
                })
            }
        }
    }
}
