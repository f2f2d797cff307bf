//! Helpers for tests on a replicating [`SluiceCluster`] (issue 17):
//! Metadata polling, RF=3 topics, an idempotent `acks=all` producer that
//! records what was acknowledged, reading everything back, comparing
//! replicas' segment files, and signals to nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};
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

/// Creates `topic` (RF 3, `min.insync.replicas=2`) through node 1 and
/// waits until node 1 shows every partition led with `all` in sync.
pub fn create_in_sync_topic(c: &SluiceCluster, topic: &str, partitions: i32, all: &BTreeSet<i32>) {
    create_topic(c, 1, topic, partitions);
    wait_metadata(c, 1, "every partition led, with all three in sync", |m| {
        full_isr(m, topic, partitions as usize, all)
    });
}

/// One Produce of the single record `value` to `topic`-0 through the
/// broker at `addr`, with `acks` and the broker-side `timeout_ms`: the
/// partition's error code and base offset.
pub fn produce_one(addr: &str, topic: &str, acks: i16, timeout_ms: i32, value: &str) -> (i16, i64) {
    let mut b = BatchBuilder::new(CompressionType::None);
    b.append(
        Timestamp(1_700_000_000_000),
        None,
        Some(value.as_bytes()),
        &[],
    )
    .unwrap();
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::from(b.build().unwrap())))])]);
    let r = RawClient::connect(addr).send(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// An idempotent `acks=all` producer ([`produce_until`]) running.
pub struct Producing {
    pub acks: Arc<Mutex<Acks>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Producing {
    pub fn start(bootstrap: String, topic: &'static str, partitions: i32) -> Producing {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Acks::default()));
        let thread = produce_until(
            bootstrap,
            topic,
            partitions,
            30_000,
            stop.clone(),
            acks.clone(),
        );
        Producing { acks, stop, thread }
    }

    /// Stops it once its window is answered; what it saw.
    pub fn finish(self) -> Acks {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("producer thread");
        std::mem::take(&mut *self.acks.lock().unwrap())
    }
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

/// Every record of `topic` below each partition's high watermark, as
/// (partition → offset → value), read with librdkafka from the beginning.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, BTreeMap<i64, String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("replication-test-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for part in 0..partitions {
        tpl.add_partition_offset(topic, part, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, BTreeMap<i64, String>> = BTreeMap::new();
    let mut at_end = BTreeSet::new();
    let bound = Instant::now() + LONG;
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < bound,
            "read never reached the end: {at_end:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                out.entry(m.partition()).or_default().insert(m.offset(), v);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// The concatenated `.log` bytes of `dir`'s segments, in offset order.
pub fn segment_bytes(dir: &Path) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// The partition directory `topic-partition` under node `id`'s data dir.
pub fn partition_dir(c: &SluiceCluster, id: i32, topic: &str, partition: i32) -> PathBuf {
    let name = format!("{topic}-{partition}");
    let base = c.dir(id);
    walk_for(&base, &name).unwrap_or_else(|| base.join(name))
}

pub fn walk_for(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
            if let Some(found) = walk_for(&p, name) {
                return Some(found);
            }
        }
    }
    None
}

/// Asserts that every acknowledged value was read at the offset it was
/// acknowledged with (no loss, no offset with another value) and that no
/// value was read twice; returns how many values were read.
pub fn check_acked(acks: &Acks, read: &BTreeMap<i32, BTreeMap<i64, String>>) -> usize {
    let mut positions: BTreeMap<&str, (i32, i64)> = BTreeMap::new();
    for (&part, records) in read {
        for (&offset, value) in records {
            if let Some(first) = positions.insert(value, (part, offset)) {
                panic!("duplicate: {value} at {first:?} and {:?}", (part, offset));
            }
        }
    }
    for (part, offset, value) in &acks.acked {
        match read.get(part).and_then(|r| r.get(offset)) {
            Some(v) if v == value => {}
            Some(v) => {
                panic!("inconsistent offset: {value} acknowledged at {part}/{offset}, read {v}")
            }
            None => panic!("lost: {value} acknowledged at {part}/{offset}, never read"),
        }
    }
    positions.len()
}

/// Waits until the replicas of `topic`-`part` on `nodes` hold
/// byte-identical, non-empty segment data.
pub fn wait_identical(c: &SluiceCluster, nodes: &BTreeSet<i32>, topic: &str, part: i32) {
    let bound = Instant::now() + LONG;
    loop {
        let copies: Vec<Vec<u8>> = nodes
            .iter()
            .map(|&id| segment_bytes(&partition_dir(c, id, topic, part)))
            .collect();
        if !copies[0].is_empty() && copies.iter().all(|b| *b == copies[0]) {
            return;
        }
        assert!(
            Instant::now() < bound,
            "{topic}-{part}: replicas on {nodes:?} differ: sizes {:?}",
            copies.iter().map(Vec::len).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
