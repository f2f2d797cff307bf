//! Log start and end offsets of many partitions: one ListOffsets request
//! per leader and per kind (earliest, latest), however many partitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};
use sluice_client::str_bytes;

use super::model::OffsetRange;
use super::Session;
use crate::ConsoleError;

/// ListOffsets v1 (one offset per partition) and later.
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 10);
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

/// A partition and its leader.
pub type Led = ((String, i32), i32);

/// Start and end offsets of `partitions` (`(topic, partition)` with its
/// leader). Partitions without a leader or whose leader answers with an
/// error are left out.
pub fn ranges(
    session: &mut Session,
    partitions: &[Led],
) -> Result<BTreeMap<(String, i32), OffsetRange>, ConsoleError> {
    let start = list(session, partitions, EARLIEST)?;
    let end = list(session, partitions, LATEST)?;
    Ok(start
        .into_iter()
        .filter_map(|(k, s)| end.get(&k).map(|&e| (k, OffsetRange { start: s, end: e })))
        .collect())
}

/// End offsets (high watermarks) of `partitions`.
pub fn ends(
    session: &mut Session,
    partitions: &[Led],
) -> Result<BTreeMap<(String, i32), i64>, ConsoleError> {
    list(session, partitions, LATEST)
}

/// The earliest offset whose timestamp is at or after `timestamp` (ms) in
/// each partition; partitions with no such record are left out.
pub fn for_timestamp(
    session: &mut Session,
    partitions: &[Led],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, ConsoleError> {
    list(session, partitions, timestamp.max(0))
}

fn list(
    session: &mut Session,
    partitions: &[Led],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, ConsoleError> {
    let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for ((topic, partition), leader) in partitions {
        if *leader >= 0 {
            by_leader
                .entry(*leader)
                .or_default()
                .entry(topic.as_str())
                .or_default()
                .push(*partition);
        }
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(str_bytes(t).into())
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (_, resp) = session.send_to(leader, &req, LIST_OFFSETS_VERSIONS)?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}
