//! Dynamic broker configs (Kafka's KIP-226): overrides of broker keys set at
//! runtime with AlterConfigs / IncrementalAlterConfigs on the BROKER
//! resource, at two levels: this broker (resource name = node id) and the
//! cluster-wide default (resource name ""). Precedence, highest first:
//! per-broker dynamic, cluster-default dynamic, static (server.properties /
//! `--override`), built-in default. As in Kafka, setting a key at a level
//! hides its broker synonyms at lower levels (a dynamic `log.retention.ms`
//! wins over a static `log.retention.hours`).
//!
//! Which keys are accepted, and what they do in Sluice:
//! - **Applied at once**: the `log.*` topic defaults (`log.segment.bytes`,
//!   `log.roll.ms`, `log.retention.ms`, `log.retention.bytes`,
//!   `log.index.size.max.bytes`, `log.index.interval.bytes`,
//!   `log.flush.interval.messages`, `log.flush.interval.ms`, `log.preallocate`,
//!   `log.message.timestamp.*`, `log.segment.delete.delay.ms`,
//!   `log.cleanup.policy`, `log.cleaner.delete.retention.ms`,
//!   `log.cleaner.min.compaction.lag.ms`, `log.cleaner.max.compaction.lag.ms`,
//!   `log.cleaner.min.cleanable.ratio`), `compression.type` and
//!   `message.max.bytes`: every topic without its own override gets the new
//!   default, on its existing partitions and when created later. The
//!   cleaner's `log.cleaner.backoff.ms`, `log.cleaner.dedupe.buffer.size` and
//!   `log.cleaner.io.max.bytes.per.second` apply from its next run, and
//!   `producer.id.expiration.ms` to every partition's idle producers;
//!   `min.insync.replicas` to every led partition without an override;
//!   `leader.replication.throttled.rate` and
//!   `follower.replication.throttled.rate` to the replication throttles
//!   (`crate::replica::quota`) from the next fetch;
//!   the cluster default of `unclean.leader.election.enable` is read by the
//!   controller from the image; `max.connections`, `max.connections.per.ip`,
//!   `max.connections.per.ip.overrides`, `max.connection.creation.rate`,
//!   `listener.name.<listener>.max.connection.creation.rate` and
//!   `listener.name.<listener>.max.connections` to connections
//!   accepted from then on (`crate::quota::connections`, `crate::quota::slots`);
//!   a listener's store keys (`listener.name.<l>.ssl.keystore.location` and
//!   the other keystore/truststore keys) reload its TLS server, also when
//!   named again with the same value (`crate::network::tls_reload`).
//! - **Stored and described, no effect** (Kafka accepts them dynamically, Sluice
//!   has no such behaviour):
//!   `log.roll.jitter.ms` (table keys marked
//!   no-effect), `num.recovery.threads.per.data.dir` (parsed, but nothing in
//!   Sluice reads it, statically either) and every key of [`STORED_ONLY_KEYS`] (thread pools, SASL/SSL,
//!   remote storage, connection rates, compression levels, metric reporters).
//!   Other per-listener keys (`listener.name.<listener>.<key>`, per broker only)
//!   and keys Kafka does not know at all are also stored, as Kafka does, and
//!   described as sensitive with no value. Each level holds at most
//!   [`MAX_DYNAMIC_CONFIGS_PER_LEVEL`] keys and all of it at most
//!   [`MAX_DYNAMIC_CONFIGS_BYTES`].
//! - **Refused** with INVALID_REQUEST: keys that are not dynamic in Kafka
//!   (`Cannot update these configs dynamically`), SSL store configs without a
//!   listener prefix, per-broker keys at the cluster-default level (Kafka's
//!   messages), and [`STARTUP_ONLY_KEYS`]: keys Kafka changes at runtime but
//!   Sluice reads only at start, so accepting them would change nothing.
//!
//! Where they live: BROKER `ConfigRecord`s in the metadata log, written by
//! the controller; the broker-config publisher puts them into
//! [`DynamicBrokerConfigs`] (shared by every clone of the config).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sluice_record::Offset;
use sluice_storage::Fs;

