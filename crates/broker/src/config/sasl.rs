//! SASL settings of `SASL_PLAINTEXT` and `SASL_SSL` listeners, read with Kafka's keys:
//! `sasl.enabled.mechanisms` and its per-listener form
//! `listener.name.<listener>.sasl.enabled.mechanisms`, and each enabled
//! mechanism's `listener.name.<listener>.<mechanism>.sasl.jaas.config`
//! (listener and mechanism in lower case, as Kafka spells the keys; matched
//! here without regard to case). PLAIN's users are the JAAS entry's
//! `user_<name>="<password>"` options; SCRAM's credentials live in the
//! cluster metadata, but Kafka still requires a JAAS entry for it
//! (`ScramLoginModule`), and so does Sluice. OAUTHBEARER checks tokens
//! with Kafka's unsecured validator (its `unsecuredValidator*` JAAS
//! options) unless `listener.name.<l>.oauthbearer.sasl.server.callback.
//! handler.class` names Kafka's `OAuthBearerValidatorCallbackHandler`: then
//! signed JWTs against the JWKS of `sasl.oauthbearer.jwks.endpoint.url`
//! (a `file:` URL, read when the listener starts) and the other
//! `sasl.oauthbearer.*` keys.
//!
//! Invariants: a SASL listener has at least one mechanism, every one of
//! them implemented and with a valid JAAS entry; passwords never appear in
//! `Debug` output or error messages.

use std::collections::BTreeMap;
use std::fmt;

use std::path::PathBuf;

use sluice_auth::jaas::parse_single_entry;
use sluice_auth::oauth::{JwksValidatorConfig, UnsecuredValidator};
use sluice_auth::sasl::SaslMechanism;

use super::table::{lookup, Scope};
use super::ConfigError;

/// Kafka's secured validator (`OAuthBearerValidatorCallbackHandler`), by
/// its Kafka 4 name and its earlier `secured` package name.
const VALIDATOR_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// How a listener validates OAUTHBEARER tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthSettings {
    /// Kafka's default: unsigned tokens (development only).
    Unsecured(UnsecuredValidator),
    /// Signed JWTs verified with the keys of the JWKS file.
    Jwks {
        jwks_path: PathBuf,
        config: JwksValidatorConfig,
    },
}

/// What a SASL listener (`SASL_PLAINTEXT`, `SASL_SSL`) accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslListenerConfig {
    /// Enabled mechanisms, in the configured order (SaslHandshake lists
    /// them in this order).
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users and passwords.
    pub plain_users: BTreeMap<String, String>,
    /// OAUTHBEARER's validation, when enabled.
    pub oauth: Option<OAuthSettings>,
    /// `connections.max.reauth.ms` of each enabled mechanism (KIP-368):
    /// `listener.name.<l>.<mechanism>.connections.max.reauth.ms`, else
    /// `listener.name.<l>.connections.max.reauth.ms`, else the broker's.
    pub reauth_ms: BTreeMap<SaslMechanism, i64>,
}

impl fmt::Debug for SaslListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslListenerConfig")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .field("oauth", &self.oauth)
            .field("reauth_ms", &self.reauth_ms)
            .finish()
    }
}

const LISTENER_PREFIX: &str = "listener.name.";

/// Kafka's key of the session lifetime (KIP-368).
pub const REAUTH_KEY: &str = "connections.max.reauth.ms";

/// Whether `key` is a per-listener SASL key this module reads
/// (`listener.name.<l>.sasl.enabled.mechanisms`,
/// `listener.name.<l>.<mechanism>.sasl.jaas.config`, or
/// `connections.max.reauth.ms` for the listener or one of its mechanisms).
pub fn is_listener_key(key: &str) -> bool {
    split_listener_key(key).is_some_and(|(_, rest)| {
        rest == "sasl.enabled.mechanisms"
            || rest == REAUTH_KEY
            || [
                ".sasl.jaas.config",
                ".sasl.server.callback.handler.class",
                ".connections.max.reauth.ms",
            ]
            .iter()
            .any(|suffix| {
                rest.strip_suffix(suffix)
                    .is_some_and(|m| !m.is_empty() && !m.contains('.'))
            })
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
    global_reauth_ms: i64,
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
                "SASL mechanism {name} of listener {listener} is not implemented; Sluice implements PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER"
            ))
        })?;
        if !mechanisms.contains(&m) {
            mechanisms.push(m);
        }
    }
    let mut plain_users = BTreeMap::new();
    let mut oauth = None;
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
        match m {
            SaslMechanism::Plain => plain_users = entry.plain_users(),
            SaslMechanism::OAuthBearer => {
                oauth = Some(oauth_settings(listener, explicit, key, &entry.options)?)
            }
            SaslMechanism::Scram(_) => {}
        }
    }
    let mut reauth_ms = BTreeMap::new();
    for m in &mechanisms {
        let per_mechanism = format!("{}.{REAUTH_KEY}", m.name().to_ascii_lowercase());
        let ms = match listener_value(explicit, listener, &per_mechanism)
            .or_else(|| listener_value(explicit, listener, REAUTH_KEY))
        {
            Some((key, value)) => {
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|e| ConfigError::InvalidValue {
                        key: key.clone(),
                        value: value.clone(),
                        reason: e.to_string(),
                    })?
            }
            None => global_reauth_ms,
        };
        reauth_ms.insert(*m, ms);
    }
    Ok(SaslListenerConfig {
        mechanisms,
        plain_users,
        oauth,
        reauth_ms,
    })
}

