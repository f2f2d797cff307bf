//! Online partitions: each is a [`Log`] plus its high watermark, the
//! waiters of long-polling fetches and, while this broker leads it, its
//! replication state (`crate::replica`: followers, ISR, `acks=all`
//! purgatory).
//!
//! The high watermark is the smallest log end offset of the ISR (see
//! [`crate::replica::isr`]); the leader counts its own end once an append is
//! acknowledged-ready: right after the append, or — for `flush.messages=1`
//! topics — after the group-commit fsync that covers it. A partition whose
//! only replica is this broker keeps the one-node fast path: the high
//! watermark moves with the append, without taking the replication lock.
//! Consumers never see bytes past the high watermark (in read_committed,
//! past the last stable offset: min(high watermark, the log's first
//! unstable offset)); followers read up to the log end offset. Whoever
//! moves the high watermark tells the log first
//! (`Log::on_high_watermark_updated`), so a completed transaction whose
//! marker the new high watermark covers is stable before any reader sees
//! that high watermark.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sluice_record::Offset;
use sluice_storage::{Clock, Log, SystemClock, TopicPartition};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use tokio::sync::watch;

use crate::handlers::fetch_session::FetchSessionCache;
use crate::replica::alter::IsrQueue;
use crate::replica::isr::LeaderState;
use crate::replica::purgatory::Purgatory;

/// Appends of this many bytes make the older part of the recent window
/// cold (see [`Partition::is_hot`]): offsets read as hot lie within the
/// last 4-8 MiB this broker appended to the partition.
const HOT_WINDOW_BYTES: u64 = 4 << 20;

/// One online partition. Cheap to share (`Arc`).
pub struct Partition {
    pub(crate) log: Arc<Log>,
    /// The high watermark; receivers are woken whenever it moves.
    pub(crate) high_watermark: watch::Sender<Offset>,
    /// The log end offset as appends publish it; followers' long polls
    /// wait on it.
    pub(crate) log_end: watch::Sender<Offset>,
    /// Offsets at or above this were appended by this process recently.
    hot_from: AtomicI64,
    /// Where the next `hot_from` starts and the bytes appended since.
    hot_mark: Mutex<(Offset, u64)>,
    /// The partition's leader epoch from its registration in the metadata
    /// image (set by the partitions publisher).
    pub(crate) leader_epoch: AtomicI32,
    /// Whether this broker leads the partition (else it follows).
    pub(crate) leader: AtomicBool,
    /// Kafka's `leaderIsrUpdateLock`: a role change (`leader`,
    /// `leader_epoch`) takes it exclusively; every append as leader holds
    /// it shared from its leadership check to the end of its write, so no
    /// leader's batch lands in a log that already turned follower.
    pub(crate) role: RwLock<()>,
    /// The leader's replication state (`None` while following).
    pub(crate) replication: Mutex<Option<LeaderState>>,
    /// This broker leads and is the only replica: the high watermark is
    /// the leader's ready offset (no lock, no follower to wait for).
    pub(crate) solo: AtomicBool,
    /// `acks=all` answers waiting for the high watermark.
    pub(crate) purgatory: Purgatory,
    /// The topic's id (AlterPartition names partitions by it).
    pub(crate) topic_id: Mutex<uuid::Uuid>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Where ISR changes go to the controller.
    pub(crate) isr_queue: Arc<IsrQueue>,
    /// Whether this partition is in `isr_queue` (so it is there once).
    pub(crate) isr_queued: AtomicBool,
    /// Idempotent batches refused by a storage failure (see
    /// `replica::refusals`).
    pub(crate) storage_refusals: crate::replica::refusals::StorageRefusals,
}

impl Partition {
    /// A partition whose high watermark starts at the log end offset: data
    /// that survived a restart (and its recovery) counts as committed.
    pub fn new(log: Arc<Log>) -> Self {
        let leo = log.log_end_offset();
        Self::with(log, Arc::new(SystemClock), Arc::default(), leo)
    }

