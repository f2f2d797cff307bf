//! Transactions in the log (KIP-98): the markers a partition leader writes
//! for the transaction coordinator, the aborted-transaction index of each
//! segment, the first unstable offset and the completed transactions that
//! wait for the high watermark, and the aborted transactions a
//! read_committed fetch is told about.
//!
//! Invariants:
//! - an ABORT marker's index entry is written to the segment the marker
//!   goes to, before the marker (undone if the log write fails), so no
//!   marker in the log lacks its entry; recovery rebuilds the index of
//!   every recovered segment (and of any whose index does not read back)
//!   by replaying the markers, from a producer snapshot at or below it;
//! - the first unstable offset and the smallest unreplicated marker are
//!   mirrored in atomics after every change of the producer state under
//!   the state lock, so readers (fetch, ListOffsets, the high watermark's
//!   movers) need no lock;
//! - a marker whose transaction the high watermark has passed is stable:
//!   [`Log::on_high_watermark_updated`] is called by whoever moves the
//!   high watermark, before readers can see the new one.
//!
//! Where this differs from Kafka: the index is read from its file per
//! query (nothing of it is cached but its length), and the snapshot of the
//! producer state carries every retained batch (see `producer_state`).

use sluice_record::{
    build_end_txn_marker_batch, read_control_batch, ControlRecordType, EndTransactionMarker,
    ProducerEpoch,
};

use super::*;
use crate::producer_state::{
    AppendOrigin, PreparedAppend, ProducerBatch, Verification, VerificationGuard,
};
use crate::txn_index::AbortedTxn;

/// Decompression bound when a control batch of an append is read (a
/// marker is about 80 bytes).
const MAX_CONTROL_DECOMPRESSED: usize = 1 << 20;

/// Sentinel of the atomics below: none.
const NONE: i64 = i64::MAX;

/// The producer batches of one append, with what each control batch's
/// record says. A client may write neither control batches nor idempotent
/// batches without a sequence (Kafka's `LogValidator`, INVALID_RECORD).
pub(super) fn producer_batches<'a>(
    headers: &[(usize, BatchHeader)],
    bytes: impl Fn(usize, usize) -> &'a [u8],
    origin: AppendOrigin,
) -> Result<Vec<ProducerBatch>, StorageError> {
    let mut out = Vec::new();
    for (pos, h) in headers {
        if origin == AppendOrigin::Client {
            if h.is_control() {
                return Err(StorageError::InvalidRecord(
                    "clients are not allowed to write control records".into(),
                ));
            }
            if h.has_producer_id() && h.base_sequence < 0 {
                return Err(StorageError::InvalidRecord(format!(
                    "invalid sequence number {} in a record batch of producer {}",
                    h.base_sequence, h.producer_id.0
                )));
            }
        }
        if !h.has_producer_id() {
            continue;
        }
        let control = if h.is_control() {
            Some(read_control_batch(
                bytes(*pos, h.size()),
                MAX_CONTROL_DECOMPRESSED,
            )?)
        } else {
            None
        };
        out.push(ProducerBatch {
            header: *h,
            control,
        });
    }
    Ok(out)
}

/// One end-of-transaction marker, as WriteTxnMarkers asks a partition
/// leader to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
    /// COMMIT or ABORT.
    pub control_type: ControlRecordType,
    /// The transaction's protocol version (2: KIP-890 part 2).
    pub transaction_version: i16,
}

