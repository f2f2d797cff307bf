//! Where the controller mutation quota's token bucket lives (KIP-599), on
//! three nodes: one client in debt through node 1 then asks nodes 2 and 3.
//! In Kafka 4.1 a broker forwards CreateTopics, CreatePartitions and
//! DeleteTopics to the active controller in an envelope with the client's
//! principal and client id, and `ControllerApis` applies
//! `ControllerMutationQuotaManager` there: one bucket per client for the
//! whole cluster (until the controller changes). Sluice applies it in the
//! broker that received the request (`quota::mutation`): one bucket per
//! client per broker.
//!
//! Sluice keeps them on the active controller too: brokers forward each
//! request with the client's principal name, client id and version.
//!
//! The scenario runs on a 3-node Sluice and compares its answers with the
//! ones a 3-node Kafka 4.1.2 gave, recorded in
//! `tests/fixtures/client_quotas_mutation_scope.txt` (the 3-node Kafka
//! runs again in the full suite, see `common::transcript`).

mod common;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use sluice_testkit::{ClusterLayout, ReferenceKafkaCluster, SluiceCluster};

use common::quotas::set_client_quota;
use common::{sb, transcript, RawClient};

/// One step: its label, the topics' error codes, throttled or not.
type Step = (String, Vec<i16>, bool);

fn create_topic(addr: &str, node: i32, client: &str, name: &str, partitions: i32) -> Step {
    let mut c = RawClient::connect_as(addr, client);
    let resp = c.send(
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(sb(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]),
    );
    let label = format!("{client} CreateTopics v7 {name} ({partitions}) through node {node}");
    let codes = resp.topics.iter().map(|t| t.error_code).collect();
    (label, codes, resp.throttle_time_ms > 0)
}

/// `controller_mutation_rate` = 1 partition/s, a 2-token bucket: 40
/// partitions through node 1 put the client ~38 s in debt; then one
/// partition through each node.
fn scenario(addrs: &[String; 3]) -> Vec<Step> {
    set_client_quota(&addrs[0], "mutator", "controller_mutation_rate", 1.0);
    // Every node learns the quota from its metadata a little later.
    std::thread::sleep(std::time::Duration::from_secs(3));
    vec![
        create_topic(&addrs[0], 1, "mutator", "s-big", 40),
        create_topic(&addrs[0], 1, "mutator", "s-a", 1),
        create_topic(&addrs[1], 2, "mutator", "s-b", 1),
        create_topic(&addrs[2], 3, "mutator", "s-c", 1),
    ]
}

const WINDOWS: [(&str, &str); 2] = [
    ("controller.quota.window.num", "2"),
    ("controller.quota.window.size.seconds", "1"),
];

/// The transcript of the scenario: one line per step, its codes and
/// whether it was throttled.
fn transcript(steps: &[Step]) -> String {
    transcript::lines(
        &steps
            .iter()
            .map(|(label, codes, throttled)| format!("{label}: {codes:?} throttled {throttled}"))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn a_client_in_debt_through_one_node_is_in_debt_through_the_others_as_on_kafka() {
    let cluster = SluiceCluster::start(
        env!("CARGO_BIN_EXE_sluice"),
        ClusterLayout::Combined(3),
        &WINDOWS,
    )
    .expect("the cluster starts");
    let addrs = [1, 2, 3].map(|id| cluster.broker_addr(id).to_string());
    let actual = scenario(&addrs);
    drop(cluster);
    let kafka = || {
        assert!(
            common::kafka_tools_ready("controller mutation quota scope vs Kafka"),
            "recording needs java and the Kafka jars"
        );
        let kafka = ReferenceKafkaCluster::start_with(&WINDOWS)
            .expect("reference Kafka starts")
            .expect("java and the jars are here");
        let addrs = ReferenceKafkaCluster::NODE_IDS.map(|id| kafka.addr(id).to_string());
        let reference = scenario(&addrs);
        kafka.stop();
        // Kafka: created, then refused through every node.
        let codes: Vec<_> = reference.iter().map(|s| (s.1.clone(), s.2)).collect();
        assert_eq!(
            codes,
            vec![
                (vec![0], false),
                (vec![89], true),
                (vec![89], true),
                (vec![89], true)
            ],
            "{reference:?}"
        );
        transcript(&reference)
    };
    transcript::same_as_kafka("client_quotas_mutation_scope", &transcript(&actual), kafka);
}
