//! State shared by every connection and handler.

use std::sync::Arc;

use sluice_storage::{Clock, Fs, LogManager};

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::{ControllerChannel, ImageCache, QuorumHandle};
use crate::partition::ReplicaManager;
use crate::txn::TransactionCoordinator;

/// Everything a request handler may need. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct BrokerContext {
    /// Static broker config (the config table, resolved at start).
    pub config: Arc<BrokerConfig>,
    /// Cluster id, directory id and the metadata quorum's state
    /// (read-only; DescribeQuorum, Metadata, DescribeCluster).
    pub metadata: Arc<QuorumHandle>,
    /// The current metadata image (topics, partitions with leaders and
    /// epochs, configs): what handlers answer from.
    pub image: Arc<ImageCache>,
    /// Metadata changes, answered after they are published.
    pub controller: Arc<ControllerChannel>,
    /// Online partitions: topic-partition -> Partition (log, high watermark, waiters).
    pub replicas: Arc<ReplicaManager>,
    /// The storage engine.
    pub logs: Arc<LogManager>,
    /// Syscall seam (tests substitute a blocking or failing one).
    pub fs: Arc<dyn Fs>,
    pub clock: Arc<dyn Clock>,
    /// The group coordinator (classic groups, committed offsets).
    pub groups: Arc<GroupCoordinator>,
    /// The transaction coordinator (transactional ids, markers).
    pub txns: Arc<TransactionCoordinator>,
    /// This broker's replica fetchers (the follower side; metrics).
    pub fetchers: Arc<crate::replica_fetcher::ReplicaFetcherManager>,
    /// Client quota sensors (`crate::quota`).
    pub quotas: Arc<crate::quota::ClientQuotaManager>,
    /// The TLS servers of the SSL listeners, reloaded by dynamic configs
    /// (`crate::network::tls_reload`).
    pub tls: Arc<crate::network::tls_reload::TlsListeners>,
}
