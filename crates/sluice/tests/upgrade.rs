//! In-place upgrade: a data directory written by the single-node release
//! before the cluster metadata path (main e6bcb45; `fixtures/v0-datadir.tar.gz`,
//! made by `fixtures/make-v0-datadir` with that release binary) starts on
//! this build and keeps every topic (same ids), record, group, committed
//! offset and config, checked through real client requests: the Kafka
//! protocol for metadata, offsets and configs, and librdkafka (this
//! build's `sluice consume`) resuming the group at its committed offsets.
//! It is started twice, so whatever the first start converts is what the
//! second one reads.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::{sb, RawClient};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, DescribeConfigsRequest, GroupId, ListOffsetsRequest, MetadataRequest,
    OffsetFetchRequest, TopicName,
};
use sluice_testkit::SluiceProcess;
use uuid::Uuid;

const TOPIC: i8 = 2;
const GROUP: i8 = 32;
const BROKER: i8 = 4;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0-datadir.tar.gz")
}

/// The topic ids the old release assigned, from its `topics.meta`
/// (`topic <name> <uuid> <partitions>` lines).
fn old_topic_ids(data: &Path) -> BTreeMap<String, Uuid> {
    let text = std::fs::read_to_string(data.join("topics.meta")).expect("topics.meta");
    text.lines()
        .filter_map(|l| l.strip_prefix("topic "))
        .map(|rest| {
            let parts: Vec<&str> = rest.split(' ').collect();
            (parts[0].to_string(), Uuid::parse_str(parts[1]).unwrap())
        })
        .collect()
}

/// name -> (topic id, [(leader, leader epoch, replicas)] per partition).
type TopicsSeen = BTreeMap<String, (Uuid, Vec<(i32, i32, Vec<i32>)>)>;

fn topics(c: &mut RawClient) -> TopicsSeen {
    let resp = c.send(12, &MetadataRequest::default().with_topics(None));
    resp.topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.leader_id.0,
                        p.leader_epoch,
                        p.replica_nodes.iter().map(|b| b.0).collect(),
                    )
                })
                .collect();
            (t.name.as_ref().unwrap().to_string(), (t.topic_id, parts))
        })
        .collect()
}

fn end_offset(c: &mut RawClient, topic: &str, partition: i32) -> i64 {
    let resp = c.send(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1)])]),
    );
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{topic}-{partition}");
    p.offset
}

/// The group's committed offsets; retried while the coordinator is still
/// loading `__consumer_offsets` (COORDINATOR_LOAD_IN_PROGRESS, 14), as
/// clients retry it: on a busy machine the first request can come first.
fn committed(c: &mut RawClient, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let resp = loop {
        let resp = c.send(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_indexes(vec![0, 1, 2])])),
        );
        if resp.error_code == COORDINATOR_LOAD_IN_PROGRESS && std::time::Instant::now() < bound {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        break resp;
    };
    assert_eq!(resp.error_code, 0);
    resp.topics[0]
        .partitions
        .iter()
        .filter(|p| p.committed_offset >= 0)
        .map(|p| (p.partition_index, p.committed_offset))
        .collect()
}

/// The non-default configs of a resource: name -> (value, source).
fn configs(c: &mut RawClient, resource_type: i8, name: &str) -> BTreeMap<String, (String, i8)> {
    let resp = c.send(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(sb(name))
            .with_configuration_keys(None)]),
    );
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0, "{name}: {:?}", r.error_message);
    r.configs
        .iter()
        // 5 = DEFAULT_CONFIG
        .filter(|c| c.config_source != 5)
        .map(|c| {
            (
                c.name.to_string(),
                (
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    c.config_source,
                ),
            )
        })
        .collect()
}

