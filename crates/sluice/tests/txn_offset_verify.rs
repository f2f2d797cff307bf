//! KIP-890 part 1 for transactional offset commits: before TxnOffsetCommit
//! v5, the group coordinator asks the transaction coordinator (verify
//! only) whether AddOffsetsToTxn put the group's offsets partition in the
//! producer's transaction, and writes nothing when it did not. One script
//! of raw requests (TxnOffsetCommit v4) against Sluice and the pinned
//! Apache Kafka 4.1.2, which must answer every step with the same code: a
//! commit without any transaction, one inside a transaction that never
//! added the offsets (v4: TRANSACTION_ABORTABLE; v3, whose clients do not
//! know that code: INVALID_TXN_STATE), one of another producer id, and
//! the commit after AddOffsetsToTxn. The same rule for a Produce to a
//! partition never added: v10 INVALID_TXN_STATE, v11 TRANSACTION_ABORTABLE. (Not a commit after EndTxn: Kafka
//! answers EndTxn before its markers, and until the marker reaches the
//! offsets partition it skips the verification, so its answer there
//! depends on timing.) That skip, Sluice-only: a second commit of the same
//! transaction finds it open in the offsets partition and asks nobody.

mod common;

use std::time::{Duration, Instant};

use common::txn::{self as raw, retried, txn_batch};
use common::{http_get, metrics_addr, sample, sb, RawClient};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, FindCoordinatorRequest, GroupId, ProducerId as WirePid, TopicName,
    TxnOffsetCommitRequest,
};

const TOPIC: &str = "offsets-verify";
const TXN: &str = "offsets-verify-txn";
const OTHER: &str = "offsets-verify-other";
const GROUP: &str = "offsets-verify-group";
const SETTINGS: [(&str, &str); 2] = [
    ("num.partitions", "1"),
    ("offsets.topic.num.partitions", "1"),
];

