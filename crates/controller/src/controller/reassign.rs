//! Partition reassignment (KIP-455): AlterPartitionReassignments and
//! ListPartitionReassignments, as Kafka's `ReplicationControlManager`
//! does them.
//!
//! Starting a reassignment of a partition from its current replicas to a
//! target (Kafka's `PartitionReassignmentReplicas`):
//! - removing = current − target, adding = target − current (each sorted
//!   by broker id, as Kafka's sets are), replicas = target followed by the
//!   removing ones; the ISR stays;
//! - the change goes through [`ChangeBuilder`], which completes the
//!   reassignment in the same change when the ISR already holds every
//!   replica that stays (nothing to add), and otherwise whenever a later
//!   change (the leader's AlterPartition expanding the ISR, a broker
//!   unfenced) makes it so.
//!
//! Cancelling (null replicas, Kafka's `PartitionReassignmentRevert`):
//! replicas and ISR lose the adding replicas, adding/removing clear; if
//! the ISR would be empty the first remaining replica becomes the ISR
//! alone, which is an unclean election and refused (INVALID_REPLICA_ASSIGNMENT)
//! unless the topic allows unclean elections.
//!
//! Checks, in Kafka's order, per partition: the topic and partition exist
//! (UNKNOWN_TOPIC_OR_PARTITION); a cancel needs a reassignment in progress
//! (NO_REASSIGNMENT_IN_PROGRESS); a target is not empty, and, taken in
//! broker id order, names registered brokers each once
//! (INVALID_REPLICA_ASSIGNMENT); without `allow_replication_factor_change`
//! (KIP-860) its length is the replication factor the partition has or is
//! heading for (INVALID_REPLICATION_FACTOR).
//!
//! A new target during a reassignment is computed from the current
//! (merged) replicas; as in Kafka, an empty adding or removing list keeps
//! the one in progress (replicas still catching up stay "adding").
//!
//! Items are planned in order against the image plus the request's
//! earlier changes; every change commits before the answer.

use std::collections::{BTreeSet, HashMap};

use sluice_metadata::{BrokerId, MetadataImage, MetadataRecord, PartitionRegistration};
use uuid::Uuid;

use super::change::{rules_for, unclean_enabled, ChangeBuilder, Election};
use super::{OpContext, QuorumController};
use crate::error::ControllerError;

/// One partition of an AlterPartitionReassignments request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassignPartition {
    pub topic: String,
    pub partition: i32,
    /// The target replicas; `None` cancels the reassignment in progress.
    pub replicas: Option<Vec<BrokerId>>,
}

/// The answer for one partition, in request order.
#[derive(Debug)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition: i32,
    pub result: Result<(), ControllerError>,
}

/// A reassignment in progress (ListPartitionReassignments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica, adding and removing ones included.
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

