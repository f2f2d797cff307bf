//! The cluster roles of a node and its view of the metadata quorum
//! (issue 16): `process.roles`, `node.id`, `controller.quorum.voters`,
//! `controller.listener.names` and the listener rules KRaft puts on them,
//! checked as Kafka 4.1.2's `KafkaConfig` checks them, into a typed
//! [`KraftConfig`].
//!
//! Without `process.roles` Sluice is one node that is its own controller
//! (today's default, no config needed); setting a quorum key then is a
//! mistake, and refused. Deliberate differences from Kafka 4.1.2:
//! - a voter id listed twice, or a negative one, is refused (Kafka keeps
//!   the last entry of a duplicate id, and fails a negative id later);
//! - `controller.quorum.bootstrap.servers` alone (KIP-853 dynamic quorums)
//!   is refused with that reason: Sluice implements static voters only;
//! - `broker.heartbeat.interval.ms` above `broker.session.timeout.ms` is
//!   refused (Kafka accepts it and fences the broker between heartbeats);
//! - a broker-only node that lists a controller listener in
//!   `advertised.listeners` is refused (Kafka accepts and ignores it; a
//!   combined node may advertise its controller listener, as in Kafka);
//! - `broker.session.timeout.ms` and `broker.heartbeat.interval.ms` must be
//!   at least 1;
//! - every listener, the controller's too, must be PLAINTEXT.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use sluice_controller::ControllerConfig;

use super::{lookup, parse_listeners, parse_value, ConfigError, Listener, Scope, Value};

/// One role of `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessRole {
    Broker,
    Controller,
}

/// The roles one node runs (at least one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRoles {
    pub broker: bool,
    pub controller: bool,
}

impl NodeRoles {
    /// Broker and controller in one process.
    pub const COMBINED: NodeRoles = NodeRoles {
        broker: true,
        controller: true,
    };

    /// Parses a `process.roles` value, with Kafka's errors.
    pub fn parse(raw: &str) -> Result<NodeRoles, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            key: "process.roles".into(),
            value: raw.to_string(),
            reason,
        };
        let mut roles = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let role = match item {
                "broker" => ProcessRole::Broker,
                "controller" => ProcessRole::Controller,
                other => {
                    return Err(invalid(format!(
                        "'{other}' is not a role; a role must be one of: broker, controller"
                    )))
                }
            };
            if roles.contains(&role) {
                return Err(invalid(format!("duplicate role name '{item}'")));
            }
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(invalid(
                "name at least one role (broker, controller), or remove the key to run one node"
                    .into(),
            ));
        }
        Ok(NodeRoles {
            broker: roles.contains(&ProcessRole::Broker),
            controller: roles.contains(&ProcessRole::Controller),
        })
    }
}

impl fmt::Display for NodeRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => f.write_str("broker,controller"),
            (true, false) => f.write_str("broker"),
            _ => f.write_str("controller"),
        }
    }
}

/// One voter of `controller.quorum.voters`: its node id and controller
/// listener address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    /// A host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// `host:port` (IPv6 in brackets).
    pub fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.address())
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

const VOTERS: &str = "controller.quorum.voters";
const BOOTSTRAP: &str = "controller.quorum.bootstrap.servers";
const ENTRY_FORM: &str = "Each entry should be in the form `{id}@{host}:{port}`.";

/// Splits `host:port` (`[v6]:port`); `None` when either part is missing or
/// the port is not a number.
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = match addr.strip_prefix('[') {
        Some(rest) => rest.split_once("]:")?,
        None => addr.rsplit_once(':')?,
    };
    if host.is_empty() || host.contains(['[', ']']) {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// Parses `controller.quorum.voters` (`id@host:port,...`) with Kafka's
/// messages. Ids must be unique and non-negative.
pub fn parse_voters(raw: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: VOTERS.into(),
        value: raw.to_string(),
        reason,
    };
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, addr)) = entry.split_once('@') else {
            return Err(invalid(format!("'{entry}' has no '@'. {ENTRY_FORM}")));
        };
        let id: i32 = id.trim().parse().map_err(|_| {
            invalid(format!(
                "failed to parse voter ID as an integer from '{id}'"
            ))
        })?;
        if id < 0 {
            return Err(invalid(format!("voter id {id} is negative")));
        }
        let (host, port) = split_host_port(addr.trim()).ok_or_else(|| {
            invalid(format!(
                "failed to parse host name and port from entry '{entry}'. {ENTRY_FORM}"
            ))
        })?;
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(format!("voter id {id} appears twice")));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    Ok(voters)
}

