//! ConsumerGroupHeartbeat on a consumer group: a member leaves, joins (or
//! rejoins as a static member) or is fenced, updates its subscription (which
//! may bump the group epoch), and moves one step towards its target.
//!
//! Each phase appends the records that persist its changes to `out`, in the
//! order they are applied, so replaying them rebuilds the same group.

use super::{
    assignment_changed, ConsumerGroup, ConsumerGroupConfig, ConsumerMember, ConsumerRecord,
    HeartbeatRequest, HeartbeatResponse, MemberAssignmentState, MemberState, TopicsView,
    LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use crate::group::GroupError;

impl ConsumerGroup {
    pub(super) fn lookup(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<&ConsumerMember, GroupError> {
        match instance_id {
            Some(inst) => {
                let id = self
                    .static_members
                    .get(inst)
                    .ok_or(GroupError::UnknownMemberId)?;
                if id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                self.members.get(id).ok_or(GroupError::UnknownMemberId)
            }
            None => self
                .members
                .get(member_id)
                .ok_or(GroupError::UnknownMemberId),
        }
    }

    /// Handles one ConsumerGroupHeartbeat (already checked with
    /// [`super::validate_heartbeat`]). The changes are appended to `out`.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicsView,
        config: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<HeartbeatResponse, GroupError> {
        // Regexes that members subscribed with before this heartbeat are
        // resolved now; one this heartbeat brings in waits for the next.
        self.resolve_regexes();
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.leave(&req, config, now_ms, out);
        }
        if self.members.len() >= config.max_size && !self.members.contains_key(&req.member_id) {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let (member, is_new) = if req.member_epoch == 0 {
            self.join(&req, now_ms, out)?
        } else {
            (self.check_member_epoch(&req)?.clone(), false)
        };

        // 1. The member's subscription; it may bump the group epoch.
        let updated = self.update_subscription(&req, &member, is_new, topics, out);
        // 2. A new target assignment for a new group epoch.
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(topics, config, out);
        }
        // 3. The member one step towards its target.
        self.reconcile(&updated, &req, now_ms, out);

        let member_id = updated.member_id;
        let m = self
            .members
            .get_mut(&member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        m.session_deadline_ms = now_ms.saturating_add(i64::from(config.session_timeout_ms));
        let full = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && req.owned.is_some());
        let send_assignment =
            full || assignment_changed(&member.assignment.assigned, &m.assignment.assigned);
        Ok(HeartbeatResponse {
            member_epoch: m.assignment.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: send_assignment.then(|| m.assignment.assigned.clone()),
            member_id,
        })
    }

    /// A member leaves (-1), or a static member leaves for a while (-2): it
    /// keeps its partitions until it rejoins or its session expires.
    fn leave(
        &mut self,
        req: &HeartbeatRequest,
        config: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<HeartbeatResponse, GroupError> {
        let member = self
            .lookup(&req.member_id, req.instance_id.as_deref())?
            .clone();
        let member_id = member.member_id.clone();
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
            self.remove_member(&member_id, now_ms, out);
        } else {
            let mut a = member.assignment.clone();
            a.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            a.pending_revocation.clear();
            out.push(ConsumerRecord::CurrentAssignment {
                member_id: member_id.clone(),
                assignment: a.clone(),
            });
            self.set_assignment(&member_id, a);
            if let Some(m) = self.members.get_mut(&member_id) {
                m.session_deadline_ms = now_ms.saturating_add(i64::from(config.session_timeout_ms));
                m.rebalance_deadline_ms = None;
            }
        }
        Ok(HeartbeatResponse {
            member_id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// A heartbeat at epoch 0: a new member, a known member rejoining (it
    /// has given up every partition it owned), or a static member's new
    /// instance. Returns the member as it was before this heartbeat's
    /// subscription, and whether it is new to the group.
    fn join(
        &mut self,
        req: &HeartbeatRequest,
        now_ms: i64,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<(ConsumerMember, bool), GroupError> {
        let static_old = req
            .instance_id
            .as_deref()
            .and_then(|i| self.static_members.get(i).cloned());
        if let Some(old_id) = static_old {
            return self.replace_static_member(&old_id, req, now_ms, out);
        }
        let Some(existing) = self.members.get(&req.member_id) else {
            return Ok((ConsumerMember::new(&req.member_id), true));
        };
        let mut m = existing.clone();
        m.assignment = MemberAssignmentState::default();
        out.push(ConsumerRecord::CurrentAssignment {
            member_id: m.member_id.clone(),
            assignment: m.assignment.clone(),
        });
        self.insert_member(m.clone());
        Ok((m, false))
    }

    /// A static member's instance joins again: the new instance takes over
    /// the old one's assignment and target.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        req: &HeartbeatRequest,
        now_ms: i64,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<(ConsumerMember, bool), GroupError> {
        let old = self.members[old_id].clone();
        // As Kafka: even the same member id must have left (-2) before its
        // instance id joins again.
        if old.assignment.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return Err(GroupError::UnreleasedInstanceId);
        }
        let mut m = old;
        m.member_id = req.member_id.clone();
        m.assignment.member_epoch = 0;
        m.assignment.previous_member_epoch = 0;
        let mut is_new = false;
        if old_id != req.member_id {
            let target = self.target_of(old_id);
            let old_id = old_id.to_string();
            out.push(ConsumerRecord::CurrentAssignmentTombstone {
                member_id: old_id.clone(),
            });
            out.push(ConsumerRecord::TargetMemberTombstone {
                member_id: old_id.clone(),
            });
            out.push(ConsumerRecord::MemberTombstone {
                member_id: old_id.clone(),
            });
            self.drop_member(&old_id, now_ms);
            out.push(ConsumerRecord::TargetMember {
                member_id: m.member_id.clone(),
                assignment: target.clone(),
            });
            self.target.insert(m.member_id.clone(), target);
            is_new = true;
        }
        out.push(ConsumerRecord::CurrentAssignment {
            member_id: m.member_id.clone(),
            assignment: m.assignment.clone(),
        });
        self.insert_member(m.clone());
        Ok((m, is_new))
    }

    /// A known member's heartbeat: its epoch must be its current one, or
    /// the previous one when the answer with the bumped epoch may have been
    /// lost and the member owns no more than it is assigned.
    fn check_member_epoch(&self, req: &HeartbeatRequest) -> Result<&ConsumerMember, GroupError> {
        let m = self.lookup(&req.member_id, req.instance_id.as_deref())?;
        let known = m.assignment.member_epoch;
        if req.member_epoch > known {
            return Err(GroupError::FencedMemberEpoch);
        }
        if req.member_epoch < known {
            let subset = req.owned.as_ref().is_some_and(|owned| {
                owned.iter().all(|(t, ps)| {
                    ps.is_empty()
                        || m.assignment
                            .assigned
                            .get(t)
                            .is_some_and(|a| ps.is_subset(a))
                })
            });
            if req.member_epoch != m.assignment.previous_member_epoch || !subset {
                return Err(GroupError::FencedMemberEpoch);
            }
        }
        Ok(m)
    }

    /// Applies the heartbeat's subscription fields to `member`, and bumps
    /// the group epoch if its subscribed topics or their metadata changed.
    /// Returns the updated member (already in the group).
    fn update_subscription(
        &mut self,
        req: &HeartbeatRequest,
        member: &ConsumerMember,
        is_new: bool,
        topics: &TopicsView,
        out: &mut Vec<ConsumerRecord>,
    ) -> ConsumerMember {
        let mut updated = member.clone();
        let s = &mut updated.subscription;
        if let Some(i) = &req.instance_id {
            s.instance_id = Some(i.clone());
        }
        if let Some(r) = &req.rack_id {
            s.rack_id = Some(r.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            s.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(a) = &req.server_assignor {
            s.server_assignor = Some(a.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            let mut n = names.clone();
            n.sort();
            n.dedup();
            s.subscribed_topic_names = n;
        }
        if let Some(re) = &req.subscribed_topic_regex {
            s.subscribed_topic_regex = (!re.is_empty()).then(|| re.clone());
        }
        s.client_id = req.client_id.clone();
        s.client_host = req.client_host.clone();
        updated.compile_regex();
        // As Kafka: a member joining with an empty subscription does not
        // change the group epoch (nothing to assign).
        let mut bump = false;
        if is_new || updated.subscription != member.subscription {
            out.push(ConsumerRecord::Member {
                member_id: updated.member_id.clone(),
                subscription: updated.subscription.clone(),
            });
            let (new, old) = (&updated.subscription, &member.subscription);
            bump = new.subscribed_topic_names != old.subscribed_topic_names
                || new.subscribed_topic_regex != old.subscribed_topic_regex;
        }
        self.insert_member(updated.clone());
        let hash = self.metadata_hash_of(topics);
        if hash != self.metadata_hash {
            bump = true;
            self.metadata_hash = hash;
        }
        if bump {
            self.group_epoch += 1;
            out.push(ConsumerRecord::GroupMetadata {
                epoch: self.group_epoch,
                metadata_hash: self.metadata_hash,
            });
        }
        updated
    }

    /// Moves `member` one step towards its target assignment; a member
    /// that must revoke partitions gets its rebalance deadline.
    fn reconcile(
        &mut self,
        member: &ConsumerMember,
        req: &HeartbeatRequest,
        now_ms: i64,
        out: &mut Vec<ConsumerRecord>,
    ) {
        if member.is_reconciled_to(self.assignment_epoch) {
            return;
        }
        let member_id = &member.member_id;
        let target = self.target_of(member_id);
        let next = self.next_assignment(&member.assignment, &target, req.owned.as_ref());
        if next == member.assignment {
            return;
        }
        out.push(ConsumerRecord::CurrentAssignment {
            member_id: member_id.clone(),
            assignment: next.clone(),
        });
        let revoking = next.state == MemberState::UnrevokedPartitions;
        let rebalance_timeout = i64::from(member.subscription.rebalance_timeout_ms.max(0));
        self.set_assignment(member_id, next);
        if let Some(m) = self.members.get_mut(member_id) {
            m.rebalance_deadline_ms = revoking.then(|| now_ms.saturating_add(rebalance_timeout));
        }
    }
}