pub use super::dynamic_only::DYNAMIC_ONLY_KEYS;
use super::table::{lookup, ConfigKey, ConfigType, Scope, Validator};
use super::{kafka_keys, parse_value, ConfigError, ConfigSource};
use crate::metadata::{percent_decode, percent_encode, read_file, MetadataError};

/// Where the single-node release stored dynamic broker configs (read
/// once, to bootstrap the metadata log on an upgrade; never written).
pub const DYNAMIC_CONFIGS_FILE: &str = "broker_configs.meta";
/// Most dynamic keys one level may hold (clients grow these maps).
pub const MAX_DYNAMIC_CONFIGS_PER_LEVEL: usize = 1000;
/// Largest the stored dynamic configs may grow (keys and values included).
pub const MAX_DYNAMIC_CONFIGS_BYTES: usize = 4 << 20;

/// Broker keys that Apache Kafka 4.1 lets AlterConfigs change at runtime
/// (those its DescribeConfigs reports with `read_only=false`), sorted.
pub const KAFKA_DYNAMIC_BROKER_KEYS: &[&str] = &[
    "background.threads",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "follower.replication.throttled.rate",
    "leader.replication.throttled.rate",
    "listener.security.protocol.map",
    "listeners",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.threads",
    "log.cleanup.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.local.retention.bytes",
    "log.local.retention.ms",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.preallocate",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.jitter.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "max.connection.creation.rate",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "message.max.bytes",
    "metric.reporters",
    "min.insync.replicas",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "principal.builder.class",
    "producer.id.expiration.ms",
    "remote.fetch.max.wait.ms",
    "remote.list.offsets.request.timeout.ms",
    "remote.log.index.file.cache.total.size.bytes",
    "remote.log.manager.copier.thread.pool.size",
    "remote.log.manager.copy.max.bytes.per.second",
    "remote.log.manager.expiration.thread.pool.size",
    "remote.log.manager.fetch.max.bytes.per.second",
    "remote.log.reader.threads",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.mechanism.inter.broker.protocol",
    "ssl.cipher.suites",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.factory.class",
    "ssl.key.password",
    "ssl.keymanager.algorithm",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.protocol",
    "ssl.provider",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "transaction.partition.verification.enable",
    "unclean.leader.election.enable",
];

/// Keys Kafka changes at runtime that Sluice implements but reads only at
/// start (listeners are bound, the connection limit and the replica
/// fetcher pool are set up): refused
/// dynamically rather than stored without effect.
pub const STARTUP_ONLY_KEYS: &[&str] = &[
    "listener.security.protocol.map",
    "listeners",
    "num.replica.fetchers",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.mechanism.inter.broker.protocol",
];

const fn stored(name: &'static str, ty: ConfigType) -> ConfigKey {
    ConfigKey {
        name,
        scope: Scope::Broker,
        ty,
        default: None,
        validator: Validator::Any,
        doc: "Kafka dynamic broker config: stored and described; Sluice has no behaviour for it.",
        synonyms: &[],
        read_only: false,
        sensitive: matches!(ty, ConfigType::Password),
        no_effect: true,
    }
}

use ConfigType as T;

