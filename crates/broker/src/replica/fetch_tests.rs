//! The leader side driven through the real handlers on an in-process
//! broker (node 1): its image names `t`-0's replicas [1, 2, 3], so raw
//! Fetch requests carrying ReplicaState 2 or 3 play the followers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, ProduceRequest, RequestHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use sluice_metadata::record::{BrokerEndpoint, PartitionChangeRecord, RegisterBrokerRecord};
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataRecord};
use sluice_record::{BatchBuilder, CompressionType, Offset, Timestamp};
use sluice_storage::{ManualClock, SimFs, TopicPartition};

use super::alter::{send_queued, AlterItem, AlterPartitionSender};
use super::isr::{AlterAnswer, UNKNOWN};
use super::quota::{QuotaSettings, UNLIMITED};
use crate::config::BrokerConfig;
use crate::context::BrokerContext;
use crate::handlers::Response;
use crate::metadata::testing::{open_node_with_clock, Node};
use crate::partition::Partition;

const LONG: Duration = Duration::from_secs(60);

fn config() -> BrokerConfig {
    config_with(&[])
}

/// The test broker's config plus `extra` keys.
pub(super) fn config_with(extra: &[(&str, &str)]) -> BrokerConfig {
    // The simulated brokers 2 and 3 never heartbeat, and the controller
    // judges their sessions by the manual clock the tests advance: a
    // session longer than any advance keeps them unfenced.
    let mut keys = vec![
        ("log.dirs", "/sim/data"),
        ("log.index.size.max.bytes", "4096"),
        ("broker.session.timeout.ms", "600000"),
    ];
    keys.extend_from_slice(extra);
    BrokerConfig::with_overrides(&keys).unwrap()
}

fn node_with(topic_configs: &[(&str, &str)]) -> (Node, Arc<ManualClock>) {
    node_with_config(config(), topic_configs)
}

/// Node 1 on `config` with topic `t` (one partition, `topic_configs`).
pub(super) fn node_with_config(
    config: BrokerConfig,
    topic_configs: &[(&str, &str)],
) -> (Node, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = open_node_with_clock(config, &Arc::new(SimFs::new()), clock.clone()).unwrap();
    let configs: BTreeMap<String, String> = topic_configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    node.block_on(node.controller.create_topic("t", 1, 1, configs))
        .unwrap();
    (node, clock)
}

/// Registers brokers 2 and 3 (unfenced) and commits `t`-0 = replicas
/// [1, 2, 3], led by 1, with `isr` (leader epoch 1, partition epoch 1);
/// waits until it is published.
async fn replicate(node: &Node, isr: &[i32]) {
    replicate_in_racks(node, isr, [None, None]).await
}

/// [`replicate`] with `broker.rack` of brokers 2 and 3.
pub(super) async fn replicate_in_racks(node: &Node, isr: &[i32], racks: [Option<&str>; 2]) {
    let topic_id = node.image.topic("t").unwrap().topic_id;
    let mut records: Vec<MetadataRecord> = [2, 3]
        .into_iter()
        .zip(racks)
        .map(|(id, rack)| {
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: BrokerId(id),
                is_migrating_zk_broker: false,
                incarnation_id: uuid::Uuid::from_u128(id as u128),
                broker_epoch: BrokerEpoch(100 + i64::from(id)),
                end_points: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "localhost".into(),
                    port: 9000 + id as u16,
                    security_protocol: 0,
                }],
                features: Vec::new(),
                rack: rack.map(str::to_string),
                fenced: false,
                in_controlled_shutdown: false,
                log_dirs: Vec::new(),
            })
        })
        .collect();
    let change = PartitionChangeRecord {
        partition_id: 0,
        topic_id,
        isr: Some(isr.iter().map(|b| BrokerId(*b)).collect()),
        leader: BrokerId(1),
        replicas: Some(vec![BrokerId(1), BrokerId(2), BrokerId(3)]),
        removing_replicas: None,
        adding_replicas: None,
        leader_recovery_state: -1,
        directories: None,
        eligible_leader_replicas: None,
        last_known_elr: None,
    };
    records.push(MetadataRecord::PartitionChange(change));
    let offset = node.append(records).await;
    node.image.wait_for(offset).await.unwrap();
}

