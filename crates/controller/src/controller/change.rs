//! One partition's change, as Kafka's `PartitionChangeBuilder`: from a
//! target ISR (and leader recovery state), the leader election, the
//! eligible leader replicas (KIP-966) and the `PartitionChangeRecord` that
//! makes it so, or nothing when nothing changes.
//!
//! Every operation that changes a partition's ISR or leadership goes
//! through it (AlterPartition, fencing, controlled shutdown, unfencing), so
//! the rules hold everywhere:
//! - a leader is always in the ISR and usable (registered, unfenced, not
//!   shutting down);
//! - without ELR an ISR never becomes empty: its last member stays,
//!   leaderless, and leads again once usable;
//! - with ELR, members leaving an ISR that falls below the topic's
//!   effective `min.insync.replicas` (capped at the replication factor)
//!   become eligible leader replicas; a leaderless partition with an empty
//!   ISR elects from them (that replica alone becomes the ISR); when the
//!   ISR empties, the last leader is remembered (`last_known_elr`);
//! - an unclean election (`unclean.leader.election.enable`) picks any
//!   usable replica only when ISR and ELR give no leader, makes it the ISR
//!   alone and marks the partition RECOVERING (KIP-704).
//!
//! - reassignment (KIP-455, Kafka's `completeReassignmentIfNeeded`): the
//!   target replicas, adding and removing lists default to the
//!   registration's; once the target ISR without the removing replicas
//!   still holds every replica that stays, the reassignment completes in
//!   the same change: replicas = the target, ISR = ISR minus removing,
//!   adding/removing cleared. Elections go through the target replicas in
//!   order, and a change whose replicas drop a broker bumps the leader
//!   epoch even when the leader stays.
//!
//! Not done: directories (KIP-858).

use sluice_metadata::record::PartitionChangeRecord;
use sluice_metadata::{BrokerId, LeaderRecoveryState, MetadataImage, PartitionRegistration};
use uuid::Uuid;

/// How a new leader may be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Election {
    /// From the ISR (or, with ELR, from the ELR when the ISR is empty).
    Online,
    /// As `Online`, then any usable replica (`unclean.leader.election.enable`).
    Unclean,
}

/// The rules of one partition's change.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub election: Election,
    /// KIP-966 eligible leader replicas.
    pub elr_enabled: bool,
    /// The topic's effective `min.insync.replicas` (capped at its
    /// replication factor).
    pub min_isr: usize,
}

/// Builds a [`PartitionChangeRecord`] for one partition.
pub(crate) struct ChangeBuilder<'a> {
    image: &'a MetadataImage,
    reg: &'a PartitionRegistration,
    topic_id: Uuid,
    partition: i32,
    rules: Rules,
    /// Brokers that may not lead whatever their registration says (being
    /// fenced or shutting down in the same batch).
    not_leaders: &'a [BrokerId],
    /// A broker that may lead although the image still shows it fenced
    /// (being unfenced in the same batch).
    may_lead: Option<BrokerId>,
    /// Brokers back from an unclean shutdown: never eligible (KIP-966).
    unclean_shutdown: &'a [BrokerId],
    target_isr: Vec<BrokerId>,
    target_elr: Vec<BrokerId>,
    target_recovery: LeaderRecoveryState,
    target_replicas: Vec<BrokerId>,
    target_adding: Vec<BrokerId>,
    target_removing: Vec<BrokerId>,
}

impl<'a> ChangeBuilder<'a> {
    pub fn new(
        image: &'a MetadataImage,
        reg: &'a PartitionRegistration,
        topic_id: Uuid,
        partition: i32,
        rules: Rules,
    ) -> Self {
        ChangeBuilder {
            image,
            reg,
            topic_id,
            partition,
            rules,
            not_leaders: &[],
            may_lead: None,
            unclean_shutdown: &[],
            target_isr: reg.isr.clone(),
            target_elr: reg.elr.clone(),
            target_recovery: reg.leader_recovery_state,
            target_replicas: reg.replicas.clone(),
            target_adding: reg.adding_replicas.clone(),
            target_removing: reg.removing_replicas.clone(),
        }
    }

    /// The replica list (reassignment start or revert).
    pub fn target_replicas(mut self, replicas: Vec<BrokerId>) -> Self {
        self.target_replicas = replicas;
        self
    }

    /// The replicas a reassignment adds (empty: none in progress).
    pub fn target_adding(mut self, adding: Vec<BrokerId>) -> Self {
        self.target_adding = adding;
        self
    }

    /// The replicas a reassignment removes (empty: none in progress).
    pub fn target_removing(mut self, removing: Vec<BrokerId>) -> Self {
        self.target_removing = removing;
        self
    }