impl Log {
    /// Writes `marker`, the COMMIT or ABORT of its producer's transaction, as
    /// this partition's leader (what WriteTxnMarkers asks of a leader), in
    /// `leader_epoch`. The coordinator's rules apply: `producer_epoch` must
    /// not be older than the producer's (with `transaction_version` >= 2,
    /// newer, except the retry of a marker already written, KAFKA-19999):
    /// [`StorageError::InvalidProducerEpoch`]; `coordinator_epoch` must not
    /// be older than that of the producer's last marker:
    /// [`StorageError::TransactionCoordinatorFenced`]. An ABORT of a
    /// transaction open here adds an entry to the segment's transaction
    /// index. A marker for a producer without an open transaction is
    /// written too (it ends nothing).
    pub fn append_txn_marker(
        &self,
        marker: TxnMarker,
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, StorageError> {
        let info = self.append_marker(
            marker,
            leader_epoch,
            || Some(self.state.write()),
            append::Roll::Allow,
        )?;
        Ok(info.expect("an append that may roll always appends"))
    }

    /// [`Log::append_txn_marker`] if it needs no waiting, for a network
    /// thread: `Ok(None)`, with nothing written, when the log's lock is
    /// held or the marker would roll the segment (or start a leader epoch,
    /// whose cache write fsyncs); the caller then appends where it may
    /// block.
    pub fn try_append_txn_marker(
        &self,
        marker: TxnMarker,
        leader_epoch: LeaderEpoch,
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.append_marker(
            marker,
            leader_epoch,
            || self.state.try_write(),
            append::Roll::Defer,
        )
    }

    /// Checks `m` and appends its marker batch under `lock` (which takes
    /// the log's lock, or answers `None` when it would wait). The batch is
    /// built before the lock is taken, as every append's is.
    fn append_marker<'a>(
        &'a self,
        m: TxnMarker,
        leader_epoch: LeaderEpoch,
        lock: impl FnOnce() -> Option<parking_lot::RwLockWriteGuard<'a, LogState>>,
        roll: append::Roll,
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.check()?;
        if m.producer_id.0 < 0 || m.producer_epoch.0 < 0 {
            return Err(StorageError::InvalidRecord(format!(
                "a transaction marker needs a producer id and epoch, got {} and {}",
                m.producer_id.0, m.producer_epoch.0
            )));
        }
        let marker = EndTransactionMarker::new(m.control_type, m.coordinator_epoch)?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let mut batch =
            build_end_txn_marker_batch(m.producer_id, m.producer_epoch, marker, Timestamp(now))?;
        let headers = validate_headers(&batch, &config)?;
        let Some(st) = lock() else {
            return Ok(None);
        };
        self.append_locked(
            st,
            append::Payload::InPlace(&mut batch),
            headers,
            &config,
            now,
            leader_epoch,
            append::Source {
                origin: AppendOrigin::Coordinator,
                transaction_version: Some(m.transaction_version),
                verification: Verification::NotRequired,
            },
            roll,
        )
    }

    /// Starts KIP-890 part 1 for a Produce request of `pid` whose first
    /// transactional batch has `sequence` and `epoch`: the guard its append
    /// must carry once the coordinator confirmed the partition is in the
    /// transaction, or `None` when the producer has a transaction open here
    /// already (nothing to ask). See `producer_state::verification`.
    pub fn maybe_start_transaction_verification(
        &self,
        pid: ProducerId,
        sequence: i32,
        epoch: ProducerEpoch,
    ) -> Result<Option<VerificationGuard>, StorageError> {
        let now = self.env.clock.now_ms();
        let limits = (
            self.env.producer_state.max_producers,
            self.env.producer_state_config().producer_id_expiration_ms,
        );
        let mut st = self.state.write();
        Ok(st
            .producers
            .maybe_start_verification(pid, sequence, epoch, now, limits)?)
    }

    /// Whether `pid` has a transaction open on this partition (Kafka's
    /// `UnifiedLog.hasOngoingTransaction`): a coordinator that finds its
    /// partition in the producer's transaction here need not ask again.
    pub fn has_ongoing_transaction(&self, pid: ProducerId) -> bool {
        self.state.read().producers.has_ongoing_transaction(pid)
    }

    /// Transactions open on this partition (any producer).
    pub fn open_transactions(&self) -> usize {
        self.state.read().producers.ongoing_txns().count()
    }

