//! How this node secures its traffic with the other nodes (issue 20), read
//! with Kafka's keys:
//!
//! - **Inter-broker** (replica fetchers, AddPartitionsToTxn verification,
//!   transaction markers): the inter-broker listener's protocol
//!   (`inter.broker.listener.name`, or `security.inter.broker.protocol`);
//!   over TLS its `ssl.truststore.*` (required: Sluice has no system
//!   truststore) and `ssl.keystore.*` (sent when the peer asks for a
//!   certificate); over SASL `sasl.mechanism.inter.broker.protocol` with the
//!   `username` and `password` of the listener's JAAS entry
//!   `listener.name.<l>.<mechanism>.sasl.jaas.config` (else
//!   `sasl.jaas.config`), as Kafka's `ChannelBuilders` takes them.
//! - **To the controllers** (the controller channel, the metadata quorum's
//!   RPC between voters): the first of `controller.listener.names`, its
//!   protocol from `listener.security.protocol.map`, and
//!   `sasl.mechanism.controller.protocol`, the same way.
//! - **The controller listener** of a node with the controller role: its
//!   TLS server settings and SASL mechanisms, as any listener's.
//!
//! Not yet: a broker-only node with a secured controller listener (its
//! metadata observer's listener is plaintext), OAUTHBEARER on the
//! controller listener, `ssl.endpoint.identification.algorithm` other
//! than Kafka's default (the peer's name is always checked).
//! Kafka's default mechanism, GSSAPI, is not implemented: a SASL path
//! between nodes must name PLAIN or SCRAM-SHA-256/512. Passwords never
//! appear in `Debug` output or errors.

use std::collections::BTreeMap;

use sluice_auth::jaas::parse_single_entry;
use sluice_auth::sasl::SaslMechanism;
use sluice_auth::SecurityProtocol;

use super::roles::KraftConfig;
use super::sasl::{self, SaslListenerConfig};
use super::ssl::{self, KeyStore, ListenerSecurity, Secret, TlsProtocol, TrustStore};
use super::ConfigError;

/// The key naming the inter-broker SASL mechanism.
pub const INTER_BROKER_MECHANISM: &str = "sasl.mechanism.inter.broker.protocol";
/// The key naming the controller SASL mechanism.
pub const CONTROLLER_MECHANISM: &str = "sasl.mechanism.controller.protocol";

/// The node's SASL login on one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslLoginConfig {
    pub mechanism: SaslMechanism,
    pub user: String,
    pub password: Secret,
}

/// TLS as a client: whom to trust, and the certificate to show.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSsl {
    pub truststore: TrustStore,
    pub keystore: Option<KeyStore>,
    pub protocols: Vec<TlsProtocol>,
}

/// How this node dials one kind of peer.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeClientConfig {
    /// The listener of the peers it dials.
    pub listener: String,
    pub protocol: SecurityProtocol,
    pub ssl: Option<ClientSsl>,
    pub sasl: Option<SaslLoginConfig>,
}

/// The controller listener's server side.
#[derive(Clone, Debug)]
pub struct ControllerServerConfig {
    pub listener: String,
    pub security: ListenerSecurity,
    pub sasl: Option<SaslListenerConfig>,
}

/// Everything above, for one node.
#[derive(Clone, Debug)]
pub struct NodeSecurity {
    /// A node with the broker role.
    pub inter_broker: Option<NodeClientConfig>,
    pub controller_client: NodeClientConfig,
    /// A node with the controller role.
    pub controller_server: Option<ControllerServerConfig>,
}

