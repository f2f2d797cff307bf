//! The coordinator's writes to one partition of `__consumer_offsets`, with
//! Kafka's `group.coordinator.append.linger.ms`.
//!
//! A lingered write ([`AppendQueue::stage`]) is applied in memory by its
//! caller under the group's lock, and its records are queued here in that
//! same order. The queue is written as one batch (one append, one flush if
//! the topic's `flush.messages` asks for it) when the linger time is up,
//! when it holds [`MAX_STAGED_BYTES`], or when a write-through
//! ([`AppendQueue::write_through`]) comes: that write carries everything
//! staged before it, so the log order is always the order of the in-memory
//! changes. A staged write's answer waits for its batch ([`Durable`]), and
//! so does an operation that wrote nothing while something is staged (its
//! answer may depend on a change that is not durable yet), as Kafka's
//! coordinator runtime defers it until the log's committed offset passes
//! the last write.
//!
//! If a batch holding staged changes cannot be written, those changes are
//! in memory but not in the log: the queue marks itself stale and the
//! coordinator reloads the partition's groups from the log.
//!
//! A transactional offset commit (TxnOffsetCommit) is never lingered: it is
//! its own batch carrying the producer's id and epoch
//! ([`AppendQueue::write_transactional`]), written after whatever is staged.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_record::{
    BatchBuilder, CompressionType, Offset, ProducerEpoch, ProducerId, Timestamp, NO_SEQUENCE,
};
use sluice_storage::producer_state::{Verification, VerificationGuard};
use sluice_storage::{Clock, StorageError};
use tokio::sync::oneshot;

use super::GroupError;
use crate::partition::Partition;

/// A `__consumer_offsets` record: key and value (`None` = tombstone).
pub type GroupRecord = (Vec<u8>, Option<Vec<u8>>);

/// Staged key and value bytes at which the queue is written without
/// waiting for the linger time (a bound on the queue, well below the
/// topic's default `max.message.bytes` of 1 MiB).
pub const MAX_STAGED_BYTES: usize = 512 * 1024;

/// What an answer waits for before it goes out: its batch written, then
/// the partition's high watermark past every write of the queue so far
/// (the ISR has it, so it survives the coordinator's broker).
#[must_use = "the answer must wait until its records are durable"]
pub struct Durable {
    written: Written,
    queue: Arc<AppendQueue>,
}

enum Written {
    /// Already written (or nothing to wait for).
    Done(Result<(), GroupError>),
    /// Written with the queue's next batch.
    Waiting(oneshot::Receiver<Result<(), GroupError>>),
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").finish_non_exhaustive()
    }
}

