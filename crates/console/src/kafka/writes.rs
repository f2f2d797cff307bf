//! The writes the console makes when they are enabled: create a topic,
//! produce one record, and reset a group's committed offsets (planned
//! first, committed only on confirmation).

use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeGroupsRequest, OffsetCommitRequest, ProduceRequest,
};
use sluice_client::str_bytes;
use sluice_record::{BatchBuilder, CompressionType, Header, Timestamp};

use super::cluster::partitions;
use super::groups::{committed, coordinator};
use super::model::ResetRow;
use super::offsets::{self, Led};
use super::{kafka_error, Session};
use crate::ConsoleError;

const CREATE_TOPICS_VERSIONS: (i16, i16) = (2, 7);
/// Produce v3 (record batches) to v12 (v13 replaces names with topic ids).
const PRODUCE_VERSIONS: (i16, i16) = (3, 12);
/// OffsetCommit v2 to v8 (v9 is only for the new consumer protocol's members).
const OFFSET_COMMIT_VERSIONS: (i16, i16) = (2, 8);
const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);

/// A new topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's default.
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// Creates a topic (any broker forwards it to the controller).
pub fn create_topic(session: &mut Session, t: &NewTopic) -> Result<(), ConsoleError> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(session.timeout_ms())
        .with_topics(vec![CreatableTopic::default()
            .with_name(str_bytes(&t.name).into())
            .with_num_partitions(t.partitions)
            .with_replication_factor(t.replication_factor)
            .with_configs(
                t.configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(Some(str_bytes(v)))
                    })
                    .collect(),
            )]);
    let (_, resp) = session.send(&req, CREATE_TOPICS_VERSIONS)?;
    for r in resp.topics {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("creating topic {:?}", t.name),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

/// One record to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Produces `r` to `topic` with acks=all; returns its offset.
pub fn produce(session: &mut Session, topic: &str, r: &NewRecord) -> Result<i64, ConsoleError> {
    let md = session.metadata(Some(&[topic]))?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == 0)
        .ok_or_else(|| ConsoleError::NotFound(format!("unknown topic {topic:?}")))?;
    let leader = partitions(t)
        .into_iter()
        .find(|p| p.partition == r.partition)
        .ok_or_else(|| {
            ConsoleError::BadRequest(format!("topic {topic:?} has no partition {}", r.partition))
        })?
        .leader;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let headers: Vec<Header<'_>> = r
        .headers
        .iter()
        .map(|(k, v)| Header {
            key: k.as_bytes(),
            value: Some(v),
        })
        .collect();
    let mut b = BatchBuilder::new(CompressionType::None);
    b.append(
        Timestamp(now),
        r.key.as_deref(),
        r.value.as_deref(),
        &headers,
    )?;
    let batch = b.build()?;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(session.timeout_ms())
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(str_bytes(topic).into())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(r.partition)
                .with_records(Some(batch.into()))])]);
    let (_, resp) = session.send_to(leader, &req, PRODUCE_VERSIONS)?;
    let p = resp
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == r.partition)
        .ok_or_else(|| ConsoleError::Kafka {
            what: format!("producing to {topic}-{}", r.partition),
            error: "no answer for the partition".into(),
        })?;
    if p.error_code != 0 {
        return Err(kafka_error(
            format!("producing to {topic}-{}", r.partition),
            p.error_code,
            p.error_message.as_ref(),
        ));
    }
    Ok(p.base_offset)
}

/// Where to move a group's offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    /// Clamped into each partition's `[start, end]`, as Kafka's tool does.
    Offset(i64),
}

impl ResetTarget {
    /// The new offset of a partition holding `range` (pure).
    pub fn resolve(self, range: super::model::OffsetRange) -> i64 {
        match self {
            ResetTarget::Earliest => range.start,
            ResetTarget::Latest => range.end,
            ResetTarget::Offset(o) => o.clamp(range.start, range.end),
        }
    }
}

