//! Broker and topic configuration: the one config table ([`table`]),
//! `server.properties` + `--override` parsing into [`BrokerConfig`], topic
//! config validation into a storage [`LogConfig`], and the metadata
//! DescribeConfigs reports (source, synonyms, read-only, sensitive, doc).

pub mod authorizer;
mod build;
pub mod dynamic;
mod dynamic_only;
pub mod group;
pub mod kafka_keys;
pub mod node_security;
pub mod properties;
pub mod roles;
pub mod sasl;
pub mod ssl;
pub mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use sluice_storage::{
    CleanupPolicy, CompactionConfig, CompressionType, LogConfig, LogManagerConfig, TimestampType,
};

pub use properties::parse_properties;
pub use table::{lookup, ConfigKey, ConfigType, Conversion, Scope, Validator, CONFIG_TABLE};

/// A configuration problem. Names the offending key.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ConfigError {
    #[error("unknown config key '{key}'")]
    UnknownKey { key: String },
    #[error("invalid value '{value}' for config '{key}': {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("config '{key}' is not supported by Sluice: {reason}")]
    Unsupported { key: String, reason: String },
    #[error("cannot read config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("malformed --override '{0}': expected key=value")]
    MalformedOverride(String),
    #[error("missing required configuration '{key}': {reason}")]
    Missing { key: String, reason: String },
}

impl ConfigError {
    /// The key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key }
            | ConfigError::InvalidValue { key, .. }
            | ConfigError::Unsupported { key, .. }
            | ConfigError::Missing { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A parsed, validated config value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    /// Short, Int and Long (range-checked for the key's type).
    Long(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    fn as_i64(&self) -> i64 {
        match self {
            Value::Long(v) => *v,
            _ => 0,
        }
    }
    fn as_bool(&self) -> bool {
        matches!(self, Value::Bool(true))
    }
    fn as_f64(&self) -> f64 {
        match self {
            Value::Double(v) => *v,
            Value::Long(v) => *v as f64,
            _ => 0.0,
        }
    }
}

impl fmt::Display for Value {
    /// The string Kafka would report for the value; parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Long(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v:?}"),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => f.write_str(&items.join(",")),
        }
    }
}

fn invalid(key: &ConfigKey, raw: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.name.to_string(),
        value: if key.sensitive {
            "[hidden]".to_string()
        } else {
            raw.to_string()
        },
        reason: reason.into(),
    }
}

/// Parses and validates `raw` for `key` (values are trimmed, as Kafka does).
pub fn parse_value(key: &ConfigKey, raw: &str) -> Result<Value, ConfigError> {
    let s = raw.trim();
    let value = match key.ty {
        ConfigType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(invalid(key, raw, "expected true or false")),
        },
        ConfigType::Short | ConfigType::Int | ConfigType::Long => {
            let v: i64 = s
                .parse()
                .map_err(|_| invalid(key, raw, "expected an integer"))?;
            let (lo, hi) = match key.ty {
                ConfigType::Short => (i16::MIN as i64, i16::MAX as i64),
                ConfigType::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if v < lo || v > hi {
                return Err(invalid(key, raw, format!("out of range for {:?}", key.ty)));
            }
            Value::Long(v)
        }
        ConfigType::Double => {
            let v: f64 = s
                .parse()
                .map_err(|_| invalid(key, raw, "expected a number"))?;
            if !v.is_finite() {
                return Err(invalid(key, raw, "expected a finite number"));
            }
            Value::Double(v)
        }
        ConfigType::String | ConfigType::Password | ConfigType::Unknown => {
            Value::Str(s.to_string())
        }
        ConfigType::List => Value::List(if s.is_empty() {
            Vec::new()
        } else {
            s.split(',').map(|p| p.trim().to_string()).collect()
        }),
    };
    validate(key, raw, &value)?;
    Ok(value)
}