/// Kafka dynamic broker keys outside Sluice's config table: accepted (type
/// checked as Kafka does), stored durably and described, but they change
/// nothing in Sluice (it has no such thread pools, SASL/SSL, remote storage,
/// compression levels or metric reporters).
pub static STORED_ONLY_KEYS: &[ConfigKey] = &[
    stored("background.threads", T::Int),
    stored("compression.gzip.level", T::Int),
    stored("compression.lz4.level", T::Int),
    stored("compression.zstd.level", T::Int),
    stored("log.cleaner.io.buffer.load.factor", T::Double),
    stored("log.cleaner.io.buffer.size", T::Int),
    stored("log.cleaner.threads", T::Int),
    stored("log.local.retention.bytes", T::Long),
    stored("log.local.retention.ms", T::Long),
    stored("metric.reporters", T::List),
    stored("num.io.threads", T::Int),
    stored("num.network.threads", T::Int),
    stored("principal.builder.class", T::String),
    stored("remote.fetch.max.wait.ms", T::Int),
    stored("remote.list.offsets.request.timeout.ms", T::Long),
    stored("remote.log.index.file.cache.total.size.bytes", T::Long),
    stored("remote.log.manager.copier.thread.pool.size", T::Int),
    stored("remote.log.manager.copy.max.bytes.per.second", T::Long),
    stored("remote.log.manager.expiration.thread.pool.size", T::Int),
    stored("remote.log.manager.fetch.max.bytes.per.second", T::Long),
    stored("remote.log.reader.threads", T::Int),
    stored("replica.alter.log.dirs.io.max.bytes.per.second", T::Long),
    stored("sasl.kerberos.kinit.cmd", T::String),
    stored("sasl.kerberos.min.time.before.relogin", T::Long),
    stored("sasl.kerberos.principal.to.local.rules", T::List),
    stored("sasl.kerberos.service.name", T::String),
    stored("sasl.kerberos.ticket.renew.jitter", T::Double),
    stored("sasl.kerberos.ticket.renew.window.factor", T::Double),
    stored("sasl.login.refresh.buffer.seconds", T::Short),
    stored("sasl.login.refresh.min.period.seconds", T::Short),
    stored("sasl.login.refresh.window.factor", T::Double),
    stored("sasl.login.refresh.window.jitter", T::Double),
    stored("ssl.cipher.suites", T::List),
    stored("ssl.endpoint.identification.algorithm", T::String),
    stored("ssl.engine.factory.class", T::String),
    stored("ssl.keymanager.algorithm", T::String),
    stored("ssl.keystore.password", T::Password),
    stored("ssl.protocol", T::String),
    stored("ssl.provider", T::String),
    stored("ssl.secure.random.implementation", T::String),
    stored("ssl.trustmanager.algorithm", T::String),
    stored("ssl.truststore.password", T::Password),
];

/// SSL store configs Kafka changes only per listener (`listener.name.<l>.<key>`):
/// its `SslConfigs.RECONFIGURABLE_CONFIGS`, which reload a listener's TLS
/// (`network::tls_reload`).
pub(crate) const LISTENER_PREFIX_ONLY: &[&str] = &[
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

/// Listener keys that may be set at the cluster-default level.
const CLUSTER_LEVEL_LISTENER_KEYS: &[&str] = &[
    "max.connection.creation.rate",
    "max.connections",
    "num.network.threads",
];

/// Which level of dynamic config a BROKER resource name addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicLevel {
    /// Resource name = this node's id.
    Broker,
    /// Resource name "".
    ClusterDefault,
}

impl DynamicLevel {
    pub fn source(self) -> ConfigSource {
        match self {
            DynamicLevel::Broker => ConfigSource::DynamicBroker,
            DynamicLevel::ClusterDefault => ConfigSource::DynamicDefaultBroker,
        }
    }
}

