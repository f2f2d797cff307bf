//! AlterPartition: each of Kafka's validations, the happy path, batching,
//! and how ISR changes meet fencing, controlled shutdown, ELR and unclean
//! elections.

use std::sync::Arc;

use sluice_metadata::{
    BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, LeaderRecoveryState, PartitionEpoch,
    PartitionRegistration,
};
use sluice_record::{LeaderEpoch, Offset};
use uuid::Uuid;

use super::{fixture, fixture_with, Fixture};
use crate::controller::*;
use crate::error::ControllerError;

const T: &str = "isr";

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&i| BrokerId(i)).collect()
}

/// Three unfenced brokers (epoch 0) and topic `isr` with `partitions`
/// partitions on replicas [1, 2, 3] (leader 1, ISR [1]).
async fn setup(partitions: i32, config: ControllerConfig) -> (Fixture, Uuid) {
    let f = fixture_with(
        &[(1, None), (2, None), (3, None)],
        Arc::new(PermissiveValidator),
        config,
    )
    .await;
    let created =
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
        .unwrap();
    let id = created[0].as_ref().unwrap().topic_id;
    (f, id)
}

async fn three() -> (Fixture, Uuid) {
    setup(1, ControllerConfig::default()).await
}

fn reg(f: &Fixture, p: i32) -> PartitionRegistration {
    f.c.image().topic(T).unwrap().partition(p).unwrap().clone()
}

/// An item for partition `p` at its current epochs proposing `isr`
/// (broker epochs -1).
fn item(f: &Fixture, id: Uuid, p: i32, isr: &[i32]) -> AlterPartitionItem {
    let r = reg(f, p);
    AlterPartitionItem {
        topic_id: id,
        partition: p,
        leader_epoch: r.leader_epoch,
        partition_epoch: r.partition_epoch,
        new_isr: isr.iter().map(|&i| (BrokerId(i), -1)).collect(),
        leader_recovery_state: r.leader_recovery_state,
    }
}

fn request(broker: i32, items: Vec<AlterPartitionItem>) -> AlterPartitionRequest {
    AlterPartitionRequest {
        broker_id: BrokerId(broker),
        broker_epoch: BrokerEpoch(0),
        partitions: items,
    }
}

/// Sends one item from the leader and returns its result.
async fn alter_one(f: &Fixture, it: AlterPartitionItem) -> Result<PartitionState, ControllerError> {
    let leader = reg(f, it.partition).leader;
    let mut reply =
        f.c.alter_partition(request(leader.0, vec![it]))
            .await
            .unwrap();
    assert_eq!(reply.partitions.len(), 1);
    reply.partitions.remove(0).result
}

fn heartbeat(id: i32, want_fence: bool, want_shutdown: bool) -> BrokerHeartbeat {
    BrokerHeartbeat {
        broker_id: BrokerId(id),
        broker_epoch: BrokerEpoch(0),
        current_metadata_offset: Offset(1_000_000),
        want_fence,
        want_shutdown,
    }
}

#[tokio::test]
async fn the_leader_expands_and_shrinks_the_isr_and_the_answer_is_the_committed_state() {
    let (f, id) = three().await;
    let before = reg(&f, 0);
    assert_eq!((before.leader, before.isr.clone()), (BrokerId(1), b(&[1])));
    let batches = f.log.batches().len();
    let mut it = item(&f, id, 0, &[1, 2, 3]);
    it.new_isr[1].1 = 0; // broker 2 at its real epoch: checked and fine
    let state = alter_one(&f, it).await.unwrap();
    let after = reg(&f, 0);
    assert_eq!(state, PartitionState::of(&after), "answered after commit");
    assert_eq!(after.isr, b(&[1, 2, 3]));
    assert_eq!(after.leader, BrokerId(1));
    assert_eq!(
        after.leader_epoch, before.leader_epoch,
        "an ISR change keeps the leader epoch"
    );
    assert_eq!(after.partition_epoch.0, before.partition_epoch.0 + 1);
    assert_eq!(
        f.log.batches().len(),
        batches + 1,
        "one PartitionChangeRecord committed"
    );
    // Shrink, based on the new partition epoch.
    let state = alter_one(&f, item(&f, id, 0, &[1, 3])).await.unwrap();
    assert_eq!(state.isr, b(&[1, 3]));
    assert_eq!(state.partition_epoch.0, before.partition_epoch.0 + 2);
    // Proposing the current ISR changes nothing and answers the state.
    let batches = f.log.batches().len();
    let same = alter_one(&f, item(&f, id, 0, &[1, 3])).await.unwrap();
    assert_eq!(same, state);
    assert_eq!(f.log.batches().len(), batches, "nothing to commit");
}

