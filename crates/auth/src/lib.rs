//! Who is asking, and over what: the security vocabulary every layer above
//! the wire shares (issue 20).
//!
//! Owns [`KafkaPrincipal`] (Kafka's `type:name` principal, `User:ANONYMOUS`
//! for an unauthenticated connection), [`SecurityProtocol`] (what a
//! listener speaks: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`) and
//! [`ListenerName`]; the SASL mechanisms (`sasl`), bearer-token
//! validation for OAUTHBEARER (`oauth`) and the ACL authorizer (`acl`), as
//! pure code: no sockets, no clock, no files (callers pass the time and
//! the key set). The broker's network layer decides a connection's
//! principal and carries it, with the listener, in each request's context.

pub mod acl;
pub mod dn;
#[doc(hidden)]
pub mod fuzzing;
pub mod jaas;
pub mod oauth;
mod principal;
pub mod san;
pub mod sasl;
mod ssl_mapping;

pub use principal::{KafkaPrincipal, ListenerName, SecurityProtocol};
pub use ssl_mapping::SslPrincipalMapper;

/// The errors of this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A principal string is not `type:name` with both parts non-empty.
    #[error("invalid principal {0:?}: expected <type>:<name>, such as User:alice")]
    InvalidPrincipal(String),
    /// A security protocol name Kafka does not define.
    #[error(
        "unknown security protocol {0:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )]
    UnknownSecurityProtocol(String),
    /// A JAAS config string Kafka's `JaasConfig` would refuse.
    #[error("invalid JAAS config: {0}")]
    InvalidJaasConfig(String),
    /// A SASL mechanism this broker does not implement.
    #[error("unsupported SASL mechanism {0:?}")]
    UnsupportedMechanism(String),
    /// Authentication failed with a message the client may see (Kafka's
    /// `SaslAuthenticationException`).
    #[error("{0}")]
    SaslAuthentication(String),
    /// Authentication failed; the detail is for the broker's log only (Kafka's
    /// `SaslException`: the client gets a generic message).
    #[error("{0}")]
    SaslInvalid(String),
    /// An `ssl.principal.mapping.rules` value that does not parse.
    #[error("invalid ssl.principal.mapping.rules {rules:?}: {reason}")]
    InvalidMappingRule { rules: String, reason: String },
    /// An ACL binding or filter Kafka would refuse (INVALID_REQUEST), or an
    /// ACL name that does not parse.
    #[error("{0}")]
    InvalidAcl(String),
    /// A certificate whose subject or SubjectAltNames cannot be read.
    #[error("cannot read the certificate: {0}")]
    InvalidCertificate(String),
}
