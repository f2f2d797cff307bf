//! TxnOffsetCommit against the real `sluice` binary with raw requests:
//! ApiVersions advertises v0–v4, a transactional commit is answered per
//! partition (unknown topics, metadata too large, KIP-447 generation), and
//! its offset is pending: OffsetFetch does not show it, and with
//! `require_stable` (v7, and the batched v8 form) answers
//! UNSTABLE_OFFSET_COMMIT for that partition only.
//!
//! The same OffsetFetch expectations are checked against the pinned Kafka
//! 4.1.2 (when its jars are here) in a full transaction (InitProducerId,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn): that is where the answer's
//! shape comes from. Sluice cannot end the transaction over the wire yet
//! (EndTxn and WriteTxnMarkers belong to the transaction coordinator and
//! the partition leader), so the marker half is covered in process by
//! `crates/broker/tests/txn_offset_commit.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, ApiKey, ApiVersionsRequest, EndTxnRequest, FindCoordinatorRequest,
    GroupId, InitProducerIdRequest, OffsetFetchRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use sluice_testkit::ReferenceKafka;

const GROUP: &str = "txn-group";
const TOPIC: &str = "events";
const WAIT: Duration = Duration::from_secs(60);

/// Asks until `key`'s coordinator (0: group, 1: transaction) is ready.
fn find_coordinator(c: &mut RawClient, key: &str, key_type: i8) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(key))
                .with_key_type(key_type),
        );
        if r.error_code == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no coordinator for {key}: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn partition(p: i32, offset: i64, metadata: &str) -> TxnOffsetCommitRequestPartition {
    TxnOffsetCommitRequestPartition::default()
        .with_partition_index(p)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(0)
        .with_committed_metadata(Some(sb(metadata)))
}

fn txn_commit(
    pid: i64,
    epoch: i16,
    generation: i32,
    topics: Vec<(&str, Vec<TxnOffsetCommitRequestPartition>)>,
) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb("tx")))
        .with_group_id(GroupId(sb(GROUP)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(generation)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(ps)
                })
                .collect(),
        )
}

/// Sends a TxnOffsetCommit v3, again while the coordinator loads or moves
/// (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
/// NOT_COORDINATOR); the error code of every partition, in request order.
fn send_txn_commit(c: &mut RawClient, req: &TxnOffsetCommitRequest) -> Vec<i16> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.send(3, req);
        let codes: Vec<i16> = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        if !codes.iter().any(|&e| (14..=16).contains(&e)) {
            return codes;
        }
        assert!(Instant::now() < deadline, "coordinator never ready: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(error, offset)` of partition 0 of TOPIC in OffsetFetch v7, and the
/// top-level error.
fn fetch_v7(c: &mut RawClient, require_stable: bool) -> (i16, i16, i64) {
    let r = c.send(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partition_indexes(vec![0])]))
            .with_require_stable(require_stable),
    );
    let p = &r.topics[0].partitions[0];
    (r.error_code, p.error_code, p.committed_offset)
}

/// The same through the batched form (v8): group error, partition error,
/// offset.
fn fetch_v8(c: &mut RawClient, require_stable: bool) -> (i16, i16, i64) {
    let r = c.send(
        8,
        &OffsetFetchRequest::default()
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb(GROUP)))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb(TOPIC)))
                    .with_partition_indexes(vec![0])]))])
            .with_require_stable(require_stable),
    );
    let g = &r.groups[0];
    let p = &g.topics[0].partitions[0];
    (g.error_code, p.error_code, p.committed_offset)
}

/// What both brokers answer while the transaction holding offset 42 of
/// TOPIC-0 is open: not shown; UNSTABLE_OFFSET_COMMIT (88) for that
/// partition with require_stable, the group and top-level errors NONE.
fn assert_pending(c: &mut RawClient, who: &str) {
    assert_eq!(
        fetch_v7(c, false),
        (0, 0, -1),
        "{who}: v7 without require_stable"
    );
    assert_eq!(fetch_v7(c, true), (0, 88, -1), "{who}: v7 require_stable");
    assert_eq!(
        fetch_v8(c, false),
        (0, 0, -1),
        "{who}: v8 without require_stable"
    );
    assert_eq!(fetch_v8(c, true), (0, 88, -1), "{who}: v8 require_stable");
}