/// The dynamic overrides of both levels (raw values as stored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfigs {
    pub broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicBrokerConfigs {
    pub fn level(&self, level: DynamicLevel) -> &BTreeMap<String, String> {
        match level {
            DynamicLevel::Broker => &self.broker,
            DynamicLevel::ClusterDefault => &self.cluster_default,
        }
    }

    pub fn level_mut(&mut self, level: DynamicLevel) -> &mut BTreeMap<String, String> {
        match level {
            DynamicLevel::Broker => &mut self.broker,
            DynamicLevel::ClusterDefault => &mut self.cluster_default,
        }
    }

    /// Every broker key with its effective raw value and source: `statics`
    /// overlaid by the cluster default, then by the per-broker level, each
    /// overlay hiding the key's broker synonyms below it (as Kafka does).
    pub fn effective(
        &self,
        statics: &BTreeMap<String, String>,
    ) -> BTreeMap<String, (String, ConfigSource)> {
        let mut out: BTreeMap<String, (String, ConfigSource)> = statics
            .iter()
            .map(|(k, v)| (k.clone(), (v.clone(), ConfigSource::StaticBroker)))
            .collect();
        for (layer, source) in [
            (&self.cluster_default, ConfigSource::DynamicDefaultBroker),
            (&self.broker, ConfigSource::DynamicBroker),
        ] {
            for (k, v) in layer {
                for s in broker_synonyms(k) {
                    out.remove(*s);
                }
                out.insert(k.clone(), (v.clone(), source));
            }
        }
        out
    }
}

/// Broker keys that set the same thing in other units (Kafka's
/// `brokerConfigSynonyms`); a key without any is its own only synonym.
pub fn broker_synonyms(key: &str) -> &'static [&'static str] {
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    const JITTER: &[&str] = &["log.roll.jitter.ms", "log.roll.jitter.hours"];
    const FLUSH: &[&str] = &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    match key {
        "log.roll.ms" | "log.roll.hours" => ROLL,
        "log.roll.jitter.ms" | "log.roll.jitter.hours" => JITTER,
        "log.flush.interval.ms" => FLUSH,
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => RETENTION,
        _ => &[],
    }
}

/// The definition used to type-check and describe a dynamic broker key:
/// its config table row, else its [`DYNAMIC_ONLY_KEYS`] or
/// [`STORED_ONLY_KEYS`] row.
pub fn dynamic_key_def(key: &str) -> Option<&'static ConfigKey> {
    lookup(Scope::Broker, key).or_else(|| {
        DYNAMIC_ONLY_KEYS
            .iter()
            .chain(STORED_ONLY_KEYS)
            .find(|k| k.name == key)
    })
}

/// Whether Kafka knows `key` as a broker config.
fn is_kafka_or_sluice_broker_key(key: &str) -> bool {
    lookup(Scope::Broker, key).is_some()
        || kafka_keys::KAFKA_BROKER_KEYS.binary_search(&key).is_ok()
}

fn is_kafka_dynamic(key: &str) -> bool {
    KAFKA_DYNAMIC_BROKER_KEYS.binary_search(&key).is_ok()
}

/// `listener.name.<listener>.<key>` -> `<key>`.
fn listener_base(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("listener.name.")?;
    let (_, base) = rest.split_once('.')?;
    Some(base)
}

/// Whether Sluice accepts `key` at runtime (what DescribeConfigs reports as
/// not read-only).
pub fn is_dynamic_in_sluice(key: &str) -> bool {
    is_kafka_dynamic(key) && !STARTUP_ONLY_KEYS.contains(&key)
}

fn per_broker_only(key: &str) -> bool {
    if let Some(base) = listener_base(key) {
        return !CLUSTER_LEVEL_LISTENER_KEYS.contains(&base);
    }
    is_kafka_dynamic(key)
        && (key.starts_with("ssl.")
            || key.starts_with("sasl.")
            || matches!(
                key,
                "listeners" | "listener.security.protocol.map" | "principal.builder.class"
            ))
}

/// Kafka prints small Scala sets as `Set(a, b)`.
fn set_of(keys: &[&str]) -> String {
    format!("Set({})", keys.join(", "))
}

