//! Cluster metadata on the broker: the path a change takes from the
//! controller to the handlers.
//!
//! ```text
//! handlers ─► ControllerChannel ─► ControllerClient ─► QuorumController ─► SingleVoterLog
//!  (writes)    (answers after       (the seam; in       (validates, plans    (__cluster_metadata-0,
//!               publication)         process today)      records, commits)    fsync = commit)
//!                                                                                 │ LogListener
//! handlers ◄── ImageCache ◄── publishers ◄── MetadataLoader ◄──────────────────────┘
//!  (reads)     (the image)    (configs, partitions, groups)   (replay into a MetadataDelta)
//! ```
//!
//! - [`client`]: [`ControllerClient`], the broker's seam to the active
//!   controller, implemented by the in-process `QuorumController`.
//! - [`controller`]: [`ControllerChannel`], what handlers write through;
//!   answers after the committed change is published.
//! - [`lifecycle`]: [`BrokerLifecycle`]: registration, heartbeats,
//!   controlled shutdown.
//! - [`validator`]: the broker's config checks the controller calls.
//! - [`loader`]: [`MetadataLoader`] and the [`MetadataPublisher`] trait.
//! - [`publishers`]: broker configs, partitions (logs, leader epochs,
//!   roles), the group coordinator (`__consumer_offsets` leadership),
//!   group configs.
//! - [`image_cache`]: [`ImageCache`], what handlers read.
//! - [`meta`]: `meta.properties` (cluster id, directory id).
//! - [`records`]: the metadata log's first batch, from a fresh directory
//!   or (once, on upgrade) from the single-node release's files
//!   ([`files`]), which are never written again.
//! - [`names`]: Kafka's topic-name rules and the base64 form of ids.
//!
//! Invariants: a change is committed (fsynced in the metadata log) before
//! the loader sees it; it is applied by every publisher, in log order,
//! before the image cache shows it and before its writer is answered;
//! handlers read leaders, leader epochs, replicas and ISR from the image,
//! never from the node id.

pub mod client;
pub mod controller;
pub mod files;
pub mod image_cache;
pub mod lifecycle;
pub mod loader;
pub mod meta;
pub mod names;
pub mod producer_ids;
pub mod publishers;
pub mod records;
#[cfg(test)]
pub(crate) mod testing;
pub mod types;
pub mod validator;

use std::path::PathBuf;
use std::sync::Arc;

use sluice_controller::{
    ControllerConfig, MetadataLog, QuorumController, QuorumInfo, SingleVoterConfig, SingleVoterLog,
};
use sluice_metadata::BrokerId;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{Clock, Fs, LogManager};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a restarted node waits to apply its own metadata log before
/// its first image (normally one leader heartbeat; only a tail the new
/// leader truncated is never applied).
const LOCAL_CATCH_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

pub use client::{Committed, ControllerClient};
pub use controller::{ConfigChange, ControllerChannel};
pub use image_cache::{ImageCache, LoaderStopped};
pub use lifecycle::BrokerLifecycle;
pub use loader::{MetadataLoader, MetadataPublisher};
pub use meta::MetaProperties;
pub use names::{
    is_internal_topic, uuid_from_base64, uuid_to_base64, validate_topic_name,
    MAX_PARTITIONS_PER_TOPIC, MAX_TOPIC_NAME_LEN,
};
pub use publishers::{
    BrokerConfigPublisher, GroupConfigPublisher, GroupCoordinatorPublisher, PartitionsPublisher,
    TransactionCoordinatorPublisher,
};
pub use types::{MetadataError, TopicMetadata};

pub(crate) use files::{percent_decode, percent_encode, read_file};

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::partition::ReplicaManager;
use crate::replica_fetcher::{ReplicaFetcherConfig, ReplicaFetcherManager};
use crate::txn::state_manager::TransactionStateManager;

/// The directory holding the metadata log (`__cluster_metadata-0`) and
/// whose `meta.properties` gives the directory id: Kafka's
/// `metadata.log.dir`, which defaults to the first of `log.dirs`.
pub fn metadata_log_dir(config: &BrokerConfig) -> PathBuf {
    crate::config::dynamic::metadata_dir(config)
}

/// What DescribeQuorum, Metadata and DescribeCluster read about the
/// metadata quorum and this node's identity (read-only).
pub struct QuorumHandle {
    meta: MetaProperties,
    log: Arc<dyn MetadataLog>,
    /// A cluster node's channel to the active controller (DescribeQuorum
    /// is forwarded there); `None` on a single node.
    channel: Option<Arc<ControllerChannelToQuorum>>,
}

