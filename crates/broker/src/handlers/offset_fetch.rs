//! OffsetFetch (v1–v9): v1–v7 one group, v8+ several groups per request.
//! A partition without a committed offset answers offset -1; `topics` null
//! (v2+) answers every committed offset of the group. Pending
//! transactional offsets are never shown; with `require_stable` (v7+,
//! KIP-447) a partition that has one answers UNSTABLE_OFFSET_COMMIT (with
//! offset -1), per partition in every version as Kafka does, and the
//! client retries until the transaction ends.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::group::records::OffsetCommitValue;
use crate::group::GroupError;

/// One partition's committed offset (or why there is none), by topic.
type Fetched = BTreeMap<String, Vec<(i32, Result<Option<OffsetCommitValue>, GroupError>)>>;

fn fetch(
    ctx: &BrokerContext,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Fetched, GroupError> {
    let list = wanted.map(|ts| {
        ts.into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect()
    });
    let rows = ctx
        .groups
        .fetch_offsets_stable(group, list, require_stable)?;
    let mut out: Fetched = BTreeMap::new();
    for (t, p, v) in rows {
        out.entry(t).or_default().push((p, v));
    }
    Ok(out)
}

/// `(offset, leader epoch, metadata, error code)` of one partition.
fn values(
    v: &Result<Option<OffsetCommitValue>, GroupError>,
    version: i16,
) -> (i64, i32, StrBytes, i16) {
    match v {
        Ok(Some(v)) => (
            v.offset,
            if version >= 5 { v.leader_epoch } else { -1 },
            StrBytes::from_string(v.metadata.clone()),
            0,
        ),
        Ok(None) => (-1, -1, StrBytes::from_static_str(""), 0),
        Err(e) => (-1, -1, StrBytes::from_static_str(""), e.code()),
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    let require_stable = version >= 7 && req.require_stable;
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                // v9: a consumer group member sends its id and epoch.
                let checked = if version >= 9 {
                    ctx.groups.validate_offset_fetch(
                        &g.group_id.0,
                        g.member_id.as_deref(),
                        g.member_epoch,
                    )
                } else {
                    Ok(())
                };
                match checked.and_then(|()| fetch(ctx, &g.group_id.0, wanted, require_stable)) {
                    Err(e) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(e.code()),
                    Ok(rows) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(
                            rows.into_iter()
                                .map(|(t, ps)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(StrBytes::from_string(t)))
                                        .with_partitions(
                                            ps.iter()
                                                .map(|(p, v)| {
                                                    let (o, e, m, code) = values(v, version);
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(*p)
                                                        .with_committed_offset(o)
                                                        .with_committed_leader_epoch(e)
                                                        .with_metadata(Some(m))
                                                        .with_error_code(code)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let group = req.group_id;
    match fetch(ctx, &group.0, wanted.clone(), require_stable) {
        Ok(rows) => OffsetFetchResponse::default().with_topics(
            rows.into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, v)| {
                                    let (o, e, m, code) = values(v, version);
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(e)
                                        .with_metadata(Some(m))
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => {
            let _: &GroupId = &group;
            if version >= 2 {
                OffsetFetchResponse::default().with_error_code(e.code())
            } else {
                // v1 has no top-level error: every partition carries it.
                OffsetFetchResponse::default().with_topics(
                    wanted
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_error_code(e.code())
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
            }
        }
    }
}
