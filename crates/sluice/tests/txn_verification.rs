//! KIP-890 part 1 against real `sluice` processes, with raw Kafka
//! requests playing a transactional producer and its zombie:
//!
//! 1. A transactional batch for a partition the producer never added to
//!    its transaction is refused (INVALID_TXN_STATE): the leader asked the
//!    coordinator first.
//! 2. Added, the same batch is written.
//! 3. The transaction is aborted (EndTxn, markers written).
//! 4. A late batch of the aborted transaction (the same producer epoch,
//!    the next sequence: a retry that was stuck in the network) arrives.
//!    With verification it is refused, and the last stable offset reaches
//!    the high watermark. Without it
//!    (`transaction.partition.verification.enable=false`) it is written
//!    and opens a transaction no coordinator knows: the last stable offset
//!    stops below the high watermark for good — the hanging transaction
//!    the check exists for, shown so this test can fail.
//!
//! With transaction version 2 (KIP-890 part 2) the producer does not add
//! partitions itself: its Produce v12 makes the leader add them, and EndTxn
//! v5 bumps the epoch, so the late batch is fenced by its epoch.
//!
//! On one node the coordinator answers the question itself; in a 3-node
//! cluster the partition's leader is not the coordinator, so the question
//! goes over the inter-broker listener (AddPartitionsToTxn v4
//! `verify_only`, v5 to add).

mod common;

use common::cluster::{create_topic, metadata, partitions, wait_metadata};
use common::txn::{self as raw, retried, txn_batch};
use common::{http_get, metrics_addr, sample, sb, start, RawClient};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use sluice_testkit::{ClusterLayout, SluiceCluster};

const TOPIC: &str = "verified";
const TXN: &str = "verified-txn";
const INVALID_TXN_STATE: i16 = 48;

fn coordinator(bootstrap: &str) -> (i32, String) {
    raw::coordinator(bootstrap, TXN)
}

fn init_producer_id(c: &mut RawClient) -> (i64, i16) {
    raw::init_producer_id(c, TXN)
}

/// A transactional Produce (v9) to `partition`: (code, base offset).
fn produce(c: &mut RawClient, partition: i32, records: Vec<u8>) -> (i16, i64) {
    produce_v(c, 9, partition, records)
}

/// [`produce`] in Produce `version` (12+: a transaction version 2 producer).
fn produce_v(c: &mut RawClient, version: i16, partition: i32, records: Vec<u8>) -> (i16, i64) {
    raw::produce(c, version, (TXN, TOPIC, partition), records)
}

fn add_partition(c: &mut RawClient, pid: i64, epoch: i16, partition: i32) -> i16 {
    raw::add_partitions(c, TXN, (pid, epoch), &[(TOPIC, partition)])[0]
}

fn end_txn(c: &mut RawClient, pid: i64, epoch: i16, commit: bool) -> i16 {
    raw::end_txn(c, 3, TXN, (pid, epoch), commit).0
}

/// EndTxn in `version`: (code, the epoch the answer says to go on with).
fn end_txn_v(c: &mut RawClient, version: i16, pid: i64, epoch: i16, commit: bool) -> (i16, i16) {
    raw::end_txn(c, version, TXN, (pid, epoch), commit)
}

/// The partition's latest offset: the high watermark, or in read_committed
/// the last stable offset.
fn latest(c: &mut RawClient, partition: i32, read_committed: bool) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let r = c.send(5, &req);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.offset
}

/// Steps 1–4 of the module docs against `coordinator` and `leader` (the
/// leader of `partition`); returns the late batch's code and the
/// partition's (high watermark, last stable offset) after it.
fn zombie_after_abort(coordinator: &str, leader: &str, partition: i32) -> (i16, i64, i64) {
    let mut coord = RawClient::connect(coordinator);
    let mut lead = RawClient::connect(leader);
    let (pid, epoch) = init_producer_id(&mut coord);
    let unadded = retried("unadded produce", || {
        produce(&mut lead, partition, txn_batch(pid, epoch, 0, "unadded")).0
    });
    assert_eq!(
        unadded, INVALID_TXN_STATE,
        "a partition not in the transaction"
    );
    let added = retried("AddPartitionsToTxn", || {
        add_partition(&mut coord, pid, epoch, partition)
    });
    assert_eq!(added, 0);
    let written = retried("added produce", || {
        produce(&mut lead, partition, txn_batch(pid, epoch, 0, "aborted")).0
    });
    assert_eq!(written, 0, "a partition in the transaction");
    assert_eq!(end_txn(&mut coord, pid, epoch, false), 0);
    let late = produce(&mut lead, partition, txn_batch(pid, epoch, 1, "late")).0;
    let hw = latest(&mut lead, partition, false);
    let lso = latest(&mut lead, partition, true);
    (late, hw, lso)
}

