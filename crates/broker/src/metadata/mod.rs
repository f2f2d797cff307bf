//! Cluster metadata on the broker: the path a change takes from the
//! controller side to the handlers.
//!
//! ```text
//! ControllerChannel ─► MetadataStore ─► LocalMetadataLog ─► MetadataLoader ─► publishers ─► ImageCache ─► handlers
//!  (handlers' writes)   (validate, persist   (the MetadataLog    (replay into a     (partitions,     (the current
//!                        files, records)      seam, committed)    MetadataDelta)     groups, configs)  MetadataImage)
//! ```
//!
//! - [`names`]: Kafka's topic-name rules and the base64 form of ids.
//! - [`files`]: the single-node metadata files (`topics.meta`,
//!   `group_configs.meta`, `quorum-state`, `meta.properties`) and the
//!   durable-write helper.
//! - [`records`]: the store's state and changes as Kafka metadata records
//!   (the bootstrap of the metadata log from the files).
//! - [`store`]: [`MetadataStore`], the controller side of one node:
//!   validates, persists, appends records. Never touches logs.
//! - [`local_log`]: [`LocalMetadataLog`], the in-memory implementation of
//!   the controller crate's `MetadataLog` seam for one voter.
//! - [`loader`]: [`MetadataLoader`] and the [`MetadataPublisher`] trait.
//! - [`publishers`]: partitions (logs, leader epochs, roles), the group
//!   coordinator (`__consumer_offsets` leadership), group configs.
//! - [`image_cache`]: [`ImageCache`], what handlers read.
//! - [`controller`]: [`ControllerChannel`], what handlers write through;
//!   answers after the change is published.
//!
//! Invariants: a change is durable before it is appended to the log; it is
//! applied by every publisher, in log order, before the image cache shows
//! it and before its writer is answered; handlers read leaders, leader
//! epochs, replicas and ISR from the image, never from the node id.

pub mod controller;
pub mod files;
pub mod image_cache;
pub mod loader;
pub mod local_log;
pub mod names;
pub mod publishers;
pub mod records;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use sluice_controller::MetadataLog;
use sluice_metadata::BrokerId;
use sluice_record::Offset;
use sluice_storage::{Fs, LogManager};

pub use controller::ControllerChannel;
pub use image_cache::{ImageCache, LoaderStopped};
pub use loader::{MetadataLoader, MetadataPublisher};
pub use local_log::LocalMetadataLog;
pub use names::{
    is_internal_topic, uuid_from_base64, uuid_to_base64, validate_topic_name,
    MAX_PARTITIONS_PER_TOPIC, MAX_TOPIC_NAME_LEN,
};
pub use publishers::{GroupConfigPublisher, GroupCoordinatorPublisher, PartitionsPublisher};
pub use store::{MetadataError, MetadataStore, TopicMetadata, MAX_GROUPS_WITH_CONFIGS};

pub(crate) use files::{percent_decode, percent_encode, read_file, write_durably};

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::partition::ReplicaManager;

/// The metadata side of a running broker, wired together.
pub struct MetadataServices {
    pub store: Arc<MetadataStore>,
    pub cache: Arc<ImageCache>,
    pub controller: Arc<ControllerChannel>,
    loader: Option<MetadataLoader>,
}

impl MetadataServices {
    /// Connects the store's metadata log, the loader, the publishers (in
    /// their order: partitions, group coordinator, group configs, then
    /// the image cache) and the controller channel. Nothing is published
    /// until [`MetadataServices::run_loader`] or
    /// [`MetadataServices::catch_up`].
    pub fn new(
        store: Arc<MetadataStore>,
        config: Arc<BrokerConfig>,
        logs: Arc<LogManager>,
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        fs: Arc<dyn Fs>,
    ) -> Self {
        let node = BrokerId(config.node_id);
        let cache = ImageCache::new(node);
        let partitions = Arc::new(PartitionsPublisher::new(
            node,
            config.clone(),
            logs,
            replicas.clone(),
            fs,
        ));
        let publishers: Vec<Arc<dyn MetadataPublisher>> = vec![
            partitions.clone(),
            Arc::new(GroupCoordinatorPublisher::new(
                node,
                groups.clone(),
                replicas,
            )),
            Arc::new(GroupConfigPublisher::new(groups)),
        ];
        let loader = MetadataLoader::new(publishers, cache.clone());
        let controller = Arc::new(ControllerChannel::new(
            config,
            store.clone(),
            cache.clone(),
            partitions,
        ));
        MetadataServices {
            store,
            cache,
            controller,
            loader: Some(loader),
        }
    }

    /// Starts the loader on the runtime and waits until everything
    /// committed so far (the bootstrap from the files) is published: the
    /// logs are open and the image is current.
    pub async fn run_loader(&mut self) -> Result<(), LoaderStopped> {
        let log = self.store.metadata_log();
        let end = Offset(log.end_offset().0 - 1);
        if let Some(loader) = self.loader.take() {
            tokio::spawn(loader.run(log.listen()));
        }
        self.cache.wait_for(end).await.map(|_| ())
    }

    /// Runs the loader on a thread of its own (for code without a tokio
    /// runtime, such as the store's tests) and waits for the bootstrap.
    pub fn run_loader_on_thread(&mut self) -> Result<std::thread::JoinHandle<()>, LoaderStopped> {
        let log = self.store.metadata_log();
        let end = Offset(log.end_offset().0 - 1);
        let loader = self
            .loader
            .take()
            .ok_or_else(|| LoaderStopped("loader already running".into()))?;
        let listener = log.listen();
        let thread = std::thread::Builder::new()
            .name("metadata-loader".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime");
                rt.block_on(loader.run(listener));
            })
            .map_err(|e| LoaderStopped(e.to_string()))?;
        self.cache.wait_for_blocking(end)?;
        Ok(thread)
    }

    /// Stops the metadata log; the loader ends.
    pub async fn shutdown(&self) {
        self.store.metadata_log().shutdown().await;
    }
}
