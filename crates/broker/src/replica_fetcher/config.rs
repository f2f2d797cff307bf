//! The replica fetcher's settings: Kafka's `replica.fetch.*`,
//! `replica.socket.timeout.ms` and `num.replica.fetchers` keys (rows of the
//! config table), read once at start.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::table::{lookup, Scope};
use crate::config::{parse_value, BrokerConfig, ConfigError, Value};

/// How the fetchers of this broker fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetcherConfig {
    /// This broker's id (the `ReplicaId` of its fetches).
    pub replica_id: i32,
    /// The inter-broker listener whose endpoint of the leader to connect to.
    pub listener_name: String,
    /// `num.replica.fetchers`: fetcher tasks per source broker.
    pub num_fetchers: u32,
    /// `replica.fetch.wait.max.ms`
    pub wait_max_ms: i32,
    /// `replica.fetch.min.bytes`
    pub min_bytes: i32,
    /// `replica.fetch.max.bytes` (per partition)
    pub max_bytes: i32,
    /// `replica.fetch.response.max.bytes`
    pub response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`
    pub backoff: Duration,
    /// `replica.socket.timeout.ms`: longest wait for one answer.
    pub socket_timeout: Duration,
}

impl Default for ReplicaFetcherConfig {
    fn default() -> Self {
        Self::from_explicit(0, "PLAINTEXT", &BTreeMap::new())
    }
}

fn value(explicit: &BTreeMap<String, String>, key: &str) -> i64 {
    let def = lookup(Scope::Broker, key).expect("replica fetcher keys are in the config table");
    let raw = explicit.get(key).map(String::as_str).or(def.default);
    match raw.and_then(|raw| parse_value(def, raw).ok()) {
        Some(Value::Long(v)) => v,
        _ => 0,
    }
}

impl ReplicaFetcherConfig {
    /// The fetcher settings of `config` (its inter-broker listener, or
    /// PLAINTEXT on a node without cluster roles, which follows nothing).
    pub fn from_broker(config: &BrokerConfig) -> Self {
        let listener = config
            .kraft
            .as_ref()
            .and_then(|k| k.inter_broker_listener_name.clone())
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        Self::from_explicit(config.node_id, &listener, &config.explicit)
    }

    fn from_explicit(replica_id: i32, listener: &str, explicit: &BTreeMap<String, String>) -> Self {
        let int = |key: &str| value(explicit, key).clamp(0, i64::from(i32::MAX)) as i32;
        ReplicaFetcherConfig {
            replica_id,
            listener_name: listener.to_string(),
            num_fetchers: int("num.replica.fetchers").max(1) as u32,
            wait_max_ms: int("replica.fetch.wait.max.ms"),
            min_bytes: int("replica.fetch.min.bytes"),
            max_bytes: int("replica.fetch.max.bytes"),
            response_max_bytes: int("replica.fetch.response.max.bytes"),
            backoff: Duration::from_millis(int("replica.fetch.backoff.ms") as u64),
            socket_timeout: Duration::from_millis(int("replica.socket.timeout.ms").max(1) as u64),
        }
    }
}

/// Kafka's start-up check (`KafkaConfig.validateValues`): a fetch must be
/// able to wait its full `replica.fetch.wait.max.ms` without the socket
/// timing out.
pub(crate) fn validate(explicit: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let wait = value(explicit, "replica.fetch.wait.max.ms");
    let timeout = value(explicit, "replica.socket.timeout.ms");
    if timeout < wait {
        return Err(ConfigError::InvalidValue {
            key: "replica.socket.timeout.ms".into(),
            value: timeout.to_string(),
            reason: "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms to prevent unnecessary socket timeouts".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_defaults_and_overrides() {
        let c = ReplicaFetcherConfig::from_broker(&BrokerConfig::default());
        assert_eq!(
            (c.num_fetchers, c.wait_max_ms, c.min_bytes, c.max_bytes),
            (1, 500, 1, 1 << 20)
        );
        assert_eq!(c.response_max_bytes, 10 << 20);
        assert_eq!(c.backoff, Duration::from_millis(1000));
        assert_eq!(c.socket_timeout, Duration::from_millis(30_000));
        let c = ReplicaFetcherConfig::from_broker(
            &BrokerConfig::with_overrides(&[
                ("num.replica.fetchers", "3"),
                ("replica.fetch.max.bytes", "4096"),
            ])
            .unwrap(),
        );
        assert_eq!((c.num_fetchers, c.max_bytes), (3, 4096));
    }

    #[test]
    fn socket_timeout_below_the_fetch_wait_is_refused() {
        let err = BrokerConfig::with_overrides(&[
            ("replica.fetch.wait.max.ms", "5000"),
            ("replica.socket.timeout.ms", "1000"),
        ])
        .unwrap_err();
        assert_eq!(err.key(), Some("replica.socket.timeout.ms"), "{err}");
        BrokerConfig::with_overrides(&[("replica.fetch.wait.max.ms", "5000")]).unwrap();
        assert!(BrokerConfig::with_overrides(&[("num.replica.fetchers", "0")]).is_err());
    }
}