/// Kafka's wording for a value its `ConfigDef` refuses.
fn kafka_reason(def: &ConfigKey, raw: &str) -> Option<String> {
    let err = parse_value(def, raw).err()?;
    let type_name = match def.ty {
        T::Boolean => "BOOLEAN",
        T::Short => "SHORT",
        T::Int => "INT",
        T::Long => "LONG",
        T::Double => "DOUBLE",
        _ => "STRING",
    };
    let s = raw.trim();
    let reason = match def.ty {
        T::Boolean if !s.eq_ignore_ascii_case("true") && !s.eq_ignore_ascii_case("false") => {
            "Expected value to be either true or false".to_string()
        }
        T::Short | T::Int | T::Long if s.parse::<i64>().is_err() => {
            format!("Not a number of type {type_name}")
        }
        T::Double if s.parse::<f64>().is_err() => format!("Not a number of type {type_name}"),
        _ => match (def.validator, err) {
            (Validator::AtLeast(min), _) => format!("Value must be at least {min}"),
            (Validator::Between(lo, hi), _) => format!("Value must be in the range [{lo}, {hi}]"),
            (_, ConfigError::InvalidValue { reason, .. }) => reason,
            (_, other) => other.to_string(),
        },
    };
    Some(format!(
        "Invalid value {} for configuration {}: {reason}",
        if def.sensitive { "[hidden]" } else { raw },
        def.name
    ))
}

/// Kafka's `ListenerConnectionQuota.validateReconfiguration`: every
/// listener's `max.connections` and `max.connection.creation.rate` (its
/// own, else the broker-wide key's) must be at least 1, so a value below
/// 1 of either key, listener-prefixed or not, is refused, in the words
/// Kafka's dynamic config validation wraps it in. (Kafka would let a
/// broker-wide 0 pass if every listener had its own value; Sluice's check
/// does not know the listeners and refuses it.)
fn listener_quota_refusal(configs: &BTreeMap<String, String>) -> Option<String> {
    configs.iter().find_map(|(k, v)| {
        let base = listener_base(k).unwrap_or(k);
        if !matches!(base, "max.connections" | "max.connection.creation.rate") {
            return None;
        }
        let n = v.trim().parse::<i64>().ok()?;
        (n <= 0).then(|| {
            format!(
                "Invalid value org.apache.kafka.common.config.ConfigException: Invalid {base} {n} for configuration Invalid dynamic configuration"
            )
        })
    })
}

/// Checks one level's complete set of dynamic overrides, in Kafka's order
/// (non-dynamic keys, listener-prefix-only keys, values, per-broker keys at
/// the default level), then Sluice's own limits. The error is the message
/// Kafka returns with INVALID_REQUEST.
pub fn validate(configs: &BTreeMap<String, String>, level: DynamicLevel) -> Result<(), String> {
    let non_dynamic: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|k| is_kafka_or_sluice_broker_key(k) && !is_kafka_dynamic(k))
        .collect();
    if !non_dynamic.is_empty() {
        return Err(format!(
            "Cannot update these configs dynamically: {}",
            set_of(&non_dynamic)
        ));
    }
    let no_prefix: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|k| LISTENER_PREFIX_ONLY.contains(k))
        .collect();
    if !no_prefix.is_empty() {
        return Err(format!(
            "These security configs can be dynamically updated only per-listener using the listener prefix: {}",
            set_of(&no_prefix)
        ));
    }
    for (k, v) in configs {
        let base = listener_base(k).unwrap_or(k);
        if let Some(def) = dynamic_key_def(base) {
            if let Some(msg) = kafka_reason(def, v) {
                return Err(msg);
            }
        }
    }
    if let Some(msg) = listener_quota_refusal(configs) {
        return Err(msg);
    }
    if let Some(raw) = configs.get("max.connections.per.ip.overrides") {
        if let Err(reason) = crate::quota::connections::PerIpLimits::parse_overrides(raw) {
            return Err(format!(
                "Invalid value {raw} for configuration max.connections.per.ip.overrides: {reason}"
            ));
        }
    }
    if level == DynamicLevel::ClusterDefault {
        let per_broker: Vec<&str> = configs
            .keys()
            .map(String::as_str)
            .filter(|k| per_broker_only(k))
            .collect();
        if !per_broker.is_empty() {
            return Err(format!(
                "Cannot update these configs at default cluster level, broker id must be specified: {}",
                set_of(&per_broker)
            ));
        }
    }
    let startup_only: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|k| STARTUP_ONLY_KEYS.contains(k))
        .collect();
    if !startup_only.is_empty() {
        return Err(format!(
            "Sluice reads these configs only at start (set them in server.properties or with --override): {}",
            set_of(&startup_only)
        ));
    }
    if configs.len() > MAX_DYNAMIC_CONFIGS_PER_LEVEL {
        return Err(format!(
            "Too many dynamic broker configs: at most {MAX_DYNAMIC_CONFIGS_PER_LEVEL} per level"
        ));
    }
    Ok(())
}