#[test]
fn a_txn_offset_commit_is_pending_and_unstable_for_require_stable() {
    // Producers 4242-4244 were never initialised: the point here is the
    // per-partition answers, so no verification with a coordinator that
    // does not know them (txn_offset_verify.rs checks that).
    let broker = start(&[
        ("offsets.topic.num.partitions", "3"),
        ("transaction.partition.verification.enable", "false"),
    ]);
    let mut c = RawClient::connect(broker.bootstrap());
    common::create_topic(&mut c, TOPIC, &[]);

    let versions = c.send(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(sb("sluice-tests"))
            .with_client_software_version(sb("1")),
    );
    let txn = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::TxnOffsetCommit as i16)
        .expect("TxnOffsetCommit advertised");
    // As Kafka 4.1.2 (v5: transaction version 2).
    assert_eq!((txn.min_version, txn.max_version), (0, 5));

    find_coordinator(&mut c, GROUP, 0);
    // Per partition: the committed one, an unknown topic, one past the
    // topic's partitions, metadata over offset.metadata.max.bytes.
    let codes = send_txn_commit(
        &mut c,
        &txn_commit(
            4242,
            0,
            -1,
            vec![
                (TOPIC, vec![partition(0, 42, "m"), partition(1, 1, "")]),
                ("no-such-topic", vec![partition(0, 1, "")]),
                (TOPIC, vec![partition(0, 43, &"x".repeat(5000))]),
            ],
        ),
    );
    assert_eq!(codes, vec![0, 3, 3, 12]);
    assert_pending(&mut c, "sluice");

    // KIP-447 (v3): a member generation for a group it is not in.
    let other = txn_commit(4243, 0, 5, vec![(TOPIC, vec![partition(0, 7, "")])])
        .with_group_id(GroupId(sb("no-such-group")))
        .with_member_id(sb("m-1"));
    assert_eq!(
        send_txn_commit(&mut c, &other),
        vec![22],
        "ILLEGAL_GENERATION"
    );
    // An older epoch of the producer is fenced by the log.
    let epoch_one = txn_commit(4244, 1, -1, vec![(TOPIC, vec![partition(0, 8, "")])]);
    let epoch_zero = txn_commit(4244, 0, -1, vec![(TOPIC, vec![partition(0, 9, "")])]);
    assert_eq!(send_txn_commit(&mut c, &epoch_one), vec![0]);
    assert_eq!(
        send_txn_commit(&mut c, &epoch_zero),
        vec![47],
        "INVALID_PRODUCER_EPOCH"
    );
    assert_pending(&mut c, "sluice");
}

#[test]
fn kafka_answers_offset_fetch_of_a_pending_txn_offset_the_same_way() {
    let Some(kafka) = ReferenceKafka::start().expect("Kafka starts") else {
        eprintln!("SKIPPED: the pinned Kafka jars are absent");
        return;
    };
    let mut c = RawClient::connect(&kafka.bootstrap());
    common::create_topic(&mut c, TOPIC, &[]);
    find_coordinator(&mut c, "tx", 1);
    let deadline = Instant::now() + WAIT;
    let init = loop {
        let r = c.send(
            3,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb("tx"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        if r.error_code == 0 {
            break r;
        }
        assert!(Instant::now() < deadline, "InitProducerId: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let add = c.send(
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(sb("tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(sb(GROUP))),
    );
    assert_eq!(add.error_code, 0, "{add:?}");
    find_coordinator(&mut c, GROUP, 0);
    let codes = send_txn_commit(
        &mut c,
        &txn_commit(pid, epoch, -1, vec![(TOPIC, vec![partition(0, 42, "m")])]),
    );
    assert_eq!(codes, vec![0]);
    assert_pending(&mut c, "kafka");

    // What Sluice does once the marker path is wired: committed, shown.
    let end = c.send(
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb("tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(true),
    );
    assert_eq!(end.error_code, 0, "{end:?}");
    let deadline = Instant::now() + WAIT;
    while fetch_v7(&mut c, true) != (0, 0, 42) {
        assert!(Instant::now() < deadline, "never committed");
        std::thread::sleep(Duration::from_millis(100));
    }
    kafka.stop();
}
