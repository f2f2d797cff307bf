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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_record::ProducerId;
use sluice_storage::{Clock, TopicPartition};
use tokio::sync::watch;

use super::append::{AppendQueue, Durable, GroupRecord};
use super::classic::{ClassicGroup, Completion, JoinRequest, JoinResult, Reply, SyncResult};
use super::consumer::{
    self, ConsumerGroup, ConsumerRecord, HeartbeatRequest, HeartbeatResponse, MemberState,
    TopicsView,
};
use super::offsets::OffsetStore;
use super::records::{self, OffsetCommitValue};
use super::txn_offsets::PendingTxnOffsets;
use super::{GroupConfig, GroupError, GroupState, OFFSETS_TOPIC};
use crate::context::BrokerContext;
use crate::metadata::MetadataError;
use crate::partition::{Partition, ReplicaManager};
use sluice_controller::ControllerError;

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

    /// Starts the timers. The `__consumer_offsets` partitions come from the
    /// metadata publisher ([`GroupCoordinator::on_offsets_leadership`]);
    /// until then requests for groups get COORDINATOR_LOAD_IN_PROGRESS or,
    /// with no offsets topic, create it on first use
    /// ([`GroupCoordinator::ensure_offsets_topic`]).
    pub async fn start(self: &Arc<Self>) -> Result<(), crate::BrokerError> {
        let me = self.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let tick = Duration::from_millis(me.config.tick_interval_ms.max(10));
            let mut last_expiry = me.now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = shutdown.changed() => return,
                }
                me.tick_all();
                let now = me.now();
                if now - last_expiry >= me.config.offsets_retention_check_interval_ms {
                    last_expiry = now;
                    me.expire_offsets();
                }
            }
        });
        Ok(())
    }

    /// This broker leads the `count` partitions of `__consumer_offsets`
    /// (the metadata publisher calls this when it becomes their leader):
    /// installs them and, if `load`, replays them on a background thread
    /// (their groups answer COORDINATOR_LOAD_IN_PROGRESS until then).
    ///
    /// Once installed, a later call reloads the partitions in `elected`
    /// from their logs: in a cluster this broker becomes leader of a
    /// partition another broker led (a failover, a controlled shutdown),
    /// and its groups are what its replica of the log holds, not what this
    /// broker knew when it last led it (or nothing).
    pub fn on_offsets_leadership(
        self: &Arc<Self>,
        replicas: &ReplicaManager,
        count: i32,
        load: bool,
        elected: &[i32],
    ) {
        if self.partitions.get().is_some() {
            self.reload_elected(elected);
            return;
        }
        self.install_partitions(replicas, count, !load);
        if load {
            let me = self.clone();
            let spawned = sluice_runtime::spawn_thread("group-load", move || me.load_all());
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start loading {OFFSETS_TOPIC}");
            }
        }
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

    fn install_partitions(&self, replicas: &ReplicaManager, count: i32, loaded: bool) {
        let parts: Vec<OffsetsPartition> = (0..count)
            .map(|p| {
                let op = OffsetsPartition {
                    loaded: AtomicBool::new(loaded),
                    queue: OnceLock::new(),
                    groups: Mutex::new(HashMap::new()),
                    txn_producers: Mutex::new(HashMap::new()),
                };
                if let Some(part) = replicas.get_partition(&TopicPartition::new(OFFSETS_TOPIC, p)) {
                    let _ = op.queue.set(Arc::new(AppendQueue::new(
                        part,
                        self.clock.clone(),
                        self.config.append_linger_ms,
                        self.config.offsets_commit_timeout_ms.max(1) as u64,
                    )));
                }
                op
            })
            .collect();
        let _ = self.partitions.set(parts);
    }

    /// Creates `__consumer_offsets` (`offsets.topic.num.partitions`,
    /// `cleanup.policy=compact`) if it does not exist yet. Every group
    /// handler calls this first; after the first success it is one load.
    /// `Ok(true)` when this call created the topic (FindCoordinator then
    /// answers COORDINATOR_NOT_AVAILABLE, as Kafka does).
    pub async fn ensure_offsets_topic(
        self: &Arc<Self>,
        ctx: &BrokerContext,
    ) -> Result<bool, GroupError> {
        if self.partitions.get().is_some() {
            return Ok(false);
        }
        let _guard = self.creating.lock().await;
        if self.partitions.get().is_some() {
            return Ok(false);
        }
        let n = self.config.offsets_topic_num_partitions;
        let seg = self.config.offsets_topic_segment_bytes.to_string();
        // The metadata publisher installs the partitions (as their leader)
        // before the creation is answered.
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), seg),
        ]);
        // `offsets.topic.replication.factor` in a cluster (Kafka's default
        // 3); a single node has one replica to give.
        let rf = ctx
            .config
            .kraft
            .as_ref()
            .map_or(1, |k| k.offsets_topic_replication_factor);
        let created = ctx
            .controller
            .create_topic(OFFSETS_TOPIC, n, rf, configs)
            .await;
        match created {
            Ok(t) => {
                tracing::info!(partitions = t.partitions, "created {OFFSETS_TOPIC}");
                Ok(true)
            }
            // Created by someone else meanwhile (e.g. CreateTopics), or
            // present with some partitions offline (a full disk at start):
            // serve the partitions that are online.
            Err(MetadataError::Controller(ControllerError::TopicAlreadyExists(_))) => {
                self.install_existing(ctx);
                Ok(false)
            }
            // Created, but not every log could be, and it could not be
            // taken back either: served as far as it goes, and this request
            // answered as the one that created it.
            Err(e) if ctx.image.topic(OFFSETS_TOPIC).is_some() => {
                tracing::warn!(error = %e, "{OFFSETS_TOPIC} created with partitions offline");
                self.install_existing(ctx);
                Ok(true)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }

    /// Installs the offsets topic as the image has it, partitions whose
    /// log is offline included (their groups cannot be served).
    fn install_existing(self: &Arc<Self>, ctx: &BrokerContext) {
        if let Some(t) = ctx.image.topic(OFFSETS_TOPIC) {
            self.on_offsets_leadership(&ctx.replicas, t.partitions, true, &[]);
        }
    }

    /// Answers every waiting JoinGroup/SyncGroup (the broker is stopping).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.flush_writes();
        self.waiters
            .fail(|_| true, GroupError::CoordinatorNotAvailable);
    }

    fn parts(&self) -> Result<&[OffsetsPartition], GroupError> {
        self.partitions
            .get()
            .map(Vec::as_slice)
            .ok_or(GroupError::CoordinatorNotAvailable)
    }

    /// The offsets partition that owns `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        let n = self
            .partitions
            .get()
            .map_or(self.config.offsets_topic_num_partitions, |p| p.len() as i32);
        records::partition_for(group_id, n)
    }

    fn loaded_partition(&self, group_id: &str) -> Result<&OffsetsPartition, GroupError> {
        let parts = self.parts()?;
        let p = parts
            .get(self.partition_for(group_id) as usize)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        // A broker that follows the partition (it lost the leadership, or
        // never had it) is not the group's coordinator: what it holds in
        // memory is stale, and it must not answer from it (Kafka's
        // resignation unloads the groups; requests get NOT_COORDINATOR).
        if p.follows() {
            return Err(GroupError::NotCoordinator);
        }
        if !p.loaded.load(Ordering::Acquire) {
            return Err(GroupError::CoordinatorLoadInProgress);
        }
        Ok(p)
    }

    /// Whether the coordinator answers for `group_id` yet.
    pub fn check_ready(&self, group_id: &str) -> Result<(), GroupError> {
        self.loaded_partition(group_id).map(|_| ())
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

    /// OffsetCommit. `generation_id < 0` is a
    /// commit outside group membership (admin tools, manual assignment),
    /// allowed only while the group has no members.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        expire_timestamp: Option<i64>,
        commits: Vec<CommitRequest>,
    ) -> Result<(), GroupError> {
        self.commit_offsets_at_version(
            group_id,
            member_id,
            group_instance_id,
            generation_id,
            expire_timestamp,
            commits,
            9,
        )
        .await
    }

    /// [`GroupCoordinator::commit_offsets`] for an OffsetCommit of
    /// `api_version`: consumer group members must use v9+ (Kafka answers
    /// UNSUPPORTED_VERSION below).
    /// The commit is a lingered write: applied at once, answered when its
    /// batch is written.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_offsets_at_version(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        expire_timestamp: Option<i64>,
        commits: Vec<CommitRequest>,
        api_version: i16,
    ) -> Result<(), GroupError> {
        // Checked, applied and staged under the group's lock, which is
        // released before the answer waits for the batch.
        let stage = move || -> Result<Durable, GroupError> {
            // Kafka: generation < 0 is a commit from outside the group (admin
            // tools, manually assigned consumers), allowed while it has no members.
            let simple = generation_id < 0;
            let group = if simple {
                self.get_or_create_group(group_id)?
            } else {
                // Kafka: a member commit to a group that does not exist is a
                // stale generation (the group was deleted or expired).
                self.get_group(group_id)?
                    .ok_or(GroupError::IllegalGeneration)?
            };
            let mut entry = group.lock();
            let g = &entry.group;
            if g.state() == GroupState::Dead {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            if let Some(c) = &entry.consumer {
                // Kafka's ConsumerGroup.validateOffsetCommit: a commit from
                // outside the group (epoch < 0) only while it is empty; a
                // member's commit carries its current member epoch.
                if !(generation_id < 0 && c.is_empty()) {
                    let m = c.member(member_id).ok_or(GroupError::UnknownMemberId)?;
                    if api_version < 9 {
                        return Err(GroupError::UnsupportedVersion);
                    }
                    if generation_id != m.assignment.member_epoch {
                        return Err(GroupError::StaleMemberEpoch);
                    }
                }
            } else if simple {
                if g.num_members() > 0 {
                    // Kafka: a non-member commit to a group with members.
                    return Err(GroupError::UnknownMemberId);
                }
            } else {
                if g.state() == GroupState::Empty && g.num_members() == 0 {
                    return Err(GroupError::UnknownMemberId);
                }
                if let Some(instance) = group_instance_id {
                    match g
                        .members()
                        .find(|m| m.group_instance_id.as_deref() == Some(instance))
                    {
                        Some(m) if m.member_id != member_id => {
                            return Err(GroupError::FencedInstanceId)
                        }
                        None => return Err(GroupError::UnknownMemberId),
                        _ => {}
                    }
                }
                if g.member(member_id).is_none() {
                    return Err(GroupError::UnknownMemberId);
                }
                if generation_id != g.generation_id() {
                    return Err(GroupError::IllegalGeneration);
                }
                if g.state() == GroupState::CompletingRebalance {
                    return Err(GroupError::RebalanceInProgress);
                }
            }
            let now = self.now();
            let values: Vec<(CommitRequest, OffsetCommitValue)> = commits
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
                .collect();
            let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = values
                .iter()
                .map(|(c, v)| {
                    (
                        records::offset_key(group_id, &c.topic, c.partition),
                        Some(records::offset_value(v)),
                    )
                })
                .collect();
            // Orders these commits against the group's transactional ones
            // (read under the group's lock, before the records are queued).
            let at = self.queue(group_id)?.order_stamp();
            let durable = self.stage(group_id, recs)?;
            for (c, v) in values {
                entry.offsets.apply(c.topic, c.partition, v, at);
            }
            Ok(durable)
        };
        stage()?.wait().await
    }

    /// OffsetFetch: `None` = every committed offset of the group.
    /// Partitions without a commit are returned with `None`. Pending
    /// transactional offsets are never shown.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<(String, i32, Option<OffsetCommitValue>)>, GroupError> {
        Ok(self
            .fetch_offsets_stable(group_id, partitions, false)?
            .into_iter()
            .map(|(t, p, v)| (t, p, v.ok().flatten()))
            .collect())
    }

    /// OffsetFetch with KIP-447's `require_stable` (v7+): then a partition
    /// some open transaction holds a pending offset of answers
    /// UNSTABLE_OFFSET_COMMIT (the client retries until the transaction
    /// ends), as Kafka does per partition; without it, the committed
    /// offset. `None` lists the committed offsets only, as Kafka does (a
    /// partition with nothing but a pending offset is not listed).
    pub fn fetch_offsets_stable(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, GroupError> {
        let group = self.get_group(group_id)?;
        let entry = group.as_ref().map(|g| g.lock());
        let answer = |t: &str, p: i32| -> Result<Option<OffsetCommitValue>, GroupError> {
            let Some(e) = &entry else { return Ok(None) };
            if require_stable && e.pending.is_pending(t, p) {
                return Err(GroupError::UnstableOffsetCommit);
            }
            Ok(e.offsets.get(t, p).cloned())
        };
        Ok(match partitions {
            Some(list) => list
                .into_iter()
                .map(|(t, p)| {
                    let v = answer(&t, p);
                    (t, p, v)
                })
                .collect(),
            None => entry
                .as_ref()
                .map(|e| {
                    e.offsets
                        .all()
                        .map(|((t, p), _)| (t.clone(), *p, answer(t, *p)))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// OffsetDelete: per-partition errors.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Option<GroupError>)>, GroupError> {
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::GroupIdNotFound)?;
        let mut entry = group.lock();
        if entry.group.state() == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed = if entry.group.num_members() > 0 {
            match entry.group.subscribed_topics() {
                Some(t) => Some(t),
                // Members of a non-consumer protocol: Kafka refuses.
                None => return Err(GroupError::NonEmptyGroup),
            }
        } else {
            None
        };
        let mut results = Vec::new();
        let mut recs = Vec::new();
        for (t, p) in partitions {
            let consumer_subscribed = entry
                .consumer
                .as_ref()
                .is_some_and(|c| c.members().any(|m| m.subscribes_to(&t)));
            if consumer_subscribed || subscribed.as_ref().is_some_and(|s| s.contains(&t)) {
                results.push((t, p, Some(GroupError::GroupSubscribedToTopic)));
                continue;
            }
            // Kafka writes the tombstone for a pending transactional
            // offset too; it removes the pending offsets of every producer.
            if entry.offsets.get(&t, p).is_some() || entry.pending.is_pending(&t, p) {
                recs.push((records::offset_key(group_id, &t, p), None));
            }
            results.push((t, p, None));
        }
        self.append(group_id, &recs)?;
        for (t, p, e) in &results {
            if e.is_none() {
                entry.offsets.remove(t, *p);
                entry.pending.remove(t, *p);
            }
        }
        Ok(results)
    }

    /// Removes expired offsets (writing tombstones) and deletes Empty
    /// groups left without offsets (Kafka's offsets.retention.minutes).
    pub fn expire_offsets(&self) {
        let now = self.now();
        let retention = self.config.offsets_retention_ms;
        for g in self.all_groups() {
            let mut entry = g.lock();
            let group_id = entry.group.group_id().to_string();
            let (has_members, empty_since, subscribed) = match &entry.consumer {
                Some(c) => (
                    !c.is_empty(),
                    c.is_empty().then(|| c.empty_since_ms()),
                    // A regex subscriber may consume any topic: keep them all.
                    if c.members()
                        .any(|m| m.subscription.subscribed_topic_regex.is_some())
                    {
                        None
                    } else {
                        Some(c.subscribed_topics(None).into_iter().collect::<Vec<_>>())
                    },
                ),
                None => (
                    entry.group.num_members() > 0,
                    (entry.group.state() == GroupState::Empty
                        && entry.group.protocol_type().is_some())
                    .then(|| entry.group.state_timestamp_ms()),
                    entry.group.subscribed_topics(),
                ),
            };
            // Kafka keeps an offset a transaction has a pending offset of,
            // and a group with an open transaction.
            let mut expired = entry.offsets.expired(
                now,
                retention,
                empty_since,
                subscribed.as_deref(),
                has_members,
            );
            expired.retain(|(t, p)| !entry.pending.is_pending(t, *p));
            let mut recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = expired
                .iter()
                .map(|(t, p)| (records::offset_key(&group_id, t, *p), None))
                .collect();
            let all_gone = expired.len() == entry.offsets.len()
                && entry.pending.is_empty()
                && entry.group.state() == GroupState::Empty
                && entry.group.is_empty()
                && entry.consumer.as_ref().is_none_or(ConsumerGroup::is_empty);
            if all_gone {
                if let Some(c) = &entry.consumer {
                    for r in c.delete_records() {
                        recs.extend(consumer::records::encode(&group_id, &r));
                    }
                }
                recs.push((records::group_key(&group_id), None));
            }
            if recs.is_empty() || self.append(&group_id, &recs).is_err() {
                continue;
            }
            for (t, p) in &expired {
                entry.offsets.remove(t, *p);
            }
            if all_gone {
                entry.consumer = None;
                entry.group.mark_dead(now);
            }
            tracing::info!(group = %group_id, offsets = expired.len(), "expired committed offsets");
        }
        // Drop Dead groups from the maps.
        if let Ok(parts) = self.parts() {
            for p in parts {
                p.groups
                    .lock()
                    .retain(|_, g| g.lock().group.state() != GroupState::Dead);
            }
        }
    }

    /// A topic was deleted: its committed offsets go too (tombstones), as
    /// Kafka does, so a topic re-created under the same name does not
    /// inherit them. Returns how many offsets were removed.
    pub fn on_topic_deleted(&self, topic: &str) -> usize {
        let mut removed = 0;
        for g in self.all_groups() {
            let mut entry = g.lock();
            let group_id = entry.group.group_id().to_string();
            // Committed and pending (transactional) offsets alike, one
            // tombstone per partition.
            let mut gone: BTreeSet<i32> = entry
                .offsets
                .all()
                .filter(|((t, _), _)| t == topic)
                .map(|((_, p), _)| *p)
                .collect();
            gone.extend(
                entry
                    .pending
                    .partitions()
                    .into_iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, p)| p),
            );
            if gone.is_empty() {
                continue;
            }
            let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = gone
                .iter()
                .map(|p| (records::offset_key(&group_id, topic, *p), None))
                .collect();
            if let Err(e) = self.append(&group_id, &recs) {
                tracing::warn!(group = %group_id, topic, error = %e, "cannot delete offsets of a deleted topic");
                continue;
            }
            for p in gone {
                entry.offsets.remove(topic, p);
                entry.pending.remove(topic, p);
                removed += 1;
            }
        }
        removed
    }

    // ---- admin ----

    /// ListGroups (every loaded group that is not Dead).
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let mut v: Vec<GroupListing> = self
            .all_groups()
            .into_iter()
            .filter_map(|g| {
                let e = g.lock();
                if let Some(c) = &e.consumer {
                    let state = c.state();
                    return Some(GroupListing {
                        group_id: c.group_id().to_string(),
                        protocol_type: "consumer".to_string(),
                        state: match state {
                            consumer::ConsumerGroupState::Empty => GroupState::Empty,
                            consumer::ConsumerGroupState::Stable => GroupState::Stable,
                            consumer::ConsumerGroupState::Dead => GroupState::Dead,
                            _ => GroupState::PreparingRebalance,
                        },
                        group_type: "consumer",
                        state_name: state.as_str(),
                    });
                }
                (e.group.state() != GroupState::Dead).then(|| GroupListing {
                    group_id: e.group.group_id().to_string(),
                    protocol_type: e.group.protocol_type().unwrap_or("").to_string(),
                    state: e.group.state(),
                    group_type: "classic",
                    state_name: e.group.state().name(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    /// DescribeGroups for one group. A group that does not exist is
    /// described as Dead with no members, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let dead = GroupDescription {
            group_id: group_id.to_string(),
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        };
        let Some(group) = self.get_group(group_id)? else {
            return Ok(dead);
        };
        let e = group.lock();
        let g = &e.group;
        // Kafka describes a consumer group through DescribeGroups (v0–v5)
        // as Dead: it is not a classic group.
        if g.state() == GroupState::Dead || e.consumer.is_some() {
            return Ok(dead);
        }
        let stable = g.state() == GroupState::Stable;
        let protocol = g.protocol_name().unwrap_or("").to_string();
        Ok(GroupDescription {
            group_id: group_id.to_string(),
            state: g.state(),
            protocol_type: g.protocol_type().unwrap_or("").to_string(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group: only groups without members; writes
    /// tombstones for its offsets and its metadata. Open transactions do
    /// not keep a group from being deleted (Kafka's rule): their pending
    /// offsets get tombstones too, and their markers later find nothing.
    pub fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::GroupIdNotFound)?;
        let mut entry = group.lock();
        match entry.group.state() {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty if entry.group.is_empty() => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        if entry.consumer.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(GroupError::NonEmptyGroup);
        }
        let mut keys: BTreeSet<(String, i32)> =
            entry.offsets.all().map(|(k, _)| k.clone()).collect();
        keys.extend(entry.pending.partitions());
        let mut recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
            .iter()
            .map(|(t, p)| (records::offset_key(group_id, t, *p), None))
            .collect();
        if let Some(c) = &entry.consumer {
            for r in c.delete_records() {
                recs.extend(consumer::records::encode(group_id, &r));
            }
        }
        recs.push((records::group_key(group_id), None));
        self.append(group_id, &recs)?;
        entry.offsets = OffsetStore::default();
        entry.pending = PendingTxnOffsets::default();
        entry.consumer = None;
        entry.group.mark_dead(self.now());
        drop(entry);
        if let Ok(p) = self.loaded_partition(group_id) {
            p.groups.lock().remove(group_id);
        }
        Ok(())
    }

    // ---- consumer groups (KIP-848) ----

    /// ConsumerGroupHeartbeat (already checked with
    /// [`consumer::validate_heartbeat`]; `req.member_id` is not empty).
    /// `topics` is the cluster's topics now. The group's changes are
    /// written to `__consumer_offsets` (a lingered write) before the answer.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: HeartbeatRequest,
        topics: &TopicsView,
    ) -> Result<HeartbeatResponse, GroupError> {
        let (resp, durable) = self.consumer_heartbeat_staged(group_id, req, topics)?;
        durable.wait().await?;
        Ok(resp)
    }

    fn consumer_heartbeat_staged(
        &self,
        group_id: &str,
        req: HeartbeatRequest,
        topics: &TopicsView,
    ) -> Result<(HeartbeatResponse, Durable), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidRequest);
        }
        let joining = req.member_epoch == 0;
        let group = if joining {
            self.get_or_create_group(group_id)?
        } else {
            self.get_group(group_id)?
                .ok_or(GroupError::GroupIdNotFound)?
        };
        let now = self.now();
        let mut entry = group.lock();
        let mut pre = Vec::new();
        let mut cg = match &entry.consumer {
            Some(c) => c.clone(),
            None => {
                // Kafka: a classic group of the same id is not a consumer
                // group; an empty one is converted on the first join.
                let classic_empty =
                    entry.group.state() == GroupState::Empty && entry.group.is_empty();
                if !joining || !classic_empty {
                    return Err(GroupError::GroupIdNotFound);
                }
                if entry.group.protocol_type().is_some() {
                    pre.push((records::group_key(group_id), None));
                }
                ConsumerGroup::new(group_id, now)
            }
        };
        let mut out = Vec::new();
        let config = self.consumer_config_for(group_id);
        let resp = cg.heartbeat(req, topics, &config, now, &mut out)?;
        let durable = self.stage(group_id, consumer_records(group_id, pre, &out))?;
        entry.consumer = Some(cg);
        Ok((resp, durable))
    }

    /// Removes consumer group members whose session expired or that did
    /// not revoke within their rebalance timeout.
    fn expire_consumer_members(&self, entry: &mut GroupEntry, now: i64) {
        let Some(c) = &entry.consumer else { return };
        let due = c.members().any(|m| {
            m.session_deadline_ms <= now
                || (m.assignment.state == MemberState::UnrevokedPartitions
                    && m.rebalance_deadline_ms.is_some_and(|d| d <= now))
        });
        if !due {
            return;
        }
        let mut c = c.clone();
        let mut out = Vec::new();
        let gone = c.expire_members(now, &mut out);
        let group_id = c.group_id().to_string();
        match self.append(&group_id, &consumer_records(&group_id, Vec::new(), &out)) {
            Ok(()) => {
                tracing::info!(group = %group_id, members = ?gone, "removed consumer group members (session or rebalance timeout)");
                entry.consumer = Some(c);
            }
            Err(e) => {
                tracing::warn!(group = %group_id, error = %e, "cannot remove expired consumer group members")
            }
        }
    }

    /// A consumer group's state for ConsumerGroupDescribe (a copy).
    /// GROUP_ID_NOT_FOUND if there is none (or it is a classic group).
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<ConsumerGroup, GroupError> {
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::GroupIdNotFound)?;
        let entry = group.lock();
        entry.consumer.clone().ok_or(GroupError::GroupIdNotFound)
    }

    /// OffsetFetch v9 of a consumer group member: the member must exist
    /// and send its current epoch (Kafka's `validateOffsetFetch`); a fetch
    /// without member id and with epoch < 0 (admin tools) is always allowed.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(group) = self.get_group(group_id)? else {
            return Ok(());
        };
        let entry = group.lock();
        let Some(c) = &entry.consumer else {
            return Ok(());
        };
        let member_id = member_id.filter(|m| !m.is_empty());
        if member_id.is_none() && member_epoch < 0 {
            return Ok(());
        }
        let m = c
            .member(member_id.unwrap_or(""))
            .ok_or(GroupError::UnknownMemberId)?;
        if m.assignment.member_epoch != member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    // ---- loading ----

    fn load_all(&self) {
        let Ok(parts) = self.parts() else { return };
        for (i, p) in parts.iter().enumerate() {
            if self.load_one(i, p) {
                p.loaded.store(true, Ordering::Release);
            }
        }
    }

    /// Replays partition `i` into its group map; false if it cannot be read
    /// (its groups keep answering COORDINATOR_LOAD_IN_PROGRESS).
    fn load_one(&self, i: usize, p: &OffsetsPartition) -> bool {
        let Some(part) = p.queue.get().map(|q| q.partition()) else {
            return true;
        };
        match self.replay(part) {
            Ok(groups) => {
                self.install(i, p, groups);
                true
            }
            Err(e) => {
                tracing::error!(partition = i, error = %e, "cannot load __consumer_offsets partition");
                false
            }
        }
    }

    fn replay(
        &self,
        part: &Partition,
    ) -> Result<HashMap<String, GroupEntry>, sluice_storage::StorageError> {
        super::load::load_partition(part, self.now(), &|g| {
            self.consumer_config_for(g).session_timeout_ms
        })
    }

    /// Puts `groups`, replayed from partition `i`'s log, in place of what
    /// memory held for it; the replaced groups are unloaded
    /// ([`GroupCoordinator::unload`]) while the map's lock keeps requests
    /// from finding the new ones.
    fn install(&self, i: usize, p: &OffsetsPartition, groups: HashMap<String, GroupEntry>) {
        let n = groups.len();
        let mut producers: HashMap<ProducerId, HashSet<String>> = HashMap::new();
        for (id, e) in &groups {
            for producer in e.pending.producers() {
                producers.entry(producer).or_default().insert(id.clone());
            }
        }
        let mut map = p.groups.lock();
        let replaced = std::mem::replace(
            &mut *map,
            groups
                .into_iter()
                .map(|(id, e)| (id, Arc::new(Mutex::new(e))))
                .collect(),
        );
        *p.txn_producers.lock() = producers;
        self.unload(replaced.into_values());
        drop(map);
        if n > 0 {
            tracing::info!(
                partition = i,
                groups = n,
                "loaded groups from __consumer_offsets"
            );
        }
    }

    /// Groups leaving memory: each is marked Dead under its lock and its
    /// waiting JoinGroup and SyncGroup requests are answered
    /// NOT_COORDINATOR, as Kafka's `onGroupUnloaded` does (see
    /// [`waiters`]). Without it a JoinGroup waiting in a group that a reload
    /// replaced waited until the client gave up (minutes): no timer runs for
    /// a group that is not in the map.
    fn unload(&self, groups: impl IntoIterator<Item = GroupRef>) {
        let now = self.now();
        let mut gone = HashSet::new();
        for g in groups {
            let mut entry = g.lock();
            entry.group.mark_dead(now);
            gone.insert(entry.group.group_id().to_owned());
        }
        if !gone.is_empty() {
            self.waiters
                .fail(|g| gone.contains(g), GroupError::NotCoordinator);
        }
    }

    /// Answers NOT_COORDINATOR to the requests waiting in groups of
    /// partitions this broker no longer leads (Kafka's resignation): their
    /// groups' timers no longer run here, and the new coordinator has the
    /// members rejoin. The groups stay in memory, unused, until a reload.
    fn answer_resigned(&self) {
        if self.waiters.is_empty() {
            return;
        }
        let Ok(parts) = self.parts() else { return };
        if !parts.iter().any(OffsetsPartition::follows) {
            return;
        }
        let n = self.waiters.fail(
            |g| {
                parts
                    .get(self.partition_for(g) as usize)
                    .is_some_and(OffsetsPartition::follows)
            },
            GroupError::NotCoordinator,
        );
        if n > 0 {
            tracing::info!(
                requests = n,
                "answered NOT_COORDINATOR to requests waiting in groups led elsewhere now"
            );
        }
    }

    /// Replays each partition in `elected` (indexes) again on a background
    /// thread; its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile.
    fn reload_elected(self: &Arc<Self>, elected: &[i32]) {
        let Ok(parts) = self.parts() else { return };
        let wanted: Vec<usize> = elected
            .iter()
            .filter_map(|&i| usize::try_from(i).ok())
            .filter(|&i| i < parts.len() && parts[i].queue.get().is_some())
            .collect();
        if wanted.is_empty() {
            return;
        }
        for &i in &wanted {
            parts[i].loaded.store(false, Ordering::Release);
        }
        let me = self.clone();
        let spawned = sluice_runtime::spawn_thread("group-reload", move || {
            let Ok(parts) = me.parts() else { return };
            for i in wanted {
                let p = &parts[i];
                if me.load_one(i, p) {
                    p.loaded.store(true, Ordering::Release);
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start reloading {OFFSETS_TOPIC}");
        }
    }

    /// Reloads from the log every partition where a failed batch left
    /// lingered changes in memory that are not in the log (their answers
    /// were errors), so memory is again what a restart would load.
    fn reload_stale(&self) {
        let Ok(parts) = self.parts() else { return };
        for (i, p) in parts.iter().enumerate() {
            let Some(q) = p.queue.get() else { continue };
            if !q.take_stale() {
                continue;
            }
            tracing::warn!(
                partition = i,
                "reloading __consumer_offsets partition after a failed write"
            );
            p.loaded.store(false, Ordering::Release);
            // The log is read with the queue's writes held off, and the
            // groups are installed after (the map's lock is taken before
            // group locks, and those before the queue's). A request that
            // held a group from before the reload may still write in
            // between; then the log end moved and the replay is repeated.
            let part = q.partition();
            for attempt in 1..=8 {
                let (read, end) = q.exclusive(|| (self.replay(part), part.log().log_end_offset()));
                match read {
                    Ok(groups) => self.install(i, p, groups),
                    Err(e) => {
                        // A log that cannot be read (its directory goes
                        // offline after an I/O error, until restart) leaves
                        // the partition unloaded: its groups answer
                        // COORDINATOR_LOAD_IN_PROGRESS, never state that
                        // is not in the log.
                        tracing::error!(partition = i, error = %e, "cannot reload __consumer_offsets partition");
                        break;
                    }
                }
                if part.log().log_end_offset() == end || attempt == 8 {
                    p.loaded.store(true, Ordering::Release);
                    break;
                }
            }
        }
    }

    /// Writes every lingered change still waiting for its batch.
    pub fn flush_writes(&self) {
        let Ok(parts) = self.parts() else { return };
        for q in parts.iter().filter_map(|p| p.queue.get()) {
            q.flush();
        }
    }
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
