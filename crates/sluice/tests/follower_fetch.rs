//! Fetch from the closest replica (KIP-392) on real processes: 3 combined
//! nodes in racks `rack-1`..`rack-3` with
//! `replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector`,
//! a topic at replication factor 3 (`min.insync.replicas=2`), an idempotent
//! `acks=all` librdkafka producer, and a librdkafka consumer with
//! `client.rack` set to the rack of a follower of the partition.
//!
//! - The consumer reads every acknowledged record exactly once, and they
//!   were served by the follower in its rack: that node's
//!   `sluice_topic_records_out_total` for the topic (a follower serves the
//!   topic to no one else: replica fetchers fetch from the leader) covers
//!   every record, while the third node's stays 0.
//! - When that follower is killed (kill -9) in the middle, the consumer
//!   goes back to the leader and goes on reading: every acknowledged
//!   record, before and after the kill, exactly once.
//!
//! - The same with the Java consumer (Kafka 4.1.2's console consumer with
//!   `client.rack`; skipped loudly without java and the jars).
//! - Raw probes (PreferredReadReplica for each client rack, follower reads
//!   at, below and beyond the follower's high watermark, epochs, old
//!   versions, ListOffsets) answer as listed; with `SLUICE_TEST_FULL=1` the
//!   same probes against a 3-node Apache Kafka 4.1.2 must answer the same.
//!
//! All fail without the selector: `SLUICE_TEST_NO_REPLICA_SELECTOR=1`
//! starts the nodes without `replica.selector.class`, and the first test
//! then finds nothing served by the follower, the second never sees the
//! follower serve anything before the kill.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    create_topic, full_isr, partitions, produce_until, wait_acked, wait_metadata, Acks, LONG,
};
use common::{env_on, http_get, metrics_addr, sample};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const RACK_AWARE: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

fn start() -> SluiceCluster {
    let mut extra = vec![
        ("broker.session.timeout.ms", "6000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("replica.lag.time.max.ms", "6000"),
        ("broker.rack", "rack-{id}"),
    ];
    if !env_on("SLUICE_TEST_NO_REPLICA_SELECTOR") {
        extra.push(("replica.selector.class", RACK_AWARE));
    }
    SluiceCluster::start(BIN, ClusterLayout::Combined(3), &extra).expect("the cluster starts")
}

/// `topic` (one partition) in sync on all three nodes: (leader, a
/// follower, the other follower).
fn replicated_topic(c: &SluiceCluster, topic: &str) -> (i32, i32, i32) {
    let all: BTreeSet<i32> = [1, 2, 3].into();
    create_topic(c, 1, topic, 1);
    let m = wait_metadata(c, 1, "all three in sync", |m| full_isr(m, topic, 1, &all));
    let leader = partitions(&m, topic)[&0].0;
    let others: Vec<i32> = all.iter().copied().filter(|&b| b != leader).collect();
    (leader, others[0], others[1])
}

/// The records of `topic` node `id` has served to fetchers since it
/// started (`sluice_topic_records_out_total`).
fn records_out(c: &SluiceCluster, id: i32, topic: &str) -> f64 {
    let (_, body) = http_get(&metrics_addr(&c.node(id).process), "/metrics");
    sample(
        &body,
        "sluice_topic_records_out_total",
        &[&format!("topic=\"{topic}\"")],
    )
    .unwrap_or(0.0)
}

/// A librdkafka consumer in `rack` (`client.rack`), assigned partition 0
/// of `topic` from the beginning.
fn consumer(bootstrap: &str, topic: &str, rack: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("follower-fetch-{topic}"))
        .set("enable.auto.commit", "false")
        .set("client.rack", rack)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Polls `consumer` into `seen` (offset → value) until `done(seen)`;
/// panics on an offset delivered twice.
fn poll_until(
    consumer: &BaseConsumer,
    seen: &mut BTreeMap<i64, String>,
    what: &str,
    done: impl Fn(&BTreeMap<i64, String>) -> bool,
) {
    let bound = Instant::now() + LONG;
    while !done(seen) {
        assert!(
            Instant::now() < bound,
            "{what}: the consumer stopped at {} records (last offset {:?})",
            seen.len(),
            seen.keys().next_back()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            if let Some(before) = seen.insert(m.offset(), value.clone()) {
                panic!(
                    "offset {} delivered twice: {before} and {value}",
                    m.offset()
                );
            }
        }
    }
}

/// Every acknowledged value read at its offset, every value read once.
fn check_exactly_once(acks: &Acks, seen: &BTreeMap<i64, String>) {
    let mut values = BTreeSet::new();
    for (offset, value) in seen {
        assert!(
            values.insert(value),
            "{value} read twice (again at {offset})"
        );
    }
    for (_, offset, value) in &acks.acked {
        assert_eq!(
            seen.get(offset),
            Some(value),
            "acknowledged {value} at {offset}"
        );
    }
}

fn every_acked(acks: &Acks) -> impl Fn(&BTreeMap<i64, String>) -> bool + '_ {
    |seen| acks.acked.iter().all(|(_, o, _)| seen.contains_key(o))
}

