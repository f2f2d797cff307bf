//! JoinGroup on a classic group: new, known and static members, protocol
//! selection and the timeouts a join must respect.

use bytes::Bytes;

use super::{
    ClassicGroup, Completion, GroupLimits, GroupState, JoinRequest, JoinResult, Member,
    PendingMember, Reply, SyncResult,
};
use crate::group::GroupError;

impl ClassicGroup {
    pub(super) fn new_member_id(
        &mut self,
        client_id: &str,
        group_instance_id: Option<&str>,
    ) -> String {
        self.next_member_seq += 1;
        let prefix = group_instance_id.unwrap_or(client_id);
        format!("{prefix}-{}", sluice_runtime::random_uuid())
    }

    /// The protocols every member (other than `except`) supports.
    pub(super) fn candidate_protocols(&self, except: Option<&str>) -> Option<Vec<String>> {
        let mut it = self
            .members()
            .filter(|m| Some(m.member_id.as_str()) != except);
        let first = it.next()?;
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        Some(candidates)
    }

    /// Kafka's supportsProtocols: an empty group takes any non-empty protocol
    /// list; otherwise the type must match and one protocol must be shared.
    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        match self.candidate_protocols(except) {
            None => !protocol_type.is_empty() && !protocols.is_empty(),
            Some(candidates) => {
                self.protocol_type.as_deref() == Some(protocol_type)
                    && protocols.iter().any(|(n, _)| candidates.contains(n))
            }
        }
    }

    /// The protocol every member supports that most members prefer.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols(None)?;
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        // Most votes; ties go to the candidate listed first (the first
        // member's preference order).
        let mut best: Option<(String, usize)> = None;
        for (c, n) in votes {
            if best.as_ref().is_none_or(|(_, b)| n > *b) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c)
    }

    pub(super) fn validate_timeouts(
        &self,
        req: &JoinRequest,
        limits: &GroupLimits,
    ) -> Result<(), GroupError> {
        if req.session_timeout_ms < limits.min_session_timeout_ms
            || req.session_timeout_ms > limits.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        Ok(())
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        if let Err(e) = self.validate_timeouts(&req, limits) {
            return Reply::Now(JoinResult::error(&req.member_id, e));
        }
        if self.state == GroupState::Dead {
            // The group is being deleted: the client looks up the coordinator again.
            return Reply::Now(JoinResult::error(
                &req.member_id,
                GroupError::CoordinatorNotAvailable,
            ));
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req, limits, now_ms, out)
        } else {
            self.join_known_member(req, limits, now_ms, out)
        }
    }

    pub(super) fn join_unknown_member(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        if !self.supports_protocols(&req.protocol_type, &req.protocols, None) {
            return Reply::Now(JoinResult::error("", GroupError::InconsistentGroupProtocol));
        }
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(old_id, req, now_ms, out);
            }
        }
        if self.members.len() + self.pending_members.len() >= limits.max_size {
            return Reply::Now(JoinResult::error("", GroupError::GroupMaxSizeReached));
        }
        let member_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        if req.require_known_member_id && req.group_instance_id.is_none() {
            self.pending_members.insert(
                member_id.clone(),
                PendingMember {
                    session_timeout_ms: req.session_timeout_ms,
                    since_ms: now_ms,
                },
            );
            return Reply::Now(JoinResult::error(&member_id, GroupError::MemberIdRequired));
        }
        self.add_member_and_rebalance(member_id, req, limits, now_ms, out)
    }

    pub(super) fn join_known_member(
        &mut self,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        let member_id = req.member_id.clone();
        if self.pending_members.contains_key(&member_id) {
            if !self.supports_protocols(&req.protocol_type, &req.protocols, None) {
                return Reply::Now(JoinResult::error(
                    &member_id,
                    GroupError::InconsistentGroupProtocol,
                ));
            }
            self.pending_members.remove(&member_id);
            return self.add_member_and_rebalance(member_id, req, limits, now_ms, out);
        }
        if let Err(e) = self.validate_member(&member_id, req.group_instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(&member_id, e));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols, Some(&member_id)) {
            return Reply::Now(JoinResult::error(
                &member_id,
                GroupError::InconsistentGroupProtocol,
            ));
        }
        let same = self.members[&member_id].same_protocols(&req.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&member_id, &req, now_ms, true);
                self.maybe_complete_join(now_ms, out);
                Reply::Later(member_id)
            }
            GroupState::CompletingRebalance if same => {
                // A retry of a join that already completed: answer with the
                // current generation.
                self.touch(&member_id, now_ms);
                Reply::Now(self.join_result_for(&member_id, false))
            }
            GroupState::Stable if same && self.leader_id.as_deref() != Some(&member_id) => {
                self.touch(&member_id, now_ms);
                Reply::Now(self.join_result_for(&member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&member_id, &req, now_ms, true);
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
                Reply::Later(member_id)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResult::error(&member_id, GroupError::UnknownMemberId))
            }
        }
    }

    /// A static member rejoins with a new member id: the old id is fenced.
    pub(super) fn replace_static_member(
        &mut self,
        old_id: String,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        let new_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        let Some(mut member) = self.members.remove(&old_id) else {
            return Reply::Now(JoinResult::error("", GroupError::UnknownMemberId));
        };
        // Whatever the old incarnation waited for is answered: it is fenced.
        if member.awaiting_join {
            out.push(Completion::Join {
                member_id: old_id.clone(),
                result: JoinResult::error(&old_id, GroupError::FencedInstanceId),
            });
        }
        if member.awaiting_sync {
            out.push(Completion::Sync {
                member_id: old_id.clone(),
                result: SyncResult::error(GroupError::FencedInstanceId),
            });
        }
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.last_heartbeat_ms = now_ms;
        member.awaiting_sync = false;
        member.awaiting_join = false;
        self.members.insert(new_id.clone(), member);
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        for id in self.join_order.iter_mut() {
            if *id == old_id {
                *id = new_id.clone();
            }
        }
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        let was_leader = self.leader_id.as_deref() == Some(&old_id);
        if was_leader {
            self.leader_id = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                // Kafka: the member's protocols are updated and the group
                // rebalances only if that changes the protocol the next
                // generation would select. Otherwise the member gets the
                // current generation and its old assignment (SyncGroup); a
                // static leader must not reassign (skip_assignment, v9+).
                self.update_member(&new_id, &req, now_ms, false);
                if self.select_protocol() == self.protocol_name {
                    out.push(Completion::Persist);
                    let mut result = self.join_result_for(&new_id, was_leader);
                    result.skip_assignment = was_leader;
                    Reply::Now(result)
                } else {
                    self.update_member(&new_id, &req, now_ms, true);
                    self.prepare_rebalance(now_ms, out);
                    self.maybe_complete_join(now_ms, out);
                    Reply::Later(new_id)
                }
            }
            // CompletingRebalance: as Kafka, always a new rebalance; the
            // leader may already have been given the old member id and
            // would assign nothing to the new one.
            _ => {
                self.update_member(&new_id, &req, now_ms, true);
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(now_ms, out);
                }
                self.maybe_complete_join(now_ms, out);
                Reply::Later(new_id)
            }
        }
    }

    pub(super) fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        limits: &GroupLimits,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<JoinResult> {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            is_new: true,
            last_heartbeat_ms: now_ms,
        };
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), member_id.clone());
        }
        self.join_order.push(member_id.clone());
        self.members.insert(member_id.clone(), member);
        tracing::debug!(group = %self.group_id, member = %member_id, state = self.state.name(), "member added");
        match self.state {
            GroupState::Empty => self.prepare_initial_rebalance(limits, now_ms),
            GroupState::PreparingRebalance => {
                if let Some(d) = self.initial_delay.as_mut() {
                    // Another member arrived during the initial delay: the
                    // timer waits once more when it fires.
                    d.new_member_added = true;
                }
            }
            _ => self.prepare_rebalance(now_ms, out),
        }
        self.maybe_complete_join(now_ms, out);
        Reply::Later(member_id)
    }
}