/// TxnOffsetCommit `version` of offset `offset` for TOPIC-0; the partition's
/// code (again while the group coordinator loads or moves:
/// COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR).
fn commit(c: &mut RawClient, version: i16, (pid, epoch): (i64, i16), offset: i64) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(sb(TXN).into())
        .with_group_id(GroupId(sb(GROUP)))
        .with_producer_id(WirePid(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let code = c.send(version, &req).topics[0].partitions[0].error_code;
        if code != 14 && code != 16 {
            return code;
        }
        assert!(Instant::now() < deadline, "group coordinator: still {code}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn add_offsets(c: &mut RawClient, (pid, epoch): (i64, i16)) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(sb(TXN).into())
        .with_producer_id(WirePid(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(sb(GROUP)));
    c.send(3, &req).error_code
}

/// The group's coordinator (FindCoordinator creates `__consumer_offsets`,
/// which TxnOffsetCommit does not), once it answers.
fn group_coordinator(bootstrap: &str) -> RawClient {
    let mut c = RawClient::connect(bootstrap);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = c.send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(GROUP))
                .with_key_type(0),
        );
        if r.error_code == 0 {
            return RawClient::connect(&format!("{}:{}", r.host.as_str(), r.port));
        }
        assert!(Instant::now() < deadline, "no group coordinator: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The script: (step, code) in order.
fn script(bootstrap: &str) -> Vec<(&'static str, i16)> {
    let mut out = Vec::new();
    common::create_topic(&mut RawClient::connect(bootstrap), TOPIC, &[]);
    common::create_topic(&mut RawClient::connect(bootstrap), OTHER, &[]);
    let (_, coordinator) = raw::coordinator(bootstrap, TXN);
    let mut coord = RawClient::connect(&coordinator);
    let mut lead = RawClient::connect(bootstrap);
    let mut group = group_coordinator(bootstrap);
    let (pid, epoch) = raw::init_producer_id(&mut coord, TXN);
    out.push((
        "TxnOffsetCommit v4 without a transaction",
        commit(&mut group, 4, (pid, epoch), 1),
    ));
    let added = retried("add", || {
        raw::add_partitions(&mut coord, TXN, (pid, epoch), &[(TOPIC, 0)])[0]
    });
    out.push(("AddPartitionsToTxn", added));
    let written = retried("produce", || {
        raw::produce(&mut lead, 9, (TXN, TOPIC, 0), txn_batch(pid, epoch, 0, "a")).0
    });
    out.push(("Produce in the transaction", written));
    // The same rule for a batch to a partition never added (Produce v11
    // knows TRANSACTION_ABORTABLE, v10 does not).
    for (step, version) in [
        ("Produce v10 to a partition not added", 10),
        ("Produce v11 to a partition not added", 11),
    ] {
        let code = raw::produce(
            &mut lead,
            version,
            (TXN, OTHER, 0),
            txn_batch(pid, epoch, 1, "b"),
        )
        .0;
        out.push((step, code));
    }
    out.push((
        "TxnOffsetCommit v4 without AddOffsetsToTxn",
        commit(&mut group, 4, (pid, epoch), 2),
    ));
    out.push((
        "TxnOffsetCommit v3 without AddOffsetsToTxn",
        commit(&mut group, 3, (pid, epoch), 2),
    ));
    out.push((
        "TxnOffsetCommit v4 of another producer id",
        commit(&mut group, 4, (pid + 1000, epoch), 3),
    ));
    let offsets = retried("AddOffsetsToTxn", || add_offsets(&mut coord, (pid, epoch)));
    out.push(("AddOffsetsToTxn", offsets));
    let committed = retried("commit", || commit(&mut group, 4, (pid, epoch), 4));
    out.push(("TxnOffsetCommit v4 after AddOffsetsToTxn", committed));
    let ended = retried("EndTxn", || {
        raw::end_txn(&mut coord, 3, TXN, (pid, epoch), true).0
    });
    out.push(("EndTxn commit", ended));
    out
}

#[test]
fn txn_offset_commits_before_v5_are_verified_as_kafka_verifies_them() {
    raw::same_codes_as_kafka(&SETTINGS, script);
}

/// (asked, skipped) KIP-890 questions of the broker so far.
fn verifications(broker: &sluice_testkit::SluiceProcess) -> (f64, f64) {
    let (_, body) = http_get(&metrics_addr(broker), "/metrics");
    let n = |outcome: &str| {
        sample(
            &body,
            "sluice_transaction_verifications_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
        .expect("sluice_transaction_verifications_total")
    };
    (n("asked"), n("skipped"))
}

/// Kafka's shortcut (`UnifiedLog.maybeStartTransactionVerification`
/// answering `VerificationGuard.SENTINEL`): once a TxnOffsetCommit of the
/// transaction is in the offsets partition, the next one of the same
/// transaction is written without asking the transaction coordinator.
#[test]
fn a_second_offset_commit_of_a_transaction_skips_the_verification() {
    let broker = common::start(&SETTINGS);
    let bootstrap = broker.bootstrap().to_string();
    common::create_topic(&mut RawClient::connect(&bootstrap), TOPIC, &[]);
    let (_, coordinator) = raw::coordinator(&bootstrap, TXN);
    let mut coord = RawClient::connect(&coordinator);
    let mut group = group_coordinator(&bootstrap);
    let (pid, epoch) = raw::init_producer_id(&mut coord, TXN);
    let offsets = retried("AddOffsetsToTxn", || add_offsets(&mut coord, (pid, epoch)));
    assert_eq!(offsets, 0);
    let before = verifications(&broker);
    assert_eq!(commit(&mut group, 4, (pid, epoch), 1), 0);
    let first = verifications(&broker);
    assert_eq!(first, (before.0 + 1.0, before.1), "the first commit asks");
    assert_eq!(commit(&mut group, 4, (pid, epoch), 2), 0);
    let second = verifications(&broker);
    assert_eq!(second, (first.0, first.1 + 1.0), "the second commit skips");
    let ended = retried("EndTxn", || {
        raw::end_txn(&mut coord, 3, TXN, (pid, epoch), true).0
    });
    assert_eq!(ended, 0);
    // The transaction is over: the next one's first commit asks again.
    let offsets = retried("AddOffsetsToTxn", || add_offsets(&mut coord, (pid, epoch)));
    assert_eq!(offsets, 0);
    assert_eq!(commit(&mut group, 4, (pid, epoch), 3), 0);
    assert_eq!(
        verifications(&broker).0,
        second.0 + 1.0,
        "a new transaction asks"
    );
}
