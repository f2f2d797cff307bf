//! `LocalMetadataLog`: this node's metadata log while it is its own,
//! only voter and the changes are made durable by `MetadataStore`'s files.
//!
//! It implements the controller crate's [`MetadataLog`] seam in memory:
//! at start it holds one committed batch that bootstraps the image from
//! the files (see [`super::records::bootstrap_records`]), and every change
//! the store makes durable is appended as the next committed batch. The
//! loader reads it through [`MetadataLog::listen`] exactly as it will read
//! the durable single-voter log or the openraft quorum, which replace this
//! type (the files then become upgrade input only).
//!
//! Offsets count from 0 on every start (the log is rebuilt from the files);
//! the metadata offsets DescribeQuorum reports are still the store's.

use std::sync::Arc;

use parking_lot::Mutex;
use sluice_controller::{
    BoxFuture, CommittedBatch, LeaderAndEpoch, LogError, LogEvent, LogListener, MetadataLog,
    NodeId, QuorumInfo, VoterState,
};
use sluice_metadata::MetadataRecord;
use sluice_record::{LeaderEpoch, Offset};
use tokio::sync::Notify;

struct Inner {
    batches: Vec<Arc<CommittedBatch>>,
    /// The offset the next record gets.
    next_offset: Offset,
    shutdown: bool,
}

struct Shared {
    node: NodeId,
    epoch: LeaderEpoch,
    inner: Mutex<Inner>,
    appended: Notify,
}

/// An in-memory, already-committed metadata log of one voter. Cheap to
/// clone (one `Arc`).
#[derive(Clone)]
pub struct LocalMetadataLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LocalMetadataLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMetadataLog")
            .field("node", &self.shared.node)
            .field("epoch", &self.shared.epoch)
            .field("end_offset", &self.end_offset())
            .finish()
    }
}

impl LocalMetadataLog {
    pub fn new(node: NodeId, epoch: LeaderEpoch) -> Self {
        LocalMetadataLog {
            shared: Arc::new(Shared {
                node,
                epoch,
                inner: Mutex::new(Inner {
                    batches: Vec::new(),
                    next_offset: Offset(0),
                    shutdown: false,
                }),
                appended: Notify::new(),
            }),
        }
    }

    /// Appends records the caller has already made durable, as one
    /// committed batch; returns the batch's last offset. An empty list
    /// appends nothing and returns the last offset so far.
    pub fn append_committed(&self, records: Vec<MetadataRecord>, now_ms: i64) -> Offset {
        let mut inner = self.shared.inner.lock();
        if records.is_empty() {
            return Offset(inner.next_offset.0 - 1);
        }
        let batch = CommittedBatch {
            base_offset: inner.next_offset,
            epoch: self.shared.epoch,
            append_time_ms: now_ms,
            records,
        };
        let last = batch.last_offset();
        inner.next_offset = Offset(last.0 + 1);
        inner.batches.push(Arc::new(batch));
        drop(inner);
        self.shared.appended.notify_waiters();
        last
    }

    /// Stops the log without a runtime: listeners end with `Shutdown`.
    pub fn close(&self) {
        self.shared.inner.lock().shutdown = true;
        self.shared.appended.notify_waiters();
    }

    /// The offset after the last committed record.
    pub fn end_offset(&self) -> Offset {
        self.shared.inner.lock().next_offset
    }
}

impl Shared {
    fn batch_at(&self, index: usize) -> Result<Option<Arc<CommittedBatch>>, LogError> {
        let inner = self.inner.lock();
        match inner.batches.get(index) {
            Some(b) => Ok(Some(b.clone())),
            None if inner.shutdown => Err(LogError::Shutdown),
            None => Ok(None),
        }
    }

    fn leader_and_epoch(&self) -> LeaderAndEpoch {
        LeaderAndEpoch {
            leader: Some(self.node),
            epoch: self.epoch,
        }
    }
}

impl MetadataLog for LocalMetadataLog {
    fn node_id(&self) -> NodeId {
        self.shared.node
    }

    fn leader_and_epoch(&self) -> LeaderAndEpoch {
        self.shared.leader_and_epoch()
    }

    fn append(
        &self,
        epoch: LeaderEpoch,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<Offset, LogError>> {
        Box::pin(async move {
            if epoch != self.shared.epoch {
                return Err(LogError::NotLeader(self.leader_and_epoch()));
            }
            if records.is_empty() {
                return Err(LogError::TooLarge {
                    records: 0,
                    bytes: 0,
                });
            }
            if self.shared.inner.lock().shutdown {
                return Err(LogError::Shutdown);
            }
            Ok(self.append_committed(records, 0))
        })
    }

    /// A listener from the start of the log: the leader change first, then
    /// every committed batch.
    fn listen(&self) -> Box<dyn LogListener> {
        Box::new(LocalListener {
            log: self.shared.clone(),
            next_batch: 0,
            announced: false,
        })
    }

    fn quorum_info(&self) -> QuorumInfo {
        let hw = self.end_offset();
        let me = VoterState {
            node: self.shared.node,
            log_end_offset: hw,
            last_fetch_timestamp_ms: -1,
            last_caught_up_timestamp_ms: -1,
        };
        QuorumInfo {
            leader: self.leader_and_epoch(),
            high_watermark: hw,
            voters: vec![me],
            observers: Vec::new(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.close() })
    }
}

struct LocalListener {
    log: Arc<Shared>,
    next_batch: usize,
    announced: bool,
}

impl LogListener for LocalListener {
    fn next(&mut self) -> BoxFuture<'_, Result<LogEvent, LogError>> {
        Box::pin(async move {
            if !self.announced {
                self.announced = true;
                return Ok(LogEvent::LeaderChange(self.log.leader_and_epoch()));
            }
            loop {
                // Register for the wake-up before looking, so an append
                // between the look and the wait is not missed.
                let notified = self.log.appended.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(batch) = self.log.batch_at(self.next_batch)? {
                    self.next_batch += 1;
                    return Ok(LogEvent::Batch((*batch).clone()));
                }
                notified.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::record::NoOpRecord;

    #[tokio::test]
    async fn listeners_see_the_leader_then_every_batch_in_order() {
        let log = LocalMetadataLog::new(sluice_metadata::BrokerId(1), LeaderEpoch(3));
        let noop = || MetadataRecord::NoOp(NoOpRecord);
        assert_eq!(log.append_committed(vec![noop(), noop()], 0), Offset(1));
        let mut l = log.listen();
        assert!(
            matches!(l.next().await.unwrap(), LogEvent::LeaderChange(le) if le.epoch == LeaderEpoch(3))
        );
        match l.next().await.unwrap() {
            LogEvent::Batch(b) => {
                assert_eq!((b.base_offset, b.last_offset()), (Offset(0), Offset(1)))
            }
            other => panic!("{other:?}"),
        }
        // A later append wakes a waiting listener.
        let waiter = tokio::spawn(async move { l.next().await.map(|e| (e, l)) });
        tokio::task::yield_now().await;
        assert_eq!(
            log.append(LeaderEpoch(3), vec![noop()]).await.unwrap(),
            Offset(2)
        );
        let (event, mut l) = waiter.await.unwrap().unwrap();
        assert!(matches!(event, LogEvent::Batch(b) if b.base_offset == Offset(2)));
        assert!(matches!(
            log.append(LeaderEpoch(2), vec![noop()]).await,
            Err(LogError::NotLeader(_))
        ));
        log.shutdown().await;
        assert!(matches!(l.next().await, Err(LogError::Shutdown)));
    }
}
