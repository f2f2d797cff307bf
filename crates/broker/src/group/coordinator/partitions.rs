//! The coordinator's partitions of `__consumer_offsets`: creating the topic,
//! following leadership changes, loading a partition's groups from its log,
//! and unloading (or reloading) them when leadership moves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use sluice_controller::ControllerError;
use sluice_record::ProducerId;
use sluice_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::group::append::AppendQueue;
use crate::group::records;
use crate::group::{GroupError, OFFSETS_TOPIC};
use crate::metadata::MetadataError;
use crate::partition::{Partition, ReplicaManager};

use super::{GroupCoordinator, GroupEntry, GroupRef, OffsetsPartition};

impl GroupCoordinator {
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

    pub(super) fn install_partitions(&self, replicas: &ReplicaManager, count: i32, loaded: bool) {
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
    pub(super) fn install_existing(self: &Arc<Self>, ctx: &BrokerContext) {
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

    pub(super) fn parts(&self) -> Result<&[OffsetsPartition], GroupError> {
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

    pub(super) fn loaded_partition(&self, group_id: &str) -> Result<&OffsetsPartition, GroupError> {
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

    pub(super) fn load_all(&self) {
        let Ok(parts) = self.parts() else { return };
        for (i, p) in parts.iter().enumerate() {
            if self.load_one(i, p) {
                p.loaded.store(true, Ordering::Release);
            }
        }
    }

    /// Replays partition `i` into its group map; false if it cannot be read
    /// (its groups keep answering COORDINATOR_LOAD_IN_PROGRESS).
    pub(super) fn load_one(&self, i: usize, p: &OffsetsPartition) -> bool {
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

    pub(super) fn replay(
        &self,
        part: &Partition,
    ) -> Result<HashMap<String, GroupEntry>, sluice_storage::StorageError> {
        crate::group::load::load_partition(part, self.now(), &|g| {
            self.consumer_config_for(g).session_timeout_ms
        })
    }

    /// Puts `groups`, replayed from partition `i`'s log, in place of what
    /// memory held for it; the replaced groups are unloaded
    /// ([`GroupCoordinator::unload`]) while the map's lock keeps requests
    /// from finding the new ones.
    pub(super) fn install(
        &self,
        i: usize,
        p: &OffsetsPartition,
        groups: HashMap<String, GroupEntry>,
    ) {
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
    pub(super) fn unload(&self, groups: impl IntoIterator<Item = GroupRef>) {
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
    pub(super) fn answer_resigned(&self) {
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
    pub(super) fn reload_elected(self: &Arc<Self>, elected: &[i32]) {
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
    pub(super) fn reload_stale(&self) {
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
