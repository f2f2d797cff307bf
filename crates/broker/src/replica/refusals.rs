//! Idempotent batches this leader refused because of a storage failure,
//! so that the batches a producer pipelined behind them are refused the
//! same way instead of with OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! Why: a producer keeps up to five requests in flight per partition. When
//! batch *n* fails on a full disk (KAFKA_STORAGE_ERROR, retriable, "not
//! persisted"), batches *n+1..* arrive with a sequence gap. Answering them
//! OUT_OF_ORDER_SEQUENCE_NUMBER makes librdkafka bump the producer epoch
//! and renumber every unacknowledged message of every partition; messages
//! already in the log but still waiting for `acks=all` replication are
//! then written again under the new epoch — duplicates the nemesis found.
//! Kafka never answers that way here because it takes the log directory
//! offline, so the later batches also get KAFKA_STORAGE_ERROR. Sluice keeps
//! the directory online (the disk may free up), so it remembers the refused
//! sequence and answers the batches behind it with the same storage error;
//! the producer then retries them in order, without a new epoch.
//!
//! Bounded: at most [`MAX_PRODUCERS`] entries per partition (the oldest
//! half is dropped when full); an entry is removed once that producer's
//! batch at the refused sequence is appended.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use sluice_record::{BatchHeader, ProducerId};

/// Producers remembered per partition.
pub const MAX_PRODUCERS: usize = 1024;

/// Producer id → the first sequence of its batch refused by storage.
#[derive(Default)]
pub struct StorageRefusals {
    refused: Mutex<BTreeMap<ProducerId, i32>>,
    /// Whether `refused` may hold anything: every append asks, and almost
    /// always the answer is no, without taking the lock.
    any: AtomicBool,
}

impl StorageRefusals {
    /// Notes every idempotent batch of `records` (a produce request's
    /// bytes for one partition) as refused by a storage failure.
    pub fn note_refused(&self, records: &[u8]) {
        let mut refused = self.refused.lock();
        for h in headers(records) {
            if !h.has_producer_id() {
                continue;
            }
            if refused.len() >= MAX_PRODUCERS && !refused.contains_key(&h.producer_id) {
                let drop: Vec<ProducerId> =
                    refused.keys().take(MAX_PRODUCERS / 2).copied().collect();
                for k in drop {
                    refused.remove(&k);
                }
            }
            // The earliest refused sequence is where the producer resumes.
            refused
                .entry(h.producer_id)
                .and_modify(|s| *s = (*s).min(h.base_sequence))
                .or_insert(h.base_sequence);
            self.any.store(true, Ordering::Release);
        }
    }

    /// Forgets the refusals of producers whose batches in `records` were
    /// appended.
    pub fn note_appended(&self, records: &[u8]) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut refused = self.refused.lock();
        for h in headers(records) {
            if h.has_producer_id() {
                refused.remove(&h.producer_id);
            }
        }
        if refused.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }

    /// True when the sequence `expected` of `producer_id` is missing
    /// because this leader refused it for a storage failure.
    pub fn explains_gap(&self, producer_id: ProducerId, expected: i32) -> bool {
        self.any.load(Ordering::Acquire) && self.refused.lock().get(&producer_id) == Some(&expected)
    }
}

/// The headers of the whole batches in `records` (stops at anything that
/// does not parse: the append already validated or refused those bytes).
fn headers(mut records: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    std::iter::from_fn(move || {
        let h = BatchHeader::parse(records).ok()?;
        let size = h.size();
        if size == 0 || size > records.len() {
            return None;
        }
        records = &records[size..];
        Some(h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, Timestamp};

    fn batch(pid: i64, seq: i32) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None).producer(
            ProducerId(pid),
            ProducerEpoch(0),
            seq,
        );
        b.append(Timestamp(1), None, Some(b"v"), &[]).unwrap();
        b.build().unwrap()
    }

    #[test]
    fn a_gap_left_by_a_storage_refusal_is_explained_until_the_retry_lands() {
        let r = StorageRefusals::default();
        assert!(!r.explains_gap(ProducerId(7), 10));
        let mut two = batch(7, 10);
        two.extend(batch(8, 3));
        r.note_refused(&two);
        assert!(r.explains_gap(ProducerId(7), 10));
        assert!(r.explains_gap(ProducerId(8), 3));
        assert!(
            !r.explains_gap(ProducerId(7), 11),
            "another gap is a real one"
        );
        r.note_refused(&batch(7, 11));
        assert!(
            r.explains_gap(ProducerId(7), 10),
            "the earliest refusal counts"
        );
        r.note_appended(&batch(7, 10));
        assert!(!r.explains_gap(ProducerId(7), 10));
        assert!(r.explains_gap(ProducerId(8), 3));
    }

    #[test]
    fn stays_bounded() {
        let r = StorageRefusals::default();
        for pid in 0..(3 * MAX_PRODUCERS as i64) {
            r.note_refused(&batch(pid, 0));
        }
        assert!(r.refused.lock().len() <= MAX_PRODUCERS);
        assert!(r.explains_gap(ProducerId(3 * MAX_PRODUCERS as i64 - 1), 0));
    }
}
