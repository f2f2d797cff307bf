//! Reading a broker's configuration: the given keys validated, then the
//! parts of [`BrokerConfig`](super::BrokerConfig) that need more than one
//! key (log directories, listeners and their security).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    invalid, kafka_keys, listener_connection_key, local_hostname, lookup, node_security,
    parse_listeners, parse_value, roles, sasl, ssl, ConfigError, Listener, Scope, Value,
};

/// The keys given explicitly (validated), read with the table's defaults.
pub(super) struct Explicit<'a>(pub(super) &'a BTreeMap<String, String>);

impl Explicit<'_> {
    /// The key's value: explicit, else the table default.
    pub(super) fn get(&self, name: &str) -> Option<Value> {
        let def = lookup(Scope::Broker, name).expect("key is in the table");
        match self.0.get(name) {
            Some(raw) => Some(parse_value(def, raw).expect("validated above")),
            None => def
                .default
                .map(|d| parse_value(def, d).expect("table defaults are valid")),
        }
    }

    pub(super) fn long(&self, name: &str) -> i64 {
        self.get(name).map(|v| v.as_i64()).unwrap_or(0)
    }

    pub(super) fn boolean(&self, name: &str) -> bool {
        self.get(name).map(|v| v.as_bool()).unwrap_or(false)
    }
}

/// Every given key checked against the table (or Kafka's own keys that
/// Sluice does not implement, listed apart, or per-listener keys checked as
/// their broker key): the explicit map, and the unimplemented keys sorted.
pub(super) fn validated(
    pairs: Vec<(String, String)>,
) -> Result<(BTreeMap<String, String>, Vec<String>), ConfigError> {
    let mut explicit = BTreeMap::new();
    let mut unimplemented = Vec::new();
    for (key, value) in pairs {
        let key = key.trim().to_string();
        if let Some(def) = lookup(Scope::Broker, &key) {
            parse_value(def, &value)?;
        } else if kafka_keys::KAFKA_BROKER_KEYS
            .binary_search(&key.as_str())
            .is_ok()
        {
            if !unimplemented.contains(&key) {
                unimplemented.push(key.clone());
            }
        } else if sasl::is_listener_key(&key) {
            // Read per listener below (config/sasl.rs).
        } else if let Some(base) = listener_connection_key(&key) {
            // listener.name.<listener>.max.connection.creation.rate
            // and .max.connections.
            let def = lookup(Scope::Broker, base).expect("key is in the table");
            parse_value(def, &value).map_err(|e| match e {
                ConfigError::InvalidValue { value, reason, .. } => ConfigError::InvalidValue {
                    key: key.clone(),
                    value,
                    reason,
                },
                e => e,
            })?;
        } else if let Some(base) = ssl::listener_key(&key) {
            // listener.name.<listener>.ssl.*: checked as its broker key.
            match lookup(Scope::Broker, base) {
                Some(def) => {
                    parse_value(def, &value).map_err(|e| match e {
                        ConfigError::InvalidValue { value, reason, .. } => {
                            ConfigError::InvalidValue {
                                key: key.clone(),
                                value,
                                reason,
                            }
                        }
                        e => e,
                    })?;
                }
                None if !unimplemented.contains(&key) => unimplemented.push(key.clone()),
                None => {}
            }
        } else {
            return Err(ConfigError::UnknownKey { key });
        }
        explicit.insert(key, value);
    }
    unimplemented.sort();
    Ok((explicit, unimplemented))
}

/// `log.dirs`, else `log.dir`: at least one directory.
pub(super) fn log_dirs(e: &Explicit) -> Result<Vec<PathBuf>, ConfigError> {
    match e.get("log.dirs") {
        Some(Value::List(dirs)) => Ok(dirs.into_iter().map(PathBuf::from).collect()),
        _ => match e.get("log.dir") {
            Some(Value::Str(d)) if !d.is_empty() => Ok(vec![PathBuf::from(d)]),
            _ => Err(ConfigError::InvalidValue {
                key: "log.dir".into(),
                value: String::new(),
                reason: "a log directory is required".into(),
            }),
        },
    }
}

/// The client listeners and what secures each.
pub(super) struct Listeners {
    pub(super) listeners: Vec<Listener>,
    pub(super) advertised_listeners: Vec<Listener>,
    pub(super) security: BTreeMap<String, ssl::ListenerSecurity>,
    pub(super) sasl_listeners: BTreeMap<String, sasl::SaslListenerConfig>,
    pub(super) node_security: Option<node_security::NodeSecurity>,
}