#[test]
fn a_consumer_reads_everything_from_the_follower_in_its_rack() {
    const TOPIC: &str = "near";
    let mut c = start();
    let (leader, follower, other) = replicated_topic(&c, TOPIC);
    let bootstrap = c.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let producer = produce_until(
        bootstrap.clone(),
        TOPIC,
        1,
        30_000,
        stop.clone(),
        acks.clone(),
    );
    wait_acked(&acks, 3000, "producing");
    stop.store(true, Ordering::Release);
    producer.join().expect("producer thread");
    let acks = acks.lock().unwrap();
    assert_eq!(records_out(&c, follower, TOPIC), 0.0, "nothing read yet");

    let consumer = consumer(&bootstrap, TOPIC, &format!("rack-{follower}"));
    let mut seen = BTreeMap::new();
    poll_until(&consumer, &mut seen, "reading", every_acked(&acks));
    check_exactly_once(&acks, &seen);

    let served = records_out(&c, follower, TOPIC);
    println!(
        "{} acknowledged, {} read; records served: follower {follower} (the consumer's rack) {served}, \
         other follower {other} {}, leader {leader} (incl. replication) {}",
        acks.acked.len(),
        seen.len(),
        records_out(&c, other, TOPIC),
        records_out(&c, leader, TOPIC)
    );
    assert!(
        served >= acks.acked.len() as f64,
        "the follower in the consumer's rack served {served} of {} records",
        acks.acked.len()
    );
    assert_eq!(
        records_out(&c, other, TOPIC),
        0.0,
        "the follower in another rack served nothing"
    );
}

#[test]
fn a_consumer_falls_back_to_the_leader_when_its_follower_is_killed() {
    const TOPIC: &str = "fallback";
    let mut c = start();
    let (leader, follower, _) = replicated_topic(&c, TOPIC);
    let bootstrap = c.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let producer = produce_until(
        bootstrap.clone(),
        TOPIC,
        1,
        30_000,
        stop.clone(),
        acks.clone(),
    );
    wait_acked(&acks, 500, "before the consumer starts");

    // Reading from the follower of its rack while the producer sends.
    let consumer = consumer(&bootstrap, TOPIC, &format!("rack-{follower}"));
    let mut seen = BTreeMap::new();
    let bound = Instant::now() + LONG;
    while records_out(&c, follower, TOPIC) < 500.0 {
        assert!(
            Instant::now() < bound,
            "the follower in the consumer's rack never served it ({} records read)",
            seen.len()
        );
        poll_until(&consumer, &mut seen, "from the follower", |s| !s.is_empty());
        let n = seen.len();
        poll_until(&consumer, &mut seen, "from the follower", |s| s.len() > n);
    }

    // Kill it: the consumer goes back to the leader and reads on, up to
    // offsets written well after the kill (at most 64 sends are in flight,
    // so the dead follower never had them).
    c.node_mut(follower).process.kill().unwrap();
    let killed = Instant::now();
    let (at_kill, acked_at_kill) = (seen.len(), acks.lock().unwrap().acked.len());
    let beyond = acks
        .lock()
        .unwrap()
        .acked
        .iter()
        .map(|a| a.1)
        .max()
        .unwrap()
        + 1000;
    poll_until(&consumer, &mut seen, "after the kill", |s| {
        s.keys().next_back().is_some_and(|&o| o >= beyond)
    });
    println!(
        "follower {follower} killed with {at_kill} records read, {acked_at_kill} acknowledged; \
         offset {beyond} (written after the kill) read from leader {leader} within {:.2} s",
        killed.elapsed().as_secs_f64()
    );

    stop.store(true, Ordering::Release);
    producer.join().expect("producer thread");
    let acks = acks.lock().unwrap();
    poll_until(&consumer, &mut seen, "the rest", every_acked(&acks));
    check_exactly_once(&acks, &seen);
    println!(
        "{} acknowledged ({} failed sends), {} read, each acknowledged record once",
        acks.acked.len(),
        acks.failed,
        seen.len()
    );
}