fn validate(key: &ConfigKey, raw: &str, value: &Value) -> Result<(), ConfigError> {
    match (key.validator, value) {
        (Validator::Any, _) => Ok(()),
        (Validator::AtLeast(min), Value::Long(v)) if *v < min => {
            Err(invalid(key, raw, format!("value must be at least {min}")))
        }
        (Validator::Between(lo, hi), Value::Long(v)) if *v < lo || *v > hi => {
            Err(invalid(key, raw, format!("value must be in [{lo}, {hi}]")))
        }
        (Validator::BetweenF(lo, hi), Value::Double(v)) if *v < lo || *v > hi => {
            Err(invalid(key, raw, format!("value must be in [{lo}, {hi}]")))
        }
        (Validator::OneOf(allowed), Value::Str(s)) if !allowed.contains(&s.as_str()) => {
            Err(invalid(
                key,
                raw,
                format!("value must be one of {}", allowed.join(", ")),
            ))
        }
        (Validator::ListOf(allowed), Value::List(items)) => {
            if items.is_empty() {
                return Err(invalid(key, raw, "list must not be empty"));
            }
            match items.iter().find(|i| !allowed.contains(&i.as_str())) {
                Some(bad) => Err(invalid(
                    key,
                    raw,
                    format!("'{bad}' is not one of {}", allowed.join(", ")),
                )),
                None => Ok(()),
            }
        }
        (Validator::NonEmptyList, Value::List(items)) => {
            if items.is_empty() || items.iter().any(|i| i.is_empty()) {
                Err(invalid(
                    key,
                    raw,
                    "expected a non-empty comma-separated list",
                ))
            } else {
                Ok(())
            }
        }
        (Validator::ThrottledReplicas, Value::List(items)) => {
            let pair = |i: &str| {
                i.split_once(':').is_some_and(|(p, b)| {
                    !p.is_empty()
                        && !b.is_empty()
                        && p.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                })
            };
            let wildcard = items.len() == 1 && items[0] == "*";
            if wildcard || items.iter().all(|i| i.is_empty() || pair(i)) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    raw,
                    format!(
                        "{} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                        key.name
                    ),
                ))
            }
        }
        (Validator::Listeners, Value::Str(s)) => parse_listeners(s)
            .map(|_| ())
            .map_err(|reason| invalid(key, raw, reason)),
        _ => Ok(()),
    }
}

/// One `NAME://host:port` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, e.g. `PLAINTEXT`.
    pub name: String,
    /// Host as written; empty = all interfaces.
    pub host: String,
    /// 0 = ephemeral.
    pub port: u16,
}

impl Listener {
    /// Address to bind: an empty host binds all interfaces.
    pub fn bind_addr(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// This machine's host name (what Kafka advertises for a listener without a host).
fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// Parses a comma-separated listener list. Names must be unique.
pub fn parse_listeners(s: &str) -> Result<Vec<Listener>, String> {
    let mut out: Vec<Listener> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| format!("listener '{item}' is not NAME://host:port"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("listener name '{name}' is invalid"));
        }
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            let (h, p) = stripped
                .split_once("]:")
                .ok_or_else(|| format!("listener '{item}' has a malformed IPv6 host"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("listener '{item}' has no port"))?;
            (h.to_string(), p)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("listener '{item}' has an invalid port"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener name '{name}' appears twice"));
        }
        out.push(Listener { name, host, port });
    }
    if out.is_empty() {
        return Err("no listener given".to_string());
    }
    Ok(out)
}

/// Where a reported config value comes from (Kafka's `ConfigSource` ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic,
    /// A dynamic override of this broker (resource name = node id).
    DynamicBroker,
    /// A dynamic cluster-wide default (resource name "").
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    /// A KIP-848 group config override.
    DynamicGroup,
}

impl ConfigSource {
    /// The wire id DescribeConfigs v1+ uses.
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::DynamicGroup => 8,
        }
    }
}

/// One synonym of a described config.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One DescribeConfigs entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub ty: ConfigType,
    pub doc: &'static str,
    /// Highest precedence first; the first one is the entry itself.
    pub synonyms: Vec<ConfigSynonym>,
}

