//! The single-voter log's [`LogListener`]: a cursor that pulls committed
//! batches from the storage log, a bounded read at a time (the batches of
//! one read are the only thing it buffers).
//!
//! Order of events: the latest snapshot first (if there is one), then the
//! batches after it; the [`LogEvent::LeaderChange`] of this process's
//! epoch when the cursor reaches the offset where the epoch began (every
//! batch after it was appended in that epoch); a snapshot again whenever
//! compaction removed the cursor's next offset.

use std::collections::VecDeque;
use std::sync::Arc;

use sluice_record::Offset;
use sluice_storage::StorageError;
use tokio::sync::watch;

use super::{Inner, StorageOrLog};
use crate::log::*;

/// Bytes of batches one read brings in.
const READ_BYTES: usize = 256 << 10;

pub(super) struct SingleVoterListener {
    inner: Arc<Inner>,
    changed: watch::Receiver<u64>,
    next: Offset,
    started: bool,
    leader_sent: bool,
    buffer: VecDeque<CommittedBatch>,
}

impl SingleVoterListener {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        SingleVoterListener {
            changed: inner.changed.subscribe(),
            inner,
            next: Offset::ZERO,
            started: false,
            leader_sent: false,
            buffer: VecDeque::new(),
        }
    }

    /// The next event available now, if any.
    async fn poll(&mut self) -> Result<Option<LogEvent>, LogError> {
        let (hw, snap) = {
            let st = self.inner.state.lock();
            if let Some(f) = &st.fatal {
                return Err(LogError::Fatal(f.clone()));
            }
            if st.shutdown {
                return Err(LogError::Shutdown);
            }
            (st.high_watermark, st.snapshot.clone())
        };
        if !self.leader_sent && self.next >= self.inner.epoch_start {
            self.leader_sent = true;
            return Ok(Some(LogEvent::LeaderChange(LeaderAndEpoch {
                leader: Some(self.inner.config.node_id),
                epoch: self.inner.epoch,
            })));
        }
        if let Some(b) = self.buffer.pop_front() {
            self.next = Offset(b.last_offset().0 + 1);
            return Ok(Some(LogEvent::Batch(b)));
        }
        if let Some(s) = snap {
            let behind = self.next < self.inner.log.log_start_offset();
            if (!self.started || behind) && self.next < s.0.end_offset {
                self.started = true;
                self.next = s.0.end_offset;
                return Ok(Some(LogEvent::Snapshot(s.1.clone())));
            }
        }
        self.started = true;
        if self.next >= hw {
            return Ok(None);
        }
        let inner = self.inner.clone();
        let from = self.next;
        let read = tokio::task::spawn_blocking(move || inner.read_batches(from, READ_BYTES))
            .await
            .map_err(|e| self.inner.fail(e))?;
        match read {
            Ok(batches) => self.buffer.extend(batches),
            // Compacted away since the check: the snapshot comes next.
            Err(StorageOrLog::Storage(StorageError::OffsetOutOfRange { .. })) => {}
            Err(StorageOrLog::Storage(e)) => return Err(self.inner.fail(e)),
            Err(StorageOrLog::Log(e)) => return Err(self.inner.fail(e)),
        }
        Ok(None)
    }
}

impl LogListener for SingleVoterListener {
    fn next(&mut self) -> BoxFuture<'_, Result<LogEvent, LogError>> {
        Box::pin(async move {
            loop {
                self.changed.borrow_and_update();
                let buffered = self.buffer.len();
                if let Some(event) = self.poll().await? {
                    return Ok(event);
                }
                if self.buffer.len() > buffered {
                    continue;
                }
                // Nothing new was read. If there is something to read
                // (or a snapshot to deliver), poll again; otherwise wait
                // for the next commit, snapshot, failure or shutdown.
                let (hw, snap_end) = {
                    let st = self.inner.state.lock();
                    (
                        st.high_watermark,
                        st.snapshot.as_ref().map(|s| s.0.end_offset),
                    )
                };
                let readable = self.next >= self.inner.log.log_start_offset();
                if self.next < hw && (readable || snap_end.is_some_and(|e| e > self.next)) {
                    continue;
                }
                if self.changed.changed().await.is_err() {
                    return Err(LogError::Shutdown);
                }
            }
        })
    }
}
