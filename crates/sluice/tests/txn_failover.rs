//! Coordinator failover on a 3-node Sluice cluster: a librdkafka
//! transactional producer commits transactions over 3 partitions (RF 3,
//! `min.insync.replicas=2`; `__transaction_state` is replicated the same
//! way) and every fourth one is aborted after its records are written.
//! Mid-stream the broker that coordinates its transactional id is killed
//! with kill -9; another broker takes the coordinator's partition over,
//! loads the id from the replicated `__transaction_state`, and the
//! producer goes on (a transaction caught by the kill is aborted and
//! counted as such). The node comes back. A read_committed consumer then
//! reads exactly the values of the committed transactions, each once; no
//! aborted one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{create_topic, partitions, wait_metadata, LONG};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_testkit::{ClusterLayout, SluiceCluster};

const TOPIC: &str = "txn-failover";
const TXN: &str = "txn-failover-id";
const PARTITIONS: i32 = 3;
const TXN_SIZE: u64 = 6;
const CALL: Duration = Duration::from_secs(30);

/// How one transaction ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Committed,
    Aborted,
}

/// One transaction of `values`: sent, flushed, `before_end` called, then
/// committed (or aborted when `abort`, or when commit says it must be).
/// `None`: the outcome is unknown (the producer must be recreated).
fn transaction(
    p: &BaseProducer,
    values: &[u64],
    abort: bool,
    before_end: impl FnOnce(),
) -> Option<Outcome> {
    p.begin_transaction().ok()?;
    for v in values {
        let text = v.to_string();
        let record = BaseRecord::<str, str>::to(TOPIC)
            .partition((*v % PARTITIONS as u64) as i32)
            .key(&text)
            .payload(&text);
        p.send(record).ok()?;
    }
    let flushed = p.flush(CALL).is_ok();
    before_end();
    if abort || !flushed {
        return p.abort_transaction(CALL).ok().map(|_| Outcome::Aborted);
    }
    for _ in 0..5 {
        match p.commit_transaction(CALL) {
            Ok(()) => return Some(Outcome::Committed),
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                return p.abort_transaction(CALL).ok().map(|_| Outcome::Aborted);
            }
            Err(KafkaError::Transaction(e)) if e.is_retriable() => continue,
            Err(_) => return None,
        }
    }
    None
}

fn producer(bootstrap: &str) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", TXN)
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let deadline = Instant::now() + LONG;
    while let Err(e) = p.init_transactions(CALL) {
        assert!(Instant::now() < deadline, "init_transactions: {e}");
        std::thread::sleep(Duration::from_millis(500));
    }
    p
}

/// Every value a read_committed consumer reads, with its count.
fn read_committed(bootstrap: &str) -> BTreeMap<u64, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-failover-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut at_end = BTreeSet::new();
    let bound = Instant::now() + LONG;
    while at_end.len() < PARTITIONS as usize {
        assert!(Instant::now() < bound, "read never reached the end");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v: u64 = std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                *seen.entry(v).or_default() += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    seen
}

#[test]
fn transactions_go_on_when_their_coordinator_is_killed() {
    let mut c = SluiceCluster::start(
        env!("CARGO_BIN_EXE_sluice"),
        ClusterLayout::Combined(3),
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
        ],
    )
    .expect("the cluster starts");
    let brokers = c.broker_ids();
    create_topic(&c, brokers[0], TOPIC, PARTITIONS);
    wait_metadata(&c, brokers[0], "every partition led", |m| {
        partitions(m, TOPIC).values().all(|(l, _)| *l >= 0) && partitions(m, TOPIC).len() == 3
    });
    let bootstrap = c.bootstrap();
    let mut p = producer(&bootstrap);
    let (coordinator, _) = common::txn::coordinator(c.broker_addr(brokers[0]), TXN);
    let mut committed: BTreeSet<u64> = BTreeSet::new();
    let mut aborted: BTreeSet<u64> = BTreeSet::new();
    let mut unknown: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    for n in 0..40u64 {
        if n == 30 {
            c.node_mut(coordinator).process.restart().unwrap();
        }
        let values: Vec<u64> = (next..next + TXN_SIZE).collect();
        next += TXN_SIZE;
        // Transaction 15 has its records written when its coordinator dies.
        let kill = || {
            if n == 15 {
                println!("killing coordinator {coordinator} inside transaction {n}");
                c.node_mut(coordinator).process.kill().unwrap();
            }
        };
        match transaction(&p, &values, n % 4 == 3, kill) {
            Some(Outcome::Committed) => committed.extend(values),
            Some(Outcome::Aborted) => aborted.extend(values),
            None => {
                unknown.extend(values);
                p = producer(&bootstrap);
            }
        }
    }
    let (now, _) = common::txn::coordinator(c.broker_addr(brokers[1]), TXN);
    println!(
        "committed {} values, aborted {}, unknown {}; coordinator {coordinator} -> {now}",
        committed.len(),
        aborted.len(),
        unknown.len()
    );
    assert!(committed.len() as u64 >= 20 * TXN_SIZE, "too few commits");
    let seen = read_committed(&bootstrap);
    let missing: Vec<&u64> = committed.iter().filter(|v| !seen.contains_key(v)).collect();
    let twice: Vec<(&u64, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let aborted_read: Vec<&u64> = seen.keys().filter(|v| aborted.contains(v)).collect();
    let phantom: Vec<&u64> = seen
        .keys()
        .filter(|v| !committed.contains(v) && !unknown.contains(v) && !aborted.contains(v))
        .collect();
    assert!(missing.is_empty(), "lost committed values: {missing:?}");
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    assert!(
        aborted_read.is_empty(),
        "aborted values read: {aborted_read:?}"
    );
    assert!(phantom.is_empty(), "values never sent: {phantom:?}");
}
