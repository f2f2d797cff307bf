//! ConsumerGroupHeartbeat (KIP-848) on the coordinator: the staged write of
//! a consumer group's changes and the expiry of its members' sessions.

use crate::group::append::Durable;
use crate::group::consumer::{
    ConsumerGroup, HeartbeatRequest, HeartbeatResponse, MemberState, TopicsView,
};
use crate::group::records;
use crate::group::{GroupError, GroupState};

use super::{consumer_records, GroupCoordinator, GroupEntry};

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat (already checked with
    /// [`consumer::validate_heartbeat`]; `req.member_id` is not empty).
    /// `topics` is the cluster's topics now. The group's changes are
    /// written to `__consumer_offsets` (a lingered write) before the answer.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: HeartbeatRequest,
        topics: &TopicsView,
    ) -> Result<HeartbeatResponse, GroupError> {
        let (resp, durable) = self.consumer_heartbeat_staged(group_id, req, topics)?;
        durable.wait().await?;
        Ok(resp)
    }

    pub(super) fn consumer_heartbeat_staged(
        &self,
        group_id: &str,
        req: HeartbeatRequest,
        topics: &TopicsView,
    ) -> Result<(HeartbeatResponse, Durable), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidRequest);
        }
        let joining = req.member_epoch == 0;
        let group = if joining {
            self.get_or_create_group(group_id)?
        } else {
            self.get_group(group_id)?
                .ok_or(GroupError::GroupIdNotFound)?
        };
        let now = self.now();
        let mut entry = group.lock();
        let mut pre = Vec::new();
        let mut cg = match &entry.consumer {
            Some(c) => c.clone(),
            None => {
                // Kafka: a classic group of the same id is not a consumer
                // group; an empty one is converted on the first join.
                let classic_empty =
                    entry.group.state() == GroupState::Empty && entry.group.is_empty();
                if !joining || !classic_empty {
                    return Err(GroupError::GroupIdNotFound);
                }
                if entry.group.protocol_type().is_some() {
                    pre.push((records::group_key(group_id), None));
                }
                ConsumerGroup::new(group_id, now)
            }
        };
        let mut out = Vec::new();
        let config = self.consumer_config_for(group_id);
        let resp = cg.heartbeat(req, topics, &config, now, &mut out)?;
        let durable = self.stage(group_id, consumer_records(group_id, pre, &out))?;
        entry.consumer = Some(cg);
        Ok((resp, durable))
    }

    /// Removes consumer group members whose session expired or that did
    /// not revoke within their rebalance timeout.
    pub(super) fn expire_consumer_members(&self, entry: &mut GroupEntry, now: i64) {
        let Some(c) = &entry.consumer else { return };
        let due = c.members().any(|m| {
            m.session_deadline_ms <= now
                || (m.assignment.state == MemberState::UnrevokedPartitions
                    && m.rebalance_deadline_ms.is_some_and(|d| d <= now))
        });
        if !due {
            return;
        }
        let mut c = c.clone();
        let mut out = Vec::new();
        let gone = c.expire_members(now, &mut out);
        let group_id = c.group_id().to_string();
        match self.append(&group_id, &consumer_records(&group_id, Vec::new(), &out)) {
            Ok(()) => {
                tracing::info!(group = %group_id, members = ?gone, "removed consumer group members (session or rebalance timeout)");
                entry.consumer = Some(c);
            }
            Err(e) => {
                tracing::warn!(group = %group_id, error = %e, "cannot remove expired consumer group members")
            }
        }
    }
}
