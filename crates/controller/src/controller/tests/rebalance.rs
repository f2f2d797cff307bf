//! The automatic preferred leader balance (`rebalance.rs`): leadership
//! goes back to the preferred replica once it is usable and in the ISR,
//! never before, and not at all with `auto.leader.rebalance.enable=false`.

use std::sync::Arc;
use std::time::Duration;

use sluice_metadata::{BrokerEpoch, BrokerId, MetadataRecord, PartitionRegistration};
use sluice_record::Offset;

use super::{fixture_with, Fixture};
use crate::controller::rebalance::{is_imbalanced, plan_balance, preferred_change};
use crate::controller::*;

const T: &str = "balanced";

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&i| BrokerId(i)).collect()
}

/// Three unfenced brokers and topic `balanced` with `partitions`
/// partitions on replicas [1, 2, 3], every replica in the ISR.
async fn setup(partitions: i32, auto: bool, interval_ms: i64) -> Fixture {
    let config = ControllerConfig {
        new_partitions_isr_all_usable: true,
        auto_leader_rebalance_enable: auto,
        leader_imbalance_check_interval_ms: interval_ms,
        ..ControllerConfig::default()
    };
    let f = fixture_with(
        &[(1, None), (2, None), (3, None)],
        Arc::new(PermissiveValidator),
        config,
    )
    .await;
    f.c.create_topics(
        vec![CreateTopic {
            assignments: (0..partitions)
                .map(|p| ReplicaAssignment {
                    partition: p,
                    replicas: b(&[1, 2, 3]),
                })
                .collect(),
            ..CreateTopic::named(T)
        }],
        false,
    )
    .await
    .unwrap()[0]
        .as_ref()
        .unwrap();
    f
}

fn reg(f: &Fixture, p: i32) -> PartitionRegistration {
    f.c.image().topic(T).unwrap().partition(p).unwrap().clone()
}

async fn heartbeat(f: &Fixture, id: i32, want_fence: bool) {
    f.c.heartbeat(BrokerHeartbeat {
        broker_id: BrokerId(id),
        broker_epoch: BrokerEpoch(0),
        current_metadata_offset: Offset(1_000_000),
        want_fence,
        want_shutdown: false,
    })
    .await
    .unwrap();
}

/// The leader of partition `p` adds `broker` back to its ISR.
async fn rejoin(f: &Fixture, p: i32, broker: i32) {
    let r = reg(f, p);
    let mut isr: Vec<(BrokerId, i64)> = r.isr.iter().map(|&b| (b, -1)).collect();
    isr.push((BrokerId(broker), -1));
    let reply =
        f.c.alter_partition(AlterPartitionRequest {
            broker_id: r.leader,
            broker_epoch: BrokerEpoch(0),
            partitions: vec![AlterPartitionItem {
                topic_id: f.c.image().topic(T).unwrap().id(),
                partition: p,
                leader_epoch: r.leader_epoch,
                partition_epoch: r.partition_epoch,
                new_isr: isr,
                leader_recovery_state: r.leader_recovery_state,
            }],
        })
        .await
        .unwrap();
    reply.partitions[0].result.as_ref().unwrap();
}

/// Broker 1 (every partition's preferred leader) is fenced and comes back:
/// leadership is elsewhere, broker 1 outside the ISR.
async fn lose_and_return_broker_1(f: &Fixture, partitions: i32) {
    heartbeat(f, 1, true).await;
    for p in 0..partitions {
        let r = reg(f, p);
        assert_eq!(r.leader, BrokerId(2), "{r:?}");
        assert!(!r.isr.contains(&BrokerId(1)), "{r:?}");
    }
    heartbeat(f, 1, false).await;
    assert!(f.c.image().broker(BrokerId(1)).unwrap().is_usable());
}

