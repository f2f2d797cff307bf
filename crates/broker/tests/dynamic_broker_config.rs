//! Dynamic broker configs over the wire (AlterConfigs / IncrementalAlterConfigs
//! on the BROKER resource, then DescribeConfigs), with the answers Kafka
//! 4.1.2 gives: per-broker ("<node id>") and cluster-default ("") levels,
//! sources DYNAMIC_BROKER_CONFIG (2) / DYNAMIC_DEFAULT_BROKER_CONFIG (3),
//! Kafka's refusals, and the topic defaults really changing (also for topics
//! that already exist) and surviving a restart.

mod netkit;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as LegacyResource, AlterableConfig as LegacyConfig,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, CreateTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, ProduceRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, Client};
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{Clock, RealFs, SystemClock};

const BROKER: i8 = 4;
const TOPIC: i8 = 2;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT: i8 = 3;
const STATIC: i8 = 4;
const DEFAULT: i8 = 5;
const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn start(dir: &Path, extra: &[(&str, &str)]) -> Broker {
    let mut all = vec![
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", dir.to_str().unwrap()),
        ("node.id", "7"),
    ];
    all.extend_from_slice(extra);
    let config = BrokerConfig::with_overrides(&all).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Broker::start(config, Arc::new(RealFs), clock)
        .await
        .unwrap()
}

/// IncrementalAlterConfigs on one resource: (error code, message).
async fn alter(
    c: &mut Client,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(sb(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(*op)
                            .with_value(v.map(sb))
                    })
                    .collect(),
            )]);
    match c.call(ApiKey::IncrementalAlterConfigs, 1, &req).await {
        ResponseKind::IncrementalAlterConfigs(r) => (
            r.responses[0].error_code,
            r.responses[0].error_message.as_ref().map(|m| m.to_string()),
        ),
        other => panic!("{other:?}"),
    }
}

/// Legacy AlterConfigs of the BROKER resource.
async fn legacy_alter(c: &mut Client, name: &str, configs: &[(&str, &str)]) -> i16 {
    let req = AlterConfigsRequest::default().with_resources(vec![LegacyResource::default()
        .with_resource_type(BROKER)
        .with_resource_name(sb(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    LegacyConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        )]);
    match c.call(ApiKey::AlterConfigs, 2, &req).await {
        ResponseKind::AlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

/// The error code of an IncrementalAlterConfigs on a BROKER resource.
async fn alter_broker(
    c: &mut Client,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> i16 {
    alter(c, BROKER, name, ops, validate_only).await.0
}

async fn describe(c: &mut Client, resource_type: i8, name: &str) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(sb(name))
            .with_configuration_keys(None)]);
    match c.call(ApiKey::DescribeConfigs, 4, &req).await {
        ResponseKind::DescribeConfigs(mut r) => r.results.remove(0),
        other => panic!("{other:?}"),
    }
}

/// (value, source, read_only, sensitive, [(synonym source, synonym value)]) of one key.
type Described = (Option<String>, i8, bool, bool, Vec<(i8, Option<String>)>);

fn entry(r: &DescribeConfigsResult, key: &str) -> Option<Described> {
    r.configs.iter().find(|c| c.name.as_str() == key).map(|c| {
        (
            c.value.as_ref().map(|v| v.to_string()),
            c.config_source,
            c.read_only,
            c.is_sensitive,
            c.synonyms
                .iter()
                .map(|s| (s.source, s.value.as_ref().map(|v| v.to_string())))
                .collect(),
        )
    })
}

async fn create_topic(c: &mut Client, name: &str, configs: &[(&str, &str)]) {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(30_000);
    match c.call(ApiKey::CreateTopics, 7, &req).await {
        ResponseKind::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
}

/// Appends `count` batches of one 100 KiB record each to `topic`-0.
async fn produce(c: &mut Client, topic: &str, count: usize) {
    let value = vec![b'x'; 100 * 1024];
    for _ in 0..count {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(sb(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch(&[&value], 0))))])]);
        match c.call(ApiKey::Produce, 9, &req).await {
            ResponseKind::Produce(r) => {
                assert_eq!(r.responses[0].partition_responses[0].error_code, 0)
            }
            other => panic!("{other:?}"),
        }
    }
}

