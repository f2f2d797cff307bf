//! Each rule of `roles.rs` against what Kafka 4.1.2 says (its message,
//! taken from `kafka.tools.StorageTool format` run on the same config, is
//! quoted in the test) and the deliberate differences.

use super::*;
use crate::config::BrokerConfig;

/// A valid combined node 1 of a 3-voter quorum.
const COMBINED: &[(&str, &str)] = &[
    ("process.roles", "broker,controller"),
    ("node.id", "1"),
    (
        "controller.quorum.voters",
        "1@127.0.0.1:9093,2@127.0.0.1:9094,3@[::1]:9095",
    ),
    (
        "listeners",
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    ),
    ("controller.listener.names", "CONTROLLER"),
];

/// `base` with `changes` applied (an empty value removes the key).
fn config(base: &[(&str, &str)], changes: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    let mut pairs: Vec<(&str, &str)> = base
        .iter()
        .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        .copied()
        .collect();
    pairs.extend(changes.iter().filter(|(_, v)| !v.is_empty()).copied());
    BrokerConfig::with_overrides(&pairs)
}

fn kraft(base: &[(&str, &str)], changes: &[(&str, &str)]) -> KraftConfig {
    config(base, changes)
        .unwrap_or_else(|e| panic!("{changes:?}: {e}"))
        .kraft
        .expect("process.roles is set")
}

/// Asserts the config is refused naming `key`, with `fragment` in the message.
fn refused(base: &[(&str, &str)], changes: &[(&str, &str)], key: &str, fragment: &str) {
    let err = config(base, changes).expect_err(&format!("{changes:?} must be refused"));
    assert_eq!(err.key(), Some(key), "{changes:?}: {err}");
    let text = err.to_string();
    assert!(
        text.contains(fragment),
        "{changes:?}: '{text}' lacks '{fragment}'"
    );
}

#[test]
fn no_process_roles_is_one_node_as_before() {
    let c = BrokerConfig::with_overrides(&[]).unwrap();
    assert!(c.kraft.is_none());
    assert_eq!(c.node_id, 1);
    // The quorum keys need process.roles.
    refused(
        &[],
        &[("controller.quorum.voters", "1@h:9093")],
        "controller.quorum.voters",
        "without process.roles",
    );
    refused(
        &[],
        &[("controller.quorum.bootstrap.servers", "h:9093")],
        "controller.quorum.bootstrap.servers",
        "without process.roles",
    );
    refused(
        &[],
        &[("default.replication.factor", "3")],
        "default.replication.factor",
        "only 1 is valid",
    );
    // Broker-side keys are accepted in either mode.
    let c = BrokerConfig::with_overrides(&[("broker.rack", "r1"), ("min.insync.replicas", "2")])
        .unwrap();
    assert!(c.kraft.is_none());
}

