//! AlterPartition (KIP-497, KIP-704, KIP-841, KIP-903): a partition
//! leader's ISR changes, checked as Kafka's
//! `ReplicationControlManager.alterPartition` checks them and committed as
//! `PartitionChangeRecord`s (the partition epoch goes up as the image
//! applies each one).
//!
//! Checks, in Kafka's order, per partition:
//! - the whole request: the sender is registered at `broker_epoch`
//!   (STALE_BROKER_EPOCH otherwise, also for an unregistered broker);
//! - an unknown topic id (UNKNOWN_TOPIC_ID) or partition
//!   (UNKNOWN_TOPIC_OR_PARTITION);
//! - a leader or partition epoch *above* the controller's: this
//!   controller is behind (NOT_CONTROLLER, the leader looks for another);
//! - an older leader epoch (FENCED_LEADER_EPOCH), a sender that is not
//!   the leader (INVALID_REQUEST), an older partition epoch
//!   (INVALID_UPDATE_VERSION);
//! - the new ISR: replicas only, each once, holding the leader; a
//!   RECOVERING partition keeps an ISR of one, and RECOVERED never goes
//!   back to RECOVERING (INVALID_REQUEST);
//! - every new ISR member registered, unfenced, not shutting down and at
//!   the broker epoch given (unless -1) (INELIGIBLE_REPLICA).
//!
//! The change itself is [`ChangeBuilder`]'s (ELR, elections). Items are
//! planned in order against the image plus the request's earlier changes,
//! so two items for one partition behave as two requests would. The answer
//! is each partition's committed state: after the change, or as it is when
//! the request changes nothing. A change that moves the leadership away
//! from the sender answers NEW_LEADER_ELECTED (its records still commit).

use std::collections::HashMap;

use sluice_metadata::{
    BrokerEpoch, BrokerId, LeaderRecoveryState, MetadataImage, MetadataRecord, PartitionEpoch,
    PartitionRegistration,
};
use sluice_record::LeaderEpoch;
use uuid::Uuid;

use super::change::{rules_for, ChangeBuilder};
use super::{OpContext, QuorumController};
use crate::error::ControllerError;
use crate::log::LeaderAndEpoch;

/// AlterPartitionRequest, in domain types (v2+: topics by id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    /// The partition leader asking.
    pub broker_id: BrokerId,
    pub broker_epoch: BrokerEpoch,
    pub partitions: Vec<AlterPartitionItem>,
}

/// One partition of an AlterPartition request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionItem {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The leader epoch the leader is at.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the change is based on.
    pub partition_epoch: PartitionEpoch,
    /// The proposed ISR: each member with the broker epoch the leader saw
    /// it fetch at (-1: unknown, not checked; requests below v3).
    pub new_isr: Vec<(BrokerId, i64)>,
    pub leader_recovery_state: LeaderRecoveryState,
}

/// A partition's state as committed (AlterPartitionResponse's fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub isr: Vec<BrokerId>,
    pub partition_epoch: PartitionEpoch,
    pub leader_recovery_state: LeaderRecoveryState,
}

impl PartitionState {
    pub fn of(reg: &PartitionRegistration) -> Self {
        PartitionState {
            leader: reg.leader,
            leader_epoch: reg.leader_epoch,
            isr: reg.isr.clone(),
            partition_epoch: reg.partition_epoch,
            leader_recovery_state: reg.leader_recovery_state,
        }
    }
}

/// One partition's answer.
#[derive(Debug)]
pub struct AlterPartitionResult {
    pub topic_id: Uuid,
    pub partition: i32,
    pub result: Result<PartitionState, ControllerError>,
}

/// The answer to an AlterPartition request: one result per item, in
/// request order.
#[derive(Debug, Default)]
pub struct AlterPartitionReply {
    pub partitions: Vec<AlterPartitionResult>,
}

impl QuorumController {
    /// AlterPartition: answers once the request's changes committed.
    pub async fn alter_partition(
        &self,
        req: AlterPartitionRequest,
    ) -> Result<AlterPartitionReply, ControllerError> {
        self.submit(move |ctx| plan_alter_partition(ctx, req)).await
    }
}

pub(crate) fn plan_alter_partition(
    ctx: &mut OpContext<'_>,
    req: AlterPartitionRequest,
) -> Result<(Vec<MetadataRecord>, AlterPartitionReply), ControllerError> {
    let image = ctx.image;
    match image.broker(req.broker_id) {
        Some(b) if b.epoch == req.broker_epoch => {}
        other => {
            return Err(ControllerError::StaleBrokerEpoch {
                broker: req.broker_id,
                given: req.broker_epoch.0,
                current: other.map_or(-1, |b| b.epoch.0),
            })
        }
    }
    // Registrations changed by earlier items of this request.
    let mut changed: HashMap<(Uuid, i32), PartitionRegistration> = HashMap::new();
    let mut records = Vec::new();
    let mut reply = AlterPartitionReply::default();
    for item in req.partitions {
        let (topic_id, partition) = (item.topic_id, item.partition);
        let result = plan_item(ctx, req.broker_id, &item, &mut changed).map(|(rec, state)| {
            records.extend(rec.map(MetadataRecord::PartitionChange));
            state
        });
        reply.partitions.push(AlterPartitionResult {
            topic_id,
            partition,
            result: result.and_then(|state| {
                if state.leader != req.broker_id {
                    Err(ControllerError::NewLeaderElected(format!(
                        "The change elected leader {} for partition {partition} of topic {topic_id}.",
                        state.leader
                    )))
                } else {
                    Ok(state)
                }
            }),
        });
    }
    Ok((records, reply))
}

