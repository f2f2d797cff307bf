//! The broker-side publishers: each applies one kind of metadata change
//! to this broker's services, in the order the loader calls them.
//!
//! - [`PartitionsPublisher`]: the partitions this broker hosts. It
//!   creates or opens the log of every partition it leads or follows,
//!   sets the leader epoch and role from the `PartitionRegistration`,
//!   applies topic config overrides to the logs, and deletes the logs of
//!   replicas it no longer hosts. On the first image it also deletes the
//!   partition directories the image does not know (a deletion persisted
//!   but not finished before a crash). With replica fetchers, it stops
//!   fetching what this broker now leads or drops before roles change, and
//!   fetches what it follows from the leader afterwards
//!   (`replica_fetcher::publish`).
//! - [`GroupCoordinatorPublisher`]: loads the `__consumer_offsets`
//!   partitions this broker leads into the group coordinator, and drops
//!   the committed offsets of deleted topics.
//! - [`GroupConfigPublisher`]: hands KIP-848 group config overrides (GROUP
//!   `ConfigRecord`s) to the group coordinator.
//! - [`BrokerConfigPublisher`]: dynamic broker configs (BROKER
//!   `ConfigRecord`s of the cluster default "" and of this node) into the
//!   broker's config, then the log config of every hosted partition. It
//!   runs first, so logs created by the same change get the new defaults.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_metadata::{
    BrokerId, ConfigResourceType, LocalPartition, LocalReplicaChanges, MetadataChanges,
    MetadataDelta, MetadataImage,
};
use sluice_storage::{Fs, LogConfig, LogManager, StorageError, TopicPartition};

use super::image_cache::topic_resource;
use super::loader::MetadataPublisher;
use crate::config::dynamic::DynamicBrokerConfigs;
use crate::config::BrokerConfig;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::network::tls_reload::{is_store_key, TlsListeners};
use crate::partition::ReplicaManager;
use crate::quota::connections::ConnectionQuotas;
use crate::replica::isr::Assignment;
use crate::replica::quota::QuotaSettings;
use crate::replica::ReplicaRole;
use crate::replica_fetcher::ReplicaFetcherManager;
use crate::txn::state_manager::TransactionStateManager;
use crate::txn::TRANSACTION_STATE_TOPIC;

/// Why a hosted partition has no log (it stays offline).
#[derive(Clone, Debug)]
pub struct PartitionFailure {
    pub no_space: bool,
    pub message: String,
}

/// Creates, opens, updates and deletes the logs of this broker's replicas.
pub struct PartitionsPublisher {
    node: BrokerId,
    config: Arc<BrokerConfig>,
    logs: Arc<LogManager>,
    replicas: Arc<ReplicaManager>,
    fs: Arc<dyn Fs>,
    /// Partitions this broker hosts whose log could not be created.
    failures: Mutex<BTreeMap<TopicPartition, PartitionFailure>>,
    /// Whether the first image may delete stray logs: only when it is
    /// known to cover everything this node's metadata log held at start
    /// (see [`PartitionsPublisher::keep_strays`]).
    delete_strays: std::sync::atomic::AtomicBool,
    /// The replica fetchers, when this broker can follow (see
    /// [`PartitionsPublisher::with_fetchers`]).
    fetchers: Option<Arc<ReplicaFetcherManager>>,
    /// The image last published, and the lock that keeps a retry
    /// ([`PartitionsPublisher::retry_full_disk`]) from running inside a
    /// publish.
    published: Mutex<Option<MetadataImage>>,
}

impl PartitionsPublisher {
    pub fn new(
        node: BrokerId,
        config: Arc<BrokerConfig>,
        logs: Arc<LogManager>,
        replicas: Arc<ReplicaManager>,
        fs: Arc<dyn Fs>,
    ) -> Self {
        PartitionsPublisher {
            node,
            config,
            logs,
            replicas,
            fs,
            failures: Mutex::new(BTreeMap::new()),
            delete_strays: std::sync::atomic::AtomicBool::new(true),
            fetchers: None,
            published: Mutex::new(None),
        }
    }

    /// Partitions this broker follows are fetched by `fetchers`.
    pub fn with_fetchers(mut self, fetchers: Arc<ReplicaFetcherManager>) -> Self {
        self.fetchers = Some(fetchers);
        self
    }