pub(super) fn partition(ctx: &BrokerContext) -> Arc<Partition> {
    ctx.replicas
        .get_partition(&TopicPartition::new("t", 0))
        .unwrap()
}

pub(super) fn header(api_key: i16, version: i16) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
}

/// Produces one record to `t`-0; `(error code, base offset)`.
pub(super) async fn produce(ctx: &BrokerContext, acks: i16, timeout_ms: i32) -> (i16, i64) {
    produce_to(ctx, "t", acks, timeout_ms).await
}

async fn produce_to(ctx: &BrokerContext, topic: &str, acks: i16, timeout_ms: i32) -> (i16, i64) {
    let mut b = BatchBuilder::new(CompressionType::None);
    b.append(Timestamp(1), None, Some(&b"v"[..]), &[]).unwrap();
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(b.build().unwrap())))])]);
    let Response::Message(ResponseKind::Produce(r)) =
        crate::handlers::produce::handle(ctx, &header(0, 11), req).await
    else {
        panic!("not a produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn spawn_produce(
    ctx: &BrokerContext,
    acks: i16,
    timeout_ms: i32,
) -> tokio::task::JoinHandle<(i16, i64)> {
    let ctx = ctx.clone();
    tokio::spawn(async move { produce(&ctx, acks, timeout_ms).await })
}

/// A Fetch v15 of `t`-0 at `offset`: from follower `replica` (ReplicaState)
/// or, with `replica` -1, from a consumer.
pub(super) async fn fetch(
    ctx: &BrokerContext,
    replica: i32,
    offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    max_wait_ms: i32,
) -> PartitionData {
    let topic_id = ctx.image.topic("t").unwrap().topic_id;
    let req = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(WireBrokerId(replica))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_log_start_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let plan = crate::handlers::fetch::handle(ctx, &header(1, 15), req).await;
    let response = plan.into_materialized().unwrap();
    response.responses[0].partitions[0].clone()
}

pub(super) fn records(p: &PartitionData) -> usize {
    p.records.as_ref().map_or(0, Bytes::len)
}

/// Polls `cond` every 10 ms for up to a minute.
pub(super) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn acks_all_is_answered_once_the_followers_fetches_cover_the_batch() {
    let (node, _) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1, 2, 3]).await;
        let p = partition(&ctx);
        let answer = spawn_produce(&ctx, -1, 60_000);
        eventually("the acks=all produce waits", || p.purgatory.len() == 1).await;
        assert_eq!(p.log().log_end_offset(), Offset(1));
        assert_eq!(p.high_watermark(), Offset(0));

        // Consumers see nothing above the high watermark.
        let c = fetch(&ctx, -1, 0, 1, -1, 0).await;
        assert_eq!((c.error_code, c.high_watermark, records(&c)), (0, 0, 0));

        // Follower 2 reads up to the log end, not the high watermark.
        let f = fetch(&ctx, 2, 0, 1, -1, 0).await;
        assert_eq!((f.error_code, f.high_watermark), (0, 0));
        assert!(records(&f) > 0, "a follower reads past the high watermark");
        // 2 has offset 0 now; 3 has nothing: the high watermark stays.
        let f = fetch(&ctx, 2, 1, 1, -1, 0).await;
        assert_eq!((f.error_code, f.high_watermark, records(&f)), (0, 0, 0));
        assert!(!answer.is_finished());
        assert_eq!(p.purgatory.len(), 1);

        // 3 reaches 1: the ISR has the batch, the answer goes out.
        let f = fetch(&ctx, 3, 1, 1, -1, 0).await;
        assert_eq!((f.error_code, f.high_watermark), (0, 1));
        assert_eq!(answer.await.unwrap(), (0, 0));
        let c = fetch(&ctx, -1, 0, 1, -1, 0).await;
        assert!(records(&c) > 0);
        let st = p.leader_state().unwrap();
        assert_eq!(st.follower(BrokerId(2)).unwrap().log_end_offset, Offset(1));
    });
}