/// The plan of resetting `group`'s offsets on `topic` (every partition, or
/// one): what each committed offset is and would become. Refused while the
/// group has members, as Kafka's tool does.
pub fn plan_reset(
    session: &mut Session,
    group: &str,
    topic: &str,
    partition: Option<i32>,
    target: ResetTarget,
) -> Result<Vec<ResetRow>, ConsoleError> {
    let md = session.metadata(Some(&[topic]))?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == 0)
        .ok_or_else(|| ConsoleError::NotFound(format!("unknown topic {topic:?}")))?;
    let ps: Vec<_> = partitions(t)
        .into_iter()
        .filter(|p| partition.is_none_or(|want| want == p.partition))
        .collect();
    if ps.is_empty() {
        return Err(ConsoleError::BadRequest(format!(
            "topic {topic:?} has no partition {}",
            partition.unwrap_or(-1)
        )));
    }
    let coordinator = coordinator(session, group)?;
    ensure_inactive(session, coordinator, group)?;
    let current = committed(session, coordinator, group)?;
    let led: Vec<Led> = ps
        .iter()
        .map(|p| ((topic.to_string(), p.partition), p.leader))
        .collect();
    let ranges = offsets::ranges(session, &led)?;
    ps.iter()
        .map(|p| {
            let key = (topic.to_string(), p.partition);
            let range = ranges
                .get(&key)
                .copied()
                .ok_or_else(|| ConsoleError::Kafka {
                    what: format!("offsets of {topic}-{}", p.partition),
                    error: "the leader did not answer them".into(),
                })?;
            Ok(ResetRow {
                partition: p.partition,
                current: current.get(&key).copied(),
                new: target.resolve(range),
                range,
            })
        })
        .collect()
}

/// Commits a plan made by [`plan_reset`] (re-checking that the group has
/// no members).
pub fn commit_reset(
    session: &mut Session,
    group: &str,
    topic: &str,
    rows: &[ResetRow],
) -> Result<(), ConsoleError> {
    let coordinator = coordinator(session, group)?;
    ensure_inactive(session, coordinator, group)?;
    let req = OffsetCommitRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(str_bytes(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(str_bytes(topic).into())
            .with_partitions(
                rows.iter()
                    .map(|r| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(r.partition)
                            .with_committed_offset(r.new)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(str_bytes("")))
                    })
                    .collect(),
            )]);
    let (_, resp) = session.send_to(coordinator, &req, OFFSET_COMMIT_VERSIONS)?;
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(kafka_error(
                    format!(
                        "committing {topic}-{} for group {group:?}",
                        p.partition_index
                    ),
                    p.error_code,
                    None,
                ));
            }
        }
    }
    Ok(())
}

fn ensure_inactive(
    session: &mut Session,
    coordinator: i32,
    group: &str,
) -> Result<(), ConsoleError> {
    let req = DescribeGroupsRequest::default().with_groups(vec![str_bytes(group).into()]);
    let (_, resp) = session.send_to(coordinator, &req, DESCRIBE_GROUPS_VERSIONS)?;
    if let Some(g) = resp.groups.iter().find(|g| g.group_id.as_str() == group) {
        if !g.members.is_empty() {
            return Err(ConsoleError::BadRequest(format!(
                "group {group:?} has {} active member(s) (state {}); stop its consumers before resetting offsets",
                g.members.len(),
                g.group_state.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::model::OffsetRange;

    #[test]
    fn targets_resolve_within_the_log() {
        let r = OffsetRange { start: 10, end: 50 };
        assert_eq!(ResetTarget::Earliest.resolve(r), 10);
        assert_eq!(ResetTarget::Latest.resolve(r), 50);
        assert_eq!(ResetTarget::Offset(3).resolve(r), 10);
        assert_eq!(ResetTarget::Offset(30).resolve(r), 30);
        assert_eq!(ResetTarget::Offset(99).resolve(r), 50);
    }
}