    /// Before roles change: what this broker now leads or no longer hosts
    /// stops being fetched (nothing fetched is appended after this).
    fn stop_fetchers(&self, local: &LocalReplicaChanges) {
        if let Some(f) = &self.fetchers {
            crate::replica_fetcher::publish::stop_fetchers(f, local);
        }
    }

    /// After roles change: what this broker follows is fetched from its
    /// leader, from the log end offset (nothing is truncated here).
    fn start_fetchers(&self, changes: &MetadataChanges, local: &LocalReplicaChanges) {
        if let Some(f) = &self.fetchers {
            crate::replica_fetcher::publish::start_fetchers(f, self.node, changes, local, |tp| {
                self.replicas
                    .get_partition(tp)
                    .map(|p| p.log().log_end_offset())
            });
        }
    }

    /// Why `tp` (hosted here) has no log, if it failed.
    pub fn failure(&self, tp: &TopicPartition) -> Option<PartitionFailure> {
        self.failures.lock().get(tp).cloned()
    }

    /// The log config of a topic from its overrides in the image. A stored
    /// override this build does not accept (written by a newer version)
    /// is left out rather than keeping the partition offline.
    fn log_config(&self, topic: &str, overrides: &BTreeMap<String, String>) -> Option<LogConfig> {
        match self.config.topic_log_config(overrides) {
            Ok(c) => Some(c),
            Err(e) => {
                let valid: BTreeMap<String, String> = overrides
                    .iter()
                    .filter(|(k, v)| {
                        let one = BTreeMap::from([((*k).clone(), (*v).clone())]);
                        self.config.topic_log_config(&one).is_ok()
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                tracing::warn!(topic, error = %e, "ignoring topic configs this broker does not accept");
                self.config.topic_log_config(&valid).ok()
            }
        }
    }

    /// Keeps every stray log at this start: the first image may lack
    /// topics this node still hosts (its own metadata log was not applied
    /// in time), and deleting their logs would lose acknowledged data. They
    /// are judged again at the next start.
    pub fn keep_strays(&self) {
        self.delete_strays
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Deletes the partition directories of the log dirs that `changes`'
    /// image does not place on this broker.
    fn delete_strays(&self, changes: &MetadataChanges) {
        if !self
            .delete_strays
            .load(std::sync::atomic::Ordering::Acquire)
        {
            tracing::warn!("keeping the logs of partitions the first metadata image does not name (it may be incomplete)");
            return;
        }
        let image = &changes.image;
        for tp in self.logs.on_disk_partitions() {
            let hosted = image
                .topic(&tp.topic)
                .and_then(|t| t.partition(tp.partition))
                .is_some_and(|reg| reg.has_replica(self.node));
            if hosted {
                continue;
            }
            tracing::info!(partition = %tp, "deleting log of a partition that no longer exists");
            // LogManager deletes loaded logs only: load it first. A stray
            // log that cannot even be loaded is removed directly, so a
            // topic re-created under the same name never sees its data.
            let result = match self.logs.get_or_create_log(&tp, LogConfig::default()) {
                Ok(_) => self.logs.delete_log(&tp).map_err(|e| e.to_string()),
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "stray log does not load; removing its directory");
                    self.remove_dirs(&tp)
                }
            };
            if let Err(e) = result {
                tracing::warn!(partition = %tp, error = %e, "cannot delete a stray log");
            }
        }
    }

    fn remove_dirs(&self, tp: &TopicPartition) -> Result<(), String> {
        for dir in &self.config.log_dirs {
            let path = dir.join(tp.dir_name());
            if self.fs.exists(&path) {
                self.fs
                    .remove_dir_all(&path)
                    .map_err(|e| format!("remove {}: {e}", path.display()))?;
                self.fs
                    .sync_dir(Path::new(dir))
                    .map_err(|e| format!("fsync {}: {e}", dir.display()))?;
            }
        }
        Ok(())
    }

    /// Opens (or creates) the log of a partition this broker leads or
    /// follows and sets its role and leader epoch.
    fn host(&self, changes: &MetadataChanges, p: &LocalPartition, progress: &mut LoadProgress) {
        let tp = TopicPartition::new(p.topic.clone(), p.partition);
        let role = self.replica_role(changes, p);
        if let Some(existing) = self.replicas.get_partition(&tp) {
            existing.become_replica(&role);
            return;
        }
        let overrides = changes.image.config(&topic_resource(&p.topic));
        let Some(log_config) = self.log_config(&p.topic, overrides) else {
            return;
        };
        match self.logs.get_or_create_log(&tp, log_config) {
            Ok(log) => {
                self.failures.lock().remove(&tp);
                let hw = self.logs.checkpointed_high_watermark(&tp);
                self.replicas
                    .add_partition_at(log, hw)
                    .become_replica(&role);
            }
            Err(e) => self.record_failure(tp, &e),
        }
        progress.loaded_one();
    }

    /// This broker's role for `p` (leader side of issue 17): replicas, ISR
    /// and epochs from the registration, the topic's `min.insync.replicas`.
    fn replica_role(&self, changes: &MetadataChanges, p: &LocalPartition) -> ReplicaRole {
        let reg = &p.registration;
        let overrides = changes.image.config(&topic_resource(&p.topic));
        ReplicaRole {
            me: self.node,
            topic_id: p.topic_id,
            leader: reg.leader,
            assignment: Assignment {
                replicas: reg.replicas.clone(),
                isr: reg.isr.clone(),
                leader_epoch: reg.leader_epoch,
                partition_epoch: reg.partition_epoch,
                unavailable: reg
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&b| {
                        changes
                            .image
                            .broker(b)
                            .is_none_or(|r| r.fenced || r.in_controlled_shutdown)
                    })
                    .collect(),
            },
            min_insync: self.config.topic_min_insync_replicas(overrides),
            max_lag_ms: self.config.replica_lag_time_max_ms,
        }
    }

