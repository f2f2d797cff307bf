//! The transaction side of a segment: its aborted-transaction index, and
//! the walk over its batches that producer-state replay and index rebuilds
//! need (every header, and the record of each control batch: the header
//! alone cannot tell an ABORT from a COMMIT).

use super::*;
use crate::producer_state::ProducerBatch;

/// Largest control batch read back during replay; a marker is about 80
/// bytes, so anything this big is not one (it is skipped, as Kafka skips
/// control records it does not know).
const MAX_CONTROL_BATCH: usize = 1 << 20;

impl LogSegment {
    /// The segment's `.txnindex`.
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }

    pub fn txn_index_path(&self) -> PathBuf {
        self.paths.txn_index.clone()
    }

    /// Calls `f` with every whole batch whose last offset is `>= from`, in
    /// order: its header and, for a control batch of a producer, what its
    /// record says (`None` if it cannot be read: a damaged or oversized
    /// batch is logged and passed without it).
    pub(crate) fn for_each_producer_batch_from(
        self: &Arc<Self>,
        from: Offset,
        mut f: impl FnMut(ProducerBatch),
    ) -> Result<(), StorageError> {
        let size = self.size();
        let lp = self.log_path();
        let Some((mut pos, _, log)) = self.translate_offset(from)? else {
            return Ok(());
        };
        let mut buf = Vec::new();
        while pos + BATCH_HEADER_SIZE as u64 <= size {
            let h = Self::header_at(&*log, pos, &lp)?;
            if h.size() < BATCH_HEADER_SIZE || pos + h.size() as u64 > size {
                break;
            }
            let control = if h.is_control() && h.has_producer_id() {
                self.read_control(&*log, pos, &h, &mut buf)?
            } else {
                None
            };
            f(ProducerBatch { header: h, control });
            pos += h.size() as u64;
        }
        Ok(())
    }

    fn read_control(
        &self,
        log: &dyn FileHandle,
        pos: u64,
        h: &BatchHeader,
        buf: &mut Vec<u8>,
    ) -> Result<Option<sluice_record::ControlBatch>, StorageError> {
        let lp = self.log_path();
        if h.size() > MAX_CONTROL_BATCH {
            tracing::warn!(segment = %lp.display(), offset = h.base_offset.0, size = h.size(), "control batch too large to be a transaction marker; skipped");
            return Ok(None);
        }
        buf.resize(h.size(), 0);
        read_exact_at(log, buf, pos).ctx("read segment", &lp)?;
        match sluice_record::read_control_batch(buf, MAX_CONTROL_BATCH) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                tracing::warn!(segment = %lp.display(), offset = h.base_offset.0, error = %e, "unreadable control batch; skipped");
                Ok(None)
            }
        }
    }
}