async fn wait_for_leader(f: &Fixture, p: i32, leader: i32) {
    let bound = tokio::time::Instant::now() + Duration::from_secs(60);
    while reg(f, p).leader != BrokerId(leader) {
        assert!(
            tokio::time::Instant::now() < bound,
            "leader never became {leader}: {:?}",
            reg(f, p)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn leadership_returns_to_the_preferred_replica_once_it_is_back_in_the_isr() {
    let f = setup(2, true, 30).await;
    lose_and_return_broker_1(&f, 2).await;
    // Usable but outside the ISR: several checks pass, nothing moves.
    let epoch = reg(&f, 0).leader_epoch;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reg(&f, 0).leader, BrokerId(2));
    assert_eq!(reg(&f, 0).leader_epoch, epoch, "no election written");
    assert!(is_imbalanced(&f.c.image()));
    // In the ISR again: the next check moves both partitions back.
    rejoin(&f, 0, 1).await;
    rejoin(&f, 1, 1).await;
    wait_for_leader(&f, 0, 1).await;
    wait_for_leader(&f, 1, 1).await;
    let r = reg(&f, 0);
    assert!(r.leader_epoch.0 > epoch.0, "a new leader epoch: {r:?}");
    assert_eq!(r.isr, b(&[2, 3, 1]), "the ISR is left as it was");
    assert!(!is_imbalanced(&f.c.image()));
}

#[tokio::test]
async fn with_auto_leader_rebalance_disabled_leadership_stays_where_it_is() {
    let f = setup(1, false, 10).await;
    lose_and_return_broker_1(&f, 1).await;
    rejoin(&f, 0, 1).await;
    let batches = f.log.batches().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reg(&f, 0).leader, BrokerId(2));
    assert_eq!(f.log.batches().len(), batches, "nothing written");
    // A preferred ElectLeaders still does it by hand.
    let r =
        f.c.elect_leaders(ElectionType::Preferred, None)
            .await
            .unwrap();
    assert_eq!(r.len(), 1);
    r[0].result.as_ref().unwrap();
    assert_eq!(reg(&f, 0).leader, BrokerId(1));
}

#[tokio::test]
async fn a_long_interval_defers_the_balance() {
    let f = setup(1, true, 3_600_000).await;
    lose_and_return_broker_1(&f, 1).await;
    rejoin(&f, 0, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reg(&f, 0).leader, BrokerId(2), "not before the interval");
}

#[tokio::test]
async fn one_balance_elects_at_most_its_bound_and_says_more_remain() {
    let f = setup(3, false, 10).await;
    lose_and_return_broker_1(&f, 3).await;
    let image = f.c.image();
    // Broker 1 outside every ISR: nothing to elect, nothing more to do.
    assert_eq!(plan_balance(&image, 10), (Vec::new(), false));
    for p in 0..3 {
        rejoin(&f, p, 1).await;
    }
    let image = f.c.image();
    let (records, more) = plan_balance(&image, 2);
    assert!(more);
    assert_eq!(records.len(), 2);
    for r in &records {
        let MetadataRecord::PartitionChange(c) = r else {
            panic!("{r:?}")
        };
        assert_eq!(c.leader, BrokerId(1));
        assert!(c.isr.is_none(), "only the leader changes: {c:?}");
    }
    let (records, more) = plan_balance(&image, 3);
    assert_eq!((records.len(), more), (3, false));
}

#[tokio::test]
async fn a_fenced_preferred_replica_is_never_elected() {
    let f = setup(1, false, 10).await;
    // Fencing shrinks real ISRs, so check the rule on a registration that
    // still lists the fenced broker 3 first and in its ISR.
    heartbeat(&f, 3, true).await;
    let image = f.c.image();
    assert!(!image.broker(BrokerId(3)).unwrap().is_usable());
    let mut r = reg(&f, 0);
    r.replicas = b(&[3, 1, 2]);
    r.isr = b(&[3, 1]);
    r.leader = BrokerId(1);
    assert!(matches!(
        preferred_change(&image, &r, (T, uuid::Uuid::nil(), 0)),
        Err(crate::error::ControllerError::PreferredLeaderNotAvailable(
            _
        ))
    ));
    // Once unfenced it may lead.
    heartbeat(&f, 3, false).await;
    let c = preferred_change(&f.c.image(), &r, (T, uuid::Uuid::nil(), 0)).unwrap();
    assert_eq!(c.leader, BrokerId(3));
}