#[test]
fn combined_node_gives_the_typed_view_with_kafka_defaults() {
    let k = kraft(COMBINED, &[]);
    assert_eq!(k.roles, NodeRoles::COMBINED);
    assert_eq!(k.roles.to_string(), "broker,controller");
    assert_eq!(k.node_id, 1);
    assert_eq!(k.quorum.voter_ids(), vec![1, 2, 3]);
    assert_eq!(k.quorum.voter(3).unwrap().address(), "[::1]:9095");
    assert_eq!(k.quorum.voters[0].to_string(), "1@127.0.0.1:9093");
    assert_eq!(k.quorum.election_timeout_ms, 1000);
    assert_eq!(k.quorum.fetch_timeout_ms, 2000);
    assert_eq!(k.controller_listener_names, vec!["CONTROLLER".to_string()]);
    assert_eq!(
        k.controller_listeners[0].to_string(),
        "CONTROLLER://127.0.0.1:9093"
    );
    assert_eq!(k.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
    assert_eq!(k.rack, None);
    assert_eq!(k.broker_session_timeout_ms, 1200);
    assert_eq!(k.broker_heartbeat_interval_ms, 200);
    assert_eq!(k.default_replication_factor, 1);
    assert_eq!(k.offsets_topic_replication_factor, 3);
    assert_eq!(k.min_insync_replicas, 1);
    assert!(k.auto_leader_rebalance_enable);
    assert_eq!(k.leader_imbalance_check_interval_seconds, 300);
    assert_eq!(k.metadata_log_dir, PathBuf::from("./data"));
    let k = kraft(
        COMBINED,
        &[
            ("auto.leader.rebalance.enable", "false"),
            ("leader.imbalance.check.interval.seconds", "2"),
        ],
    );
    assert!(!k.auto_leader_rebalance_enable);
    assert_eq!(k.leader_imbalance_check_interval_seconds, 2);
    refused(
        COMBINED,
        &[("leader.imbalance.check.interval.seconds", "0")],
        "leader.imbalance.check.interval.seconds",
        "",
    );
    // The controller listener is neither bound by the broker nor advertised.
    let c = config(COMBINED, &[]).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].name, "PLAINTEXT");

    let k = kraft(
        COMBINED,
        &[
            ("broker.rack", "rack-a"),
            ("default.replication.factor", "3"),
            ("min.insync.replicas", "2"),
            ("broker.session.timeout.ms", "6000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("controller.quorum.election.timeout.ms", "300"),
            ("log.dirs", "/d/a,/d/b"),
            ("metadata.log.dir", "/d/meta"),
        ],
    );
    assert_eq!(k.rack.as_deref(), Some("rack-a"));
    assert_eq!(k.default_replication_factor, 3);
    assert_eq!(k.min_insync_replicas, 2);
    assert_eq!(k.broker_session_timeout_ms, 6000);
    assert_eq!(k.quorum.election_timeout_ms, 300);
    assert_eq!(k.metadata_log_dir, PathBuf::from("/d/meta"));
    assert_eq!(
        kraft(COMBINED, &[("log.dirs", "/d/a,/d/b")]).metadata_log_dir,
        PathBuf::from("/d/a")
    );
}

#[test]
fn process_roles_values() {
    // Kafka: "Invalid value foo for configuration process.roles: String must be one of: broker, controller"
    refused(
        COMBINED,
        &[("process.roles", "broker,foo")],
        "process.roles",
        "must be one of: broker, controller",
    );
    // Kafka: "Duplicate role names found in `process.roles`"
    refused(
        COMBINED,
        &[("process.roles", "broker,broker")],
        "process.roles",
        "duplicate role",
    );
    // Kafka: "The kafka configuration file appears to be for a legacy cluster."
    refused(
        COMBINED,
        &[("process.roles", " ")],
        "process.roles",
        "at least one role",
    );
    assert_eq!(
        NodeRoles::parse("controller , broker").unwrap(),
        NodeRoles::COMBINED
    );
}

#[test]
fn node_id_is_required_with_process_roles() {
    // Kafka: Missing required configuration "node.id" which has no default value.
    refused(
        COMBINED,
        &[("node.id", "")],
        "node.id",
        "missing required configuration 'node.id'",
    );
}

#[test]
fn voters_parse_with_kafkas_errors() {
    // Kafka: "If using process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap controllers or controller.quorum.voters must contain a parseable set of controllers."
    refused(
        COMBINED,
        &[("controller.quorum.voters", "")],
        "controller.quorum.voters",
        "must contain a parseable set of controllers",
    );
    // Kafka: "Failed to parse host name from entry 1@127.0.0.1 for the configuration controller.quorum.voters. Each entry should be in the form `{id}@{host}:{port}`."
    refused(
        COMBINED,
        &[("controller.quorum.voters", "1@127.0.0.1")],
        "controller.quorum.voters",
        "Each entry should be in the form `{id}@{host}:{port}`",
    );
    refused(
        COMBINED,
        &[("controller.quorum.voters", "1@127.0.0.1:abc")],
        "controller.quorum.voters",
        "failed to parse host name and port from entry '1@127.0.0.1:abc'",
    );
    refused(
        COMBINED,
        &[("controller.quorum.voters", "1@:9093")],
        "controller.quorum.voters",
        "failed to parse host name",
    );
    // Kafka: "Invalid configuration value for controller.quorum.voters. Each entry should be in the form `{id}@{host}:{port}`."
    refused(
        COMBINED,
        &[("controller.quorum.voters", "1:127.0.0.1:9093")],
        "controller.quorum.voters",
        "has no '@'",
    );
    // Kafka: "Failed to parse voter ID as an integer from x"
    refused(
        COMBINED,
        &[("controller.quorum.voters", "x@127.0.0.1:9093")],
        "controller.quorum.voters",
        "failed to parse voter ID as an integer from 'x'",
    );
    // Differences: Kafka keeps the last of a duplicate id, and accepts -1 here.
    refused(
        COMBINED,
        &[("controller.quorum.voters", "1@h:9093,1@h:9094")],
        "controller.quorum.voters",
        "voter id 1 appears twice",
    );
    refused(
        COMBINED,
        &[("controller.quorum.voters", "-1@h:9093")],
        "controller.quorum.voters",
        "negative",
    );
    let voters = parse_voters(" 1@a:1 , 2@[fe80::1]:2 ").unwrap();
    assert_eq!(voters[1].host, "fe80::1");
    assert_eq!(voters[1].to_string(), "2@[fe80::1]:2");
}

