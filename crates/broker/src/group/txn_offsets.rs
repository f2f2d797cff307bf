//! Transactional offsets of one group that wait for their transaction to
//! end (pure, no I/O): Kafka's pending transactional offset commits
//! (KIP-98 TxnOffsetCommit).
//!
//! A TxnOffsetCommit is written to `__consumer_offsets` at once, in a
//! transactional batch of the producer, but its offsets stay here, keyed by
//! producer id, until the transaction's marker is written to the same
//! partition: a COMMIT makes them the committed offsets
//! ([`PendingTxnOffsets::complete`]), an ABORT drops them. Meanwhile
//! OffsetFetch does not show them, and with `require_stable` (KIP-447)
//! answers UNSTABLE_OFFSET_COMMIT for their partitions
//! ([`PendingTxnOffsets::is_pending`]).
//!
//! Memory bound: an entry exists only for a partition some TxnOffsetCommit
//! carried (or a transactional record the loader replayed), and a later
//! commit of the same producer and partition replaces it; so one open
//! transaction holds at most what its requests carried, and each request is
//! bounded by the broker's frame limit (`socket.request.max.bytes`) and
//! `offset.metadata.max.bytes` per partition. Everything of a producer is
//! dropped when its marker comes (the transaction coordinator aborts a
//! transaction after `transaction.timeout.ms`, so none stays open forever),
//! and a partition's entries go with its tombstone (OffsetDelete,
//! DeleteGroups, a deleted topic).

use std::collections::{BTreeMap, BTreeSet};

use sluice_record::ProducerId;

use super::offsets::{OffsetStore, PartitionKey};
use super::records::OffsetCommitValue;

/// One pending transactional offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOffset {
    pub value: OffsetCommitValue,
    /// The offset of its record in `__consumer_offsets`.
    pub record_offset: i64,
}

/// What [`PendingTxnOffsets::complete`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completed {
    /// Offsets that became the committed offset of their partition.
    pub committed: usize,
    /// Offsets dropped: the transaction aborted, or a plain commit of the
    /// same partition is later in the log.
    pub dropped: usize,
}

/// The pending transactional offsets of one group, by producer id. A
/// producer stays here (with an empty map) when tombstones removed all its
/// offsets: its transaction is still open until the marker (Kafka keeps it
/// in `openTransactionsByGroup`), which keeps the group from expiring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingTxnOffsets {
    by_producer: BTreeMap<ProducerId, BTreeMap<PartitionKey, PendingOffset>>,
}

impl PendingTxnOffsets {
    /// Records a transactional offset of `producer` whose record is at
    /// `record_offset` (a later one of the same partition replaces it).
    pub fn add(
        &mut self,
        producer: ProducerId,
        topic: String,
        partition: i32,
        value: OffsetCommitValue,
        record_offset: i64,
    ) {
        self.by_producer.entry(producer).or_default().insert(
            (topic, partition),
            PendingOffset {
                value,
                record_offset,
            },
        );
    }