#[tokio::test]
async fn a_stale_or_unknown_sender_fails_the_whole_request() {
    let (f, id) = three().await;
    let mut req = request(1, vec![item(&f, id, 0, &[1, 2])]);
    req.broker_epoch = BrokerEpoch(7);
    assert!(matches!(
        f.c.alter_partition(req).await,
        Err(ControllerError::StaleBrokerEpoch {
            given: 7,
            current: 0,
            ..
        })
    ));
    // Kafka answers STALE_BROKER_EPOCH for an unregistered broker too.
    let req = request(9, vec![item(&f, id, 0, &[1, 2])]);
    assert!(matches!(
        f.c.alter_partition(req).await,
        Err(ControllerError::StaleBrokerEpoch { current: -1, .. })
    ));
    assert_eq!(reg(&f, 0).isr, b(&[1]), "nothing changed");
}

#[tokio::test]
async fn unknown_topics_partitions_and_a_sender_that_is_not_the_leader_are_refused() {
    let (f, id) = three().await;
    let mut unknown_topic = item(&f, id, 0, &[1, 2]);
    unknown_topic.topic_id = Uuid::from_u128(99);
    let mut nil_topic = item(&f, id, 0, &[1, 2]);
    nil_topic.topic_id = Uuid::nil();
    let mut unknown_partition = item(&f, id, 0, &[1, 2]);
    unknown_partition.partition = 5;
    let reply =
        f.c.alter_partition(request(
            1,
            vec![unknown_topic, nil_topic, unknown_partition],
        ))
        .await
        .unwrap();
    let r = &reply.partitions;
    assert!(
        matches!(r[0].result, Err(ControllerError::UnknownTopicId(t)) if t == Uuid::from_u128(99))
    );
    assert!(matches!(
        r[1].result,
        Err(ControllerError::UnknownTopicId(_))
    ));
    assert!(matches!(
        r[2].result,
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    assert_eq!(
        (r[2].topic_id, r[2].partition),
        (id, 5),
        "answers name their item"
    );
    // Broker 2 is a replica but not the leader.
    let reply =
        f.c.alter_partition(request(2, vec![item(&f, id, 0, &[1, 2])]))
            .await
            .unwrap();
    assert!(matches!(
        reply.partitions[0].result,
        Err(ControllerError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn epochs_older_than_the_partitions_are_fenced_and_newer_ones_say_not_controller() {
    let (f, id) = three().await;
    // Move the epochs up: an ISR change (partition epoch) and a leader
    // change there and back (leader epoch).
    alter_one(&f, item(&f, id, 0, &[1, 2])).await.unwrap();
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    assert_eq!(reg(&f, 0).leader, BrokerId(2));
    f.c.heartbeat(heartbeat(1, false, false)).await.unwrap();
    alter_one(&f, item(&f, id, 0, &[2, 1])).await.unwrap();
    f.c.elect_leaders(ElectionType::Preferred, None)
        .await
        .unwrap();
    let r = reg(&f, 0);
    assert_eq!(r.leader, BrokerId(1));
    assert!(r.leader_epoch.0 >= 2, "{r:?}");
    let current = item(&f, id, 0, &[1, 2]);
    let with = |le: i32, pe: i32| AlterPartitionItem {
        leader_epoch: LeaderEpoch(current.leader_epoch.0 + le),
        partition_epoch: PartitionEpoch(current.partition_epoch.0 + pe),
        ..current.clone()
    };
    let reply =
        f.c.alter_partition(request(
            1,
            vec![
                with(-1, 0),
                with(0, -1),
                with(1, 0),
                with(0, 1),
                with(-1, -1),
            ],
        ))
        .await
        .unwrap();
    let r: Vec<_> = reply.partitions.into_iter().map(|p| p.result).collect();
    assert!(
        matches!(r[0], Err(ControllerError::FencedLeaderEpoch(_))),
        "{:?}",
        r[0]
    );
    assert!(
        matches!(r[1], Err(ControllerError::InvalidUpdateVersion(_))),
        "{:?}",
        r[1]
    );
    assert!(
        matches!(r[2], Err(ControllerError::NotController(_))),
        "{:?}",
        r[2]
    );
    assert!(
        matches!(r[3], Err(ControllerError::NotController(_))),
        "{:?}",
        r[3]
    );
    // Kafka checks the leader epoch first.
    assert!(
        matches!(r[4], Err(ControllerError::FencedLeaderEpoch(_))),
        "{:?}",
        r[4]
    );
}

#[tokio::test]
async fn an_isr_must_be_distinct_replicas_holding_the_leader() {
    let (f, id) = fixture_with_four().await;
    for isr in [&[1, 4][..], &[1, 2, 2], &[2, 3], &[]] {
        let res = alter_one(&f, item(&f, id, 0, isr)).await;
        assert!(
            matches!(res, Err(ControllerError::InvalidRequest(_))),
            "{isr:?}: {res:?}"
        );
    }
    assert_eq!(reg(&f, 0).isr, b(&[1]));
}

/// As `three`, with a fourth registered broker that is not a replica.
async fn fixture_with_four() -> (Fixture, Uuid) {
    let (f, id) = three().await;
    let epoch =
        f.c.register_broker(BrokerRegistrationRequest {
            broker_id: BrokerId(4),
            incarnation_id: Uuid::from_u128(4),
            listeners: Vec::new(),
            features: Vec::new(),
            rack: None,
            log_dirs: Vec::new(),
            previous_broker_epoch: None,
        })
        .await
        .unwrap()
        .broker_epoch;
    let mut hb = heartbeat(4, false, false);
    hb.broker_epoch = epoch;
    f.c.heartbeat(hb).await.unwrap();
    assert!(f.c.image().broker(BrokerId(4)).unwrap().is_usable());
    (f, id)
}

#[tokio::test]
async fn ineligible_members_are_refused_with_the_reason() {
    let (f, id) = three().await;
    // Broker 3 fenced, broker 2 in controlled shutdown (it stays
    // registered).
    f.c.heartbeat(heartbeat(3, true, false)).await.unwrap();
    let res = alter_one(&f, item(&f, id, 0, &[1, 3])).await;
    assert!(
        matches!(&res, Err(ControllerError::IneligibleReplica(m)) if m.contains("3 (fenced)")),
        "{res:?}"
    );
    // A member at another broker epoch than the leader saw.
    let mut it = item(&f, id, 0, &[1, 2]);
    it.new_isr[1].1 = 5;
    let res = alter_one(&f, it).await;
    assert!(
        matches!(&res, Err(ControllerError::IneligibleReplica(m)) if m.contains("epoch mismatch")),
        "{res:?}"
    );
    f.c.heartbeat(heartbeat(2, false, true)).await.unwrap();
    let res = alter_one(&f, item(&f, id, 0, &[1, 2])).await;
    assert!(
        matches!(&res, Err(ControllerError::IneligibleReplica(m)) if m.contains("shutting down")),
        "{res:?}"
    );
    assert_eq!(reg(&f, 0).isr, b(&[1]));
}

#[tokio::test]
async fn recovered_never_goes_back_to_recovering() {
    let (f, id) = three().await;
    let mut it = item(&f, id, 0, &[1]);
    it.leader_recovery_state = LeaderRecoveryState::Recovering;
    assert!(matches!(
        alter_one(&f, it).await,
        Err(ControllerError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn a_batch_answers_each_item_and_plans_each_against_the_ones_before() {
    let (f, id) = setup(3, ControllerConfig::default()).await;
    let first = item(&f, id, 0, &[1, 2]);
    // The same partition again, based on the epoch the first item makes.
    let second = AlterPartitionItem {
        partition_epoch: PartitionEpoch(first.partition_epoch.0 + 1),
        new_isr: vec![(BrokerId(1), -1), (BrokerId(2), -1), (BrokerId(3), -1)],
        ..first.clone()
    };
    // A stale copy of the first: its partition epoch is now old.
    let stale = first.clone();
    let bad = item(&f, id, 1, &[2]);
    let good = item(&f, id, 2, &[1, 3]);
    let batches = f.log.batches().len();
    let reply =
        f.c.alter_partition(request(1, vec![first, second, stale, bad, good]))
            .await
            .unwrap();
    let r: Vec<_> = reply.partitions.into_iter().map(|p| p.result).collect();
    assert_eq!(r[0].as_ref().unwrap().isr, b(&[1, 2]));
    assert_eq!(r[1].as_ref().unwrap().isr, b(&[1, 2, 3]));
    assert!(
        matches!(r[2], Err(ControllerError::InvalidUpdateVersion(_))),
        "{:?}",
        r[2]
    );
    assert!(
        matches!(r[3], Err(ControllerError::InvalidRequest(_))),
        "{:?}",
        r[3]
    );
    assert_eq!(r[4].as_ref().unwrap().isr, b(&[1, 3]));
    assert_eq!(f.log.batches().len(), batches + 1, "one request, one batch");
    assert_eq!(reg(&f, 0).isr, b(&[1, 2, 3]));
    assert_eq!(PartitionState::of(&reg(&f, 0)), *r[1].as_ref().unwrap());
    assert_eq!(reg(&f, 2).isr, b(&[1, 3]));
}

#[tokio::test]
async fn fencing_takes_a_member_out_of_every_isr_and_the_last_one_stays_leaderless() {
    let (f, id) = three().await;
    alter_one(&f, item(&f, id, 0, &[1, 2, 3])).await.unwrap();
    // A follower fenced: out of the ISR, the leader stays.
    f.c.heartbeat(heartbeat(2, true, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(1), b(&[1, 3])));
    // The leader shuts down: 3 leads, alone in the ISR.
    f.c.heartbeat(heartbeat(1, false, true)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(3), b(&[3])));
    // The last member fenced: it stays in the ISR, leaderless.
    f.c.heartbeat(heartbeat(3, true, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId::NO_LEADER, b(&[3])));
    // Broker 2 comes back: not in the ISR, so it does not lead (no ELR,
    // no unclean election).
    f.c.heartbeat(heartbeat(2, false, false)).await.unwrap();
    assert_eq!(reg(&f, 0).leader, BrokerId::NO_LEADER);
    // Broker 3 comes back and leads again.
    f.c.heartbeat(heartbeat(3, false, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(3), b(&[3])));
    // The new leader's AlterPartition at its new leader epoch works; the
    // old leader's is refused.
    let mut old = item(&f, id, 0, &[1, 3]);
    old.leader_epoch = LeaderEpoch(0);
    let res = f.c.alter_partition(request(1, vec![old])).await.unwrap();
    assert!(matches!(
        res.partitions[0].result,
        Err(ControllerError::FencedLeaderEpoch(_))
    ));
    let state = alter_one(&f, item(&f, id, 0, &[3, 2])).await.unwrap();
    assert_eq!((state.leader, state.isr), (BrokerId(3), b(&[3, 2])));
}

async fn min_isr_2(f: &Fixture) {
    let res =
        f.c.incremental_alter_configs(
            vec![(
                ConfigResource {
                    resource_type: ConfigResourceType::Topic,
                    name: T.into(),
                },
                vec![ConfigAlteration {
                    name: "min.insync.replicas".into(),
                    op: AlterConfigOp::Set,
                    value: Some("2".into()),
                }],
            )],
            false,
        )
        .await
        .unwrap();
    res[0].as_ref().unwrap();
}

fn elr_config() -> ControllerConfig {
    ControllerConfig {
        eligible_leader_replicas_enabled: true,
        ..ControllerConfig::default()
    }
}

#[tokio::test]
async fn with_elr_members_leaving_an_isr_below_min_isr_stay_eligible_leaders() {
    let (f, id) = setup(1, elr_config()).await;
    min_isr_2(&f).await;
    alter_one(&f, item(&f, id, 0, &[1, 2, 3])).await.unwrap();
    // Down to 2 = min ISR: nobody is eligible beyond the ISR.
    alter_one(&f, item(&f, id, 0, &[1, 2])).await.unwrap();
    assert!(reg(&f, 0).elr.is_empty());
    // Below min ISR: the member leaving goes to the ELR.
    alter_one(&f, item(&f, id, 0, &[1])).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.isr.clone(), r.elr.clone()), (b(&[1]), b(&[2])));
    // The leader fenced: the ISR empties into the ELR, the last leader is
    // remembered, nobody leads (2 is fenced too).
    f.c.heartbeat(heartbeat(2, true, false)).await.unwrap();
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!(r.leader, BrokerId::NO_LEADER);
    assert!(r.isr.is_empty(), "{r:?}");
    assert_eq!(r.elr, b(&[1, 2]));
    assert_eq!(r.last_known_elr, b(&[1]));
    // 3 comes back: not eligible, no leader.
    f.c.heartbeat(heartbeat(3, true, false)).await.unwrap();
    f.c.heartbeat(heartbeat(3, false, false)).await.unwrap();
    assert_eq!(reg(&f, 0).leader, BrokerId::NO_LEADER);
    // 2 comes back: elected from the ELR, the ISR is it alone, clean.
    f.c.heartbeat(heartbeat(2, false, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!(
        (r.leader, r.isr.clone(), r.elr.clone()),
        (BrokerId(2), b(&[2]), b(&[1]))
    );
    assert_eq!(r.leader_recovery_state, LeaderRecoveryState::Recovered);
    assert!(r.last_known_elr.is_empty());
    // Back to min ISR: the ELR empties.
    alter_one(&f, item(&f, id, 0, &[2, 3])).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.isr.clone(), r.elr.clone()), (b(&[2, 3]), b(&[])));
}

#[tokio::test]
async fn without_elr_the_isr_never_empties_and_the_elr_stays_empty() {
    let (f, id) = three().await;
    min_isr_2(&f).await;
    alter_one(&f, item(&f, id, 0, &[1, 2])).await.unwrap();
    alter_one(&f, item(&f, id, 0, &[1])).await.unwrap();
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId::NO_LEADER, b(&[1])));
    assert!(r.elr.is_empty() && r.last_known_elr.is_empty());
}

#[tokio::test]
async fn an_unclean_election_marks_the_partition_recovering_until_the_leader_clears_it() {
    let (f, id) = three().await;
    let unclean = vec![(
        ConfigResource {
            resource_type: ConfigResourceType::Topic,
            name: T.into(),
        },
        vec![ConfigAlteration {
            name: "unclean.leader.election.enable".into(),
            op: AlterConfigOp::Set,
            value: Some("true".into()),
        }],
    )];
    f.c.incremental_alter_configs(unclean, false).await.unwrap()[0]
        .as_ref()
        .unwrap();
    // The only ISR member fenced: any usable replica leads, uncleanly.
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(2), b(&[2])));
    assert_eq!(r.leader_recovery_state, LeaderRecoveryState::Recovering);
    // While recovering the ISR stays the leader alone.
    let mut grow = item(&f, id, 0, &[2, 3]);
    assert_eq!(grow.leader_recovery_state, LeaderRecoveryState::Recovering);
    assert!(matches!(
        alter_one(&f, grow.clone()).await,
        Err(ControllerError::InvalidRequest(_))
    ));
    // The leader says it recovered (and may grow the ISR at once).
    grow.leader_recovery_state = LeaderRecoveryState::Recovered;
    let state = alter_one(&f, grow).await.unwrap();
    assert_eq!(state.leader_recovery_state, LeaderRecoveryState::Recovered);
    assert_eq!(state.isr, b(&[2, 3]));
}

#[tokio::test]
async fn an_unclean_elect_leaders_picks_a_live_replica_outside_the_isr() {
    let (f, _id) = three().await;
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    assert_eq!(reg(&f, 0).leader, BrokerId::NO_LEADER);
    let res =
        f.c.elect_leaders(ElectionType::Unclean, Some(vec![(T.into(), 0)]))
            .await
            .unwrap();
    res[0].result.as_ref().unwrap();
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(2), b(&[2])));
    assert_eq!(r.leader_recovery_state, LeaderRecoveryState::Recovering);
}

#[tokio::test]
async fn the_in_process_client_answers_with_the_offset_that_holds_the_change() {
    use crate::client::ControllerClient;
    let (f, id) = three().await;
    let it = item(&f, id, 0, &[1, 2]);
    let answer = ControllerClient::alter_partition(&f.c, request(1, vec![it]))
        .await
        .unwrap();
    let image = f.c.image_at(answer.offset).await.unwrap();
    let state = answer.value.partitions[0].result.as_ref().unwrap();
    let committed = image.topic(T).unwrap().partition(0).unwrap();
    assert_eq!(*state, PartitionState::of(committed));
}

#[tokio::test]
async fn fixture_without_brokers_refuses_everything_as_stale() {
    let f = fixture(&[], Arc::new(PermissiveValidator)).await;
    let res = f.c.alter_partition(request(1, Vec::new())).await;
    assert!(matches!(res, Err(ControllerError::StaleBrokerEpoch { .. })));
}

#[tokio::test]
async fn brokers_expiring_together_leave_the_isr_one_by_one_and_only_the_last_stays() {
    let (f, id) = setup(2, ControllerConfig::default()).await;
    alter_one(&f, item(&f, id, 0, &[1, 2])).await.unwrap();
    alter_one(&f, item(&f, id, 1, &[1, 2, 3])).await.unwrap();
    // Sessions start now; 3 keeps heartbeating, 1 and 2 go silent.
    f.c.fence_expired_brokers().await.unwrap();
    let timeout = ControllerConfig::default().broker_session_timeout_ms;
    f.clock.advance(timeout / 2);
    f.c.heartbeat(heartbeat(3, false, false)).await.unwrap();
    f.clock.advance(timeout / 2 + 1);
    f.c.fence_expired_brokers().await.unwrap();
    let image = f.c.image();
    assert!(image.broker(BrokerId(1)).unwrap().fenced);
    assert!(image.broker(BrokerId(2)).unwrap().fenced);
    let r = reg(&f, 0);
    assert_eq!(
        (r.leader, r.isr.clone()),
        (BrokerId::NO_LEADER, b(&[2])),
        "one member stays, not both"
    );
    let r = reg(&f, 1);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(3), b(&[3])));
}

