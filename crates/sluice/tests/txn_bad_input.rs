//! Bad transactional input, the same script against Sluice and the pinned
//! Apache Kafka 4.1.2, which must answer every step with the same error
//! code: an EndTxn for an id never seen, a commit without a transaction,
//! another producer's id, a fenced epoch, an unknown topic among the
//! partitions added (the others not attempted), a zombie's end and produce
//! after a new instance, WriteTxnMarkers to an unknown partition, the
//! version 2 abort of a transaction that never started and its commit,
//! and an expired transactional id. Nothing half-done: after the script a
//! read_committed ListOffsets is at the high watermark on both.

mod common;

use std::time::Duration;

use common::txn::{self as raw, retried, txn_batch};
use common::{sb, RawClient};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    BrokerId, ListOffsetsRequest, ProducerId as WirePid, TopicName, WriteTxnMarkersRequest,
};

const TOPIC: &str = "bad-input";
const TXN: &str = "bad-input-txn";

/// Both brokers expire idle transactional ids within seconds.
const SETTINGS: [(&str, &str); 3] = [
    ("transactional.id.expiration.ms", "3000"),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "500",
    ),
    ("num.partitions", "1"),
];

fn latest(c: &mut RawClient, read_committed: bool) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    c.send(5, &req).topics[0].partitions[0].offset
}

fn marker_to_unknown_partition(c: &mut RawClient, pid: i64, epoch: i16) -> i16 {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(WirePid(pid))
        .with_producer_epoch(epoch)
        .with_transaction_result(false)
        .with_coordinator_epoch(0)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(sb("no-such-topic")))
            .with_partition_indexes(vec![0])])]);
    c.send(1, &req).markers[0].topics[0].partitions[0].error_code
}

/// The script: (step, code) in order.
fn script(bootstrap: &str) -> Vec<(&'static str, i16)> {
    let mut out = Vec::new();
    common::create_topic(&mut RawClient::connect(bootstrap), TOPIC, &[]);
    let (_, coordinator) = raw::coordinator(bootstrap, TXN);
    let mut coord = RawClient::connect(&coordinator);
    let mut lead = RawClient::connect(bootstrap);
    let (pid, e0) = raw::init_producer_id(&mut coord, TXN);
    // Once its coordinator is up (Kafka answers NOT_COORDINATOR while the
    // partition is still being taken over).
    let (_, other) = raw::coordinator(bootstrap, "never-seen");
    let unknown = raw::end_txn(
        &mut RawClient::connect(&other),
        3,
        "never-seen",
        (1, 0),
        true,
    )
    .0;
    out.push(("EndTxn of an id never seen", unknown));
    out.push((
        "commit without a transaction",
        raw::end_txn(&mut coord, 3, TXN, (pid, e0), true).0,
    ));
    let other = raw::add_partitions(&mut coord, TXN, (pid + 1000, e0), &[(TOPIC, 0)])[0];
    out.push(("AddPartitionsToTxn of another producer id", other));
    let fenced = raw::add_partitions(&mut coord, TXN, (pid, e0 + 5), &[(TOPIC, 0)])[0];
    out.push(("AddPartitionsToTxn in a future epoch", fenced));
    let mixed = raw::add_partitions(
        &mut coord,
        TXN,
        (pid, e0),
        &[(TOPIC, 0), ("no-such-topic", 0)],
    );
    out.push(("a known partition beside an unknown topic", mixed[0]));
    out.push(("the unknown topic", mixed[1]));
    let added = retried("add", || {
        raw::add_partitions(&mut coord, TXN, (pid, e0), &[(TOPIC, 0)])[0]
    });
    out.push(("AddPartitionsToTxn", added));
    let written = retried("produce", || {
        raw::produce(&mut lead, 9, (TXN, TOPIC, 0), txn_batch(pid, e0, 0, "a")).0
    });
    out.push(("Produce in the transaction", written));
    // A new instance fences the open transaction (retried while it aborts).
    let (_, e1) = raw::init_producer_id(&mut coord, TXN);
    out.push(("the new instance's epoch is newer", i16::from(e1 > e0)));
    let zombie_end = raw::end_txn(&mut coord, 3, TXN, (pid, e0), true).0;
    out.push(("the zombie's EndTxn", zombie_end));
    let zombie_produce = raw::produce(&mut lead, 9, (TXN, TOPIC, 0), txn_batch(pid, e0, 1, "z")).0;
    out.push(("the zombie's Produce", zombie_produce));
    out.push((
        "WriteTxnMarkers to an unknown partition",
        marker_to_unknown_partition(&mut lead, pid, e1),
    ));
    // Transaction version 2: the abort of a transaction that never
    // started bumps the epoch; a commit of one is refused.
    let (code, e2) = raw::end_txn(&mut coord, 5, TXN, (pid, e1), false);
    out.push(("v5 abort without a transaction", code));
    out.push(("it bumped the epoch", i16::from(e2 == e1 + 1)));
    // Retried while Kafka completes the abort (it answers before).
    let commit = retried("v5 commit", || {
        raw::end_txn(&mut coord, 5, TXN, (pid, e2), true).0
    });
    out.push(("v5 commit without a transaction", commit));
    // Idle past transactional.id.expiration.ms: the id is gone.
    std::thread::sleep(Duration::from_secs(8));
    out.push((
        "EndTxn of an expired id",
        raw::end_txn(&mut coord, 3, TXN, (pid, e2), false).0,
    ));
    let hw = latest(&mut lead, false);
    out.push((
        "read_committed at the high watermark",
        i16::from(latest(&mut lead, true) == hw),
    ));
    out
}

#[test]
fn bad_transactional_input_gets_kafkas_codes() {
    raw::same_codes_as_kafka(&SETTINGS, script);
}
