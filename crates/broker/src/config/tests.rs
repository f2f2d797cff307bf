use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_table_default_parses_and_validates() {
    for key in CONFIG_TABLE {
        if let Some(d) = key.default {
            parse_value(key, d)
                .unwrap_or_else(|e| panic!("default of {} does not validate: {e}", key.name));
        }
        assert!(!key.doc.is_empty(), "{} has no doc", key.name);
    }
}

#[test]
fn table_names_are_unique_and_kafka_or_sluice() {
    let mut seen = std::collections::HashSet::new();
    for key in CONFIG_TABLE {
        assert!(seen.insert((key.scope, key.name)), "{} twice", key.name);
        let kafka_list = match key.scope {
            Scope::Broker => kafka_keys::KAFKA_BROKER_KEYS,
            Scope::Topic => kafka_keys::KAFKA_TOPIC_KEYS,
        };
        assert!(
            key.name.starts_with("sluice.") || kafka_list.contains(&key.name),
            "{} is neither a Kafka key nor sluice.-prefixed",
            key.name
        );
    }
}

#[test]
fn kafka_key_lists_are_sorted_for_binary_search() {
    assert!(kafka_keys::KAFKA_BROKER_KEYS
        .windows(2)
        .all(|w| w[0] < w[1]));
    assert!(kafka_keys::KAFKA_TOPIC_KEYS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn topic_synonyms_are_broker_keys_kafka_knows() {
    // Kafka's topic keys without a broker-level synonym.
    const NO_SYNONYM: &[&str] = &[
        "follower.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
    ];
    for key in table::keys(Scope::Topic) {
        assert!(
            !key.synonyms.is_empty() || NO_SYNONYM.contains(&key.name),
            "{} has no broker synonym",
            key.name
        );
        for (syn, _) in key.synonyms {
            assert!(
                lookup(Scope::Broker, syn).is_some(),
                "{syn} (synonym of {}) is not in the table, so its value would be ignored",
                key.name
            );
            assert!(
                kafka_keys::KAFKA_BROKER_KEYS.contains(syn),
                "{syn} (synonym of {}) is not a Kafka broker key",
                key.name
            );
        }
    }
}

#[test]
fn embedded_defaults() {
    let c = BrokerConfig::default();
    assert_eq!(c.node_id, 1);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    assert!(c.auto_create_topics_enable);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.log_config, LogConfig::default());
    assert!(c.unimplemented_keys.is_empty());
}

#[test]
fn table_topic_defaults_match_storage_defaults() {
    // The storage LogConfig::default() documents Kafka 4.1 defaults; the table must agree.
    let c = BrokerConfig::default();
    assert_eq!(
        c.topic_log_config(&BTreeMap::new()).unwrap(),
        LogConfig::default()
    );
}

#[test]
fn overrides_apply_in_order_and_derive_topic_defaults() {
    let c = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", "/tmp/a, /tmp/b"),
        ("num.partitions", "3"),
        ("num.partitions", "4"),
        ("log.retention.hours", "1"),
        ("log.roll.ms", "5000"),
        ("log.flush.interval.messages", "1"),
        ("message.max.bytes", "2000000"),
        ("log.message.timestamp.type", "LogAppendTime"),
    ])
    .unwrap();
    assert_eq!(c.num_partitions, 4);
    assert_eq!(c.listeners[0].port, 0);
    assert_eq!(
        c.log_dirs,
        vec![PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]
    );
    assert_eq!(c.log_config.retention_ms, 3_600_000);
    assert_eq!(c.log_config.segment_ms, 5000);
    assert_eq!(c.log_config.flush_messages, 1);
    assert_eq!(c.log_config.max_message_bytes, 2_000_000);
    assert_eq!(
        c.log_config.message_timestamp_type,
        TimestampType::LogAppendTime
    );
}

#[test]
fn retention_precedence_ms_then_minutes_then_hours() {
    let c = BrokerConfig::with_overrides(&[
        ("log.retention.hours", "1"),
        ("log.retention.minutes", "2"),
    ])
    .unwrap();
    assert_eq!(c.log_config.retention_ms, 120_000);
    let c =
        BrokerConfig::with_overrides(&[("log.retention.minutes", "2"), ("log.retention.ms", "-1")])
            .unwrap();
    assert_eq!(c.log_config.retention_ms, -1);
}

