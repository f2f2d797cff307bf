//! A JoinGroup waiting in a group that leaves this coordinator's memory is
//! answered (see `waiters`): on a node whose clock stands still, so only
//! the unload can end the join phase.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_storage::SimFs;

use crate::config::BrokerConfig;
use crate::group::{GroupError, JoinRequest, OFFSETS_TOPIC};
use crate::metadata::testing::{open_node, Node};

fn node() -> Node {
    let config = BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).expect("test config");
    open_node(config, &Arc::new(SimFs::new())).expect("node opens")
}

/// A group of partition 0 of `__consumer_offsets`, the one
/// `Node::change_leader` moves.
fn group_of_partition_0(n: &Node) -> String {
    (0..)
        .map(|i| format!("g{i}"))
        .find(|g| n.groups.partition_for(g) == 0)
        .expect("some group maps to partition 0")
}

fn first_join() -> JoinRequest {
    JoinRequest {
        member_id: String::new(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 300_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: false,
    }
}

/// Starts a JoinGroup of a new group and checks it waits (the initial
/// rebalance delay never ends on the standing clock).
async fn waiting_join(n: &Node) -> tokio::task::JoinHandle<crate::group::classic::JoinResult> {
    n.groups
        .ensure_offsets_topic(n)
        .await
        .expect("offsets topic");
    let group = group_of_partition_0(n);
    for _ in 0..3000 {
        if n.groups.check_ready(&group).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    n.groups.check_ready(&group).expect("loaded");
    let groups = n.groups.clone();
    let join = tokio::spawn(async move { groups.join(&group, first_join()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!join.is_finished(), "the join phase waits for the delay");
    join
}

async fn answer(
    join: tokio::task::JoinHandle<crate::group::classic::JoinResult>,
) -> Option<GroupError> {
    tokio::time::timeout(Duration::from_secs(60), join)
        .await
        .expect("the waiting JoinGroup is answered")
        .unwrap()
        .error
}

/// A new leader epoch of this broker's own partition (a single node fenced
/// and unfenced under load) reloads the partition from its log, replacing
/// the group: its waiting JoinGroup was never answered (the flaky
/// `sasl.rs` consumer, whose JoinGroup went unanswered for minutes).
#[test]
fn a_join_waiting_in_a_group_the_reload_replaced_is_answered() {
    let n = node();
    n.block_on(async {
        let join = waiting_join(&n).await;
        n.change_leader(OFFSETS_TOPIC, 1, &[1]).await;
        assert_eq!(answer(join).await, Some(GroupError::NotCoordinator));
        // The client looks the coordinator up again and joins afresh.
        let again = waiting_join(&n).await;
        again.abort();
    });
}

/// The partition moved to another broker: the waiting JoinGroup is
/// answered at the next tick, as Kafka's resignation answers it.
#[test]
fn a_join_waiting_when_the_partition_moves_away_is_answered() {
    let n = node();
    n.block_on(async {
        let join = waiting_join(&n).await;
        n.change_leader(OFFSETS_TOPIC, 2, &[1, 2]).await;
        n.groups.tick_all();
        assert_eq!(answer(join).await, Some(GroupError::NotCoordinator));
    });
}