    pub fn target_isr(mut self, isr: Vec<BrokerId>) -> Self {
        self.target_isr = isr;
        self
    }

    pub fn target_recovery(mut self, state: LeaderRecoveryState) -> Self {
        self.target_recovery = state;
        self
    }

    pub fn not_leaders(mut self, brokers: &'a [BrokerId]) -> Self {
        self.not_leaders = brokers;
        self
    }

    pub fn unclean_shutdown(mut self, brokers: &'a [BrokerId]) -> Self {
        self.unclean_shutdown = brokers;
        self
    }

    pub fn may_lead(mut self, broker: BrokerId) -> Self {
        self.may_lead = Some(broker);
        self
    }

    fn acceptable_leader(&self, b: BrokerId) -> bool {
        if self.not_leaders.contains(&b) {
            return false;
        }
        self.may_lead == Some(b) || self.image.broker(b).is_some_and(|r| r.is_usable())
    }

    fn valid_new_leader(&self, b: BrokerId) -> bool {
        (self.target_isr.contains(&b)
            || (self.target_isr.is_empty() && self.target_elr.contains(&b)))
            && self.acceptable_leader(b)
    }

    /// The leader to have and whether it was elected uncleanly.
    fn elect(&self) -> (BrokerId, bool) {
        let reg = self.reg;
        if reg.has_leader() && self.valid_new_leader(reg.leader) {
            return (reg.leader, false);
        }
        if let Some(&b) = self
            .target_replicas
            .iter()
            .find(|&&b| self.valid_new_leader(b))
        {
            return (b, false);
        }
        if self.rules.elr_enabled
            && self.target_isr.is_empty()
            && self.target_elr.is_empty()
            && reg.last_known_elr.len() == 1
            && self.acceptable_leader(reg.last_known_elr[0])
        {
            // KIP-966: the last known leader, once usable again, when
            // nobody else may lead (Kafka counts it as unclean).
            return (reg.last_known_elr[0], true);
        }
        if self.rules.election == Election::Unclean {
            if let Some(&b) = self
                .target_replicas
                .iter()
                .find(|&&b| self.acceptable_leader(b))
            {
                return (b, true);
            }
        }
        (BrokerId::NO_LEADER, false)
    }

    /// KIP-966: members leaving an ISR below min ISR become eligible.
    fn populate_elr(&mut self) {
        if !self.rules.elr_enabled {
            return;
        }
        if self.target_isr.len() >= self.rules.min_isr {
            self.target_elr.clear();
            return;
        }
        let mut elr: Vec<BrokerId> = Vec::new();
        for &b in self.target_elr.iter().chain(self.reg.isr.iter()) {
            if !self.target_isr.contains(&b)
                && !elr.contains(&b)
                && !self.unclean_shutdown.contains(&b)
            {
                elr.push(b);
            }
        }
        elr.sort_unstable();
        self.target_elr = elr;
    }