/// OAUTHBEARER's validator for `listener`: the unsecured one with the
/// JAAS entry's options, or Kafka's secured one with the broker's
/// `sasl.oauthbearer.*` keys.
fn oauth_settings(
    listener: &str,
    explicit: &BTreeMap<String, String>,
    jaas_key: &str,
    jaas_options: &BTreeMap<String, String>,
) -> Result<OAuthSettings, ConfigError> {
    let handler = listener_value(
        explicit,
        listener,
        "oauthbearer.sasl.server.callback.handler.class",
    );
    let Some((handler_key, class)) = handler else {
        return UnsecuredValidator::from_jaas_options(jaas_options)
            .map(OAuthSettings::Unsecured)
            .map_err(|reason| ConfigError::InvalidValue {
                key: jaas_key.to_string(),
                value: "[hidden]".into(),
                reason,
            });
    };
    if !VALIDATOR_HANDLERS.contains(&class.trim()) {
        return Err(ConfigError::Unsupported {
            key: handler_key.clone(),
            reason: format!(
                "server callback handler {class} is not implemented; Sluice implements Kafka's {} (signed JWTs against sasl.oauthbearer.jwks.endpoint.url), or the unsecured validator when the key is unset",
                VALIDATOR_HANDLERS[0]
            ),
        });
    }
    let value = |key: &str| -> Option<String> {
        explicit
            .get(key)
            .cloned()
            .or_else(|| lookup(Scope::Broker, key)?.default.map(str::to_string))
            .filter(|v| !v.trim().is_empty())
    };
    const URL_KEY: &str = "sasl.oauthbearer.jwks.endpoint.url";
    let url = value(URL_KEY).ok_or_else(|| ConfigError::Missing {
        key: URL_KEY.into(),
        reason: format!(
            "listener {listener} validates OAUTHBEARER tokens with Kafka's OAuthBearerValidatorCallbackHandler, which needs the JWKS of {URL_KEY}"
        ),
    })?;
    let jwks_path = url
        .trim()
        .strip_prefix("file://")
        .map(PathBuf::from)
        .ok_or_else(|| ConfigError::Unsupported {
            key: URL_KEY.into(),
            reason: format!(
                "{url} is not a file: URL; Sluice reads the JWKS from a file (file:///path/jwks.json) for now"
            ),
        })?;
    const SKEW_KEY: &str = "sasl.oauthbearer.clock.skew.seconds";
    let skew = value(SKEW_KEY).unwrap_or_default();
    let clock_skew_seconds = skew
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 0)
        .ok_or_else(|| ConfigError::InvalidValue {
            key: SKEW_KEY.into(),
            value: skew.clone(),
            reason: "expected a non-negative number of seconds".into(),
        })?;
    Ok(OAuthSettings::Jwks {
        jwks_path,
        config: JwksValidatorConfig {
            expected_audience: value("sasl.oauthbearer.expected.audience")
                .map(|a| {
                    a.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            expected_issuer: value("sasl.oauthbearer.expected.issuer"),
            sub_claim_name: value("sasl.oauthbearer.sub.claim.name")
                .unwrap_or_else(|| "sub".into()),
            scope_claim_name: value("sasl.oauthbearer.scope.claim.name")
                .unwrap_or_else(|| "scope".into()),
            clock_skew_ms: clock_skew_seconds.saturating_mul(1000),
        },
    })
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
        let c = listener_config("SASL_PLAINTEXT", &e, &["PLAIN".into()], 0).unwrap();
        assert_eq!(c.mechanisms, vec![SaslMechanism::Plain]);
        assert_eq!(c.plain_users["alice"], "alice-secret");
        assert!(!format!("{c:?}").contains("secret"));
    }

    const OAUTH_JAAS: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorRequiredScope=\"kafka\";";
    const HANDLER_KEY: &str =
        "listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class";

    /// Kafka's unsecured validator by default (its JAAS options), the
    /// secured one when the handler class names it (the sasl.oauthbearer.*
    /// keys), anything else refused.
    #[test]
    fn oauthbearer_validators_from_kafkas_keys() {
        let jaas = (
            "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config",
            OAUTH_JAAS,
        );
        assert!(is_listener_key(HANDLER_KEY));
        let c =
            listener_config("SASL_SSL", &explicit(&[jaas]), &["OAUTHBEARER".into()], 0).unwrap();
        let Some(OAuthSettings::Unsecured(v)) = c.oauth else {
            panic!("{:?}", c.oauth)
        };
        assert_eq!(v.required_scope, ["kafka"]);
        let secured = [
            jaas,
            (HANDLER_KEY, VALIDATOR_HANDLERS[0]),
            (
                "sasl.oauthbearer.jwks.endpoint.url",
                "file:///etc/kafka/jwks.json",
            ),
            ("sasl.oauthbearer.expected.audience", "kafka, sluice"),
            ("sasl.oauthbearer.clock.skew.seconds", "5"),
        ];
        let c =
            listener_config("SASL_SSL", &explicit(&secured), &["OAUTHBEARER".into()], 0).unwrap();
        let Some(OAuthSettings::Jwks { jwks_path, config }) = c.oauth else {
            panic!("{:?}", c.oauth)
        };
        assert_eq!(jwks_path, PathBuf::from("/etc/kafka/jwks.json"));
        assert_eq!(config.expected_audience, ["kafka", "sluice"]);
        assert_eq!(config.clock_skew_ms, 5_000);
        assert_eq!(config.sub_claim_name, "sub");
        let refused = |pairs: &[(&str, &str)], key: &str| {
            let err = listener_config("SASL_SSL", &explicit(pairs), &["OAUTHBEARER".into()], 0)
                .unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
        };
        refused(&[jaas, (HANDLER_KEY, "com.example.Handler")], HANDLER_KEY);
        refused(
            &[jaas, (HANDLER_KEY, VALIDATOR_HANDLERS[1])],
            "sasl.oauthbearer.jwks.endpoint.url",
        );
        refused(
            &[
                jaas,
                (HANDLER_KEY, VALIDATOR_HANDLERS[0]),
                (
                    "sasl.oauthbearer.jwks.endpoint.url",
                    "https://idp.example/jwks",
                ),
            ],
            "sasl.oauthbearer.jwks.endpoint.url",
        );
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
        let c = listener_config("CLIENT", &e, &["PLAIN".into()], 0).unwrap();
        assert_eq!(c.mechanisms.len(), 1);
        assert!(listener_config("CLIENT", &explicit(&[]), &["PLAIN".into()], 0).is_err());
        assert!(listener_config("CLIENT", &e, &[], 0).is_ok());
        let gssapi = listener_config("X", &explicit(&[]), &["GSSAPI".into()], 0).unwrap_err();
        assert!(gssapi.to_string().contains("GSSAPI"), "{gssapi}");
        let bad_jaas = explicit(&[(
            "listener.name.x.plain.sasl.jaas.config",
            "m required user_a=\"p\"",
        )]);
        let err = listener_config("X", &bad_jaas, &["PLAIN".into()], 0).unwrap_err();
        assert!(!err.to_string().contains("\"p\""), "{err}");
    }

    #[test]
    fn reauth_ms_per_listener_and_mechanism() {
        let jaas = (
            "listener.name.client.plain.sasl.jaas.config",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_a="p";"#,
        );
        let scram = (
            "listener.name.client.scram-sha-256.sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        );
        let both = ["PLAIN".to_string(), "SCRAM-SHA-256".to_string()];
        let ms = |pairs: &[(&str, &str)]| {
            listener_config("CLIENT", &explicit(pairs), &both, 7)
                .unwrap()
                .reauth_ms
                .into_values()
                .collect::<Vec<_>>()
        };
        assert_eq!(ms(&[jaas, scram]), vec![7, 7]);
        let listener = ("listener.name.client.connections.max.reauth.ms", "5");
        assert_eq!(ms(&[jaas, scram, listener]), vec![5, 5]);
        let plain = ("listener.name.client.plain.connections.max.reauth.ms", "3");
        assert_eq!(ms(&[jaas, scram, listener, plain]), vec![3, 5]);
        assert!(is_listener_key(listener.0) && is_listener_key(plain.0));
        let bad = (
            "listener.name.client.plain.connections.max.reauth.ms",
            "soon",
        );
        assert!(listener_config("CLIENT", &explicit(&[jaas, scram, bad]), &both, 0).is_err());
    }
}