    fn record_failure(&self, tp: TopicPartition, e: &StorageError) {
        let no_space = e.is_no_space();
        let failure = PartitionFailure {
            no_space,
            message: e.to_string(),
        };
        // Said once per failure, not at every retry.
        if self.failures.lock().insert(tp.clone(), failure).is_some() {
            return;
        }
        if no_space {
            tracing::warn!(partition = %tp, error = %e, "disk full: partition offline until the disk has room");
        } else {
            tracing::error!(partition = %tp, error = %e, "cannot open the log of a hosted partition; it stays offline");
        }
    }

    /// Hosts again the partitions whose log could not be created because
    /// the disk was full, as the last published image places them, and
    /// starts fetching those it follows. Kafka takes the whole log
    /// directory offline on such an error (and a broker with one directory
    /// halts); Sluice keeps the broker up with only those partitions
    /// offline, so it must bring them back once the disk has room: without
    /// this, a partition no later change touches (a follower added by a
    /// reassignment) would stay offline, and out of the ISR, until a
    /// restart. Called on a timer ([`FULL_DISK_RETRY`]).
    pub fn retry_full_disk(&self) {
        let published = self.published.lock();
        let Some(image) = published.clone() else {
            return;
        };
        let failed: Vec<TopicPartition> = self
            .failures
            .lock()
            .iter()
            .filter(|(_, f)| f.no_space)
            .map(|(tp, _)| tp.clone())
            .collect();
        if failed.is_empty() {
            return;
        }
        let (_, changes) = MetadataDelta::new(image).apply();
        let mut local = LocalReplicaChanges::default();
        for tp in failed {
            let Some(topic) = changes.image.topic(&tp.topic) else {
                continue;
            };
            let Some(reg) = topic.partition(tp.partition) else {
                continue;
            };
            if !reg.has_replica(self.node) {
                continue;
            }
            let p = LocalPartition {
                topic_id: topic.id(),
                topic: tp.topic.clone(),
                partition: tp.partition,
                registration: reg.clone(),
            };
            if reg.leader == self.node {
                local.leaders.push(p);
            } else {
                local.followers.push(p);
            }
        }
        let mut progress = LoadProgress::new(local.leaders.len() + local.followers.len());
        for p in local.leaders.iter().chain(&local.followers) {
            self.host(&changes, p, &mut progress);
            let tp = TopicPartition::new(p.topic.clone(), p.partition);
            if self.replicas.get_partition(&tp).is_some() {
                tracing::info!(partition = %tp, "the disk has room again: partition online");
            }
        }
        self.start_fetchers(&changes, &local);
    }

