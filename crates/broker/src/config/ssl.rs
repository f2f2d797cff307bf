//! The security of each listener: its protocol (`listener.security.protocol.map`)
//! and, for `SSL` listeners, Kafka's `ssl.*` keys with their per-listener
//! overrides `listener.name.<listener>.ssl.*`, resolved as Kafka resolves
//! them: for each key the listener's value wins, then the broker-wide
//! one, then the default (the listener part of the prefix matches
//! case-insensitively, as Kafka lower-cases it).
//!
//! Owns every check that needs no file: keystore and truststore types
//! (PEM only; JKS and PKCS12 are refused naming PEM), where the key and the
//! chain come from, `ssl.client.auth`, `ssl.enabled.protocols`,
//! `ssl.principal.mapping.rules`. Reading the PEM text and building the
//! rustls configuration happen when the listeners are bound
//! (`network::tls`), so a bad file fails the start too, naming its key.
//!
//! Invariant: a [`ListenerSecurity`] with `ssl: Some` exists only for a
//! listener whose protocol is `SSL`, and its settings are complete
//! (a keystore; a truststore whenever client certificates are asked for).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use sluice_auth::{SecurityProtocol, SslPrincipalMapper};

use super::{kafka_keys, lookup, parse_value, ConfigError, Listener, Scope, Value};

/// Kafka's prefix of per-listener keys.
pub const LISTENER_PREFIX: &str = "listener.name.";

/// A value that must not appear in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Where a listener's private key and certificate chain come from. Each
/// variant carries the config key that supplied it, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyStore {
    /// `ssl.keystore.location`: one PEM file with the key and the chain.
    File { key: String, path: PathBuf },
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain`.
    Inline {
        key: String,
        private_key: Secret,
        chain: Secret,
    },
}

/// Where the CA certificates that verify clients come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TrustStore {
    /// `ssl.truststore.location`: a PEM file of certificates.
    File { key: String, path: PathBuf },
    /// `ssl.truststore.certificates`: the PEM text itself.
    Inline { key: String, certificates: Secret },
}

/// `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Requested,
    None,
}

/// The TLS versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsProtocol {
    Tls12,
    Tls13,
}

/// The resolved TLS settings of one `SSL` listener.
#[derive(Clone, Debug)]
pub struct SslSettings {
    pub keystore: KeyStore,
    pub truststore: Option<TrustStore>,
    pub client_auth: ClientAuth,
    /// Never empty.
    pub protocols: Vec<TlsProtocol>,
    pub principal_mapper: SslPrincipalMapper,
    /// `ssl.allow.dn.changes`: a reloaded keystore may name another subject.
    pub allow_dn_changes: bool,
    /// `ssl.allow.san.changes`: a reloaded keystore may drop SubjectAltNames.
    pub allow_san_changes: bool,
    /// `ssl.key.password`: Sluice reads unencrypted keys only, so this is
    /// kept to name it in the error about an encrypted key.
    pub key_password_set: bool,
}

/// What a listener speaks, and its TLS settings when it speaks `SSL`.
#[derive(Clone, Debug)]
pub struct ListenerSecurity {
    pub protocol: SecurityProtocol,
    pub ssl: Option<SslSettings>,
}

impl ListenerSecurity {
    pub fn plaintext() -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            ssl: None,
        }
    }
}

/// For a per-listener key `listener.name.<listener>.ssl.<...>`, the
/// broker key it overrides, if Kafka knows that key.
pub fn listener_key(key: &str) -> Option<&str> {
    let rest = strip_prefix_ignore_case(key, LISTENER_PREFIX)?;
    let (_, base) = rest.split_once('.')?;
    let known = lookup(Scope::Broker, base).is_some()
        || kafka_keys::KAFKA_BROKER_KEYS.binary_search(&base).is_ok();
    (base.starts_with("ssl.") && known).then_some(base)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()))
        .then(|| s.split_at(prefix.len()))
        .filter(|(head, _)| head.eq_ignore_ascii_case(prefix))
        .map(|(_, tail)| tail)
}

/// Why a listener's protocol is refused.
pub fn unsupported_protocol(listener: &Listener, protocol: &str, controller: bool) -> String {
    if controller {
        format!(
            "listener {listener} is a controller listener and uses security protocol {protocol}; only PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL are supported"
        )
    } else {
        format!(
            "listener {listener} uses security protocol {protocol}; only PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL are supported"
        )
    }
}