/// Transaction version 2 (KIP-890 part 2): the producer sends no
/// AddPartitionsToTxn; its Produce v12 makes the leader add the partition.
/// EndTxn v5 bumps the epoch, so the late batch of the aborted
/// transaction, in the old epoch, is fenced (INVALID_PRODUCER_EPOCH), and
/// the next transaction goes on in the new one. Returns the partition's
/// (high watermark, last stable offset) at the end.
fn version_2_transactions(coordinator: &str, leader: &str, partition: i32) -> (i64, i64) {
    const INVALID_PRODUCER_EPOCH: i16 = 47;
    let mut coord = RawClient::connect(coordinator);
    let mut lead = RawClient::connect(leader);
    let (pid, epoch) = init_producer_id(&mut coord);
    let added = retried("implicit add", || {
        produce_v(
            &mut lead,
            12,
            partition,
            txn_batch(pid, epoch, 0, "aborted"),
        )
        .0
    });
    assert_eq!(added, 0, "the leader adds the partition");
    let (code, bumped) = end_txn_v(&mut coord, 5, pid, epoch, false);
    assert_eq!((code, bumped), (0, epoch + 1), "EndTxn v5 bumps the epoch");
    let late = produce_v(&mut lead, 12, partition, txn_batch(pid, epoch, 1, "late")).0;
    assert_eq!(late, INVALID_PRODUCER_EPOCH, "the late batch");
    let next = retried("next transaction", || {
        produce_v(
            &mut lead,
            12,
            partition,
            txn_batch(pid, bumped, 0, "committed"),
        )
        .0
    });
    assert_eq!(next, 0);
    assert_eq!(end_txn_v(&mut coord, 5, pid, bumped, true), (0, bumped + 1));
    // A retry of that commit (its answer lost) is answered the same.
    assert_eq!(end_txn_v(&mut coord, 5, pid, bumped, true), (0, bumped + 1));
    (
        latest(&mut lead, partition, false),
        latest(&mut lead, partition, true),
    )
}

#[test]
fn version_2_producers_leave_the_add_to_the_leader() {
    let sluice = start(&[]);
    common::create_topic(&mut RawClient::connect(sluice.bootstrap()), TOPIC, &[]);
    let (_, coordinator) = coordinator(sluice.bootstrap());
    let (hw, lso) = version_2_transactions(&coordinator, sluice.bootstrap(), 0);
    println!("version 2: high watermark {hw}, last stable offset {lso}");
    assert_eq!(
        (hw, lso),
        (4, 4),
        "aborted, its marker, committed, its marker"
    );
}

#[test]
fn a_late_batch_of_an_aborted_transaction_is_refused_on_one_node() {
    let sluice = start(&[]);
    common::create_topic(&mut RawClient::connect(sluice.bootstrap()), TOPIC, &[]);
    let (_, coordinator) = coordinator(sluice.bootstrap());
    let (late, hw, lso) = zombie_after_abort(&coordinator, sluice.bootstrap(), 0);
    println!("verification on: late batch {late}, high watermark {hw}, last stable offset {lso}");
    assert_eq!(late, INVALID_TXN_STATE, "the late batch was written");
    assert_eq!(lso, hw, "a transaction holds the last stable offset");
}

#[test]
fn without_verification_the_late_batch_hangs_the_partition() {
    let sluice = start(&[("transaction.partition.verification.enable", "false")]);
    common::create_topic(&mut RawClient::connect(sluice.bootstrap()), TOPIC, &[]);
    let (_, coordinator) = coordinator(sluice.bootstrap());
    let mut coord = RawClient::connect(&coordinator);
    let mut lead = RawClient::connect(sluice.bootstrap());
    let (pid, epoch) = init_producer_id(&mut coord);
    // Without verification nothing is asked: even a partition never added
    // takes the batch (Kafka before 3.6 behaved so).
    assert_eq!(
        produce(&mut lead, 0, txn_batch(pid, epoch, 0, "unadded")).0,
        0
    );
    assert_eq!(add_partition(&mut coord, pid, epoch, 0), 0);
    assert_eq!(end_txn(&mut coord, pid, epoch, false), 0);
    let late = produce(&mut lead, 0, txn_batch(pid, epoch, 1, "late")).0;
    let hw = latest(&mut lead, 0, false);
    let lso = latest(&mut lead, 0, true);
    println!("verification off: late batch {late}, high watermark {hw}, last stable offset {lso}");
    assert_eq!(late, 0);
    assert!(lso < hw, "the late batch opened a hanging transaction");
}