#[tokio::test]
async fn new_partitions_start_with_every_usable_replica_in_the_isr_when_replicated() {
    let config = ControllerConfig {
        new_partitions_isr_all_usable: true,
        ..ControllerConfig::default()
    };
    let (f, _id) = setup(1, config).await;
    assert_eq!(reg(&f, 0).isr, b(&[1, 2, 3]));
    // A fenced replica is left out; the first usable one leads.
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    let more = CreatePartitions {
        topic: T.into(),
        count: 2,
        assignments: Some(vec![b(&[1, 2, 3])]),
    };
    f.c.create_partitions(vec![more], false).await.unwrap()[0]
        .as_ref()
        .unwrap();
    let r = reg(&f, 1);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(2), b(&[2, 3])));
    // Without the setting, the leader alone (the default today).
    let (f, _id) = three().await;
    assert_eq!(reg(&f, 0).isr, b(&[1]));
}

fn new_incarnation(id: i32, previous: Option<BrokerEpoch>) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id: BrokerId(id),
        incarnation_id: Uuid::from_u128(1000 + id as u128),
        listeners: Vec::new(),
        features: Vec::new(),
        rack: None,
        log_dirs: Vec::new(),
        previous_broker_epoch: previous,
    }
}

#[tokio::test]
async fn with_elr_a_broker_back_from_an_unclean_shutdown_is_no_longer_eligible() {
    for clean in [false, true] {
        let (f, id) = setup(1, elr_config()).await;
        min_isr_2(&f).await;
        alter_one(&f, item(&f, id, 0, &[1, 2])).await.unwrap();
        alter_one(&f, item(&f, id, 0, &[1])).await.unwrap();
        assert_eq!(reg(&f, 0).elr, b(&[2]));
        // Broker 2 stops (fenced) and a new process registers: after a
        // crash it says no previous epoch, after a clean shutdown its last
        // epoch (0 here).
        f.c.heartbeat(heartbeat(2, true, false)).await.unwrap();
        let previous = clean.then_some(BrokerEpoch(0));
        f.c.register_broker(new_incarnation(2, previous))
            .await
            .unwrap();
        let r = reg(&f, 0);
        let want = if clean { b(&[2]) } else { b(&[]) };
        assert_eq!(r.elr, want, "clean shutdown: {clean}");
        // The leader fails: with 2 gone from the ELR only 1 is eligible.
        f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
        let r = reg(&f, 0);
        assert!(r.isr.is_empty());
        let want = if clean { b(&[1, 2]) } else { b(&[1]) };
        assert_eq!(r.elr, want, "clean shutdown: {clean}");
    }
}

