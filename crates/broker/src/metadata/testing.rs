//! Test support: a broker's metadata side on a simulated file system.

use std::future::Future;
use std::sync::Arc;

use sluice_storage::{Clock, Fs, LogManager, ManualClock, SimFs};

use super::{MetadataError, MetadataServices};
use crate::config::BrokerConfig;
use crate::context::BrokerContext;
use crate::partition::ReplicaManager;

/// A broker's state on a file system as `Broker::start` builds it (without
/// listeners), on a runtime of its own. Dropping it stops the metadata
/// log, the controller and the loader and releases the logs.
pub(crate) struct Node {
    ctx: BrokerContext,
    services: Option<MetadataServices>,
    rt: tokio::runtime::Runtime,
}

impl std::ops::Deref for Node {
    type Target = BrokerContext;
    fn deref(&self) -> &BrokerContext {
        &self.ctx
    }
}

impl Node {
    /// Runs `f` to completion on the node's runtime.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Appends `records` to the metadata log directly (as a controller
    /// elsewhere would have) and returns their last offset.
    pub(crate) async fn append(
        &self,
        records: Vec<sluice_metadata::MetadataRecord>,
    ) -> sluice_record::Offset {
        self.services
            .as_ref()
            .expect("running")
            .append_for_test(records)
            .await
    }

    /// Commits a leader (and replica set, all in sync) change of `topic`-0,
    /// as the quorum controller would, and waits until it is published.
    pub(crate) async fn change_leader(&self, topic: &str, leader: i32, replicas: &[i32]) {
        use sluice_metadata::record::PartitionChangeRecord;
        use sluice_metadata::BrokerId;
        let topic_id = self.image.topic(topic).expect("the topic").topic_id;
        let ids: Vec<BrokerId> = replicas.iter().map(|b| BrokerId(*b)).collect();
        let change = PartitionChangeRecord {
            isr: Some(ids.clone()),
            leader: BrokerId(leader),
            replicas: Some(ids),
            ..PartitionChangeRecord::new(topic_id, 0)
        };
        let offset = self
            .append(vec![sluice_metadata::MetadataRecord::PartitionChange(
                change,
            )])
            .await;
        self.image.wait_for(offset).await.unwrap();
    }
}

impl Node {
    /// The controller seam and this broker's epoch (AlterPartition tests).
    pub(crate) fn controller_client(
        &self,
    ) -> (
        Arc<dyn super::ControllerClient>,
        Arc<std::sync::atomic::AtomicI64>,
    ) {
        let s = self.services.as_ref().expect("running");
        (s.client.clone(), s.broker_epoch.clone())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut s) = self.services.take() {
            self.rt.block_on(s.shutdown(false));
        }
    }
}

/// Opens storage and the metadata side and publishes the metadata, as
/// `Broker::start` does.
/// A node on a fresh simulated disk (small indexes) with topic `topic`
/// of one partition, led by this node: the handlers' unit tests' usual
/// start.
pub(crate) fn node_with_topic(topic: &str) -> Node {
    let config = BrokerConfig::with_overrides(&[
        ("log.dirs", "/sim/data"),
        ("log.index.size.max.bytes", "4096"),
    ])
    .expect("test config");
    let node = open_node(config, &Arc::new(SimFs::new())).expect("node opens");
    node.block_on(
        node.controller
            .create_topic(topic, 1, 1, Default::default()),
    )
    .expect("topic created");
    node
}

pub(crate) fn open_node(config: BrokerConfig, fs: &Arc<SimFs>) -> Result<Node, MetadataError> {
    open_node_with_clock(config, fs, Arc::new(ManualClock::new(1_700_000_000_000)))
}

/// [`open_node`] with the clock the controller's sessions run on.
pub(crate) fn open_node_with_clock(
    config: BrokerConfig,
    fs: &Arc<SimFs>,
    clock: Arc<ManualClock>,
) -> Result<Node, MetadataError> {
    let fs_dyn: Arc<dyn Fs> = fs.clone();
    let clock: Arc<dyn Clock> = clock;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let logs = Arc::new(LogManager::open(
        config.log_manager_config(),
        fs_dyn.clone(),
        clock.clone(),
    )?);
    let config = Arc::new(config);
    let replicas = Arc::new(ReplicaManager::with_clock(clock.clone()));
    let groups = Arc::new(crate::group::GroupCoordinator::new(
        crate::group::GroupConfig::default(),
        clock.clone(),
    ));
    let txn_state = Arc::new(crate::txn::state_manager::TransactionStateManager::new(
        crate::txn::TransactionConfig::default(),
        clock.clone(),
    ));
    let quotas = Arc::new(crate::quota::ClientQuotaManager::with_settings(
        config.quota_windows,
        config.controller_quota_windows,
        config.per_ip_limits.clone(),
        config.connection_creation_rates.clone(),
    ));
    let services = rt.block_on(MetadataServices::start(
        config.clone(),
        logs.clone(),
        replicas.clone(),
        super::Coordinators {
            groups: groups.clone(),
            txn_state: txn_state.clone(),
            connections: quotas.connections.clone(),
            mutations: quotas.mutations.clone(),
            tls: Default::default(),
        },
        fs_dyn.clone(),
        clock.clone(),
        super::QuorumMode::SingleNode,
    ))?;
    let txns = crate::txn::build(
        &config,
        txn_state,
        &services,
        replicas.clone(),
        groups.clone(),
    );
    Ok(Node {
        ctx: BrokerContext {
            config,
            metadata: services.quorum.clone(),
            image: services.cache.clone(),
            controller: services.controller.clone(),
            replicas,
            logs,
            fs: fs_dyn,
            groups,
            txns,
            clock,
            fetchers: services.fetchers.clone(),
            quotas,
            tls: Default::default(),
        },
        services: Some(services),
        rt,
    })
}
