//! The SCRAM messages a server reads (client-first, client-final) and
//! writes (server-first, server-final), with the grammar Kafka's
//! `ScramMessages` accepts:
//!
//! ```text
//! client-first = "n," ["a=" saslname] "," ["m=" value ","] "n=" saslname ",r=" printable ("," alpha "=" value)*
//! client-final = "c=" base64 ",r=" printable ("," alpha "=" value)* ",p=" base64
//! ```
//!
//! where `value` is ASCII 0x01..0x7F without `,`, `printable` 0x21..0x7E
//! without `,`, and `saslname` is `value` without `=` except as `=2C` or
//! `=3D`. Hand-written (no regex), linear, and bounded by
//! [`MAX_SCRAM_MESSAGE_BYTES`]. Invariant: no input panics.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::AuthError;

/// The largest SCRAM message a server reads. Real clients send a few
/// hundred bytes; Kafka has no bound below `sasl.server.max.receive.size`.
pub const MAX_SCRAM_MESSAGE_BYTES: usize = 16 * 1024;

fn invalid(what: &str) -> AuthError {
    AuthError::SaslInvalid(format!("Invalid SCRAM {what} message format"))
}

fn is_value(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x01..=0x7f).contains(&b) && b != b',')
}

fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn is_alpha(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// A `saslname` decoded to the user name (`=2C` is `,`, `=3D` is `=`).
fn decode_saslname(s: &str) -> Option<String> {
    if s.is_empty() || !s.bytes().all(|b| (0x01..=0x7f).contains(&b) && b != b',') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3)?;
        match escape {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// `alpha=value` extensions, in order of appearance (a repeated key keeps
/// its last value, as Kafka's map).
fn parse_extensions<'a>(
    parts: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<BTreeMap<String, String>, AuthError> {
    let mut map = BTreeMap::new();
    for part in parts {
        let (k, v) = part.split_once('=').ok_or_else(|| invalid(what))?;
        if !is_alpha(k) || !is_value(v) {
            return Err(invalid(what));
        }
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

fn decode_base64(s: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(invalid(what));
    }
    STANDARD.decode(s).map_err(|_| invalid(what))
}

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirstMessage {
    /// `a=`, decoded; empty when absent.
    pub authorization_id: String,
    /// `n=`, decoded.
    pub username: String,
    pub client_nonce: String,
    pub extensions: BTreeMap<String, String>,
    /// `client-first-message-bare` as sent (the part after the GS2 header),
    /// which the signatures cover.
    pub bare: String,
}

impl ClientFirstMessage {
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthError> {
        const WHAT: &str = "client first";
        if bytes.len() > MAX_SCRAM_MESSAGE_BYTES {
            return Err(invalid(WHAT));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| invalid(WHAT))?;
        let rest = text.strip_prefix("n,").ok_or_else(|| invalid(WHAT))?;
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| invalid(WHAT))?;
        let authorization_id = match authzid {
            "" => String::new(),
            a => a
                .strip_prefix("a=")
                .and_then(decode_saslname)
                .ok_or_else(|| invalid(WHAT))?,
        };
        let mut parts = bare.split(',').peekable();
        if let Some(m) = parts.peek() {
            if let Some(v) = m.strip_prefix("m=") {
                if !is_value(v) {
                    return Err(invalid(WHAT));
                }
                parts.next();
            }
        }
        let username = parts
            .next()
            .and_then(|p| p.strip_prefix("n="))
            .and_then(decode_saslname)
            .ok_or_else(|| invalid(WHAT))?;
        let client_nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .filter(|n| is_printable(n))
            .ok_or_else(|| invalid(WHAT))?
            .to_string();
        let extensions = parse_extensions(parts, WHAT)?;
        Ok(ClientFirstMessage {
            authorization_id,
            username,
            client_nonce,
            extensions,
            bare: bare.to_string(),
        })
    }

    /// Whether the client asks for delegation-token authentication
    /// (`tokenauth=true`, parsed as Java's `Boolean.parseBoolean`).
    pub fn token_authenticated(&self) -> bool {
        self.extensions
            .get("tokenauth")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The client's final message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFinalMessage {
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// `client-final-message-without-proof` as sent.
    pub without_proof: String,
}

impl ClientFinalMessage {
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthError> {
        const WHAT: &str = "client final";
        if bytes.len() > MAX_SCRAM_MESSAGE_BYTES {
            return Err(invalid(WHAT));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| invalid(WHAT))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| invalid(WHAT))?;
        let proof = decode_base64(proof, WHAT)?;
        let mut parts = without_proof.split(',');
        let channel_binding = parts
            .next()
            .and_then(|p| p.strip_prefix("c="))
            .ok_or_else(|| invalid(WHAT))
            .and_then(|c| decode_base64(c, WHAT))?;
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .filter(|n| is_printable(n))
            .ok_or_else(|| invalid(WHAT))?
            .to_string();
        parse_extensions(parts, WHAT)?;
        Ok(ClientFinalMessage {
            channel_binding,
            nonce,
            proof,
            without_proof: without_proof.to_string(),
        })
    }
}

/// `r=<nonce>,s=<salt>,i=<iterations>`.
pub(super) fn server_first(nonce: &str, salt: &[u8], iterations: u32) -> String {
    format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt))
}