/// Parses `controller.quorum.bootstrap.servers` (`host:port,...`).
pub fn parse_bootstrap_servers(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = split_host_port(entry).ok_or_else(|| ConfigError::InvalidValue {
            key: BOOTSTRAP.into(),
            value: raw.to_string(),
            reason: format!(
                "failed to parse host name from '{entry}'. Each entry should be in the form \"{{host}}:{{port}}\""
            ),
        })?;
        out.push(host_port(&host, port));
    }
    Ok(out)
}

/// The metadata quorum as this node is configured to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    /// The static voter set, in configuration order.
    pub voters: Vec<QuorumVoter>,
    /// `controller.quorum.bootstrap.servers` (parsed only; see the module doc).
    pub bootstrap_servers: Vec<String>,
    pub election_timeout_ms: i32,
    pub fetch_timeout_ms: i32,
}

impl QuorumConfig {
    pub fn voter_ids(&self) -> Vec<i32> {
        self.voters.iter().map(|v| v.id).collect()
    }

    pub fn voter(&self, id: i32) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.id == id)
    }
}

/// A node that runs with `process.roles`: its roles and cluster settings,
/// all cross-checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KraftConfig {
    pub roles: NodeRoles,
    pub node_id: i32,
    pub quorum: QuorumConfig,
    /// `controller.listener.names`, upper-cased, in order (never empty).
    pub controller_listener_names: Vec<String>,
    /// This node's controller listeners from `listeners` (controller role only).
    pub controller_listeners: Vec<Listener>,
    /// The listener brokers reach each other on (broker role only).
    pub inter_broker_listener_name: Option<String>,
    pub rack: Option<String>,
    pub broker_session_timeout_ms: i32,
    pub broker_heartbeat_interval_ms: i32,
    pub default_replication_factor: i32,
    pub offsets_topic_replication_factor: i16,
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: the default of topics without an
    /// override, used by the controller.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`, used by the controller.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`, used by the controller.
    pub leader_imbalance_check_interval_seconds: i64,
    /// `metadata.log.dir`, else the first log dir.
    pub metadata_log_dir: PathBuf,
}

/// The value of a broker key: explicit, else the table default (already
/// validated by the caller).
fn value(explicit: &BTreeMap<String, String>, name: &str) -> Option<Value> {
    let def = lookup(Scope::Broker, name).expect("roles keys are in the table");
    match explicit.get(name) {
        Some(raw) => parse_value(def, raw).ok(),
        None => def.default.and_then(|d| parse_value(def, d).ok()),
    }
}

fn long(explicit: &BTreeMap<String, String>, name: &str) -> i64 {
    match value(explicit, name) {
        Some(Value::Long(v)) => v,
        _ => 0,
    }
}

/// An explicit, non-blank value.
fn given<'a>(explicit: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    explicit
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn rule(key: &str, explicit: &BTreeMap<String, String>, reason: String) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: explicit.get(key).cloned().unwrap_or_default(),
        reason,
    }
}

/// The security protocol of each listener name: `listener.security.protocol.map`,
/// where a controller listener missing from the default map is PLAINTEXT (as Kafka).
pub(super) fn protocol_of(
    explicit: &BTreeMap<String, String>,
    controller_names: &[String],
    name: &str,
) -> Option<String> {
    let raw = match value(explicit, "listener.security.protocol.map") {
        Some(Value::Str(s)) => s,
        _ => String::new(),
    };
    let map: BTreeMap<String, String> = raw
        .split(',')
        .filter_map(|e| e.split_once(':'))
        .map(|(a, b)| (a.trim().to_ascii_uppercase(), b.trim().to_ascii_uppercase()))
        .collect();
    match map.get(name) {
        Some(p) => Some(p.clone()),
        None if !explicit.contains_key("listener.security.protocol.map")
            && controller_names.iter().any(|c| c == name) =>
        {
            Some("PLAINTEXT".into())
        }
        None => None,
    }
}

