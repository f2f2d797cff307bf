//! The same admin requests against Sluice and the pinned Apache Kafka 4.1
//! (skipped when its jars are absent): error codes, config values, sources
//! and types, paging and watermarks must agree.

mod common;

use std::collections::{BTreeMap, BTreeSet};

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
use kafka_protocol::messages::*;
use sluice_testkit::ReferenceKafka;

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

struct Observed {
    /// label -> answer, in request order (a label may repeat).
    answers: Vec<(String, String)>,
    /// topic config name -> "value source type read_only sensitive"
    configs: BTreeMap<String, String>,
}

fn describe(c: &mut RawClient, resources: Vec<(i8, &str)>) -> DescribeConfigsResponse {
    c.send(
        4,
        &DescribeConfigsRequest::default()
            .with_resources(
                resources
                    .into_iter()
                    .map(|(t, n)| {
                        DescribeConfigsResource::default()
                            .with_resource_type(t)
                            .with_resource_name(sb(n))
                            .with_configuration_keys(None)
                    })
                    .collect(),
            )
            .with_include_synonyms(true),
    )
}

fn incremental(c: &mut RawClient, name: &str, ops: &[(&str, i8, Option<&str>)]) -> i16 {
    let resp = c.send(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![IncResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        IncConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(*op)
                            .with_value(v.map(sb))
                    })
                    .collect(),
            )]),
    );
    resp.responses[0].error_code
}