type Planned = (
    Option<sluice_metadata::record::PartitionChangeRecord>,
    PartitionState,
);

fn plan_item(
    ctx: &OpContext<'_>,
    broker: BrokerId,
    item: &AlterPartitionItem,
    changed: &mut HashMap<(Uuid, i32), PartitionRegistration>,
) -> Result<Planned, ControllerError> {
    let image = ctx.image;
    let topic = match image.topic_by_id(item.topic_id) {
        Some(t) if !item.topic_id.is_nil() => t,
        _ => return Err(ControllerError::UnknownTopicId(item.topic_id)),
    };
    let key = (item.topic_id, item.partition);
    let reg = match changed
        .get(&key)
        .or_else(|| topic.partition(item.partition))
    {
        Some(r) => r.clone(),
        None => {
            return Err(ControllerError::UnknownTopicOrPartition(format!(
                "Partition {}-{} does not exist.",
                topic.name(),
                item.partition
            )))
        }
    };
    validate(image, broker, topic.name(), &reg, item)?;
    let rules = rules_for(image, ctx.config, topic.name(), reg.replicas.len());
    let target: Vec<BrokerId> = item.new_isr.iter().map(|&(b, _)| b).collect();
    let rec = ChangeBuilder::new(image, &reg, item.topic_id, item.partition, rules)
        .target_isr(target)
        .target_recovery(item.leader_recovery_state)
        .build();
    let Some(rec) = rec else {
        return Ok((None, PartitionState::of(&reg)));
    };
    let next = reg.merge(&rec).map_err(|e| {
        ControllerError::Internal(format!(
            "AlterPartition planned a change that does not apply: {e}"
        ))
    })?;
    tracing::debug!(
        %broker, topic = topic.name(), partition = item.partition, isr = ?next.isr,
        "AlterPartition changes the ISR"
    );
    let state = PartitionState::of(&next);
    changed.insert(key, next);
    Ok((Some(rec), state))
}

/// Kafka's `validateAlterPartitionData`, in its order.
fn validate(
    image: &MetadataImage,
    broker: BrokerId,
    topic: &str,
    reg: &PartitionRegistration,
    item: &AlterPartitionItem,
) -> Result<(), ControllerError> {
    let p = item.partition;
    let behind = || {
        // This controller is behind the leader: it may no longer be the
        // active one (Kafka answers NOT_CONTROLLER).
        ControllerError::NotController(LeaderAndEpoch {
            leader: None,
            epoch: image.provenance().last_epoch,
        })
    };
    if item.leader_epoch > reg.leader_epoch || item.partition_epoch > reg.partition_epoch {
        return Err(behind());
    }
    if item.leader_epoch < reg.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch(format!(
            "The leader epoch {} of {topic}-{p} is older than the current {}.",
            item.leader_epoch.0, reg.leader_epoch.0
        )));
    }
    if broker != reg.leader {
        return Err(ControllerError::InvalidRequest(format!(
            "Broker {broker} is not the leader of {topic}-{p} (the leader is {}).",
            reg.leader
        )));
    }
    if item.partition_epoch < reg.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion(format!(
            "The partition epoch {} of {topic}-{p} is older than the current {}.",
            item.partition_epoch, reg.partition_epoch
        )));
    }
    let isr: Vec<BrokerId> = item.new_isr.iter().map(|&(b, _)| b).collect();
    let mut sorted = isr.clone();
    sorted.sort_unstable();
    let duplicate = sorted.windows(2).any(|w| w[0] == w[1]);
    if duplicate || isr.iter().any(|b| !reg.replicas.contains(b)) {
        return Err(ControllerError::InvalidRequest(format!(
            "Invalid ISR {isr:?} for {topic}-{p}: members must be distinct replicas of {:?}.",
            reg.replicas
        )));
    }
    if !isr.contains(&reg.leader) {
        return Err(ControllerError::InvalidRequest(format!(
            "Invalid ISR {isr:?} for {topic}-{p}: it does not hold the leader {}.",
            reg.leader
        )));
    }
    if item.leader_recovery_state == LeaderRecoveryState::Recovering && isr.len() > 1 {
        return Err(ControllerError::InvalidRequest(format!(
            "Invalid ISR {isr:?} for {topic}-{p}: the leader is still recovering from an unclean election."
        )));
    }
    if reg.leader_recovery_state == LeaderRecoveryState::Recovered
        && item.leader_recovery_state == LeaderRecoveryState::Recovering
    {
        return Err(ControllerError::InvalidRequest(format!(
            "The leader recovery state of {topic}-{p} cannot change from RECOVERED to RECOVERING."
        )));
    }
    let ineligible: Vec<String> = item
        .new_isr
        .iter()
        .filter_map(|&(b, epoch)| {
            let why = match image.broker(b) {
                None => "not registered".to_owned(),
                Some(r) if r.in_controlled_shutdown => "shutting down".to_owned(),
                Some(r) if r.fenced => "fenced".to_owned(),
                Some(r) if epoch != -1 && r.epoch.0 != epoch => format!(
                    "broker epoch mismatch: requested={epoch} VS expected={}",
                    r.epoch.0
                ),
                Some(_) => return None,
            };
            Some(format!("{b} ({why})"))
        })
        .collect();
    if !ineligible.is_empty() {
        return Err(ControllerError::IneligibleReplica(format!(
            "Ineligible replicas in the new ISR {isr:?} of {topic}-{p}: {}.",
            ineligible.join(", ")
        )));
    }
    Ok(())
}
