//! The controller role: a voter of `controller.quorum.voters`.
//!
//! A controller serves ONE address, its entry in
//! `controller.quorum.voters`, bound from the matching controller listener
//! of `listeners`; a [`SplitListener`] hands the metadata quorum's RPC to
//! the [`RaftMetadataLog`] (in `<metadata.log.dir>/__cluster_metadata-0`)
//! and Kafka's protocol to the [`ControllerServer`] (broker registration
//! and heartbeats, forwarded admin APIs, DescribeQuorum, DescribeCluster).
//! The [`QuorumController`] on that log fences brokers whose session
//! expired on its own while it is active (its operation task checks every
//! twentieth of `broker.session.timeout.ms`, at most 250 ms), and bootstraps an empty log with
//! `metadata.version` when it first becomes active.
//!
//! Before it binds, a controller asks the other voters that answer for
//! their cluster id (DescribeCluster) and refuses to start if one names
//! another cluster; a second node with the same `node.id` cannot bind the
//! voter address its twin holds, and is refused with that reason.
//!
//! Shutdown order: the server, then the log, then the controller (the
//! controller's shutdown waits for an in-flight append, which only the
//! log's shutdown resolves when no majority is left).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use kafka_protocol::messages::DescribeClusterRequest;
use sluice_broker::config::roles::KraftConfig;
use sluice_broker::metadata::validator::BrokerConfigValidator;
use sluice_broker::network::node_security::{controller_admission, ControllerSlot};
use sluice_broker::BrokerConfig;
use sluice_controller::raft::{RaftConfig, RaftMetadataLog};
use sluice_controller::{MetadataLog, QuorumController};
use sluice_metadata::BrokerId;
use sluice_storage::{Clock, Fs, RealFs, SystemClock};
use sluice_transport::listener::{SplitConfig, SplitListener};
use sluice_transport::{
    ChannelConfig, ControllerChannel, ControllerServer, QuorumVoter, QuorumVoters, ServerConfig,
};