impl KraftConfig {
    /// `controller.quorum.voters` as the transport layer takes them (the
    /// controller channel's targets, DescribeCluster's controller list).
    pub fn quorum_voters(
        &self,
    ) -> Result<sluice_transport::QuorumVoters, sluice_transport::TransportError> {
        sluice_transport::QuorumVoters::new(
            self.quorum
                .voters
                .iter()
                .map(|v| sluice_transport::QuorumVoter {
                    id: v.id,
                    host: v.host.clone(),
                    port: v.port,
                })
                .collect(),
        )
    }

    /// The controller role's settings: Kafka's keys of `config` and of this
    /// cluster view.
    pub fn controller_config(&self, config: &super::BrokerConfig) -> ControllerConfig {
        ControllerConfig {
            default_num_partitions: config.num_partitions,
            default_replication_factor: self.default_replication_factor as i16,
            broker_session_timeout_ms: i64::from(self.broker_session_timeout_ms),
            bootstrap: crate::metadata::records::fresh_bootstrap_records(),
            default_min_insync_replicas: self.min_insync_replicas,
            unclean_leader_election_enable: self.unclean_leader_election_enable,
            auto_leader_rebalance_enable: self.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_ms: self
                .leader_imbalance_check_interval_seconds
                .saturating_mul(1000),
            // Followers replicate (issue 17): a new partition's ISR is every
            // usable replica, as Kafka's, and the leader's high watermark
            // waits for them.
            new_partitions_isr_all_usable: true,
            // KIP-966, on as in a new Kafka 4.1 cluster
            // (eligible.leader.replicas.version=1): an ISR member that
            // leaves below min ISR stays electable (ELR), and a broker back
            // from an unclean shutdown leads from neither.
            eligible_leader_replicas_enabled: true,
            // KIP-599's buckets, on the active controller as in Kafka.
            mutation_quotas: std::sync::Arc::new(
                sluice_controller::quota::mutation::ControllerMutationQuotas::new(
                    config.controller_quota_windows,
                ),
            ),
            ..ControllerConfig::default()
        }
    }