/// Resolves this node's security between nodes; `protocol_of` gives a
/// listener's protocol from `listener.security.protocol.map`.
pub fn resolve(
    explicit: &BTreeMap<String, String>,
    kraft: &KraftConfig,
    protocol_of: impl Fn(&str) -> Option<String>,
    global_mechanisms: &[String],
    global_reauth_ms: i64,
) -> Result<NodeSecurity, ConfigError> {
    let protocol = |name: &str| -> Result<SecurityProtocol, ConfigError> {
        let p = protocol_of(name).unwrap_or_else(|| "PLAINTEXT".into());
        p.parse().map_err(|_| ConfigError::InvalidValue {
            key: "listener.security.protocol.map".into(),
            value: p.clone(),
            reason: format!("listener {name}: unknown security protocol"),
        })
    };
    let inter_broker = match &kraft.inter_broker_listener_name {
        Some(name) => {
            let c = client(explicit, name, protocol(name)?, INTER_BROKER_MECHANISM)?;
            if let Some(login) = &c.sasl {
                // Kafka's KafkaConfig rule: the brokers must accept the
                // mechanism they log in to each other with.
                let enabled =
                    sasl::listener_config(name, explicit, global_mechanisms, global_reauth_ms)?;
                if !enabled.mechanisms.contains(&login.mechanism) {
                    return Err(ConfigError::InvalidValue {
                        key: INTER_BROKER_MECHANISM.into(),
                        value: login.mechanism.to_string(),
                        reason: format!("{INTER_BROKER_MECHANISM} must be included in sasl.enabled.mechanisms when SASL is used for inter-broker communication"),
                    });
                }
            }
            Some(c)
        }
        None => None,
    };
    let controller_name = &kraft.controller_listener_names[0];
    let controller_protocol = protocol(controller_name)?;
    if !kraft.roles.controller && controller_protocol != SecurityProtocol::Plaintext {
        // The observer of a broker-only node is pushed the log by the
        // leader on a listener of its own, which has no TLS or SASL yet.
        return Err(ConfigError::Unsupported {
            key: "listener.security.protocol.map".into(),
            reason: format!(
                "controller listener {controller_name} uses {controller_protocol}; a broker-only node (process.roles=broker) reaches the controllers over PLAINTEXT only for now (its metadata log observer's listener is not secured yet): secure the controller listener on combined nodes (process.roles=broker,controller)"
            ),
        });
    }
    let controller_client = client(
        explicit,
        controller_name,
        controller_protocol,
        CONTROLLER_MECHANISM,
    )?;
    let controller_server = if kraft.roles.controller {
        let sasl = if controller_protocol.uses_sasl() {
            let c = sasl::listener_config(
                controller_name,
                explicit,
                global_mechanisms,
                global_reauth_ms,
            )?;
            if c.mechanisms.contains(&SaslMechanism::OAuthBearer) {
                return Err(ConfigError::Unsupported {
                    key: "sasl.enabled.mechanisms".into(),
                    reason: format!(
                        "controller listener {controller_name} enables OAUTHBEARER; Sluice's controller listener accepts PLAIN and SCRAM-SHA-256/512 for now"
                    ),
                });
            }
            Some(c)
        } else {
            None
        };
        Some(ControllerServerConfig {
            listener: controller_name.clone(),
            security: ssl::resolve(explicit, controller_name, controller_protocol)?,
            sasl,
        })
    } else {
        None
    };
    Ok(NodeSecurity {
        inter_broker,
        controller_client,
        controller_server,
    })
}

/// How this node dials peers on `listener`, which speaks `protocol`.
pub fn client(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    protocol: SecurityProtocol,
    mechanism_key: &str,
) -> Result<NodeClientConfig, ConfigError> {
    let ssl = client_ssl(explicit, listener, protocol)?;
    let sasl = if protocol.uses_sasl() {
        Some(login(explicit, listener, mechanism_key)?)
    } else {
        None
    };
    Ok(NodeClientConfig {
        listener: listener.to_string(),
        protocol,
        ssl,
        sasl,
    })
}

/// The TLS side of [`client`]: `None` unless `protocol` uses TLS. Also
/// what a reload of the listener's stores resolves (KIP-226).
pub fn client_ssl(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    protocol: SecurityProtocol,
) -> Result<Option<ClientSsl>, ConfigError> {
    if !protocol.uses_tls() {
        return Ok(None);
    }
    let truststore = ssl::truststore(explicit, listener)?.ok_or_else(|| ConfigError::Missing {
        key: "ssl.truststore.location".into(),
        reason: format!(
            "listener {listener} speaks {protocol} and this node connects to its peers there: it needs a truststore to verify them (listener.name.{}.ssl.truststore.location or ssl.truststore.certificates; Sluice has no system truststore)",
            listener.to_ascii_lowercase()
        ),
    })?;
    let keystore = ssl::has_keystore(explicit, listener)
        .then(|| ssl::keystore(explicit, listener))
        .transpose()?;
    Ok(Some(ClientSsl {
        truststore,
        keystore,
        protocols: ssl::protocols(explicit, listener)?,
    }))
}