/// The address this controller binds: its controller listener, which must
/// be where the other voters reach it (its `controller.quorum.voters`
/// entry).
fn controller_bind_address(kraft: &KraftConfig) -> anyhow::Result<SocketAddr> {
    let me = kraft.quorum.voter(kraft.node_id).with_context(|| {
        format!(
            "node.id={} is not in controller.quorum.voters ({}): a controller must be a voter",
            kraft.node_id,
            kraft
                .quorum
                .voters
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    })?;
    let name = &kraft.controller_listener_names[0];
    let listener = kraft
        .controller_listeners
        .iter()
        .find(|l| &l.name == name)
        .with_context(|| format!("listeners has no {name} listener (controller.listener.names)"))?;
    if listener.port != me.port {
        bail!(
            "the {name} listener ({}:{}) is not this node's voter address {me}: the other voters could not reach it",
            listener.host,
            listener.port
        );
    }
    let host = if listener.host.is_empty() {
        "0.0.0.0"
    } else {
        &listener.host
    };
    let bind = format!("{}:{}", host_for_bind(host), listener.port);
    bind.to_socket_addrs()
        .with_context(|| format!("cannot resolve the {name} listener {bind}"))?
        .next()
        .with_context(|| format!("the {name} listener {bind} resolves to no address"))
}

fn host_for_bind(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Asks every other voter that answers (DescribeCluster on its controller
/// listener) for its cluster id, and refuses to start when one names
/// another cluster: this node's dirs were formatted for the wrong cluster
/// (or its voters list names another cluster's nodes). Voters that do not
/// answer yet are skipped: on a cluster's first start nobody is up.
async fn check_peers_cluster_id(
    kraft: &KraftConfig,
    cluster_id: &str,
    connector: Arc<dyn sluice_transport::Connector>,
) -> anyhow::Result<()> {
    let config = ChannelConfig {
        request_timeout_ms: 1000,
        client_id: format!("sluice-controller-{}", kraft.node_id),
        ..ChannelConfig::default()
    };
    for v in kraft.quorum.voters.iter().filter(|v| v.id != kraft.node_id) {
        let voter = QuorumVoter {
            id: v.id,
            host: v.host.clone(),
            port: v.port,
        };
        let channel = ControllerChannel::with_connector(
            QuorumVoters::new(vec![voter])?,
            config.clone(),
            connector.clone(),
        );
        let req = DescribeClusterRequest::default().with_endpoint_type(2);
        let Ok(resp) = channel.send(&req, Duration::from_secs(1)).await else {
            continue;
        };
        if resp.error_code == 0 && resp.cluster_id.as_str() != cluster_id {
            bail!(
                "voter {v} belongs to cluster {}, but this node's meta.properties name cluster {cluster_id}: refusing to start node {} (format its dirs with the cluster's id)",
                resp.cluster_id.as_str(),
                kraft.node_id
            );
        }
    }
    Ok(())
}

/// The running controller role.
pub struct ControllerNode {
    server: ControllerServer,
    log: Arc<RaftMetadataLog>,
    controller: Arc<QuorumController>,
    addr: SocketAddr,
}

impl ControllerNode {
    /// Starts the controller role of `config` for `cluster_id` (from the
    /// node's meta.properties).
    pub async fn start(config: &BrokerConfig, cluster_id: &str) -> anyhow::Result<ControllerNode> {
        Self::start_with(config, cluster_id, Arc::new(RealFs)).await
    }

    /// [`ControllerNode::start`] with the metadata log on `fs`.
    pub async fn start_with(
        config: &BrokerConfig,
        cluster_id: &str,
        fs: Arc<dyn Fs>,
    ) -> anyhow::Result<ControllerNode> {
        let kraft = config
            .kraft
            .as_ref()
            .context("the controller role needs process.roles")?;
        let bind = controller_bind_address(kraft)?;
        let security = config
            .node_security
            .as_ref()
            .context("a controller needs process.roles")?;
        let client = super::secured(&security.controller_client)?;
        check_peers_cluster_id(kraft, cluster_id, client.connector.clone()).await?;
        let slot = ControllerSlot::default();
        let admission = controller_admission(security, config.authorizer.clone(), slot.clone())?;
        let listener = SplitListener::bind_admitting(bind, SplitConfig::default(), admission)
            .await
            .with_context(|| {
                format!(
                    "cannot bind the controller listener {bind} of node {}: is another node with node.id={} (or another process) using it?",
                    kraft.node_id, kraft.node_id
                )
            })?;
        let addr = listener.local_addr();
        let (kafka, quorum) = listener.split();
        let voters: BTreeMap<BrokerId, String> = kraft
            .quorum
            .voters
            .iter()
            .map(|v| (BrokerId(v.id), v.address()))
            .collect();
        let raft = RaftConfig::new(
            BrokerId(kraft.node_id),
            cluster_id,
            voters,
            super::metadata_log_path(kraft),
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let log = RaftMetadataLog::start(
            raft,
            fs,
            client.raft.clone(),
            Box::new(quorum),
            clock.clone(),
        )
        .await
        .with_context(|| {
            format!(
                "cannot start the metadata log in {}",
                kraft.metadata_log_dir.display()
            )
        })?;
        let log = Arc::new(log);
        let controller = Arc::new(QuorumController::start(
            log.clone() as Arc<dyn MetadataLog>,
            {
                // `storage format`'s feature levels and credentials make
                // the bootstrap batch of a new cluster.
                let mut cc = kraft.controller_config(config);
                cc.bootstrap = sluice_broker::metadata::records::with_bootstrap_file(
                    cc.bootstrap,
                    sluice_broker::metadata::records::read_bootstrap_file(
                        &sluice_storage::RealFs,
                        &kraft.metadata_log_dir,
                    )?,
                );
                cc
            },
            // Config changes are checked here as on a single node (the
            // broker's config table: keys, types, ranges, list keys).
            Arc::new(BrokerConfigValidator::new(Arc::new(config.clone()))),
            clock,
        ));
        slot.set(controller.clone());
        let voters = kraft.quorum_voters()?;
        let server_config = ServerConfig {
            max_request_bytes: config.socket_request_max_bytes,
            voters: Some(voters),
            listener_name: kraft.controller_listener_names[0].clone(),
            authorizer: config.authorizer.clone(),
            ..ServerConfig::new(cluster_id)
        };
        let server = ControllerServer::start(Box::new(kafka), controller.clone(), server_config)?;
        tracing::info!(
            node_id = kraft.node_id,
            cluster_id,
            %addr,
            metadata_log_dir = %kraft.metadata_log_dir.display(),
            "controller started"
        );
        Ok(ControllerNode {
            server,
            log,
            controller,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// This voter's replica of the metadata log (a combined node's broker
    /// follows it).
    pub fn log(&self) -> Arc<RaftMetadataLog> {
        self.log.clone()
    }

    /// Resolves with the reason once the metadata log or the controller
    /// failed fatally (never on a clean shutdown).
    pub async fn fatal(&self) -> String {
        tokio::select! {
            why = sluice_controller::log::failure(&*self.log) => why,
            why = self.controller.failure() => why,
        }
    }

    /// Server, then log, then controller.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
        self.log.shutdown().await;
        self.controller.shutdown().await;
        // The applied offset and a digest of the image's canonical bytes:
        // every voter that applied the same log prints the same pair.
        let image = self.controller.image();
        let digest = image.canonical_bytes().map_or_else(
            |e| format!("unavailable ({e})"),
            |b| format!("{:08x}", crc32c::crc32c(&b)),
        );
        tracing::info!(
            last_offset = image.provenance().last_offset.0,
            image_crc32c = %digest,
            "controller stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::{Fault, FaultKind, SimFs};

    /// A storage failure of the metadata log reaches [`ControllerNode::fatal`]
    /// (which `run_controller` turns into exit 70).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_metadata_log_storage_error_is_fatal_to_the_node() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let overrides: Vec<(String, String)> = [
            ("process.roles", "controller".to_string()),
            ("node.id", "1".into()),
            ("controller.quorum.voters", format!("1@127.0.0.1:{port}")),
            ("controller.listener.names", "CONTROLLER".into()),
            ("listeners", format!("CONTROLLER://127.0.0.1:{port}")),
            ("log.dirs", "/sim/node-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let config = BrokerConfig::from_properties(None, &overrides).unwrap();
        let sim = SimFs::new();
        let node =
            ControllerNode::start_with(&config, "MkU3OEVBNTcwNTJENDM2Qk", Arc::new(sim.clone()))
                .await
                .unwrap();
        let bound = std::time::Instant::now() + Duration::from_secs(60);
        while !node.controller.is_active() {
            assert!(std::time::Instant::now() < bound, "never became active");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        const EIO: i32 = 5;
        sim.inject(Fault::once("raft-log", FaultKind::SyncError(EIO)));
        let c = node.controller.clone();
        // Any append now hits the failed fsync.
        tokio::spawn(async move {
            let cluster_default = sluice_metadata::ConfigResource {
                resource_type: sluice_metadata::ConfigResourceType::Broker,
                name: String::new(),
            };
            let keys = vec![("log.retention.ms".to_string(), Some("1000".to_string()))];
            let _ = c.alter_configs(vec![(cluster_default, keys)], false).await;
        });
        let why = tokio::time::timeout(Duration::from_secs(60), node.fatal())
            .await
            .expect("the storage error never surfaced");
        assert!(
            why.contains("fatal metadata log error") && why.contains("os error 5"),
            "{why}"
        );
        node.shutdown().await;
    }
}