/// What one raw Fetch answered for partition 0: (error code,
/// PreferredReadReplica as seen from the probe: "none", "follower" or
/// "other", high watermark, whether records came).
type Answer = (i16, &'static str, i64, bool);

/// Raw probes of KIP-392's rules, against any 3-node cluster whose nodes
/// are in racks `rack-<id>` with the rack-aware selector: `addr(id)` is a
/// node's client address. `topic` (RF=3, one partition) must hold
/// `records` records, all replicated. Returns (probe, answer) in order.
fn probe(addr: &dyn Fn(i32) -> String, topic: &str, records: i64) -> Vec<(&'static str, Answer)> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{
        BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, TopicName,
    };
    let name = || TopicName(common::sb(topic));
    let m = common::RawClient::connect(&addr(1)).send(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name()))
        ])),
    );
    let p = &m.topics[0].partitions[0];
    let (leader, epoch) = (p.leader_id.0, p.leader_epoch);
    let follower = p
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .find(|&b| b != leader)
        .unwrap();
    let fetch = |node: i32, version: i16, rack: &str, offset: i64, epoch: i32| -> Answer {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_rack_id(common::sb(rack))
            .with_topics(vec![FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(epoch)
                    .with_partition_max_bytes(1 << 20)])]);
        let r = common::RawClient::connect(&addr(node)).send(version, &req);
        let d = &r.responses[0].partitions[0];
        let preferred = match d.preferred_read_replica.0 {
            -1 => "none",
            b if b == follower => "follower",
            _ => "other",
        };
        let has_records = d.records.as_ref().is_some_and(|r| !r.is_empty());
        (d.error_code, preferred, d.high_watermark, has_records)
    };
    // The follower's high watermark reaches the leader's within a fetch
    // round or two.
    let bound = Instant::now() + LONG;
    while fetch(follower, 12, "", 0, epoch).2 < records {
        assert!(
            Instant::now() < bound,
            "the follower's HW never reached {records}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let list_offsets = |node: i32| -> i16 {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name())
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(epoch)
                    .with_timestamp(-1)])]);
        let r = common::RawClient::connect(&addr(node)).send(7, &req);
        r.topics[0].partitions[0].error_code
    };
    let (rf, rl) = (format!("rack-{follower}"), format!("rack-{leader}"));
    vec![
        (
            "leader, v12, the follower's rack",
            fetch(leader, 12, &rf, 0, epoch),
        ),
        (
            "leader, v12, the follower's rack, at the end offset",
            fetch(leader, 12, &rf, records, epoch),
        ),
        (
            "leader, v12, the leader's rack",
            fetch(leader, 12, &rl, 0, epoch),
        ),
        (
            "leader, v12, a rack of no replica",
            fetch(leader, 12, "nowhere", 0, epoch),
        ),
        ("leader, v12, no rack", fetch(leader, 12, "", 0, epoch)),
        ("leader, v10 (no RackId)", fetch(leader, 10, &rf, 0, epoch)),
        (
            "leader, v12, the follower's rack, unknown epoch",
            fetch(leader, 12, &rf, 0, epoch + 1),
        ),
        (
            "follower, v12, offset 0",
            fetch(follower, 12, &rf, 0, epoch),
        ),
        (
            "follower, v12, at its end",
            fetch(follower, 12, &rf, records, epoch),
        ),
        (
            "follower, v12, beyond its end",
            fetch(follower, 12, &rf, records + 1, epoch),
        ),
        (
            "follower, v12, unknown epoch",
            fetch(follower, 12, &rf, 0, epoch + 1),
        ),
        ("follower, v10", fetch(follower, 10, &rf, 0, epoch)),
        (
            "follower, ListOffsets v7",
            (list_offsets(follower), "none", -1, false),
        ),
    ]
}

/// Produces `n` records to partition 0 of `topic` with acks=all.
fn produce_n(bootstrap: &str, topic: &str, n: usize) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..n {
            let v = format!("probe-{i}");
            p.send(
                FutureRecord::to(topic).partition(0).key("k").payload(&v),
                Duration::from_secs(60),
            )
            .await
            .expect("acknowledged");
        }
    });
}