#[test]
fn acks_all_is_refused_before_the_append_when_the_isr_is_under_min_insync() {
    let (node, _) = node_with(&[("min.insync.replicas", "2")]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1]).await;
        let p = partition(&ctx);
        assert_eq!(
            produce(&ctx, -1, 10_000).await,
            (19, -1),
            "NOT_ENOUGH_REPLICAS"
        );
        assert_eq!(p.log().log_end_offset(), Offset(0), "nothing appended");
        // acks=1 appends, but strict min ISR keeps the high watermark.
        assert_eq!(produce(&ctx, 1, 10_000).await, (0, 0));
        assert_eq!(p.high_watermark(), Offset(0));
        // A follower fetching everything does not move it either.
        fetch(&ctx, 2, 1, 1, -1, 0).await;
        assert_eq!(p.high_watermark(), Offset(0));
    });
}

#[test]
fn acks_all_times_out_when_the_isr_does_not_follow() {
    let (node, _) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1, 2, 3]).await;
        assert_eq!(produce(&ctx, -1, 200).await, (7, -1), "REQUEST_TIMED_OUT");
        assert!(partition(&ctx).purgatory.is_empty(), "the wait is removed");
        // acks=1 is answered at once.
        assert_eq!(produce(&ctx, 1, 200).await, (0, 1));
    });
}

#[test]
fn followers_on_a_stale_epoch_or_outside_the_replica_set_are_refused() {
    let (node, _) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1, 2, 3]).await;
        assert_eq!(produce(&ctx, 1, 1_000).await.0, 0);
        let p = partition(&ctx);
        let f = fetch(&ctx, 2, 1, 0, -1, 0).await;
        assert_eq!(f.error_code, 74, "FENCED_LEADER_EPOCH");
        assert_eq!(
            (f.current_leader.leader_id.0, f.current_leader.leader_epoch),
            (1, 1)
        );
        assert_eq!(
            fetch(&ctx, 2, 1, 2, -1, 0).await.error_code,
            75,
            "UNKNOWN_LEADER_EPOCH"
        );
        let st = p.leader_state().unwrap();
        assert_eq!(
            st.follower(BrokerId(2)).unwrap().log_end_offset,
            UNKNOWN,
            "a fenced fetch records no progress"
        );
        let f = fetch(&ctx, 9, 1, 1, -1, 0).await;
        assert_eq!(f.error_code, 6, "NOT_LEADER_OR_FOLLOWER for a non-replica");
        assert_eq!(records(&f), 0);
        // The leader itself is no follower either.
        assert_eq!(fetch(&ctx, 1, 0, 1, -1, 0).await.error_code, 6);
    });
}

#[test]
fn a_followers_long_poll_wakes_on_appends_not_on_the_high_watermark() {
    let (node, _) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1, 2, 3]).await;
        let waiting = {
            let ctx = ctx.clone();
            tokio::spawn(async move { fetch(&ctx, 2, 0, 1, -1, 600_000).await })
        };
        // The high watermark cannot move (3 never fetches): only the
        // append can wake the follower.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(produce(&ctx, 1, 1_000).await.0, 0);
        let f = tokio::time::timeout(LONG, waiting)
            .await
            .expect("the follower's fetch was not woken by the append")
            .unwrap();
        assert!(records(&f) > 0);
        assert_eq!(f.high_watermark, 0);
    });
}

