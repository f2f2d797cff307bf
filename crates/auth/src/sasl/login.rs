//! The client side of a SASL login, as the `sluice` CLI and a node
//! dialling its peers run it: which mechanism and user ([`SaslLogin`]),
//! and the tokens to send ([`LoginExchange`]). Pure: the caller sends each
//! token in a SaslAuthenticate and hands back the server's answer, and
//! supplies the randomness of the SCRAM nonce.

use std::fmt;

use super::{ScramClient, ScramMechanism, ScramServer};
use crate::AuthError;

/// `sasl.mechanism` with the JAAS entry's login (a node's own login comes
/// from its listener's JAAS entry).
#[derive(Clone, PartialEq, Eq)]
pub enum SaslLogin {
    Plain {
        user: String,
        password: String,
    },
    Scram {
        mechanism: ScramMechanism,
        user: String,
        password: String,
    },
}

impl SaslLogin {
    /// The mechanism's name in SaslHandshake.
    pub fn mechanism(&self) -> &'static str {
        match self {
            SaslLogin::Plain { .. } => "PLAIN",
            SaslLogin::Scram { mechanism, .. } => mechanism.mechanism_name(),
        }
    }

    pub fn user(&self) -> &str {
        match self {
            SaslLogin::Plain { user, .. } | SaslLogin::Scram { user, .. } => user,
        }
    }

    /// Starts the exchange; `random` seeds the SCRAM client nonce.
    pub fn exchange(&self, random: &[u8; 24]) -> LoginExchange {
        match self {
            SaslLogin::Plain { user, password } => {
                LoginExchange::Plain(Some(format!("\0{user}\0{password}").into_bytes()))
            }
            SaslLogin::Scram {
                mechanism,
                user,
                password,
            } => LoginExchange::Scram {
                client: ScramClient::new(*mechanism, user, password, ScramServer::nonce(random)),
                step: 0,
            },
        }
    }
}

/// Never prints the password.
impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as {}", self.mechanism(), self.user())
    }
}

/// One login's tokens: [`LoginExchange::first`], then
/// [`LoginExchange::next`] with each answer until it returns `None`
/// (done; for SCRAM, after the server's signature was checked).
pub enum LoginExchange {
    Plain(Option<Vec<u8>>),
    Scram { client: ScramClient, step: u8 },
}

impl LoginExchange {
    /// The first token to send.
    pub fn first(&mut self) -> Vec<u8> {
        match self {
            LoginExchange::Plain(token) => token.take().unwrap_or_default(),
            LoginExchange::Scram { client, step } => {
                *step = 1;
                client.first()
            }
        }
    }

    /// The server answered the last token with `answer`: the next token,
    /// or `None` when the login is complete.
    pub fn next(&mut self, answer: &[u8]) -> Result<Option<Vec<u8>>, AuthError> {
        match self {
            LoginExchange::Plain(_) => Ok(None),
            LoginExchange::Scram { client, step } => match *step {
                1 => {
                    *step = 2;
                    client.final_message(answer).map(Some)
                }
                _ => client.verify(answer).map(|()| None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{Credentials, SaslMechanism, SaslServer, SaslStep, ScramCredential};

    struct Users;
    impl Credentials for Users {
        fn plain_password(&self, user: &str) -> Option<String> {
            (user == "alice").then(|| "pw".to_owned())
        }
        fn scram_credential(&self, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
            (user == "alice").then(|| ScramCredential::from_password(m, b"pw", b"salty", 4096))
        }
    }

    /// Runs `login` against a server of its mechanism: the authorization
    /// id, or why it failed.
    fn run(login: &SaslLogin, mechanism: SaslMechanism) -> Result<String, String> {
        let mut server = SaslServer::new(mechanism, "srvnonce".into());
        let mut exchange = login.exchange(&[7; 24]);
        let mut token = exchange.first();
        loop {
            let answer = match server.evaluate(&token, &Users).map_err(|e| e.to_string())? {
                SaslStep::Continue(answer) => answer,
                SaslStep::Complete {
                    response,
                    authorization_id,
                    ..
                } => {
                    let next = exchange.next(&response).map_err(|e| e.to_string())?;
                    assert!(next.is_none(), "the client wants more after completion");
                    return Ok(authorization_id);
                }
            };
            token = exchange
                .next(&answer)
                .map_err(|e| e.to_string())?
                .expect("the server wants another token");
        }
    }

    #[test]
    fn plain_and_scram_logins_complete_against_the_server() {
        let plain = |password: &str| SaslLogin::Plain {
            user: "alice".into(),
            password: password.into(),
        };
        assert_eq!(run(&plain("pw"), SaslMechanism::Plain), Ok("alice".into()));
        assert!(run(&plain("nope"), SaslMechanism::Plain).is_err());
        for m in ScramMechanism::ALL {
            let scram = |password: &str| SaslLogin::Scram {
                mechanism: m,
                user: "alice".into(),
                password: password.into(),
            };
            assert_eq!(
                run(&scram("pw"), SaslMechanism::Scram(m)),
                Ok("alice".into())
            );
            assert!(run(&scram("nope"), SaslMechanism::Scram(m)).is_err());
        }
        assert_eq!(format!("{:?}", plain("secret")), "PLAIN as alice");
    }
}