    /// A partition whose high watermark starts at `hw` (the checkpointed
    /// one: a new leader must not expose what the ISR may not have).
    pub(crate) fn with(
        log: Arc<Log>,
        clock: Arc<dyn Clock>,
        isr_queue: Arc<IsrQueue>,
        hw: Offset,
    ) -> Self {
        let leo = log.log_end_offset();
        let hw = hw.clamp(log.log_start_offset(), leo);
        log.on_high_watermark_updated(hw);
        let (high_watermark, _) = watch::channel(hw);
        let (log_end, _) = watch::channel(leo);
        Partition {
            log,
            high_watermark,
            log_end,
            hot_from: AtomicI64::new(leo.0),
            hot_mark: Mutex::new((leo, 0)),
            leader_epoch: AtomicI32::new(0),
            leader: AtomicBool::new(true),
            role: RwLock::new(()),
            replication: Mutex::new(None),
            solo: AtomicBool::new(true),
            purgatory: Purgatory::default(),
            topic_id: Mutex::new(uuid::Uuid::nil()),
            clock,
            isr_queue,
            isr_queued: AtomicBool::new(false),
            storage_refusals: Default::default(),
        }
    }

    /// Notes an append of `bytes` starting at `first_offset`, for
    /// [`Partition::is_hot`].
    /// Also wakes followers' long polls.
    pub fn note_append(&self, first_offset: Offset, bytes: usize) {
        self.publish_log_end();
        let mut mark = self.hot_mark.lock();
        mark.1 += bytes as u64;
        if mark.1 >= HOT_WINDOW_BYTES {
            self.hot_from.store(mark.0 .0, Ordering::Release);
            *mark = (first_offset, 0);
        }
    }

