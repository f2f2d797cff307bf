//! Principals, listener names and security protocols, spelled as Kafka
//! spells them (`KafkaPrincipal`, `ListenerName`, `SecurityProtocol`).

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// Who sent a request: Kafka's `principalType:name`. ACLs, `super.users`
/// and audit lines name principals in this form (`User:alice`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    principal_type: String,
    name: String,
}

impl KafkaPrincipal {
    /// Kafka's principal type for users (`KafkaPrincipal.USER_TYPE`).
    pub const USER_TYPE: &'static str = "User";

    /// The principal of a connection that did not authenticate (a
    /// PLAINTEXT listener, or SSL without a client certificate).
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: Self::USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    /// The principal type, such as `User`.
    pub fn principal_type(&self) -> &str {
        &self.principal_type
    }

    /// The name, such as `alice` or `ANONYMOUS`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for `User:ANONYMOUS`.
    pub fn is_anonymous(&self) -> bool {
        self.principal_type == Self::USER_TYPE && self.name == "ANONYMOUS"
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

impl FromStr for KafkaPrincipal {
    type Err = AuthError;

    /// Parses `type:name` as Kafka's `SecurityUtils.parseKafkaPrincipal`
    /// does: split at the first colon, so a name may itself hold colons
    /// (`User:CN=a:b`).
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => Ok(Self {
                principal_type: t.to_string(),
                name: n.to_string(),
            }),
            _ => Err(AuthError::InvalidPrincipal(s.to_string())),
        }
    }
}

/// What a listener speaks (Kafka's `SecurityProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name, as `listener.security.protocol.map` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// True when the connection runs over TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// True when the client authenticates with SASL before anything else.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = AuthError;

    /// Case-insensitive, as Kafka's `SecurityProtocol.forName`.
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(AuthError::UnknownSecurityProtocol(s.to_string())),
        }
    }
}

/// A listener's name (`PLAINTEXT`, `CLIENT`, `INTERNAL`), upper-cased as
/// Kafka normalizes it (`ListenerName.normalised`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerName(String);

impl ListenerName {
    pub fn new(name: &str) -> Self {
        Self(name.trim().to_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn principals_parse_at_the_first_colon() {
        let p: KafkaPrincipal = "User:CN=a:b".parse().unwrap();
        assert_eq!(p.principal_type(), "User");
        assert_eq!(p.name(), "CN=a:b");
        assert!("User:".parse::<KafkaPrincipal>().is_err());
        assert!(":alice".parse::<KafkaPrincipal>().is_err());
        assert!("alice".parse::<KafkaPrincipal>().is_err());
        assert!(KafkaPrincipal::anonymous().is_anonymous());
        assert!(!KafkaPrincipal::user("alice").is_anonymous());
    }

    #[test]
    fn security_protocols_round_trip_and_refuse_unknown_names() {
        for p in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            assert_eq!(p.name().to_lowercase().parse::<SecurityProtocol>(), Ok(p));
        }
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        assert_eq!(ListenerName::new(" client ").as_str(), "CLIENT");
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(t in "[A-Za-z]{1,8}", n in "[ -~]{1,16}") {
            let p: KafkaPrincipal = format!("{t}:{n}").parse().unwrap();
            prop_assert_eq!(p.to_string(), format!("{t}:{n}"));
            prop_assert_eq!(p.to_string().parse::<KafkaPrincipal>().unwrap(), p);
        }
    }
}