    /// The cluster view of `explicit` keys (each already validated on its
    /// own): `None` without `process.roles` (one node), after checking that
    /// no quorum key asks for a cluster then.
    pub fn from_explicit(
        explicit: &BTreeMap<String, String>,
        log_dirs: &[PathBuf],
    ) -> Result<Option<KraftConfig>, ConfigError> {
        let Some(roles_raw) = explicit.get("process.roles") else {
            single_node_checks(explicit)?;
            return Ok(None);
        };
        let roles = NodeRoles::parse(roles_raw)?;
        if !explicit.contains_key("node.id") {
            return Err(ConfigError::Missing {
                key: "node.id".into(),
                reason: "a node with process.roles needs its own node id".into(),
            });
        }
        let node_id = long(explicit, "node.id") as i32;
        let quorum = quorum(explicit)?;
        let listeners = parse_listeners(
            &explicit
                .get("listeners")
                .cloned()
                .or_else(|| {
                    lookup(Scope::Broker, "listeners").and_then(|k| k.default.map(str::to_string))
                })
                .unwrap_or_default(),
        )
        .map_err(|reason| rule("listeners", explicit, reason))?;
        let controller_names: Vec<String> = given(explicit, "controller.listener.names")
            .unwrap_or_default()
            .split(',')
            .map(|n| n.trim().to_ascii_uppercase())
            .filter(|n| !n.is_empty())
            .collect();
        if controller_names.is_empty() {
            return Err(ConfigError::Missing {
                key: "controller.listener.names".into(),
                reason: format!(
                    "controller.listener.names must contain at least one value when running KRaft (process.roles={roles})"
                ),
            });
        }
        let is_controller = |l: &Listener| controller_names.contains(&l.name);
        for l in &listeners {
            match protocol_of(explicit, &controller_names, &l.name) {
                None => {
                    return Err(rule(
                        "listener.security.protocol.map",
                        explicit,
                        format!("no security protocol defined for listener {}", l.name),
                    ))
                }
                Some(p)
                    if !matches!(
                        p.as_str(),
                        "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
                    ) =>
                {
                    return Err(ConfigError::Unsupported {
                        key: "listeners".into(),
                        reason: super::ssl::unsupported_protocol(l, &p, is_controller(l)),
                    })
                }
                Some(_) => {}
            }
        }
        let controller_listeners: Vec<Listener> = listeners
            .iter()
            .filter(|l| is_controller(l))
            .cloned()
            .collect();
        let voter_ids = quorum.voter_ids();
        let voters_text = format!("{VOTERS}={}", explicit.get(VOTERS).map_or("", |v| v.trim()));
        if roles.controller {
            if !voter_ids.contains(&node_id) {
                return Err(rule(
                    VOTERS,
                    explicit,
                    format!("process.roles contains the 'controller' role, so the node id {node_id} must be one of the voters ({voters_text})"),
                ));
            }
            if controller_listeners.is_empty() {
                return Err(rule(
                    "controller.listener.names",
                    explicit,
                    "controller.listener.names must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role".into(),
                ));
            }
        } else {
            if voter_ids.contains(&node_id) {
                return Err(rule(
                    VOTERS,
                    explicit,
                    format!("process.roles contains just the 'broker' role, so the node id {node_id} must not be one of the voters ({voters_text})"),
                ));
            }
            if !controller_listeners.is_empty() {
                return Err(rule(
                    "controller.listener.names",
                    explicit,
                    "controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role".into(),
                ));
            }
        }
        if !roles.broker && controller_listeners.len() != listeners.len() {
            return Err(rule(
                "listeners",
                explicit,
                "the listeners config must only contain KRaft controller listeners from controller.listener.names when process.roles=controller".into(),
            ));
        }
        let inter_broker_listener_name = if roles.broker {
            Some(inter_broker_listener(
                explicit,
                &listeners,
                &controller_names,
            )?)
        } else {
            None
        };
        if roles.broker {
            advertised_checks(explicit, &listeners, &controller_names, roles)?;
        }
        let session = long(explicit, "broker.session.timeout.ms") as i32;
        let heartbeat = long(explicit, "broker.heartbeat.interval.ms") as i32;
        if heartbeat > session {
            return Err(rule(
                "broker.heartbeat.interval.ms",
                explicit,
                format!("must not exceed broker.session.timeout.ms ({session}): a broker would be fenced between two heartbeats"),
            ));
        }
        let metadata_log_dir = match given(explicit, "metadata.log.dir") {
            Some(d) => PathBuf::from(d),
            None => log_dirs.first().cloned().unwrap_or_default(),
        };
        Ok(Some(KraftConfig {
            roles,
            node_id,
            quorum,
            controller_listener_names: controller_names,
            controller_listeners,
            inter_broker_listener_name,
            rack: given(explicit, "broker.rack").map(str::to_string),
            broker_session_timeout_ms: session,
            broker_heartbeat_interval_ms: heartbeat,
            default_replication_factor: long(explicit, "default.replication.factor") as i32,
            offsets_topic_replication_factor: long(explicit, "offsets.topic.replication.factor")
                as i16,
            min_insync_replicas: long(explicit, "min.insync.replicas") as i32,
            unclean_leader_election_enable: matches!(
                value(explicit, "unclean.leader.election.enable"),
                Some(Value::Bool(true))
            ),
            auto_leader_rebalance_enable: matches!(
                value(explicit, "auto.leader.rebalance.enable"),
                Some(Value::Bool(true))
            ),
            leader_imbalance_check_interval_seconds: long(
                explicit,
                "leader.imbalance.check.interval.seconds",
            ),
            metadata_log_dir,
        }))
    }
}

fn quorum(explicit: &BTreeMap<String, String>) -> Result<QuorumConfig, ConfigError> {
    let voters = parse_voters(given(explicit, VOTERS).unwrap_or_default())?;
    let bootstrap_servers =
        parse_bootstrap_servers(given(explicit, BOOTSTRAP).unwrap_or_default())?;
    if voters.is_empty() {
        if bootstrap_servers.is_empty() {
            return Err(ConfigError::Missing {
                key: VOTERS.into(),
                reason: format!("if using process.roles, either {BOOTSTRAP} must contain the set of bootstrap controllers or {VOTERS} must contain a parseable set of controllers"),
            });
        }
        return Err(ConfigError::Unsupported {
            key: BOOTSTRAP.into(),
            reason: format!("{BOOTSTRAP} without {VOTERS} asks for a dynamic quorum (KIP-853), which Sluice does not implement; list the controllers in {VOTERS} (id@host:port,...)"),
        });
    }
    Ok(QuorumConfig {
        voters,
        bootstrap_servers,
        election_timeout_ms: long(explicit, "controller.quorum.election.timeout.ms") as i32,
        fetch_timeout_ms: long(explicit, "controller.quorum.fetch.timeout.ms") as i32,
    })
}

