//! Loading one `__transaction_state` partition (Kafka's
//! `TransactionStateManager.loadTransactionMetadata`): its records, in
//! log order, become the transactional ids the partition holds; the last
//! record of an id wins and a tombstone removes it.
//!
//! As Kafka does: a key of another record type is skipped (a leftover of
//! an aborted upgrade), but a value that cannot be read fails the load,
//! since skipping it could forget a transaction that still needs its
//! markers. Ids left in PrepareCommit or PrepareAbort are the ones whose
//! markers the new coordinator must finish writing.

use std::collections::BTreeMap;

use super::metadata::TransactionMetadata;
use super::records;
use super::state::TransactionState;
use crate::coordinator::codec::RecordFormatError;

/// What a partition holds.
#[derive(Debug, Default)]
pub struct Loaded {
    pub transactions: BTreeMap<String, TransactionMetadata>,
    /// Records skipped for a key of another type.
    pub skipped: usize,
}

impl Loaded {
    /// The ids whose transaction ended but whose markers may not all be
    /// written: the coordinator writes them again and completes.
    pub fn pending_markers(&self) -> impl Iterator<Item = &TransactionMetadata> {
        self.transactions.values().filter(|m| {
            matches!(
                m.state,
                TransactionState::PrepareCommit | TransactionState::PrepareAbort
            )
        })
    }
}

/// A record that failed the load, and where.
#[derive(Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The record's position in what was given.
    pub index: usize,
    pub transactional_id: String,
    pub error: RecordFormatError,
}

/// Replays `records` — `(key, value)` in log order, `None` a tombstone.
pub fn load<'a>(
    records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Result<Loaded, LoadError> {
    let mut replay = Replay::default();
    for (key, value) in records {
        replay.apply(key, value)?;
    }
    Ok(replay.finish())
}

/// [`load`] one record at a time, so a partition is replayed as it is
/// read (memory: the ids it holds, not its records).
#[derive(Debug, Default)]
pub struct Replay {
    out: Loaded,
    index: usize,
}

impl Replay {
    /// The next record in log order (`None` value: a tombstone).
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), LoadError> {
        let index = self.index;
        self.index += 1;
        let id = match records::decode_key(key) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(index, error = %e, "skipping a __transaction_state record with an unknown key");
                self.out.skipped += 1;
                return Ok(());
            }
        };
        let Some(value) = value else {
            self.out.transactions.remove(&id);
            return Ok(());
        };
        match records::decode_value(value) {
            Ok(v) => {
                let m = TransactionMetadata::from_log(&id, &v);
                self.out.transactions.insert(id, m);
                Ok(())
            }
            Err(error) => Err(LoadError {
                index,
                transactional_id: id,
                error,
            }),
        }
    }

    pub fn finish(self) -> Loaded {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::metadata::{TransactionVersion, TxnPartitions, NO_PRODUCER_ID};
    use sluice_record::ProducerId;

    #[test]
    fn the_last_record_wins_tombstones_remove_and_markers_are_resumed() {
        let mut a = TransactionMetadata::new("a", ProducerId(1), 1000, 0);
        let mut log: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut write = |m: &mut TransactionMetadata, t: crate::txn::Transition| {
            log.push((
                records::key(&m.transactional_id),
                Some(records::encode_value(&t.value, 1)),
            ));
            m.complete(&t).unwrap();
        };
        let t = a.prepare_increment_producer_epoch(1000, None, 1).unwrap();
        write(&mut a, t);
        let added = TxnPartitions::from([("t".to_string(), [0].into())]);
        let t = a
            .prepare_add_partitions(&added, 2, TransactionVersion(2))
            .unwrap();
        write(&mut a, t);
        let t = a
            .prepare_abort_or_commit(
                TransactionState::PrepareCommit,
                TransactionVersion(2),
                NO_PRODUCER_ID,
                3,
                false,
            )
            .unwrap();
        write(&mut a, t);
        let mut b = TransactionMetadata::new("b", ProducerId(2), 1000, 0);
        let t = b.prepare_increment_producer_epoch(1000, None, 1).unwrap();
        write(&mut b, t);
        log.push((records::key("b"), None));
        log.push((vec![0, 9, 0, 0], Some(vec![1, 2, 3])));

        let loaded = load(log.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))).unwrap();
        assert_eq!(loaded.skipped, 1);
        assert_eq!(loaded.transactions.keys().collect::<Vec<_>>(), ["a"]);
        let la = &loaded.transactions["a"];
        assert_eq!(
            (la.state, la.producer_epoch, &la.partitions),
            (a.state, a.producer_epoch, &a.partitions)
        );
        let resume: Vec<_> = loaded
            .pending_markers()
            .map(|m| m.transactional_id.as_str())
            .collect();
        assert_eq!(resume, ["a"]);
    }

    #[test]
    fn an_unreadable_value_fails_the_load() {
        let key = records::key("a");
        let err = load([(key.as_slice(), Some([0u8, 7].as_slice()))]).unwrap_err();
        assert_eq!(err.transactional_id, "a");
        assert!(matches!(
            err.error,
            RecordFormatError::UnsupportedVersion { version: 7, .. }
        ));
    }
}
