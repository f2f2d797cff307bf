//! Transactions on a replicated partition through the real handlers (the
//! set-up of `fetch_tests`: node 1 leads `t`-0 with replicas [1, 2, 3];
//! raw Fetch requests play followers 2 and 3): a marker's answer waits for
//! the followers, the last stable offset moves with the high watermark, a
//! read_committed fetch stops there and is served from the segment file.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId as WireBrokerId, FetchRequest};
use sluice_record::{
    BatchBuilder, CompressionType, ControlRecordType, Offset, ProducerEpoch, ProducerId, Timestamp,
};
use sluice_storage::TopicPartition;

use super::fetch_tests::{
    eventually, fetch, header, node_with_config, partition, replicate_in_racks,
};
use super::markers::{write_txn_markers, MarkerEntry};
use crate::context::BrokerContext;

fn txn_batch(pid: i64, seq: i32) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(ProducerId(pid), ProducerEpoch(0), seq)
        .transactional(true);
    // At the node's clock: no time-based roll between batches.
    b.append(Timestamp(1_700_000_000_000), None, Some(&b"v"[..]), &[])
        .unwrap();
    b.build().unwrap()
}

/// A consumer's read_committed Fetch v15 of `t`-0 at `offset`, as planned
/// (record bytes still in files).
async fn plan_committed(ctx: &BrokerContext, offset: i64) -> crate::handlers::fetch::FetchPlan {
    let topic_id = ctx.image.topic("t").unwrap().topic_id;
    let req = FetchRequest::default()
        .with_replica_state(ReplicaState::default().with_replica_id(WireBrokerId(-1)))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(offset)
                .with_current_leader_epoch(1)
                .with_partition_max_bytes(1 << 20)])]);
    crate::handlers::fetch::handle(ctx, &header(1, 15), req).await
}

#[test]
fn the_last_stable_offset_follows_the_followers_and_read_committed_reads_zero_copy() {
    let (node, _) = node_with_config(super::fetch_tests::config_with(&[]), &[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate_in_racks(&node, &[1, 2, 3], [None, None]).await;
        let p = partition(&ctx);
        // Producer 7 writes two transactional batches; both followers catch up.
        for seq in 0..2 {
            let info = p
                .append_produce(
                    &txn_batch(7, seq),
                    sluice_storage::producer_state::Verification::NotRequired,
                )
                .unwrap()
                .unwrap();
            p.publish_append(info.last_offset.plus(1));
        }
        for f in [2, 3] {
            fetch(&ctx, f, 2, 1, -1, 0).await;
        }
        assert_eq!(
            (p.high_watermark(), p.last_stable_offset()),
            (Offset(2), Offset(0))
        );
        let plan = plan_committed(&ctx, 0).await;
        let d = &plan.response.responses[0].partitions[0];
        assert_eq!((d.high_watermark, d.last_stable_offset), (2, 0));
        assert!(plan.files.is_empty(), "nothing below the LSO yet");

        // The coordinator's ABORT: the answer waits for the followers.
        let replicas = ctx.replicas.clone();
        let tp = TopicPartition::new("t", 0);
        let answer = tokio::spawn(async move {
            write_txn_markers(
                &replicas,
                vec![MarkerEntry {
                    producer_id: ProducerId(7),
                    producer_epoch: ProducerEpoch(0),
                    coordinator_epoch: 3,
                    result: ControlRecordType::Abort,
                    partitions: vec![tp],
                    transaction_version: 1,
                }],
                std::time::Duration::from_secs(60),
                &|_, _, _| true,
            )
            .await
        });
        eventually("the marker is appended", || {
            p.log().log_end_offset() == Offset(3)
        })
        .await;
        eventually("the marker's answer waits", || p.purgatory.len() == 1).await;
        assert_eq!(p.last_stable_offset(), Offset(0), "decided, not replicated");
        fetch(&ctx, 2, 3, 1, -1, 0).await;
        assert_eq!(
            p.last_stable_offset(),
            Offset(0),
            "follower 3 still lacks it"
        );
        assert!(!answer.is_finished());
        let f = fetch(&ctx, 3, 3, 1, -1, 0).await;
        assert_eq!((f.high_watermark, f.last_stable_offset), (3, 3));
        let out = answer.await.unwrap();
        assert!(out[0].partitions[0].1.is_ok());
        assert_eq!(p.last_stable_offset(), Offset(3));

        // read_committed now reads everything, from the file (no bytes in
        // the encoded response), with the aborted transaction listed.
        let plan = plan_committed(&ctx, 0).await;
        let d = &plan.response.responses[0].partitions[0];
        assert_eq!(d.last_stable_offset, 3);
        assert!(d.records.as_ref().is_none_or(|r| r.is_empty()));
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.files[0].slice.next_offset, Offset(3));
        let aborted: Vec<_> = d
            .aborted_transactions
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect();
        assert_eq!(aborted, vec![(7, 0)]);
    });
}

