//! KIP-848 group configs (config resource type GROUP): the per-group keys
//! Kafka 4.1 describes, their broker-level defaults and the bounds an
//! override must respect.
//!
//! Only `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`
//! change Sluice's behaviour (the consumer group coordinator uses them); the
//! `share.*` and `streams.*` keys are validated and stored as Kafka does, but
//! Sluice has no share or streams groups.

use std::collections::BTreeMap;

use super::{BrokerConfig, ConfigEntry, ConfigError, ConfigSource, ConfigSynonym, ConfigType};

/// One group config key.
#[derive(Clone, Copy, Debug)]
pub struct GroupConfigKey {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Broker key whose value is the default, and its Kafka default.
    pub broker_key: &'static str,
    pub broker_default: &'static str,
    /// Broker keys (with their Kafka defaults) bounding an override.
    pub min: Option<(&'static str, i64)>,
    pub max: Option<(&'static str, i64)>,
    /// String keys: allowed values (`by_duration:` prefix handled separately).
    pub one_of: &'static [&'static str],
    pub doc: &'static str,
}

const fn int(
    name: &'static str,
    broker_key: &'static str,
    broker_default: &'static str,
    min: Option<(&'static str, i64)>,
    max: Option<(&'static str, i64)>,
    doc: &'static str,
) -> GroupConfigKey {
    GroupConfigKey {
        name,
        ty: ConfigType::Int,
        broker_key,
        broker_default,
        min,
        max,
        one_of: &[],
        doc,
    }
}

/// Kafka 4.1's `GroupConfig` keys, in name order (as Kafka lists them).
pub const GROUP_CONFIG_KEYS: &[GroupConfigKey] = &[
    int("consumer.heartbeat.interval.ms", "group.consumer.heartbeat.interval.ms", "5000",
        Some(("group.consumer.min.heartbeat.interval.ms", 5000)),
        Some(("group.consumer.max.heartbeat.interval.ms", 15000)),
        "The heartbeat interval given to the members of a consumer group."),
    int("consumer.session.timeout.ms", "group.consumer.session.timeout.ms", "45000",
        Some(("group.consumer.min.session.timeout.ms", 45000)),
        Some(("group.consumer.max.session.timeout.ms", 60000)),
        "The timeout to detect client failures when using the consumer group protocol."),
    GroupConfigKey {
        name: "share.auto.offset.reset",
        ty: ConfigType::String,
        broker_key: "share.auto.offset.reset",
        broker_default: "latest",
        min: None,
        max: None,
        one_of: &["latest", "earliest"],
        doc: "The strategy to initialize the share-partition start offset (no effect: Sluice has no share groups).",
    },
    int("share.heartbeat.interval.ms", "group.share.heartbeat.interval.ms", "5000",
        Some(("group.share.min.heartbeat.interval.ms", 5000)),
        Some(("group.share.max.heartbeat.interval.ms", 15000)),
        "The heartbeat interval given to the members of a share group (no effect: Sluice has no share groups)."),
    GroupConfigKey {
        name: "share.isolation.level",
        ty: ConfigType::String,
        broker_key: "share.isolation.level",
        broker_default: "read_uncommitted",
        min: None,
        max: None,
        one_of: &["read_committed", "read_uncommitted"],
        doc: "Controls how to read records written transactionally in a share group (no effect: Sluice has no share groups).",
    },
    int("share.record.lock.duration.ms", "group.share.record.lock.duration.ms", "30000",
        Some(("group.share.min.record.lock.duration.ms", 15000)),
        Some(("group.share.max.record.lock.duration.ms", 60000)),
        "The record acquisition lock duration of a share group (no effect: Sluice has no share groups)."),
    int("share.session.timeout.ms", "group.share.session.timeout.ms", "45000",
        Some(("group.share.min.session.timeout.ms", 45000)),
        Some(("group.share.max.session.timeout.ms", 60000)),
        "The timeout to detect client failures when using the share group protocol (no effect: Sluice has no share groups)."),
    int("streams.heartbeat.interval.ms", "group.streams.heartbeat.interval.ms", "5000",
        Some(("group.streams.min.heartbeat.interval.ms", 5000)),
        Some(("group.streams.max.heartbeat.interval.ms", 15000)),
        "The heartbeat interval given to the members of a streams group (no effect: Sluice has no streams groups)."),
    int("streams.num.standby.replicas", "group.streams.num.standby.replicas", "0",
        None,
        Some(("group.streams.max.standby.replicas", 2)),
        "The number of standby replicas for each task of a streams group (no effect: Sluice has no streams groups)."),
    int("streams.session.timeout.ms", "group.streams.session.timeout.ms", "45000",
        Some(("group.streams.min.session.timeout.ms", 45000)),
        Some(("group.streams.max.session.timeout.ms", 60000)),
        "The timeout to detect client failures when using the streams group protocol (no effect: Sluice has no streams groups)."),
];

/// The group config key of this name.
pub fn group_key(name: &str) -> Option<&'static GroupConfigKey> {
    GROUP_CONFIG_KEYS.iter().find(|k| k.name == name)
}

impl BrokerConfig {
    /// The broker's value of `key` (explicit, else the table's or `fallback`).
    fn broker_value(&self, key: &str, fallback: &str) -> String {
        self.explicit
            .get(key)
            .map(|v| v.trim().to_string())
            .or_else(|| {
                super::lookup(super::Scope::Broker, key)
                    .and_then(|d| d.default)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| fallback.to_string())
    }

    fn broker_int(&self, key: &str, fallback: i64) -> i64 {
        self.broker_value(key, &fallback.to_string())
            .parse()
            .unwrap_or(fallback)
    }

    /// DescribeConfigs for a GROUP resource with these overrides: every
    /// group key, its override (source DYNAMIC_GROUP_CONFIG) or the broker's
    /// value (source DEFAULT_CONFIG, as Kafka reports it).
    pub fn describe_group(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        GROUP_CONFIG_KEYS
            .iter()
            .map(|def| {
                let (value, source) = match overrides.get(def.name) {
                    Some(v) => (v.clone(), ConfigSource::DynamicGroup),
                    None => (
                        self.broker_value(def.broker_key, def.broker_default),
                        ConfigSource::Default,
                    ),
                };
                ConfigEntry {
                    name: def.name.to_string(),
                    value: Some(value.clone()),
                    source,
                    read_only: false,
                    sensitive: false,
                    ty: def.ty,
                    doc: def.doc,
                    synonyms: vec![ConfigSynonym {
                        name: def.name.to_string(),
                        value: Some(value),
                        source,
                    }],
                }
            })
            .collect()
    }

    /// Checks a group's complete set of overrides as Kafka's `GroupConfig`
    /// does: known keys, typed values, within the broker's min/max bounds.
    pub fn validate_group_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        for (name, raw) in overrides {
            let def =
                group_key(name).ok_or_else(|| ConfigError::UnknownKey { key: name.clone() })?;
            let invalid = |reason: String| ConfigError::InvalidValue {
                key: name.clone(),
                value: raw.clone(),
                reason,
            };
            match def.ty {
                ConfigType::Int => {
                    let v: i32 = raw
                        .trim()
                        .parse()
                        .map_err(|_| invalid("Not a number of type INT".into()))?;
                    let v = i64::from(v);
                    if let Some((k, d)) = def.min {
                        if v < self.broker_int(k, d) {
                            return Err(invalid(format!(
                                "{name} must be greater than or equal to {k}"
                            )));
                        }
                    } else if v < 0 {
                        return Err(invalid(format!("{name} must be at least 0")));
                    }
                    if let Some((k, d)) = def.max {
                        if v > self.broker_int(k, d) {
                            return Err(invalid(format!(
                                "{name} must be less than or equal to {k}"
                            )));
                        }
                    }
                }
                _ => {
                    let ok = def.one_of.contains(&raw.as_str())
                        || (def.name == "share.auto.offset.reset"
                            && raw.starts_with("by_duration:"));
                    if !ok {
                        return Err(invalid(format!(
                            "String must be one of: {}",
                            def.one_of.join(", ")
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// A group's effective integer config (override, else broker value).
    pub fn group_int(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<i32> {
        let def = group_key(name)?;
        overrides
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                self.broker_value(def.broker_key, def.broker_default)
                    .parse()
                    .ok()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_broker_config_and_overrides_win() {
        let c = BrokerConfig::with_overrides(&[("group.consumer.session.timeout.ms", "50000")])
            .unwrap();
        let d = c.describe_group(&BTreeMap::new());
        assert_eq!(d.len(), 10);
        let s = d
            .iter()
            .find(|e| e.name == "consumer.session.timeout.ms")
            .unwrap();
        assert_eq!(s.value.as_deref(), Some("50000"));
        assert_eq!(s.source, ConfigSource::Default);
        let d = c.describe_group(&map(&[("consumer.session.timeout.ms", "55000")]));
        let s = d
            .iter()
            .find(|e| e.name == "consumer.session.timeout.ms")
            .unwrap();
        assert_eq!(s.value.as_deref(), Some("55000"));
        assert_eq!(s.source, ConfigSource::DynamicGroup);
    }

    #[test]
    fn validation_uses_broker_bounds() {
        let c = BrokerConfig::default();
        assert!(c
            .validate_group_configs(&map(&[("consumer.session.timeout.ms", "50000")]))
            .is_ok());
        assert!(c
            .validate_group_configs(&map(&[("consumer.session.timeout.ms", "1000")]))
            .is_err());
        assert!(c
            .validate_group_configs(&map(&[("consumer.heartbeat.interval.ms", "50000")]))
            .is_err());
        assert!(c
            .validate_group_configs(&map(&[("consumer.heartbeat.interval.ms", "abc")]))
            .is_err());
        assert!(matches!(
            c.validate_group_configs(&map(&[("foo.bar", "1")])),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(c
            .validate_group_configs(&map(&[("share.isolation.level", "read_committed")]))
            .is_ok());
        assert!(c
            .validate_group_configs(&map(&[("share.isolation.level", "x")]))
            .is_err());
        let wide =
            BrokerConfig::with_overrides(&[("group.consumer.min.session.timeout.ms", "1000")])
                .unwrap();
        assert!(wide
            .validate_group_configs(&map(&[("consumer.session.timeout.ms", "1000")]))
            .is_ok());
        assert_eq!(
            wide.group_int(
                &map(&[("consumer.session.timeout.ms", "1000")]),
                "consumer.session.timeout.ms"
            ),
            Some(1000)
        );
        assert_eq!(
            wide.group_int(&BTreeMap::new(), "consumer.session.timeout.ms"),
            Some(45000)
        );
    }
}
