//! Admin APIs over the wire against the real `sluice` binary, with the
//! answers Apache Kafka gives (error codes, config sources, paging).

mod common;

use std::time::Duration;

use common::{sb, start, RawClient};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncResource, AlterableConfig as IncConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sluice_testkit::{SluiceProcess, TestkitError};

fn topic(name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(sb(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect(),
        )
}

fn create(
    c: &mut RawClient,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    c.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only),
    )
}

fn describe_topic(c: &mut RawClient, name: &str) -> Vec<(String, Option<String>, i8)> {
    let resp = c.send(
        4,
        &DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb(name))
                .with_configuration_keys(None)])
            .with_include_synonyms(true)
            .with_include_documentation(true),
    );
    assert_eq!(
        resp.results[0].error_code, 0,
        "{:?}",
        resp.results[0].error_message
    );
    resp.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.config_source,
            )
        })
        .collect()
}

fn config_of(entries: &[(String, Option<String>, i8)], key: &str) -> (Option<String>, i8) {
    let e = entries
        .iter()
        .find(|e| e.0 == key)
        .unwrap_or_else(|| panic!("{key} described"));
    (e.1.clone(), e.2)
}

fn partition_count(c: &mut RawClient, name: &str) -> Result<usize, i16> {
    let resp = c.send(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(name))))
            ]))
            .with_allow_auto_topic_creation(false),
    );
    match resp.topics[0].error_code {
        0 => Ok(resp.topics[0].partitions.len()),
        e => Err(e),
    }
}

#[test]
fn create_topics_answers_like_kafka() {
    let sluice = start(&[("num.partitions", "2")]);
    let mut c = RawClient::connect(sluice.bootstrap());

    let resp = create(
        &mut c,
        vec![
            topic("ok", 3, 1, &[("retention.ms", "1000")]),
            topic("defaults", -1, -1, &[]),
            topic("zero", 0, 1, &[]),
            topic("rf3", 1, 3, &[]),
            topic("badcfg", 1, 1, &[("retention.ms", "soon")]),
            topic("unknowncfg", 1, 1, &[("no.such.config", "1")]),
            topic("a/b", 1, 1, &[]),
            topic("..", 1, 1, &[]),
            topic(&"x".repeat(250), 1, 1, &[]),
        ],
        false,
    );
    let codes: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.error_code))
        .collect();
    let expect = [0, 0, 37, 38, 40, 40, 17, 17, 17];
    for ((name, code), want) in codes.iter().zip(expect) {
        assert_eq!(*code, want, "{name}");
    }
    let ok = &resp.topics[0];
    assert!(!ok.topic_id.is_nil());
    assert_eq!((ok.num_partitions, ok.replication_factor), (3, 1));
    let cfgs = ok.configs.as_ref().expect("v5+ returns configs");
    let ret = cfgs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(ret.value.as_deref(), Some("1000"));
    assert_eq!(ret.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(resp.topics[1].num_partitions, 2, "-1 = num.partitions");
    assert_eq!(partition_count(&mut c, "ok"), Ok(3));
    assert_eq!(partition_count(&mut c, "defaults"), Ok(2));
    assert_eq!(partition_count(&mut c, "zero"), Err(3));

    // again: TOPIC_ALREADY_EXISTS; '.'/'_' collision: INVALID_TOPIC_EXCEPTION
    let resp = create(&mut c, vec![topic("ok", 1, 1, &[])], false);
    assert_eq!(resp.topics[0].error_code, 36);
    create(&mut c, vec![topic("my.topic", 1, 1, &[])], false);
    let resp = create(&mut c, vec![topic("my_topic", 1, 1, &[])], false);
    assert_eq!(resp.topics[0].error_code, 17);

    // validate_only creates nothing
    let resp = create(&mut c, vec![topic("dry", 4, 1, &[])], true);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].num_partitions, 4);
    assert_eq!(partition_count(&mut c, "dry"), Err(3));

    // the same name twice in one request: INVALID_REQUEST for both
    let resp = create(
        &mut c,
        vec![topic("twice", 1, 1, &[]), topic("twice", 1, 1, &[])],
        false,
    );
    assert_eq!(resp.topics.len(), 1, "answered once, as Kafka does");
    assert_eq!(resp.topics[0].error_code, 42);
}

