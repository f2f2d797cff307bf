//! The async layer over the pure group engine: one lock per group, the
//! JoinGroup/SyncGroup requests that wait for a rebalance, the timer that
//! drives session and rebalance timeouts, and the `__consumer_offsets` log.
//!
//! Writes: a commit (or group change) is encoded as Kafka records and
//! handed to the group's partition of `__consumer_offsets` while the group's
//! lock is held (so the log order is the order of the in-memory changes).
//! OffsetCommit and ConsumerGroupHeartbeat are lingered writes (Kafka's
//! `group.coordinator.append.linger.ms`, see [`super::append`]): applied in
//! memory at once, written with the partition's next batch, answered when
//! that batch is as durable as the topic's `flush.messages` policy makes it.
//! Every other write goes through at once (with whatever is staged before
//! it) and is applied in memory only after it was written; a TxnOffsetCommit
//! is such a write, as its own transactional batch, and its offsets wait
//! for the transaction's marker (`txn`). Loading (`super::load`): on start
//! every partition is replayed from its log start; until a partition is
//! loaded its groups answer COORDINATOR_LOAD_IN_PROGRESS.
//!
//! This file holds the coordinator's state and the classic group protocol
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the timer). The rest of its
//! API lives in child modules, each an `impl GroupCoordinator` block:
//! `partitions` (the `__consumer_offsets` partitions: leadership, loading,
//! unloading), `offsets` (the offset APIs and offset retention),
//! `consumer_protocol` (KIP-848 heartbeats), `admin` (list, describe,
//! delete), `txn` (transactional offsets) and `waiters` (requests waiting for
//! a rebalance).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_record::ProducerId;
use sluice_storage::Clock;
use tokio::sync::watch;

use super::append::{AppendQueue, Durable, GroupRecord};
use super::classic::{ClassicGroup, Completion, JoinRequest, JoinResult, Reply, SyncResult};
use super::consumer::{self, ConsumerGroup, ConsumerRecord};
use super::offsets::OffsetStore;
use super::records::{self, OffsetCommitValue};
use super::txn_offsets::PendingTxnOffsets;
use super::{GroupConfig, GroupError, GroupState};

mod admin;
mod consumer_protocol;
mod offsets;
mod partitions;
mod txn;
#[cfg(test)]
mod unload_tests;
mod waiters;
pub use txn::TxnCommitter;
use waiters::Waiters;

/// A group's membership and its committed offsets, under one lock.
#[derive(Debug)]
pub struct GroupEntry {
    pub group: ClassicGroup,
    pub offsets: OffsetStore,
    /// Transactional offsets waiting for their transaction's marker.
    pub pending: PendingTxnOffsets,
    /// Set when the group is a consumer group (KIP-848); `group` is then
    /// an empty classic group that is not used.
    pub consumer: Option<ConsumerGroup>,
}

type GroupRef = Arc<Mutex<GroupEntry>>;

/// One partition of `__consumer_offsets` and the groups that map to it.
struct OffsetsPartition {
    loaded: AtomicBool,
    /// The partition's writes, once this broker holds a replica of it.
    queue: OnceLock<Arc<AppendQueue>>,
    groups: Mutex<HashMap<String, GroupRef>>,
    /// The groups each producer has (or had) pending transactional offsets
    /// in, so a transaction's marker finds them without a scan
    /// ([`GroupCoordinator::complete_transaction`]). A hint: the group's own
    /// [`GroupEntry::pending`] decides. Taken after `groups`, never while a
    /// group's lock is awaited.
    txn_producers: Mutex<HashMap<ProducerId, HashSet<String>>>,
}

impl OffsetsPartition {
    /// This broker holds a replica of the partition and does not lead it.
    fn follows(&self) -> bool {
        self.queue.get().is_some_and(|q| !q.partition().is_leader())
    }
}

/// One offset to commit (already checked by the handler: the topic exists,
/// the metadata is not too long).
#[derive(Clone, Debug)]
pub struct CommitRequest {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// One partition's OffsetFetch answer: its committed offset (`None`: no
/// commit), or why there is none to give (UNSTABLE_OFFSET_COMMIT).
pub type FetchedOffset = (String, i32, Result<Option<OffsetCommitValue>, GroupError>);

/// ListGroups entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// The classic state (a consumer group's is mapped onto it).
    pub state: GroupState,
    /// "classic" or "consumer".
    pub group_type: &'static str,
    /// The state as Kafka names it for this group type.
    pub state_name: &'static str,
}