#[test]
fn bootstrap_servers_alone_is_refused_as_kip_853() {
    // Kafka formats it only with --standalone/--initial-controllers (dynamic quorum).
    refused(
        COMBINED,
        &[
            ("controller.quorum.voters", ""),
            ("controller.quorum.bootstrap.servers", "127.0.0.1:9093"),
        ],
        "controller.quorum.bootstrap.servers",
        "dynamic quorum (KIP-853), which Sluice does not implement",
    );
    // Kafka: Failed to parse host name from 127.0.0.1 for the configuration controller.quorum.bootstrap.servers. Each entry should be in the form "{host}:{port}"
    refused(
        COMBINED,
        &[("controller.quorum.bootstrap.servers", "127.0.0.1")],
        "controller.quorum.bootstrap.servers",
        "Each entry should be in the form \"{host}:{port}\"",
    );
    // With voters, it is parsed and kept (as Kafka accepts both).
    let k = kraft(
        COMBINED,
        &[(
            "controller.quorum.bootstrap.servers",
            "127.0.0.1:9093, [::1]:9094",
        )],
    );
    assert_eq!(
        k.quorum.bootstrap_servers,
        vec!["127.0.0.1:9093", "[::1]:9094"]
    );
}

#[test]
fn a_controller_is_a_voter_and_a_broker_only_node_is_not() {
    // Kafka: "If process.roles contains the 'controller' role, the node id 4 must be included in the set of voters controller.quorum.voters=Set(1)"
    refused(
        COMBINED,
        &[("node.id", "4")],
        "controller.quorum.voters",
        "the node id 4 must be one of the voters",
    );
    // Kafka: "If process.roles contains just the 'broker' role, the node id 1 must not be included in the set of voters controller.quorum.voters=Set(1)"
    let broker_only = [
        ("process.roles", "broker"),
        ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    ];
    refused(
        COMBINED,
        &broker_only,
        "controller.quorum.voters",
        "the node id 1 must not be one of the voters",
    );
    let k = kraft(
        COMBINED,
        &[broker_only[0], broker_only[1], ("node.id", "4")],
    );
    assert!(k.roles.broker && !k.roles.controller);
    assert!(k.controller_listeners.is_empty());
}

#[test]
fn controller_listener_rules() {
    // Kafka: "controller.listener.names must contain at least one value when running KRaft with just the broker role"
    refused(
        COMBINED,
        &[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://h:1"),
            ("controller.listener.names", ""),
        ],
        "controller.listener.names",
        "must contain at least one value",
    );
    // Kafka: "controller.listener.names must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role"
    refused(
        COMBINED,
        &[("listeners", "PLAINTEXT://h:9092")],
        "controller.listener.names",
        "at least one value appearing in the 'listeners'",
    );
    // Kafka: "controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role"
    refused(
        COMBINED,
        &[("process.roles", "broker"), ("node.id", "4")],
        "controller.listener.names",
        "must not contain a value appearing in the 'listeners'",
    );
    // Kafka: "The listeners config must only contain KRaft controller listeners from controller.listener.names when process.roles=controller"
    refused(
        COMBINED,
        &[("process.roles", "controller")],
        "listeners",
        "must only contain KRaft controller listeners",
    );
    let k = kraft(
        COMBINED,
        &[
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
        ],
    );
    assert_eq!(k.inter_broker_listener_name, None);
    assert!(config(
        COMBINED,
        &[
            ("process.roles", "controller"),
            ("listeners", "CONTROLLER://127.0.0.1:9093")
        ]
    )
    .unwrap()
    .listeners
    .is_empty());
    // Kafka: "There must be at least one broker advertised listener. Perhaps all listeners appear in controller.listener.names?"
    refused(
        COMBINED,
        &[("listeners", "CONTROLLER://127.0.0.1:9093")],
        "listeners",
        "at least one broker listener",
    );
}

