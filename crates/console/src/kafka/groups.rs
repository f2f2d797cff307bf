//! Consumer groups: the list (ListGroups on every broker), and one group's
//! state, members, assignments, committed offsets and lag (FindCoordinator,
//! DescribeGroups and OffsetFetch on its coordinator, ListOffsets on the
//! leaders).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest,
    OffsetFetchRequest,
};
use sluice_client::{str_bytes, ClientError};

use super::cluster::partitions;
use super::model::{GroupDetail, GroupMember, GroupSummary, PartitionLag};
use super::offsets::{self, Led};
use super::{assignment, kafka_error, Session};
use crate::ConsoleError;

/// FindCoordinator v0 to v3 (v4 batches keys).
const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 3);
const LIST_GROUPS_VERSIONS: (i16, i16) = (0, 5);
const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);
/// OffsetFetch v2 (null topics = all) to v7 (v8 batches groups).
pub(crate) const OFFSET_FETCH_VERSIONS: (i16, i16) = (2, 7);
const CONSUMER_GROUP_DESCRIBE_VERSIONS: (i16, i16) = (0, 1);
/// GROUP_ID_NOT_FOUND: a group that does not exist.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// Every group the brokers know, by id.
pub fn list(session: &mut Session) -> Result<Vec<GroupSummary>, ConsoleError> {
    session.metadata(Some(&[]))?;
    let mut groups = BTreeMap::new();
    for id in session.broker_ids() {
        let (_, resp) = session.send_to(id, &ListGroupsRequest::default(), LIST_GROUPS_VERSIONS)?;
        if resp.error_code != 0 {
            return Err(kafka_error(
                format!("listing groups on broker {id}"),
                resp.error_code,
                None,
            ));
        }
        for g in resp.groups {
            let s = GroupSummary {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                group_type: g.group_type.to_string(),
            };
            groups.insert(s.group_id.clone(), s);
        }
    }
    Ok(groups.into_values().collect())
}

