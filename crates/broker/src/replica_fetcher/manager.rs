//! `ReplicaFetcherManager` (Kafka's name): the partitions this broker
//! follows, grouped by leader into `num.replica.fetchers` fetcher tasks per
//! source broker (a partition's task is chosen by Kafka's hash of topic and
//! partition), added and removed by the metadata publisher, and stopped with
//! the broker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_metadata::BrokerId;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::TopicPartition;
use sluice_transport::net::Connector;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::apply::{FetchStatus, PartitionFetchState};
use super::config::ReplicaFetcherConfig;
use super::replica::ReplicaSource;
use super::task::{run, FetcherShared, TaskContext};
use crate::replica::quota::ReplicationQuota;

/// How long shutdown waits for a fetcher task (one in the middle of an
/// append finishes it first) before abandoning it.
const SHUTDOWN_JOIN_BOUND: Duration = Duration::from_secs(10);

/// Where a leader serves its followers: its inter-broker listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderEndpoint {
    pub id: BrokerId,
    pub host: String,
    pub port: u16,
}

impl LeaderEndpoint {
    /// `host:port` (an IPv6 host in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A partition to follow: where to start and in which leader epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialFetchState {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    /// The local log end offset (Kafka starts there and truncates only on
    /// the leader's DivergingEpoch).
    pub fetch_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

struct Fetcher {
    shared: Arc<FetcherShared>,
    task: JoinHandle<()>,
}

/// Every fetcher task of this broker.
pub struct ReplicaFetcherManager {
    ctx: Arc<TaskContext>,
    fetchers: Mutex<BTreeMap<(BrokerId, u32), Fetcher>>,
    shutting_down: AtomicBool,
    runtime: tokio::runtime::Handle,
}

/// Kafka's `Utils.abs(31 * topic.hashCode + partition) % numFetchers`, with
/// Java's `String.hashCode` over UTF-16 code units.
pub fn fetcher_id(tp: &TopicPartition, num_fetchers: u32) -> u32 {
    let h = tp
        .topic
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let v = h.wrapping_mul(31).wrapping_add(tp.partition);
    // Kafka's Utils.abs maps i32::MIN to 0.
    let abs = if v == i32::MIN { 0 } else { v.abs() };
    abs as u32 % num_fetchers.max(1)
}

impl ReplicaFetcherManager {
    /// A manager whose tasks run on `runtime` (the publisher calls it from
    /// the blocking pool).
    pub fn new(
        config: ReplicaFetcherConfig,
        source: Arc<dyn ReplicaSource>,
        connector: Arc<dyn Connector>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        ReplicaFetcherManager {
            ctx: Arc::new(TaskContext {
                config,
                source,
                connector,
                broker_epoch: Arc::new(AtomicI64::new(-1)),
                quota: Arc::default(),
            }),
            fetchers: Mutex::new(BTreeMap::new()),
            shutting_down: AtomicBool::new(false),
            runtime,
        }
    }

    /// Throttles fetches with this broker's follower quota
    /// (`follower.replication.throttled.rate`); call before adding partitions.
    pub fn with_follower_quota(mut self, quota: Arc<ReplicationQuota>) -> Self {
        if let Some(ctx) = Arc::get_mut(&mut self.ctx) {
            ctx.quota = quota;
        }
        self
    }

    pub fn config(&self) -> &ReplicaFetcherConfig {
        &self.ctx.config
    }

    /// This broker's epoch as the image registers it (sent in ReplicaState).
    pub fn set_broker_epoch(&self, epoch: i64) {
        self.ctx.broker_epoch.store(epoch, Ordering::Release);
    }