/// A follower's last stable offset moves with the high watermark its
/// leader sends (and after a truncation resets it): a completed
/// transaction becomes stable once the followed high watermark passes its
/// marker.
#[test]
fn a_followers_last_stable_offset_follows_the_leaders_high_watermark() {
    use crate::partition::Partition;
    use crate::replica::ReplicaRole;
    use sluice_metadata::BrokerId;
    use sluice_record::LeaderEpoch;
    use sluice_storage::{LogConfig, LogManager, LogManagerConfig, SimFs, SystemClock};
    use std::sync::Arc;
    let logs = LogManager::open(
        LogManagerConfig {
            log_dirs: vec!["/d".into()],
            ..Default::default()
        },
        Arc::new(SimFs::new()),
        Arc::new(SystemClock),
    )
    .unwrap();
    let leader = logs
        .get_or_create_log(&TopicPartition::new("l", 0), LogConfig::default())
        .unwrap();
    leader
        .append_as_leader(&mut txn_batch(7, 0), LeaderEpoch(1))
        .unwrap();
    leader
        .append_txn_marker(
            sluice_storage::TxnMarker {
                producer_id: ProducerId(7),
                producer_epoch: ProducerEpoch(0),
                coordinator_epoch: 0,
                control_type: ControlRecordType::Commit,
                transaction_version: 1,
            },
            LeaderEpoch(1),
        )
        .unwrap();
    let log = logs
        .get_or_create_log(&TopicPartition::new("f", 0), LogConfig::default())
        .unwrap();
    let p = Arc::new(Partition::new(log.clone()));
    let mut role = ReplicaRole::alone(BrokerId(1), LeaderEpoch(1));
    role.leader = BrokerId(2);
    p.become_replica(&role);
    // Fetch everything from `at` (a read stops at a segment's end).
    let replicate = |at: Offset| {
        let mut at = at;
        while at < leader.log_end_offset() {
            let info = log
                .append_as_follower(&leader.read_to_vec(at, 1 << 20).unwrap())
                .unwrap();
            at = info.last_offset.plus(1);
        }
    };
    replicate(Offset(0));
    assert_eq!(p.follow_high_watermark(Offset(1)), Offset(1));
    assert_eq!(
        p.last_stable_offset(),
        Offset(0),
        "the marker at 1 is not covered"
    );
    assert_eq!(p.follow_high_watermark(Offset(2)), Offset(2));
    assert_eq!(p.last_stable_offset(), Offset(2));
    // A truncation below the marker reopens the transaction; the high
    // watermark reset to the log end leaves it unstable.
    log.truncate_to(Offset(1)).unwrap();
    p.reset_high_watermark();
    assert_eq!(p.last_stable_offset(), Offset(0));
    // The marker again, and a reset to the end: stable.
    replicate(Offset(1));
    p.reset_high_watermark();
    assert_eq!(p.last_stable_offset(), Offset(2));
}

/// The coordinators' appends (`append_as_leader_checked`) are the
/// coordinator's origin: a TxnOffsetCommit-like batch (transactional, base
/// sequence -1) is accepted and opens the producer's transaction, which a
/// client's append of the same batch may not.
#[test]
fn a_coordinators_transactional_batch_without_sequence_is_accepted() {
    use crate::partition::Partition;
    use crate::replica::ReplicaRole;
    use sluice_metadata::BrokerId;
    use sluice_record::LeaderEpoch;
    use sluice_storage::{LogConfig, LogManager, LogManagerConfig, SimFs, SystemClock};
    use std::sync::Arc;
    let logs = LogManager::open(
        LogManagerConfig {
            log_dirs: vec!["/d".into()],
            ..Default::default()
        },
        Arc::new(SimFs::new()),
        Arc::new(SystemClock),
    )
    .unwrap();
    let log = logs
        .get_or_create_log(
            &TopicPartition::new("__consumer_offsets", 0),
            LogConfig::default(),
        )
        .unwrap();
    let p = Partition::new(log);
    p.become_replica(&ReplicaRole::alone(BrokerId(1), LeaderEpoch(1)));
    let offsets = txn_batch(9, -1);
    assert!(
        p.append_produce(
            &offsets,
            sluice_storage::producer_state::Verification::NotRequired
        )
        .is_err(),
        "a client may not"
    );
    let info = p
        .append_as_leader_checked(
            &mut offsets.clone(),
            sluice_storage::producer_state::Verification::NotRequired,
        )
        .unwrap()
        .unwrap();
    assert_eq!(info.first_offset, Offset(0));
    assert_eq!(p.log().first_unstable_offset(), Some(Offset(0)));
}