/// The node id of `group`'s coordinator.
pub fn coordinator(session: &mut Session, group: &str) -> Result<i32, ConsoleError> {
    let req = FindCoordinatorRequest::default()
        .with_key(str_bytes(group))
        .with_key_type(0);
    let (_, resp) = session.send(&req, FIND_COORDINATOR_VERSIONS)?;
    if resp.error_code != 0 {
        return Err(kafka_error(
            format!("finding the coordinator of group {group:?}"),
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    Ok(resp.node_id.0)
}

/// State, members and committed offsets with lag of `group`.
pub fn describe(session: &mut Session, group: &str) -> Result<GroupDetail, ConsoleError> {
    session.metadata(Some(&[]))?;
    let coordinator = coordinator(session, group)?;
    let req = DescribeGroupsRequest::default().with_groups(vec![str_bytes(group).into()]);
    let (_, resp) = session.send_to(coordinator, &req, DESCRIBE_GROUPS_VERSIONS)?;
    let g = resp
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == group)
        .ok_or_else(|| ConsoleError::NotFound(format!("unknown group {group:?}")))?;
    if g.error_code == GROUP_ID_NOT_FOUND {
        return Err(ConsoleError::NotFound(format!("unknown group {group:?}")));
    }
    if g.error_code != 0 {
        return Err(kafka_error(
            format!("group {group:?}"),
            g.error_code,
            g.error_message.as_ref(),
        ));
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: if consumer {
                assignment::decode(&m.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            },
        })
        .collect::<Vec<_>>();
    let mut state = g.group_state.to_string();
    let mut protocol_type = g.protocol_type.to_string();
    let mut protocol = g.protocol_data.to_string();
    let mut members = members;
    let mut kind = "classic";
    // DescribeGroups knows only classic groups: a KIP-848 group reads as
    // Dead there, so ask ConsumerGroupDescribe.
    if state == "Dead" {
        if let Some((s, assignor, m)) = describe_modern(session, coordinator, group)? {
            (state, protocol_type, protocol, members, kind) =
                (s, "consumer".into(), assignor, m, "consumer");
        }
    }
    let committed = committed(session, coordinator, group)?;
    if state == "Dead" && committed.is_empty() {
        return Err(ConsoleError::NotFound(format!(
            "unknown group {group:?} (no members and no committed offsets)"
        )));
    }
    let offsets = lag(session, &committed, &members)?;
    let total_lag = offsets.iter().filter_map(|o| o.lag).sum();
    Ok(GroupDetail {
        group_id: group.to_string(),
        coordinator,
        state,
        kind,
        protocol_type,
        protocol,
        members,
        offsets,
        total_lag,
    })
}

/// A KIP-848 consumer group's state, assignor and members (with their
/// current assignments), or `None` when the coordinator does not know it as
/// one or does not speak ConsumerGroupDescribe.
fn describe_modern(
    session: &mut Session,
    coordinator: i32,
    group: &str,
) -> Result<Option<(String, String, Vec<GroupMember>)>, ConsoleError> {
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![str_bytes(group).into()]);
    let resp = match session.send_to(coordinator, &req, CONSUMER_GROUP_DESCRIBE_VERSIONS) {
        Ok((_, r)) => r,
        Err(ConsoleError::Client {
            source: ClientError::UnsupportedApi { .. },
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(g) = resp
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == group)
    else {
        return Ok(None);
    };
    if g.error_code == GROUP_ID_NOT_FOUND || g.group_state.as_str() == "Dead" {
        return Ok(None);
    }
    if g.error_code != 0 {
        return Err(kafka_error(
            format!("group {group:?}"),
            g.error_code,
            g.error_message.as_ref(),
        ));
    }
    let members = g
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            instance_id: m.instance_id.as_ref().map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: m
                .assignment
                .topic_partitions
                .iter()
                .map(|tp| (tp.topic_name.to_string(), tp.partitions.clone()))
                .collect(),
        })
        .collect();
    Ok(Some((
        g.group_state.to_string(),
        g.assignor_name.to_string(),
        members,
    )))
}

/// The committed offsets of `group`, from its coordinator.
pub fn committed(
    session: &mut Session,
    coordinator: i32,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, ConsoleError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_topics(None);
    let (_, resp) = session.send_to(coordinator, &req, OFFSET_FETCH_VERSIONS)?;
    if resp.error_code != 0 {
        return Err(kafka_error(
            format!("committed offsets of {group:?}"),
            resp.error_code,
            None,
        ));
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Lag of every committed or assigned partition.
fn lag(
    session: &mut Session,
    committed: &BTreeMap<(String, i32), i64>,
    members: &[GroupMember],
) -> Result<Vec<PartitionLag>, ConsoleError> {
    let mut keys: BTreeSet<(String, i32)> = committed.keys().cloned().collect();
    for m in members {
        for (t, ps) in &m.assignment {
            keys.extend(ps.iter().map(|&p| (t.clone(), p)));
        }
    }
    let topics: BTreeSet<&str> = keys.iter().map(|(t, _)| t.as_str()).collect();
    let ends = if topics.is_empty() {
        BTreeMap::new()
    } else {
        let names: Vec<&str> = topics.into_iter().collect();
        let md = session.metadata(Some(&names))?;
        let mut led: Vec<Led> = Vec::new();
        for t in md.topics.iter().filter(|t| t.error_code == 0) {
            let Some(name) = t.name.as_ref() else {
                continue;
            };
            for p in partitions(t) {
                if keys.contains(&(name.to_string(), p.partition)) {
                    led.push(((name.to_string(), p.partition), p.leader));
                }
            }
        }
        offsets::ends(session, &led)?
    };
    Ok(keys
        .into_iter()
        .map(|k| {
            let c = committed.get(&k).copied();
            let e = ends.get(&k).copied();
            PartitionLag {
                lag: compute_lag(c, e),
                committed: c,
                end: e,
                topic: k.0,
                partition: k.1,
            }
        })
        .collect())
}

/// Kafka's lag: log end minus committed offset, never negative; unknown
/// without both (pure).
pub fn compute_lag(committed: Option<i64>, end: Option<i64>) -> Option<i64> {
    Some((end? - committed?).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_end_minus_committed() {
        assert_eq!(compute_lag(Some(3), Some(10)), Some(7));
        assert_eq!(compute_lag(Some(12), Some(10)), Some(0));
        assert_eq!(compute_lag(None, Some(10)), None);
        assert_eq!(compute_lag(Some(1), None), None);
    }
}
