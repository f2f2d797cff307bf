//! KIP-392 through the real handlers on an in-process broker (node 1, see
//! [`super::fetch_tests`]): the leader's PreferredReadReplica answers, and
//! consumer reads from a partition node 1 follows.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::record::BrokerRegistrationChangeRecord;
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataRecord};
use sluice_record::{BatchHeader, Offset};

use super::fetch_tests::{
    config_with, eventually, fetch, header, node_with_config, partition, produce, records,
    replicate_in_racks,
};
use super::selector::RACK_AWARE_CLASS;
use crate::context::BrokerContext;
use crate::metadata::testing::Node;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const OFFSET_OUT_OF_RANGE: i16 = 1;

fn node(selector: bool) -> Node {
    let extra: &[(&str, &str)] = if selector {
        &[("replica.selector.class", RACK_AWARE_CLASS)]
    } else {
        &[]
    };
    node_with_config(config_with(extra), &[]).0
}

/// A consumer's Fetch of `t`-0 at `offset` in `version` (topic ids from
/// v13) with `client.rack` = `rack` (v11+).
async fn consume(
    ctx: &BrokerContext,
    version: i16,
    rack: &str,
    offset: i64,
    current_leader_epoch: i32,
    max_wait_ms: i32,
) -> PartitionData {
    let mut topic = FetchTopic::default();
    if version >= 13 {
        topic = topic.with_topic_id(ctx.image.topic("t").unwrap().topic_id);
    } else {
        topic = topic.with_topic(TopicName(StrBytes::from_static_str("t")));
    }
    let req = FetchRequest::default()
        .with_replica_id(WireBrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_rack_id(StrBytes::from_string(rack.to_string()))
        .with_topics(vec![topic.with_partitions(vec![FetchPartition::default()
            .with_fetch_offset(offset)
            .with_current_leader_epoch(current_leader_epoch)
            .with_partition_max_bytes(1 << 20)])]);
    let plan = crate::handlers::fetch::handle(ctx, &header(1, version), req).await;
    let response = plan.into_materialized().unwrap();
    response.responses[0].partitions[0].clone()
}

/// Node 1 leads `t`-0 = [1, 2, 3] (2 in rack r2, 3 in r3) with `isr`;
/// three records, and every ISR follower has fetched them all.
async fn three_records_replicated(node: &Node, isr: &[i32]) {
    let ctx: &BrokerContext = node;
    replicate_in_racks(node, isr, [Some("r2"), Some("r3")]).await;
    for _ in 0..3 {
        assert_eq!(produce(ctx, 1, 10_000).await.0, 0);
    }
    for f in isr.iter().filter(|b| **b != 1) {
        assert_eq!(fetch(ctx, *f, 3, 1, -1, 0).await.error_code, 0);
    }
    let p = partition(ctx);
    eventually("the high watermark covers the records", || {
        p.high_watermark() == Offset(3)
    })
    .await;
}

#[test]
fn the_leader_sends_a_consumer_to_the_in_sync_follower_of_its_rack() {
    let node = node(true);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        three_records_replicated(&node, &[1, 2, 3]).await;
        for (rack, want) in [("r2", 2), ("r3", 3)] {
            // A long poll that could wait ten minutes for a megabyte is
            // answered at once: no records, the leader's offsets.
            let f = tokio::time::timeout(
                Duration::from_secs(30),
                consume(&ctx, 11, rack, 0, 1, 600_000),
            )
            .await
            .expect("a redirection is answered at once");
            assert_eq!(f.error_code, 0);
            assert_eq!(f.preferred_read_replica.0, want, "client.rack={rack}");
            assert_eq!(records(&f), 0, "no records with a redirection");
            assert_eq!((f.high_watermark, f.log_start_offset), (3, 0));
        }
        // No replica in the client's rack, no rack, or a Fetch older than
        // v11 (no RackId): read here.
        for (version, rack) in [(11, "r9"), (12, ""), (17, "r9"), (10, "r2")] {
            let f = consume(&ctx, version, rack, 0, 1, 0).await;
            assert_eq!(f.error_code, 0);
            assert_eq!(f.preferred_read_replica.0, -1, "v{version} rack {rack:?}");
            assert!(records(&f) > 0);
        }
        // The same decision at v17 (topic ids).
        assert_eq!(
            consume(&ctx, 17, "r2", 0, 1, 0)
                .await
                .preferred_read_replica
                .0,
            2
        );
        // A follower's own fetch is never redirected.
        assert_eq!(
            fetch(&ctx, 2, 3, 1, -1, 0).await.preferred_read_replica.0,
            -1
        );
        // A stale epoch is refused before any redirection.
        let f = consume(&ctx, 12, "r2", 0, 0, 0).await;
        assert_eq!(f.error_code, 74, "FENCED_LEADER_EPOCH");
        assert_eq!(f.preferred_read_replica.0, -1);
    });
}