fn segment_files(dir: &Path, topic: &str) -> usize {
    std::fs::read_dir(dir.join(format!("{topic}-0")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

#[tokio::test]
async fn kafkas_refusals_and_what_each_level_reports() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[("log.retention.hours", "2")]).await;
    let mut c = Client::connect(broker.bound_addr()).await;

    // What librdkafka's 0081 test sets: accepted (Kafka stores it; Sluice has no SASL).
    let relogin = "sasl.kerberos.min.time.before.relogin";
    assert_eq!(
        alter(&mut c, BROKER, "7", &[(relogin, SET, Some("58000"))], false).await,
        (0, None)
    );
    let d = describe(&mut c, BROKER, "7").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(
        entry(&d, relogin),
        Some((
            Some("58000".into()),
            DYNAMIC_BROKER,
            false,
            false,
            vec![(DYNAMIC_BROKER, Some("58000".into()))]
        ))
    );
    // ... but only per broker.
    let (code, msg) = alter(&mut c, BROKER, "", &[(relogin, SET, Some("1"))], false).await;
    assert_eq!(code, INVALID_REQUEST);
    assert_eq!(
        msg.as_deref(),
        Some("Cannot update these configs at default cluster level, broker id must be specified: Set(sasl.kerberos.min.time.before.relogin)")
    );

    // Kafka's refusals, all INVALID_REQUEST with Kafka's messages.
    for (key, value, message) in [
        ("log.dirs", "/elsewhere", "Cannot update these configs dynamically: Set(log.dirs)"),
        ("log.retention.hours", "1", "Cannot update these configs dynamically: Set(log.retention.hours)"),
        ("ssl.keystore.password", "secret", "These security configs can be dynamically updated only per-listener using the listener prefix: Set(ssl.keystore.password)"),
        ("log.segment.bytes", "abc", "Invalid value abc for configuration log.segment.bytes: Not a number of type INT"),
        ("log.segment.bytes", "10", "Invalid value 10 for configuration log.segment.bytes: Value must be at least 1048576"),
    ] {
        for name in ["7", ""] {
            let (code, msg) = alter(&mut c, BROKER, name, &[(key, SET, Some(value))], false).await;
            assert_eq!((code, msg.as_deref()), (INVALID_REQUEST, Some(message)), "{key} at {name:?}");
        }
    }
    // A key Sluice reads only at start is refused rather than stored to no effect.
    let (code, msg) = alter(
        &mut c,
        BROKER,
        "7",
        &[("num.replica.fetchers", SET, Some("4"))],
        false,
    )
    .await;
    assert_eq!(code, INVALID_REQUEST);
    assert!(msg.unwrap().contains("only at start"));
    // Another broker id.
    assert_eq!(
        alter_broker(
            &mut c,
            "8",
            &[("log.segment.bytes", SET, Some("2000000"))],
            false
        )
        .await,
        INVALID_REQUEST
    );
    // APPEND on a scalar key: INVALID_CONFIG, as Kafka.
    let (code, msg) = alter(
        &mut c,
        BROKER,
        "7",
        &[("background.threads", APPEND, Some("3"))],
        false,
    )
    .await;
    assert_eq!(
        (code, msg.as_deref()),
        (
            INVALID_CONFIG,
            Some("Config value append is not allowed for config key: background.threads")
        )
    );
    // Nothing refused was stored.
    let d = describe(&mut c, BROKER, "7").await;
    assert_eq!(entry(&d, "log.segment.bytes").unwrap().1, DEFAULT);
    assert_eq!(entry(&d, "log.retention.hours").unwrap().1, STATIC);
    assert!(entry(&d, "background.threads").is_none());

    // Kafka keeps a key it does not know, and describes it as sensitive.
    assert_eq!(
        alter_broker(&mut c, "7", &[("foo.bar", SET, Some("1"))], false).await,
        0
    );
    let d = describe(&mut c, BROKER, "7").await;
    assert_eq!(
        entry(&d, "foo.bar"),
        Some((
            None,
            DYNAMIC_BROKER,
            true,
            true,
            vec![(DYNAMIC_BROKER, None)]
        ))
    );

    // validate_only checks and stores nothing.
    assert_eq!(
        alter_broker(
            &mut c,
            "",
            &[("log.retention.ms", SET, Some("60000"))],
            true
        )
        .await,
        0
    );
    assert_eq!(
        alter_broker(&mut c, "", &[("log.segment.bytes", SET, Some("1"))], true).await,
        INVALID_REQUEST
    );
    assert!(describe(&mut c, BROKER, "").await.configs.is_empty());

    // Both levels: the per-broker one wins, the cluster default below it,
    // and a dynamic log.retention.ms hides the static log.retention.hours.
    assert_eq!(
        alter_broker(
            &mut c,
            "",
            &[
                ("log.segment.bytes", SET, Some("3000000")),
                ("log.retention.ms", SET, Some("60000"))
            ],
            false
        )
        .await,
        0
    );
    assert_eq!(
        alter_broker(
            &mut c,
            "7",
            &[("log.segment.bytes", SET, Some("2000000"))],
            false
        )
        .await,
        0
    );
    let d = describe(&mut c, BROKER, "7").await;
    assert_eq!(
        entry(&d, "log.segment.bytes"),
        Some((
            Some("2000000".into()),
            DYNAMIC_BROKER,
            false,
            false,
            vec![
                (DYNAMIC_BROKER, Some("2000000".into())),
                (DYNAMIC_DEFAULT, Some("3000000".into())),
                (DEFAULT, Some("1073741824".into())),
            ]
        ))
    );
    // The "" resource lists the cluster defaults only.
    let d = describe(&mut c, BROKER, "").await;
    let mut names: Vec<&str> = d.configs.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["log.retention.ms", "log.segment.bytes"]);
    assert_eq!(
        entry(&d, "log.segment.bytes"),
        Some((
            Some("3000000".into()),
            DYNAMIC_DEFAULT,
            false,
            false,
            vec![(DYNAMIC_DEFAULT, Some("3000000".into()))]
        ))
    );

    // Topics without their own override take the dynamic defaults.
    create_topic(&mut c, "plain", &[]).await;
    create_topic(&mut c, "own", &[("segment.bytes", "5000000")]).await;
    let t = describe(&mut c, TOPIC, "plain").await;
    let seg = entry(&t, "segment.bytes").unwrap();
    assert_eq!((seg.0.as_deref(), seg.1), (Some("2000000"), DYNAMIC_BROKER));
    let ret = entry(&t, "retention.ms").unwrap();
    assert_eq!((ret.0.as_deref(), ret.1), (Some("60000"), DYNAMIC_DEFAULT));
    assert_eq!(
        ret.4,
        [
            (DYNAMIC_DEFAULT, Some("60000".into())),
            (STATIC, Some("2".into())),
            (DEFAULT, Some("168".into()))
        ]
    );
    let own = entry(&describe(&mut c, TOPIC, "own").await, "segment.bytes").unwrap();
    assert_eq!((own.0.as_deref(), own.1), (Some("5000000"), 1));

    // DELETE at the broker level uncovers the cluster default.
    assert_eq!(
        alter_broker(&mut c, "7", &[("log.segment.bytes", DELETE, None)], false).await,
        0
    );
    let seg = entry(&describe(&mut c, TOPIC, "plain").await, "segment.bytes").unwrap();
    assert_eq!(
        (seg.0.as_deref(), seg.1),
        (Some("3000000"), DYNAMIC_DEFAULT)
    );

    // APPEND / SUBTRACT start from the value in use (librdkafka's helper does this).
    assert_eq!(
        alter_broker(
            &mut c,
            "7",
            &[("log.cleanup.policy", APPEND, Some("compact"))],
            false
        )
        .await,
        0
    );
    let p = entry(&describe(&mut c, BROKER, "7").await, "log.cleanup.policy").unwrap();
    assert_eq!(p.0.as_deref(), Some("delete,compact"));
    assert_eq!(
        alter_broker(
            &mut c,
            "7",
            &[("log.cleanup.policy", SUBTRACT, Some("compact"))],
            false
        )
        .await,
        0
    );
    let p = entry(&describe(&mut c, TOPIC, "plain").await, "cleanup.policy").unwrap();
    assert_eq!((p.0.as_deref(), p.1), (Some("delete"), DYNAMIC_BROKER));

    // Legacy AlterConfigs replaces the whole level, as Kafka's does.
    assert_eq!(
        legacy_alter(&mut c, "7", &[("log.retention.bytes", "123456")]).await,
        0
    );
    let d = describe(&mut c, BROKER, "7").await;
    let dynamic: Vec<&str> = d
        .configs
        .iter()
        .filter(|c| c.config_source == DYNAMIC_BROKER)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(dynamic, ["log.retention.bytes"]);
    assert_eq!(
        legacy_alter(&mut c, "", &[("log.dirs", "/x")]).await,
        INVALID_REQUEST
    );
}