/// An AlterPartition stand-in that commits every proposal as the
/// controller would (partition epoch + 1) and records what it got.
#[derive(Default)]
struct Committing {
    sent: Mutex<Vec<AlterItem>>,
}

impl AlterPartitionSender for Committing {
    fn alter_partition(
        &self,
        items: Vec<AlterItem>,
    ) -> Pin<Box<dyn Future<Output = Vec<AlterAnswer>> + Send + '_>> {
        let answers = items
            .iter()
            .map(|i| AlterAnswer::Committed {
                leader: BrokerId(1),
                leader_epoch: i.proposal.leader_epoch,
                isr: i.proposal.brokers().collect(),
                partition_epoch: sluice_metadata::PartitionEpoch(i.proposal.partition_epoch.0 + 1),
            })
            .collect();
        self.sent.lock().extend(items);
        Box::pin(async move { answers })
    }
}

#[test]
fn the_isr_shrinks_after_the_lag_time_and_expands_when_caught_up() {
    let (node, clock) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1, 2, 3]).await;
        let p = partition(&ctx);
        let sender = Committing::default();
        assert_eq!(produce(&ctx, 1, 1_000).await.0, 0);
        fetch(&ctx, 2, 1, 1, -1, 0).await;
        // Within the lag time nobody leaves.
        clock.advance(29_000);
        p.maybe_shrink_isr();
        assert!(send_queued(ctx.replicas.isr_queue(), &sender)
            .await
            .is_empty());
        assert!(sender.sent.lock().is_empty());
        // 3 never fetched: after replica.lag.time.max.ms it leaves.
        clock.advance(2_000);
        fetch(&ctx, 2, 1, 1, -1, 0).await;
        p.maybe_shrink_isr();
        send_queued(ctx.replicas.isr_queue(), &sender).await;
        {
            let sent = sender.sent.lock();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].topic_id, ctx.image.topic("t").unwrap().topic_id);
            assert_eq!(sent[0].proposal.partition_epoch.0, 1);
        }
        assert_eq!(p.isr().unwrap(), vec![BrokerId(1), BrokerId(2)]);
        assert_eq!(p.high_watermark(), Offset(1), "the smaller ISR has it all");

        // 3 comes back and catches up: it joins again.
        fetch(&ctx, 3, 0, 1, -1, 0).await;
        send_queued(ctx.replicas.isr_queue(), &sender).await;
        assert_eq!(sender.sent.lock().len(), 1, "not caught up yet");
        fetch(&ctx, 3, 1, 1, -1, 0).await;
        send_queued(ctx.replicas.isr_queue(), &sender).await;
        assert_eq!(sender.sent.lock().len(), 2);
        assert_eq!(
            p.isr().unwrap(),
            vec![BrokerId(1), BrokerId(2), BrokerId(3)]
        );
    });
}

#[test]
fn a_waiting_acks_all_fails_when_the_isr_shrinks_under_min_insync() {
    let (node, clock) = node_with(&[("min.insync.replicas", "2")]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        replicate(&node, &[1, 2]).await;
        let p = partition(&ctx);
        let answer = spawn_produce(&ctx, -1, 600_000);
        eventually("the acks=all produce waits", || p.purgatory.len() == 1).await;
        clock.advance(31_000);
        p.maybe_shrink_isr();
        send_queued(ctx.replicas.isr_queue(), &Committing::default()).await;
        assert_eq!(p.isr().unwrap(), vec![BrokerId(1)]);
        let (code, _) = tokio::time::timeout(LONG, answer).await.unwrap().unwrap();
        assert_eq!(code, 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND");
    });
}

