//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): credentials as
//! Kafka stores them (salt, StoredKey, ServerKey, iterations) and the
//! server's two-step exchange as Kafka's `ScramSaslServer` runs it.
//!
//! Invariants: the client proof is checked by recomputing StoredKey and
//! comparing in constant time; iterations below the mechanism's minimum
//! (4096) are refused as Kafka refuses them; delegation tokens
//! (`tokenauth=true`) are not supported, so such a client fails as one
//! whose token Kafka does not know; errors before completion end the
//! exchange.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::scram_messages::{server_final, server_first, ClientFinalMessage, ClientFirstMessage};
use super::{Credentials, SaslStep};
use crate::AuthError;

/// Kafka's `ScramMechanism`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The id in Kafka's records and RPCs (`ScramMechanism.type()`).
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<Self> {
        ScramMechanism::ALL.into_iter().find(|m| m.type_id() == id)
    }

    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.mechanism_name() == name)
    }

    pub fn min_iterations(self) -> u32 {
        4096
    }

    pub fn max_iterations(self) -> u32 {
        16384
    }

    /// Length of the hash and of every key.
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `SaltedPassword = Hi(password, salt, i)` (PBKDF2 with this HMAC).
    /// Kafka takes the password's UTF-8 bytes as they are (no SASLprep).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// A user's SCRAM credential: what the server keeps (never the password).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential of a salted password (what AlterUserScramCredentials
    /// carries): `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`,
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential of a password.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }
}

/// What the server keeps between the two client messages.
struct Pending {
    first: ClientFirstMessage,
    server_first: String,
    nonce: String,
    credential: ScramCredential,
    username: String,
}

enum State {
    ReceiveClientFirst,
    ReceiveClientFinal(Box<Pending>),
    Finished,
}

/// One SCRAM exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    state: State,
}

impl ScramServer {
    /// `server_nonce` must be fresh and random for every exchange.
    pub fn new(mechanism: ScramMechanism, server_nonce: String) -> Self {
        ScramServer {
            mechanism,
            server_nonce,
            state: State::ReceiveClientFirst,
        }
    }