#[test]
fn security_protocol_of_every_listener() {
    // A controller listener missing from the default map is PLAINTEXT (Kafka formats this).
    let k = kraft(
        COMBINED,
        &[
            ("listeners", "PLAINTEXT://h:1,CTRL://h:2"),
            ("controller.listener.names", "CTRL"),
            ("controller.quorum.voters", "1@h:2"),
        ],
    );
    assert_eq!(k.controller_listeners[0].name, "CTRL");
    // Kafka: "No security protocol defined for listener CTRL" when the map is explicit.
    refused(
        COMBINED,
        &[
            ("listeners", "PLAINTEXT://h:1,CTRL://h:2"),
            ("controller.listener.names", "CTRL"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT"),
        ],
        "listener.security.protocol.map",
        "no security protocol defined for listener CTRL",
    );
    // A secured controller listener (issue 20): the node dials the other
    // voters there, so it needs a truststore, and serves it with a keystore.
    let ssl = (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
    );
    refused(
        COMBINED,
        &[ssl],
        "ssl.truststore.location",
        "needs a truststore",
    );
    let stores = [
        ssl,
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", "/ca.pem"),
    ];
    let c = config(COMBINED, &stores).unwrap();
    let security = c.node_security.unwrap();
    assert!(security.controller_client.ssl.is_some());
    assert!(security.controller_server.unwrap().security.ssl.is_some());
    // A broker-only node cannot reach secured controllers yet (its
    // metadata observer's listener is plaintext).
    refused(
        COMBINED,
        &[
            &stores[..],
            &[
                ("process.roles", "broker"),
                ("node.id", "4"),
                ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ],
        ]
        .concat(),
        "listener.security.protocol.map",
        "broker-only node",
    );
    refused(
        COMBINED,
        &[(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:KERBEROS",
        )],
        "listeners",
        "only PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL are supported",
    );
}

#[test]
fn inter_broker_listener_rules() {
    let k = kraft(
        COMBINED,
        &[
            (
                "listeners",
                "PLAINTEXT://h:1,INTERNAL://h:3,CONTROLLER://h:2",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "internal"),
        ],
    );
    assert_eq!(k.inter_broker_listener_name.as_deref(), Some("INTERNAL"));
    // Kafka: "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are PLAINTEXT"
    refused(
        COMBINED,
        &[("inter.broker.listener.name", "CONTROLLER")],
        "inter.broker.listener.name",
        "The valid options based on currently configured listeners are PLAINTEXT",
    );
    // Kafka: "Listener with name INTERNAL defined in inter.broker.listener.name not found in listener.security.protocol.map."
    refused(
        COMBINED,
        &[("inter.broker.listener.name", "INTERNAL")],
        "inter.broker.listener.name",
        "must be a broker listener defined in listeners",
    );
}

#[test]
fn advertised_listener_rules() {
    // Kafka 4.1.2 lets a combined node advertise its controller listener; clients never see it.
    let c = config(
        COMBINED,
        &[(
            "advertised.listeners",
            "PLAINTEXT://broker1:9092,CONTROLLER://broker1:9093",
        )],
    )
    .unwrap();
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(
        c.advertised_listeners[0].to_string(),
        "PLAINTEXT://broker1:9092"
    );
    // Difference: a broker-only node advertising one is refused (Kafka ignores it).
    refused(
        COMBINED,
        &[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://h:1"),
            ("advertised.listeners", "PLAINTEXT://h:1,CONTROLLER://h:2"),
        ],
        "advertised.listeners",
        "a broker-only node must not advertise controller listeners",
    );
    // Kafka: "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Found PLAINTEXT,OTHER. The valid options based on the current configuration are PLAINTEXT,CONTROLLER"
    refused(
        COMBINED,
        &[("advertised.listeners", "PLAINTEXT://h:1,OTHER://h:2")],
        "advertised.listeners",
        "The valid options based on the current configuration are PLAINTEXT,CONTROLLER",
    );
}

#[test]
fn timeouts_and_factors() {
    // Kafka: Invalid value -1 for configuration controller.quorum.fetch.timeout.ms: Value must be at least 0
    refused(
        COMBINED,
        &[("controller.quorum.fetch.timeout.ms", "-1")],
        "controller.quorum.fetch.timeout.ms",
        "at least 0",
    );
    refused(
        COMBINED,
        &[("controller.quorum.election.timeout.ms", "-5")],
        "controller.quorum.election.timeout.ms",
        "at least 0",
    );
    // Kafka: Invalid value 0 for configuration offsets.topic.replication.factor: Value must be at least 1
    refused(
        COMBINED,
        &[("offsets.topic.replication.factor", "0")],
        "offsets.topic.replication.factor",
        "at least 1",
    );
    refused(
        COMBINED,
        &[("min.insync.replicas", "0")],
        "min.insync.replicas",
        "at least 1",
    );
    refused(
        COMBINED,
        &[("default.replication.factor", "0")],
        "default.replication.factor",
        "at least 1",
    );
    // Difference: Kafka accepts a heartbeat interval above the session timeout.
    refused(
        COMBINED,
        &[("broker.heartbeat.interval.ms", "10000")],
        "broker.heartbeat.interval.ms",
        "must not exceed broker.session.timeout.ms (1200)",
    );
}

/// A cluster node's client listeners may use SASL (over TLS too); the
/// inter-broker and controller paths stay PLAINTEXT.
#[test]
fn sasl_client_listeners_in_a_cluster() {
    let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret";"#;
    let sasl = [
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SASL_PLAINTEXT://127.0.0.1:9094,SASL_SSL://127.0.0.1:9095",
        ),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.sasl_plaintext.plain.sasl.jaas.config", jaas),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", jaas),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", "/k.pem"),
        ("inter.broker.listener.name", "PLAINTEXT"),
    ];
    let c = config(COMBINED, &sasl).unwrap();
    assert!(c.sasl_listeners.contains_key("SASL_PLAINTEXT"));
    assert!(c.sasl_listeners.contains_key("SASL_SSL"));
    let k = c.kraft.unwrap();
    assert_eq!(k.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
    // Inter-broker traffic over SASL_SSL (issue 20) needs the mechanism
    // (Kafka's default GSSAPI is not implemented), a truststore and the
    // node's own username and password in the listener's JAAS entry.
    let over_sasl_ssl = [&sasl[..], &[("inter.broker.listener.name", "SASL_SSL")]].concat();
    refused(
        COMBINED,
        &over_sasl_ssl,
        "ssl.truststore.location",
        "truststore",
    );
    let with_trust = [
        &over_sasl_ssl[..],
        &[
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
        ],
    ]
    .concat();
    refused(
        COMBINED,
        &with_trust,
        "sasl.mechanism.inter.broker.protocol",
        "GSSAPI",
    );
    let with_mechanism = [
        &with_trust[..],
        &[("sasl.mechanism.inter.broker.protocol", "PLAIN")],
    ]
    .concat();
    refused(
        COMBINED,
        &with_mechanism,
        "listener.name.sasl_ssl.plain.sasl.jaas.config",
        "username",
    );
    let login = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret";"#;
    let c = config(
        COMBINED,
        &[
            &with_mechanism[..],
            &[("listener.name.sasl_ssl.plain.sasl.jaas.config", login)],
        ]
        .concat(),
    )
    .unwrap();
    let inter = c.node_security.unwrap().inter_broker.unwrap();
    assert_eq!(inter.listener, "SASL_SSL");
    assert_eq!(inter.sasl.unwrap().user, "admin");
    // Kafka: the mechanism must be one the listener enables.
    let scram = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";"#;
    refused(
        COMBINED,
        &[
            &with_trust[..],
            &[
                ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
                (
                    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
                    scram,
                ),
            ],
        ]
        .concat(),
        "sasl.mechanism.inter.broker.protocol",
        "must be included in sasl.enabled.mechanisms",
    );
    // security.inter.broker.protocol names the listener called after it;
    // with inter.broker.listener.name too it is refused, as in Kafka.
    let c = config(COMBINED, &[("security.inter.broker.protocol", "PLAINTEXT")]).unwrap();
    assert_eq!(
        c.kraft.unwrap().inter_broker_listener_name.as_deref(),
        Some("PLAINTEXT")
    );
    refused(
        COMBINED,
        &[
            ("security.inter.broker.protocol", "PLAINTEXT"),
            ("inter.broker.listener.name", "PLAINTEXT"),
        ],
        "security.inter.broker.protocol",
        "only one of",
    );
}