#[tokio::test]
async fn a_lowered_segment_size_rolls_existing_logs_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    let mut c = Client::connect(broker.bound_addr()).await;
    create_topic(&mut c, "early", &[]).await;
    produce(&mut c, "early", 5).await;
    assert_eq!(
        segment_files(dir.path(), "early"),
        1,
        "1 GiB segments do not roll"
    );

    // The topic existed before the change and has no override: it rolls at 1 MiB now.
    assert_eq!(
        alter_broker(
            &mut c,
            "",
            &[("log.segment.bytes", SET, Some("1048576"))],
            false
        )
        .await,
        0
    );
    produce(&mut c, "early", 25).await;
    let rolled = segment_files(dir.path(), "early");
    assert!(
        rolled >= 2,
        "{rolled} segment files after 2.5 MiB at 1 MiB segments"
    );

    drop(c);
    broker.shutdown().await.unwrap();
    let broker = start(dir.path(), &[]).await;
    let mut c = Client::connect(broker.bound_addr()).await;
    let d = describe(&mut c, BROKER, "").await;
    let seg = entry(&d, "log.segment.bytes").unwrap();
    assert_eq!(
        (seg.0.as_deref(), seg.1),
        (Some("1048576"), DYNAMIC_DEFAULT)
    );
    let d = describe(&mut c, BROKER, "7").await;
    assert_eq!(entry(&d, "log.segment.bytes").unwrap().1, DYNAMIC_DEFAULT);
    // The reloaded log uses it too.
    let before = segment_files(dir.path(), "early");
    produce(&mut c, "early", 25).await;
    assert!(segment_files(dir.path(), "early") > before);
    broker.shutdown().await.unwrap();
}

