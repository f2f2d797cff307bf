//! Online partitions: each is a [`Log`] plus its high watermark and the
//! waiters of long-polling fetches.
//!
//! This broker is the only replica of every partition, so the high watermark
//! is the log end offset once an append is acknowledged-ready: right after
//! the append, or — for `flush.messages=1` topics — after the group-commit
//! fsync that covers it. Consumers never see bytes past the high watermark.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use sluice_record::Offset;
use sluice_storage::{Log, TopicPartition};
use tokio::sync::watch;

use crate::handlers::fetch_session::FetchSessionCache;

/// One online partition. Cheap to share (`Arc`).
pub struct Partition {
    log: Arc<Log>,
    /// The high watermark; receivers are woken whenever it moves.
    high_watermark: watch::Sender<Offset>,
}

impl Partition {
    /// A partition whose high watermark starts at the log end offset: data
    /// that survived a restart (and its recovery) counts as committed.
    pub fn new(log: Arc<Log>) -> Self {
        let hw = log.log_end_offset();
        let (high_watermark, _) = watch::channel(hw);
        Partition {
            log,
            high_watermark,
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        self.log.topic_partition()
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Offsets below this are visible to consumers.
    pub fn high_watermark(&self) -> Offset {
        *self.high_watermark.borrow()
    }

    /// Moves the high watermark forward to `offset` (never backwards) and
    /// wakes fetches waiting for data.
    pub fn advance_high_watermark(&self, offset: Offset) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }

    /// Sets the high watermark to the log end offset after a truncation or
    /// a DeleteRecords (may move it backwards) and wakes waiters.
    pub fn reset_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        self.high_watermark.send_replace(leo);
    }

    /// A receiver that sees every later high-watermark change. Subscribe
    /// *before* reading the log so that no append is missed.
    pub fn subscribe(&self) -> watch::Receiver<Offset> {
        self.high_watermark.subscribe()
    }
}

/// All online partitions of this broker.
pub struct ReplicaManager {
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Becomes true when the broker shuts down; long-polling fetches answer
    /// at once then.
    shutdown: watch::Sender<bool>,
    /// Incremental fetch sessions (KIP-227).
    fetch_sessions: FetchSessionCache,
}

impl Default for ReplicaManager {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplicaManager {
    pub fn new() -> Self {
        ReplicaManager {
            partitions: RwLock::new(HashMap::new()),
            shutdown: watch::channel(false).0,
            fetch_sessions: FetchSessionCache::default(),
        }
    }

    /// Wakes every waiting fetch so that it answers now.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// The broker's fetch sessions.
    pub fn fetch_sessions(&self) -> &FetchSessionCache {
        &self.fetch_sessions
    }

    /// Receiver of the shutdown flag (see [`ReplicaManager::begin_shutdown`]).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Puts `log` online (replacing a previous partition of the same name).
    pub fn add_partition(&self, log: Arc<Log>) -> Arc<Partition> {
        let partition = Arc::new(Partition::new(log));
        self.partitions
            .write()
            .insert(partition.topic_partition().clone(), partition.clone());
        partition
    }

    pub fn remove_partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.write().remove(tp)
    }

    pub fn get_partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every online partition, in no particular order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// The online partitions of `topic`.
    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .filter(|p| p.topic_partition().topic == topic)
            .cloned()
            .collect()
    }
}