/// The listeners this node serves clients on (controller listeners
/// dropped; PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL kept), the ones it
/// advertises, and each one's TLS and SASL settings.
pub(super) fn listeners(
    e: &Explicit,
    kraft: Option<&roles::KraftConfig>,
) -> Result<Listeners, ConfigError> {
    let (explicit, get, long) = (e.0, |k: &str| e.get(k), |k: &str| e.long(k));
    // A controller-only node serves no client listener.
    let controller_only = kraft.is_some_and(|k| !k.roles.broker);
    // Listeners: drop controller listeners, keep PLAINTEXT, SSL and
    // SASL_PLAINTEXT ones.
    let controller_names: Vec<String> = match get("controller.listener.names") {
        Some(Value::Str(s)) => s
            .split(',')
            .map(|n| n.trim().to_ascii_uppercase())
            .filter(|n| !n.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    let protocol_map: BTreeMap<String, String> = match get("listener.security.protocol.map") {
        Some(Value::Str(s)) => s
            .split(',')
            .filter_map(|e| e.split_once(':'))
            .map(|(a, b)| (a.trim().to_ascii_uppercase(), b.trim().to_ascii_uppercase()))
            .collect(),
        _ => BTreeMap::new(),
    };
    let protocol_of = |name: &str| -> String {
        protocol_map
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    let select = |key: &str, raw: &str| -> Result<Vec<Listener>, ConfigError> {
        let def = lookup(Scope::Broker, key).expect("listeners keys are in the table");
        let all = parse_listeners(raw).map_err(|r| invalid(def, raw, r))?;
        let mut kept = Vec::new();
        for l in all {
            if controller_names.contains(&l.name) {
                continue;
            }
            let protocol = protocol_of(&l.name);
            if !matches!(
                protocol.as_str(),
                "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
            ) {
                return Err(ConfigError::Unsupported {
                    key: key.to_string(),
                    reason: ssl::unsupported_protocol(&l, &protocol, false),
                });
            }
            kept.push(l);
        }
        if kept.is_empty() && !controller_only {
            return Err(invalid(
                def,
                raw,
                "no PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL listener left to bind",
            ));
        }
        Ok(kept)
    };
    let listeners_raw = match get("listeners") {
        Some(Value::Str(s)) => s,
        _ => String::new(),
    };
    let listeners = select("listeners", &listeners_raw)?;
    let global_mechanisms = match get("sasl.enabled.mechanisms") {
        Some(Value::List(m)) => m,
        _ => Vec::new(),
    };
    let mut sasl_listeners = BTreeMap::new();
    for l in &listeners {
        if protocol_of(&l.name).starts_with("SASL_") {
            let c = sasl::listener_config(
                &l.name,
                explicit,
                &global_mechanisms,
                long(sasl::REAUTH_KEY),
            )?;
            sasl_listeners.insert(l.name.clone(), c);
        }
    }
    let node_security = match kraft {
        Some(k) => Some(node_security::resolve(
            explicit,
            k,
            |name| roles::protocol_of(explicit, &controller_names, name),
            &global_mechanisms,
            long(sasl::REAUTH_KEY),
        )?),
        None => None,
    };
    let mut security = BTreeMap::new();
    for l in &listeners {
        let protocol = match protocol_of(&l.name).as_str() {
            "SSL" => sluice_auth::SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => sluice_auth::SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => sluice_auth::SecurityProtocol::SaslSsl,
            _ => sluice_auth::SecurityProtocol::Plaintext,
        };
        security.insert(l.name.clone(), ssl::resolve(explicit, &l.name, protocol)?);
    }
    let mut advertised_listeners = match explicit.get("advertised.listeners") {
        Some(raw) => select("advertised.listeners", raw)?,
        None => listeners.clone(),
    };
    // As Kafka: clients cannot connect to the meta-address, and an empty
    // host advertises this machine's name.
    for l in &mut advertised_listeners {
        if l.host == "0.0.0.0" || l.host == "::" {
            return Err(ConfigError::InvalidValue {
                key: "advertised.listeners".into(),
                value: l.to_string(),
                reason: "the non-routable meta-address cannot be advertised; set advertised.listeners to a host clients can reach".into(),
            });
        }
        if l.host.is_empty() {
            l.host = local_hostname();
        }
    }
    Ok(Listeners {
        listeners,
        advertised_listeners,
        security,
        sasl_listeners,
        node_security,
    })
}