#[test]
fn only_followers_holding_the_offset_in_the_isr_and_unfenced_are_chosen() {
    let node = node(true);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        // 2 is a replica but not in the ISR, even though its log has
        // everything (its joining is only proposed, not committed).
        three_records_replicated(&node, &[1, 3]).await;
        assert_eq!(fetch(&ctx, 2, 3, 1, -1, 0).await.error_code, 0);
        assert!(!partition(&ctx).isr().unwrap().contains(&BrokerId(2)));
        assert_eq!(
            consume(&ctx, 12, "r2", 0, 1, 0)
                .await
                .preferred_read_replica
                .0,
            -1
        );
        assert_eq!(
            consume(&ctx, 12, "r3", 0, 1, 0)
                .await
                .preferred_read_replica
                .0,
            3
        );
        // 3 has fetched up to 3 only: an offset beyond its log end stays
        // on the leader (which has it).
        assert_eq!(produce(&ctx, 1, 10_000).await, (0, 3));
        let f = consume(&ctx, 12, "r3", 3, 1, 0).await;
        assert_eq!(f.preferred_read_replica.0, 3, "3 holds offset 3 (its end)");
        let f = consume(&ctx, 12, "r3", 4, 1, 0).await;
        assert_eq!(f.preferred_read_replica.0, -1, "3 does not hold offset 4");
        // A fenced broker is no candidate.
        let offset = node
            .append(vec![MetadataRecord::BrokerRegistrationChange(
                BrokerRegistrationChangeRecord {
                    broker_id: BrokerId(3),
                    broker_epoch: BrokerEpoch(103),
                    fenced: BrokerRegistrationChangeRecord::FENCE,
                    in_controlled_shutdown: BrokerRegistrationChangeRecord::NO_CHANGE,
                    log_dirs: Vec::new(),
                },
            )])
            .await;
        node.image.wait_for(offset).await.unwrap();
        assert!(node.image.image().broker(BrokerId(3)).unwrap().fenced);
        assert_eq!(
            consume(&ctx, 12, "r3", 0, 1, 0)
                .await
                .preferred_read_replica
                .0,
            -1
        );
    });
}

#[test]
fn without_a_selector_consumers_stay_on_the_leader() {
    let node = node(false);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        three_records_replicated(&node, &[1, 2, 3]).await;
        let f = consume(&ctx, 12, "r2", 0, 1, 0).await;
        assert_eq!((f.error_code, f.preferred_read_replica.0), (0, -1));
        assert!(records(&f) > 0);
    });
}

/// The offset after the last batch of `p`'s records (`None`: no records).
fn next_offset(p: &PartitionData) -> Option<i64> {
    let mut rest: &[u8] = p.records.as_deref().unwrap_or_default();
    let mut next = None;
    while !rest.is_empty() {
        let size = BatchHeader::peek_size(rest).unwrap();
        next = Some(
            BatchHeader::validate(&rest[..size])
                .unwrap()
                .next_offset()
                .0,
        );
        rest = &rest[size..];
    }
    next
}

/// ListOffsets (latest) of `t`-0: its error code.
async fn list_latest(ctx: &BrokerContext) -> i16 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(WireBrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])]);
    let r = crate::handlers::list_offsets::handle(ctx, &header(2, 7), req).await;
    r.topics[0].partitions[0].error_code
}