/// DescribeGroups member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// A group's `(session timeout, heartbeat interval)` overrides in ms.
type ConsumerOverrides = (Option<i32>, Option<i32>);

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    config: GroupConfig,
    clock: Arc<dyn Clock>,
    partitions: OnceLock<Vec<OffsetsPartition>>,
    /// Serializes the creation of `__consumer_offsets`.
    creating: tokio::sync::Mutex<()>,
    /// JoinGroup and SyncGroup requests waiting for a rebalance.
    waiters: Waiters,
    shutdown: watch::Sender<bool>,
    /// Per-group `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms`
    /// overrides (KIP-848 group configs; bounded by the metadata store's limit).
    consumer_overrides: Mutex<HashMap<String, ConsumerOverrides>>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, clock: Arc<dyn Clock>) -> Self {
        GroupCoordinator {
            config,
            clock,
            partitions: OnceLock::new(),
            creating: tokio::sync::Mutex::new(()),
            waiters: Waiters::default(),
            shutdown: watch::channel(false).0,
            consumer_overrides: Mutex::new(HashMap::new()),
        }
    }

    /// Sets (or with two `None`s clears) a group's session timeout and
    /// heartbeat interval overrides; its members get them from their next
    /// heartbeat on.
    pub fn set_consumer_overrides(
        &self,
        group_id: &str,
        session_timeout_ms: Option<i32>,
        heartbeat_interval_ms: Option<i32>,
    ) {
        let mut m = self.consumer_overrides.lock();
        if session_timeout_ms.is_none() && heartbeat_interval_ms.is_none() {
            m.remove(group_id);
        } else {
            m.insert(
                group_id.to_string(),
                (session_timeout_ms, heartbeat_interval_ms),
            );
        }
    }

    /// The consumer-protocol settings of one group (broker's, with its overrides).
    fn consumer_config_for(
        &self,
        group_id: &str,
    ) -> std::borrow::Cow<'_, consumer::ConsumerGroupConfig> {
        match self.consumer_overrides.lock().get(group_id) {
            None => std::borrow::Cow::Borrowed(&self.config.consumer),
            Some((session, heartbeat)) => {
                let mut c = self.config.consumer.clone();
                if let Some(s) = session {
                    c.session_timeout_ms = *s;
                }
                if let Some(h) = heartbeat {
                    c.heartbeat_interval_ms = *h;
                }
                std::borrow::Cow::Owned(c)
            }
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A KIP-848 group's config overrides changed (the metadata publisher).
    pub fn apply_group_overrides(&self, group_id: &str, overrides: &BTreeMap<String, String>) {
        let get = |k: &str| overrides.get(k).and_then(|v| v.trim().parse::<i32>().ok());
        self.set_consumer_overrides(
            group_id,
            get("consumer.session.timeout.ms"),
            get("consumer.heartbeat.interval.ms"),
        );
    }

    fn get_group(&self, group_id: &str) -> Result<Option<GroupRef>, GroupError> {
        if self.partitions.get().is_none() {
            // No offsets topic yet: no group exists.
            return Ok(None);
        }
        let p = self.loaded_partition(group_id)?;
        Ok(p.groups.lock().get(group_id).cloned())
    }

    fn get_or_create_group(&self, group_id: &str) -> Result<GroupRef, GroupError> {
        // Stored keys carry the group id as an INT16-length string.
        if group_id.len() > i16::MAX as usize {
            return Err(GroupError::InvalidGroupId);
        }
        let p = self.loaded_partition(group_id)?;
        let now = self.now();
        let mut groups = p.groups.lock();
        let g = groups.entry(group_id.to_string()).or_insert_with(|| {
            Arc::new(Mutex::new(GroupEntry {
                group: ClassicGroup::new(group_id, now),
                offsets: OffsetStore::default(),
                pending: PendingTxnOffsets::default(),
                consumer: None,
            }))
        });
        // A Dead group left in the map is replaced by a fresh one.
        if g.lock().group.state() == GroupState::Dead {
            *g = Arc::new(Mutex::new(GroupEntry {
                group: ClassicGroup::new(group_id, now),
                offsets: OffsetStore::default(),
                pending: PendingTxnOffsets::default(),
                consumer: None,
            }));
        }
        Ok(g.clone())
    }

    // ---- writing to __consumer_offsets ----

    /// The write queue of the group's partition.
    fn queue(&self, group_id: &str) -> Result<&Arc<AppendQueue>, GroupError> {
        self.loaded_partition(group_id)?
            .queue
            .get()
            .ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// Writes `(key, value)` records (value `None` = tombstone) to the
    /// group's partition now, after whatever is staged there; returns once
    /// they are as durable as the topic's flush policy makes them.
    fn append(&self, group_id: &str, recs: &[GroupRecord]) -> Result<(), GroupError> {
        if recs.is_empty() {
            return Ok(());
        }
        self.queue(group_id)?.write_through(recs.to_vec())
    }

    /// Waits until every write to the group's `__consumer_offsets`
    /// partition so far is covered by its high watermark (replicated to the
    /// ISR), at most `offsets.commit.timeout.ms`.
    pub async fn committed(&self, group_id: &str) -> Result<(), GroupError> {
        let queue = self.queue(group_id)?.clone();
        queue.committed().await
    }

    /// Stages records of a change the caller applies in memory now, under
    /// the group's lock (a lingered write, see [`super::append`]).
    fn stage(&self, group_id: &str, recs: Vec<GroupRecord>) -> Result<Durable, GroupError> {
        Ok(self.queue(group_id)?.stage(recs))
    }

    fn persist_group(&self, entry: &GroupEntry) -> Result<(), GroupError> {
        let key = records::group_key(entry.group.group_id());
        let value = records::group_value(&entry.group.snapshot());
        self.append(entry.group.group_id(), &[(key, Some(value))])
    }

    /// Delivers completions of the engine. A `Persist` is written first, so
    /// SyncGroup answers go out only after the assignment is stored.
    fn deliver(&self, entry: &GroupEntry, out: Vec<Completion>) {
        let group_id = entry.group.group_id().to_string();
        let mut persist_failed = None;
        if out.iter().any(|c| matches!(c, Completion::Persist)) {
            if let Err(e) = self.persist_group(entry) {
                persist_failed = Some(e);
            }
        }
        for c in out {
            match c {
                Completion::Persist => {}
                Completion::Join { member_id, result } => {
                    self.waiters.answer_join(&group_id, member_id, result);
                }
                Completion::Sync {
                    member_id,
                    mut result,
                } => {
                    if let (Some(e), None) = (persist_failed, result.error) {
                        result = SyncResult {
                            error: Some(e),
                            protocol_type: None,
                            protocol_name: None,
                            assignment: Bytes::new(),
                        };
                    }
                    self.waiters.answer_sync(&group_id, member_id, result);
                }
            }
        }
    }

    // ---- membership ----

    /// JoinGroup; waits until the rebalance completes.
    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let fail = |e: GroupError, member_id: &str| JoinResult {
            error: Some(e),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        };
        if group_id.is_empty() {
            return fail(GroupError::InvalidGroupId, &req.member_id);
        }
        let original_member = req.member_id.clone();
        let group = match self.get_or_create_group(group_id) {
            Ok(g) => g,
            Err(e) => return fail(e, &req.member_id),
        };
        let rx = {
            let mut entry = group.lock();
            if let Some(c) = &entry.consumer {
                if !c.is_empty() {
                    // Classic members cannot join a consumer group here.
                    return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
                }
                // An empty consumer group becomes a classic group, as Kafka
                // converts it.
                let mut recs = Vec::new();
                for r in c.delete_records() {
                    recs.extend(consumer::records::encode(group_id, &r));
                }
                if let Err(e) = self.append(group_id, &recs) {
                    return fail(e, &req.member_id);
                }
                entry.consumer = None;
            }
            let mut out = Vec::new();
            let reply = entry
                .group
                .join(req, &self.config.limits, self.now(), &mut out);
            let rx = match reply {
                Reply::Now(r) => {
                    self.deliver(&entry, out);
                    return r;
                }
                // A newer join of the same member replaces an older one
                // (the older request's answer is dropped).
                Reply::Later(member_id) => self.waiters.join(group_id, member_id),
            };
            self.deliver(&entry, out);
            rx
        };
        match rx.await {
            Ok(r) => r,
            Err(_) => fail(GroupError::RebalanceInProgress, &original_member),
        }
    }

    /// SyncGroup; waits for the leader's assignment.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let fail = |e: GroupError| SyncResult {
            error: Some(e),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        };
        if group_id.is_empty() {
            return fail(GroupError::InvalidGroupId);
        }
        let group = match self.get_group(group_id) {
            Ok(Some(g)) => g,
            Ok(None) => return fail(GroupError::UnknownMemberId),
            Err(e) => return fail(e),
        };
        let rx = {
            let mut entry = group.lock();
            let mut out = Vec::new();
            let reply = entry.group.sync(
                member_id,
                group_instance_id,
                generation_id,
                protocol_type,
                protocol_name,
                assignments,
                self.now(),
                &mut out,
            );
            let rx = match reply {
                Reply::Now(r) => {
                    self.deliver(&entry, out);
                    return r;
                }
                Reply::Later(id) => self.waiters.sync(group_id, id),
            };
            self.deliver(&entry, out);
            rx
        };
        let result = match rx.await {
            Ok(r) => r,
            Err(_) => return fail(GroupError::RebalanceInProgress),
        };
        if result.error.is_none() {
            // The stored assignment must survive this coordinator.
            if let Err(e) = self.committed(group_id).await {
                return fail(e);
            }
        }
        result
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::UnknownMemberId)?;
        let mut entry = group.lock();
        entry
            .group
            .heartbeat(member_id, group_instance_id, generation_id, self.now())
    }

    /// LeaveGroup for `members` (`(member_id, group_instance_id)`); one
    /// result per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<String, GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = match self.get_group(group_id)? {
            Some(g) => g,
            None => {
                return Ok(members
                    .iter()
                    .map(|_| Err(GroupError::UnknownMemberId))
                    .collect())
            }
        };
        let mut entry = group.lock();
        let mut out = Vec::new();
        let now = self.now();
        let results = members
            .iter()
            .map(|(m, i)| entry.group.leave(m, i.as_deref(), now, &mut out))
            .collect();
        self.deliver(&entry, out);
        Ok(results)
    }

    fn all_groups(&self) -> Vec<GroupRef> {
        let Ok(parts) = self.parts() else {
            return Vec::new();
        };
        parts
            .iter()
            .filter(|p| p.loaded.load(Ordering::Acquire) && !p.follows())
            .flat_map(|p| p.groups.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Runs the engine's timers for every group.
    pub fn tick_all(&self) {
        self.reload_stale();
        self.answer_resigned();
        let now = self.now();
        for g in self.all_groups() {
            let mut entry = g.lock();
            let mut out = Vec::new();
            entry.group.tick(now, &mut out);
            if !out.is_empty() {
                self.deliver(&entry, out);
            }
            self.expire_consumer_members(&mut entry, now);
        }
    }

    // ---- offsets ----
}

/// Each commit with the value it is stored as, committed at `now`.
fn commit_values(
    commits: Vec<CommitRequest>,
    now: i64,
    expire_timestamp: Option<i64>,
) -> Vec<(CommitRequest, OffsetCommitValue)> {
    commits
        .into_iter()
        .map(|c| {
            let v = OffsetCommitValue {
                offset: c.offset,
                leader_epoch: c.leader_epoch,
                metadata: c.metadata.clone(),
                commit_timestamp: now,
                expire_timestamp,
            };
            (c, v)
        })
        .collect()
}

/// `recs` followed by the records of a consumer group's `changes`.
fn consumer_records(
    group_id: &str,
    mut recs: Vec<GroupRecord>,
    changes: &[ConsumerRecord],
) -> Vec<GroupRecord> {
    for c in changes {
        recs.extend(consumer::records::encode(group_id, c));
    }
    recs
}