#[test]
fn configs_describe_alter_and_survive_restart() {
    let mut sluice = start(&[("log.retention.hours", "2")]);
    let mut c = RawClient::connect(sluice.bootstrap());
    create(
        &mut c,
        vec![topic("cfg", 1, 1, &[("segment.bytes", "2097152")])],
        false,
    );

    let d = describe_topic(&mut c, "cfg");
    assert_eq!(config_of(&d, "segment.bytes"), (Some("2097152".into()), 1));
    assert_eq!(
        config_of(&d, "retention.ms"),
        (Some("7200000".into()), 5),
        "DEFAULT_CONFIG, as Kafka: its synonyms start at log.retention.ms, set nowhere"
    );
    assert_eq!(
        config_of(&d, "max.message.bytes"),
        (Some("1048588".into()), 5),
        "DEFAULT_CONFIG"
    );

    // incremental: SET, APPEND to a list, DELETE
    let inc = |c: &mut RawClient, ops: Vec<(&str, i8, Option<&str>)>| {
        let resp = c.send(
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![IncResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("cfg"))
                .with_configs(
                    ops.into_iter()
                        .map(|(k, op, v)| {
                            IncConfig::default()
                                .with_name(sb(k))
                                .with_config_operation(op)
                                .with_value(v.map(sb))
                        })
                        .collect(),
                )]),
        );
        resp.responses[0].error_code
    };
    assert_eq!(
        inc(
            &mut c,
            vec![
                ("retention.ms", 0, Some("60000")),
                ("cleanup.policy", 2, Some("compact"))
            ]
        ),
        0
    );
    let d = describe_topic(&mut c, "cfg");
    assert_eq!(config_of(&d, "retention.ms"), (Some("60000".into()), 1));
    assert_eq!(
        config_of(&d, "cleanup.policy"),
        (Some("delete,compact".into()), 1)
    );
    assert_eq!(inc(&mut c, vec![("segment.bytes", 1, None)]), 0);
    let d = describe_topic(&mut c, "cfg");
    assert_eq!(
        config_of(&d, "segment.bytes"),
        (Some("1073741824".into()), 5)
    );
    // invalid value, unknown key, append to a non-list: INVALID_CONFIG; nothing changes
    assert_eq!(inc(&mut c, vec![("retention.ms", 0, Some("-7"))]), 40);
    assert_eq!(inc(&mut c, vec![("retention.mss", 0, Some("1"))]), 40);
    assert_eq!(inc(&mut c, vec![("retention.ms", 2, Some("1"))]), 40);
    assert_eq!(
        config_of(&describe_topic(&mut c, "cfg"), "retention.ms")
            .0
            .as_deref(),
        Some("60000")
    );

    // restart: overrides are durable
    sluice.terminate().unwrap();
    sluice.restart().unwrap();
    let mut c = RawClient::connect(sluice.bootstrap());
    let d = describe_topic(&mut c, "cfg");
    assert_eq!(config_of(&d, "retention.ms"), (Some("60000".into()), 1));
    assert_eq!(
        config_of(&d, "cleanup.policy"),
        (Some("delete,compact".into()), 1)
    );

    // legacy AlterConfigs replaces the whole set
    let resp = c.send(
        2,
        &AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb("cfg"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(sb("flush.messages"))
                .with_value(Some(sb("1")))])]),
    );
    assert_eq!(resp.responses[0].error_code, 0);
    let d = describe_topic(&mut c, "cfg");
    assert_eq!(config_of(&d, "flush.messages"), (Some("1".into()), 1));
    assert_eq!(
        config_of(&d, "retention.ms"),
        (Some("7200000".into()), 5),
        "no longer overridden: the static log.retention.hours again, reported as Kafka does"
    );

    // broker resource: static values, read-only
    let resp = c.send(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(sb("1"))
                .with_configuration_keys(Some(vec![
                    sb("log.retention.hours"),
                    sb("num.partitions"),
                ])),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(sb("7")),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("missing")),
        ]),
    );
    let broker = &resp.results[0];
    assert_eq!(broker.error_code, 0);
    assert_eq!(broker.configs.len(), 2);
    let hours = broker
        .configs
        .iter()
        .find(|c| c.name.as_str() == "log.retention.hours")
        .unwrap();
    assert_eq!(
        (hours.value.as_deref(), hours.config_source, hours.read_only),
        (Some("2"), 4, true)
    );
    assert_eq!(resp.results[1].error_code, 42, "another broker id");
    assert_eq!(resp.results[2].error_code, 3, "unknown topic");
}