/// Sluice answers KIP-392's raw probes; with `SLUICE_TEST_FULL=1` the same
/// probes run against a 3-node Apache Kafka 4.1.2 in the same racks, and
/// both must answer alike.
#[test]
fn raw_answers_match_kafkas() {
    const TOPIC: &str = "probe";
    const N: i64 = 10;
    let mut c = start();
    replicated_topic(&c, TOPIC);
    produce_n(&c.bootstrap(), TOPIC, N as usize);
    let sluice = probe(&|id| c.broker_addr(id).to_string(), TOPIC, N);
    for (what, answer) in &sluice {
        println!("sluice: {what}: {answer:?}");
    }
    let expected: Vec<Answer> = vec![
        (0, "follower", N, false),
        (0, "follower", N, false),
        (0, "none", N, true),
        (0, "none", N, true),
        (0, "none", N, true),
        (0, "none", N, true),
        (75, "none", -1, false),
        (0, "none", N, true),
        (0, "none", N, false),
        (1, "none", -1, false),
        (75, "none", -1, false),
        (6, "none", -1, false),
        (6, "none", -1, false),
    ];
    let answers: Vec<Answer> = sluice.iter().map(|(_, a)| *a).collect();
    assert_eq!(answers, expected);
    drop(c);

    if !env_on("SLUICE_TEST_FULL") {
        eprintln!("Kafka comparison skipped: set SLUICE_TEST_FULL=1 to start a 3-node Kafka");
        return;
    }
    let Some(mut kafka) = sluice_testkit::ReferenceKafkaCluster::start_with(&[
        ("broker.rack", "rack-{id}"),
        ("replica.selector.class", RACK_AWARE),
    ])
    .expect("start the Kafka cluster") else {
        return;
    };
    let mut raw = common::RawClient::connect(&kafka.addr(1).to_string());
    let resp = raw.send(
        7,
        &kafka_protocol::messages::CreateTopicsRequest::default()
            .with_topics(vec![
                kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(common::sb(TOPIC)))
                    .with_num_partitions(1)
                    .with_replication_factor(3),
            ])
            .with_timeout_ms(30_000),
    );
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    let bound = Instant::now() + LONG;
    loop {
        let m = kafka.metadata(Some(&[TOPIC]));
        if m.is_ok_and(|m| full_isr(&m, TOPIC, 1, &[1, 2, 3].into())) {
            break;
        }
        assert!(Instant::now() < bound, "Kafka's topic never in sync");
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_n(&kafka.bootstrap(), TOPIC, N as usize);
    let theirs = probe(&|id| kafka.addr(id).to_string(), TOPIC, N);
    for ((what, ours), (_, kafkas)) in sluice.iter().zip(&theirs) {
        println!("{what}: sluice {ours:?}, kafka {kafkas:?}");
    }
    let kafka_answers: Vec<Answer> = theirs.iter().map(|(_, a)| *a).collect();
    assert_eq!(
        answers, kafka_answers,
        "Sluice and Kafka answer differently"
    );
    kafka.stop();
}

/// The Java consumer (Kafka 4.1.2's console consumer) with `client.rack`
/// reads every acknowledged record once, served by the follower in its rack.
#[test]
fn the_java_consumer_reads_from_the_follower_in_its_rack() {
    const TOPIC: &str = "near-java";
    if !common::kafka_tools_ready("Java consumer KIP-392") {
        return;
    }
    let mut c = start();
    let (_, follower, other) = replicated_topic(&c, TOPIC);
    let bootstrap = c.bootstrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let producer = produce_until(
        bootstrap.clone(),
        TOPIC,
        1,
        30_000,
        stop.clone(),
        acks.clone(),
    );
    wait_acked(&acks, 2000, "producing");
    stop.store(true, Ordering::Release);
    producer.join().expect("producer thread");
    let acks = acks.lock().unwrap();
    let n = acks.acked.len().to_string();
    let out = common::kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--offset",
            "earliest",
            "--max-messages",
            &n,
            "--timeout-ms",
            "120000",
            "--consumer-property",
            &format!("client.rack=rack-{follower}"),
        ],
    );
    let read: Vec<&str> = out.lines().collect();
    let mut acked: Vec<(i64, &str)> = acks
        .acked
        .iter()
        .map(|(_, o, v)| (*o, v.as_str()))
        .collect();
    acked.sort();
    let expected: Vec<&str> = acked.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        read, expected,
        "the Java consumer read every record once, in order"
    );
    let served = records_out(&c, follower, TOPIC);
    println!(
        "Java consumer: {} records read; served by follower {follower} (its rack) {served}, other follower {other} {}",
        read.len(),
        records_out(&c, other, TOPIC)
    );
    assert!(served >= acked.len() as f64, "the follower served {served}");
    assert_eq!(records_out(&c, other, TOPIC), 0.0);
}