    /// Kafka's `maybeCompleteReassignment`: with a reassignment in
    /// progress, the target ISR without the removing replicas, if it is
    /// not empty and holds every replica that stays, completes it.
    fn complete_reassignment(&mut self) {
        if self.target_adding.is_empty() && self.target_removing.is_empty() {
            return;
        }
        let removing = &self.target_removing;
        let isr: Vec<BrokerId> = self
            .target_isr
            .iter()
            .copied()
            .filter(|b| !removing.contains(b))
            .collect();
        let replicas: Vec<BrokerId> = self
            .target_replicas
            .iter()
            .copied()
            .filter(|b| !removing.contains(b))
            .collect();
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|b| isr.contains(b)) {
            return;
        }
        self.target_isr = isr;
        self.target_replicas = replicas;
        self.target_adding.clear();
        self.target_removing.clear();
    }

    /// The change, or `None` when nothing changes.
    pub fn build(mut self) -> Option<PartitionChangeRecord> {
        let reg = self.reg;
        let mut rec = PartitionChangeRecord::new(self.topic_id, self.partition);
        self.complete_reassignment();
        self.populate_elr();
        let (leader, unclean) = self.elect();
        if leader != reg.leader {
            if self.target_elr.contains(&leader) {
                self.target_isr = vec![leader];
                self.target_elr.retain(|&b| b != leader);
            }
            rec.leader = leader;
            if unclean {
                rec.isr = Some(vec![leader]);
                if reg.leader_recovery_state != LeaderRecoveryState::Recovering {
                    rec.leader_recovery_state = LeaderRecoveryState::Recovering.value();
                }
                self.target_recovery = LeaderRecoveryState::Recovering;
            }
        }
        // Kafka's triggerLeaderEpochBumpForReplicaReassignmentIfNeeded: a
        // replica list that drops a broker bumps the leader epoch, so the
        // dropped replica's fetches are fenced.
        if rec.leader == BrokerId::NO_LEADER_CHANGE
            && !reg
                .replicas
                .iter()
                .all(|b| self.target_replicas.contains(b))
        {
            rec.leader = reg.leader;
        }
        // ELR only changes along a clean election (an unclean one clears
        // it), and only with ELR on.
        if rec.isr.is_some() || !self.rules.elr_enabled {
            self.target_elr.clear();
        }
        if self.target_elr != reg.elr {
            rec.eligible_leader_replicas = Some(self.target_elr.clone());
        }
        if rec.isr.is_none()
            && (!self.target_isr.is_empty() || self.rules.elr_enabled)
            && self.target_isr != reg.isr
        {
            rec.isr = Some(self.target_isr.clone());
        }
        // The last known leader: remembered when the ISR empties, forgotten
        // once a leader is elected.
        if self.rules.elr_enabled {
            let emptied = rec.isr.as_ref().is_some_and(|i| i.is_empty());
            if emptied && reg.last_known_elr != [reg.leader] && reg.has_leader() {
                rec.last_known_elr = Some(vec![reg.leader]);
            } else if !emptied
                && (rec.leader.0 >= 0 || (reg.has_leader() && rec.leader != BrokerId::NO_LEADER))
                && !reg.last_known_elr.is_empty()
            {
                rec.last_known_elr = Some(Vec::new());
            }
        }
        if self.target_recovery != reg.leader_recovery_state
            && rec.leader_recovery_state == LeaderRecoveryState::NO_CHANGE
        {
            rec.leader_recovery_state = self.target_recovery.value();
        }
        if self.target_replicas != reg.replicas {
            rec.replicas = Some(self.target_replicas.clone());
        }
        if self.target_removing != reg.removing_replicas {
            rec.removing_replicas = Some(self.target_removing.clone());
        }
        if self.target_adding != reg.adding_replicas {
            rec.adding_replicas = Some(self.target_adding.clone());
        }
        let noop = rec.isr.is_none()
            && rec.replicas.is_none()
            && rec.removing_replicas.is_none()
            && rec.adding_replicas.is_none()
            && rec.eligible_leader_replicas.is_none()
            && rec.last_known_elr.is_none()
            && rec.leader == BrokerId::NO_LEADER_CHANGE
            && rec.leader_recovery_state == LeaderRecoveryState::NO_CHANGE;
        (!noop).then_some(rec)
    }
}

/// The rules for a partition of `topic` with `replication_factor` replicas.
pub(crate) fn rules_for(
    image: &MetadataImage,
    config: &super::ControllerConfig,
    topic: &str,
    replication_factor: usize,
) -> Rules {
    Rules {
        election: if unclean_enabled(image, topic, config.unclean_leader_election_enable) {
            Election::Unclean
        } else {
            Election::Online
        },
        elr_enabled: config.eligible_leader_replicas_enabled,
        min_isr: effective_min_isr(
            image,
            topic,
            replication_factor,
            config.default_min_insync_replicas,
        ),
    }
}

/// The topic's effective `min.insync.replicas`: its own override, else the
/// cluster default (broker resource ""), else `default`, capped at the
/// replication factor (Kafka's `getTopicEffectiveMinIsr`).
pub(crate) fn effective_min_isr(
    image: &MetadataImage,
    topic: &str,
    replication_factor: usize,
    default: i32,
) -> usize {
    let value = config_value(image, topic, "min.insync.replicas")
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(default)
        .max(1);
    (value as usize).min(replication_factor.max(1))
}

/// `unclean.leader.election.enable` for `topic`: its override, else the
/// cluster default, else `default`.
pub(crate) fn unclean_enabled(image: &MetadataImage, topic: &str, default: bool) -> bool {
    config_value(image, topic, "unclean.leader.election.enable")
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(default)
}

fn config_value<'i>(image: &'i MetadataImage, topic: &str, key: &str) -> Option<&'i String> {
    use sluice_metadata::{ConfigResource, ConfigResourceType};
    let topic_res = ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: topic.to_owned(),
    };
    let cluster = ConfigResource {
        resource_type: ConfigResourceType::Broker,
        name: String::new(),
    };
    image
        .configs()
        .get(&topic_res)
        .and_then(|c| c.get(key))
        .or_else(|| image.configs().get(&cluster).and_then(|c| c.get(key)))
}