#[test]
fn unknown_key_refuses_start_naming_it() {
    let err = BrokerConfig::with_overrides(&[("no.such.key", "1")]).unwrap_err();
    assert_eq!(err.key(), Some("no.such.key"));
    assert!(err.to_string().contains("no.such.key"));
}

#[test]
fn invalid_values_refuse_start_naming_the_key() {
    for (k, v) in [
        ("num.partitions", "0"),
        ("num.partitions", "abc"),
        ("node.id", "-1"),
        ("auto.create.topics.enable", "yes"),
        ("log.segment.bytes", "1000"),
        ("log.message.timestamp.type", "Whenever"),
        ("listeners", "localhost:9092"),
        ("listeners", "PLAINTEXT://:99999"),
        ("listeners", "GSSAPI_TLS://:9093"),
        ("socket.request.max.bytes", "3000000000"),
        ("log.cleanup.policy", "shred"),
    ] {
        let err = BrokerConfig::with_overrides(&[(k, v)]).unwrap_err();
        assert_eq!(err.key(), Some(k), "{k}={v}: {err}");
    }
}

#[test]
fn kafka_server_properties_is_accepted_with_unimplemented_keys_listed() {
    // The shape of Kafka 4.1's config/server.properties (KRaft combined mode).
    let text = "\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    // Kafka's file asks for a dynamic quorum (KIP-853), which Sluice refuses by name.
    std::fs::write(&path, text).unwrap();
    let err = BrokerConfig::from_properties(Some(&path), &[]).unwrap_err();
    assert_eq!(
        err.key(),
        Some("controller.quorum.bootstrap.servers"),
        "{err}"
    );
    assert!(err.to_string().contains("KIP-853"), "{err}");
    // The same file with the static voter set is accepted.
    let text = text.replace(
        "controller.quorum.bootstrap.servers=localhost:9093",
        "controller.quorum.voters=1@localhost:9093",
    );
    let text = text.as_str();
    std::fs::write(&path, text).unwrap();
    let c = BrokerConfig::from_properties(
        Some(&path),
        &[BrokerConfig::parse_override("num.partitions=2").unwrap()],
    )
    .unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://:9092");
    assert_eq!(c.listeners[0].bind_addr(), "0.0.0.0:9092");
    assert_eq!(
        c.advertised_listeners[0].to_string(),
        "PLAINTEXT://localhost:9092"
    );
    assert_eq!(c.num_partitions, 2);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kraft-combined-logs")]);
    // every key of the file is either implemented (in the table) or listed once
    for (key, _) in parse_properties(text) {
        let implemented = lookup(Scope::Broker, &key).is_some();
        let listed = c.unimplemented_keys.iter().filter(|k| **k == key).count();
        assert_eq!(listed, usize::from(!implemented), "{key}");
    }
    assert!(c.kraft.is_some());
    for key in ["num.io.threads", "socket.send.buffer.bytes"] {
        assert!(c.unimplemented_keys.iter().any(|k| k == key), "{key}");
    }
}

#[test]
fn advertised_listeners_are_reachable_hosts() {
    // no advertised.listeners and an empty listener host: this machine's name
    let c = BrokerConfig::with_overrides(&[("listeners", "PLAINTEXT://:9092")]).unwrap();
    assert_eq!(c.listeners[0].bind_addr(), "0.0.0.0:9092");
    assert!(!c.advertised_listeners[0].host.is_empty());
    assert_eq!(c.advertised_listeners[0].port, 9092);
    // the meta-address cannot be advertised
    for (k, v) in [
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("advertised.listeners", "PLAINTEXT://0.0.0.0:9092"),
    ] {
        let err = BrokerConfig::with_overrides(&[(k, v)]).unwrap_err();
        assert_eq!(err.key(), Some("advertised.listeners"), "{k}={v}: {err}");
    }
    let c = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://0.0.0.0:9092"),
        ("advertised.listeners", "PLAINTEXT://broker.example:9092"),
    ])
    .unwrap();
    assert_eq!(c.advertised_listeners[0].host, "broker.example");
}

#[test]
fn missing_config_file_names_the_path() {
    let err = BrokerConfig::from_properties(Some(Path::new("/nonexistent/server.properties")), &[])
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/server.properties"));
}

#[test]
fn malformed_override_is_refused() {
    assert!(BrokerConfig::parse_override("novalue").is_err());
    assert!(BrokerConfig::parse_override("=1").is_err());
    assert_eq!(
        BrokerConfig::parse_override("a.b=c=d").unwrap(),
        ("a.b".to_string(), "c=d".to_string())
    );
}