    /// Whether no transaction of this group is open.
    pub fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }

    /// The producers with an open transaction in this group.
    pub fn producers(&self) -> impl Iterator<Item = ProducerId> + '_ {
        self.by_producer.keys().copied()
    }

    /// Whether `producer` has an open transaction in this group.
    pub fn has_producer(&self, producer: ProducerId) -> bool {
        self.by_producer.contains_key(&producer)
    }

    /// Whether some open transaction holds an offset of the partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn is_pending(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.by_producer.values().any(|m| m.contains_key(&key))
    }

    /// The pending offset of `producer` for a partition.
    pub fn get(&self, producer: ProducerId, topic: &str, partition: i32) -> Option<&PendingOffset> {
        self.by_producer
            .get(&producer)?
            .get(&(topic.to_string(), partition))
    }

    /// Every partition some open transaction holds an offset of.
    pub fn partitions(&self) -> BTreeSet<PartitionKey> {
        self.by_producer
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect()
    }

    /// How many pending offsets there are (all producers).
    pub fn len(&self) -> usize {
        self.by_producer.values().map(BTreeMap::len).sum()
    }

    /// A tombstone of the partition was written (or replayed): every
    /// producer's pending offset of it goes, as Kafka's replay of an
    /// offset tombstone removes them. True if one was there.
    pub fn remove(&mut self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        let mut removed = false;
        for m in self.by_producer.values_mut() {
            removed |= m.remove(&key).is_some();
        }
        removed
    }

    /// The transaction of `producer` ended: with `commit` its offsets become
    /// the committed ones in `committed`, each unless the partition's
    /// committed offset has a later record (a plain OffsetCommit after the
    /// TxnOffsetCommit: Kafka keeps the most recent record, so compaction
    /// of the log cannot bring back an older one); without, they are
    /// dropped. Nothing happens for a producer with nothing open here.
    pub fn complete(
        &mut self,
        producer: ProducerId,
        commit: bool,
        committed: &mut OffsetStore,
    ) -> Completed {
        let mut done = Completed::default();
        let Some(offsets) = self.by_producer.remove(&producer) else {
            return done;
        };
        for ((topic, partition), p) in offsets {
            let later_plain = committed
                .record_offset(&topic, partition)
                .is_some_and(|existing| existing >= p.record_offset);
            if commit && !later_plain {
                committed.apply(topic, partition, p.value, p.record_offset);
                done.committed += 1;
            } else {
                done.dropped += 1;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: ProducerId = ProducerId(1);
    const P2: ProducerId = ProducerId(2);

    fn v(offset: i64) -> OffsetCommitValue {
        OffsetCommitValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            expire_timestamp: None,
        }
    }

    fn committed_offset(s: &OffsetStore, topic: &str, partition: i32) -> Option<i64> {
        s.get(topic, partition).map(|v| v.offset)
    }

    #[test]
    fn commit_moves_the_producers_offsets_into_the_committed_ones() {
        let mut pending = PendingTxnOffsets::default();
        let mut committed = OffsetStore::default();
        pending.add(P1, "t".into(), 0, v(10), 5);
        pending.add(P1, "t".into(), 1, v(11), 6);
        pending.add(P2, "t".into(), 0, v(20), 7);
        assert_eq!(committed_offset(&committed, "t", 0), None);

        let done = pending.complete(P1, true, &mut committed);
        assert_eq!(
            done,
            Completed {
                committed: 2,
                dropped: 0
            }
        );
        assert_eq!(committed_offset(&committed, "t", 0), Some(10));
        assert_eq!(committed_offset(&committed, "t", 1), Some(11));
        assert_eq!(committed.record_offset("t", 1), Some(6));
        // P2's transaction is still open.
        assert!(!pending.has_producer(P1));
        assert!(pending.has_producer(P2));
        assert!(pending.is_pending("t", 0));
        assert!(!pending.is_pending("t", 1));
        // A second marker of P1 finds nothing.
        assert_eq!(
            pending.complete(P1, true, &mut committed),
            Completed::default()
        );
    }

    #[test]
    fn abort_drops_the_producers_offsets_and_keeps_the_committed_ones() {
        let mut pending = PendingTxnOffsets::default();
        let mut committed = OffsetStore::default();
        committed.apply("t".into(), 0, v(3), 1);
        pending.add(P1, "t".into(), 0, v(10), 5);
        pending.add(P1, "u".into(), 0, v(10), 5);
        let done = pending.complete(P1, false, &mut committed);
        assert_eq!(
            done,
            Completed {
                committed: 0,
                dropped: 2
            }
        );
        assert_eq!(committed_offset(&committed, "t", 0), Some(3));
        assert_eq!(committed_offset(&committed, "u", 0), None);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_later_plain_commit_wins_over_an_earlier_transactional_one() {
        let mut pending = PendingTxnOffsets::default();
        let mut committed = OffsetStore::default();
        committed.apply("t".into(), 0, v(1), 2);
        pending.add(P1, "t".into(), 0, v(10), 5); // after the plain one at 2
        pending.add(P1, "t".into(), 1, v(11), 5);
        committed.apply("t".into(), 1, v(7), 9); // a plain commit after it
        let done = pending.complete(P1, true, &mut committed);
        assert_eq!(
            done,
            Completed {
                committed: 1,
                dropped: 1
            }
        );
        assert_eq!(committed_offset(&committed, "t", 0), Some(10));
        assert_eq!(committed_offset(&committed, "t", 1), Some(7));
    }

    #[test]
    fn pending_partitions_are_what_require_stable_reports() {
        let mut pending = PendingTxnOffsets::default();
        assert!(!pending.is_pending("t", 0));
        pending.add(P1, "t".into(), 0, v(1), 1);
        pending.add(P2, "u".into(), 3, v(1), 2);
        assert!(pending.is_pending("t", 0));
        assert!(pending.is_pending("u", 3));
        assert!(!pending.is_pending("t", 3));
        assert_eq!(
            pending.partitions().into_iter().collect::<Vec<_>>(),
            vec![("t".to_string(), 0), ("u".to_string(), 3)]
        );
        assert_eq!(pending.len(), 2);
        // A later commit of the same partition by the same producer replaces it.
        pending.add(P1, "t".into(), 0, v(4), 3);
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.get(P1, "t", 0).map(|p| p.value.offset), Some(4));
    }

    #[test]
    fn a_tombstone_removes_the_partition_of_every_producer_but_keeps_them_open() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(P1, "t".into(), 0, v(1), 1);
        pending.add(P2, "t".into(), 0, v(2), 2);
        pending.add(P2, "t".into(), 1, v(2), 2);
        assert!(pending.remove("t", 0));
        assert!(!pending.remove("t", 0));
        assert!(!pending.is_pending("t", 0));
        assert!(pending.is_pending("t", 1));
        assert!(pending.has_producer(P1), "P1's transaction is still open");
        assert!(!pending.is_empty());
        let mut committed = OffsetStore::default();
        pending.complete(P1, true, &mut committed);
        assert_eq!(committed_offset(&committed, "t", 0), None);
    }
}