/// `inter.broker.listener.name`, or the first non-controller listener.
fn inter_broker_listener(
    explicit: &BTreeMap<String, String>,
    listeners: &[Listener],
    controller_names: &[String],
) -> Result<String, ConfigError> {
    let broker_listeners: Vec<&str> = listeners
        .iter()
        .filter(|l| !controller_names.contains(&l.name))
        .map(|l| l.name.as_str())
        .collect();
    let Some(first) = broker_listeners.first() else {
        return Err(rule(
            "listeners",
            explicit,
            "there must be at least one broker listener. Perhaps all listeners appear in controller.listener.names?".into(),
        ));
    };
    let by_protocol = given(explicit, "security.inter.broker.protocol");
    let name = match (given(explicit, "inter.broker.listener.name"), by_protocol) {
        (Some(_), Some(_)) => {
            return Err(rule(
                "security.inter.broker.protocol",
                explicit,
                "only one of inter.broker.listener.name and security.inter.broker.protocol should be set".into(),
            ))
        }
        // As Kafka's `ListenerName.forSecurityProtocol`: the listener
        // named after the protocol.
        (None, Some(p)) => p.to_ascii_uppercase(),
        (Some(n), None) => n.to_ascii_uppercase(),
        (None, None) => return Ok(first.to_string()),
    };
    if !broker_listeners.contains(&name.as_str()) {
        return Err(rule(
            "inter.broker.listener.name",
            explicit,
            format!(
                "must be a broker listener defined in listeners (not a controller listener). The valid options based on currently configured listeners are {}",
                broker_listeners.join(",")
            ),
        ));
    }
    Ok(name)
}

/// A broker advertises no controller listener to clients; a broker-only
/// node has no controller listener to advertise at all.
fn advertised_checks(
    explicit: &BTreeMap<String, String>,
    listeners: &[Listener],
    controller_names: &[String],
    roles: NodeRoles,
) -> Result<(), ConfigError> {
    let Some(raw) = given(explicit, "advertised.listeners") else {
        return Ok(());
    };
    let advertised = parse_listeners(raw).map_err(|r| rule("advertised.listeners", explicit, r))?;
    if !roles.controller {
        if let Some(l) = advertised
            .iter()
            .find(|l| controller_names.contains(&l.name))
        {
            return Err(rule(
                "advertised.listeners",
                explicit,
                format!("{l} is a controller listener, but this node has no controller role: a broker-only node must not advertise controller listeners"),
            ));
        }
    }
    let unknown: Vec<&str> = advertised
        .iter()
        .map(|l| l.name.as_str())
        .filter(|n| !listeners.iter().any(|l| l.name == *n))
        .collect();
    if !unknown.is_empty() {
        return Err(rule(
            "advertised.listeners",
            explicit,
            format!(
                "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Not in listeners: {}. The valid options based on the current configuration are {}",
                unknown.join(","),
                listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",")
            ),
        ));
    }
    if advertised
        .iter()
        .all(|l| controller_names.contains(&l.name))
    {
        return Err(rule(
            "advertised.listeners",
            explicit,
            "there must be at least one broker advertised listener. Perhaps all listeners appear in controller.listener.names?".into(),
        ));
    }
    Ok(())
}

/// One node (no `process.roles`): the quorum keys would be ignored, so
/// they are refused rather than silently dropped.
fn single_node_checks(explicit: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for key in [VOTERS, BOOTSTRAP] {
        if given(explicit, key).is_some() {
            return Err(ConfigError::InvalidValue {
                key: key.into(),
                value: explicit[key].clone(),
                reason: "set without process.roles: without it Sluice is one node that is its own controller; set process.roles (e.g. broker,controller) and node.id to join a quorum, or remove this key".into(),
            });
        }
    }
    if long(explicit, "default.replication.factor") != 1 {
        return Err(ConfigError::InvalidValue {
            key: "default.replication.factor".into(),
            value: explicit
                .get("default.replication.factor")
                .cloned()
                .unwrap_or_default(),
            reason: "without process.roles Sluice is one node: only 1 is valid".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