#[test]
fn partitions_records_log_dirs_cluster_and_delete_by_id() {
    let sluice = start(&[]);
    let bootstrap = sluice.bootstrap().to_string();
    let mut c = RawClient::connect(&bootstrap);
    let created = create(&mut c, vec![topic("grow", 1, 1, &[])], false);
    let id = created.topics[0].topic_id;

    // CreatePartitions
    let cp = |c: &mut RawClient, name: &str, count: i32| {
        c.send(
            3,
            &CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(TopicName(sb(name)))
                    .with_count(count)
                    .with_assignments(None)])
                .with_timeout_ms(30_000),
        )
        .results[0]
            .error_code
    };
    assert_eq!(cp(&mut c, "grow", 3), 0);
    assert_eq!(partition_count(&mut c, "grow"), Ok(3));
    assert_eq!(cp(&mut c, "grow", 2), 37);
    assert_eq!(cp(&mut c, "grow", 3), 37);
    assert_eq!(cp(&mut c, "nope", 3), 3);

    // produce 10 records to partition 2 with librdkafka
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "false")
            .create()
            .unwrap();
        for i in 0..10 {
            p.send(
                FutureRecord::<(), _>::to("grow")
                    .partition(2)
                    .payload(&format!("r{i}")),
                Duration::from_secs(60),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
    });

    // DeleteRecords
    let dr = |c: &mut RawClient, partition: i32, offset: i64| {
        let r = c.send(
            2,
            &DeleteRecordsRequest::default()
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(TopicName(sb("grow")))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset)])])
                .with_timeout_ms(30_000),
        );
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(dr(&mut c, 2, 4), (0, 4));
    assert_eq!(dr(&mut c, 2, 11), (1, -1), "past the high watermark");
    assert_eq!(dr(&mut c, 2, 2), (0, 4), "never moves backwards");
    assert_eq!(dr(&mut c, 9, 0), (3, -1));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "g")
        .create()
        .unwrap();
    assert_eq!(
        consumer
            .fetch_watermarks("grow", 2, Duration::from_secs(60))
            .unwrap(),
        (4, 10)
    );
    assert_eq!(dr(&mut c, 2, -1), (0, 10), "-1 = high watermark");

    // DescribeLogDirs: the partition with data has a size
    let ld = c.send(4, &DescribeLogDirsRequest::default().with_topics(None));
    assert_eq!(ld.results.len(), 1);
    let dir = &ld.results[0];
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
    let t = dir
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "grow")
        .unwrap();
    assert_eq!(t.partitions.len(), 3);
    let sizes: Vec<(i32, i64)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size))
        .collect();
    assert!(sizes.iter().any(|(p, s)| *p == 0 && *s == 0), "{sizes:?}");

    // DescribeCluster: this broker at the bootstrap address, cluster id of meta.properties
    let dc = c.send(1, &DescribeClusterRequest::default().with_endpoint_type(1));
    assert_eq!(dc.error_code, 0);
    assert_eq!(dc.brokers.len(), 1);
    assert_eq!(
        format!("{}:{}", dc.brokers[0].host.as_str(), dc.brokers[0].port),
        bootstrap
    );
    let meta = std::fs::read_to_string(sluice.data_dir().join("meta.properties")).unwrap();
    assert!(
        meta.contains(&format!("cluster.id={}", dc.cluster_id.as_str())),
        "{meta}"
    );

    // DescribeTopicPartitions with paging
    let dtp = c.send(
        0,
        &DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(TopicName(sb("grow")))
            ])
            .with_response_partition_limit(2),
    );
    assert_eq!(dtp.topics[0].topic_id, id);
    assert_eq!(dtp.topics[0].partitions.len(), 2);
    let cursor = dtp.next_cursor.expect("more partitions");
    assert_eq!(cursor.partition_index, 2);
    let dtp = c.send(
        0,
        &DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(TopicName(sb("grow")))
            ])
            .with_response_partition_limit(2)
            .with_cursor(Some(
                kafka_protocol::messages::describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(cursor.topic_name.clone())
                    .with_partition_index(cursor.partition_index),
            )),
    );
    assert_eq!(dtp.topics[0].partitions.len(), 1);
    assert!(dtp.next_cursor.is_none());

    // DeleteTopics by id (v6), unknown id
    let dt = c.send(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default()
                    .with_name(None)
                    .with_topic_id(id),
                DeleteTopicState::default()
                    .with_name(None)
                    .with_topic_id(uuid::Uuid::from_u128(42)),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(dt.responses[0].error_code, 0);
    assert_eq!(
        dt.responses[0]
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .as_deref(),
        Some("grow")
    );
    assert_eq!(dt.responses[1].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(partition_count(&mut c, "grow"), Err(3));
}

#[test]
fn bad_config_refuses_start_naming_the_key() {
    for (k, v) in [("no.such.key", "1"), ("num.partitions", "zero")] {
        match SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[(k, v)]) {
            Err(TestkitError::Exited { output, .. }) => {
                assert!(output.contains(k), "{k}: {output}")
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("started with {k}={v}"),
        }
    }
    // a known Kafka key Sluice does not implement: one warning, and it starts
    let s = start(&[("num.io.threads", "8"), ("num.network.threads", "3")]);
    let out = s.output();
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("does not implement"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("num.io.threads") && warnings[0].contains("num.network.threads"));
}

fn metadata_auto_create(c: &mut RawClient, name: &str) -> (i16, usize, uuid::Uuid) {
    let resp = c.send(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(name))))
            ]))
            .with_allow_auto_topic_creation(true),
    );
    let t = &resp.topics[0];
    (t.error_code, t.partitions.len(), t.topic_id)
}