impl QuorumController {
    /// AlterPartitionReassignments: starts, replaces or cancels the
    /// reassignment of each partition; answers once the changes committed.
    pub async fn alter_partition_reassignments(
        &self,
        partitions: Vec<ReassignPartition>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<ReassignmentResult>, ControllerError> {
        self.submit(move |ctx| {
            Ok(plan_reassignments(
                ctx,
                partitions,
                allow_replication_factor_change,
            ))
        })
        .await
    }

    /// ListPartitionReassignments: the reassignments in progress, of every
    /// partition (`None`) or of the partitions named (unknown topics and
    /// partitions, and those not being reassigned, are left out), ordered
    /// by topic name then partition. Answered after the commit of
    /// everything planned before it.
    pub async fn list_partition_reassignments(
        &self,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        self.submit(move |ctx| Ok((Vec::new(), list(ctx.image, topics.as_deref()))))
            .await
    }
}

fn in_progress(reg: &PartitionRegistration) -> bool {
    !reg.adding_replicas.is_empty() || !reg.removing_replicas.is_empty()
}

fn list(image: &MetadataImage, topics: Option<&[(String, Vec<i32>)]>) -> Vec<OngoingReassignment> {
    let ongoing = |topic: &str, p: i32, reg: &PartitionRegistration| OngoingReassignment {
        topic: topic.to_owned(),
        partition: p,
        replicas: reg.replicas.clone(),
        adding: reg.adding_replicas.clone(),
        removing: reg.removing_replicas.clone(),
    };
    let mut out = Vec::new();
    match topics {
        None => {
            for name in image.topic_names().keys() {
                let Some(t) = image.topic(name) else { continue };
                for (&p, reg) in t.partitions() {
                    if in_progress(reg) {
                        out.push(ongoing(name, p, reg));
                    }
                }
            }
        }
        Some(asked) => {
            for (name, partitions) in asked {
                let Some(t) = image.topic(name) else { continue };
                for &p in partitions {
                    if let Some(reg) = t.partition(p).filter(|r| in_progress(r)) {
                        out.push(ongoing(name, p, reg));
                    }
                }
            }
        }
    }
    out
}

fn plan_reassignments(
    ctx: &OpContext<'_>,
    partitions: Vec<ReassignPartition>,
    allow_rf_change: bool,
) -> (Vec<MetadataRecord>, Vec<ReassignmentResult>) {
    let mut changed: HashMap<(Uuid, i32), PartitionRegistration> = HashMap::new();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(partitions.len());
    for item in partitions {
        let result = plan_one(ctx, &item, allow_rf_change, &mut changed).map(|rec| {
            records.extend(rec.map(MetadataRecord::PartitionChange));
        });
        if let Err(e) = &result {
            tracing::info!(topic = item.topic, partition = item.partition, error = %e,
                "partition reassignment refused");
        }
        results.push(ReassignmentResult {
            topic: item.topic,
            partition: item.partition,
            result,
        });
    }
    (records, results)
}

type Change = Option<sluice_metadata::record::PartitionChangeRecord>;

fn plan_one(
    ctx: &OpContext<'_>,
    item: &ReassignPartition,
    allow_rf_change: bool,
    changed: &mut HashMap<(Uuid, i32), PartitionRegistration>,
) -> Result<Change, ControllerError> {
    let image = ctx.image;
    let (topic, p) = (item.topic.as_str(), item.partition);
    let t = image.topic(topic).ok_or_else(|| {
        ControllerError::UnknownTopicOrPartition(format!("Unable to find a topic named {topic}."))
    })?;
    let key = (t.id(), p);
    let reg = changed
        .get(&key)
        .or_else(|| t.partition(p))
        .cloned()
        .ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition(format!(
                "Unable to find partition {topic}:{p}."
            ))
        })?;
    let rules = rules_for(image, ctx.config, topic, reg.replicas.len());
    let builder = ChangeBuilder::new(image, &reg, t.id(), p, rules);
    let rec = match &item.replicas {
        None => {
            if !in_progress(&reg) {
                return Err(ControllerError::NoReassignmentInProgress);
            }
            let revert = Revert::of(&reg);
            let unclean = unclean_enabled(image, topic, ctx.config.unclean_leader_election_enable);
            if revert.unclean && !unclean {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Unable to revert partition assignment for {topic}:{p} because it would require an unclean leader election."
                )));
            }
            let mut rules = rules;
            if unclean {
                rules.election = Election::Unclean;
            }
            ChangeBuilder::new(image, &reg, t.id(), p, rules)
                .target_isr(revert.isr)
                .target_replicas(revert.replicas)
                .target_adding(Vec::new())
                .target_removing(Vec::new())
                .build()
        }
        Some(target) => {
            check_target(image, target)?;
            if !allow_rf_change {
                check_rf_unchanged(&reg, target.len())?;
            }
            let r = Replicas::of(&reg.replicas, target);
            // As Kafka: an empty list leaves the one in progress (its
            // adding replicas are still catching up).
            let mut builder = builder.target_replicas(r.replicas);
            if !r.adding.is_empty() {
                builder = builder.target_adding(r.adding);
            }
            if !r.removing.is_empty() {
                builder = builder.target_removing(r.removing);
            }
            builder.build()
        }
    };
    if let Some(rec) = &rec {
        let next = reg.merge(rec).map_err(|e| {
            ControllerError::Internal(format!(
                "a reassignment planned a change that does not apply: {e}"
            ))
        })?;
        tracing::info!(
            topic, partition = p, replicas = ?next.replicas, adding = ?next.adding_replicas,
            removing = ?next.removing_replicas, isr = ?next.isr, leader = next.leader.0,
            "partition reassignment"
        );
        changed.insert(key, next);
    }
    Ok(rec)
}

/// Kafka's `validateManualPartitionAssignment`: not empty; in broker id
/// order, each registered and named once.
fn check_target(image: &MetadataImage, target: &[BrokerId]) -> Result<(), ControllerError> {
    let bad = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    if target.is_empty() {
        return bad("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for b in sorted {
        if image.broker(b).is_none() {
            return bad(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
        if previous == Some(b) {
            return bad(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
        previous = Some(b);
    }
    Ok(())
}

/// KIP-860: the target keeps the replication factor the partition has, or
/// is heading for when a reassignment is in progress.
fn check_rf_unchanged(reg: &PartitionRegistration, target: usize) -> Result<(), ControllerError> {
    let current = if in_progress(reg) {
        reg.replicas
            .iter()
            .filter(|b| !reg.removing_replicas.contains(b))
            .count()
    } else {
        reg.replicas.len()
    };
    if current == target {
        return Ok(());
    }
    Err(ControllerError::InvalidReplicationFactor(format!(
        "The replication factor is changed from {current} to {target}"
    )))
}

/// Kafka's `PartitionReassignmentReplicas` from current to target.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Replicas {
    pub replicas: Vec<BrokerId>,
    pub adding: Vec<BrokerId>,
    pub removing: Vec<BrokerId>,
}

impl Replicas {
    pub fn of(current: &[BrokerId], target: &[BrokerId]) -> Replicas {
        let minus = |a: &[BrokerId], b: &[BrokerId]| -> Vec<BrokerId> {
            let set: BTreeSet<BrokerId> = a.iter().copied().filter(|x| !b.contains(x)).collect();
            set.into_iter().collect()
        };
        let removing = minus(current, target);
        let adding = minus(target, current);
        let mut replicas = target.to_vec();
        replicas.extend(&removing);
        Replicas {
            replicas,
            adding,
            removing,
        }
    }
}

/// Kafka's `PartitionReassignmentRevert`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Revert {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// The ISR held only adding replicas: the first original replica
    /// becomes the ISR alone (an unclean election).
    pub unclean: bool,
}

impl Revert {
    pub fn of(reg: &PartitionRegistration) -> Revert {
        let adding = &reg.adding_replicas;
        let replicas: Vec<BrokerId> = reg
            .replicas
            .iter()
            .copied()
            .filter(|b| !adding.contains(b))
            .collect();
        let mut isr: Vec<BrokerId> = reg
            .isr
            .iter()
            .copied()
            .filter(|b| !adding.contains(b))
            .collect();
        let unclean = isr.is_empty();
        if unclean {
            // The registration always keeps a replica that is not being
            // added (the replicas a reassignment started from).
            isr.extend(replicas.first().copied());
        }
        Revert {
            replicas,
            isr,
            unclean,
        }
    }
}
