//! Issue 17's follower side on real processes: 3 combined nodes, a topic at
//! replication factor 3; records produced to each leader end up in every
//! follower's segment files byte for byte (the followers' replica fetchers
//! append the leader's batches as they are), also after a follower was
//! killed with kill -9 and restarted while records kept coming; and a
//! follower (leading nothing) killed while records keep coming catches up
//! from its own log end after a restart, truncating by leader epoch where
//! it diverged.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{sb, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sluice_testkit::metadata::fetch_metadata;
use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
/// Generous bound for a busy 2-core machine.
const LONG: Duration = Duration::from_secs(120);

fn create_topic(c: &SluiceCluster, name: &str, partitions: i32, rf: i16) {
    let mut raw = RawClient::connect(c.broker_addr(1));
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)])
        .with_timeout_ms(30_000);
    let resp = raw.send(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "create {name}: {resp:?}");
}

/// Every segment file (`*.log`) of a partition directory, by name.
fn segments(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// Produces `n` records (values numbered from `from`) over both partitions.
fn produce(bootstrap: &str, acks: &str, from: usize, n: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let values: Vec<String> = (from..from + n)
        .map(|i| format!("value-{i}-{}", "x".repeat(i % 300)))
        .collect();
    rt.block_on(async {
        let mut pending = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let rec = FutureRecord::to("replicated")
                .partition(i as i32 % 2)
                .key("k")
                .payload(value);
            pending.push(producer.send(rec, Duration::from_secs(60)));
        }
        for f in pending {
            f.await.expect("produce acknowledged");
        }
    });
}

/// Waits until every node's copy of each partition holds the same bytes.
fn converge(c: &SluiceCluster, what: &str) {
    let started = Instant::now();
    for p in 0..2 {
        let bound = Instant::now() + LONG;
        loop {
            let copies: Vec<_> = c
                .broker_ids()
                .into_iter()
                .map(|id| segments(&c.dir(id).join(format!("replicated-{p}"))))
                .collect();
            let total: usize = copies[0].iter().map(|(_, b)| b.len()).sum();
            if total > 0 && copies.iter().all(|copy| *copy == copies[0]) {
                println!(
                    "{what}: partition {p}: {total} bytes identical on all 3 nodes after {:.2} s",
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                Instant::now() < bound,
                "{what}: partition {p}: copies differ: {:?}",
                copies
                    .iter()
                    .map(|c| c
                        .iter()
                        .map(|(n, b)| (n.clone(), b.len()))
                        .collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn followers_hold_byte_identical_segments() {
    let mut c = SluiceCluster::start(
        BIN,
        ClusterLayout::Combined(3),
        &[
            ("broker.session.timeout.ms", "6000"),
            ("broker.heartbeat.interval.ms", "500"),
        ],
    )
    .expect("the cluster starts");
    create_topic(&c, "replicated", 2, 3);
    produce(c.broker_addr(1), "all", 0, 400);
    converge(&c, "after 400 records");

    // A follower killed with kill -9 while records keep coming catches up
    // from its own log end after a restart.
    let m = fetch_metadata(c.broker_addr(1).parse().unwrap(), Some(&["replicated"])).unwrap();
    let leaders: Vec<i32> = (0..2)
        .map(|p| m.partition("replicated", p).expect("listed").leader)
        .collect();
    let victim = c
        .broker_ids()
        .into_iter()
        .find(|id| !leaders.contains(id))
        .expect("3 nodes, 2 leaders");
    c.node_mut(victim).process.kill().unwrap();
    let bootstrap = c.broker_addr(leaders[0]).to_string();
    produce(&bootstrap, "1", 400, 400);
    c.node_mut(victim).process.restart().unwrap();
    converge(&c, "after a follower's kill -9 and restart");
}

#[test]
fn a_restarted_follower_catches_up_byte_for_byte() {
    let mut c = SluiceCluster::start(
        BIN,
        ClusterLayout::Combined(3),
        &[
            ("broker.session.timeout.ms", "6000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("replica.lag.time.max.ms", "6000"),
        ],
    )
    .expect("the cluster starts");
    create_topic(&c, "replicated", 2, 3);
    produce(c.broker_addr(1), "all", 0, 400);
    converge(&c, "after 400 records");

    // A follower killed with kill -9 while records keep coming catches up
    // from its own log end after a restart.
    let m = fetch_metadata(c.broker_addr(1).parse().unwrap(), Some(&["replicated"])).unwrap();
    let leaders: Vec<i32> = (0..2)
        .map(|p| m.partition("replicated", p).expect("listed").leader)
        .collect();
    let victim = c
        .broker_ids()
        .into_iter()
        .find(|id| !leaders.contains(id))
        .expect("3 nodes, 2 leaders");
    c.node_mut(victim).process.kill().unwrap();
    let bootstrap = c.broker_addr(leaders[0]).to_string();
    produce(&bootstrap, "1", 400, 400);
    c.node_mut(victim).process.restart().unwrap();
    converge(&c, "after a follower's kill -9 and restart");
}