impl Durable {
    /// Whether the records' batch is written already (it may still wait for
    /// the high watermark); `false` while it waits for the queue's next
    /// batch.
    pub fn is_written(&mut self) -> bool {
        match &mut self.written {
            Written::Done(_) => true,
            Written::Waiting(rx) => match rx.try_recv() {
                Ok(r) => {
                    self.written = Written::Done(r);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Waits until the records are written and replicated to the ISR; the
    /// write's error otherwise (COORDINATOR_NOT_AVAILABLE when the high
    /// watermark does not get there within `offsets.commit.timeout.ms`).
    pub async fn wait(self) -> Result<(), GroupError> {
        match self.written {
            Written::Done(r) => r?,
            // The queue never drops a waiter without answering it; a
            // dropped sender would mean the broker is going away.
            Written::Waiting(rx) => rx
                .await
                .unwrap_or(Err(GroupError::CoordinatorNotAvailable))?,
        }
        self.queue.committed().await
    }
}

#[derive(Default)]
struct Staged {
    records: Vec<GroupRecord>,
    bytes: usize,
    waiters: Vec<oneshot::Sender<Result<(), GroupError>>>,
    /// A linger timer is running for the staged records.
    timer_armed: bool,
}

/// The write queue of one `__consumer_offsets` partition.
pub struct AppendQueue {
    partition: Arc<Partition>,
    clock: Arc<dyn Clock>,
    linger: Duration,
    staged: Mutex<Staged>,
    stale: AtomicBool,
    /// The end offset (last + 1) of the last batch written: answers wait
    /// until the high watermark reaches it.
    written_end: AtomicI64,
    /// The leader epoch the last batch was written in: an answer waits for
    /// the high watermark only while this broker still leads in it.
    written_epoch: AtomicI32,
    /// `offsets.commit.timeout.ms`: the longest an answer waits for it.
    commit_timeout: Duration,
}

impl AppendQueue {
    pub fn new(
        partition: Arc<Partition>,
        clock: Arc<dyn Clock>,
        linger_ms: u64,
        commit_timeout_ms: u64,
    ) -> Self {
        AppendQueue {
            partition,
            clock,
            linger: Duration::from_millis(linger_ms),
            staged: Mutex::new(Staged::default()),
            stale: AtomicBool::new(false),
            written_end: AtomicI64::new(0),
            written_epoch: AtomicI32::new(-1),
            commit_timeout: Duration::from_millis(commit_timeout_ms),
        }
    }

    /// Waits until the partition's high watermark covers every batch this
    /// queue wrote so far (at once with an ISR of one: the append moved
    /// it). COORDINATOR_NOT_AVAILABLE after `offsets.commit.timeout.ms`,
    /// as Kafka maps a write that timed out or lacked replicas.
    ///
    /// Only while this broker still leads the partition in the epoch the
    /// last batch was written in: once it follows, its log may have been
    /// truncated below that batch and the high watermark it follows is the
    /// new leader's, over other records (the cluster simulation's seed
    /// 570: a coordinator cut off from its followers answered a commit it
    /// had just lost, as the new leader's high watermark passed that
    /// offset). Then NOT_COORDINATOR, as Kafka fails the writes of a
    /// coordinator that resigns. (A batch staged before a leadership moved
    /// away and back is not told apart from one written after it, if its
    /// waiter only starts waiting after both: that waiter was not polled
    /// through a whole election and a reload.)
    pub async fn committed(&self) -> Result<(), GroupError> {
        let target = sluice_record::Offset(self.written_end.load(Ordering::Acquire));
        let epoch = self.written_epoch.load(Ordering::Acquire);
        let leads = || {
            epoch < 0 || (self.partition.is_leader() && self.partition.leader_epoch().0 == epoch)
        };
        let covered = |hw: Offset| -> Option<Result<(), GroupError>> {
            if !leads() {
                return Some(Err(GroupError::NotCoordinator));
            }
            (hw >= target).then_some(Ok(()))
        };
        if let Some(r) = covered(self.partition.high_watermark()) {
            return r;
        }
        let mut rx = self.partition.subscribe();
        let wait = async {
            loop {
                let hw = *rx.borrow_and_update();
                if let Some(r) = covered(hw) {
                    return r;
                }
                if rx.changed().await.is_err() {
                    return Err(GroupError::CoordinatorNotAvailable);
                }
            }
        };
        match tokio::time::timeout(self.commit_timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(partition = %self.partition.topic_partition(), "a __consumer_offsets write was not replicated within offsets.commit.timeout.ms");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// The partition this queue writes to.
    pub fn partition(&self) -> &Arc<Partition> {
        &self.partition
    }

    /// An offset that orders a change applied in memory now against every
    /// record of the log: the log end offset. Every record written so far
    /// is below it; the change's own record (staged or written next) and
    /// every later one are at or above it. Read it under the group's lock:
    /// that group's changes are then ordered exactly as in the log, which
    /// is all [`super::offsets::OffsetStore::record_offset`] is compared
    /// for (a transactional commit against a plain one of the same group).
    pub fn order_stamp(&self) -> i64 {
        self.partition.log().log_end_offset().value()
    }

    /// Writes `recs` now, after everything staged, and answers the staged
    /// writes. Returns once `recs` are as durable as the topic's flush
    /// policy makes them.
    pub fn write_through(&self, recs: Vec<GroupRecord>) -> Result<(), GroupError> {
        let mut staged = self.staged.lock();
        self.write_locked(&mut staged, recs)
    }

    /// Writes `recs` as ONE transactional batch of `producer_id` at
    /// `producer_epoch` (base sequence -1, NO_SEQUENCE, as Kafka's group
    /// coordinator writes a TxnOffsetCommit), after everything staged, so
    /// the log order stays the order of the in-memory changes. Returns the
    /// batch's first offset (its records follow one by one) once it is as
    /// durable as the topic's flush policy makes it; the caller then waits
    /// for the high watermark ([`AppendQueue::committed`]).
    ///
    /// A producer epoch the log refuses is INVALID_PRODUCER_EPOCH
    /// ([`storage_refusal`]).
    ///
    /// `verification` is KIP-890 part 1's: a batch that would start the
    /// producer's transaction here needs the guard taken before the
    /// transaction coordinator was asked ([`AppendQueue::start_verification`]);
    /// a marker written since voids it and the batch is refused
    /// (INVALID_TXN_STATE), so a late commit of an ended transaction cannot
    /// open one that no coordinator knows of.
    pub fn write_transactional(
        &self,
        recs: Vec<GroupRecord>,
        (producer_id, producer_epoch): (ProducerId, ProducerEpoch),
        verification: Verification,
    ) -> Result<Offset, GroupError> {
        let mut staged = self.staged.lock();
        self.write_locked(&mut staged, Vec::new())?;
        if recs.is_empty() {
            return Ok(Offset(self.order_stamp()));
        }
        self.append(&recs, Some((producer_id, producer_epoch)), verification)
    }

    /// Starts KIP-890 part 1 for a TxnOffsetCommit of `producer_id` at
    /// `producer_epoch` (Kafka's coordinator asks with NO_SEQUENCE): the
    /// guard [`AppendQueue::write_transactional`] must bring once the
    /// transaction coordinator confirmed the partition, or `None` when the
    /// producer's transaction is open here already (nothing to ask).
    pub fn start_verification(
        &self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    ) -> Result<Option<VerificationGuard>, GroupError> {
        self.partition
            .log()
            .maybe_start_transaction_verification(producer_id, NO_SEQUENCE, producer_epoch)
            .map_err(|e| storage_refusal(&e))
    }

    /// Queues `recs` (already applied in memory by the caller, under the
    /// group's lock) for the next batch. With no linger, or nothing to wait
    /// for, the write happens now.
    pub fn stage(self: &Arc<Self>, recs: Vec<GroupRecord>) -> Durable {
        let durable = |written| Durable {
            written,
            queue: self.clone(),
        };
        let mut staged = self.staged.lock();
        if recs.is_empty() && staged.waiters.is_empty() {
            return durable(Written::Done(Ok(())));
        }
        let runtime = tokio::runtime::Handle::try_current();
        if self.linger.is_zero() || runtime.is_err() {
            return durable(Written::Done(self.write_locked(&mut staged, recs)));
        }
        let (tx, rx) = oneshot::channel();
        staged.bytes += recs
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
        staged.records.extend(recs);
        staged.waiters.push(tx);
        if staged.bytes >= MAX_STAGED_BYTES {
            // The answer is already in the channel.
            let _ = self.write_locked(&mut staged, Vec::new());
        } else if !staged.timer_armed {
            staged.timer_armed = true;
            let me = self.clone();
            if let Ok(rt) = runtime {
                rt.spawn(async move {
                    tokio::time::sleep(me.linger).await;
                    me.flush();
                });
            }
        }
        durable(Written::Waiting(rx))
    }

    /// Writes whatever is staged (the linger timer, and shutdown).
    pub fn flush(&self) {
        let mut staged = self.staged.lock();
        staged.timer_armed = false;
        let _ = self.write_locked(&mut staged, Vec::new());
    }

    /// Whether a failed write left changes in memory that are not in the
    /// log (clears the mark).
    pub fn take_stale(&self) -> bool {
        self.stale.swap(false, Ordering::AcqRel)
    }

    /// Writes what is staged, then runs `f` with this queue's writes held
    /// off: a reload reads a log that holds every change applied in memory
    /// so far (or, if that write failed too, none of them was answered
    /// with success). `f` must not write here.
    pub fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut staged = self.staged.lock();
        let _ = self.write_locked(&mut staged, Vec::new());
        f()
    }

    /// Appends (and, under `flush.messages`, fsyncs) the staged records and
    /// `recs` as one batch with the queue's lock held. The append must be
    /// under it to order the log like the in-memory changes; the fsync is
    /// too, so that an answer that wrote nothing and finds nothing staged
    /// ([`AppendQueue::stage`]) can go out at once: every change before it
    /// is then durable. Other groups' stagers wait for the fsync, as in
    /// Kafka, whose coordinator also writes one partition's batches in turn.
    fn write_locked(&self, staged: &mut Staged, recs: Vec<GroupRecord>) -> Result<(), GroupError> {
        let had_staged = !staged.records.is_empty();
        let mut all = std::mem::take(&mut staged.records);
        all.extend(recs);
        staged.bytes = 0;
        let waiters = std::mem::take(&mut staged.waiters);
        let result = if all.is_empty() {
            Ok(())
        } else {
            self.append(&all, None, Verification::NotRequired)
                .map(|_| ())
        };
        if result.is_err() && had_staged {
            self.stale.store(true, Ordering::Release);
        }
        for w in waiters {
            let _ = w.send(result);
        }
        result
    }

    /// Appends `recs` as one batch (transactional for `Some((producer id,
    /// epoch))`); returns its first offset.
    ///
    /// This is the one place the coordinator appends, through
    /// `Partition::append_as_leader_checked`: a coordinator-origin append,
    /// so a transactional batch of base sequence -1 gets the producer
    /// epoch check only. An append the log answers as a duplicate (nothing
    /// written) is still refused here, so no offset is applied that is not
    /// in the log.
    fn append(
        &self,
        recs: &[GroupRecord],
        txn: Option<(ProducerId, ProducerEpoch)>,
        verification: Verification,
    ) -> Result<Offset, GroupError> {
        debug_assert!(!recs.is_empty());
        let mut builder = BatchBuilder::new(CompressionType::None);
        if let Some((id, epoch)) = txn {
            builder = builder.producer(id, epoch, NO_SEQUENCE).transactional(true);
        }
        let now = Timestamp(self.clock.now_ms());
        for (k, v) in recs {
            builder
                .append(now, Some(k), v.as_deref(), &[])
                .map_err(|_| GroupError::StorageFailure)?;
        }
        let mut batch = builder.build().map_err(|_| GroupError::StorageFailure)?;
        let log = self.partition.log();
        // Read before the append: if the epoch moves meanwhile, the answer
        // waits on an older epoch than the batch's and fails (safe); it
        // never waits on a newer one.
        let epoch = self.partition.leader_epoch();
        let info = self
            .partition
            .append_as_leader_checked(&mut batch, verification)
            .map_err(|e| {
                let refused = storage_refusal(&e);
                if refused == GroupError::StorageFailure {
                    tracing::error!(partition = ?self.partition.topic_partition(), error = %e, "cannot append to __consumer_offsets");
                } else {
                    tracing::info!(partition = ?self.partition.topic_partition(), error = %e, "__consumer_offsets append refused");
                }
                refused
            })?
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        if info.duplicate {
            // Only a transactional batch can be taken for a retry (see above).
            tracing::warn!(partition = ?self.partition.topic_partition(), ?txn, "a transactional offset commit was taken for a duplicate and not written");
            return Err(GroupError::StorageFailure);
        }
        if info.needs_flush {
            log.flush_until(info.last_offset).map_err(|e| {
                tracing::error!(partition = ?self.partition.topic_partition(), error = %e, "cannot flush __consumer_offsets");
                GroupError::StorageFailure
            })?;
        }
        self.partition.note_append(info.first_offset, info.bytes);
        self.written_end
            .fetch_max(info.last_offset.plus(1).value(), Ordering::AcqRel);
        self.written_epoch.store(epoch.0, Ordering::Release);
        self.partition.publish_append(info.last_offset.plus(1));
        Ok(info.first_offset)
    }
}

/// The group error for an append the log refused.
pub fn storage_refusal(e: &StorageError) -> GroupError {
    match e {
        // The producer's epoch is older than the one the partition knows
        // (a zombie of a transactional id that was initialised again).
        StorageError::InvalidProducerEpoch { .. } => GroupError::InvalidProducerEpoch,
        // A TxnOffsetCommit that would start a transaction without a
        // current verification (KIP-890 part 1): Kafka's log throws
        // InvalidTxnStateException, which its group coordinator passes on.
        StorageError::TransactionNotVerified { .. } => GroupError::InvalidTxnState,
        // Kafka answers a batch larger than the topic allows with
        // UNKNOWN_SERVER_ERROR (the request cannot succeed by retrying).
        StorageError::RecordTooLarge { .. } => GroupError::UnknownServerError,
        // Everything else is the log failing (or, for a coordinator's own
        // batch, cannot be the request's fault): retriable, as Kafka maps
        // a failed coordinator write.
        _ => GroupError::StorageFailure,
    }
}

#[cfg(test)]
mod tests {
    use sluice_metadata::{BrokerId, PartitionEpoch};
    use sluice_record::{ControlRecordType, LeaderEpoch, Offset};
    use sluice_storage::{
        LogConfig, LogManager, LogManagerConfig, SimFs, SystemClock, TopicPartition, TxnMarker,
    };

    use super::*;
    use crate::partition::ReplicaManager;
    use crate::replica::isr::Assignment;
    use crate::replica::ReplicaRole;

    /// A `__consumer_offsets` partition led by 1 with replicas and ISR
    /// [1, 2, 3], and its write queue (no linger, `timeout_ms` to commit).
    fn replicated_queue(timeout_ms: u64) -> (Arc<Partition>, Arc<AppendQueue>) {
        let logs = LogManager::open(
            LogManagerConfig {
                log_dirs: vec!["/d".into()],
                ..Default::default()
            },
            Arc::new(SimFs::new()),
            Arc::new(SystemClock),
        )
        .unwrap();
        let log = logs
            .get_or_create_log(
                &TopicPartition::new("__consumer_offsets", 0),
                LogConfig::default(),
            )
            .unwrap();
        let p = ReplicaManager::new().add_partition(log);
        let all = vec![BrokerId(1), BrokerId(2), BrokerId(3)];
        p.become_replica(&ReplicaRole {
            assignment: Assignment {
                replicas: all.clone(),
                isr: all,
                leader_epoch: LeaderEpoch(3),
                partition_epoch: PartitionEpoch(1),
                unavailable: Vec::new(),
            },
            ..ReplicaRole::alone(BrokerId(1), LeaderEpoch(3))
        });
        let queue = Arc::new(AppendQueue::new(
            p.clone(),
            Arc::new(SystemClock),
            0,
            timeout_ms,
        ));
        (p, queue)
    }

    #[tokio::test]
    async fn a_coordinator_write_is_answered_once_the_isr_has_it() {
        let (p, queue) = replicated_queue(600_000);
        let durable = queue.stage(vec![(b"k".to_vec(), Some(b"v".to_vec()))]);
        let answer = tokio::spawn(durable.wait());
        // Written (stamped with the leader epoch), not yet replicated.
        assert_eq!(p.log().log_end_offset(), Offset(1));
        assert_eq!(
            p.log().read_to_vec(Offset(0), 1 << 20).unwrap()[12..16],
            3i32.to_be_bytes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!answer.is_finished(), "answered before the ISR had it");
        assert!(p.follower_fetch(BrokerId(2), Offset(1), Offset(0), -1, true));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!answer.is_finished(), "answered before 3 had it");
        assert!(p.follower_fetch(BrokerId(3), Offset(1), Offset(0), -1, true));
        let done = tokio::time::timeout(Duration::from_secs(60), answer).await;
        assert_eq!(done.expect("answered").unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn an_unreplicated_coordinator_write_fails_after_the_commit_timeout() {
        let (_p, queue) = replicated_queue(100);
        let durable = queue.stage(vec![(b"k".to_vec(), Some(b"v".to_vec()))]);
        assert_eq!(
            durable.wait().await,
            Err(GroupError::CoordinatorNotAvailable)
        );
    }

    /// A coordinator that loses the partition while its write waits must
    /// not answer it once the high watermark it now follows (the new
    /// leader's, over other records) passes the write's offset (the
    /// cluster simulation's seed 570: a LostCommit).
    #[tokio::test]
    async fn a_write_waiting_when_the_partition_moves_away_fails() {
        let (p, queue) = replicated_queue(600_000);
        let durable = queue.stage(vec![(b"k".to_vec(), Some(b"v".to_vec()))]);
        let answer = tokio::spawn(durable.wait());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!answer.is_finished(), "answered before the ISR had it");
        let all = vec![BrokerId(1), BrokerId(2), BrokerId(3)];
        p.become_replica(&ReplicaRole {
            leader: BrokerId(2),
            assignment: Assignment {
                replicas: all.clone(),
                isr: all,
                leader_epoch: LeaderEpoch(4),
                partition_epoch: PartitionEpoch(2),
                unavailable: Vec::new(),
            },
            ..ReplicaRole::alone(BrokerId(1), LeaderEpoch(4))
        });
        // The new leader's high watermark passes offset 0, whatever record
        // it holds there.
        p.follow_high_watermark(Offset(1));
        let done = tokio::time::timeout(Duration::from_secs(60), answer).await;
        assert_eq!(
            done.expect("answered").unwrap(),
            Err(GroupError::NotCoordinator)
        );
    }

    /// KIP-890 part 1 for a TxnOffsetCommit: the guard taken before the
    /// transaction coordinator is asked is voided by a marker written while
    /// the question is out (the transaction ended meanwhile), so the late
    /// write is refused instead of opening a transaction in
    /// `__consumer_offsets` that no coordinator knows of (one that would
    /// hang its partition's last stable offset for good).
    #[tokio::test]
    async fn a_transactional_commit_whose_guard_a_marker_voided_is_refused() {
        let (p, queue) = replicated_queue(600_000);
        let (pid, epoch) = (ProducerId(7), ProducerEpoch(0));
        let rec = || vec![(b"k".to_vec(), Some(b"v".to_vec()))];
        let guard = queue
            .start_verification(pid, epoch)
            .unwrap()
            .expect("a guard: no transaction is open");
        let abort = TxnMarker {
            producer_id: pid,
            producer_epoch: epoch,
            coordinator_epoch: 0,
            control_type: ControlRecordType::Abort,
            transaction_version: 1,
        };
        p.append_txn_marker(abort)
            .unwrap()
            .expect("the leader writes the marker");
        let late = Verification::Required(Some(guard));
        assert_eq!(
            queue.write_transactional(rec(), (pid, epoch), late),
            Err(GroupError::InvalidTxnState)
        );
        // Nor may a write that skipped the question start one.
        assert_eq!(
            queue.write_transactional(rec(), (pid, epoch), Verification::Required(None)),
            Err(GroupError::InvalidTxnState)
        );
        assert!(!p.log().has_ongoing_transaction(pid));
        // A fresh verification lets the next transaction's commit in; once
        // it is open, the next commit of it needs no question.
        let guard = queue.start_verification(pid, epoch).unwrap().unwrap();
        let fresh = Verification::Required(Some(guard));
        queue
            .write_transactional(rec(), (pid, epoch), fresh)
            .unwrap();
        assert!(p.log().has_ongoing_transaction(pid));
        assert_eq!(queue.start_verification(pid, epoch), Ok(None));
        queue
            .write_transactional(rec(), (pid, epoch), Verification::Required(None))
            .unwrap();
    }
}