/// The file's text: header with the metadata offset of the change, one
/// `level` line per level followed by its `config` lines, and an `end` line
/// with the number of configs (a torn file is detected).
pub fn encode(configs: &DynamicBrokerConfigs, offset: Offset) -> String {
    let mut out = format!("version=1\noffset {}\n", offset.value());
    let mut n = 0;
    for (name, level) in [
        ("broker", &configs.broker),
        ("default", &configs.cluster_default),
    ] {
        let _ = writeln!(out, "level {name}");
        for (k, v) in level {
            let _ = writeln!(out, "config {} {}", percent_encode(k), percent_encode(v));
            n += 1;
        }
    }
    let _ = writeln!(out, "end {n}");
    out
}

/// Parses what [`encode`] wrote.
pub fn decode(text: &str) -> Result<(DynamicBrokerConfigs, Offset), String> {
    let mut lines = text.lines();
    if lines.next() != Some("version=1") {
        return Err("missing or unknown version line".into());
    }
    let offset = lines
        .next()
        .and_then(|l| l.strip_prefix("offset "))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(Offset)
        .ok_or("line 2: bad offset line")?;
    let mut configs = DynamicBrokerConfigs::default();
    let mut level: Option<DynamicLevel> = None;
    let mut count = 0usize;
    let mut ended = false;
    for (n, line) in lines.enumerate() {
        let bad = || format!("line {}: {line:?}", n + 3);
        if ended {
            return Err(bad());
        }
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["level", "broker"] => level = Some(DynamicLevel::Broker),
            ["level", "default"] => level = Some(DynamicLevel::ClusterDefault),
            ["config", k, v] => {
                let l = level.ok_or_else(bad)?;
                let k = percent_decode(k).ok_or_else(bad)?;
                let v = percent_decode(v).ok_or_else(bad)?;
                configs.level_mut(l).insert(k, v);
                count += 1;
            }
            ["end", c] => {
                if c.parse::<usize>().ok() != Some(count) {
                    return Err(bad());
                }
                ended = true;
            }
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err("truncated (no end line)".into());
    }
    Ok((configs, offset))
}

