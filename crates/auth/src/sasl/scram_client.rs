//! The client side of SCRAM-SHA-256/512 (RFC 5802, as Kafka's
//! `ScramSaslClient` speaks it: no channel binding, no SASLprep), for the
//! `sluice` CLI's `--command-config` logins. The server's signature is
//! checked, so a broker that does not know the password cannot pretend to.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::ScramMechanism;
use crate::AuthError;

/// A SCRAM exchange from the client's side: [`ScramClient::first`], then
/// [`ScramClient::final_message`] with the server's first message, then
/// [`ScramClient::verify`] with its final one.
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

fn invalid(what: &str) -> AuthError {
    AuthError::SaslAuthentication(format!("invalid SCRAM server message: {what}"))
}

/// Equality without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ScramClient {
    /// `nonce`: fresh random printable characters without `,`.
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, nonce: String) -> Self {
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            nonce,
            server_signature: None,
        }
    }

    fn bare(&self) -> String {
        let name = self.user.replace('=', "=3D").replace(',', "=2C");
        format!("n={name},r={}", self.nonce)
    }

    /// client-first-message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.bare()).into_bytes()
    }

    /// client-final-message for the server's first message.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let text = std::str::from_utf8(server_first).map_err(|_| invalid("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(B64.decode(v).map_err(|_| invalid("salt"))?),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                Some(("e", v)) => {
                    return Err(AuthError::SaslAuthentication(format!(
                        "SCRAM server error: {v}"
                    )))
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| invalid("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(invalid("the nonce does not extend ours"));
        }
        let salt = salt.ok_or_else(|| invalid("no salt"))?;
        let iterations = iterations
            .filter(|i| (1..=self.mechanism.max_iterations()).contains(i))
            .ok_or_else(|| invalid("iteration count"))?;
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.bare());
        let client_key = m.hmac(&salted, b"Client Key");
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message (its signature proves it knew the
    /// credential).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let text = std::str::from_utf8(server_final).map_err(|_| invalid("not UTF-8"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(AuthError::SaslAuthentication(format!(
                "SCRAM server error: {e}"
            )));
        }
        let v = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or_else(|| invalid("no server signature"))?;
        let v = B64.decode(v).map_err(|_| invalid("server signature"))?;
        match &self.server_signature {
            Some(expected) if ct_eq(expected, &v) => Ok(()),
            _ => Err(AuthError::SaslAuthentication(
                "the server's SCRAM signature is wrong".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{Credentials, SaslMechanism, SaslServer, SaslStep, ScramCredential};

    struct One(ScramMechanism, ScramCredential);
    impl Credentials for One {
        fn plain_password(&self, _: &str) -> Option<String> {
            None
        }
        fn scram_credential(&self, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
            (m == self.0 && user == "al,ice").then(|| self.1.clone())
        }
    }

    #[test]
    fn logs_in_to_the_server_and_checks_its_signature() {
        for m in ScramMechanism::ALL {
            let cred = ScramCredential::from_password(m, b"pw", b"salty", 4096);
            let creds = One(m, cred);
            for (password, ok) in [("pw", true), ("wrong", false)] {
                let mut server = SaslServer::new(SaslMechanism::Scram(m), "srvnonce".into());
                let mut client = ScramClient::new(m, "al,ice", password, "clinonce".into());
                let SaslStep::Continue(first) = server.evaluate(&client.first(), &creds).unwrap()
                else {
                    panic!("the server completed after one message")
                };
                let last = client.final_message(&first).unwrap();
                match server.evaluate(&last, &creds) {
                    Ok(SaslStep::Complete {
                        response,
                        authorization_id,
                        ..
                    }) => {
                        assert!(ok);
                        assert_eq!(authorization_id, "al,ice");
                        client.verify(&response).unwrap();
                        assert!(client.verify(b"v=AAAA").is_err());
                    }
                    Ok(SaslStep::Continue(_)) => panic!("the server wants more"),
                    Err(_) => assert!(!ok),
                }
            }
        }
    }
}
