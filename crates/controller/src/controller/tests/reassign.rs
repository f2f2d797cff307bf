//! Partition reassignment (KIP-455): starting, completing when the ISR
//! catches up (or at once), cancelling, listing, and each of Kafka's
//! refusals.

use std::sync::Arc;

use sluice_metadata::{BrokerEpoch, BrokerId, PartitionRegistration};
use sluice_record::LeaderEpoch;
use uuid::Uuid;

use super::{fixture_with, Fixture};
use crate::controller::reassign::{Replicas, Revert};
use crate::controller::*;
use crate::error::ControllerError;

const T: &str = "moving";

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&i| BrokerId(i)).collect()
}

/// Four unfenced brokers and topic `moving` with one partition on
/// `replicas`, every replica in the ISR, led by the first.
async fn setup(replicas: &[i32]) -> (Fixture, Uuid) {
    let f = fixture_with(
        &[(1, None), (2, None), (3, None), (4, None)],
        Arc::new(PermissiveValidator),
        ControllerConfig {
            new_partitions_isr_all_usable: true,
            ..ControllerConfig::default()
        },
    )
    .await;
    let created =
        f.c.create_topics(
            vec![CreateTopic {
                assignments: vec![ReplicaAssignment {
                    partition: 0,
                    replicas: b(replicas),
                }],
                ..CreateTopic::named(T)
            }],
            false,
        )
        .await
        .unwrap();
    let id = created[0].as_ref().unwrap().topic_id;
    (f, id)
}

fn reg(f: &Fixture) -> PartitionRegistration {
    f.c.image().topic(T).unwrap().partition(0).unwrap().clone()
}

fn target(topic: &str, p: i32, replicas: Option<&[i32]>) -> ReassignPartition {
    ReassignPartition {
        topic: topic.into(),
        partition: p,
        replicas: replicas.map(b),
    }
}

async fn reassign(f: &Fixture, replicas: Option<&[i32]>) -> Result<(), ControllerError> {
    let mut r =
        f.c.alter_partition_reassignments(vec![target(T, 0, replicas)], true)
            .await
            .unwrap();
    assert_eq!(r.len(), 1);
    r.remove(0).result
}

/// The leader proposes `isr` at the partition's current epochs.
async fn alter_isr(f: &Fixture, id: Uuid, isr: &[i32]) -> Result<PartitionState, ControllerError> {
    let r = reg(f);
    let req = AlterPartitionRequest {
        broker_id: r.leader,
        broker_epoch: BrokerEpoch(0),
        partitions: vec![AlterPartitionItem {
            topic_id: id,
            partition: 0,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            new_isr: isr.iter().map(|&i| (BrokerId(i), -1)).collect(),
            leader_recovery_state: r.leader_recovery_state,
        }],
    };
    f.c.alter_partition(req)
        .await
        .unwrap()
        .partitions
        .remove(0)
        .result
}

async fn listed(f: &Fixture) -> Vec<OngoingReassignment> {
    f.c.list_partition_reassignments(None).await.unwrap()
}

#[test]
fn replicas_and_revert_follow_kafkas_lists() {
    let r = Replicas::of(&b(&[1, 2, 3]), &b(&[4, 3, 2]));
    assert_eq!(r.replicas, b(&[4, 3, 2, 1]), "target, then the removing");
    assert_eq!((r.adding, r.removing), (b(&[4]), b(&[1])));
    let r = Replicas::of(&b(&[3, 1, 2]), &b(&[6, 5]));
    assert_eq!(
        r.replicas,
        b(&[6, 5, 1, 2, 3]),
        "removing in broker id order"
    );
    assert_eq!(r.adding, b(&[5, 6]), "adding in broker id order");
    let same = Replicas::of(&b(&[1, 2]), &b(&[2, 1]));
    assert!(same.adding.is_empty() && same.removing.is_empty());

    let mut reg = PartitionRegistration {
        replicas: b(&[4, 3, 2, 1]),
        isr: b(&[4, 1, 2]),
        removing_replicas: b(&[1]),
        adding_replicas: b(&[4]),
        leader: BrokerId(1),
        leader_recovery_state: sluice_metadata::LeaderRecoveryState::Recovered,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: sluice_metadata::PartitionEpoch(0),
        directories: Vec::new(),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
    };
    let clean = Revert::of(&reg);
    assert_eq!((clean.replicas, clean.isr), (b(&[3, 2, 1]), b(&[1, 2])));
    assert!(!clean.unclean);
    reg.isr = b(&[4]);
    let unclean = Revert::of(&reg);
    assert_eq!(unclean.isr, b(&[3]), "the first original replica alone");
    assert!(unclean.unclean);
}

