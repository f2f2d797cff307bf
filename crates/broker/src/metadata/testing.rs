//! Test support: a broker's metadata side on a simulated file system.

use std::sync::Arc;

use sluice_storage::{Clock, Fs, LogManager, ManualClock, SimFs};

use super::{MetadataError, MetadataServices, MetadataStore};
use crate::config::BrokerConfig;
use crate::context::BrokerContext;
use crate::partition::ReplicaManager;

/// A broker's state on a file system as `Broker::start` builds it (without
/// listeners), with the metadata loader on a thread of its own. Dropping it
/// stops the loader and releases the logs.
pub(crate) struct Node {
    ctx: BrokerContext,
    loader: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for Node {
    type Target = BrokerContext;
    fn deref(&self) -> &BrokerContext {
        &self.ctx
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.ctx.metadata.metadata_log().close();
        if let Some(t) = self.loader.take() {
            let _ = t.join();
        }
    }
}

/// Opens storage, the metadata store (and dynamic broker configs) and
/// publishes the metadata, as `Broker::start` does.
pub(crate) fn open_node(config: BrokerConfig, fs: &Arc<SimFs>) -> Result<Node, MetadataError> {
    let fs_dyn: Arc<dyn Fs> = fs.clone();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_700_000_000_000));
    let logs = Arc::new(LogManager::open(
        config.log_manager_config(),
        fs_dyn.clone(),
        clock.clone(),
    )?);
    let metadata = Arc::new(MetadataStore::open(&config, fs_dyn.clone())?);
    crate::config::dynamic::install(&config, &metadata, fs_dyn.as_ref())
        .map_err(|e| MetadataError::InvalidRequest(e.to_string()))?;
    let config = Arc::new(config);
    let replicas = Arc::new(ReplicaManager::new());
    let groups = Arc::new(crate::group::GroupCoordinator::new(
        crate::group::GroupConfig::default(),
        clock.clone(),
    ));
    let mut services = MetadataServices::new(
        metadata.clone(),
        config.clone(),
        logs.clone(),
        replicas.clone(),
        groups.clone(),
        fs_dyn.clone(),
    );
    let loader = services
        .run_loader_on_thread()
        .map_err(|e| MetadataError::LoaderStopped(e.to_string()))?;
    Ok(Node {
        ctx: BrokerContext {
            config,
            metadata,
            image: services.cache.clone(),
            controller: services.controller.clone(),
            replicas,
            logs,
            fs: fs_dyn,
            groups,
            clock,
        },
        loader: Some(loader),
    })
}