    fn unhost(&self, p: &LocalPartition) {
        let tp = TopicPartition::new(p.topic.clone(), p.partition);
        self.replicas.remove_partition(&tp);
        self.failures.lock().remove(&tp);
        if self.logs.get_log(&tp).is_some() {
            if let Err(e) = self.logs.delete_log(&tp) {
                tracing::warn!(partition = %tp, error = %e, "cannot delete the log of a replica no longer hosted");
            }
        }
    }

    /// Applies changed TOPIC overrides to the logs of topics that existed
    /// before this change (new topics got theirs when created).
    fn apply_topic_configs(&self, changes: &MetadataChanges) {
        for res in &changes.configs_changed {
            if res.resource_type != ConfigResourceType::Topic {
                continue;
            }
            // Replication throttles, also of created and deleted topics.
            let overrides = changes.image.config(res);
            let list = |key: &str| overrides.get(key).map_or("", String::as_str);
            self.replicas.quotas().set_topic(
                &res.name,
                list("leader.replication.throttled.replicas"),
                list("follower.replication.throttled.replicas"),
                self.node.0,
            );
            let created = changes
                .image
                .topic(&res.name)
                .is_some_and(|t| changes.topics.get(&t.id()).is_some_and(|c| c.created));
            if created {
                continue;
            }
            let Some(log_config) = self.log_config(&res.name, changes.image.config(res)) else {
                continue;
            };
            let min_insync = self
                .config
                .topic_min_insync_replicas(changes.image.config(res));
            for p in self.replicas.partitions_of(&res.name) {
                p.log().update_config(log_config.clone());
                p.set_min_insync(min_insync);
            }
        }
    }
}

impl MetadataPublisher for PartitionsPublisher {
    fn name(&self) -> &'static str {
        "partitions"
    }

    fn publish(&self, changes: &MetadataChanges) {
        let mut published = self.published.lock();
        let first = changes.previous.provenance().last_offset.0 < 0;
        if first {
            self.delete_strays(changes);
        }
        let local = changes.local_changes(self.node);
        self.stop_fetchers(&local);
        for p in &local.deletes {
            self.unhost(p);
        }
        let mut progress = LoadProgress::new(local.leaders.len() + local.followers.len());
        for p in local.leaders.iter().chain(&local.followers) {
            self.host(changes, p, &mut progress);
        }
        self.start_fetchers(changes, &local);
        self.apply_topic_configs(changes);
        *published = Some(changes.image.clone());
    }
}

/// How often partitions offline on a full disk are tried again.
pub const FULL_DISK_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Loads the `__consumer_offsets` partitions this broker leads into the
/// group coordinator, and drops committed offsets of deleted topics.
pub struct GroupCoordinatorPublisher {
    node: BrokerId,
    groups: Arc<GroupCoordinator>,
    replicas: Arc<ReplicaManager>,
}

impl GroupCoordinatorPublisher {
    pub fn new(
        node: BrokerId,
        groups: Arc<GroupCoordinator>,
        replicas: Arc<ReplicaManager>,
    ) -> Self {
        GroupCoordinatorPublisher {
            node,
            groups,
            replicas,
        }
    }
}

impl MetadataPublisher for GroupCoordinatorPublisher {
    fn name(&self) -> &'static str {
        "group coordinator"
    }

    fn publish(&self, changes: &MetadataChanges) {
        let local = changes.local_changes(self.node);
        let elected: Vec<i32> = local
            .elected_leaders
            .iter()
            .filter(|p| p.topic == OFFSETS_TOPIC)
            .map(|p| p.partition)
            .collect();
        if !elected.is_empty() {
            if let Some(t) = changes.image.topic(OFFSETS_TOPIC) {
                // A topic created while the broker runs is empty: nothing
                // to replay. One found at start is replayed in the background.
                let new = changes.previous.provenance().last_offset.0 >= 0
                    && changes.topics.get(&t.id()).is_some_and(|c| c.created);
                // Only once every partition's log is online: a topic whose
                // logs could not all be created (a full disk) is taken back
                // by the controller channel, and the next group request
                // tries again.
                let online = t.partitions().keys().all(|&p| {
                    self.replicas
                        .get_partition(&TopicPartition::new(OFFSETS_TOPIC, p))
                        .is_some()
                });
                if online {
                    self.groups.on_offsets_leadership(
                        &self.replicas,
                        t.partitions().len() as i32,
                        !new,
                        &elected,
                    );
                }
            }
        }
        for t in changes.deleted_topics.values() {
            // Committed offsets of a deleted topic go too (tombstoned in
            // __consumer_offsets), so a re-created topic starts clean.
            let dropped = self.groups.on_topic_deleted(t.name());
            tracing::info!(topic = t.name(), offsets_dropped = dropped, "deleted topic");
        }
    }
}

