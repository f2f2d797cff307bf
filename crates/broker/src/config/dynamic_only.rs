//! Kafka's dynamic-only broker keys that Sluice implements: the keys of
//! Kafka's `DynamicConfig.Broker` that `KafkaConfig` does not define, so
//! they cannot be set statically and are described only once set (see
//! [`super::dynamic`]).

use super::table::{ConfigKey, ConfigType, Scope, Validator};

use ConfigType as T;

const fn dynamic_only(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    doc: &'static str,
) -> ConfigKey {
    ConfigKey {
        name,
        scope: Scope::Broker,
        ty,
        default: Some(default),
        validator: Validator::AtLeast(0),
        doc,
        synonyms: &[],
        read_only: false,
        sensitive: false,
        no_effect: false,
    }
}

/// The replication throttles' rates (`crate::replica::quota`).
pub static DYNAMIC_ONLY_KEYS: &[ConfigKey] = &[
    dynamic_only("leader.replication.throttled.rate", T::Long, "9223372036854775807",
        "Bytes per second this broker, as leader, may send to followers of the replicas a topic's leader.replication.throttled.replicas names (followers outside the ISR are held back; in-sync ones only count). The default is no bound."),
    dynamic_only("follower.replication.throttled.rate", T::Long, "9223372036854775807",
        "Bytes per second this broker, as follower, may fetch for the replicas a topic's follower.replication.throttled.replicas names (held back while it has not caught up). The default is no bound."),
];