/// Bytes of record data (`.log` files) of `topic`-0.
fn log_bytes(dir: &Path, topic: &str) -> u64 {
    std::fs::read_dir(dir.join(format!("{topic}-0")))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            name.ends_with(".log").then(|| e.metadata().unwrap().len())
        })
        .sum()
}

#[tokio::test]
async fn a_dynamic_cleaner_backoff_applies_without_waiting_out_the_static_one() {
    let dir = tempfile::tempdir().unwrap();
    // Statically the cleaner would next look in an hour.
    let broker = start(dir.path(), &[("log.cleaner.backoff.ms", "3600000")]).await;
    let mut c = Client::connect(broker.bound_addr()).await;
    create_topic(
        &mut c,
        "compacted",
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    // Five 100 KiB values of the same key, each in its own segment.
    for _ in 0..5 {
        produce(&mut c, "compacted", 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let written = log_bytes(dir.path(), "compacted");
    assert!(written > 500 * 1024, "{written}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        log_bytes(dir.path(), "compacted"),
        written,
        "not cleaned yet"
    );

    assert_eq!(
        alter(
            &mut c,
            BROKER,
            "",
            &[("log.cleaner.backoff.ms", SET, Some("100"))],
            false
        )
        .await,
        (0, None)
    );
    // Generous: the cleaner needs one run on a busy machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let now = log_bytes(dir.path(), "compacted");
        if now < 2 * 100 * 1024 + 4096 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {now} of {written} bytes: the cleaner did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    broker.shutdown().await.unwrap();
}
