//! The `__transaction_state` partitions this broker leads (Kafka's
//! `TransactionStateManager`): their transactional ids in memory, their
//! loading, and the one way a transaction's state is written.
//!
//! Invariants:
//! - A partition serves requests only while this broker leads it in the
//!   leader epoch it was loaded in (that epoch is the *coordinator epoch*
//!   every marker carries, so a partition leader can fence a zombie
//!   coordinator). Anything else answers NOT_COORDINATOR, or
//!   COORDINATOR_LOAD_IN_PROGRESS while it loads.
//! - A write is answered only once the partition's high watermark covers
//!   it (`acks=all` on the state topic), so a new coordinator reloads every
//!   state a client was told about.
//! - The ids in memory are bounded by what the log holds: one entry per
//!   transactional id with a record, removed by its tombstone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sluice_record::{records, Batches, LeaderEpoch};
use sluice_storage::{Clock, TopicPartition};

use super::load::{self, Loaded};
use super::metadata::{TransactionMetadata, Transition};
use super::records as txn_records;
use super::{TransactionConfig, TxnError, TRANSACTION_STATE_TOPIC};
use crate::group::append::AppendQueue;
use crate::group::GroupError;
use crate::partition::{Partition, ReplicaManager};

/// One transactional id's state, locked while a change is prepared or
/// completed (never across a write: the pending state marks a write in
/// flight).
pub type TxnRef = Arc<Mutex<TransactionMetadata>>;

/// Largest batch read at once while loading.
const LOAD_READ_BYTES: usize = 1 << 20;
/// Largest record batch accepted while loading (decompressed).
const LOAD_MAX_BATCH: usize = 64 << 20;

/// A `__transaction_state` partition this broker leads.
pub struct StatePartition {
    pub index: i32,
    /// The leader epoch it was loaded in.
    pub coordinator_epoch: LeaderEpoch,
    loaded: AtomicBool,
    ids: Mutex<HashMap<String, TxnRef>>,
    queue: Arc<AppendQueue>,
}

impl StatePartition {
    fn partition(&self) -> &Arc<Partition> {
        self.queue.partition()
    }

    /// Whether this broker still leads the partition in the epoch it was
    /// loaded in.
    pub fn is_current(&self) -> bool {
        let p = self.partition();
        p.is_leader() && p.leader_epoch() == self.coordinator_epoch
    }

    fn check(&self) -> Result<(), TxnError> {
        if !self.is_current() {
            return Err(TxnError::NotCoordinator);
        }
        if !self.loaded.load(Ordering::Acquire) {
            return Err(TxnError::CoordinatorLoadInProgress);
        }
        Ok(())
    }

    /// Every id of the partition (the timers walk them).
    pub fn all(&self) -> Vec<TxnRef> {
        self.ids.lock().values().cloned().collect()
    }
}

/// The partitions of `__transaction_state` led here.
pub struct TransactionStateManager {
    config: TransactionConfig,
    clock: Arc<dyn Clock>,
    /// The topic's partition count once it exists (ids map onto it).
    num_partitions: std::sync::atomic::AtomicI32,
    partitions: RwLock<HashMap<i32, Arc<StatePartition>>>,
    /// Loaded partitions' transactions whose markers must be resumed
    /// (at most one entry per load).
    resumes: Mutex<Vec<(Arc<StatePartition>, Vec<TxnRef>)>>,
    resumed: tokio::sync::Notify,
}

impl TransactionStateManager {
    pub fn new(config: TransactionConfig, clock: Arc<dyn Clock>) -> Self {
        TransactionStateManager {
            config,
            clock,
            num_partitions: std::sync::atomic::AtomicI32::new(0),
            partitions: RwLock::new(HashMap::new()),
            resumes: Mutex::new(Vec::new()),
            resumed: tokio::sync::Notify::new(),
        }
    }

    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The topic exists with `count` partitions.
    pub fn set_num_partitions(&self, count: i32) {
        self.num_partitions.store(count, Ordering::Release);
    }