#[test]
fn a_follower_serves_consumers_up_to_its_own_high_watermark() {
    let node = node(false);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        for _ in 0..3 {
            assert_eq!(produce(&ctx, 1, 10_000).await.0, 0);
        }
        let p = partition(&ctx);
        // Broker 2 leads now, node 1 follows with three records, and the
        // leader's high watermark says 2 of them are committed.
        node.change_leader("t", 2, &[1, 2]).await;
        assert!(!p.is_leader());
        let epoch = p.leader_epoch().0;
        assert_eq!(p.follow_high_watermark(Offset(2)), Offset(2));

        // Read from the start: exactly the records below its HW.
        let mut offset = 0;
        loop {
            let f = consume(&ctx, 12, "", offset, epoch, 0).await;
            assert_eq!((f.error_code, f.high_watermark), (0, 2));
            match next_offset(&f) {
                Some(next) => offset = next,
                None => break,
            }
        }
        assert_eq!(offset, 2, "read up to the follower's HW, no further");
        // Above the follower's HW but within its log: empty, no error.
        for offset in [2, 3] {
            let f = consume(&ctx, 12, "", offset, epoch, 0).await;
            assert_eq!((f.error_code, records(&f)), (0, 0), "offset {offset}");
        }
        // Beyond its log: out of range (the consumer goes back to the leader).
        let f = consume(&ctx, 12, "", 4, epoch, 0).await;
        assert_eq!(f.error_code, OFFSET_OUT_OF_RANGE);
        // The epoch the consumer knows is checked against the follower's.
        assert_eq!(consume(&ctx, 12, "", 0, epoch - 1, 0).await.error_code, 74);
        assert_eq!(consume(&ctx, 12, "", 0, epoch + 1, 0).await.error_code, 75);
        // Before v11 consumers read from the leader only; ListOffsets stays
        // with the leader whatever the version.
        let f = consume(&ctx, 10, "", 0, epoch, 0).await;
        assert_eq!(f.error_code, NOT_LEADER_OR_FOLLOWER);
        assert_eq!(
            (f.current_leader.leader_id.0, f.current_leader.leader_epoch),
            (2, epoch)
        );
        assert_eq!(list_latest(&ctx).await, NOT_LEADER_OR_FOLLOWER);

        // A consumer's long poll on the follower wakes when its high
        // watermark moves.
        let waiting = {
            let ctx = ctx.clone();
            tokio::spawn(async move { consume(&ctx, 12, "", 2, epoch, 600_000).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        p.follow_high_watermark(Offset(3));
        let f = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("woken by the high watermark")
            .unwrap();
        assert_eq!((f.error_code, f.high_watermark), (0, 3));
        assert_eq!(next_offset(&f), Some(3));

        // No longer a replica: refused, with the leader to go to.
        node.change_leader("t", 2, &[2]).await;
        let f = consume(&ctx, 12, "", 0, -1, 0).await;
        assert_eq!(f.error_code, NOT_LEADER_OR_FOLLOWER);
        assert_eq!(f.current_leader.leader_id.0, 2);
        assert_eq!(records(&f), 0);
    });
}

#[test]
fn a_follower_never_shows_more_than_the_leaders_high_watermark() {
    let node = node(false);
    let ctx: BrokerContext = (*node).clone();
    node.block_on(async {
        for _ in 0..3 {
            assert_eq!(produce(&ctx, 1, 10_000).await.0, 0);
        }
        let p = partition(&ctx);
        assert_eq!(p.high_watermark(), Offset(3));
        // The old leader becomes a follower of a leader whose high
        // watermark has not caught up yet: its own follows it down.
        node.change_leader("t", 2, &[1, 2]).await;
        let epoch = p.leader_epoch().0;
        let source: Arc<dyn crate::replica_fetcher::replica::FollowerReplica> = p.clone();
        assert_eq!(source.update_high_watermark(Offset(1)), Offset(1));
        let f = consume(&ctx, 12, "", 0, epoch, 0).await;
        assert_eq!(f.high_watermark, 1);
        assert_eq!(
            consume(&ctx, 12, "", 1, epoch, 0)
                .await
                .records
                .unwrap()
                .len(),
            0
        );
    });
}
