//! State shared by every connection and handler.

use std::sync::Arc;

use sluice_storage::{Clock, Fs, LogManager};

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::MetadataStore;
use crate::partition::ReplicaManager;

/// Everything a request handler may need. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct BrokerContext {
    /// Static broker config (the config table, resolved at start).
    pub config: Arc<BrokerConfig>,
    /// Durable cluster metadata: cluster id, node id, topics and their configs.
    pub metadata: Arc<MetadataStore>,
    /// Online partitions: topic-partition -> Partition (log, high watermark, waiters).
    pub replicas: Arc<ReplicaManager>,
    /// The storage engine.
    pub logs: Arc<LogManager>,
    /// Syscall seam (tests substitute a blocking or failing one).
    pub fs: Arc<dyn Fs>,
    pub clock: Arc<dyn Clock>,
    /// The group coordinator (classic groups, committed offsets).
    pub groups: Arc<GroupCoordinator>,
}
