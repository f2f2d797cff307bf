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

use sluice_record::{records, Batches, ProducerId, Record};

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
    let mut replay = Replay::default();
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
                for rec in reader.records() {
                    let Ok(rec) = rec else { break };
                    replay.control(header.producer_id, &rec);
                }
                continue;
            }
            // Offsets of a transactional batch wait for its marker.
            let txn = (header.is_transactional() && header.has_producer_id())
                .then_some(header.producer_id);
            for rec in reader.records() {
                let Ok(rec) = rec else { break };
                replay.record(&rec, txn, now, session_timeout_ms);
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(replay.finish(now, session_timeout_ms))
}

/// What the records replayed so far say, group by group.
#[derive(Default)]
struct Replay {
    /// The last classic group metadata of each group (`None`: tombstone).
    metadata: HashMap<String, Option<group_records::GroupMetadataValue>>,
    offsets: HashMap<String, OffsetStore>,
    /// Open transactions: pending offsets per group, and the groups each
    /// producer has pending offsets in (a marker ends them all).
    pending: HashMap<String, PendingTxnOffsets>,
    open: HashMap<ProducerId, HashSet<String>>,
    /// Consumer groups, replayed as their records come; `true` while the
    /// group exists (a ConsumerGroupMetadata record after the last tombstone).
    consumers: HashMap<String, (ConsumerGroup, bool)>,
}

impl Replay {
    /// A control record of `producer`: a COMMIT or ABORT marker ends its
    /// pending offsets in every group.
    fn control(&mut self, producer: ProducerId, rec: &Record<'_>) {
        let commit = match rec.key.map(group_records::decode_control_key) {
            Some(Ok(ControlRecord::Commit)) => true,
            Some(Ok(ControlRecord::Abort)) => false,
            Some(Ok(ControlRecord::Other(_))) => return,
            None | Some(Err(_)) => {
                tracing::warn!(
                    offset = rec.offset.value(),
                    "skipping undecodable control record"
                );
                return;
            }
        };
        for group in self.open.remove(&producer).into_iter().flatten() {
            let Some(p) = self.pending.get_mut(&group) else {
                continue;
            };
            p.complete(producer, commit, self.offsets.entry(group).or_default());
        }
    }

    /// A data record; `txn` is the producer of a transactional batch.
    fn record(
        &mut self,
        rec: &Record<'_>,
        txn: Option<ProducerId>,
        now: i64,
        session_timeout_ms: &dyn Fn(&str) -> i32,
    ) {
        let Some(key) = rec.key else { return };
        match group_records::decode_key(key) {
            Ok(RecordKey::Offset {
                group,
                topic,
                partition,
            }) => self.offset(rec, txn, group, topic, partition),
            Ok(RecordKey::Group { group }) => {
                match rec.value.map(group_records::decode_group_value) {
                    None => {
                        self.metadata.insert(group, None);
                    }
                    Some(Ok(v)) => {
                        self.metadata.insert(group, Some(v));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "skipping undecodable group metadata record")
                    }
                }
            }
            Ok(RecordKey::Consumer(key)) => match consumer::records::decode(&key, rec.value) {
                Ok(Some(r)) => {
                    let (g, exists) = self
                        .consumers
                        .entry(key.group.clone())
                        .or_insert_with(|| (ConsumerGroup::new(&key.group, now), false));
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
            },
            Err(e) => tracing::warn!(error = %e, "skipping record with unknown key"),
        }
    }

    /// An offset commit record (a tombstone removes the committed offset
    /// and every pending one of the partition).
    fn offset(
        &mut self,
        rec: &Record<'_>,
        txn: Option<ProducerId>,
        group: String,
        topic: String,
        partition: i32,
    ) {
        let at = rec.offset.value();
        match rec.value.map(group_records::decode_offset_value) {
            None => {
                if let Some(p) = self.pending.get_mut(&group) {
                    p.remove(&topic, partition);
                }
                self.offsets
                    .entry(group)
                    .or_default()
                    .remove(&topic, partition);
            }
            Some(Ok(v)) => match txn {
                Some(producer) => {
                    self.pending
                        .entry(group.clone())
                        .or_default()
                        .add(producer, topic, partition, v, at);
                    self.open.entry(producer).or_default().insert(group);
                }
                None => self
                    .offsets
                    .entry(group)
                    .or_default()
                    .apply(topic, partition, v, at),
            },
            Some(Err(e)) => {
                tracing::warn!(error = %e, "skipping undecodable offset commit record")
            }
        }
    }

    /// The groups the log holds: every group with metadata, offsets,
    /// pending offsets or a live consumer group.
    fn finish(
        mut self,
        now: i64,
        session_timeout_ms: &dyn Fn(&str) -> i32,
    ) -> HashMap<String, GroupEntry> {
        let mut ids: Vec<String> = self.metadata.keys().cloned().collect();
        ids.extend(self.offsets.keys().cloned());
        ids.extend(
            self.pending
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .map(|(id, _)| id.clone()),
        );
        ids.extend(
            self.consumers
                .iter()
                .filter(|(_, (_, exists))| *exists)
                .map(|(id, _)| id.clone()),
        );
        ids.sort();
        ids.dedup();
        let mut groups = HashMap::new();
        for id in ids {
            let store = self.offsets.remove(&id).unwrap_or_default();
            let txn_offsets = self.pending.remove(&id).unwrap_or_default();
            let consumer = self
                .consumers
                .remove(&id)
                .filter(|(_, exists)| *exists)
                .map(|(mut g, _)| {
                    g.finish_loading(now, session_timeout_ms(&id));
                    g
                });
            let group = match self.metadata.remove(&id).flatten() {
                Some(v) => restore_classic(&id, v, now),
                None if store.is_empty() && txn_offsets.is_empty() && consumer.is_none() => {
                    continue
                }
                None => ClassicGroup::new(id.clone(), now),
            };
            let entry = GroupEntry {
                group,
                offsets: store,
                pending: txn_offsets,
                consumer,
            };
            groups.insert(id, entry);
        }
        groups
    }
}

/// A classic group as its last metadata record left it; its members count
/// as heard from at `now`.
fn restore_classic(id: &str, v: group_records::GroupMetadataValue, now: i64) -> ClassicGroup {
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
    let state_timestamp = if v.current_state_timestamp >= 0 {
        v.current_state_timestamp
    } else {
        now
    };
    ClassicGroup::restore(
        id.to_string(),
        Some(v.protocol_type),
        v.generation,
        v.protocol,
        v.leader,
        state_timestamp,
        members,
        now,
    )
}
