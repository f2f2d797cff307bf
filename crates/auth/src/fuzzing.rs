//! Fuzz bodies over the untrusted-byte parsers of this crate (the SASL
//! messages a client sends before it has authenticated, bearer tokens,
//! JWKS documents, JAAS strings, and the subject and SubjectAltNames of a
//! peer's certificate);
//! `fuzz/fuzz_targets/sasl.rs` calls [`sasl_messages`], and the unit test
//! below runs it over a few seeds.

use crate::oauth::{JsonWebKeySet, TokenError, UnsecuredValidator, ValidatedToken};
use crate::sasl::{
    ClientFinalMessage, ClientFirstMessage, ClientInitialResponse, Credentials, SaslMechanism,
    SaslServer, SaslStep, ScramCredential, ScramMechanism,
};

struct FuzzUsers;

impl Credentials for FuzzUsers {
    fn plain_password(&self, user: &str) -> Option<String> {
        (user == "u").then(|| "p".to_string())
    }
    fn scram_credential(&self, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
        // Salted password given directly: no 4096 PBKDF2 rounds per input.
        (user == "u").then(|| ScramCredential::from_salted_password(m, b"s", &[1; 64], 4096))
    }
    fn validate_bearer(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        UnsecuredValidator::default().validate(token, 1_800_000_000_000)
    }
}

/// Every parser and every mechanism's exchange on `data`; the first byte
/// picks the mechanism, the rest is split at the first `\n` into two
/// tokens. Nothing may panic, and a SCRAM exchange with a made-up proof
/// must never complete.
pub fn sasl_messages(data: &[u8]) {
    let _ = ClientFirstMessage::parse(data);
    let _ = ClientFinalMessage::parse(data);
    let _ = ClientInitialResponse::parse(data);
    let _ = JsonWebKeySet::parse(data);
    let _ = crate::dn::subject_dn(data);
    let _ = crate::san::subject_alt_names(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::jaas::parse_jaas_config(s);
        let _ = UnsecuredValidator::default().validate(s, 0);
    }
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = SaslMechanism::ALL[pick as usize % SaslMechanism::ALL.len()];
    let (first, second) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut server = SaslServer::new(mechanism, "fuzz".into());
    if let Ok(SaslStep::Continue(_)) = server.evaluate(first, &FuzzUsers) {
        let outcome = server.evaluate(second, &FuzzUsers);
        assert!(
            !matches!(outcome, Ok(SaslStep::Complete { .. })),
            "a made-up SCRAM proof was accepted"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds() {
        for seed in [
            &b""[..],
            b"\x00\x00u\x00p",
            b"\x01n,,n=u,r=abc\nc=biws,r=abcfuzz,p=AAAA",
            b"\x02n,,n=u,r=abc\nc=biws,r=abcfuzz,p=",
            b"m required user_u=\"p\";",
            b"\x03n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1IiwiZXhwIjoxfQ.\x01\x01\n\x01",
            br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#,
        ] {
            super::sasl_messages(seed);
        }
    }
}