/// Reads the dynamic configs stored in `dir` (none if the file is absent).
/// Overrides this build refuses (e.g. a key that became startup-only) are
/// dropped with a warning, as Kafka ignores invalid stored dynamic configs.
pub fn load(fs: &dyn Fs, dir: &Path) -> Result<(DynamicBrokerConfigs, Offset), MetadataError> {
    let path = dir.join(DYNAMIC_CONFIGS_FILE);
    let Some(text) = read_file(fs, &path)? else {
        return Ok((DynamicBrokerConfigs::default(), Offset::ZERO));
    };
    let (mut configs, offset) = decode(&text).map_err(|reason| MetadataError::Corrupt {
        path: path.clone(),
        reason,
    })?;
    for level in [DynamicLevel::Broker, DynamicLevel::ClusterDefault] {
        let map = configs.level_mut(level);
        let invalid: Vec<String> = map
            .iter()
            .filter(|(k, v)| {
                let one = BTreeMap::from([((*k).clone(), (*v).clone())]);
                validate(&one, level).is_err()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in invalid {
            tracing::warn!(key = %k, ?level, "ignoring a stored dynamic broker config this build refuses");
            map.remove(&k);
        }
    }
    Ok((configs, offset))
}

/// The directory holding the metadata files (the first of `log.dirs`).
pub fn metadata_dir(config: &super::BrokerConfig) -> std::path::PathBuf {
    config
        .log_dirs
        .first()
        .cloned()
        .unwrap_or_else(|| std::path::PathBuf::from("./data"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_key_lists_are_sorted_and_consistent() {
        assert!(KAFKA_DYNAMIC_BROKER_KEYS.windows(2).all(|w| w[0] < w[1]));
        for k in STARTUP_ONLY_KEYS {
            assert!(is_kafka_dynamic(k), "{k}");
            assert!(lookup(Scope::Broker, k).is_some(), "{k} is implemented");
        }
        // Every Kafka dynamic key has a definition (table row or stored-only row).
        for k in KAFKA_DYNAMIC_BROKER_KEYS {
            assert!(dynamic_key_def(k).is_some(), "{k}");
        }
        for k in STORED_ONLY_KEYS {
            assert!(is_kafka_dynamic(k.name), "{}", k.name);
            assert!(lookup(Scope::Broker, k.name).is_none(), "{}", k.name);
        }
    }

    #[test]
    fn refusals_use_kafkas_messages_in_kafkas_order() {
        let b = DynamicLevel::Broker;
        let d = DynamicLevel::ClusterDefault;
        assert_eq!(
            validate(&map(&[("log.dirs", "/x"), ("log.segment.bytes", "abc")]), b),
            Err("Cannot update these configs dynamically: Set(log.dirs)".into())
        );
        assert_eq!(
            validate(&map(&[("ssl.keystore.password", "s")]), b),
            Err("These security configs can be dynamically updated only per-listener using the listener prefix: Set(ssl.keystore.password)".into())
        );
        assert_eq!(
            validate(&map(&[("log.segment.bytes", "abc")]), b),
            Err(
                "Invalid value abc for configuration log.segment.bytes: Not a number of type INT"
                    .into()
            )
        );
        assert_eq!(
            validate(&map(&[("log.segment.bytes", "10")]), b),
            Err("Invalid value 10 for configuration log.segment.bytes: Value must be at least 1048576".into())
        );
        assert_eq!(
            validate(&map(&[("sasl.kerberos.min.time.before.relogin", "x")]), b),
            Err("Invalid value x for configuration sasl.kerberos.min.time.before.relogin: Not a number of type LONG".into())
        );
        assert_eq!(
            validate(&map(&[("sasl.kerberos.min.time.before.relogin", "58000")]), d),
            Err("Cannot update these configs at default cluster level, broker id must be specified: Set(sasl.kerberos.min.time.before.relogin)".into())
        );
        assert!(validate(
            &map(&[("sasl.kerberos.min.time.before.relogin", "58000")]),
            b
        )
        .is_ok());
        assert!(validate(&map(&[("num.network.threads", "4")]), d).is_ok());
        assert!(validate(&map(&[("log.retention.ms", "3600000")]), d).is_ok());
        // Kafka keeps keys it does not know.
        assert!(validate(&map(&[("foo.bar", "1")]), b).is_ok());
        assert!(validate(&map(&[("num.replica.fetchers", "4")]), d)
            .unwrap_err()
            .contains("only at start"));
        assert!(validate(&map(&[("max.connection.creation.rate", "4")]), d).is_ok());
        assert!(validate(&map(&[("max.connections", "4")]), d).is_ok());
        assert!(validate(
            &map(&[("max.connections.per.ip.overrides", "1.2.3.4:x")]),
            b
        )
        .unwrap_err()
        .contains("max.connections.per.ip.overrides"));
        assert!(validate(&map(&[("producer.id.expiration.ms", "100")]), d).is_ok());
        assert!(validate(&map(&[("log.cleaner.backoff.ms", "100")]), d).is_ok());
    }

    #[test]
    fn dynamic_levels_take_precedence_and_hide_synonyms() {
        let statics = map(&[
            ("log.retention.hours", "1"),
            ("log.segment.bytes", "2000000"),
        ]);
        let mut dynamic = DynamicBrokerConfigs::default();
        assert_eq!(
            dynamic.effective(&statics)["log.retention.hours"],
            ("1".to_string(), ConfigSource::StaticBroker)
        );
        dynamic
            .cluster_default
            .insert("log.retention.ms".into(), "5000".into());
        dynamic
            .cluster_default
            .insert("log.segment.bytes".into(), "3000000".into());
        dynamic
            .broker
            .insert("log.segment.bytes".into(), "4000000".into());
        let e = dynamic.effective(&statics);
        assert!(!e.contains_key("log.retention.hours"));
        assert_eq!(
            e["log.retention.ms"],
            ("5000".to_string(), ConfigSource::DynamicDefaultBroker)
        );
        assert_eq!(
            e["log.segment.bytes"],
            ("4000000".to_string(), ConfigSource::DynamicBroker)
        );
    }

    #[test]
    fn torn_files_are_detected() {
        let mut c = DynamicBrokerConfigs::default();
        c.broker
            .insert("log.segment.bytes".into(), "2000000".into());
        let text = encode(&c, Offset(3));
        for cut in 0..text.len() - 1 {
            assert!(decode(&text[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn file_round_trips(
            broker in proptest::collection::btree_map("\\PC{1,20}", "\\PC{0,20}", 0..5),
            default in proptest::collection::btree_map("\\PC{1,20}", "\\PC{0,20}", 0..5),
            offset in 0i64..1_000_000,
        ) {
            let c = DynamicBrokerConfigs { broker, cluster_default: default };
            prop_assert_eq!(decode(&encode(&c, Offset(offset))), Ok((c, Offset(offset))));
        }

        #[test]
        fn decode_never_panics(s in "\\PC{0,200}") {
            let _ = decode(&s);
        }

        #[test]
        fn validate_never_panics(
            configs in proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(KAFKA_DYNAMIC_BROKER_KEYS).prop_map(str::to_string),
                    "listener\\.name\\.[a-z]{1,5}\\.[a-z.]{1,20}",
                    "\\PC{0,20}",
                ],
                "\\PC{0,20}",
                0..6,
            ),
            default_level in any::<bool>(),
        ) {
            let level = if default_level { DynamicLevel::ClusterDefault } else { DynamicLevel::Broker };
            let _ = validate(&configs, level);
        }

        /// A key without broker synonyms takes its value from the highest
        /// level that sets it.
        #[test]
        fn the_highest_level_that_sets_a_key_wins(
            broker in proptest::collection::btree_map("[a-c]", "[0-9]{1,3}", 0..3),
            default in proptest::collection::btree_map("[a-c]", "[0-9]{1,3}", 0..3),
            statics in proptest::collection::btree_map("[a-c]", "[0-9]{1,3}", 0..3),
        ) {
            let c = DynamicBrokerConfigs { broker: broker.clone(), cluster_default: default.clone() };
            let e = c.effective(&statics);
            for k in ["a", "b", "c"] {
                let want = broker.get(k).map(|v| (v.clone(), ConfigSource::DynamicBroker))
                    .or_else(|| default.get(k).map(|v| (v.clone(), ConfigSource::DynamicDefaultBroker)))
                    .or_else(|| statics.get(k).map(|v| (v.clone(), ConfigSource::StaticBroker)));
                prop_assert_eq!(e.get(k).cloned(), want);
            }
        }
    }
}
