//! A classic group member's liveness and departure: heartbeats, LeaveGroup
//! and the removal that starts a rebalance.

use super::{ClassicGroup, Completion, GroupState, JoinRequest, JoinResult, Member, SyncResult};
use crate::group::GroupError;

impl ClassicGroup {
    pub(super) fn update_member(
        &mut self,
        member_id: &str,
        req: &JoinRequest,
        now_ms: i64,
        awaiting: bool,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = req.protocols.clone();
            m.protocol_type = req.protocol_type.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.awaiting_join = awaiting;
            m.last_heartbeat_ms = now_ms;
        }
    }

    pub(super) fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat_ms = now_ms;
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        match self.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        self.validate_member(member_id, group_instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        self.touch(member_id, now_ms);
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for a
    /// static member; both may be given).
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Result<String, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let id = match group_instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(current) => current.clone(),
                None => return Err(GroupError::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now_ms, out);
            return Ok(id);
        }
        if !self.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove_member_and_rebalance(&id, now_ms, out);
        Ok(id)
    }

    pub(super) fn remove_member_entry(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        self.join_order.retain(|id| id != member_id);
        self.pending_sync.remove(member_id);
        if let Some(i) = &m.group_instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        Some(m)
    }

    /// Removes a member (leave or session timeout) and rebalances the rest.
    pub(super) fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) {
        let Some(m) = self.remove_member_entry(member_id) else {
            return;
        };
        if m.awaiting_join {
            out.push(Completion::Join {
                member_id: member_id.to_string(),
                result: JoinResult::error(member_id, GroupError::UnknownMemberId),
            });
        }
        if m.awaiting_sync {
            out.push(Completion::Sync {
                member_id: member_id.to_string(),
                result: SyncResult::error(GroupError::UnknownMemberId),
            });
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
            }
            // Like Kafka, a departure ends the join phase once everyone left
            // has joined, the initial delay included.
            GroupState::PreparingRebalance if self.all_joined() => self.complete_join(now_ms, out),
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}