    /// Follows `partitions` from `leader`. A partition already fetched in
    /// the same leader epoch keeps its state (including a stopped one); a new
    /// epoch starts again at the given offset. A partition fetched from
    /// another leader before moves here.
    pub fn add_partitions(&self, leader: &LeaderEndpoint, partitions: Vec<InitialFetchState>) {
        if self.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let address = leader.address();
        let mut fetchers = self.fetchers.lock();
        for p in partitions {
            let key = (leader.id, fetcher_id(&p.tp, self.ctx.config.num_fetchers));
            for (k, f) in fetchers.iter() {
                if *k != key {
                    f.shared.states.lock().remove(&p.tp);
                }
            }
            let f = fetchers.entry(key).or_insert_with(|| {
                let shared = FetcherShared::new(leader.id, key.1, address.clone());
                let task = self.runtime.spawn(run(shared.clone(), self.ctx.clone()));
                Fetcher { shared, task }
            });
            {
                let mut current = f.shared.address.lock();
                if *current != address {
                    tracing::info!(leader = leader.id.0, from = %current, to = %address, "leader endpoint changed");
                    *current = address.clone();
                }
            }
            let mut states = f.shared.states.lock();
            if states
                .get(&p.tp)
                .is_some_and(|s| s.leader_epoch == p.leader_epoch)
            {
                continue;
            }
            let last_fetched_epoch = self
                .ctx
                .source
                .follower(&p.tp)
                .and_then(|r| r.latest_epoch());
            tracing::info!(partition = %p.tp, leader = leader.id.0, epoch = p.leader_epoch.0,
                offset = p.fetch_offset.0, "following partition");
            states.insert(
                p.tp,
                PartitionFetchState {
                    topic_id: p.topic_id,
                    fetch_offset: p.fetch_offset,
                    leader_epoch: p.leader_epoch,
                    last_fetched_epoch,
                    status: FetchStatus::Fetching,
                    lag: 0,
                },
            );
            drop(states);
            f.shared.wake.notify_one();
        }
        Self::stop_idle(&mut fetchers);
    }

    /// Stops fetching `tps`. When this returns, nothing fetched for them is
    /// being appended or will be.
    pub fn remove_partitions(&self, tps: &[TopicPartition]) {
        let mut fetchers = self.fetchers.lock();
        for f in fetchers.values() {
            let mut states = f.shared.states.lock();
            for tp in tps {
                if states.remove(tp).is_some() {
                    tracing::info!(partition = %tp, leader = f.shared.leader.0, "stopped following partition");
                }
            }
        }
        Self::stop_idle(&mut fetchers);
    }

    /// A leader re-registered with another endpoint: its fetchers reconnect.
    pub fn update_leader_endpoint(&self, leader: &LeaderEndpoint) {
        let address = leader.address();
        for (k, f) in self.fetchers.lock().iter() {
            if k.0 == leader.id {
                let mut current = f.shared.address.lock();
                if *current != address {
                    tracing::info!(leader = leader.id.0, from = %current, to = %address, "leader endpoint changed");
                    *current = address.clone();
                    drop(current);
                    f.shared.wake.notify_one();
                }
            }
        }
    }

    /// Fetchers left without partitions stop (their tasks end by themselves).
    fn stop_idle(fetchers: &mut BTreeMap<(BrokerId, u32), Fetcher>) {
        fetchers.retain(|_, f| {
            let idle = f.shared.states.lock().is_empty();
            if idle {
                f.shared.stop.send_replace(true);
            }
            !idle
        });
    }

    /// The fetch state of `tp`, if followed.
    pub fn fetch_state(&self, tp: &TopicPartition) -> Option<PartitionFetchState> {
        self.fetchers
            .lock()
            .values()
            .find_map(|f| f.shared.states.lock().get(tp).cloned())
    }

    /// Every followed partition with its leader and fetcher lag (metrics).
    pub fn lags(&self) -> Vec<(TopicPartition, BrokerId, i64)> {
        let fetchers = self.fetchers.lock();
        let mut out = Vec::new();
        for f in fetchers.values() {
            let states = f.shared.states.lock();
            out.extend(
                states
                    .iter()
                    .map(|(tp, s)| (tp.clone(), f.shared.leader, s.lag)),
            );
        }
        out
    }

    /// Running fetcher tasks, by (leader, fetcher id).
    pub fn fetchers(&self) -> Vec<(BrokerId, u32)> {
        let mut v: Vec<_> = self.fetchers.lock().keys().copied().collect();
        v.sort();
        v
    }

    /// Stops every fetcher: no fetch is sent after this starts; tasks are
    /// joined (an append in progress finishes) for at most 10 s each.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let fetchers: Vec<Fetcher> = std::mem::take(&mut *self.fetchers.lock())
            .into_values()
            .collect();
        for f in &fetchers {
            f.shared.stop.send_replace(true);
        }
        for f in fetchers {
            let abort = f.task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_JOIN_BOUND, f.task)
                .await
                .is_err()
            {
                tracing::warn!(
                    leader = f.shared.leader.0,
                    "replica fetcher did not stop in time; abandoning it"
                );
                abort.abort();
            }
        }
    }
}

impl Drop for ReplicaFetcherManager {
    fn drop(&mut self) {
        for f in self.fetchers.lock().values() {
            f.shared.stop.send_replace(true);
            f.task.abort();
        }
    }
}