#[tokio::test]
async fn an_offline_partition_gets_an_unclean_leader_once_its_topic_allows_it() {
    let config = ControllerConfig {
        unclean_leader_election_interval_ms: 20,
        ..ControllerConfig::default()
    };
    let (f, _id) = setup(1, config).await;
    f.c.heartbeat(heartbeat(1, true, false)).await.unwrap();
    assert_eq!(reg(&f, 0).leader, BrokerId::NO_LEADER);
    // Several periodic checks pass: not allowed, nothing happens.
    let before = f.log.batches().len();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(reg(&f, 0).leader, BrokerId::NO_LEADER);
    assert_eq!(f.log.batches().len(), before, "no election written");
    let unclean = vec![(
        ConfigResource {
            resource_type: ConfigResourceType::Topic,
            name: T.into(),
        },
        vec![ConfigAlteration {
            name: "unclean.leader.election.enable".into(),
            op: AlterConfigOp::Set,
            value: Some("true".into()),
        }],
    )];
    f.c.incremental_alter_configs(unclean, false).await.unwrap()[0]
        .as_ref()
        .unwrap();
    let bound = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while reg(&f, 0).leader == BrokerId::NO_LEADER {
        assert!(tokio::time::Instant::now() < bound, "never elected");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = reg(&f, 0);
    assert_eq!((r.leader, r.isr.clone()), (BrokerId(2), b(&[2])));
    assert_eq!(r.leader_recovery_state, LeaderRecoveryState::Recovering);
}
