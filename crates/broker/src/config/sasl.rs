//! SASL settings of `SASL_PLAINTEXT` and `SASL_SSL` listeners, read with Kafka's keys:
//! `sasl.enabled.mechanisms` and its per-listener form
//! `listener.name.<listener>.sasl.enabled.mechanisms`, and each enabled
//! mechanism's `listener.name.<listener>.<mechanism>.sasl.jaas.config`
//! (listener and mechanism in lower case, as Kafka spells the keys; matched
//! here without regard to case). PLAIN's users are the JAAS entry's
//! `user_<name>="<password>"` options; SCRAM's credentials live in the
//! cluster metadata, but Kafka still requires a JAAS entry for it
//! (`ScramLoginModule`), and so does Sluice.
//!
//! Invariants: a SASL listener has at least one mechanism, every one of
//! them implemented and with a valid JAAS entry; passwords never appear in
//! `Debug` output or error messages.

use std::collections::BTreeMap;
use std::fmt;

use sluice_auth::jaas::parse_single_entry;
use sluice_auth::sasl::SaslMechanism;

use super::ConfigError;

/// What a SASL listener (`SASL_PLAINTEXT`, `SASL_SSL`) accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslListenerConfig {
    /// Enabled mechanisms, in the configured order (SaslHandshake lists
    /// them in this order).
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users and passwords.
    pub plain_users: BTreeMap<String, String>,
}

impl fmt::Debug for SaslListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslListenerConfig")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

const LISTENER_PREFIX: &str = "listener.name.";

/// Whether `key` is a per-listener SASL key this module reads
/// (`listener.name.<l>.sasl.enabled.mechanisms` or
/// `listener.name.<l>.<mechanism>.sasl.jaas.config`).
pub fn is_listener_key(key: &str) -> bool {
    split_listener_key(key).is_some_and(|(_, rest)| {
        rest == "sasl.enabled.mechanisms"
            || rest
                .strip_suffix(".sasl.jaas.config")
                .is_some_and(|m| !m.is_empty() && !m.contains('.'))
    })
}

/// `(listener, rest)` of `listener.name.<listener>.<rest>`.
fn split_listener_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(LISTENER_PREFIX)?;
    let (listener, rest) = rest.split_once('.')?;
    (!listener.is_empty()).then_some((listener, rest))
}

/// The explicit value of `listener.name.<listener>.<rest>`, matching the
/// listener name without regard to case.
fn listener_value<'a>(
    explicit: &'a BTreeMap<String, String>,
    listener: &str,
    rest: &str,
) -> Option<(&'a String, &'a String)> {
    explicit.iter().find(|(k, _)| {
        split_listener_key(k)
            .is_some_and(|(l, r)| l.eq_ignore_ascii_case(listener) && r.eq_ignore_ascii_case(rest))
    })
}

/// The SASL settings of the SASL listener `listener`;
/// `global_mechanisms` is `sasl.enabled.mechanisms` (Kafka's default is
/// `GSSAPI`, which Sluice does not implement).
pub fn listener_config(
    listener: &str,
    explicit: &BTreeMap<String, String>,
    global_mechanisms: &[String],
) -> Result<SaslListenerConfig, ConfigError> {
    let (mechanisms_key, names): (String, Vec<String>) =
        match listener_value(explicit, listener, "sasl.enabled.mechanisms") {
            Some((k, v)) => (
                k.clone(),
                v.split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect(),
            ),
            None => (
                "sasl.enabled.mechanisms".to_string(),
                global_mechanisms.to_vec(),
            ),
        };
    let unsupported = |reason: String| ConfigError::Unsupported {
        key: mechanisms_key.clone(),
        reason,
    };
    if names.is_empty() {
        return Err(unsupported(format!(
            "listener {listener} is a SASL listener but enables no SASL mechanism"
        )));
    }
    let mut mechanisms = Vec::new();
    for name in &names {
        let m: SaslMechanism = name.parse().map_err(|_| {
            unsupported(format!(
                "SASL mechanism {name} of listener {listener} is not implemented; Sluice implements PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
            ))
        })?;
        if !mechanisms.contains(&m) {
            mechanisms.push(m);
        }
    }
    let mut plain_users = BTreeMap::new();
    for m in &mechanisms {
        let rest = format!("{}.sasl.jaas.config", m.name().to_ascii_lowercase());
        let Some((key, jaas)) = listener_value(explicit, listener, &rest) else {
            return Err(ConfigError::Missing {
                key: format!("listener.name.{}.{rest}", listener.to_ascii_lowercase()),
                reason: format!(
                    "listener {listener} enables SASL mechanism {m}, which needs a JAAS entry"
                ),
            });
        };
        let entry = parse_single_entry(jaas).map_err(|e| ConfigError::InvalidValue {
            key: key.clone(),
            value: "[hidden]".into(),
            reason: e.to_string(),
        })?;
        if *m == SaslMechanism::Plain {
            plain_users = entry.plain_users();
        }
    }
    Ok(SaslListenerConfig {
        mechanisms,
        plain_users,
    })
}