/// `v=<server signature>`.
pub(super) fn server_final(signature: &[u8]) -> String {
    format!("v={}", STANDARD.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_5802_client_first() {
        let m = ClientFirstMessage::parse(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(m.username, "user");
        assert_eq!(m.authorization_id, "");
        assert_eq!(m.client_nonce, "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(m.bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        assert!(!m.token_authenticated());
    }

    #[test]
    fn names_extensions_and_reserved() {
        let m = ClientFirstMessage::parse(b"n,a=a=2Cb,m=x,n=a=3Db=2Cc,r=abc,tokenauth=true,x=1=2")
            .unwrap();
        assert_eq!(m.authorization_id, "a,b");
        assert_eq!(m.username, "a=b,c");
        assert!(m.token_authenticated());
        assert_eq!(m.extensions["x"], "1=2");
        for bad in [
            &b"y,,n=user,r=abc"[..],
            b"n,,n=us=er,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,n=user",
            b"n,,r=abc,n=user",
            b"n,,n=user,r=abc,1x=2",
            b"n,,n=user,r=abc,",
            b"n,,n=\xc3\xa9,r=abc",
            b"n,,n=user,r=abc,x=",
        ] {
            assert!(
                ClientFirstMessage::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rfc_5802_client_final() {
        let m = ClientFinalMessage::parse(
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        )
        .unwrap();
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.nonce, "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j");
        assert_eq!(m.proof.len(), 20);
        assert_eq!(
            m.without_proof,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
        );
        for bad in [
            &b"c=biws,r=abc"[..],
            b"c=biws,p=AAAA",
            b"c=b!ws,r=abc,p=AAAA",
            b"c=biws,r=abc,p=AAA",
            b"r=abc,c=biws,p=AAAA",
            b"c=biws,r=abc,9=1,p=AAAA",
        ] {
            assert!(
                ClientFinalMessage::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bounded() {
        let mut big = b"n,,n=user,r=".to_vec();
        big.resize(MAX_SCRAM_MESSAGE_BYTES + 1, b'a');
        assert!(ClientFirstMessage::parse(&big).is_err());
    }

    proptest! {
        #[test]
        fn client_first_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ClientFirstMessage::parse(&bytes);
        }

        #[test]
        fn client_final_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ClientFinalMessage::parse(&bytes);
        }

        #[test]
        fn client_first_round_trips(
            user in "[\\x01-\\x7f]{1,20}",
            nonce in "[\\x21-\\x2b\\x2d-\\x7e]{1,30}",
        ) {
            let name = user.replace('=', "=3D").replace(',', "=2C");
            let m = ClientFirstMessage::parse(format!("n,,n={name},r={nonce}").as_bytes()).unwrap();
            prop_assert_eq!(m.username, user);
            prop_assert_eq!(m.client_nonce, nonce);
        }

        #[test]
        fn client_final_round_trips(
            proof in proptest::collection::vec(any::<u8>(), 0..70),
            nonce in "[\\x21-\\x2b\\x2d-\\x7e]{1,30}",
        ) {
            let text = format!("c=biws,r={nonce},p={}", STANDARD.encode(&proof));
            let m = ClientFinalMessage::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(m.proof, proof);
            prop_assert_eq!(m.nonce, nonce);
        }
    }
}