#[test]
fn topic_overrides_produce_log_config() {
    let c = BrokerConfig::default();
    let lc = c
        .topic_log_config(&overrides(&[
            ("retention.ms", "1000"),
            ("segment.bytes", "1048576"),
            ("flush.messages", "1"),
            ("message.timestamp.type", "LogAppendTime"),
            ("preallocate", "true"),
            ("cleanup.policy", "compact,delete"),
        ]))
        .unwrap();
    assert_eq!(lc.retention_ms, 1000);
    assert_eq!(lc.segment_bytes, 1_048_576);
    assert_eq!(lc.flush_messages, 1);
    assert_eq!(lc.message_timestamp_type, TimestampType::LogAppendTime);
    assert!(lc.preallocate);
    // untouched keys keep broker-derived defaults
    assert_eq!(lc.max_message_bytes, c.log_config.max_message_bytes);
}

#[test]
fn compaction_keys_reach_the_log_config() {
    let c = BrokerConfig::with_overrides(&[
        ("log.cleaner.delete.retention.ms", "5000"),
        ("log.cleaner.dedupe.buffer.size", "1048576"),
        ("log.cleaner.io.max.bytes.per.second", "1000000"),
    ])
    .unwrap();
    assert_eq!(c.cleaner.dedupe_buffer_size, 1_048_576);
    assert_eq!(c.cleaner.io_max_bytes_per_second, 1_000_000.0);
    assert!(c.log_cleaner_enable);
    assert_eq!(
        c.log_config.compaction.cleanup_policy,
        sluice_storage::CleanupPolicy::Delete
    );
    let lc = c
        .topic_log_config(&overrides(&[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("min.compaction.lag.ms", "100"),
            ("max.compaction.lag.ms", "200000"),
        ]))
        .unwrap();
    assert_eq!(
        lc.compaction.cleanup_policy,
        sluice_storage::CleanupPolicy::Compact
    );
    assert_eq!(lc.compaction.min_cleanable_dirty_ratio, 0.25);
    assert_eq!(lc.compaction.min_compaction_lag_ms, 100);
    assert_eq!(lc.compaction.max_compaction_lag_ms, 200_000);
    assert_eq!(lc.compaction.delete_retention_ms, 5000);
    let both = c
        .topic_log_config(&overrides(&[("cleanup.policy", "delete,compact")]))
        .unwrap();
    assert_eq!(
        both.compaction.cleanup_policy,
        sluice_storage::CleanupPolicy::CompactDelete
    );
}

#[test]
fn topic_overrides_take_precedence_over_broker_synonyms() {
    let c = BrokerConfig::with_overrides(&[("log.retention.ms", "5000")]).unwrap();
    assert_eq!(c.log_config.retention_ms, 5000);
    let lc = c
        .topic_log_config(&overrides(&[("retention.ms", "7000")]))
        .unwrap();
    assert_eq!(lc.retention_ms, 7000);
}

#[test]
fn unknown_or_invalid_topic_configs_are_rejected_naming_the_key() {
    let c = BrokerConfig::default();
    for (k, v) in [
        ("no.such.config", "1"),
        ("retention.ms", "-5"),
        ("segment.bytes", "100"),
        ("segment.bytes", "x"),
        ("message.timestamp.type", "Now"),
        ("cleanup.policy", ""),
        ("compression.type", "brotli"),
        ("remote.storage.enable", "true"),
        // a broker key is not a topic key
        ("log.retention.ms", "1"),
    ] {
        let err = c.topic_log_config(&overrides(&[(k, v)])).unwrap_err();
        assert_eq!(err.key(), Some(k), "{k}={v}: {err}");
    }
}