/// sluice-transport's channel to the active controller (not the broker's
/// own [`ControllerChannel`], which handlers write metadata through).
pub type ControllerChannelToQuorum = sluice_transport::ControllerChannel;

impl std::fmt::Debug for QuorumHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumHandle")
            .field("meta", &self.meta)
            .finish()
    }
}

impl QuorumHandle {
    /// Kafka-style (base64) cluster id.
    pub fn cluster_id(&self) -> String {
        self.meta.cluster_id.clone()
    }

    /// `directory.id` of the metadata log dir (nil if unknown).
    pub fn directory_id(&self) -> Uuid {
        self.meta.directory_id
    }

    /// A cluster node's channel to the active controller.
    pub fn controller_channel(&self) -> Option<&ControllerChannelToQuorum> {
        self.channel.as_deref()
    }

    /// The quorum as this node sees it.
    pub fn quorum_info(&self) -> QuorumInfo {
        self.log.quorum_info()
    }

    /// The offset after the last committed metadata record.
    pub fn high_watermark(&self) -> Offset {
        self.log.quorum_info().high_watermark
    }

    /// The metadata log's leader epoch (one more on every start of a
    /// single voter).
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.log.leader_and_epoch().epoch
    }
}

/// Where a broker's metadata comes from and where its writes go.
pub enum QuorumMode {
    /// One node that is its own only voter (no `process.roles`, the
    /// default): a durable [`SingleVoterLog`] in the metadata log dir,
    /// bootstrapped once, and an in-process [`QuorumController`] on it.
    SingleNode,
    /// A node of a multi-node cluster: `log` is this node's replica of the
    /// quorum's metadata log (a voter's, on a combined node, or an
    /// observer's), owned and shut down by the caller; `controller`
    /// reaches the active controller wherever it runs.
    Cluster {
        log: Arc<dyn MetadataLog>,
        controller: Arc<dyn ControllerClient>,
        /// The channel `controller` sends on (DescribeQuorum is forwarded
        /// on it too).
        channel: Arc<ControllerChannelToQuorum>,
        /// How the replica fetchers reach other brokers (TCP, or the
        /// simulation's network).
        connector: Arc<dyn sluice_transport::net::Connector>,
    },
}

/// The single-node mode's own log and controller, which the services
/// shut down.
struct OwnedQuorum {
    log: Arc<SingleVoterLog>,
    controller: Arc<QuorumController>,
}

/// The coordinators whose internal topics the publishers load, and the
/// connection limits the dynamic broker configs change.
pub struct Coordinators {
    pub groups: Arc<GroupCoordinator>,
    pub txn_state: Arc<TransactionStateManager>,
    pub connections: Arc<crate::quota::connections::ConnectionQuotas>,
    /// The controller mutation quota's buckets the in-process controller
    /// of single-node mode keeps (rendered with the broker's metrics).
    pub mutations: Arc<crate::quota::mutation::ControllerMutationQuotas>,
    /// The TLS listeners whose stores the dynamic broker configs reload.
    pub tls: Arc<crate::network::tls_reload::TlsListeners>,
}

/// The metadata side of a running broker, wired together.
pub struct MetadataServices {
    pub quorum: Arc<QuorumHandle>,
    pub cache: Arc<ImageCache>,
    pub controller: Arc<ControllerChannel>,
    pub lifecycle: Arc<BrokerLifecycle>,
    /// The seam to the active controller (AlterPartition goes through it).
    pub client: Arc<dyn ControllerClient>,
    /// This broker's epoch from its registration (-1 before it).
    pub broker_epoch: Arc<std::sync::atomic::AtomicI64>,
    /// The replica fetchers of the partitions this broker follows.
    pub fetchers: Arc<ReplicaFetcherManager>,
    /// How this broker reaches other brokers (TCP, or the simulation's
    /// network): the replica fetchers and the transaction markers.
    pub connector: Arc<dyn sluice_transport::net::Connector>,
    owned: Option<OwnedQuorum>,
    loader: Option<JoinHandle<()>>,
    stop_loader: tokio::sync::watch::Sender<bool>,
}