/// Loads the `__transaction_state` partitions this broker is elected to
/// lead into the transaction coordinator, and unloads those it no longer
/// leads.
pub struct TransactionCoordinatorPublisher {
    node: BrokerId,
    state: Arc<TransactionStateManager>,
    replicas: Arc<ReplicaManager>,
}

impl TransactionCoordinatorPublisher {
    pub fn new(
        node: BrokerId,
        state: Arc<TransactionStateManager>,
        replicas: Arc<ReplicaManager>,
    ) -> Self {
        TransactionCoordinatorPublisher {
            node,
            state,
            replicas,
        }
    }
}

impl MetadataPublisher for TransactionCoordinatorPublisher {
    fn name(&self) -> &'static str {
        "transaction coordinator"
    }

    fn publish(&self, changes: &MetadataChanges) {
        if let Some(t) = changes.image.topic(TRANSACTION_STATE_TOPIC) {
            self.state.set_num_partitions(t.partitions().len() as i32);
        }
        let local = changes.local_changes(self.node);
        let ours = |p: &&sluice_metadata::LocalPartition| p.topic == TRANSACTION_STATE_TOPIC;
        for p in local.followers.iter().chain(&local.deletes).filter(ours) {
            self.state.unload(p.partition);
        }
        for p in local.elected_leaders.iter().filter(ours) {
            self.state.begin_load(&self.replicas, p.partition);
        }
    }
}

/// Hands KIP-848 group config overrides to the group coordinator.
pub struct GroupConfigPublisher {
    groups: Arc<GroupCoordinator>,
}

impl GroupConfigPublisher {
    pub fn new(groups: Arc<GroupCoordinator>) -> Self {
        GroupConfigPublisher { groups }
    }
}

impl MetadataPublisher for GroupConfigPublisher {
    fn name(&self) -> &'static str {
        "group configs"
    }

    fn publish(&self, changes: &MetadataChanges) {
        for res in &changes.configs_changed {
            if res.resource_type == ConfigResourceType::Group {
                self.groups
                    .apply_group_overrides(&res.name, changes.image.config(res));
            }
        }
    }
}

/// Applies dynamic broker configs (KIP-226 levels) from the image.
pub struct BrokerConfigPublisher {
    node: BrokerId,
    config: Arc<BrokerConfig>,
    logs: Arc<LogManager>,
    replicas: Arc<ReplicaManager>,
    connections: Arc<ConnectionQuotas>,
    tls: Arc<TlsListeners>,
}

impl BrokerConfigPublisher {
    pub fn new(
        node: BrokerId,
        config: Arc<BrokerConfig>,
        logs: Arc<LogManager>,
        replicas: Arc<ReplicaManager>,
        connections: Arc<ConnectionQuotas>,
        tls: Arc<TlsListeners>,
    ) -> Self {
        replicas
            .quotas()
            .configure(QuotaSettings::from_config(&config));
        BrokerConfigPublisher {
            node,
            config,
            logs,
            replicas,
            connections,
            tls,
        }
    }

