//! The coordinator's admin answers: ListGroups, DescribeGroups,
//! ConsumerGroupDescribe and DeleteGroups.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::group::consumer::{self, ConsumerGroup};
use crate::group::offsets::OffsetStore;
use crate::group::records;
use crate::group::txn_offsets::PendingTxnOffsets;
use crate::group::{GroupError, GroupState};

use super::{GroupCoordinator, GroupDescription, GroupListing, MemberDescription};

impl GroupCoordinator {
    /// ListGroups (every loaded group that is not Dead).
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let mut v: Vec<GroupListing> = self
            .all_groups()
            .into_iter()
            .filter_map(|g| {
                let e = g.lock();
                if let Some(c) = &e.consumer {
                    let state = c.state();
                    return Some(GroupListing {
                        group_id: c.group_id().to_string(),
                        protocol_type: "consumer".to_string(),
                        state: match state {
                            consumer::ConsumerGroupState::Empty => GroupState::Empty,
                            consumer::ConsumerGroupState::Stable => GroupState::Stable,
                            consumer::ConsumerGroupState::Dead => GroupState::Dead,
                            _ => GroupState::PreparingRebalance,
                        },
                        group_type: "consumer",
                        state_name: state.as_str(),
                    });
                }
                (e.group.state() != GroupState::Dead).then(|| GroupListing {
                    group_id: e.group.group_id().to_string(),
                    protocol_type: e.group.protocol_type().unwrap_or("").to_string(),
                    state: e.group.state(),
                    group_type: "classic",
                    state_name: e.group.state().name(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    /// DescribeGroups for one group. A group that does not exist is
    /// described as Dead with no members, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let dead = GroupDescription {
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        };
        let Some(group) = self.get_group(group_id)? else {
            return Ok(dead);
        };
        let e = group.lock();
        let g = &e.group;
        // Kafka describes a consumer group through DescribeGroups (v0–v5)
        // as Dead: it is not a classic group.
        if g.state() == GroupState::Dead || e.consumer.is_some() {
            return Ok(dead);
        }
        let stable = g.state() == GroupState::Stable;
        let protocol = g.protocol_name().unwrap_or("").to_string();
        Ok(GroupDescription {
            group_id: group_id.to_string(),
            state: g.state(),
            protocol_type: g.protocol_type().unwrap_or("").to_string(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group: only groups without members; writes
    /// tombstones for its offsets and its metadata. Open transactions do
    /// not keep a group from being deleted (Kafka's rule): their pending
    /// offsets get tombstones too, and their markers later find nothing.
    pub fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::GroupIdNotFound)?;
        let mut entry = group.lock();
        match entry.group.state() {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty if entry.group.is_empty() => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        if entry.consumer.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(GroupError::NonEmptyGroup);
        }
        let mut keys: BTreeSet<(String, i32)> =
            entry.offsets.all().map(|(k, _)| k.clone()).collect();
        keys.extend(entry.pending.partitions());
        let mut recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
            .iter()
            .map(|(t, p)| (records::offset_key(group_id, t, *p), None))
            .collect();
        if let Some(c) = &entry.consumer {
            for r in c.delete_records() {
                recs.extend(consumer::records::encode(group_id, &r));
            }
        }
        recs.push((records::group_key(group_id), None));
        self.append(group_id, &recs)?;
        entry.offsets = OffsetStore::default();
        entry.pending = PendingTxnOffsets::default();
        entry.consumer = None;
        entry.group.mark_dead(self.now());
        drop(entry);
        if let Ok(p) = self.loaded_partition(group_id) {
            p.groups.lock().remove(group_id);
        }
        Ok(())
    }

    // ---- consumer groups (KIP-848) ----

    /// A consumer group's state for ConsumerGroupDescribe (a copy).
    /// GROUP_ID_NOT_FOUND if there is none (or it is a classic group).
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<ConsumerGroup, GroupError> {
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::GroupIdNotFound)?;
        let entry = group.lock();
        entry.consumer.clone().ok_or(GroupError::GroupIdNotFound)
    }
}