    /// The first offset that is not stable yet (the earliest open
    /// transaction, or completed one whose marker the high watermark has
    /// not passed), at least the log start; `None` when everything is
    /// stable.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        let fuo = self.first_unstable.load(Ordering::Acquire);
        (fuo != NONE).then(|| Offset(fuo).max(self.log_start_offset()))
    }

    /// The last stable offset for `high_watermark`: consumers in
    /// read_committed read below it.
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        self.first_unstable_offset()
            .map_or(high_watermark, |fuo| fuo.min(high_watermark))
    }

    /// The high watermark reached `high_watermark`: the completed
    /// transactions whose marker lies below it become stable. Cheap when
    /// none waits (no lock).
    pub fn on_high_watermark_updated(&self, high_watermark: Offset) {
        if self.unreplicated_min.load(Ordering::Acquire) >= high_watermark.0 {
            return;
        }
        let mut st = self.state.write();
        if st.producers.on_high_watermark_updated(high_watermark) {
            self.publish_txn_state(&st.producers);
        }
    }

    /// The aborted transactions overlapping `[start, upper)` (Kafka's
    /// `collectAbortedTransactions`): the transaction index entries of the
    /// segment holding `start` and the ones after it, until an entry's
    /// last stable offset reaches `upper`. Reads only index files (of the
    /// segments that have one), never record data. A segment removed
    /// meanwhile (retention, truncation, cleaning) is skipped.
    pub fn collect_aborted_transactions(
        &self,
        start: Offset,
        upper: Offset,
    ) -> Result<Vec<AbortedTxn>, StorageError> {
        self.check()?;
        let segs: Vec<Arc<LogSegment>> = {
            let st = self.state.read();
            let from = st
                .segments
                .range(..=start.0)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            st.segments.range(from..).map(|(_, s)| s.clone()).collect()
        };
        let mut out = Vec::new();
        for s in segs {
            if s.txn_index().is_empty() {
                continue;
            }
            match s.txn_index().collect(start, upper, &mut out) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    let st = self.state.read();
                    let current = st
                        .segments
                        .get(&s.base_offset().0)
                        .is_some_and(|c| Arc::ptr_eq(c, &s));
                    if current {
                        return Err(e);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Mirrors the first unstable offset and the smallest unreplicated
    /// marker for lock-free readers. Called with the state lock held after
    /// every change of the producer state.
    pub(super) fn publish_txn_state(&self, producers: &ProducerStateManager) {
        let fuo = producers.first_unstable_offset().map_or(NONE, |o| o.0);
        self.first_unstable.store(fuo, Ordering::Release);
        let min = producers.min_unreplicated_marker().map_or(NONE, |o| o.0);
        self.unreplicated_min.store(min, Ordering::Release);
    }

    /// Writes the index entries of the ABORT markers of `prepared` to
    /// `active`, the segment they are appended to. Returns the index's
    /// length before (to undo the entries with
    /// [`Log::unindex_aborted`]). A failure that is not a resource running
    /// out takes the log directory offline.
    pub(super) fn index_aborted(
        &self,
        active: &Arc<LogSegment>,
        prepared: Option<&PreparedAppend>,
    ) -> Result<Option<u64>, StorageError> {
        let Some(p) = prepared else {
            return Ok(None);
        };
        let aborted: Vec<AbortedTxn> = p
            .completed()
            .iter()
            .filter(|(c, _)| c.is_aborted)
            .map(|(c, lso)| AbortedTxn {
                producer_id: c.producer_id,
                first_offset: c.first_offset,
                last_offset: c.last_offset,
                last_stable_offset: *lso,
            })
            .collect();
        if aborted.is_empty() {
            return Ok(None);
        }
        let index = active.txn_index();
        let before = index.len_bytes();
        match index.append(&aborted) {
            Ok(created) => {
                if created {
                    self.dir_dirty.store(true, Ordering::Release);
                }
                Ok(Some(before))
            }
            Err(e) => {
                if !e.is_resource_exhausted() && !matches!(e, StorageError::CorruptTxnIndex { .. })
                {
                    self.offline(&e);
                }
                Err(e)
            }
        }
    }

    /// Undoes [`Log::index_aborted`] after the log write failed; if even
    /// that fails, the index holds entries for markers that are not in the
    /// log and the directory goes offline.
    pub(super) fn unindex_aborted(&self, active: &Arc<LogSegment>, mark: Option<u64>) {
        if let Some(len) = mark {
            if let Err(e) = active.txn_index().cut_to(len) {
                self.offline(&e);
            }
        }
    }
}