/// One key's effective value for `listener`: (the key that supplied it,
/// its raw value), or `None` when it is unset and has no default.
fn effective(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    name: &str,
) -> Option<(String, String)> {
    let prefixed = explicit.iter().find(|(k, _)| {
        strip_prefix_ignore_case(k, LISTENER_PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(l, base)| l.eq_ignore_ascii_case(listener) && base == name)
    });
    if let Some((k, v)) = prefixed {
        return Some((k.clone(), v.clone()));
    }
    if let Some(v) = explicit.get(name) {
        return Some((name.to_string(), v.clone()));
    }
    let def = lookup(Scope::Broker, name)?;
    def.default.map(|d| (name.to_string(), d.to_string()))
}

/// Non-empty effective value.
fn given(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    name: &str,
) -> Option<(String, String)> {
    effective(explicit, listener, name).filter(|(_, v)| !v.trim().is_empty())
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    let sensitive =
        lookup(Scope::Broker, listener_key(key).unwrap_or(key)).is_some_and(|d| d.sensitive);
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: if sensitive {
            "[hidden]".into()
        } else {
            value.to_string()
        },
        reason: reason.into(),
    }
}

/// The security of `listener`, whose protocol is `protocol`.
pub fn resolve(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    protocol: SecurityProtocol,
) -> Result<ListenerSecurity, ConfigError> {
    let ssl = match protocol {
        SecurityProtocol::Ssl => Some(resolve_ssl(explicit, listener, false)?),
        SecurityProtocol::SaslSsl => Some(resolve_ssl(explicit, listener, true)?),
        _ => None,
    };
    Ok(ListenerSecurity { protocol, ssl })
}

const PEM_HINT: &str = "Sluice reads PEM keystores and truststores: set ssl.keystore.type=PEM with ssl.keystore.location (one PEM file holding the private key and the certificate chain) or ssl.keystore.key and ssl.keystore.certificate.chain, and ssl.truststore.type=PEM with ssl.truststore.location or ssl.truststore.certificates (`sluice tls init` writes such files)";

fn require_pem(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    name: &str,
) -> Result<(), ConfigError> {
    let (key, ty) = effective(explicit, listener, name).unwrap_or((name.into(), "JKS".into()));
    if ty.trim().eq_ignore_ascii_case("PEM") {
        return Ok(());
    }
    Err(ConfigError::Unsupported {
        key,
        reason: format!(
            "type {} is not supported for listener {listener}. {PEM_HINT}",
            ty.trim()
        ),
    })
}

/// `sasl`: a SASL_SSL listener, which takes `ssl.client.auth` only from its
/// `listener.name.<l>.ssl.client.auth`, as Kafka's `ChannelBuilders` does
/// (SASL authenticates its clients; a broker-wide `required` meant for SSL
/// listeners must not demand certificates of them too).
fn resolve_ssl(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    sasl: bool,
) -> Result<SslSettings, ConfigError> {
    let keystore = keystore(explicit, listener)?;
    let truststore = truststore(explicit, listener)?;
    let client_auth_key = given(explicit, listener, "ssl.client.auth")
        .filter(|(key, _)| !sasl || key != "ssl.client.auth");
    let client_auth = match client_auth_key {
        None => ClientAuth::None,
        Some((key, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "required" => ClientAuth::Required,
            "requested" => ClientAuth::Requested,
            "none" => ClientAuth::None,
            _ => return Err(invalid(&key, &v, "expected required, requested or none")),
        },
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(ConfigError::Missing {
            key: "ssl.truststore.location".into(),
            reason: format!(
                "listener {listener} asks clients for certificates (ssl.client.auth={}) and needs a truststore to verify them: ssl.truststore.location or ssl.truststore.certificates",
                if client_auth == ClientAuth::Required { "required" } else { "requested" }
            ),
        });
    }
    let protocols = protocols(explicit, listener)?;
    let principal_mapper = match given(explicit, listener, "ssl.principal.mapping.rules") {
        None => SslPrincipalMapper::default(),
        Some((key, v)) => {
            SslPrincipalMapper::from_rules(&v).map_err(|e| invalid(&key, &v, e.to_string()))?
        }
    };
    let allow_dn_changes = flag(explicit, listener, "ssl.allow.dn.changes")?;
    let allow_san_changes = flag(explicit, listener, "ssl.allow.san.changes")?;
    Ok(SslSettings {
        keystore,
        truststore,
        client_auth,
        protocols,
        principal_mapper,
        allow_dn_changes,
        allow_san_changes,
        key_password_set: given(explicit, listener, "ssl.key.password").is_some(),
    })
}

/// A boolean key of `listener`, false when unset.
fn flag(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    name: &str,
) -> Result<bool, ConfigError> {
    match given(explicit, listener, name) {
        None => Ok(false),
        Some((key, v)) => match v.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid(&key, &v, "expected true or false")),
        },
    }
}

