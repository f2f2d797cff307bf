//! Committed offsets of one group (pure, no I/O).
//!
//! Each offset remembers where its record is in `__consumer_offsets`
//! ([`OffsetStore::record_offset`]): when a transaction commits, its
//! pending offsets ([`super::txn_offsets`]) replace a committed offset only
//! if their record is later in the log, as Kafka orders a transactional
//! commit against a plain commit of the same partition.

use std::collections::BTreeMap;

use super::records::OffsetCommitValue;

/// `(topic, partition)`.
pub type PartitionKey = (String, i32);

/// One committed offset and the position of its record in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Committed {
    value: OffsetCommitValue,
    /// The record's offset in `__consumer_offsets` (on load), or a stamp
    /// that orders it the same way against every record of the log (a
    /// commit applied before its batch is written: the log end offset
    /// when it was applied, see [`super::append::AppendQueue::order_stamp`]).
    record_offset: i64,
}

/// The committed offsets of one group.
#[derive(Clone, Debug, Default)]
pub struct OffsetStore {
    committed: BTreeMap<PartitionKey, Committed>,
}

impl OffsetStore {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetCommitValue> {
        self.committed
            .get(&(topic.to_string(), partition))
            .map(|c| &c.value)
    }

    /// Where the committed offset's record is in the log (see [`Committed`]).
    pub fn record_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.committed
            .get(&(topic.to_string(), partition))
            .map(|c| c.record_offset)
    }

    pub fn all(&self) -> impl Iterator<Item = (&PartitionKey, &OffsetCommitValue)> {
        self.committed.iter().map(|(k, c)| (k, &c.value))
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    pub fn len(&self) -> usize {
        self.committed.len()
    }

    /// Records a commit (or replays one on load) whose record is at
    /// `record_offset` in the log.
    pub fn apply(
        &mut self,
        topic: String,
        partition: i32,
        value: OffsetCommitValue,
        record_offset: i64,
    ) {
        self.committed.insert(
            (topic, partition),
            Committed {
                value,
                record_offset,
            },
        );
    }

    /// Removes an offset (tombstone written or replayed).
    pub fn remove(&mut self, topic: &str, partition: i32) -> bool {
        self.committed
            .remove(&(topic.to_string(), partition))
            .is_some()
    }

    /// Offsets that have expired at `now_ms` (Kafka's KIP-211 rules):
    /// - an explicit expire timestamp (v1 commits) wins;
    /// - an Empty group with a protocol type expires all its offsets
    ///   `retention_ms` after it became empty (`empty_since_ms`);
    /// - a group without members or protocol (standalone commits) expires
    ///   each offset `retention_ms` after its commit;
    /// - a live `consumer` group expires only offsets of topics it no longer
    ///   subscribes to (`subscribed`), by commit time.
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        empty_since_ms: Option<i64>,
        subscribed: Option<&[String]>,
        has_members: bool,
    ) -> Vec<PartitionKey> {
        self.committed
            .iter()
            .filter(|((topic, _), c)| {
                let v = &c.value;
                if let Some(expire) = v.expire_timestamp {
                    return now_ms >= expire;
                }
                let base = if has_members {
                    match subscribed {
                        Some(topics) if !topics.contains(topic) => v.commit_timestamp,
                        _ => return false,
                    }
                } else {
                    match empty_since_ms {
                        Some(since) => since.max(v.commit_timestamp),
                        None => v.commit_timestamp,
                    }
                };
                now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(offset: i64, ts: i64) -> OffsetCommitValue {
        OffsetCommitValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: ts,
            expire_timestamp: None,
        }
    }

    #[test]
    fn live_consumer_group_keeps_subscribed_offsets() {
        let mut s = OffsetStore::default();
        s.apply("a".into(), 0, v(5, 0), 0);
        s.apply("b".into(), 0, v(6, 0), 1);
        let subscribed = vec!["a".to_string()];
        let gone = s.expired(1_000_000, 10, None, Some(&subscribed), true);
        assert_eq!(gone, vec![("b".to_string(), 0)]);
    }

    #[test]
    fn empty_group_expires_after_retention_from_becoming_empty() {
        let mut s = OffsetStore::default();
        s.apply("a".into(), 0, v(5, 100), 0);
        assert!(s.expired(1_000, 1_000, Some(500), None, false).is_empty());
        assert_eq!(s.expired(1_500, 1_000, Some(500), None, false).len(), 1);
    }

    #[test]
    fn explicit_expire_timestamp_wins() {
        let mut s = OffsetStore::default();
        let mut x = v(1, 0);
        x.expire_timestamp = Some(50);
        s.apply("a".into(), 0, x, 0);
        assert!(s.expired(49, i64::MAX, None, None, true).is_empty());
        assert_eq!(s.expired(50, i64::MAX, None, None, true).len(), 1);
    }
}