fn scenario(bootstrap: &str) -> Observed {
    let mut c = RawClient::connect(bootstrap);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |label: String, v: String| out.push((label, v));

    // ---- CreateTopics ----
    let batches = vec![
        (
            false,
            vec![
                topic(
                    "t1",
                    3,
                    1,
                    &[
                        ("retention.ms", "60000"),
                        ("cleanup.policy", "compact,delete"),
                    ],
                ),
                topic("t2", -1, -1, &[]),
                topic("zero", 0, 1, &[]),
                topic("negative", -5, 1, &[]),
                topic("rf0", 1, 0, &[]),
                topic("rf2", 1, 2, &[]),
                topic("badval", 1, 1, &[("retention.ms", "abc")]),
                topic("outofrange", 1, 1, &[("segment.bytes", "10")]),
                topic("badenum", 1, 1, &[("message.timestamp.type", "Whenever")]),
                topic("unknown", 1, 1, &[("not.a.config", "1")]),
                topic("bad/name", 1, 1, &[]),
                topic("..", 1, 1, &[]),
                topic(&"y".repeat(250), 1, 1, &[]),
                topic("dup", 1, 1, &[]),
                topic("dup", 1, 1, &[]),
            ],
        ),
        (false, vec![topic("t1", 1, 1, &[]), topic("a.b", 1, 1, &[])]),
        (false, vec![topic("a_b", 1, 1, &[])]),
        (true, vec![topic("dry", 2, 1, &[]), topic("t1", 1, 1, &[])]),
    ];
    for (validate_only, topics) in batches {
        let resp = c.send(
            7,
            &CreateTopicsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(30_000)
                .with_validate_only(validate_only),
        );
        for t in resp.topics {
            let ok = t.error_code == 0;
            push(
                format!(
                    "create {} (validate_only={validate_only})",
                    t.name.0.as_str()
                ),
                format!(
                    "code {} partitions {} rf {}",
                    t.error_code,
                    if ok { t.num_partitions } else { -1 },
                    if ok { t.replication_factor } else { -1 }
                ),
            );
        }
    }

    // ---- CreatePartitions ----
    let resp = c.send(
        3,
        &CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("t1")))
                    .with_count(5)
                    .with_assignments(None),
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("t2")))
                    .with_count(3),
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("a.b")))
                    .with_count(0)
                    .with_assignments(None),
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("missing")))
                    .with_count(2)
                    .with_assignments(None),
            ])
            .with_timeout_ms(30_000),
    );
    for r in resp.results {
        push(
            format!("create_partitions {}", r.name.0.as_str()),
            format!("code {}", r.error_code),
        );
    }

    // ---- IncrementalAlterConfigs / AlterConfigs ----
    for (label, ops) in [
        (
            "set retention.ms",
            vec![("retention.ms", 0i8, Some("120000"))],
        ),
        ("set invalid", vec![("retention.ms", 0, Some("-7"))]),
        ("set unknown key", vec![("bogus.key", 0, Some("1"))]),
        ("append to non-list", vec![("retention.ms", 2, Some("1"))]),
        (
            "subtract from list",
            vec![("cleanup.policy", 3, Some("compact"))],
        ),
        ("delete unset key", vec![("flush.ms", 1, None)]),
    ] {
        push(
            format!("incremental t1 {label}"),
            format!("code {}", incremental(&mut c, "t1", &ops)),
        );
    }
    push(
        "incremental missing topic".into(),
        format!(
            "code {}",
            incremental(&mut c, "missing", &[("retention.ms", 0, Some("1"))])
        ),
    );
    let resp = c.send(
        2,
        &AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("t2"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(sb("segment.bytes"))
                    .with_value(Some(sb("2097152")))]),
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("a.b"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(sb("segment.bytes"))
                    .with_value(Some(sb("12")))]),
        ]),
    );
    for r in resp.responses {
        push(
            format!("alter_configs {}", r.resource_name.as_str()),
            format!("code {}", r.error_code),
        );
    }

    // ---- DescribeConfigs ----
    // Kafka applies config changes to its brokers' metadata asynchronously
    // (KRaft): wait until both alterations are visible before describing.
    for _ in 0..100 {
        let r = describe(&mut c, vec![(2, "t1"), (2, "t2")]);
        let value = |i: usize, k: &str| {
            r.results[i]
                .configs
                .iter()
                .find(|e| e.name.as_str() == k)
                .and_then(|e| e.value.as_ref().map(|v| v.to_string()))
        };
        if value(0, "retention.ms").as_deref() == Some("120000")
            && value(1, "segment.bytes").as_deref() == Some("2097152")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let resp = describe(&mut c, vec![(2, "t1"), (2, "missing"), (4, "1"), (2, "t2")]);
    for r in &resp.results {
        push(
            format!("describe_configs {}", r.resource_name.as_str()),
            format!("code {}", r.error_code),
        );
    }
    let mut configs = BTreeMap::new();
    for (topic_index, name) in [(0usize, "t1"), (3, "t2")] {
        for e in &resp.results[topic_index].configs {
            configs.insert(
                format!("{name} {}", e.name.as_str()),
                format!(
                    "value {:?} source {} type {} read_only {} sensitive {} synonyms {:?}",
                    e.value.as_deref(),
                    e.config_source,
                    e.config_type,
                    e.read_only,
                    e.is_sensitive,
                    e.synonyms
                        .iter()
                        .map(|s| format!(
                            "{}={}@{}",
                            s.name.as_str(),
                            s.value.as_deref().unwrap_or("null"),
                            s.source
                        ))
                        .collect::<Vec<_>>()
                ),
            );
        }
    }

    // ---- DeleteRecords on an empty partition ----
    let resp = c.send(
        2,
        &DeleteRecordsRequest::default()
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(TopicName(sb("t1")))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(0),
                        DeleteRecordsPartition::default()
                            .with_partition_index(1)
                            .with_offset(-1),
                        DeleteRecordsPartition::default()
                            .with_partition_index(2)
                            .with_offset(5),
                        DeleteRecordsPartition::default()
                            .with_partition_index(99)
                            .with_offset(0),
                    ]),
                DeleteRecordsTopic::default()
                    .with_name(TopicName(sb("missing")))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0)]),
            ])
            .with_timeout_ms(30_000),
    );
    for t in resp.topics {
        for p in t.partitions {
            push(
                format!("delete_records {}-{}", t.name.0.as_str(), p.partition_index),
                format!("code {} low {}", p.error_code, p.low_watermark),
            );
        }
    }

    // ---- DescribeTopicPartitions paging ----
    let resp = c.send(
        0,
        &DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(TopicName(sb("t1"))),
                TopicRequest::default().with_name(TopicName(sb("missing"))),
            ])
            .with_response_partition_limit(2),
    );
    for t in &resp.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        push(
            format!("describe_topic_partitions {name}"),
            format!(
                "code {} partitions {:?} internal {}",
                t.error_code,
                t.partitions
                    .iter()
                    .map(|p| (
                        p.partition_index,
                        p.leader_epoch >= 0,
                        p.replica_nodes.len(),
                        p.isr_nodes.len()
                    ))
                    .collect::<Vec<_>>(),
                t.is_internal
            ),
        );
    }
    push(
        "describe_topic_partitions cursor".into(),
        format!(
            "{:?}",
            resp.next_cursor
                .as_ref()
                .map(|c| (c.topic_name.0.to_string(), c.partition_index))
        ),
    );

    // ---- DescribeCluster ----
    for endpoint in [1i8, 2] {
        let dc = c.send(
            1,
            &DescribeClusterRequest::default().with_endpoint_type(endpoint),
        );
        push(
            format!("describe_cluster endpoint {endpoint}"),
            format!("code {} brokers {}", dc.error_code, dc.brokers.len()),
        );
    }

    // ---- DescribeLogDirs ----
    let ld = c.send(4, &DescribeLogDirsRequest::default().with_topics(None));
    let t1_parts = ld
        .results
        .iter()
        .flat_map(|r| r.topics.iter())
        .filter(|t| t.name.0.as_str() == "t1")
        .map(|t| t.partitions.len())
        .sum::<usize>();
    push(
        "describe_log_dirs".into(),
        format!(
            "code {} dirs {} t1 partitions {t1_parts}",
            ld.error_code,
            ld.results.len()
        ),
    );

    // ---- DeleteTopics ----
    let resp = c.send(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(TopicName(sb("t2")))),
                DeleteTopicState::default().with_name(Some(TopicName(sb("missing")))),
                DeleteTopicState::default().with_topic_id(uuid::Uuid::from_u128(77)),
            ])
            .with_timeout_ms(30_000),
    );
    for r in resp.responses {
        push(
            format!("delete {:?}", r.name.map(|n| n.0.to_string())),
            format!("code {}", r.error_code),
        );
    }
    Observed {
        answers: out,
        configs,
    }
}

