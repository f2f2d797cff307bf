//! Client quotas beyond produce and fetch bytes, through the real binary
//! (issue 21):
//! - `request_percentage` throttles every API a client sends (Metadata,
//!   ApiVersions, FindCoordinator, ListGroups, DescribeConfigs, ...), as
//!   Kafka's `ClientRequestQuotaManager` does, by at most one window, and
//!   clients without the quota are not throttled;
//! - `controller_mutation_rate` (KIP-599): CreateTopics v6+, DeleteTopics
//!   v5+ and CreatePartitions v3+ refuse topics with
//!   THROTTLING_QUOTA_EXCEEDED while the client's bucket is in debt, older
//!   versions are let through and only throttled; the same scenario gives
//!   the same codes on Kafka 4.1.2 (skipped loudly without java or the
//!   jars unless `SLUICE_REQUIRE_CLIENTS=1`); topics auto-created through
//!   Metadata count against the asking client's quota and are refused
//!   while it is in debt, as on Kafka.
//!
//! No timing assertion: the debts are tens of seconds, far longer than the
//! scenario takes on a slow machine.

mod common;

use common::quotas::set_client_quota;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, FindCoordinatorRequest, ListGroupsRequest, MetadataRequest, TopicName,
};
use sluice_testkit::ReferenceKafka;

use common::{http_get, metrics_addr, sample, sb, RawClient};

/// The throttle_time_ms of one request of each of several APIs.
fn throttles_of_apis(addr: &str, client_id: &str) -> Vec<(&'static str, i32)> {
    let mut c = RawClient::connect_as(addr, client_id);
    vec![
        (
            "Metadata",
            c.send(12, &MetadataRequest::default()).throttle_time_ms,
        ),
        (
            "ApiVersions",
            c.send(
                3,
                &ApiVersionsRequest::default()
                    .with_client_software_name(sb("quota-test"))
                    .with_client_software_version(sb("1")),
            )
            .throttle_time_ms,
        ),
        (
            "FindCoordinator",
            c.send(
                4,
                &FindCoordinatorRequest::default().with_coordinator_keys(vec![sb("g")]),
            )
            .throttle_time_ms,
        ),
        (
            "ListGroups",
            c.send(4, &ListGroupsRequest::default()).throttle_time_ms,
        ),
        (
            "DescribeConfigs",
            c.send(
                4,
                &DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(sb("1")),
                ]),
            )
            .throttle_time_ms,
        ),
    ]
}

#[test]
fn the_request_quota_throttles_every_api() {
    let broker = common::start(&[
        ("quota.window.num", "3"),
        ("quota.window.size.seconds", "1"),
    ]);
    let addr = broker.bootstrap().to_string();
    // Far below any request's cost.
    set_client_quota(&addr, "busy-admin", "request_percentage", 0.0001);
    for (api, throttle) in throttles_of_apis(&addr, "busy-admin") {
        eprintln!("busy-admin {api}: throttle {throttle} ms");
        assert!(
            (1..=1000).contains(&throttle),
            "{api} over the request quota answered throttle_time_ms {throttle}"
        );
    }
    for (api, throttle) in throttles_of_apis(&addr, "free-admin") {
        assert_eq!(throttle, 0, "{api} without a quota was throttled");
    }
    let (_, body) = http_get(&metrics_addr(&broker), "/metrics");
    let throttled = sample(
        &body,
        "sluice_client_quota_throttles_total",
        &["client_id=\"busy-admin\"", "quota_type=\"Request\""],
    );
    assert!(throttled.unwrap_or(0.0) >= 5.0, "{body}");
}

/// One step of the mutation scenario: its label, the error codes it got,
/// and whether it was throttled.
type Step = (String, Vec<i16>, bool);

fn create_topics(addr: &str, client: &str, version: i16, topics: &[(&str, i32)]) -> Step {
    let mut c = RawClient::connect_as(addr, client);
    let resp = c.send(
        version,
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, n)| {
                        CreatableTopic::default()
                            .with_name(TopicName(sb(name)))
                            .with_num_partitions(*n)
                            .with_replication_factor(1)
                    })
                    .collect(),
            ),
    );
    let label = format!("{client} CreateTopics v{version} {topics:?}");
    let codes = resp.topics.iter().map(|t| t.error_code).collect();
    (label, codes, resp.throttle_time_ms > 0)
}

fn delete_topic(addr: &str, client: &str, version: i16, name: &str) -> Step {
    let mut c = RawClient::connect_as(addr, client);
    let mut req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if version >= 6 {
        req = req.with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(sb(name))))
        ]);
    } else {
        req = req.with_topic_names(vec![TopicName(sb(name))]);
    }
    let resp = c.send(version, &req);
    let label = format!("{client} DeleteTopics v{version} {name}");
    let codes = resp.responses.iter().map(|t| t.error_code).collect();
    (label, codes, resp.throttle_time_ms > 0)
}

fn create_partitions(addr: &str, client: &str, version: i16, name: &str, count: i32) -> Step {
    let mut c = RawClient::connect_as(addr, client);
    let resp = c.send(
        version,
        &CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_count(count)
                .with_assignments(None)]),
    );
    let label = format!("{client} CreatePartitions v{version} {name} to {count}");
    let codes = resp.results.iter().map(|t| t.error_code).collect();
    (label, codes, resp.throttle_time_ms > 0)
}