    /// Reloads the TLS listeners whose store keys changed between
    /// `before` and the configs now in force (a bad store is logged and
    /// the listener keeps its certificate; AlterConfigs validated it).
    fn reload_tls(&self, before: &DynamicBrokerConfigs) {
        let store_keys = |c: &DynamicBrokerConfigs| -> Vec<(String, String)> {
            c.broker
                .iter()
                .filter(|(k, _)| is_store_key(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let now = self.config.dynamic.read().clone();
        if store_keys(before) == store_keys(&now) {
            return;
        }
        if let Err(e) = self.tls.reconfigure(&self.config.explicit.0, &now) {
            tracing::warn!("SSL listeners keep their keystores: {e}");
        }
    }

    /// Gives every hosted partition the log config the current broker
    /// defaults and its topic's overrides make, and every log the current
    /// `producer.id.expiration.ms`.
    fn reconfigure_logs(&self, changes: &MetadataChanges) {
        self.logs
            .set_producer_id_expiration_ms(self.config.producer_id_expiration_ms());
        for t in changes.image.topics() {
            let overrides = changes.image.config(&topic_resource(t.name()));
            match self.config.topic_log_config(overrides) {
                Ok(log_config) => {
                    let min_insync = self.config.topic_min_insync_replicas(overrides);
                    for p in self.replicas.partitions_of(t.name()) {
                        p.log().update_config(log_config.clone());
                        p.set_min_insync(min_insync);
                    }
                }
                Err(e) => tracing::warn!(
                    topic = t.name(),
                    error = %e,
                    "topic keeps its log config: its overrides are invalid"
                ),
            }
        }
    }
}

impl MetadataPublisher for BrokerConfigPublisher {
    fn name(&self) -> &'static str {
        "broker configs"
    }

    fn publish(&self, changes: &MetadataChanges) {
        let node = self.node.0.to_string();
        let ours = |name: &str| name.is_empty() || name == node;
        let changed = changes
            .configs_changed
            .iter()
            .any(|r| r.resource_type == ConfigResourceType::Broker && ours(&r.name));
        if !changed {
            return;
        }
        let level = |name: &str| {
            let res = sluice_metadata::ConfigResource {
                resource_type: ConfigResourceType::Broker,
                name: name.to_string(),
            };
            let mut map = changes.image.config(&res).clone();
            let lvl = super::validator::broker_level(name);
            // A stored override this build refuses is ignored, as Kafka
            // ignores invalid stored dynamic configs.
            map.retain(|k, v| {
                let one = BTreeMap::from([(k.clone(), v.clone())]);
                let ok = crate::config::dynamic::validate(&one, lvl).is_ok();
                if !ok {
                    tracing::warn!(key = %k, "ignoring a dynamic broker config this build refuses");
                }
                ok
            });
            map
        };
        let next = crate::config::dynamic::DynamicBrokerConfigs {
            broker: level(&node),
            cluster_default: level(""),
        };
        let before = std::mem::replace(&mut *self.config.dynamic.write(), next);
        self.reload_tls(&before);
        self.replicas
            .quotas()
            .configure(QuotaSettings::from_config(&self.config));
        self.connections
            .set_per_ip_limits(self.config.per_ip_limits_now());
        self.connections
            .set_creation_rates(self.config.creation_rates_now());
        self.connections
            .slots
            .set_limits(self.config.connection_limits_now());
        // Logs created by this change get the new defaults when the
        // partitions publisher creates them; existing ones are updated.
        self.reconfigure_logs(changes);
        tracing::info!("dynamic broker configs changed");
    }
}

/// Start-up progress of loading (and after an unclean shutdown, recovering)
/// partition logs: a log line every [`LoadProgress::EVERY`] partitions or
/// [`LoadProgress::INTERVAL`], so a long recovery shows it is moving.
struct LoadProgress {
    total: usize,
    loaded: usize,
    started: std::time::Instant,
    last_report: std::time::Instant,
}

impl LoadProgress {
    const EVERY: usize = 100;
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

    fn new(total: usize) -> Self {
        let now = std::time::Instant::now();
        LoadProgress {
            total,
            loaded: 0,
            started: now,
            last_report: now,
        }
    }

    fn loaded_one(&mut self) {
        self.loaded += 1;
        if self.loaded == self.total {
            return;
        }
        if self.loaded % Self::EVERY == 0 || self.last_report.elapsed() >= Self::INTERVAL {
            self.last_report = std::time::Instant::now();
            tracing::info!(
                loaded = self.loaded,
                total = self.total,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "loading partition logs: {}/{} partitions",
                self.loaded,
                self.total
            );
        }
    }
}

#[cfg(test)]
#[path = "publishers_tests.rs"]
mod tests;
