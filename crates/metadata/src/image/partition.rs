//! A partition's registration (Kafka's `PartitionRegistration`): built from
//! a `PartitionRecord`, changed by `PartitionChangeRecord`s, and checked for
//! internal consistency after every change.

use sluice_record::LeaderEpoch;
use uuid::Uuid;

use crate::error::MetadataError;
use crate::record::{PartitionChangeRecord, PartitionRecord};
use crate::types::{BrokerId, LeaderRecoveryState, PartitionEpoch};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// All replicas, including those being added; the first is preferred leader.
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    /// [`BrokerId::NO_LEADER`] when there is none.
    pub leader: BrokerId,
    pub leader_recovery_state: LeaderRecoveryState,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    /// Each replica's log directory (KIP-858), or empty when unassigned.
    pub directories: Vec<Uuid>,
    /// Eligible leader replicas (KIP-966); unused until part 2.
    pub elr: Vec<BrokerId>,
    pub last_known_elr: Vec<BrokerId>,
}

impl PartitionRegistration {
    pub fn has_leader(&self) -> bool {
        self.leader != BrokerId::NO_LEADER
    }

    pub fn has_replica(&self, broker: BrokerId) -> bool {
        self.replicas.contains(&broker)
    }

    pub(crate) fn from_record(r: &PartitionRecord) -> Result<Self, MetadataError> {
        let reg = PartitionRegistration {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            removing_replicas: r.removing_replicas.clone(),
            adding_replicas: r.adding_replicas.clone(),
            leader: r.leader,
            leader_recovery_state: LeaderRecoveryState::from_value(r.leader_recovery_state).ok_or(
                invalid(r.topic_id, r.partition_id, "unknown leader recovery state"),
            )?,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            directories: r.directories.clone(),
            elr: r.eligible_leader_replicas.clone().unwrap_or_default(),
            last_known_elr: r.last_known_elr.clone().unwrap_or_default(),
        };
        reg.validate(r.topic_id, r.partition_id)?;
        Ok(reg)
    }

    /// The record that recreates this registration (snapshots).
    pub fn to_record(&self, topic_id: Uuid, partition_id: i32) -> PartitionRecord {
        let list = |v: &Vec<BrokerId>| (!v.is_empty()).then(|| v.clone());
        PartitionRecord {
            partition_id,
            topic_id,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            removing_replicas: self.removing_replicas.clone(),
            adding_replicas: self.adding_replicas.clone(),
            leader: self.leader,
            leader_recovery_state: self.leader_recovery_state.value(),
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            directories: self.directories.clone(),
            eligible_leader_replicas: list(&self.elr),
            last_known_elr: list(&self.last_known_elr),
        }
    }

    /// The registration after `change`, as Kafka's
    /// `PartitionRegistration.merge`: absent fields are kept, a leader
    /// field (even naming the same leader) bumps the leader epoch, and the
    /// partition epoch always goes up by one.
    pub fn merge(&self, change: &PartitionChangeRecord) -> Result<Self, MetadataError> {
        let (t, p) = (change.topic_id, change.partition_id);
        let pick = |new: &Option<Vec<BrokerId>>, old: &Vec<BrokerId>| {
            new.clone().unwrap_or_else(|| old.clone())
        };
        let (leader, leader_epoch) = match change.leader {
            BrokerId::NO_LEADER_CHANGE => (self.leader, self.leader_epoch),
            l if l.0 >= BrokerId::NO_LEADER.0 => {
                (l, LeaderEpoch(self.leader_epoch.0.saturating_add(1)))
            }
            _ => return Err(invalid(t, p, "leader below -2")),
        };
        let leader_recovery_state = match change.leader_recovery_state {
            LeaderRecoveryState::NO_CHANGE => self.leader_recovery_state,
            v => LeaderRecoveryState::from_value(v).ok_or(invalid(
                t,
                p,
                "unknown leader recovery state",
            ))?,
        };
        let next = PartitionRegistration {
            replicas: pick(&change.replicas, &self.replicas),
            isr: pick(&change.isr, &self.isr),
            removing_replicas: pick(&change.removing_replicas, &self.removing_replicas),
            adding_replicas: pick(&change.adding_replicas, &self.adding_replicas),
            leader,
            leader_recovery_state,
            leader_epoch,
            partition_epoch: PartitionEpoch(self.partition_epoch.0.saturating_add(1)),
            directories: change
                .directories
                .clone()
                .unwrap_or_else(|| self.directories.clone()),
            elr: pick(&change.eligible_leader_replicas, &self.elr),
            last_known_elr: pick(&change.last_known_elr, &self.last_known_elr),
        };
        next.validate(t, p)?;
        Ok(next)
    }

    /// What every registration in an image satisfies.
    fn validate(&self, topic_id: Uuid, partition: i32) -> Result<(), MetadataError> {
        let fail = |reason| Err(invalid(topic_id, partition, reason));
        if partition < 0 {
            return fail("negative partition id");
        }
        if self.replicas.is_empty() {
            return fail("no replicas");
        }
        if self.replicas.iter().any(|b| b.0 < 0) {
            return fail("negative replica id");
        }
        if has_duplicates(&self.replicas) {
            return fail("a replica is listed twice");
        }
        for (list, reason) in [
            (&self.isr, "ISR member is not a replica"),
            (&self.removing_replicas, "removing replica is not a replica"),
            (&self.adding_replicas, "adding replica is not a replica"),
        ] {
            if !is_subset(list, &self.replicas) {
                return fail(reason);
            }
        }
        if has_duplicates(&self.isr) {
            return fail("an ISR member is listed twice");
        }
        if self.has_leader() && !self.replicas.contains(&self.leader) {
            return fail("leader is not a replica");
        }
        if !self.directories.is_empty() && self.directories.len() != self.replicas.len() {
            return fail("directories do not match replicas");
        }
        Ok(())
    }
}

/// O(n log n): lists come from untrusted bytes and may be long.
fn has_duplicates(list: &[BrokerId]) -> bool {
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

fn is_subset(list: &[BrokerId], of: &[BrokerId]) -> bool {
    let mut of = of.to_vec();
    of.sort_unstable();
    list.iter().all(|b| of.binary_search(b).is_ok())
}

fn invalid(topic_id: Uuid, partition: i32, reason: &'static str) -> MetadataError {
    MetadataError::InvalidPartition {
        topic_id,
        partition,
        reason,
    }
}