/// Metadata v12 for `name`, auto-creating it or not; the topic's error code.
fn metadata(addr: &str, client: &str, name: &str, auto_create: bool) -> Step {
    let mut c = RawClient::connect_as(addr, client);
    let resp = c.send(
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(auto_create)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(name))))
            ])),
    );
    let label = format!("{client} Metadata v12 {name} auto-create {auto_create}");
    let codes = resp.topics.iter().map(|t| t.error_code).collect();
    (label, codes, resp.throttle_time_ms > 0)
}

/// Under `controller_mutation_rate` = 1 partition/s with a 2-window bucket
/// (2 tokens), a 40-partition topic puts the client ~38 s in debt. Every
/// step uses a new connection, so the mutes do not slow the scenario.
/// Auto-created topics (`num.partitions` = 40) count against the client
/// that asked for them and are refused while it is in debt: Kafka 4.1
/// forwards them to the controller as a CreateTopics in an envelope with
/// the client's principal and client id.
fn mutation_scenario(addr: &str) -> Vec<Step> {
    set_client_quota(addr, "mutator", "controller_mutation_rate", 1.0);
    set_client_quota(addr, "auto-mutator", "controller_mutation_rate", 1.0);
    // Kafka's controller takes the quota from its metadata a little after
    // answering; let it settle (Sluice answers after publishing).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let setup = create_topics(addr, "setup", 7, &[("m-old", 1), ("m-grow", 1)]);
    assert_eq!(setup.1, vec![0, 0], "{setup:?}");
    let mut steps = vec![
        // Starts within the bucket: created.
        create_topics(addr, "mutator", 7, &[("m-big", 40)]),
        // In debt: strict versions refuse every topic...
        create_topics(addr, "mutator", 7, &[("m-a", 1), ("m-b", 1)]),
        create_topics(addr, "mutator", 6, &[("m-c", 1)]),
        delete_topic(addr, "mutator", 6, "m-old"),
        delete_topic(addr, "mutator", 5, "m-old"),
        create_partitions(addr, "mutator", 3, "m-grow", 2),
        // ...older ones go through, throttled.
        create_topics(addr, "mutator", 5, &[("m-d", 1)]),
        create_partitions(addr, "mutator", 2, "m-grow", 3),
        delete_topic(addr, "mutator", 4, "m-old"),
        // An existing topic costs nothing and gets its own error.
        create_topics(addr, "mutator", 7, &[("m-big", 1)]),
        // Other clients are not limited.
        create_topics(addr, "other", 7, &[("m-e", 5)]),
    ];
    // Auto-creation: refused in debt (answered as any first request for a
    // new topic), and counted: the 40 partitions put the client in debt.
    steps.push(metadata(addr, "mutator", "m-auto", true));
    steps.push(metadata(addr, "auto-mutator", "m-auto-big", true));
    // Kafka's broker forwards the creation without waiting for it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    steps.push(metadata(addr, "other", "m-auto", false));
    steps.push(metadata(addr, "other", "m-auto-big", false));
    steps.push(create_topics(addr, "auto-mutator", 7, &[("m-f", 1)]));
    steps
}

#[test]
fn controller_mutations_over_the_quota_are_refused_or_throttled_as_kafka_does() {
    let windows = [
        ("controller.quota.window.num", "2"),
        ("controller.quota.window.size.seconds", "1"),
        ("num.partitions", "40"),
    ];
    let broker = common::start(&windows);
    let actual = mutation_scenario(broker.bootstrap());
    for step in &actual {
        eprintln!("sluice: {step:?}");
    }
    let expect = |i: usize, codes: &[i16], throttled: bool| {
        assert_eq!(
            (actual[i].1.as_slice(), actual[i].2),
            (codes, throttled),
            "{}",
            actual[i].0
        );
    };
    // A strict quota throttles only what it refuses (Kafka's
    // StrictControllerMutationQuota), so the topic that made the debt is
    // answered unthrottled.
    expect(0, &[0], false);
    expect(1, &[89, 89], true);
    expect(2, &[89], true);
    expect(3, &[89], true);
    expect(4, &[89], true);
    expect(5, &[89], true);
    expect(6, &[0], true);
    expect(7, &[0], true);
    expect(8, &[0], true);
    expect(9, &[36], false);
    expect(10, &[0], false);
    expect(11, &[3], false);
    expect(12, &[3], false);
    expect(13, &[3], false);
    expect(14, &[0], false);
    expect(15, &[89], true);
    // The metrics show the debt and the throttles answered.
    let (_, body) = http_get(&metrics_addr(&broker), "/metrics");
    let metric = |name| sample(&body, name, &["client_id=\"mutator\""]);
    assert!(
        metric("sluice_controller_mutation_tokens").unwrap() < 0.0,
        "{body}"
    );
    assert!(
        metric("sluice_controller_mutation_throttles_total").unwrap() >= 8.0,
        "{body}"
    );

    if !common::kafka_tools_ready("controller mutation quota vs Kafka") {
        return;
    }
    let kafka = ReferenceKafka::start_with(&windows)
        .expect("reference Kafka starts")
        .expect("java and the jars are here");
    let reference = mutation_scenario(&kafka.bootstrap());
    kafka.stop();
    for (k, s) in reference.iter().zip(&actual) {
        eprintln!(
            "{}: kafka {:?} {} | sluice {:?} {}",
            s.0, k.1, k.2, s.1, s.2
        );
    }
    let differ: Vec<_> = reference
        .iter()
        .zip(&actual)
        .filter(|(k, s)| (&k.1, k.2) != (&s.1, s.2))
        .map(|(k, s)| {
            format!(
                "{}: kafka {:?} {} | sluice {:?} {}",
                s.0, k.1, k.2, s.1, s.2
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "differs from Kafka:\n{}",
        differ.join("\n")
    );
}