fn check(broker: &SluiceProcess, ids: &BTreeMap<String, Uuid>) {
    let mut c = RawClient::connect(broker.bootstrap());
    let seen = topics(&mut c);
    for (name, partitions) in [("orders", 3), ("ledger", 1)] {
        let (id, parts) = &seen[name];
        assert_eq!(id, &ids[name], "{name} keeps its topic id");
        assert_eq!(parts.len(), partitions, "{name}");
        for p in parts {
            // Led by node 1 again. Every start re-registers the broker,
            // which moves its leaderships off and back (as a KRaft broker's
            // restart does), so the epoch is past the old release's 0.
            assert_eq!((p.0, &p.2), (1, &vec![1]), "{name}: led by node 1");
            assert!(p.1 > 0, "{name}: leader epoch {} after a restart", p.1);
        }
    }
    assert!(seen.contains_key("__consumer_offsets"));
    assert_eq!(
        [0, 1, 2].map(|p| end_offset(&mut c, "orders", p)),
        [128, 86, 86]
    );
    assert_eq!(end_offset(&mut c, "ledger", 0), 50);
    assert_eq!(
        committed(&mut c, "readers", "orders"),
        BTreeMap::from([(1, 34), (2, 86)])
    );
    // 1 = TOPIC_CONFIG
    let orders = configs(&mut c, TOPIC, "orders");
    assert_eq!(orders["retention.ms"], ("86400000".into(), 1));
    assert_eq!(orders["max.message.bytes"], ("200000".into(), 1));
    assert_eq!(
        configs(&mut c, TOPIC, "ledger")["cleanup.policy"],
        ("compact".into(), 1)
    );
    // 2 = DYNAMIC_BROKER_CONFIG, 3 = DYNAMIC_DEFAULT_BROKER_CONFIG
    let broker_configs = configs(&mut c, BROKER, "1");
    assert_eq!(
        broker_configs["log.retention.ms"],
        ("172800000".into(), 3),
        "{broker_configs:?}"
    );
    assert_eq!(
        broker_configs["log.cleaner.backoff.ms"],
        ("20000".into(), 2),
        "{broker_configs:?}"
    );
    // 1 = GROUP_CONFIG (the source Kafka reports for a group override)
    let group = configs(&mut c, GROUP, "readers");
    assert_eq!(group["consumer.session.timeout.ms"].0, "50000", "{group:?}");
}

/// Consumes what is left of `orders` as group `readers` with this build's
/// librdkafka CLI: `(partition, offset)` of every record read.
fn consume_rest(broker: &SluiceProcess) -> BTreeSet<(i32, i64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["consume", "-b", broker.bootstrap(), "-g", "readers"])
        .args(["-n", "180", "-F", "%p %o\\n", "orders"])
        .output()
        .expect("run sluice consume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (p, o) = l.split_once(' ').unwrap();
            (p.parse().unwrap(), o.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_single_node_release_data_dir_starts_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(fixture())
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar");
    assert!(status.success());
    let data = dir.path().join("data");
    let ids = old_topic_ids(&data);
    assert_eq!(ids.len(), 3, "{ids:?}");

    let mut broker = SluiceProcess::start_in(
        env!("CARGO_BIN_EXE_sluice"),
        &data,
        &[("node.id", "1"), ("offsets.topic.num.partitions", "4")],
    )
    .expect("the new build starts on the old data dir");
    check(&broker, &ids);
    // The group resumes where it committed: partition 0 (no commit) from
    // the start, partition 1 from 34, partition 2 (committed at its end)
    // not at all.
    let read = consume_rest(&broker);
    let want: BTreeSet<(i32, i64)> = (0..128)
        .map(|o| (0, o))
        .chain((34..86).map(|o| (1, o)))
        .collect();
    assert_eq!(read, want);

    // A second start of the new build on what the first one left.
    broker.terminate().expect("clean shutdown");
    broker.restart().expect("starts again");
    check_after_consume(&broker, &ids);
}

/// [`check`] after the group consumed the rest: its offsets moved to the ends.
fn check_after_consume(broker: &SluiceProcess, ids: &BTreeMap<String, Uuid>) {
    let mut c = RawClient::connect(broker.bootstrap());
    let seen = topics(&mut c);
    assert_eq!(seen["orders"].0, ids["orders"]);
    assert_eq!(seen["ledger"].0, ids["ledger"]);
    assert_eq!(end_offset(&mut c, "orders", 0), 128);
    assert_eq!(
        committed(&mut c, "readers", "orders"),
        BTreeMap::from([(0, 128), (1, 86), (2, 86)])
    );
    assert_eq!(
        configs(&mut c, TOPIC, "orders")["retention.ms"].0,
        "86400000"
    );
    assert_eq!(
        configs(&mut c, GROUP, "readers")["consumer.session.timeout.ms"].0,
        "50000"
    );
    assert_eq!(
        configs(&mut c, BROKER, "1")["log.cleaner.backoff.ms"].0,
        "20000"
    );
}