#[test]
fn describe_topic_reports_sources_and_synonyms() {
    let c = BrokerConfig::with_overrides(&[("log.retention.hours", "2")]).unwrap();
    let entries = c.describe_topic(&overrides(&[("segment.bytes", "2097152")]));
    let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();

    let seg = get("segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("2097152"));
    assert_eq!(seg.source, ConfigSource::DynamicTopic);
    assert_eq!(seg.synonyms[0].source, ConfigSource::DynamicTopic);
    assert_eq!(seg.synonyms.last().unwrap().name, "log.segment.bytes");

    // Kafka 4.1.2 (checked with kafka-configs against it, static
    // log.retention.hours=2): retention.ms=7200000 synonyms={}, because its
    // synonyms start at log.retention.ms, which is set nowhere; the source
    // of an entry without synonyms is DEFAULT_CONFIG.
    let ret = get("retention.ms");
    assert_eq!(ret.value.as_deref(), Some("7200000"));
    assert_eq!(ret.source, ConfigSource::Default);
    assert!(ret.synonyms.is_empty(), "{:?}", ret.synonyms);
    // With log.retention.ms set, the whole group follows it.
    c.dynamic
        .write()
        .cluster_default
        .insert("log.retention.ms".into(), "60000".into());
    let entries = c.describe_topic(&overrides(&[]));
    let ret = entries.iter().find(|e| e.name == "retention.ms").unwrap();
    assert_eq!(ret.value.as_deref(), Some("60000"));
    assert_eq!(ret.source, ConfigSource::DynamicDefaultBroker);
    let synonyms: Vec<(&str, Option<&str>, ConfigSource)> = ret
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        [
            (
                "log.retention.ms",
                Some("60000"),
                ConfigSource::DynamicDefaultBroker
            ),
            ("log.retention.hours", Some("2"), ConfigSource::StaticBroker),
            ("log.retention.hours", Some("168"), ConfigSource::Default),
        ]
    );
    c.dynamic.write().cluster_default.clear();
    let entries = c.describe_topic(&overrides(&[("segment.bytes", "2097152")]));
    let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();

    let ms = get("max.message.bytes");
    assert_eq!(ms.value.as_deref(), Some("1048588"));
    assert_eq!(ms.source, ConfigSource::Default);
    assert!(!ms.read_only);

    // every topic key is described
    assert_eq!(entries.len(), table::keys(Scope::Topic).count());
}

#[test]
fn describe_broker_reports_static_values() {
    let c = BrokerConfig::with_overrides(&[("num.partitions", "6")]).unwrap();
    let entries = c.describe_broker();
    let np = entries.iter().find(|e| e.name == "num.partitions").unwrap();
    assert_eq!(np.value.as_deref(), Some("6"));
    assert_eq!(np.source, ConfigSource::StaticBroker);
    assert!(np.read_only);
    assert_eq!(np.synonyms.len(), 2);
    let adv = entries
        .iter()
        .find(|e| e.name == "advertised.listeners")
        .unwrap();
    assert_eq!(adv.value.as_deref(), Some("PLAINTEXT://127.0.0.1:9092"));
}

fn arb_value_for(key: &'static ConfigKey) -> BoxedStrategy<String> {
    match (key.ty, key.validator) {
        (ConfigType::Boolean, _) => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        (ConfigType::Int, Validator::AtLeast(min)) => {
            (min..=i32::MAX as i64).prop_map(|v| v.to_string()).boxed()
        }
        (ConfigType::Long, Validator::AtLeast(min)) => {
            (min..=i64::MAX).prop_map(|v| v.to_string()).boxed()
        }
        (ConfigType::Int, Validator::Between(lo, hi))
        | (ConfigType::Long, Validator::Between(lo, hi)) => {
            (lo..=hi).prop_map(|v| v.to_string()).boxed()
        }
        (ConfigType::Int, Validator::Any) => any::<i32>().prop_map(|v| v.to_string()).boxed(),
        (ConfigType::Long, Validator::Any) => any::<i64>().prop_map(|v| v.to_string()).boxed(),
        (ConfigType::Double, Validator::BetweenF(lo, hi)) => {
            (lo..=hi).prop_map(|v| v.to_string()).boxed()
        }
        (_, Validator::OneOf(vals)) => proptest::sample::select(vals.to_vec())
            .prop_map(str::to_string)
            .boxed(),
        (_, Validator::ListOf(vals)) => {
            proptest::sample::subsequence(vals.to_vec(), 1..=vals.len())
                .prop_map(|v| v.join(","))
                .boxed()
        }
        (_, Validator::Listeners) => ("[a-z0-9.]{0,12}", any::<u16>())
            .prop_map(|(h, p)| format!("PLAINTEXT://{h}:{p}"))
            .boxed(),
        (ConfigType::List, Validator::NonEmptyList) => {
            proptest::collection::vec("[a-z0-9/._-]{1,12}", 1..4)
                .prop_map(|v| v.join(","))
                .boxed()
        }
        (ConfigType::String, Validator::Any) | (ConfigType::Password, Validator::Any) => {
            "[a-zA-Z0-9/._:,-]{0,20}".boxed()
        }
        _ => Just(key.default.unwrap_or("x").to_string()).boxed(),
    }
}