    /// True when `offset` lies in the last few MiB this broker appended
    /// (or at the log end), so reading it finds warm index and page-cache
    /// pages: a fetch there is cheaper to read on the network thread than
    /// to hand to the blocking pool. A reader of anything older (after a
    /// restart, everything) goes through the blocking pool (KAFKA-7504).
    pub fn is_hot(&self, offset: Offset) -> bool {
        offset.0 >= self.hot_from.load(Ordering::Acquire)
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

    /// Offsets below this are visible to consumers in read_committed:
    /// min(high watermark, first unstable offset), where a completed
    /// transaction stays unstable until the high watermark passes its
    /// marker (Kafka's `lastStableOffset`).
    pub fn last_stable_offset(&self) -> Offset {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// Moves the high watermark forward to `offset` (never backwards) and
    /// wakes fetches and `acks=all` answers waiting for it. A leader's
    /// appends go through [`Partition::publish_append`] instead (which
    /// applies the ISR rules); this is the raw move (followers).
    pub fn advance_high_watermark(&self, offset: Offset) {
        if offset > self.high_watermark() {
            self.log.on_high_watermark_updated(offset);
        }
        let moved = self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
        if moved {
            self.purgatory.complete_upto(offset);
        }
    }

    /// A follower's high watermark from its leader's: `leader_hw` capped
    /// by this log's end and at least its start (Kafka's
    /// `UnifiedLog.maybeUpdateHighWatermark`). It may move backwards: a
    /// new leader's high watermark can trail the old one's until its
    /// followers fetch, and consumers reading from this follower (KIP-392)
    /// must not see more than the leader shows. Returns the new value.
    pub fn follow_high_watermark(&self, leader_hw: Offset) -> Offset {
        let hw = leader_hw
            .min(self.log.log_end_offset())
            .max(self.log.log_start_offset());
        self.log.on_high_watermark_updated(hw);
        self.high_watermark.send_if_modified(|cur| {
            if *cur != hw {
                *cur = hw;
                true
            } else {
                false
            }
        });
        hw
    }

    /// Publishes the log's end offset to followers' long polls. Skipped
    /// when no fetch waits (the one-node case): a fetch subscribes before
    /// it reads the log, so one that subscribes later reads the append.
    pub fn publish_log_end(&self) {
        if self.log_end.receiver_count() == 0 {
            return;
        }
        let leo = self.log.log_end_offset();
        self.log_end.send_if_modified(|end| {
            if *end != leo {
                *end = leo;
                true
            } else {
                false
            }
        });
    }

    /// A receiver of log-end changes (followers' long polls). Subscribe
    /// before reading the log.
    pub fn subscribe_log_end(&self) -> watch::Receiver<Offset> {
        self.log_end.subscribe()
    }

    /// Sets the high watermark to the log end offset after a truncation or
    /// a DeleteRecords (may move it backwards) and wakes waiters.
    pub fn reset_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        self.log.on_high_watermark_updated(leo);
        self.high_watermark.send_replace(leo);
        self.publish_log_end();
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
    /// The clock follower progress and ISR lag are measured on.
    clock: Arc<dyn Clock>,
    /// ISR changes waiting to go to the controller.
    isr_queue: Arc<IsrQueue>,
    /// Replication throttles (leader and follower side).
    quotas: crate::replica::quota::ReplicationQuotas,
}

impl Default for ReplicaManager {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplicaManager {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A manager whose partitions measure follower lag on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        ReplicaManager {
            partitions: RwLock::new(HashMap::new()),
            shutdown: watch::channel(false).0,
            fetch_sessions: FetchSessionCache::default(),
            clock,
            isr_queue: Arc::default(),
            quotas: Default::default(),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The replication throttles.
    pub fn quotas(&self) -> &crate::replica::quota::ReplicationQuotas {
        &self.quotas
    }

    /// The queue of ISR changes for the controller.
    pub fn isr_queue(&self) -> &Arc<IsrQueue> {
        &self.isr_queue
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

    /// Puts `log` online (replacing a previous partition of the same name)
    /// with its high watermark at the log end.
    pub fn add_partition(&self, log: Arc<Log>) -> Arc<Partition> {
        let leo = log.log_end_offset();
        self.add_partition_at(log, Some(leo))
    }

    /// Puts `log` online with the high watermark `checkpointed` (Kafka's
    /// `replication-offset-checkpoint`; the log start when there is none),
    /// kept within the log. A leader alone moves it to its log end when it
    /// takes the lead; a leader with followers waits for them.
    pub fn add_partition_at(&self, log: Arc<Log>, checkpointed: Option<Offset>) -> Arc<Partition> {
        let hw = checkpointed.unwrap_or(log.log_start_offset());
        let partition = Arc::new(Partition::with(
            log,
            self.clock.clone(),
            self.isr_queue.clone(),
            hw,
        ));
        self.partitions
            .write()
            .insert(partition.topic_partition().clone(), partition.clone());
        partition
    }

    pub fn remove_partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        let removed = self.partitions.write().remove(tp);
        if let Some(p) = &removed {
            p.stop_leading();
        }
        removed
    }

    pub fn get_partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every online partition's high watermark (the checkpoint).
    pub fn high_watermarks(&self) -> Vec<(TopicPartition, Offset)> {
        let mut hws: Vec<_> = self
            .partitions
            .read()
            .iter()
            .map(|(tp, p)| (tp.clone(), p.high_watermark()))
            .collect();
        hws.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        hws
    }

    /// Every online partition, ordered by name: whatever walks them (the
    /// ISR checks, their AlterPartition requests) does so in an order
    /// that does not depend on the hasher's random keys, so a simulation
    /// seed replays.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        let mut all: Vec<_> = self.partitions.read().values().cloned().collect();
        all.sort_unstable_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
        all
    }

    /// The online partitions of `topic`, ordered by partition.
    pub fn partitions_of(&self, topic: &str) -> Vec<Arc<Partition>> {
        let mut of: Vec<_> = self
            .partitions
            .read()
            .values()
            .filter(|p| p.topic_partition().topic == topic)
            .cloned()
            .collect();
        of.sort_unstable_by_key(|p| p.topic_partition().partition);
        of
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::{BatchBuilder, CompressionType, LeaderEpoch, Timestamp};
    use sluice_storage::{LogConfig, LogManager, LogManagerConfig, SimFs, SystemClock};

    fn batch(records: usize, size: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None);
        let value = vec![7u8; size];
        let now = SystemClock.now_ms();
        for _ in 0..records {
            b.append(Timestamp(now), None, Some(&value), &[]).unwrap();
        }
        b.build().unwrap()
    }

    /// No produce append lands after the role change that made this
    /// broker a follower: the fetcher may already be truncating and
    /// appending the new leader's batches. Appends race role changes here;
    /// after each change returns, the log must not grow. Without the role
    /// lock (the handler's check, then an unlocked append) it grew in
    /// most runs.
    #[test]
    fn no_produce_append_lands_after_the_broker_turns_follower() {
        use crate::replica::isr::Assignment;
        use crate::replica::ReplicaRole;
        use sluice_metadata::{BrokerId, PartitionEpoch};
        let manager = LogManager::open(
            LogManagerConfig {
                log_dirs: vec!["/d".into()],
                ..Default::default()
            },
            Arc::new(SimFs::new()),
            Arc::new(SystemClock),
        )
        .unwrap();
        let one = batch(1, 10);
        for round in 0..20 {
            let tp = TopicPartition::new("t", round);
            let log = manager
                .get_or_create_log(&tp, LogConfig::default())
                .unwrap();
            let p = Arc::new(Partition::new(log.clone()));
            p.become_replica(&ReplicaRole::alone(BrokerId(1), LeaderEpoch(1)));
            let stop = Arc::new(AtomicBool::new(false));
            let appenders: Vec<_> = (0..2)
                .map(|_| {
                    let (p, stop, one) = (p.clone(), stop.clone(), one.clone());
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let _ = p.append_produce(
                                &one,
                                sluice_storage::producer_state::Verification::NotRequired,
                            );
                        }
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(2));
            let mut follower = ReplicaRole::alone(BrokerId(1), LeaderEpoch(2));
            follower.leader = BrokerId(2);
            follower.assignment = Assignment {
                replicas: vec![BrokerId(2), BrokerId(1)],
                isr: vec![BrokerId(2), BrokerId(1)],
                leader_epoch: LeaderEpoch(2),
                partition_epoch: PartitionEpoch(1),
                unavailable: Vec::new(),
            };
            p.become_replica(&follower);
            let at_change = log.log_end_offset();
            std::thread::sleep(std::time::Duration::from_millis(2));
            stop.store(true, Ordering::Relaxed);
            for a in appenders {
                a.join().unwrap();
            }
            assert_eq!(
                log.log_end_offset(),
                at_change,
                "round {round}: a leader's append landed in a follower's log"
            );
            assert_eq!(
                p.append_produce(
                    &one,
                    sluice_storage::producer_state::Verification::NotRequired
                )
                .unwrap(),
                None
            );
        }
    }

    /// Reads of recently appended data are hot; data appended more than
    /// 8 MiB ago, or before the partition came online (a restart), is not,
    /// so its readers go through the blocking pool.
    #[test]
    fn only_the_recent_tail_counts_as_hot() {
        let manager = LogManager::open(
            LogManagerConfig {
                log_dirs: vec!["/d".into()],
                ..Default::default()
            },
            Arc::new(SimFs::new()),
            Arc::new(SystemClock),
        )
        .unwrap();
        let tp = TopicPartition::new("t", 0);
        let log = manager
            .get_or_create_log(&tp, LogConfig::default())
            .unwrap();
        let mut old = batch(100, 1000);
        log.append_as_leader(&mut old, LeaderEpoch(0)).unwrap();

        // Online after the first 100 records: they are not hot, the end is.
        let p = Partition::new(log.clone());
        assert!(!p.is_hot(Offset(0)));
        assert!(!p.is_hot(Offset(99)));
        assert!(p.is_hot(Offset(100)));

        // 12 MiB more in 64 KiB appends.
        let one = batch(64, 1000);
        let mut firsts = Vec::new();
        for _ in 0..(12 << 20) / one.len() {
            let info = log.append_as_leader_shared(&one, LeaderEpoch(0)).unwrap();
            p.note_append(info.first_offset, info.bytes);
            firsts.push(info.first_offset);
        }
        let end = log.log_end_offset();
        assert!(p.is_hot(end));
        assert!(p.is_hot(*firsts.last().unwrap()));
        assert!(!p.is_hot(firsts[0]), "12 MiB ago is cold");
        // The hot window spans between 4 and 8 MiB (+ one append) of data.
        let hot = firsts.iter().filter(|o| p.is_hot(**o)).count();
        let per = one.len();
        assert!(hot * per >= HOT_WINDOW_BYTES as usize, "{hot} appends hot");
        assert!(
            hot * per <= 2 * HOT_WINDOW_BYTES as usize + per,
            "{hot} appends hot"
        );
    }
}