#[tokio::test]
async fn a_move_starts_then_completes_when_the_isr_holds_every_target() {
    let (f, id) = setup(&[1, 2, 3]).await;
    let before = reg(&f);
    reassign(&f, Some(&[2, 3, 4])).await.unwrap();
    let started = reg(&f);
    assert_eq!(started.replicas, b(&[2, 3, 4, 1]));
    assert_eq!(
        (
            started.adding_replicas.clone(),
            started.removing_replicas.clone()
        ),
        (b(&[4]), b(&[1]))
    );
    assert_eq!(started.isr, b(&[1, 2, 3]), "the ISR stays");
    assert_eq!(started.leader, BrokerId(1));
    assert_eq!(
        started.leader_epoch, before.leader_epoch,
        "adding replicas bumps no leader epoch"
    );
    assert_eq!(
        listed(&f).await,
        vec![OngoingReassignment {
            topic: T.into(),
            partition: 0,
            replicas: b(&[2, 3, 4, 1]),
            adding: b(&[4]),
            removing: b(&[1]),
        }]
    );
    // An ISR change that does not bring 4 in completes nothing.
    alter_isr(&f, id, &[1, 2]).await.unwrap();
    assert_eq!(reg(&f).adding_replicas, b(&[4]));
    alter_isr(&f, id, &[1, 2, 3]).await.unwrap();
    // The leader's expansion to 4 completes it, and moves the leadership
    // off the removed leader 1: its AlterPartition answers
    // NEW_LEADER_ELECTED, the change is committed anyway.
    let answer = alter_isr(&f, id, &[1, 2, 3, 4]).await;
    assert!(
        matches!(answer, Err(ControllerError::NewLeaderElected(_))),
        "{answer:?}"
    );
    let done = reg(&f);
    assert_eq!(done.replicas, b(&[2, 3, 4]));
    assert_eq!(done.isr, b(&[2, 3, 4]));
    assert!(done.adding_replicas.is_empty() && done.removing_replicas.is_empty());
    assert_eq!(
        done.leader,
        BrokerId(2),
        "the first target replica in the ISR"
    );
    assert_eq!(done.leader_epoch.0, started.leader_epoch.0 + 1);
    assert!(listed(&f).await.is_empty());
}

#[tokio::test]
async fn nothing_to_add_completes_at_once_and_a_dropped_replica_bumps_the_leader_epoch() {
    let (f, _) = setup(&[1, 2, 3]).await;
    let before = reg(&f);
    // A reorder: no data moves, no epoch bump, the leader stays.
    reassign(&f, Some(&[3, 2, 1])).await.unwrap();
    let reordered = reg(&f);
    assert_eq!(reordered.replicas, b(&[3, 2, 1]));
    assert_eq!(reordered.leader, BrokerId(1));
    assert_eq!(reordered.leader_epoch, before.leader_epoch);
    // Shrinking to two completes in the same change: the leader stays but
    // its epoch goes up, fencing the dropped replica.
    reassign(&f, Some(&[3, 1])).await.unwrap();
    let shrunk = reg(&f);
    assert_eq!(
        (shrunk.replicas.clone(), shrunk.isr.clone()),
        (b(&[3, 1]), b(&[1, 3]))
    );
    assert!(shrunk.adding_replicas.is_empty() && shrunk.removing_replicas.is_empty());
    assert_eq!(shrunk.leader, BrokerId(1));
    assert_eq!(shrunk.leader_epoch.0, before.leader_epoch.0 + 1);
    // The same target again changes nothing.
    let batches = f.log.batches().len();
    reassign(&f, Some(&[3, 1])).await.unwrap();
    assert_eq!(f.log.batches().len(), batches, "nothing committed");
    assert!(listed(&f).await.is_empty());
}