    /// A nonce from random bytes: URL-safe base64 (printable, no `,`).
    pub fn nonce(random: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    pub(super) fn evaluate(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
    ) -> Result<SaslStep, AuthError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::ReceiveClientFirst => self.client_first(token, credentials),
            State::ReceiveClientFinal(pending) => {
                let Pending {
                    first,
                    server_first,
                    nonce,
                    credential,
                    username,
                } = *pending;
                let last = ClientFinalMessage::parse(token)?;
                if last.nonce != nonce {
                    return Err(AuthError::SaslInvalid(
                        "Invalid client nonce in the final client message.".into(),
                    ));
                }
                let auth_message =
                    format!("{},{},{}", first.bare, server_first, last.without_proof);
                let signature = self
                    .mechanism
                    .hmac(&credential.stored_key, auth_message.as_bytes());
                if last.proof.len() != signature.len() {
                    return Err(AuthError::SaslInvalid("Invalid client credentials".into()));
                }
                let client_key: Vec<u8> = signature
                    .iter()
                    .zip(&last.proof)
                    .map(|(a, b)| a ^ b)
                    .collect();
                let computed = self.mechanism.hash(&client_key);
                if !bool::from(computed.ct_eq(&credential.stored_key)) {
                    return Err(AuthError::SaslInvalid("Invalid client credentials".into()));
                }
                let server_signature = self
                    .mechanism
                    .hmac(&credential.server_key, auth_message.as_bytes());
                Ok(SaslStep::Complete {
                    response: server_final(&server_signature).into_bytes(),
                    authorization_id: username,
                    credential_expires_at_ms: None,
                })
            }
            State::Finished => Err(AuthError::SaslInvalid(format!(
                "Unexpected challenge in {} exchange that has ended",
                self.mechanism.mechanism_name()
            ))),
        }
    }

    fn client_first(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
    ) -> Result<SaslStep, AuthError> {
        let first = ClientFirstMessage::parse(token)?;
        let username = first.username.clone();
        if first.token_authenticated() {
            return Err(AuthError::SaslInvalid(format!(
                "Token Authentication failed: Invalid tokenId : {username} (delegation tokens are not supported)"
            )));
        }
        let credential = credentials
            .scram_credential(self.mechanism, &username)
            .ok_or_else(|| {
                AuthError::SaslInvalid("Authentication failed: Invalid user credentials".into())
            })?;
        if !first.authorization_id.is_empty() && first.authorization_id != username {
            return Err(AuthError::SaslAuthentication(
                "Authentication failed: Client requested an authorization id that is different from username".into(),
            ));
        }
        if credential.iterations < self.mechanism.min_iterations() {
            return Err(AuthError::SaslInvalid(format!(
                "Iterations {} is less than the minimum {} for {}",
                credential.iterations,
                self.mechanism.min_iterations(),
                self.mechanism.mechanism_name()
            )));
        }
        let nonce = format!("{}{}", first.client_nonce, self.server_nonce);
        let server_first = server_first(&nonce, &credential.salt, credential.iterations);
        let challenge = server_first.clone().into_bytes();
        self.state = State::ReceiveClientFinal(Box::new(Pending {
            first,
            server_first,
            nonce,
            credential,
            username,
        }));
        Ok(SaslStep::Continue(challenge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use proptest::prelude::*;

    struct Users(ScramMechanism, ScramCredential);
    impl Credentials for Users {
        fn plain_password(&self, _: &str) -> Option<String> {
            None
        }
        fn scram_credential(&self, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
            (m == self.0 && user == "user").then(|| self.1.clone())
        }
    }

    /// A client as RFC 5802 describes it, for the tests.
    fn client_final(
        m: ScramMechanism,
        password: &str,
        bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let mut salt = None;
        let mut iterations = 0;
        let mut nonce = "";
        for part in server_first.split(',') {
            match part.split_at(2) {
                ("r=", v) => nonce = v,
                ("s=", v) => salt = Some(STANDARD.decode(v).unwrap()),
                ("i=", v) => iterations = v.parse().unwrap(),
                _ => {}
            }
        }
        let salted = m.salted_password(password.as_bytes(), &salt.unwrap(), iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{bare},{server_first},{without_proof}");
        let signature = m.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_sig = m.hmac(&m.hmac(&salted, b"Server Key"), auth.as_bytes());
        (
            format!("{without_proof},p={}", STANDARD.encode(proof)),
            server_sig,
        )
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let m = ScramMechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(m, b"pencil", &salt, 4096);
        let mut s = ScramServer::new(m, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let users = Users(m, cred);
        let first = s
            .evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &users)
            .unwrap();
        assert_eq!(
            first,
            SaslStep::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        let last = s
            .evaluate(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                &users,
            )
            .unwrap();
        assert_eq!(
            last,
            SaslStep::Complete {
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
                authorization_id: "user".into(),
                credential_expires_at_ms: None,
            }
        );
    }

    fn exchange(
        m: ScramMechanism,
        stored_password: &str,
        password: &str,
    ) -> Result<SaslStep, AuthError> {
        let cred = ScramCredential::from_password(m, stored_password.as_bytes(), b"salty", 4096);
        let users = Users(m, cred);
        let mut s = ScramServer::new(m, "servernonce".into());
        let bare = "n=user,r=clientnonce";
        let SaslStep::Continue(sf) = s.evaluate(format!("n,,{bare}").as_bytes(), &users)? else {
            panic!("no challenge")
        };
        let sf = String::from_utf8(sf).unwrap();
        let (last, server_sig) = client_final(m, password, bare, &sf);
        let step = s.evaluate(last.as_bytes(), &users)?;
        if let SaslStep::Complete { response, .. } = &step {
            assert_eq!(
                response,
                format!("v={}", STANDARD.encode(server_sig)).as_bytes()
            );
        }
        Ok(step)
    }

    #[test]
    fn both_mechanisms_accept_the_password_and_refuse_others() {
        for m in ScramMechanism::ALL {
            assert!(matches!(
                exchange(m, "pw", "pw"),
                Ok(SaslStep::Complete { .. })
            ));
            assert!(matches!(
                exchange(m, "pw", "pW"),
                Err(AuthError::SaslInvalid(_))
            ));
        }
    }

    #[test]
    fn kafka_refusals() {
        let m = ScramMechanism::Sha256;
        let weak = ScramCredential::from_password(m, b"pw", b"salt", 4095);
        let users = Users(m, weak);
        let run = |msg: &[u8]| ScramServer::new(m, "n".into()).evaluate(msg, &users);
        assert!(
            matches!(run(b"n,,n=user,r=abc"), Err(AuthError::SaslInvalid(e)) if e.contains("less than the minimum 4096"))
        );
        assert!(matches!(
            run(b"n,,n=nobody,r=abc"),
            Err(AuthError::SaslInvalid(_))
        ));
        assert!(
            matches!(run(b"n,,n=user,r=abc,tokenauth=true"), Err(AuthError::SaslInvalid(e)) if e.contains("Token"))
        );
        assert!(matches!(
            run(b"n,a=other,n=user,r=abc"),
            Err(AuthError::SaslAuthentication(_))
        ));
        // Wrong nonce in the final message, and a finished exchange.
        let good = ScramCredential::from_password(m, b"pw", b"salt", 4096);
        let users = Users(m, good);
        let mut s = ScramServer::new(m, "srv".into());
        s.evaluate(b"n,,n=user,r=abc", &users).unwrap();
        assert!(s.evaluate(b"c=biws,r=abcXXX,p=AAAA", &users).is_err());
        assert!(s.evaluate(b"n,,n=user,r=abc", &users).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_final_messages_never_panic_nor_pass(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let m = ScramMechanism::Sha256;
            let cred = ScramCredential::from_salted_password(m, b"salt", &[7; 32], 4096);
            let users = Users(m, cred);
            let mut s = ScramServer::new(m, "srv".into());
            s.evaluate(b"n,,n=user,r=abc", &users).unwrap();
            let outcome = s.evaluate(&bytes, &users);
            prop_assert!(outcome.is_err());
        }
    }
}