/// Refuses the configurations where a SASL protocol would be named but
/// not enforced or not spoken: inter-broker traffic over a SASL listener
/// (the replica fetcher and the brokers' channels do not authenticate yet:
/// `sasl.mechanism.inter.broker.protocol` is not implemented), and a
/// controller listener mapped to anything but PLAINTEXT (the controller
/// listener has no authentication gate).
pub fn check_unauthenticated_paths<'a>(
    inter_broker_listener: Option<&str>,
    sasl_listeners: &BTreeMap<String, SaslListenerConfig>,
    controller_listeners: impl Iterator<Item = (&'a str, String)>,
) -> Result<(), ConfigError> {
    if let Some(name) = inter_broker_listener.filter(|n| sasl_listeners.contains_key(*n)) {
        return Err(ConfigError::Unsupported {
            key: "inter.broker.listener.name".into(),
            reason: format!(
                "listener {name} is a SASL listener, and Sluice's brokers do not authenticate to each other yet (sasl.mechanism.inter.broker.protocol is not implemented); use a PLAINTEXT listener for inter-broker traffic"
            ),
        });
    }
    for (name, protocol) in controller_listeners {
        if protocol != "PLAINTEXT" {
            return Err(ConfigError::Unsupported {
                key: "listener.security.protocol.map".into(),
                reason: format!(
                    "controller listener {name} uses {protocol}; Sluice's controller listener speaks PLAINTEXT only"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

    #[test]
    fn keys() {
        assert!(is_listener_key(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config"
        ));
        assert!(is_listener_key(
            "listener.name.client.scram-sha-256.sasl.jaas.config"
        ));
        assert!(is_listener_key(
            "listener.name.client.sasl.enabled.mechanisms"
        ));
        assert!(!is_listener_key("listener.name.client.sasl.jaas.config.x"));
        assert!(!is_listener_key("listener.name..plain.sasl.jaas.config"));
        assert!(!is_listener_key(
            "listener.name.client.ssl.keystore.location"
        ));
    }

    #[test]
    fn plain_users_from_the_listener_jaas() {
        let e = explicit(&[(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            PLAIN_JAAS,
        )]);
        let c = listener_config("SASL_PLAINTEXT", &e, &["PLAIN".into()]).unwrap();
        assert_eq!(c.mechanisms, vec![SaslMechanism::Plain]);
        assert_eq!(c.plain_users["alice"], "alice-secret");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn per_listener_mechanisms_win_and_each_needs_jaas() {
        let e = explicit(&[
            (
                "listener.name.client.sasl.enabled.mechanisms",
                "SCRAM-SHA-512",
            ),
            (
                "listener.name.client.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ),
        ]);
        let c = listener_config("CLIENT", &e, &["PLAIN".into()]).unwrap();
        assert_eq!(c.mechanisms.len(), 1);
        assert!(listener_config("CLIENT", &explicit(&[]), &["PLAIN".into()]).is_err());
        assert!(listener_config("CLIENT", &e, &[]).is_ok());
        let gssapi = listener_config("X", &explicit(&[]), &["GSSAPI".into()]).unwrap_err();
        assert!(gssapi.to_string().contains("GSSAPI"), "{gssapi}");
        let bad_jaas = explicit(&[(
            "listener.name.x.plain.sasl.jaas.config",
            "m required user_a=\"p\"",
        )]);
        let err = listener_config("X", &bad_jaas, &["PLAIN".into()]).unwrap_err();
        assert!(!err.to_string().contains("\"p\""), "{err}");
    }

    #[test]
    fn unauthenticated_paths_are_refused() {
        let mut sasl = BTreeMap::new();
        sasl.insert(
            "SASL_PLAINTEXT".to_string(),
            SaslListenerConfig {
                mechanisms: vec![SaslMechanism::Plain],
                plain_users: BTreeMap::new(),
            },
        );
        let none = || std::iter::empty::<(&str, String)>();
        assert!(check_unauthenticated_paths(Some("PLAINTEXT"), &sasl, none()).is_ok());
        assert!(check_unauthenticated_paths(None, &sasl, none()).is_ok());
        let err = check_unauthenticated_paths(Some("SASL_PLAINTEXT"), &sasl, none()).unwrap_err();
        assert_eq!(err.key(), Some("inter.broker.listener.name"));
        let controller = [("CONTROLLER", "SASL_PLAINTEXT".to_string())];
        assert!(check_unauthenticated_paths(None, &sasl, controller.into_iter()).is_err());
        let controller = [("CONTROLLER", "PLAINTEXT".to_string())];
        assert!(check_unauthenticated_paths(None, &sasl, controller.into_iter()).is_ok());
    }
}