/// Tries the partitions offline on a full disk again every
/// [`publishers::FULL_DISK_RETRY`] until the loader stops.
async fn retry_full_disk(
    partitions: Arc<PartitionsPublisher>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(publishers::FULL_DISK_RETRY) => {}
            _ = stop.changed() => return,
        }
        let p = partitions.clone();
        // Creating a log writes files: off the async threads.
        if sluice_runtime::spawn_blocking(move || p.retry_full_disk())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Opens the single-node metadata log (bootstrapping it once if it is
/// empty) and starts the quorum controller on it.
async fn open_single_node(
    config: &Arc<BrokerConfig>,
    fs: &Arc<dyn Fs>,
    clock: &Arc<dyn Clock>,
    mutation_quotas: Arc<crate::quota::mutation::ControllerMutationQuotas>,
) -> Result<(MetaProperties, OwnedQuorum), MetadataError> {
    let node = BrokerId(config.node_id);
    let (meta, log, bootstrap) = {
        let (config, fs, clock) = (config.clone(), fs.clone(), clock.clone());
        sluice_runtime::spawn_blocking(move || -> Result<_, MetadataError> {
            let meta = meta::open(&config, &fs)?;
            let dir = metadata_log_dir(&config);
            let log =
                SingleVoterLog::open(SingleVoterConfig::new(node, dir.clone()), fs.clone(), clock)
                    .map_err(|e| MetadataError::Controller(e.into()))?;
            let empty =
                log.quorum_info().high_watermark == Offset::ZERO && log.latest_snapshot().is_none();
            let bootstrap = if empty {
                Some(records::bootstrap_from_dir(
                    &config,
                    fs.as_ref(),
                    &dir,
                    meta.directory_id,
                )?)
            } else {
                None
            };
            Ok((meta, Arc::new(log), bootstrap))
        })
        .await
        .map_err(|e| MetadataError::LoaderStopped(e.to_string()))??
    };
    if let Some((records, upgrade)) = bootstrap {
        let n = records.len();
        log.bootstrap(records)
            .await
            .map_err(|e| MetadataError::Controller(e.into()))?;
        if upgrade {
            tracing::info!(
                records = n,
                "metadata log bootstrapped from the single-node metadata files; they are not used from now on"
            );
        }
    }
    let controller = Arc::new(QuorumController::start(
        log.clone() as Arc<dyn MetadataLog>,
        ControllerConfig {
            default_num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            broker_session_timeout_ms: config.broker_session_timeout_ms,
            mutation_quotas,
            ..ControllerConfig::default()
        },
        Arc::new(validator::BrokerConfigValidator::new(config.clone())),
        clock.clone(),
    ));
    Ok((meta, OwnedQuorum { log, controller }))
}

impl MetadataServices {
    /// Starts the metadata side of a broker in `mode`: in single-node mode
    /// opens the metadata log (bootstrapping it once if it is empty) and
    /// starts the quorum controller on it; then the loader with its
    /// publishers (broker configs, partitions, group configs, group
    /// coordinator, then the image cache), waits until everything this
    /// node's log has committed is published (every hosted log open), then
    /// registers this broker and waits until the controller unfenced it.
    pub async fn start(
        config: Arc<BrokerConfig>,
        logs: Arc<LogManager>,
        replicas: Arc<ReplicaManager>,
        coordinators: Coordinators,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
        mode: QuorumMode,
    ) -> Result<MetadataServices, MetadataError> {
        let node = BrokerId(config.node_id);
        let Coordinators {
            groups,
            txn_state,
            connections,
            mutations,
            tls,
        } = coordinators;
        let previous_broker_epoch = logs.previous_broker_epoch();
        let (meta, log, client, owned, channel, connector) = match mode {
            QuorumMode::SingleNode => {
                let (meta, owned) = open_single_node(&config, &fs, &clock, mutations).await?;
                let client: Arc<dyn ControllerClient> = Arc::new(owned.controller.clone());
                let log: Arc<dyn MetadataLog> = owned.log.clone();
                let connector: Arc<dyn sluice_transport::net::Connector> =
                    Arc::new(sluice_transport::TcpConnector);
                (meta, log, client, Some(owned), None, connector)
            }
            QuorumMode::Cluster {
                log,
                controller,
                channel,
                connector,
            } => {
                let meta = {
                    let (config, fs) = (config.clone(), fs.clone());
                    sluice_runtime::spawn_blocking(move || meta::open(&config, &fs))
                        .await
                        .map_err(|e| MetadataError::LoaderStopped(e.to_string()))??
                };
                (meta, log, controller, None, Some(channel), connector)
            }
        };
        let cache = ImageCache::new(node);
        let fetchers = Arc::new(
            ReplicaFetcherManager::new(
                ReplicaFetcherConfig::from_broker(&config),
                replicas.clone(),
                connector.clone(),
                tokio::runtime::Handle::current(),
            )
            .with_follower_quota(replicas.quotas().follower.clone()),
        );
        let partitions = Arc::new(
            PartitionsPublisher::new(node, config.clone(), logs.clone(), replicas.clone(), fs)
                .with_fetchers(fetchers.clone()),
        );
        let publishers: Vec<Arc<dyn MetadataPublisher>> = vec![
            Arc::new(BrokerConfigPublisher::new(
                node,
                config.clone(),
                logs.clone(),
                replicas.clone(),
                connections,
                tls,
            )),
            partitions.clone(),
            // Group overrides before the coordinator loads groups, so a
            // loaded member's session already has its group's timeout.
            Arc::new(GroupConfigPublisher::new(groups.clone())),
            Arc::new(GroupCoordinatorPublisher::new(
                node,
                groups,
                replicas.clone(),
            )),
            Arc::new(TransactionCoordinatorPublisher::new(
                node, txn_state, replicas,
            )),
        ];
        // What this node's log has committed so far; a node of a cluster
        // may know less than the quorum does, and catches up before the
        // controller unfences it (its heartbeats carry what it published).
        // A restarted member first applies what its own log held: an
        // earlier first image would lack topics it still hosts, and the
        // partitions publisher would delete their logs as strays.
        if !log.catch_up_local(LOCAL_CATCH_UP_LIMIT).await {
            partitions.keep_strays();
        }
        let end = Offset(log.quorum_info().high_watermark.0 - 1);
        let loader = MetadataLoader::new(publishers, cache.clone()).catch_up_to(end);
        let stop_loader = tokio::sync::watch::channel(false).0;
        let loader = tokio::spawn(loader.run_until(log.listen(), stop_loader.subscribe()));
        tokio::spawn(retry_full_disk(partitions.clone(), stop_loader.subscribe()));
        cache
            .wait_for(end)
            .await
            .map_err(|e| MetadataError::LoaderStopped(e.to_string()))?;
        let broker_epoch = Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let controller = Arc::new(ControllerChannel::new(
            config.clone(),
            client.clone(),
            cache.clone(),
            partitions,
            broker_epoch.clone(),
        ));
        let lifecycle = BrokerLifecycle::start(
            &config,
            meta.directory_id,
            previous_broker_epoch,
            client.clone(),
            cache.clone(),
            broker_epoch.clone(),
        )
        .await?;
        // Should this process die from here on while the machine lives,
        // its next start keeps this epoch (see storage's clean_shutdown).
        let epoch = lifecycle.epoch();
        let marker_logs = logs.clone();
        let written =
            sluice_runtime::spawn_blocking(move || marker_logs.record_running_epoch(epoch))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = written {
            // The next crash then counts as unclean, as in Kafka.
            tracing::warn!(error = %e, "cannot write the running marker");
        }
        Ok(MetadataServices {
            quorum: Arc::new(QuorumHandle { meta, log, channel }),
            cache,
            controller,
            lifecycle,
            client,
            broker_epoch,
            fetchers,
            connector,
            owned,
            loader: Some(loader),
            stop_loader,
        })
    }

    /// Appends `records` to the metadata log bypassing the controller
    /// (tests: a change another controller made).
    #[cfg(test)]
    pub(crate) async fn append_for_test(
        &self,
        records: Vec<sluice_metadata::MetadataRecord>,
    ) -> Offset {
        let log = &self.quorum.log;
        let epoch = log.leader_and_epoch().epoch;
        log.append(epoch, records).await.expect("append")
    }

    /// Asks for a controlled shutdown (the controller fences this broker
    /// and moves its leaderships off; returns once that is published
    /// here). Only the first call asks. The broker calls it while its
    /// listeners still serve, as Kafka's `BrokerServer.shutdown` does:
    /// followers fetch their last records from it, and the produce requests
    /// waiting on its leaderships end with NOT_LEADER_OR_FOLLOWER at once
    /// instead of waiting out their timeouts on followers that can no
    /// longer fetch.
    pub async fn controlled_shutdown(&self) {
        self.lifecycle.controlled_shutdown().await;
    }

    /// Stops the metadata side: with `controlled`, first a controlled
    /// shutdown (leaderships move off this broker); then the replica
    /// fetchers (no fetch is sent after that, appends in progress finish). In single-node mode
    /// then the metadata log (so nothing waits on an append), then the
    /// controller; the loader ends with the log. In cluster mode the log
    /// belongs to the caller: the loader is stopped here.
    pub async fn shutdown(&mut self, controlled: bool) {
        if controlled {
            self.controlled_shutdown().await;
        } else {
            self.lifecycle.stop().await;
        }
        // Followers fetch until the controlled shutdown moved leaderships
        // off (as Kafka's), then stop before the loader could add more.
        self.fetchers.shutdown().await;
        match self.owned.take() {
            Some(owned) => {
                owned.log.shutdown().await;
                owned.controller.shutdown().await;
                if let Some(l) = self.loader.take() {
                    let _ = l.await;
                }
            }
            None => {
                self.stop_loader.send_replace(true);
                if let Some(l) = self.loader.take() {
                    let _ = l.await;
                }
            }
        }
    }
}