#[test]
fn a_diverging_follower_is_told_where_its_epoch_ends() {
    let (node, _) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        // Offset 0 in epoch 0; this broker leads epoch 1 from offset 1.
        assert_eq!(produce(&ctx, 1, 1_000).await, (0, 0));
        replicate(&node, &[1, 2, 3]).await;
        let p = partition(&ctx);
        assert_eq!(
            p.log()
                .end_offset_for_epoch(sluice_record::LeaderEpoch(0))
                .map(|e| e.1),
            Some(Offset(1))
        );
        assert_eq!(produce(&ctx, 1, 1_000).await, (0, 1));
        assert_eq!(produce(&ctx, 1, 1_000).await, (0, 2));

        // 2 wrote offsets 0..3 in epoch 0 (an old leader's): epoch 0 ends
        // at 1 here, so it must truncate to 1. No records, no progress.
        // Answered at once, not after the long poll.
        let f = tokio::time::timeout(LONG, fetch(&ctx, 2, 3, 1, 0, 600_000))
            .await
            .expect("a diverging follower is answered at once");
        assert_eq!(f.error_code, 0);
        assert_eq!(
            (f.diverging_epoch.epoch, f.diverging_epoch.end_offset),
            (0, 1)
        );
        assert_eq!(records(&f), 0);
        let st = p.leader_state().unwrap();
        assert_eq!(st.follower(BrokerId(2)).unwrap().log_end_offset, UNKNOWN);

        // After truncating it fetches at 1 with epoch 0: in step.
        let f = fetch(&ctx, 2, 1, 1, 0, 0).await;
        assert_eq!(f.diverging_epoch.epoch, -1);
        assert!(records(&f) > 0);
        // Epoch 1 up to the end: in step too.
        let f = fetch(&ctx, 2, 3, 1, 1, 0).await;
        assert_eq!((f.error_code, f.diverging_epoch.epoch), (0, -1));
        assert_eq!(
            p.leader_state()
                .unwrap()
                .follower(BrokerId(2))
                .unwrap()
                .log_end_offset,
            Offset(3)
        );
    });
}

/// A follower's fetch session remembers its LastFetchedEpoch (KIP-227 with
/// KIP-279): an incremental fetch that does not name the partition again
/// is checked against the epoch of the full fetch that opened the session.
/// (Found by the cluster simulation, seed 20: a new session cached -1, the
/// divergence check was skipped, and a follower kept an old leader's batch
/// below the high watermark.)
#[test]
fn a_fetch_session_keeps_the_followers_last_fetched_epoch() {
    let (node, _) = node_with(&[]);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        // Offset 0 in epoch 0; this broker leads epoch 1 from offset 1.
        assert_eq!(produce(&ctx, 1, 1_000).await, (0, 0));
        replicate(&node, &[1, 2, 3]).await;
        assert_eq!(produce(&ctx, 1, 1_000).await, (0, 1));
        assert_eq!(produce(&ctx, 1, 1_000).await, (0, 2));
        let topic_id = ctx.image.topic("t").unwrap().topic_id;
        let request = |session_id: i32, session_epoch: i32, partitions: Vec<FetchPartition>| {
            FetchRequest::default()
                .with_replica_state(
                    ReplicaState::default()
                        .with_replica_id(WireBrokerId(2))
                        .with_replica_epoch(-1),
                )
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_id(session_id)
                .with_session_epoch(session_epoch)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)])
        };
        // Follower 2 holds 0..3 from an old leader's epoch 0, which ends at
        // 1 here: it must truncate to 1.
        let full = request(
            0,
            0,
            vec![FetchPartition::default()
                .with_fetch_offset(3)
                .with_current_leader_epoch(1)
                .with_last_fetched_epoch(0)
                .with_log_start_offset(0)
                .with_partition_max_bytes(1 << 20)],
        );
        let opened = crate::handlers::fetch::handle(&ctx, &header(1, 15), full)
            .await
            .into_materialized()
            .unwrap();
        assert_ne!(opened.session_id, 0, "the leader opened a session");
        let p = &opened.responses[0].partitions[0];
        assert_eq!(
            (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
            (0, 1)
        );

        // It asks again without naming the partition (nothing it sends
        // changed): the session's epoch 0 still diverges, so no records.
        let again = request(opened.session_id, 1, Vec::new());
        let answer = crate::handlers::fetch::handle(&ctx, &header(1, 15), again)
            .await
            .into_materialized()
            .unwrap();
        assert_eq!(answer.error_code, 0);
        let p = answer
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .next()
            .expect("the diverging partition is in the incremental answer");
        assert_eq!(
            (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
            (0, 1)
        );
        assert_eq!(records(p), 0);
    });
}