#[test]
fn a_leader_asks_the_coordinator_on_another_broker() {
    let c = SluiceCluster::start(
        env!("CARGO_BIN_EXE_sluice"),
        ClusterLayout::Combined(3),
        &[],
    )
    .expect("the cluster starts");
    let brokers = c.broker_ids();
    create_topic(&c, brokers[0], TOPIC, 3);
    let m = wait_metadata(&c, brokers[0], "every partition led", |m| {
        let p = partitions(m, TOPIC);
        p.len() == 3 && p.values().all(|(l, _)| *l >= 0)
    });
    let (coord_id, coord_addr) = coordinator(c.broker_addr(brokers[0]));
    let led = partitions(&m, TOPIC);
    let (&partition, &(leader, _)) = led
        .iter()
        .find(|(_, (l, _))| *l != coord_id)
        .expect("a partition led away from the coordinator");
    println!("coordinator {coord_id}, partition {partition} led by {leader}");
    let (late, hw, lso) = zombie_after_abort(&coord_addr, c.broker_addr(leader), partition);
    println!("verification on: late batch {late}, high watermark {hw}, last stable offset {lso}");
    assert_eq!(late, INVALID_TXN_STATE, "the late batch was written");
    assert_eq!(lso, hw, "a transaction holds the last stable offset");
    // Version 2: the leader adds the partition at the remote coordinator.
    let (hw2, lso2) = version_2_transactions(&coord_addr, c.broker_addr(leader), partition);
    println!("version 2: high watermark {hw2}, last stable offset {lso2}");
    assert_eq!((hw2, lso2), (hw + 4, hw + 4));
    assert!(metadata(&c, leader).is_some());
}

/// The transaction metrics follow one transaction: while it is open the
/// partition has one open transaction and its last stable offset lags the
/// high watermark by the transaction's record, the coordinator counts an
/// Ongoing id; once committed, nothing is open, the lag is 0 and the id is
/// CompleteCommit.
#[test]
fn metrics_show_an_open_transaction_until_it_ends() {
    let sluice = start(&[]);
    common::create_topic(&mut RawClient::connect(sluice.bootstrap()), TOPIC, &[]);
    let metrics = metrics_addr(&sluice);
    let (_, coordinator) = coordinator(sluice.bootstrap());
    let mut coord = RawClient::connect(&coordinator);
    let mut lead = RawClient::connect(sluice.bootstrap());
    let (pid, epoch) = init_producer_id(&mut coord);
    assert_eq!(add_partition(&mut coord, pid, epoch, 0), 0);
    assert_eq!(produce(&mut lead, 0, txn_batch(pid, epoch, 0, "open")).0, 0);
    let partition = [&format!("topic=\"{TOPIC}\""), "partition=\"0\""];
    let read = |metric: &str, labels: &[&str]| {
        let (_, body) = http_get(&metrics, "/metrics");
        sample(&body, metric, labels).unwrap_or(-1.0)
    };
    assert_eq!(read("sluice_open_transactions", &partition), 1.0);
    assert_eq!(read("sluice_last_stable_offset_lag", &partition), 1.0);
    assert_eq!(
        read("sluice_transactional_ids", &["state=\"Ongoing\""]),
        1.0
    );
    assert_eq!(end_txn(&mut coord, pid, epoch, true), 0);
    assert_eq!(read("sluice_open_transactions", &partition), 0.0);
    assert_eq!(read("sluice_last_stable_offset_lag", &partition), 0.0);
    assert_eq!(
        read("sluice_transactional_ids", &["state=\"Ongoing\""]),
        -1.0
    );
    assert_eq!(
        read("sluice_transactional_ids", &["state=\"CompleteCommit\""]),
        1.0
    );
}