fn arb_any_key_value() -> impl Strategy<Value = (&'static ConfigKey, String)> {
    proptest::sample::select(CONFIG_TABLE.iter().collect::<Vec<_>>())
        .prop_flat_map(|k| arb_value_for(k).prop_map(move |v| (k, v)))
}

fn arb_topic_override() -> impl Strategy<Value = (String, String)> {
    let keys: Vec<&'static ConfigKey> = table::keys(Scope::Topic).collect();
    proptest::sample::select(keys)
        .prop_flat_map(|k| arb_value_for(k).prop_map(|v| (k.name.to_string(), v)))
}

proptest! {
    #[test]
    fn value_string_value_round_trip((key, raw) in arb_any_key_value()) {
        let v = parse_value(key, &raw).unwrap();
        let again = parse_value(key, &v.to_string()).unwrap();
        prop_assert_eq!(v, again);
    }

    #[test]
    fn valid_topic_overrides_always_validate(pairs in proptest::collection::btree_map(
        "[a-z]{1}", arb_topic_override(), 0..6))
    {
        let map: BTreeMap<String, String> = pairs.into_values().collect();
        let c = BrokerConfig::default();
        prop_assert!(c.topic_log_config(&map).is_ok());
        let described = c.describe_topic(&map);
        for (k, v) in &map {
            let e = described.iter().find(|e| &e.name == k).unwrap();
            prop_assert_eq!(e.value.as_deref(), Some(v.trim()));
            prop_assert_eq!(e.source, ConfigSource::DynamicTopic);
        }
    }

    #[test]
    fn parse_value_never_panics(idx in 0..CONFIG_TABLE.len(), raw in "\\PC{0,40}") {
        let _ = parse_value(&CONFIG_TABLE[idx], &raw);
    }

    #[test]
    fn listeners_round_trip(host in "[a-z0-9.]{0,15}", port in any::<u16>()) {
        let s = format!("PLAINTEXT://{host}:{port}");
        let ls = parse_listeners(&s).unwrap();
        prop_assert_eq!(ls[0].to_string(), s);
    }
}

#[test]
fn producer_state_keys_reach_the_storage_config() {
    let d = BrokerConfig::default().log_manager_config().producer_state;
    assert_eq!(d.producer_id_expiration_ms, 86_400_000);
    assert_eq!(d.max_producers, 10_000);
    let c = BrokerConfig::with_overrides(&[
        ("producer.id.expiration.ms", "60000"),
        ("sluice.max.producers.per.partition", "7"),
    ])
    .unwrap();
    let p = c.log_manager_config().producer_state;
    assert_eq!((p.producer_id_expiration_ms, p.max_producers), (60_000, 7));
}

#[test]
fn cleaner_settings_follow_dynamic_broker_configs() {
    let c = BrokerConfig::with_overrides(&[
        ("log.cleaner.backoff.ms", "5000"),
        ("log.cleaner.io.max.bytes.per.second", "1000000"),
    ])
    .unwrap();
    let (backoff, cleaner) = c.cleaner_settings();
    assert_eq!(backoff, 5000);
    assert_eq!(cleaner.io_max_bytes_per_second, 1_000_000.0);
    assert_eq!(cleaner.dedupe_buffer_size, 134_217_728);
    {
        let mut d = c.dynamic.write();
        d.cluster_default
            .insert("log.cleaner.backoff.ms".into(), "200".into());
        d.cluster_default
            .insert("log.cleaner.dedupe.buffer.size".into(), "4096".into());
        d.broker
            .insert("log.cleaner.backoff.ms".into(), "300".into());
    }
    let (backoff, cleaner) = c.cleaner_settings();
    assert_eq!(backoff, 300, "per-broker over cluster default over static");
    assert_eq!(cleaner.dedupe_buffer_size, 4096);
    assert_eq!(cleaner.io_max_bytes_per_second, 1_000_000.0);
}

#[test]
fn producer_id_expiration_follows_dynamic_broker_configs() {
    let c = BrokerConfig::with_overrides(&[("producer.id.expiration.ms", "1000")]).unwrap();
    assert_eq!(c.producer_id_expiration_ms(), 1000);
    c.dynamic
        .write()
        .cluster_default
        .insert("producer.id.expiration.ms".into(), "500".into());
    assert_eq!(c.producer_id_expiration_ms(), 500);
    assert_eq!(
        BrokerConfig::default().producer_id_expiration_ms(),
        86_400_000
    );
}
