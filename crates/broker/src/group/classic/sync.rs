//! SyncGroup on a classic group: the leader's assignment and the answers to
//! the members waiting for it.

use bytes::Bytes;

use super::{ClassicGroup, Completion, GroupState, Reply, SyncResult};
use crate::group::GroupError;

impl ClassicGroup {
    /// Checks that `member_id` is a member and, for a static member, that
    /// the instance id still maps to it.
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
                None => return Err(GroupError::UnknownMemberId),
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// SyncGroup. `assignments` is non-empty only from the leader.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        out: &mut Vec<Completion>,
    ) -> Reply<SyncResult> {
        if self.state == GroupState::Dead {
            return Reply::Now(SyncResult::error(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(member_id, group_instance_id) {
            return Reply::Now(SyncResult::error(e));
        }
        if generation_id != self.generation_id {
            return Reply::Now(SyncResult::error(GroupError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol_name.as_deref())
        {
            return Reply::Now(SyncResult::error(GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(GroupError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(GroupError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                self.touch(member_id, now_ms);
                self.synced(member_id);
                if let Some(m) = self.members.get_mut(member_id) {
                    m.awaiting_sync = true;
                }
                if self.leader_id.as_deref() == Some(member_id) {
                    for m in self.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    for (id, a) in assignments {
                        if let Some(m) = self.members.get_mut(&id) {
                            m.assignment = a;
                        }
                    }
                    self.transition(GroupState::Stable, now_ms);
                    for m in self.members.values_mut() {
                        m.is_new = false;
                    }
                    out.push(Completion::Persist);
                    self.complete_syncs(out);
                }
                Reply::Later(member_id.to_string())
            }
            GroupState::Stable => {
                self.touch(member_id, now_ms);
                self.synced(member_id);
                Reply::Now(self.sync_result_for(member_id))
            }
        }
    }

    /// `member_id` sent its SyncGroup for this generation; once every
    /// member has, the pending-sync deadline is off.
    pub(super) fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    pub(super) fn sync_result_for(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub(super) fn complete_syncs(&mut self, out: &mut Vec<Completion>) {
        let waiting: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_sync)
            .map(|m| m.member_id.clone())
            .collect();
        for id in waiting {
            let result = self.sync_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_sync = false;
            }
            out.push(Completion::Sync {
                member_id: id,
                result,
            });
        }
    }
}