#[test]
fn auto_creation_uses_broker_defaults_and_is_durable() {
    let mut sluice = start(&[("num.partitions", "2")]);
    let mut c = RawClient::connect(sluice.bootstrap());
    // the triggering request answers as Kafka's does; the next one finds it
    let (code, partitions, id) = metadata_auto_create(&mut c, "auto");
    assert_eq!((code, partitions, id), (3, 0, uuid::Uuid::nil()));
    let (code, partitions, id) = metadata_auto_create(&mut c, "auto");
    assert_eq!((code, partitions), (0, 2));
    assert!(!id.is_nil());
    // an invalid name is never created
    assert_eq!(metadata_auto_create(&mut c, "bad name").0, 17);
    sluice.terminate().unwrap();
    sluice.restart().unwrap();
    let mut c = RawClient::connect(sluice.bootstrap());
    assert_eq!(partition_count(&mut c, "auto"), Ok(2));
    assert_eq!(
        metadata_auto_create(&mut c, "auto").2,
        id,
        "same id after restart"
    );

    let off = start(&[("auto.create.topics.enable", "false")]);
    let mut c = RawClient::connect(off.bootstrap());
    assert_eq!(metadata_auto_create(&mut c, "auto").0, 3);
}

#[test]
fn altered_topic_config_applies_to_the_live_log_and_after_restart() {
    let mut sluice = start(&[]);
    let mut c = RawClient::connect(sluice.bootstrap());
    create(&mut c, vec![topic("limits", 1, 1, &[])], false);
    let produce = |bootstrap: &str, size: usize| -> Result<i64, String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let p: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("enable.idempotence", "false")
                .set("message.timeout.ms", "30000")
                .create()
                .unwrap();
            p.send(
                FutureRecord::<(), _>::to("limits").payload(&vec![b'x'; size]),
                Duration::from_secs(30),
            )
            .await
            .map(|d| d.offset)
            .map_err(|(e, _)| e.to_string())
        })
    };
    assert_eq!(produce(sluice.bootstrap(), 5000), Ok(0));
    let resp = c.send(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![IncResource::default()
            .with_resource_type(2)
            .with_resource_name(sb("limits"))
            .with_configs(vec![IncConfig::default()
                .with_name(sb("max.message.bytes"))
                .with_config_operation(0)
                .with_value(Some(sb("1000")))])]),
    );
    assert_eq!(resp.responses[0].error_code, 0);
    let err = produce(sluice.bootstrap(), 5000).unwrap_err();
    assert!(
        err.contains("too large") || err.contains("MessageSizeTooLarge"),
        "{err}"
    );
    assert_eq!(produce(sluice.bootstrap(), 10), Ok(1));

    sluice.terminate().unwrap();
    sluice.restart().unwrap();
    let err = produce(sluice.bootstrap(), 5000).unwrap_err();
    assert!(
        err.contains("too large") || err.contains("MessageSizeTooLarge"),
        "{err}"
    );
}

#[test]
fn describe_topic_partitions_lists_all_topics_and_marks_internal_ones() {
    let sluice = start(&[]);
    let mut c = RawClient::connect(sluice.bootstrap());
    create(&mut c, vec![topic("user", 2, 1, &[])], false);
    // The group coordinator creates its offsets topic on first use, as Kafka
    // does: a FindCoordinator for a group brings it into existence, and that
    // first answer is COORDINATOR_NOT_AVAILABLE (15); the next one finds it.
    let find = |c: &mut RawClient| {
        c.send(
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![sb("some-group")]),
        )
    };
    let first = find(&mut c);
    assert_eq!(first.coordinators.len(), 1);
    assert_eq!(first.coordinators[0].error_code, 15, "the creating request");
    let found = find(&mut c);
    assert_eq!(found.coordinators.len(), 1);
    assert_eq!(found.coordinators[0].error_code, 0);
    let resp = c.send(0, &DescribeTopicPartitionsRequest::default());
    let user = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("user"))
        .expect("user topic listed");
    assert!(!user.is_internal);
    assert_eq!(user.partitions.len(), 2);
    // the internal offsets topic is listed and marked internal
    let offsets = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("__consumer_offsets"))
        .expect("__consumer_offsets listed");
    assert!(offsets.is_internal);
    // sorted by name, as Kafka pages them
    let names: Vec<String> = resp
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}
