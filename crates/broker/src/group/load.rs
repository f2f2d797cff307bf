//! Loading one partition of `__consumer_offsets`: its log is replayed from
//! the log start into the groups it holds (classic group metadata,
//! consumer group records, committed offsets), as Kafka's coordinator
//! loader does when it becomes the partition's leader.
//!
//! Transactions: an offset commit in a transactional batch is pending for
//! the batch's producer ([`PendingTxnOffsets`]) until a control batch of
//! that producer (a COMMIT or ABORT marker) ends it; a transaction without
//! its marker yet stays pending after the load, so a coordinator that
//! takes over in the middle of a transaction neither loses its offsets nor
//! shows them early.

use std::collections::{HashMap, HashSet};

use sluice_record::{records, Batches, ProducerId};

use super::classic::{ClassicGroup, Member};
use super::consumer::{self, ConsumerGroup, ConsumerRecord};
use super::coordinator::GroupEntry;
use super::offsets::OffsetStore;
use super::records::{self as group_records, ControlRecord, RecordKey};
use super::txn_offsets::PendingTxnOffsets;
use crate::partition::Partition;

/// Replays one partition of `__consumer_offsets`.
pub(super) fn load_partition(
    part: &Partition,
    now: i64,
    // A group's session timeout (its override, else the broker's).
    session_timeout_ms: &dyn Fn(&str) -> i32,
) -> Result<HashMap<String, GroupEntry>, sluice_storage::StorageError> {
    let log = part.log();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut metadata: HashMap<String, Option<group_records::GroupMetadataValue>> = HashMap::new();
    let mut offsets: HashMap<String, OffsetStore> = HashMap::new();
    // Open transactions: pending offsets per group, and the groups each
    // producer has pending offsets in (a marker ends them all).
    let mut pending: HashMap<String, PendingTxnOffsets> = HashMap::new();
    let mut open: HashMap<ProducerId, HashSet<String>> = HashMap::new();
    // Consumer groups, replayed as their records come; `true` while the
    // group exists (a ConsumerGroupMetadata record after the last tombstone).
    let mut consumers: HashMap<String, (ConsumerGroup, bool)> = HashMap::new();
    while offset < end {
        let buf = log.read_to_vec(offset, 1 << 20)?;
        if buf.is_empty() {
            break;
        }
        let mut next = offset;
        for item in Batches::without_crc(&buf) {
            let Ok((pos, header)) = item else { break };
            next = header.next_offset();
            let batch = &buf[pos..pos + header.size()];
            let Ok(reader) = records(batch, 64 << 20) else {
                continue;
            };
            if header.is_control() {
                let producer = header.producer_id;
                for rec in reader.records() {
                    let Ok(rec) = rec else { break };
                    let marker = rec.key.map(group_records::decode_control_key);
                    let commit = match marker {
                        Some(Ok(ControlRecord::Commit)) => true,
                        Some(Ok(ControlRecord::Abort)) => false,
                        Some(Ok(ControlRecord::Other(_))) => continue,
                        None | Some(Err(_)) => {
                            tracing::warn!(
                                offset = rec.offset.value(),
                                "skipping undecodable control record"
                            );
                            continue;
                        }
                    };
                    for group in open.remove(&producer).into_iter().flatten() {
                        let Some(p) = pending.get_mut(&group) else {
                            continue;
                        };
                        p.complete(producer, commit, offsets.entry(group).or_default());
                    }
                }
                continue;
            }
            // Offsets of a transactional batch wait for its marker.
            let txn = (header.is_transactional() && header.has_producer_id())
                .then_some(header.producer_id);
            for rec in reader.records() {
                let Ok(rec) = rec else { break };
                let Some(key) = rec.key else { continue };
                match group_records::decode_key(key) {
                    Ok(RecordKey::Offset {
                        group,
                        topic,
                        partition,
                    }) => {
                        let at = rec.offset.value();
                        match rec.value.map(group_records::decode_offset_value) {
                            None => {
                                // A tombstone removes the committed offset
                                // and every pending one of the partition.
                                if let Some(p) = pending.get_mut(&group) {
                                    p.remove(&topic, partition);
                                }
                                offsets.entry(group).or_default().remove(&topic, partition);
                            }
                            Some(Ok(v)) => match txn {
                                Some(producer) => {
                                    pending
                                        .entry(group.clone())
                                        .or_default()
                                        .add(producer, topic, partition, v, at);
                                    open.entry(producer).or_default().insert(group);
                                }
                                None => offsets
                                    .entry(group)
                                    .or_default()
                                    .apply(topic, partition, v, at),
                            },
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "skipping undecodable offset commit record")
                            }
                        }
                    }
                    Ok(RecordKey::Group { group }) => {
                        match rec.value.map(group_records::decode_group_value) {
                            None => {
                                metadata.insert(group, None);
                            }
                            Some(Ok(v)) => {
                                metadata.insert(group, Some(v));
                            }
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "skipping undecodable group metadata record")
                            }
                        }
                    }
                    Ok(RecordKey::Consumer(key)) => {
                        match consumer::records::decode(&key, rec.value) {
                            Ok(Some(r)) => {
                                let (g, exists) =
                                    consumers.entry(key.group.clone()).or_insert_with(|| {
                                        (ConsumerGroup::new(&key.group, now), false)
                                    });
                                match &r {
                                    ConsumerRecord::GroupMetadata { .. } => *exists = true,
                                    ConsumerRecord::GroupTombstone => *exists = false,
                                    _ => {}
                                }
                                g.replay(r, now, session_timeout_ms(&key.group));
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "skipping undecodable consumer group record")
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "skipping record with unknown key"),
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    let mut groups = HashMap::new();
    let mut ids: Vec<String> = metadata.keys().cloned().collect();
    ids.extend(offsets.keys().cloned());
    ids.extend(
        pending
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(id, _)| id.clone()),
    );
    ids.extend(
        consumers
            .iter()
            .filter(|(_, (_, exists))| *exists)
            .map(|(id, _)| id.clone()),
    );
    ids.sort();
    ids.dedup();
    for id in ids {
        let store = offsets.remove(&id).unwrap_or_default();
        let txn_offsets = pending.remove(&id).unwrap_or_default();
        let consumer = consumers
            .remove(&id)
            .filter(|(_, exists)| *exists)
            .map(|(mut g, _)| {
                g.finish_loading(now, session_timeout_ms(&id));
                g
            });
        let group = match metadata.remove(&id).flatten() {
            Some(v) => {
                let protocol = v.protocol.clone();
                let members = v
                    .members
                    .into_iter()
                    .map(|m| Member {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: m.rebalance_timeout,
                        session_timeout_ms: m.session_timeout,
                        protocol_type: v.protocol_type.clone(),
                        protocols: protocol
                            .clone()
                            .map(|p| vec![(p, m.subscription)])
                            .unwrap_or_default(),
                        assignment: m.assignment,
                        awaiting_join: false,
                        awaiting_sync: false,
                        is_new: false,
                        last_heartbeat_ms: now,
                    })
                    .collect();
                ClassicGroup::restore(
                    id.clone(),
                    Some(v.protocol_type),
                    v.generation,
                    v.protocol,
                    v.leader,
                    if v.current_state_timestamp >= 0 {
                        v.current_state_timestamp
                    } else {
                        now
                    },
                    members,
                    now,
                )
            }
            None if store.is_empty() && txn_offsets.is_empty() && consumer.is_none() => continue,
            None => ClassicGroup::new(id.clone(), now),
        };
        groups.insert(
            id,
            GroupEntry {
                group,
                offsets: store,
                pending: txn_offsets,
                consumer,
            },
        );
    }
    Ok(groups)
}