/// The resolved static broker configuration.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Listeners to bind (controller listeners removed).
    pub listeners: Vec<Listener>,
    /// Each listener's security protocol and TLS settings, by listener
    /// name (every entry of `listeners` has one).
    pub security: BTreeMap<String, ssl::ListenerSecurity>,
    /// What Metadata/FindCoordinator return; defaults to `listeners`.
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub delete_topic_enable: bool,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: i64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: i64,
    pub message_max_bytes: u32,
    pub socket_request_max_bytes: usize,
    /// `usize::MAX` when the key is -1 (unbounded).
    pub queued_max_request_bytes: usize,
    pub max_connections: usize,
    /// `quota.window.num` and `quota.window.size.seconds` (client quotas).
    pub quota_windows: crate::quota::QuotaWindows,
    /// `max.connection.creation.rate`, broker-wide and per listener.
    pub connection_creation_rates: crate::quota::connections::CreationRateLimits,
    /// `max.connections.per.ip` and `max.connections.per.ip.overrides`.
    pub per_ip_limits: crate::quota::connections::PerIpLimits,
    /// `controller.quota.window.num` and `.size.seconds` (KIP-599 buckets).
    pub controller_quota_windows: crate::quota::QuotaWindows,
    /// `connections.max.idle.ms` (`None` when negative: never).
    pub connections_max_idle: Option<std::time::Duration>,
    /// `sluice.request.stall.timeout.ms`.
    pub request_stall_timeout: std::time::Duration,
    /// The ACL authorizer's settings (`authorizer.class.name`,
    /// `super.users`, `allow.everyone.if.no.acl.found`); `None`: no
    /// authorization.
    pub authorizer: Option<Arc<sluice_auth::acl::AuthorizerConfig>>,
    /// The SASL settings of each `SASL_PLAINTEXT` listener, by name.
    pub sasl_listeners: BTreeMap<String, sasl::SaslListenerConfig>,
    /// `sasl.server.max.receive.size`: the largest request a connection
    /// may send before it has authenticated.
    pub sasl_server_max_receive_size: usize,
    /// `connection.failed.authentication.delay.ms`.
    pub connection_failed_authentication_delay: std::time::Duration,
    pub num_recovery_threads_per_data_dir: u32,
    pub log_retention_check_interval_ms: i64,
    pub log_flush_scheduler_interval_ms: i64,
    pub log_flush_offset_checkpoint_interval_ms: i64,
    /// `replica.lag.time.max.ms`: an ISR follower that has not caught up
    /// for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    /// `replica.selector.class` (KIP-392; `None`: consumers read from leaders).
    pub replica_selector: Option<crate::replica::selector::ReplicaSelector>,
    pub max_open_segment_files: usize,
    /// `log.cleaner.enable`
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: period of the cleaner timer.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`, `log.cleaner.io.max.bytes.per.second`.
    pub cleaner: sluice_storage::CleanerConfig,
    /// Topic defaults derived from the `log.*` broker keys.
    pub log_config: LogConfig,
    /// The node's cluster roles and quorum (`process.roles` set), or `None`:
    /// one node that is its own controller ([`roles`]).
    pub kraft: Option<roles::KraftConfig>,
    /// How a cluster node secures its traffic with the other nodes
    /// (inter-broker, to the controllers, its controller listener).
    pub node_security: Option<node_security::NodeSecurity>,
    /// Kafka keys given in the config that Sluice does not implement (warned about once).
    pub unimplemented_keys: Vec<String>,
    /// Every key given explicitly (file then overrides), raw values.
    /// `Debug` hides the values of secret keys.
    pub explicit: ExplicitConfigs,
    /// Dynamic broker configs ([`dynamic`]); shared by clones, so every
    /// holder of this config sees a change at once.
    pub dynamic: Arc<RwLock<dynamic::DynamicBrokerConfigs>>,
}

/// The keys a broker was given explicitly, with their raw values. It reads
/// as the map it wraps; its `Debug` prints secret values (passwords, keys,
/// JAAS configs, which hold passwords) as `[hidden]`, so a logged config
/// never leaks them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExplicitConfigs(pub BTreeMap<String, String>);

impl ExplicitConfigs {
    /// Whether `key`'s value is secret: a key the table marks sensitive
    /// (Kafka's PASSWORD type), per listener too, or a JAAS config.
    pub fn is_secret(key: &str) -> bool {
        let base = ssl::listener_key(key).unwrap_or(key);
        base.ends_with("sasl.jaas.config")
            || base.contains("password")
            || lookup(Scope::Broker, base).is_some_and(|d| d.sensitive)
    }
}

impl std::ops::Deref for ExplicitConfigs {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ExplicitConfigs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for ExplicitConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if Self::is_secret(k) {
                    "[hidden]"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

impl Default for BrokerConfig {
    /// The embedded defaults (`sluice` with no config at all).
    fn default() -> Self {
        Self::from_pairs(Vec::new()).expect("the config table's defaults are valid")
    }
}

impl BrokerConfig {
    /// Reads an optional `server.properties` file, then applies `--override`s in
    /// order (later wins). Unknown keys and invalid values refuse, naming the key;
    /// Kafka keys Sluice does not implement are accepted with one warning.
    pub fn from_properties(
        file: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut pairs = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            pairs.extend(parse_properties(&text));
        }
        pairs.extend(overrides.iter().cloned());
        let config = Self::from_pairs(pairs)?;
        if !config.unimplemented_keys.is_empty() {
            tracing::warn!(
                "ignoring Kafka config keys that Sluice does not implement: {}",
                config.unimplemented_keys.join(", ")
            );
        }
        Ok(config)
    }

    /// The security of the listener named `name` (PLAINTEXT when unknown).
    pub fn listener_security(&self, name: &str) -> ssl::ListenerSecurity {
        self.security
            .get(name)
            .cloned()
            .unwrap_or_else(ssl::ListenerSecurity::plaintext)
    }

    /// Parses one `--override` argument `key=value`.
    pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
        match arg.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(ConfigError::MalformedOverride(arg.to_string())),
        }
    }

    /// Defaults plus `overrides` (for tests and embedding).
    pub fn with_overrides(overrides: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_pairs(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let (explicit, unimplemented) = build::validated(pairs)?;
        let e = build::Explicit(&explicit);
        let (get, long, boolean) = (
            |k: &str| e.get(k),
            |k: &str| e.long(k),
            |k: &str| e.boolean(k),
        );
        let log_dirs = build::log_dirs(&e)?;
        let kraft = roles::KraftConfig::from_explicit(&explicit, &log_dirs)?;
        crate::replica_fetcher::config::validate(&explicit)?;
        let build::Listeners {
            listeners,
            advertised_listeners,
            security,
            sasl_listeners,
            node_security,
        } = build::listeners(&e, kraft.as_ref())?;
        let per_ip_overrides = per_ip_overrides(&explicit, long("max.connections.per.ip"))?;
        let mut config = BrokerConfig {
            node_id: long("node.id") as i32,
            listeners,
            security,
            advertised_listeners,
            log_dirs,
            auto_create_topics_enable: boolean("auto.create.topics.enable"),
            num_partitions: long("num.partitions") as i32,
            default_replication_factor: long("default.replication.factor") as i16,
            delete_topic_enable: boolean("delete.topic.enable"),
            broker_heartbeat_interval_ms: long("broker.heartbeat.interval.ms"),
            broker_session_timeout_ms: long("broker.session.timeout.ms"),
            message_max_bytes: long("message.max.bytes") as u32,
            socket_request_max_bytes: long("socket.request.max.bytes") as usize,
            queued_max_request_bytes: match long("queued.max.request.bytes") {
                v if v < 0 => usize::MAX,
                v => usize::try_from(v).unwrap_or(usize::MAX),
            },
            max_connections: long("max.connections") as usize,
            quota_windows: crate::quota::QuotaWindows {
                samples: long("quota.window.num").max(1) as usize,
                window_ms: long("quota.window.size.seconds").max(1) * 1000,
            },
            connection_creation_rates: creation_rates(
                &explicit,
                long("max.connection.creation.rate"),
            ),
            per_ip_limits: crate::quota::connections::PerIpLimits {
                default: usize::try_from(long("max.connections.per.ip")).unwrap_or(0),
                overrides: per_ip_overrides,
            },
            controller_quota_windows: crate::quota::QuotaWindows {
                samples: long("controller.quota.window.num").max(1) as usize,
                window_ms: long("controller.quota.window.size.seconds").max(1) * 1000,
            },
            connections_max_idle: u64::try_from(long("connections.max.idle.ms"))
                .ok()
                .map(std::time::Duration::from_millis),
            request_stall_timeout: std::time::Duration::from_millis(
                long("sluice.request.stall.timeout.ms").max(1) as u64,
            ),
            authorizer: authorizer::resolve(&explicit)?,
            sasl_listeners,
            sasl_server_max_receive_size: long("sasl.server.max.receive.size").max(4) as usize,
            connection_failed_authentication_delay: std::time::Duration::from_millis(
                long("connection.failed.authentication.delay.ms").max(0) as u64,
            ),
            num_recovery_threads_per_data_dir: long("num.recovery.threads.per.data.dir") as u32,
            log_retention_check_interval_ms: long("log.retention.check.interval.ms"),
            log_flush_scheduler_interval_ms: long("log.flush.scheduler.interval.ms"),
            log_flush_offset_checkpoint_interval_ms: long(
                "log.flush.offset.checkpoint.interval.ms",
            ),
            replica_lag_time_max_ms: long("replica.lag.time.max.ms"),
            replica_high_watermark_checkpoint_interval_ms: long(
                "replica.high.watermark.checkpoint.interval.ms",
            ),
            replica_selector: match get("replica.selector.class") {
                Some(Value::Str(class)) => {
                    crate::replica::selector::ReplicaSelector::from_class(&class)
                }
                _ => None,
            },
            max_open_segment_files: long("sluice.max.open.segment.files") as usize,
            log_cleaner_enable: boolean("log.cleaner.enable"),
            log_cleaner_backoff_ms: long("log.cleaner.backoff.ms"),
            cleaner: sluice_storage::CleanerConfig {
                dedupe_buffer_size: usize::try_from(long("log.cleaner.dedupe.buffer.size"))
                    .unwrap_or(usize::MAX),
                io_max_bytes_per_second: match get("log.cleaner.io.max.bytes.per.second") {
                    Some(v) => v.as_f64(),
                    None => f64::MAX,
                },
            },
            log_config: LogConfig::default(),
            kraft,
            node_security,
            unimplemented_keys: unimplemented,
            explicit: ExplicitConfigs(explicit),
            dynamic: Arc::default(),
        };
        config.log_config = config.topic_log_config(&BTreeMap::new())?;
        Ok(config)
    }

    /// The storage engine's config for this broker.
    pub fn log_manager_config(&self) -> LogManagerConfig {
        // Explicit value, else the table default (both validated already).
        let long = |key: &str| -> Option<i64> {
            self.explicit
                .get(key)
                .map(String::as_str)
                .or_else(|| table::lookup(table::Scope::Broker, key).and_then(|k| k.default))
                .and_then(|v| v.trim().parse().ok())
        };
        let defaults = sluice_storage::producer_state::ProducerStateConfig::default();
        LogManagerConfig {
            log_dirs: self.log_dirs.clone(),
            max_open_segment_files: self.max_open_segment_files,
            producer_state: sluice_storage::producer_state::ProducerStateConfig {
                producer_id_expiration_ms: long("producer.id.expiration.ms")
                    .unwrap_or(defaults.producer_id_expiration_ms),
                max_producers: long("sluice.max.producers.per.partition")
                    .and_then(|v| usize::try_from(v).ok())
                    .unwrap_or(defaults.max_producers),
            },
            decompression_memory_bytes: long("sluice.decompression.memory.bytes")
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(sluice_storage::DEFAULT_DECOMPRESSION_MEMORY_BYTES),
            ..LogManagerConfig::default()
        }
    }

    /// Every broker key given explicitly or dynamically, with its effective
    /// raw value and source (dynamic levels over static, see [`dynamic`]).
    pub fn effective_broker_values(&self) -> BTreeMap<String, (String, ConfigSource)> {
        self.dynamic.read().effective(&self.explicit)
    }

    /// `max.connections.per.ip` and its overrides as in effect now (dynamic
    /// over static). A combination Kafka would refuse (a zero limit without
    /// overrides, an override that does not parse) leaves the static limits.
    pub fn per_ip_limits_now(&self) -> crate::quota::connections::PerIpLimits {
        const KEYS: [&str; 2] = ["max.connections.per.ip", "max.connections.per.ip.overrides"];
        let effective = self.effective_broker_values();
        let values: BTreeMap<String, String> = KEYS
            .iter()
            .filter_map(|k| effective.get(*k).map(|(v, _)| (k.to_string(), v.clone())))
            .collect();
        let per_ip = values
            .get(KEYS[0])
            .map(String::as_str)
            .or_else(|| lookup(Scope::Broker, KEYS[0]).and_then(|k| k.default))
            .and_then(|v| v.trim().parse::<i64>().ok());
        let Some(per_ip) = per_ip.filter(|n| *n >= 0) else {
            return self.per_ip_limits.clone();
        };
        match per_ip_overrides(&values, per_ip) {
            Ok(overrides) => crate::quota::connections::PerIpLimits {
                default: usize::try_from(per_ip).unwrap_or(usize::MAX),
                overrides,
            },
            Err(e) => {
                tracing::warn!(error = %e, "keeping the static max.connections.per.ip limits");
                self.per_ip_limits.clone()
            }
        }
    }

    /// `max.connection.creation.rate` and its listener overrides as in
    /// effect now (dynamic over static; a value that does not parse counts
    /// as absent).
    pub fn creation_rates_now(&self) -> crate::quota::connections::CreationRateLimits {
        let effective: BTreeMap<String, String> = self
            .effective_broker_values()
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect();
        let broker = effective
            .get("max.connection.creation.rate")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(i64::from(i32::MAX));
        creation_rates(&effective, broker)
    }

    /// `max.connections` and `listener.name.<l>.max.connections` as in
    /// effect now (dynamic over static; a value that does not parse counts
    /// as absent, and so does a listener value below 1, which Kafka
    /// refuses to apply).
    pub fn connection_limits_now(&self) -> crate::quota::slots::ConnectionLimits {
        let effective: BTreeMap<String, String> = self
            .effective_broker_values()
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect();
        let broker = effective
            .get("max.connections")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(self.max_connections)
            .max(1);
        crate::quota::slots::ConnectionLimits {
            broker,
            listeners: listener_values(&effective, "max.connections")
                .filter_map(|(l, v)| {
                    let n = usize::try_from(v.trim().parse::<i64>().ok()?).ok()?;
                    (n >= 1).then(|| (l.to_string(), n))
                })
                .collect(),
        }
    }

    /// A whole-number setting read once at start: the explicit value, else
    /// the config table's default, else `fallback` (a value that does not
    /// parse counts as absent). The coordinators read their settings so.
    pub fn long_setting(&self, name: &str, fallback: i64) -> i64 {
        self.explicit
            .get(name)
            .map(String::as_str)
            .or_else(|| lookup(Scope::Broker, name).and_then(|k| k.default))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(fallback)
    }

    /// `transaction.partition.verification.enable` as in effect now
    /// (dynamic over static; read on every Produce request, so without
    /// building the effective map).
    pub fn transaction_partition_verification(&self) -> bool {
        const KEY: &str = "transaction.partition.verification.enable";
        let dynamic = self.dynamic.read();
        let raw = dynamic
            .broker
            .get(KEY)
            .or_else(|| dynamic.cluster_default.get(KEY))
            .or_else(|| self.explicit.get(KEY))
            .map(String::as_str);
        raw.is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"))
    }

    /// `producer.id.expiration.ms` as in effect now (dynamic over static).
    pub fn producer_id_expiration_ms(&self) -> i64 {
        let key = "producer.id.expiration.ms";
        let def = lookup(Scope::Broker, key).expect("key is in the table");
        self.effective_broker_values()
            .get(key)
            .map(|(v, _)| v.as_str())
            .or(def.default)
            .and_then(|raw| parse_value(def, raw).ok())
            .map_or(
                self.log_manager_config()
                    .producer_state
                    .producer_id_expiration_ms,
                |v| v.as_i64(),
            )
    }

    /// `log.cleaner.backoff.ms` and the cleaner's settings as in effect now
    /// (dynamic broker configs over the static ones).
    pub fn cleaner_settings(&self) -> (i64, sluice_storage::CleanerConfig) {
        let effective = self.effective_broker_values();
        let value = |name: &str| -> Option<Value> {
            let def = lookup(Scope::Broker, name)?;
            let raw = effective
                .get(name)
                .map(|(v, _)| v.as_str())
                .or(def.default)?;
            parse_value(def, raw).ok()
        };
        let backoff =
            value("log.cleaner.backoff.ms").map_or(self.log_cleaner_backoff_ms, |v| v.as_i64());
        let config = sluice_storage::CleanerConfig {
            dedupe_buffer_size: value("log.cleaner.dedupe.buffer.size")
                .map_or(self.cleaner.dedupe_buffer_size, |v| {
                    usize::try_from(v.as_i64()).unwrap_or(usize::MAX)
                }),
            io_max_bytes_per_second: value("log.cleaner.io.max.bytes.per.second")
                .map_or(self.cleaner.io_max_bytes_per_second, |v| v.as_f64()),
        };
        (backoff, config)
    }

    /// The effective default of topic key `def` (from its broker synonyms in
    /// `effective`) and where it comes from.
    fn topic_default_in(
        &self,
        effective: &BTreeMap<String, (String, ConfigSource)>,
        def: &ConfigKey,
    ) -> (Option<String>, ConfigSource) {
        for (broker_key, conv) in def.synonyms {
            if let Some((raw, source)) = effective.get(*broker_key) {
                if let Some(v) = conv.apply(raw.trim()) {
                    return (Some(v), *source);
                }
            }
        }
        for (broker_key, conv) in def.synonyms {
            if let Some(d) = lookup(Scope::Broker, broker_key).and_then(|b| b.default) {
                return (conv.apply(d), ConfigSource::Default);
            }
        }
        (def.default.map(str::to_string), ConfigSource::Default)
    }

    /// A topic's effective `min.insync.replicas`: its override, else the
    /// broker's (dynamic over static), else 1.
    pub fn topic_min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> i32 {
        let key = "min.insync.replicas";
        let raw = match overrides.get(key) {
            Some(v) => Some(v.clone()),
            None => {
                let def = lookup(Scope::Topic, key).expect("topic key is in the table");
                self.topic_default_in(&self.effective_broker_values(), def)
                    .0
            }
        };
        raw.and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|v| *v >= 1)
            .unwrap_or(1)
    }

    /// Validates topic config overrides (CreateTopics / AlterConfigs) and returns the
    /// effective `LogConfig`: overrides on top of the broker's topic defaults.
    /// Unknown keys and invalid values are errors (INVALID_CONFIG on the wire).
    pub fn topic_log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigError> {
        for (key, value) in overrides {
            match lookup(Scope::Topic, key) {
                Some(def) => {
                    parse_value(def, value)?;
                }
                None if kafka_keys::KAFKA_TOPIC_KEYS
                    .binary_search(&key.as_str())
                    .is_ok() =>
                {
                    return Err(ConfigError::Unsupported {
                        key: key.clone(),
                        reason: "this topic config is not implemented".into(),
                    })
                }
                None => return Err(ConfigError::UnknownKey { key: key.clone() }),
            }
        }
        let effective = self.effective_broker_values();
        let value = |name: &str| -> Result<Value, ConfigError> {
            let def = lookup(Scope::Topic, name).expect("topic key is in the table");
            let raw = match overrides.get(name) {
                Some(v) => v.clone(),
                None => self.topic_default_in(&effective, def).0.unwrap_or_default(),
            };
            parse_value(def, &raw)
        };
        let long = |name: &str| value(name).map(|v| v.as_i64());
        let retention_ms = long("retention.ms")?;
        Ok(LogConfig {
            segment_bytes: long("segment.bytes")? as u64,
            segment_ms: long("segment.ms")?,
            segment_index_bytes: long("segment.index.bytes")? as u32,
            index_interval_bytes: long("index.interval.bytes")? as u32,
            retention_ms: if retention_ms < 0 { -1 } else { retention_ms },
            retention_bytes: long("retention.bytes")?,
            flush_messages: long("flush.messages")?,
            flush_ms: long("flush.ms")?,
            max_message_bytes: long("max.message.bytes")? as u32,
            message_timestamp_type: match value("message.timestamp.type")? {
                Value::Str(s) if s == "LogAppendTime" => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            message_timestamp_before_max_ms: long("message.timestamp.before.max.ms")?,
            message_timestamp_after_max_ms: long("message.timestamp.after.max.ms")?,
            file_delete_delay_ms: long("file.delete.delay.ms")?,
            preallocate: value("preallocate")?.as_bool(),
            compaction: CompactionConfig {
                cleanup_policy: match value("cleanup.policy")? {
                    Value::List(items) => {
                        CleanupPolicy::parse(&items.join(",")).unwrap_or_default()
                    }
                    Value::Str(s) => CleanupPolicy::parse(&s).unwrap_or_default(),
                    _ => CleanupPolicy::Delete,
                },
                min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")?.as_f64(),
                min_compaction_lag_ms: long("min.compaction.lag.ms")?,
                max_compaction_lag_ms: long("max.compaction.lag.ms")?,
                delete_retention_ms: long("delete.retention.ms")?,
            },
            compression: match value("compression.type")? {
                Value::Str(s) => match s.as_str() {
                    "uncompressed" => Some(CompressionType::None),
                    "gzip" => Some(CompressionType::Gzip),
                    "snappy" => Some(CompressionType::Snappy),
                    "lz4" => Some(CompressionType::Lz4),
                    "zstd" => Some(CompressionType::Zstd),
                    _ => None, // producer
                },
                _ => None,
            },
        })
    }

    /// The synonyms Kafka lists for broker key `name`: level by level
    /// (dynamic per-broker, dynamic cluster default, static, default), each
    /// level listing `name`'s broker synonym group in order, then everything
    /// before the first entry named `name` dropped (so `log.retention.ms`
    /// set nowhere lists nothing, not `log.retention.hours`' default).
    fn kafka_synonyms(
        &self,
        dynamic: &dynamic::DynamicBrokerConfigs,
        name: &str,
    ) -> Vec<ConfigSynonym> {
        let group = dynamic::broker_synonyms(name);
        let names: &[&str] = if group.is_empty() {
            std::slice::from_ref(&name)
        } else {
            group
        };
        let defaults: BTreeMap<String, String> = names
            .iter()
            .filter_map(|n| {
                lookup(Scope::Broker, n)
                    .and_then(|k| k.default)
                    .map(|d| (n.to_string(), d.to_string()))
            })
            .collect();
        let mut synonyms = Vec::new();
        for (map, source) in [
            (&dynamic.broker, ConfigSource::DynamicBroker),
            (&dynamic.cluster_default, ConfigSource::DynamicDefaultBroker),
            (&self.explicit, ConfigSource::StaticBroker),
            (&defaults, ConfigSource::Default),
        ] {
            for n in names {
                if let Some(raw) = map.get(*n) {
                    synonyms.push(ConfigSynonym {
                        name: n.to_string(),
                        value: Some(raw.trim().to_string()),
                        source,
                    });
                }
            }
        }
        let first = synonyms
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(synonyms.len());
        synonyms.split_off(first)
    }

    /// DescribeConfigs for the BROKER resource named by this node's id: every
    /// broker key of the table, then the dynamic keys outside it.
    pub fn describe_broker(&self) -> Vec<ConfigEntry> {
        let dynamic = self.dynamic.read().clone();
        let layered = |name: &str| -> Vec<ConfigSynonym> {
            let mut synonyms = Vec::new();
            for (map, source) in [
                (&dynamic.broker, ConfigSource::DynamicBroker),
                (&dynamic.cluster_default, ConfigSource::DynamicDefaultBroker),
                (&self.explicit, ConfigSource::StaticBroker),
            ] {
                if let Some(raw) = map.get(name) {
                    synonyms.push(ConfigSynonym {
                        name: name.to_string(),
                        value: Some(raw.trim().to_string()),
                        source,
                    });
                }
            }
            synonyms
        };
        let mut entries: Vec<ConfigEntry> = table::keys(Scope::Broker)
            .map(|def| {
                let synonyms = self.kafka_synonyms(&dynamic, def.name);
                let (value, source) = match synonyms.first() {
                    Some(s) => (s.value.clone(), s.source),
                    None => (None, ConfigSource::Default),
                };
                let value = match (def.name, value) {
                    // Report what the broker actually uses.
                    ("advertised.listeners", None) => Some(
                        self.advertised_listeners
                            .iter()
                            .map(|l| l.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    (_, v) => v,
                };
                described(
                    def.name,
                    value,
                    source,
                    Some(def),
                    !dynamic::is_dynamic_in_sluice(def.name),
                    synonyms,
                )
            })
            .collect();
        let extra: std::collections::BTreeSet<&String> = dynamic
            .broker
            .keys()
            .chain(dynamic.cluster_default.keys())
            .filter(|k| lookup(Scope::Broker, k).is_none())
            .collect();
        for name in extra {
            let synonyms = layered(name);
            let (value, source) = synonyms
                .first()
                .map(|s| (s.value.clone(), s.source))
                .unwrap_or((None, ConfigSource::Default));
            let def = dynamic::dynamic_key_def(name);
            entries.push(described(name, value, source, def, def.is_none(), synonyms));
        }
        entries
    }

    /// DescribeConfigs for the BROKER resource named "": the cluster-wide
    /// dynamic defaults only (as Kafka answers).
    pub fn describe_cluster_default(&self) -> Vec<ConfigEntry> {
        let dynamic = self.dynamic.read();
        dynamic
            .cluster_default
            .iter()
            .map(|(name, raw)| {
                let def = dynamic::dynamic_key_def(name);
                let value = Some(raw.trim().to_string());
                let synonyms = vec![ConfigSynonym {
                    name: name.clone(),
                    value: value.clone(),
                    source: ConfigSource::DynamicDefaultBroker,
                }];
                described(
                    name,
                    value,
                    ConfigSource::DynamicDefaultBroker,
                    def,
                    def.is_none_or(|d| !dynamic::is_dynamic_in_sluice(d.name)),
                    synonyms,
                )
            })
            .collect()
    }

    /// DescribeConfigs for a TOPIC resource with these overrides.
    pub fn describe_topic(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        let dynamic = self.dynamic.read().clone();
        let effective = dynamic.effective(&self.explicit);
        table::keys(Scope::Topic)
            .map(|def| {
                let mut synonyms = Vec::new();
                if let Some(v) = overrides.get(def.name) {
                    synonyms.push(ConfigSynonym {
                        name: def.name.to_string(),
                        value: Some(v.trim().to_string()),
                        source: ConfigSource::DynamicTopic,
                    });
                }
                // As Kafka: the synonyms of the primary broker synonym.
                if let Some((primary, _)) = def.synonyms.first() {
                    synonyms.extend(self.kafka_synonyms(&dynamic, primary));
                }
                let value = match overrides.get(def.name) {
                    Some(v) => Some(v.trim().to_string()),
                    None => self.topic_default_in(&effective, def).0,
                };
                // As Kafka: the source is the first synonym's, so a value set
                // only through a secondary synonym (a static
                // log.retention.hours) reports DEFAULT_CONFIG.
                let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
                ConfigEntry {
                    name: def.name.to_string(),
                    value: if def.sensitive { None } else { value },
                    source,
                    read_only: false,
                    sensitive: def.sensitive,
                    ty: def.ty,
                    doc: def.doc,
                    synonyms,
                }
            })
            .collect()
    }
}

/// One described broker entry. Sensitive keys, and keys Kafka does not
/// know (which Kafka treats as sensitive), show no value anywhere.
fn described(
    name: &str,
    value: Option<String>,
    source: ConfigSource,
    def: Option<&ConfigKey>,
    read_only: bool,
    mut synonyms: Vec<ConfigSynonym>,
) -> ConfigEntry {
    let sensitive = def.is_none_or(|d| d.sensitive || d.ty == ConfigType::Password);
    if sensitive {
        for s in &mut synonyms {
            s.value = None;
        }
    }
    ConfigEntry {
        name: name.to_string(),
        value: if sensitive { None } else { value },
        source,
        read_only,
        sensitive,
        ty: def.map_or(ConfigType::Unknown, |d| d.ty),
        doc: def.map_or("", |d| d.doc),
        synonyms,
    }
}

#[cfg(test)]
mod tests;

/// `max.connections.per.ip.overrides`, checked as Kafka checks it (a zero
/// `max.connections.per.ip` needs overrides).
fn per_ip_overrides(
    explicit: &BTreeMap<String, String>,
    per_ip: i64,
) -> Result<std::collections::HashMap<std::net::IpAddr, usize>, ConfigError> {
    let key = "max.connections.per.ip.overrides";
    let raw = explicit.get(key).map(String::as_str).unwrap_or("");
    let overrides =
        crate::quota::connections::PerIpLimits::parse_overrides(raw).map_err(|reason| {
            ConfigError::InvalidValue {
                key: key.into(),
                value: raw.into(),
                reason,
            }
        })?;
    if per_ip == 0 && overrides.is_empty() {
        return Err(ConfigError::InvalidValue {
            key: "max.connections.per.ip".into(),
            value: "0".into(),
            reason: "max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides property is set.".into(),
        });
    }
    Ok(overrides)
}

/// Listener-prefixed connection keys Sluice reads: the base key of
/// `listener.name.<listener>.<base>`.
fn listener_connection_key(key: &str) -> Option<&'static str> {
    const BASES: &[&str] = &["max.connection.creation.rate", "max.connections"];
    let rest = key.strip_prefix("listener.name.")?;
    let (listener, base) = rest.split_once('.')?;
    (!listener.is_empty())
        .then(|| BASES.iter().find(|b| **b == base).copied())
        .flatten()
}

/// `max.connection.creation.rate` and its listener overrides
/// (`i32::MAX`, Kafka's default, is unlimited).
fn creation_rates(
    explicit: &BTreeMap<String, String>,
    broker: i64,
) -> crate::quota::connections::CreationRateLimits {
    let limited = |v: i64| (v < i64::from(i32::MAX)).then_some(v as f64);
    crate::quota::connections::CreationRateLimits {
        broker: limited(broker),
        listeners: listener_values(explicit, "max.connection.creation.rate")
            .filter_map(|(listener, v)| {
                let rate = limited(v.trim().parse().ok()?)?;
                Some((listener.to_string(), rate))
            })
            .collect(),
    }
}

/// The (listener, value) of every `listener.name.<listener>.<base>` key.
fn listener_values<'a, V: AsRef<str> + 'a>(
    values: &'a BTreeMap<String, V>,
    base: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    values.iter().filter_map(move |(k, v)| {
        let (listener, b) = k.strip_prefix("listener.name.")?.split_once('.')?;
        (b == base && !listener.is_empty()).then(|| (listener, v.as_ref()))
    })
}
