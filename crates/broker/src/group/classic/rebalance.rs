//! A classic group's rebalance: the initial delay of an empty group, the
//! move to PreparingRebalance, and completing the join when every member
//! has rejoined or the rebalance timeout expired.

use bytes::Bytes;

use super::{
    ClassicGroup, Completion, GroupLimits, GroupState, InitialDelay, JoinResult, JoinedMember,
    SyncResult,
};
use crate::group::GroupError;

impl ClassicGroup {
    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Starts the join phase of a new (Empty) group: it ends from the timer
    /// after the initial delay, never inside the JoinGroup that started it.
    pub(super) fn prepare_initial_rebalance(&mut self, limits: &GroupLimits, now_ms: i64) {
        let delay = i64::from(limits.initial_rebalance_delay_ms.max(0));
        self.transition(GroupState::PreparingRebalance, now_ms);
        self.initial_delay = Some(InitialDelay {
            configured_ms: delay,
            delay_ms: delay,
            remaining_ms: (self.rebalance_timeout_ms() - delay).max(0),
            new_member_added: false,
        });
        self.join_deadline_ms = Some(now_ms + delay);
        self.sync_deadline_ms = None;
    }

    /// The initial-delay timer fired: wait again if members joined since it
    /// was armed and time remains, else end the join phase.
    pub(super) fn initial_delay_expired(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        let Some(d) = self.initial_delay else {
            return;
        };
        tracing::debug!(group = %self.group_id, new_member_added = d.new_member_added, remaining_ms = d.remaining_ms, "initial rebalance delay expired");
        if d.new_member_added && d.remaining_ms != 0 {
            let delay = d.configured_ms.min(d.remaining_ms);
            self.initial_delay = Some(InitialDelay {
                configured_ms: d.configured_ms,
                delay_ms: delay,
                remaining_ms: (d.remaining_ms - d.delay_ms).max(0),
                new_member_added: false,
            });
            self.join_deadline_ms = Some(now_ms + delay);
        } else {
            self.complete_join(now_ms, out);
        }
    }

    /// Starts a rebalance: answers waiting SyncGroups with
    /// REBALANCE_IN_PROGRESS and waits (up to the rebalance timeout) for
    /// every member to rejoin.
    pub(super) fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    out.push(Completion::Sync {
                        member_id: m.member_id.clone(),
                        result: SyncResult::error(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        if self.state == GroupState::Empty {
            // From Empty a rebalance is always the delayed initial one; callers
            // use prepare_initial_rebalance.
            self.initial_delay = None;
        }
        self.transition(GroupState::PreparingRebalance, now_ms);
        self.initial_delay = None;
        self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        self.sync_deadline_ms = None;
        self.pending_sync.clear();
    }

    pub(super) fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    pub(super) fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self.initial_delay.is_some() {
            // Only the initial-delay timer ends this phase (tick).
            return;
        }
        let deadline_passed = self.join_deadline_ms.is_some_and(|d| now_ms >= d);
        if self.all_joined() || deadline_passed {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are removed,
    /// a new generation starts, every waiting JoinGroup is answered (the
    /// leader, a member that rejoined, gets the member list). As Kafka
    /// (KIP-345), a static member that did not rejoin in time stays in the
    /// group and the new generation; only its session timeout or not
    /// sending SyncGroup for the new generation within the rebalance
    /// timeout removes it, and when it comes back in time it rejoins
    /// without a further rebalance.
    pub(super) fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Completion>) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member_entry(&id);
        }
        self.pending_members.clear();
        self.initial_delay = None;
        if !self.members.is_empty() && !self.members.values().any(|m| m.awaiting_join) {
            // Only static members that have not rejoined are left: wait
            // another rebalance timeout for one of them (or their session
            // timeouts), as Kafka does.
            self.join_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
            return;
        }
        self.join_deadline_ms = None;
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.transition(GroupState::Empty, now_ms);
            out.push(Completion::Persist);
            return;
        }
        self.protocol_name = self.select_protocol();
        let leader_joined = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join);
        if !leader_joined {
            self.leader_id = self
                .join_order
                .iter()
                .find(|id| self.members.get(*id).is_some_and(|m| m.awaiting_join))
                .cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        tracing::info!(
            group = %self.group_id,
            generation = self.generation_id,
            members = self.members.len(),
            "stabilized group"
        );
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        self.pending_sync = self.members.keys().cloned().collect();
        let ids: Vec<String> = self.join_order.clone();
        for id in ids {
            let is_leader = self.leader_id.as_deref() == Some(&id);
            let result = self.join_result_for(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                // Every member's session restarts with the new generation.
                m.last_heartbeat_ms = now_ms;
                if std::mem::take(&mut m.awaiting_join) {
                    out.push(Completion::Join {
                        member_id: id.clone(),
                        result,
                    });
                }
            }
        }
    }

    pub(super) fn join_result_for(&self, member_id: &str, with_members: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members && is_leader {
                self.members()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}