#[test]
fn a_restarted_leader_starts_from_the_checkpointed_high_watermark() {
    let fs = Arc::new(SimFs::new());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    {
        let node = open_node_with_clock(config(), &fs, clock.clone()).unwrap();
        let ctx: BrokerContext = (*node).clone();
        node.block_on(async {
            node.controller
                .create_topic("t", 1, 1, BTreeMap::new())
                .await
                .unwrap();
            node.controller
                .create_topic("solo", 1, 1, BTreeMap::new())
                .await
                .unwrap();
            replicate(&node, &[1, 2, 3]).await;
            for _ in 0..3 {
                assert_eq!(produce(&ctx, 1, 1_000).await.0, 0);
            }
            fetch(&ctx, 2, 2, 1, -1, 0).await;
            fetch(&ctx, 3, 2, 1, -1, 0).await;
            assert_eq!(partition(&ctx).high_watermark(), Offset(2));
            ctx.logs
                .write_high_watermarks(&ctx.replicas.high_watermarks())
                .unwrap();
            // Appended after the checkpoint (which says 0).
            assert_eq!(produce_to(&ctx, "solo", 1, 1_000).await, (0, 0));
            assert_eq!(produce_to(&ctx, "solo", 1, 1_000).await, (0, 1));
        });
    }
    let node = open_node_with_clock(config(), &fs, clock).unwrap();
    let ctx: BrokerContext = (*node).clone();
    let p = partition(&ctx);
    assert_eq!(p.log().log_end_offset(), Offset(3));
    // Offset 2 may be on this broker alone: it stays invisible until the
    // ISR has it.
    assert_eq!(p.high_watermark(), Offset(2));
    // A partition with no other replica is all committed at once.
    let solo = ctx
        .replicas
        .get_partition(&TopicPartition::new("solo", 0))
        .unwrap();
    assert_eq!(solo.log().log_end_offset(), Offset(2));
    assert_eq!(solo.high_watermark(), Offset(2));
}

#[test]
fn isr_changes_commit_through_the_controller_and_the_image_agrees() {
    // A short lag time, well inside the controller's broker session: the
    // simulated brokers 2 and 3 never heartbeat, and the controller judges
    // sessions by the manual clock this test advances (with the
    // default session it fenced them, and the ISR moved on its own).
    let config = BrokerConfig::with_overrides(&[
        ("log.dirs", "/sim/data"),
        ("replica.lag.time.max.ms", "2000"),
        ("broker.session.timeout.ms", "60000"),
    ])
    .unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = open_node_with_clock(config, &Arc::new(SimFs::new()), clock.clone()).unwrap();
    let ctx: BrokerContext = (*node).clone();
    let (client, epoch) = node.controller_client();
    let sender = super::controller::ControllerIsrSender::new(client, BrokerId(1), epoch);
    node.block_on(async {
        node.controller
            .create_topic("t", 1, 1, BTreeMap::new())
            .await
            .unwrap();
        replicate(&node, &[1, 2, 3]).await;
        let p = partition(&ctx);
        assert_eq!(produce(&ctx, 1, 1_000).await.0, 0);
        fetch(&ctx, 2, 1, 1, -1, 0).await;
        clock.advance(2_500);
        fetch(&ctx, 2, 1, 1, -1, 0).await;
        p.maybe_shrink_isr();
        send_queued(ctx.replicas.isr_queue(), &sender).await;
        assert_eq!(p.isr().unwrap(), vec![BrokerId(1), BrokerId(2)]);
        assert_eq!(p.high_watermark(), Offset(1));
        let in_image = |ctx: &BrokerContext| {
            let reg = ctx
                .image
                .image()
                .topic("t")
                .unwrap()
                .partition(0)
                .unwrap()
                .clone();
            (reg.isr, reg.partition_epoch.0)
        };
        eventually("the image shows the shrink", || {
            in_image(&ctx) == (vec![BrokerId(1), BrokerId(2)], 2)
        })
        .await;
        assert_eq!(p.leader_state().unwrap().partition_epoch().0, 2);

        // 3 catches up and joins through the controller.
        fetch(&ctx, 3, 1, 1, -1, 0).await;
        send_queued(ctx.replicas.isr_queue(), &sender).await;
        assert_eq!(p.isr().unwrap().len(), 3);
        eventually("the image shows the expansion", || in_image(&ctx).1 == 3).await;
        assert_eq!(
            in_image(&ctx).0,
            vec![BrokerId(1), BrokerId(2), BrokerId(3)]
        );
        assert!(p.leader_state().unwrap().pending().is_none());
    });
}

