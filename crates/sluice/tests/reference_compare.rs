//! The same admin requests against Sluice and the pinned Apache Kafka 4.1
//! (skipped when its jars are absent): the error codes must agree.

mod common;

use common::{sb, start, RawClient};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
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

/// Runs the scenario on one broker and returns every answer's error codes.
fn scenario(bootstrap: &str) -> Vec<(String, i16)> {
    let mut c = RawClient::connect(bootstrap);
    let mut out = Vec::new();
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
            out.push((
                format!(
                    "create {} (validate_only={validate_only})",
                    t.name.0.as_str()
                ),
                t.error_code,
            ));
        }
    }
    let resp = c.send(
        3,
        &CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("t1")))
                    .with_count(5),
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("t2")))
                    .with_count(0),
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb("missing")))
                    .with_count(2),
            ])
            .with_timeout_ms(30_000),
    );
    for r in resp.results {
        out.push((
            format!("create_partitions {}", r.name.0.as_str()),
            r.error_code,
        ));
    }
    let resp = c.send(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("t1")),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(sb("missing")),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(sb("1")),
        ]),
    );
    for r in &resp.results {
        out.push((
            format!("describe_configs {}", r.resource_name.as_str()),
            r.error_code,
        ));
    }
    // sources of the t1 configs we set and of one we did not
    for key in ["retention.ms", "cleanup.policy", "segment.bytes"] {
        let e = resp.results[0]
            .configs
            .iter()
            .find(|c| c.name.as_str() == key)
            .unwrap_or_else(|| panic!("{key} described on {bootstrap}"));
        out.push((
            format!("source of {key}={:?}", e.value.as_deref()),
            e.config_source as i16,
        ));
    }
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
        out.push((
            format!("delete {:?}", r.name.map(|n| n.0.to_string())),
            r.error_code,
        ));
    }
    out
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
    let group = |v: Vec<(String, i16)>| {
        let mut m: std::collections::BTreeMap<String, Vec<i16>> = Default::default();
        for (k, code) in v {
            m.entry(k).or_default().push(code);
        }
        m
    };
    let (expected, actual) = (group(expected), group(actual));
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    let mismatches: Vec<String> = keys
        .into_iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .map(|k| {
            format!(
                "{k}: kafka {:?} sluice {:?}",
                expected.get(k),
                actual.get(k)
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "differences from Apache Kafka:\n{}",
        mismatches.join("\n")
    );
}