#[tokio::test]
async fn removing_the_only_isr_member_waits_until_the_targets_join() {
    let (f, id) = setup(&[1, 2, 3]).await;
    alter_isr(&f, id, &[1]).await.unwrap();
    // Nothing to add, but the ISR without the removed leader is empty:
    // the reassignment stays in progress.
    reassign(&f, Some(&[2, 3])).await.unwrap();
    let r = reg(&f);
    assert_eq!(r.replicas, b(&[2, 3, 1]));
    assert_eq!(
        (r.adding_replicas.clone(), r.removing_replicas.clone()),
        (b(&[]), b(&[1]))
    );
    assert_eq!(r.leader, BrokerId(1));
    alter_isr(&f, id, &[1, 2]).await.unwrap();
    assert_eq!(reg(&f).removing_replicas, b(&[1]), "3 is not in yet");
    let answer = alter_isr(&f, id, &[1, 2, 3]).await;
    assert!(matches!(answer, Err(ControllerError::NewLeaderElected(_))));
    let done = reg(&f);
    assert_eq!(
        (done.replicas.clone(), done.isr.clone()),
        (b(&[2, 3]), b(&[2, 3]))
    );
    assert_eq!(done.leader, BrokerId(2));
}

#[tokio::test]
async fn a_cancel_reverts_to_the_original_replicas_and_keeps_the_leader() {
    let (f, _) = setup(&[1, 2, 3]).await;
    reassign(&f, Some(&[2, 3, 4])).await.unwrap();
    let started = reg(&f);
    reassign(&f, None).await.unwrap();
    let reverted = reg(&f);
    assert_eq!(reverted.replicas, b(&[2, 3, 1]));
    assert_eq!(reverted.isr, b(&[1, 2, 3]));
    assert!(reverted.adding_replicas.is_empty() && reverted.removing_replicas.is_empty());
    assert_eq!(reverted.leader, BrokerId(1));
    assert_eq!(
        reverted.leader_epoch.0,
        started.leader_epoch.0 + 1,
        "dropping the adding replica fences it"
    );
    // Nothing in progress any more.
    let again = reassign(&f, None).await;
    assert!(
        matches!(again, Err(ControllerError::NoReassignmentInProgress)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_new_target_during_a_reassignment_keeps_replicas_still_being_added() {
    let (f, _) = setup(&[1, 2, 3]).await;
    reassign(&f, Some(&[2, 3, 4])).await.unwrap();
    // The current replicas are [2, 3, 4, 1]; to [1, 2, 4] drops 3 and
    // adds nothing new: 4, still catching up, stays adding (as in Kafka).
    reassign(&f, Some(&[1, 2, 4])).await.unwrap();
    let r = reg(&f);
    assert_eq!(r.replicas, b(&[1, 2, 4, 3]));
    assert_eq!(
        (r.adding_replicas.clone(), r.removing_replicas.clone()),
        (b(&[4]), b(&[3]))
    );
    // Cancelling now goes back to the replicas without the adding one.
    reassign(&f, None).await.unwrap();
    assert_eq!(reg(&f).replicas, b(&[1, 2, 3]));
}

#[tokio::test]
async fn refusals_have_kafkas_codes_and_messages() {
    let (f, _) = setup(&[1, 2, 3]).await;
    let results =
        f.c.alter_partition_reassignments(
            vec![
                target("nope", 0, Some(&[1])),
                target(T, 7, Some(&[1])),
                target(T, 0, Some(&[])),
                target(T, 0, Some(&[2, 1, 2])),
                target(T, 0, Some(&[1, 9, 2])),
                target(T, 0, None),
            ],
            true,
        )
        .await
        .unwrap();
    let got: Vec<String> = results
        .iter()
        .map(|r| match &r.result {
            Err(e) => format!("{}: {e}", kind(e)),
            Ok(()) => "ok".into(),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "UNKNOWN_TOPIC_OR_PARTITION: Unable to find a topic named nope.",
            "UNKNOWN_TOPIC_OR_PARTITION: Unable to find partition moving:7.",
            "INVALID_REPLICA_ASSIGNMENT: The manual partition assignment includes an empty replica list.",
            "INVALID_REPLICA_ASSIGNMENT: The manual partition assignment includes the broker 2 more than once.",
            "INVALID_REPLICA_ASSIGNMENT: The manual partition assignment includes broker 9, but no such broker is registered.",
            "NO_REASSIGNMENT_IN_PROGRESS: No partition reassignment is in progress.",
        ]
    );
    assert_eq!(reg(&f).replicas, b(&[1, 2, 3]), "nothing changed");
    // KIP-860: with replication factor changes disallowed.
    let r =
        f.c.alter_partition_reassignments(vec![target(T, 0, Some(&[1, 2]))], false)
            .await
            .unwrap();
    match &r[0].result {
        Err(ControllerError::InvalidReplicationFactor(m)) => {
            assert_eq!(m, "The replication factor is changed from 3 to 2")
        }
        other => panic!("{other:?}"),
    }
    let r =
        f.c.alter_partition_reassignments(vec![target(T, 0, Some(&[4, 2, 3]))], false)
            .await
            .unwrap();
    assert!(r[0].result.is_ok(), "{:?}", r[0].result);
}

#[tokio::test]
async fn a_cancel_that_needs_an_unclean_election_is_refused_unless_allowed() {
    let (f, id) = setup(&[1]).await;
    reassign(&f, Some(&[2, 3])).await.unwrap();
    alter_isr(&f, id, &[1, 2]).await.unwrap();
    // The original replica 1 is fenced: the ISR is the adding replica 2
    // alone, which leads; 3 has not joined, so nothing completes.
    f.c.heartbeat(BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch: BrokerEpoch(0),
        current_metadata_offset: sluice_record::Offset(1_000_000),
        want_fence: true,
        want_shutdown: false,
    })
    .await
    .unwrap();
    let r = reg(&f);
    assert_eq!((r.isr.clone(), r.leader), (b(&[2]), BrokerId(2)));
    assert_eq!(r.adding_replicas, b(&[2, 3]));
    // Reverting leaves no ISR member: only an unclean election would.
    match reassign(&f, None).await {
        Err(ControllerError::InvalidReplicaAssignment(m)) => assert_eq!(
            m,
            "Unable to revert partition assignment for moving:0 because it would require an unclean leader election."
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(reg(&f).adding_replicas, b(&[2, 3]), "nothing changed");
    let topic = sluice_metadata::ConfigResource {
        resource_type: sluice_metadata::ConfigResourceType::Topic,
        name: T.into(),
    };
    let set = ConfigAlteration {
        name: "unclean.leader.election.enable".into(),
        op: AlterConfigOp::Set,
        value: Some("true".into()),
    };
    f.c.incremental_alter_configs(vec![(topic, vec![set])], false)
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    reassign(&f, None).await.unwrap();
    let r = reg(&f);
    assert_eq!((r.replicas.clone(), r.isr.clone()), (b(&[1]), b(&[1])));
    assert!(r.adding_replicas.is_empty() && r.removing_replicas.is_empty());
    assert!(!r.has_leader(), "1 is fenced: leaderless until it is back");
}

fn kind(e: &ControllerError) -> &'static str {
    match e {
        ControllerError::UnknownTopicOrPartition(_) => "UNKNOWN_TOPIC_OR_PARTITION",
        ControllerError::InvalidReplicaAssignment(_) => "INVALID_REPLICA_ASSIGNMENT",
        ControllerError::NoReassignmentInProgress => "NO_REASSIGNMENT_IN_PROGRESS",
        ControllerError::InvalidReplicationFactor(_) => "INVALID_REPLICATION_FACTOR",
        _ => "OTHER",
    }
}

#[tokio::test]
async fn listing_names_only_partitions_in_progress() {
    let (f, _) = setup(&[1, 2]).await;
    reassign(&f, Some(&[3, 4])).await.unwrap();
    let asked = |topics: Vec<(String, Vec<i32>)>| f.c.list_partition_reassignments(Some(topics));
    let one = asked(vec![(T.into(), vec![0, 5]), ("nope".into(), vec![0])])
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].adding.clone(), one[0].removing.clone()),
        (b(&[3, 4]), b(&[1, 2]))
    );
    assert!(asked(vec![(T.into(), vec![1])]).await.unwrap().is_empty());
}