#[test]
fn the_leader_throttle_holds_only_followers_outside_the_isr() {
    // `t`-0 throttled on this leader (1).
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let config = config_with(&[]);
    let node = open_node_with_clock(config, &Arc::new(SimFs::new()), clock.clone()).unwrap();
    let configs = BTreeMap::from([(
        "leader.replication.throttled.replicas".to_string(),
        "0:1,0:2".to_string(),
    )]);
    node.block_on(node.controller.create_topic("t", 1, 1, configs))
        .unwrap();
    let ctx: BrokerContext = (*node).clone();
    // 1000 B/s over two 1 s windows.
    ctx.replicas.quotas().configure(QuotaSettings {
        leader_rate: 1_000,
        follower_rate: UNLIMITED,
        windows: 2,
        window_ms: 1_000,
    });
    node.block_on(async {
        replicate(&node, &[1, 2]).await;
        // One batch of 30 records of 100 bytes (one segment).
        let mut b = BatchBuilder::new(CompressionType::None);
        for _ in 0..30 {
            b.append(
                Timestamp(1_700_000_000_000),
                None,
                Some(&[7u8; 100][..]),
                &[],
            )
            .unwrap();
        }
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(b.build().unwrap())))])]);
        crate::handlers::produce::handle(&ctx, &header(0, 11), req).await;
        assert_eq!(partition(&ctx).log().log_end_offset(), Offset(30));
        // The in-sync follower 2 has everything: the high watermark moves
        // (so 3, far behind it, is no candidate for the ISR).
        fetch(&ctx, 2, 30, 1, -1, 0).await;
        assert_eq!(partition(&ctx).high_watermark(), Offset(30));
        // Follower 3 (outside the ISR) reads everything: over 1000 bytes.
        let first = fetch(&ctx, 3, 0, 1, -1, 0).await;
        assert!(records(&first) > 1_000, "{}", records(&first));
        // Now the quota is exceeded: 3 gets nothing, ...
        let held = fetch(&ctx, 3, 0, 1, -1, 0).await;
        assert_eq!((held.error_code, records(&held)), (0, 0));
        // ... the in-sync follower 2 and consumers still read.
        assert_eq!(records(&fetch(&ctx, 2, 0, 1, -1, 0).await), records(&first));
        assert!(records(&fetch(&ctx, -1, 0, 1, -1, 0).await) > 0);
        assert_eq!(records(&fetch(&ctx, 3, 0, 1, -1, 0).await), 0, "still held");
        // Once the samples expire, 3 reads again.
        clock.advance(3_000);
        assert_eq!(records(&fetch(&ctx, 3, 0, 1, -1, 0).await), records(&first));
    });
}