/// The node's login: the mechanism of `mechanism_key` and the JAAS
/// entry's `username` and `password`.
fn login(
    explicit: &BTreeMap<String, String>,
    listener: &str,
    mechanism_key: &str,
) -> Result<SaslLoginConfig, ConfigError> {
    let name = explicit
        .get(mechanism_key)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "GSSAPI".into());
    let mechanism = match name.parse::<SaslMechanism>() {
        Ok(m @ (SaslMechanism::Plain | SaslMechanism::Scram(_))) => m,
        _ => {
            return Err(ConfigError::Unsupported {
                key: mechanism_key.into(),
                reason: format!(
                    "listener {listener} speaks SASL and {mechanism_key} is {name}; Sluice's nodes log in to each other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (set {mechanism_key})"
                ),
            })
        }
    };
    let rest = format!("{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase());
    let per_listener = format!("listener.name.{}.{rest}", listener.to_ascii_lowercase());
    let (key, jaas) = explicit
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&per_listener))
        .or_else(|| explicit.get_key_value("sasl.jaas.config"))
        .ok_or_else(|| ConfigError::Missing {
            key: per_listener.clone(),
            reason: format!(
                "this node logs in to its peers on listener {listener} with {mechanism} and takes its username and password from that JAAS entry"
            ),
        })?;
    let entry = parse_single_entry(jaas).map_err(|e| ConfigError::InvalidValue {
        key: key.clone(),
        value: "[hidden]".into(),
        reason: e.to_string(),
    })?;
    let option = |o: &str| {
        entry
            .options
            .get(o)
            .cloned()
            .ok_or_else(|| ConfigError::Missing {
                key: key.clone(),
                reason: format!(
                    "the JAAS entry has no {o} option: this node logs in to its peers on listener {listener} with it"
                ),
            })
    };
    Ok(SaslLoginConfig {
        mechanism,
        user: option("username")?,
        password: Secret(option("password")?),
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

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" user_broker="broker-secret";"#;

    #[test]
    fn the_login_comes_from_the_listeners_jaas_entry() {
        let e = explicit(&[
            (INTER_BROKER_MECHANISM, "PLAIN"),
            ("listener.name.internal.plain.sasl.jaas.config", JAAS),
        ]);
        let c = client(
            &e,
            "INTERNAL",
            SecurityProtocol::SaslPlaintext,
            INTER_BROKER_MECHANISM,
        )
        .unwrap();
        let login = c.sasl.unwrap();
        assert_eq!(login.mechanism, SaslMechanism::Plain);
        assert_eq!(login.user, "broker");
        assert_eq!(login.password.0, "broker-secret");
        assert!(!format!("{login:?}").contains("secret"));
    }

    #[test]
    fn gssapi_a_missing_entry_and_a_missing_truststore_are_refused() {
        let e = explicit(&[("listener.name.internal.plain.sasl.jaas.config", JAAS)]);
        let err = client(
            &e,
            "INTERNAL",
            SecurityProtocol::SaslPlaintext,
            INTER_BROKER_MECHANISM,
        )
        .unwrap_err();
        assert_eq!(err.key(), Some(INTER_BROKER_MECHANISM), "{err}");
        let e = explicit(&[(CONTROLLER_MECHANISM, "SCRAM-SHA-512")]);
        let err = client(
            &e,
            "CONTROLLER",
            SecurityProtocol::SaslPlaintext,
            CONTROLLER_MECHANISM,
        )
        .unwrap_err();
        assert_eq!(
            err.key(),
            Some("listener.name.controller.scram-sha-512.sasl.jaas.config"),
            "{err}"
        );
        let no_password = explicit(&[
            (INTER_BROKER_MECHANISM, "PLAIN"),
            (
                "listener.name.internal.plain.sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker";"#,
            ),
        ]);
        assert!(client(
            &no_password,
            "INTERNAL",
            SecurityProtocol::SaslPlaintext,
            INTER_BROKER_MECHANISM
        )
        .is_err());
        let err = client(
            &explicit(&[]),
            "INTERNAL",
            SecurityProtocol::Ssl,
            INTER_BROKER_MECHANISM,
        )
        .unwrap_err();
        assert_eq!(err.key(), Some("ssl.truststore.location"), "{err}");
        let trust = explicit(&[
            ("ssl.truststore.type", "PEM"),
            ("listener.name.internal.ssl.truststore.location", "/ca.pem"),
        ]);
        let c = client(
            &trust,
            "INTERNAL",
            SecurityProtocol::Ssl,
            INTER_BROKER_MECHANISM,
        )
        .unwrap();
        let ssl = c.ssl.unwrap();
        assert!(ssl.keystore.is_none());
        assert!(c.sasl.is_none());
    }
}