/// Whether any keystore key is set for `listener` (a node dialling its
/// peers shows a certificate only then).
pub(super) fn has_keystore(explicit: &BTreeMap<String, String>, listener: &str) -> bool {
    [
        "ssl.keystore.location",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
    ]
    .iter()
    .any(|k| given(explicit, listener, k).is_some())
}

pub(super) fn keystore(
    explicit: &BTreeMap<String, String>,
    listener: &str,
) -> Result<KeyStore, ConfigError> {
    let location = given(explicit, listener, "ssl.keystore.location");
    let key = given(explicit, listener, "ssl.keystore.key");
    let chain = given(explicit, listener, "ssl.keystore.certificate.chain");
    if location.is_none() && key.is_none() && chain.is_none() {
        return Err(ConfigError::Missing {
            key: "ssl.keystore.location".into(),
            reason: format!(
                "listener {listener} speaks SSL and needs a keystore (or listener.name.{}.ssl.keystore.location). {PEM_HINT}",
                listener.to_ascii_lowercase()
            ),
        });
    }
    require_pem(explicit, listener, "ssl.keystore.type")?;
    match (location, key, chain) {
        (Some((k, path)), None, None) => Ok(KeyStore::File {
            key: k,
            path: PathBuf::from(path.trim()),
        }),
        (None, Some((k, private_key)), Some((_, chain))) => Ok(KeyStore::Inline {
            key: k,
            private_key: Secret(private_key),
            chain: Secret(chain),
        }),
        (Some((k, _)), _, _) => Err(ConfigError::InvalidValue {
            key: k,
            value: String::new(),
            reason: "give either ssl.keystore.location or ssl.keystore.key with ssl.keystore.certificate.chain, not both".into(),
        }),
        (None, Some(_), None) => Err(ConfigError::Missing {
            key: "ssl.keystore.certificate.chain".into(),
            reason: format!("listener {listener}: ssl.keystore.key is set without the certificate chain"),
        }),
        (None, _, _) => Err(ConfigError::Missing {
            key: "ssl.keystore.key".into(),
            reason: format!("listener {listener}: ssl.keystore.certificate.chain is set without the private key"),
        }),
    }
}

pub(super) fn truststore(
    explicit: &BTreeMap<String, String>,
    listener: &str,
) -> Result<Option<TrustStore>, ConfigError> {
    let location = given(explicit, listener, "ssl.truststore.location");
    let certificates = given(explicit, listener, "ssl.truststore.certificates");
    if location.is_none() && certificates.is_none() {
        return Ok(None);
    }
    require_pem(explicit, listener, "ssl.truststore.type")?;
    match (location, certificates) {
        (Some((key, path)), None) => Ok(Some(TrustStore::File {
            key,
            path: PathBuf::from(path.trim()),
        })),
        (None, Some((key, pem))) => Ok(Some(TrustStore::Inline {
            key,
            certificates: Secret(pem),
        })),
        (Some((key, _)), Some(_)) => Err(ConfigError::InvalidValue {
            key,
            value: String::new(),
            reason: "give either ssl.truststore.location or ssl.truststore.certificates, not both"
                .into(),
        }),
        (None, None) => Ok(None),
    }
}

pub(super) fn protocols(
    explicit: &BTreeMap<String, String>,
    listener: &str,
) -> Result<Vec<TlsProtocol>, ConfigError> {
    let (key, raw) = effective(explicit, listener, "ssl.enabled.protocols")
        .unwrap_or(("ssl.enabled.protocols".into(), "TLSv1.2,TLSv1.3".into()));
    let def = lookup(Scope::Broker, "ssl.enabled.protocols").expect("ssl keys are in the table");
    let items = match parse_value(def, &raw)? {
        Value::List(items) => items,
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for item in &items {
        match item.trim().to_ascii_lowercase().as_str() {
            "tlsv1.2" => out.push(TlsProtocol::Tls12),
            "tlsv1.3" => out.push(TlsProtocol::Tls13),
            _ => ignored.push(item.trim().to_string()),
        }
    }
    out.dedup();
    if out.is_empty() {
        return Err(invalid(
            &key,
            &raw,
            "no protocol Sluice speaks: name TLSv1.2 and/or TLSv1.3",
        ));
    }
    if !ignored.is_empty() {
        tracing::warn!(
            listener,
            "{key}: ignoring {} (only TLSv1.2 and TLSv1.3 are supported)",
            ignored.join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
#[path = "ssl_tests.rs"]
mod tests;