#[test]
fn admin_answers_match_reference_kafka() {
    let Some(kafka) = ReferenceKafka::start().expect("reference Kafka starts") else {
        eprintln!("skipped: reference Kafka not available");
        return;
    };
    let expected = scenario(&kafka.bootstrap());
    kafka.stop();
    let sluice = start(&[]);
    let actual = scenario(sluice.bootstrap());

    let group = |v: &[(String, String)]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, a) in v {
            m.entry(k.clone()).or_default().push(a.clone());
        }
        m
    };
    let (e, a) = (group(&expected.answers), group(&actual.answers));
    let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
    let mut mismatches: Vec<String> = keys
        .into_iter()
        .filter(|k| e.get(*k) != a.get(*k))
        .map(|k| format!("{k}:\n   kafka  {:?}\n   sluice {:?}", e.get(k), a.get(k)))
        .collect();
    // every topic config Sluice describes, Kafka describes the same way —
    // except min.insync.replicas, which Kafka's `format` stores as a
    // cluster-wide dynamic default (source 3); Sluice has no dynamic broker
    // configs and reports the static default (source 5).
    for (k, v) in &actual.configs {
        if k.ends_with(" min.insync.replicas") {
            continue;
        }
        match expected.configs.get(k) {
            Some(kv) if kv == v => {}
            other => mismatches.push(format!("config {k}:\n   kafka  {other:?}\n   sluice {v:?}")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "differences from Apache Kafka 4.1.2:\n{}",
        mismatches.join("\n")
    );
}
