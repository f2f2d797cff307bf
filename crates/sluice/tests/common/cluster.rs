//! Helpers for tests on a replicating [`SluiceCluster`] (issue 17):
//! Metadata polling, RF=3 topics, an idempotent `acks=all` producer that
//! records what was acknowledged, and signals to nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sluice_testkit::metadata::{fetch_metadata, ClusterMetadata};
use sluice_testkit::SluiceCluster;

use super::{sb, RawClient};

/// Generous bound for anything the cluster must do on a busy 2-core box.
pub const LONG: Duration = Duration::from_secs(120);

pub fn metadata(c: &SluiceCluster, via: i32) -> Option<ClusterMetadata> {
    fetch_metadata(c.broker_addr(via).parse().unwrap(), None).ok()
}

/// Polls broker `via`'s Metadata until `check` holds.
pub fn wait_metadata(
    c: &SluiceCluster,
    via: i32,
    what: &str,
    check: impl Fn(&ClusterMetadata) -> bool,
) -> ClusterMetadata {
    let bound = Instant::now() + LONG;
    let mut last = None;
    loop {
        if let Some(m) = metadata(c, via) {
            if check(&m) {
                return m;
            }
            last = Some(m);
        }
        assert!(
            Instant::now() < bound,
            "{what}: broker {via} never showed it; last: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (leader, isr) of every partition of `topic`.
pub fn partitions(m: &ClusterMetadata, topic: &str) -> BTreeMap<i32, (i32, BTreeSet<i32>)> {
    m.topics
        .iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition, (p.leader, p.isr.iter().copied().collect())))
        })
        .collect()
}

/// Every one of the `count` partitions of `topic` led, with ISR `brokers`.
pub fn full_isr(m: &ClusterMetadata, topic: &str, count: usize, brokers: &BTreeSet<i32>) -> bool {
    let parts = partitions(m, topic);
    parts.len() == count
        && parts
            .values()
            .all(|(leader, isr)| *leader >= 0 && isr == brokers)
}

/// Creates `name` with `partitions` partitions at replication factor 3
/// and `min.insync.replicas=2`, through broker `via`.
pub fn create_topic(c: &SluiceCluster, via: i32, name: &str, partitions: i32) {
    let mut raw = RawClient::connect(c.broker_addr(via));
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(sb("min.insync.replicas"))
                .with_value(Some(sb("2")))])])
        .with_timeout_ms(30_000);
    let resp = raw.send(7, &req);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "create {name} via {via}: {resp:?}"
    );
}

/// What the producer thread saw: (partition, offset, value) of every
/// acknowledged send, and the number of sends that failed.
#[derive(Default)]
pub struct Acks {
    pub acked: Vec<(i32, i64, String)>,
    pub failed: usize,
}

/// Sends unique values round-robin to `partitions` partitions with an
/// idempotent `acks=all` producer until `stop`, at most 64 in flight, each
/// request timing out on the client after `request_timeout_ms`.
pub fn produce_until(
    bootstrap: String,
    topic: &'static str,
    partitions: i32,
    request_timeout_ms: u32,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Acks>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "90000")
            .set("request.timeout.ms", request_timeout_ms.to_string())
            .set("linger.ms", "2")
            .create()
            .expect("producer");
        rt.block_on(async {
            let mut next = 0u64;
            while !stop.load(Ordering::Acquire) {
                let mut window = Vec::new();
                for _ in 0..64 {
                    let part = (next % partitions as u64) as i32;
                    let value = format!("v{next}");
                    next += 1;
                    let rec = FutureRecord::to(topic)
                        .partition(part)
                        .key("k")
                        .payload(&value);
                    let f = p.send_result(rec).map_err(|(e, _)| e);
                    window.push((part, value.clone(), f));
                }
                for (part, value, f) in window {
                    let result = match f {
                        Ok(f) => f.await.ok(),
                        Err(_) => None,
                    };
                    let mut a = acks.lock().unwrap();
                    match result {
                        Some(Ok(d)) => {
                            assert_eq!(
                                d.partition, part,
                                "{value} acknowledged on another partition"
                            );
                            a.acked.push((part, d.offset, value));
                        }
                        _ => a.failed += 1,
                    }
                }
            }
        });
    })
}

pub fn acked_count(acks: &Mutex<Acks>) -> usize {
    acks.lock().unwrap().acked.len()
}

pub fn wait_acked(acks: &Mutex<Acks>, at_least: usize, what: &str) {
    let bound = Instant::now() + LONG;
    while acked_count(acks) < at_least {
        assert!(
            Instant::now() < bound,
            "{what}: only {} acknowledged",
            acked_count(acks)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, ...) to node `id`.
pub fn signal(c: &SluiceCluster, id: i32, sig: &str) {
    let pid = c.node(id).process.pid().expect("running");
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}