    /// The partition of `__transaction_state` that owns `transactional_id`
    /// (`None` before the topic exists).
    pub fn partition_for(&self, transactional_id: &str) -> Option<i32> {
        let n = self.num_partitions.load(Ordering::Acquire);
        (n > 0).then(|| crate::coordinator::partition_for(transactional_id, n))
    }

    /// The loaded partition that owns `transactional_id`.
    pub fn owner(&self, transactional_id: &str) -> Result<Arc<StatePartition>, TxnError> {
        let index = self
            .partition_for(transactional_id)
            .ok_or(TxnError::NotCoordinator)?;
        let p = self
            .partitions
            .read()
            .get(&index)
            .cloned()
            .ok_or(TxnError::NotCoordinator)?;
        p.check()?;
        Ok(p)
    }

    /// `transactional_id`'s state and its partition, if it has one.
    pub fn get(
        &self,
        transactional_id: &str,
    ) -> Result<(Arc<StatePartition>, Option<TxnRef>), TxnError> {
        let p = self.owner(transactional_id)?;
        let m = p.ids.lock().get(transactional_id).cloned();
        Ok((p, m))
    }

    /// `transactional_id`'s state, `fresh` put in if it has none.
    pub fn get_or_insert(
        &self,
        transactional_id: &str,
        fresh: TransactionMetadata,
    ) -> Result<(Arc<StatePartition>, TxnRef), TxnError> {
        let p = self.owner(transactional_id)?;
        let m = p
            .ids
            .lock()
            .entry(transactional_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(fresh)))
            .clone();
        Ok((p, m))
    }

    /// Forgets an expired id (its tombstone is written).
    pub fn remove(&self, p: &StatePartition, transactional_id: &str, m: &TxnRef) {
        let mut ids = p.ids.lock();
        if ids
            .get(transactional_id)
            .is_some_and(|cur| Arc::ptr_eq(cur, m))
        {
            ids.remove(transactional_id);
        }
    }

    /// Every loaded partition still led here.
    pub fn current(&self) -> Vec<Arc<StatePartition>> {
        self.partitions
            .read()
            .values()
            .filter(|p| p.is_current() && p.loaded.load(Ordering::Acquire))
            .cloned()
            .collect()
    }

    /// Writes `t` (the pending change of `transactional_id`) to its
    /// partition and waits until the ISR has it. Errors as Kafka maps a
    /// failed append of the state log: a lost leadership is
    /// NOT_COORDINATOR, a write the ISR did not take in time
    /// COORDINATOR_NOT_AVAILABLE.
    pub async fn write(
        &self,
        p: &StatePartition,
        transactional_id: &str,
        t: Option<&Transition>,
    ) -> Result<(), TxnError> {
        if !p.is_current() {
            return Err(TxnError::NotCoordinator);
        }
        // Value v1 (flexible, KIP-890 fields) only for version 2 clients,
        // so a cluster that never negotiated it stays readable by Kafka's
        // pre-4.0 tools, as Kafka writes.
        let value = t.map(|t| {
            let version = if t.value.client_transaction_version >= 2 {
                1
            } else {
                0
            };
            txn_records::encode_value(&t.value, version)
        });
        let record = (txn_records::key(transactional_id), value);
        let written = p.queue.write_through(vec![record]);
        let written = match written {
            Ok(()) => p.queue.committed().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) if p.is_current() => Ok(()),
            Ok(()) => Err(TxnError::NotCoordinator),
            Err(_) if !p.is_current() => Err(TxnError::NotCoordinator),
            Err(GroupError::CoordinatorNotAvailable | GroupError::StorageFailure) => {
                Err(TxnError::CoordinatorNotAvailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "unexpected error writing {TRANSACTION_STATE_TOPIC}");
                Err(TxnError::UnknownServerError)
            }
        }
    }

    /// This broker now leads `index` (a new leader epoch): the partition
    /// answers COORDINATOR_LOAD_IN_PROGRESS while a background thread
    /// replays it from its log; its ids then replace whatever was here,
    /// and the ids whose markers must be written again go to
    /// [`TransactionStateManager::take_resumes`]. A log that cannot be
    /// read leaves the partition loading (never serving state that is not
    /// in the log).
    pub fn begin_load(self: &Arc<Self>, replicas: &ReplicaManager, index: i32) {
        let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, index);
        let Some(part) = replicas.get_partition(&tp) else {
            return;
        };
        if !part.is_leader() {
            return;
        }
        let sp = Arc::new(StatePartition {
            index,
            coordinator_epoch: part.leader_epoch(),
            loaded: AtomicBool::new(false),
            ids: Mutex::new(HashMap::new()),
            queue: Arc::new(AppendQueue::new(
                part.clone(),
                self.clock.clone(),
                0,
                self.config.request_timeout_ms.max(1) as u64,
            )),
        });
        self.partitions.write().insert(index, sp.clone());
        let me = self.clone();
        let spawned = sluice_runtime::spawn_thread("txn-load", move || me.load(&sp, &part));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start loading {TRANSACTION_STATE_TOPIC}");
        }
    }

    fn load(&self, sp: &Arc<StatePartition>, part: &Partition) {
        let loaded = match read_partition(part) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(partition = sp.index, error = %e, "cannot load {TRANSACTION_STATE_TOPIC}");
                return;
            }
        };
        let resume: Vec<String> = loaded
            .pending_markers()
            .map(|m| m.transactional_id.clone())
            .collect();
        let n = loaded.transactions.len();
        let ids: HashMap<String, TxnRef> = loaded
            .transactions
            .into_iter()
            .map(|(id, m)| (id, Arc::new(Mutex::new(m))))
            .collect();
        let resume: Vec<TxnRef> = resume
            .iter()
            .filter_map(|id| ids.get(id).cloned())
            .collect();
        *sp.ids.lock() = ids;
        sp.loaded.store(true, Ordering::Release);
        tracing::info!(
            partition = sp.index,
            transactional_ids = n,
            coordinator_epoch = sp.coordinator_epoch.0,
            "loaded {TRANSACTION_STATE_TOPIC} partition"
        );
        if !resume.is_empty() {
            self.resumes.lock().push((sp.clone(), resume));
            self.resumed.notify_one();
        }
    }

    /// Transactions that loads found prepared but not completed (their
    /// markers are written again), waiting until there are some.
    pub async fn take_resumes(&self) -> Vec<(Arc<StatePartition>, Vec<TxnRef>)> {
        loop {
            let taken = std::mem::take(&mut *self.resumes.lock());
            if !taken.is_empty() {
                return taken;
            }
            self.resumed.notified().await;
        }
    }

    /// This broker no longer leads `index`.
    pub fn unload(&self, index: i32) {
        if self.partitions.write().remove(&index).is_some() {
            tracing::info!(
                partition = index,
                "unloaded {TRANSACTION_STATE_TOPIC} partition"
            );
        }
    }

    /// Whether a partition led here is still loading.
    pub fn any_loading(&self) -> bool {
        self.partitions
            .read()
            .values()
            .any(|p| p.is_current() && !p.loaded.load(Ordering::Acquire))
    }
}

/// Replays one partition's log, record by record, as it is read
/// ([`load::Replay`]).
fn read_partition(part: &Partition) -> Result<Loaded, String> {
    let log = part.log();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut replay = load::Replay::default();
    while offset < end {
        let buf = log
            .read_to_vec(offset, LOAD_READ_BYTES)
            .map_err(|e| e.to_string())?;
        if buf.is_empty() {
            break;
        }
        let mut next = offset;
        for item in Batches::without_crc(&buf) {
            let Ok((pos, header)) = item else { break };
            next = header.next_offset();
            if header.is_control() {
                continue;
            }
            let batch = &buf[pos..pos + header.size()];
            let reader = records(batch, LOAD_MAX_BATCH).map_err(|e| e.to_string())?;
            for rec in reader.records() {
                let rec = rec.map_err(|e| e.to_string())?;
                if let Some(key) = rec.key {
                    replay.apply(key, rec.value).map_err(|e| format!("{e:?}"))?;
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(replay.finish())
}
