//! The broker role of a cluster node: serves clients on `listeners`,
//! follows the metadata log, and writes metadata through the active
//! controller.
//!
//! - **Its metadata log replica.** On a combined node, the voter's own
//!   [`RaftMetadataLog`]; on a broker-only node, an observer (an openraft
//!   learner outside `controller.quorum.voters`) in
//!   `<metadata.log.dir>/__cluster_metadata-0`, which asks the voters to be
//!   admitted and is then pushed the committed log by every leader. The
//!   observer listens for that on an ephemeral port of its inter-broker
//!   listener's host (the leader learns the address on admission).
//! - **Its way to the controller.** A [`ControllerChannel`] to the active
//!   voter (it follows NOT_CONTROLLER and dead voters), behind the
//!   broker's `ControllerClient` seam as a [`RemoteController`]: every
//!   CreateTopics, DeleteTopics, config change, election, producer-id block,
//!   registration and heartbeat of this broker goes there, and is answered
//!   once this node's loader published the committed change.
//!
//! Invariants: the broker never appends to the metadata log itself (only
//! the active controller does); a broker-only node never votes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use sluice_broker::config::roles::KraftConfig;
use sluice_broker::metadata::{ControllerClient, QuorumMode};
use sluice_broker::{Broker, BrokerConfig};
use sluice_controller::raft::{RaftConfig, RaftMetadataLog, TcpAcceptor, TcpTransport};
use sluice_controller::MetadataLog;
use sluice_metadata::BrokerId;
use sluice_storage::{Clock, Fs, RealFs, SystemClock};
use sluice_transport::{ChannelConfig, ControllerChannel, RemoteController};

use crate::cli;

/// The running broker role.
pub struct BrokerNode {
    broker: Broker,
    /// A broker-only node's observer log (a combined node's log belongs to
    /// its controller role).
    observer: Option<Arc<RaftMetadataLog>>,
    /// Listener names, in `listeners` order.
    names: Vec<String>,
}

/// The host the observer's RPC listener binds: the inter-broker
/// listener's advertised host (where the other nodes reach this one),
/// else its bind host, else loopback.
fn observer_host(config: &BrokerConfig, kraft: &KraftConfig) -> String {
    let name = kraft.inter_broker_listener_name.as_deref();
    let pick = |ls: &[sluice_broker::config::Listener]| {
        ls.iter()
            .find(|l| Some(l.name.as_str()) == name)
            .map(|l| l.host.clone())
            .filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::")
    };
    pick(&config.advertised_listeners)
        .or_else(|| pick(&config.listeners))
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// Starts a broker-only node's observer of the metadata log.
async fn start_observer(
    config: &BrokerConfig,
    kraft: &KraftConfig,
    cluster_id: &str,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<RaftMetadataLog>> {
    let host = observer_host(config, kraft);
    let bind = if host.contains(':') {
        format!("[{host}]:0")
    } else {
        format!("{host}:0")
    };
    let acceptor = TcpAcceptor::bind(&bind)
        .await
        .with_context(|| format!("cannot bind the metadata observer's listener {bind}"))?;
    let addr: SocketAddr = acceptor.local_addr()?;
    let mut raft = RaftConfig::new(
        BrokerId(kraft.node_id),
        cluster_id,
        kraft
            .quorum
            .voters
            .iter()
            .map(|v| (BrokerId(v.id), v.address()))
            .collect(),
        super::metadata_log_path(kraft),
    );
    raft.observer_address = Some(addr.to_string());
    let log = RaftMetadataLog::start(raft, fs, Arc::new(TcpTransport), Box::new(acceptor), clock)
        .await
        .with_context(|| {
            format!(
                "cannot start the metadata log observer in {}",
                super::metadata_log_path(kraft).display()
            )
        })?;
    tracing::info!(node_id = kraft.node_id, %addr, "metadata log observer started");
    Ok(Arc::new(log))
}

impl BrokerNode {
    /// Starts the broker role; `voter_log` is the controller role's log on
    /// a combined node (else this node observes the log).
    pub async fn start(
        config: BrokerConfig,
        cluster_id: &str,
        voter_log: Option<Arc<RaftMetadataLog>>,
    ) -> anyhow::Result<BrokerNode> {
        let kraft = config
            .kraft
            .clone()
            .context("the broker role of a cluster needs process.roles")?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let fs: Arc<dyn Fs> = Arc::new(sluice_broker::metrics::MeteredFs(Arc::new(RealFs)));
        let (log, observer) = match voter_log {
            Some(log) => (log, None),
            None => {
                let log =
                    start_observer(&config, &kraft, cluster_id, fs.clone(), clock.clone()).await?;
                (log.clone(), Some(log))
            }
        };
        let security = config
            .node_security
            .clone()
            .context("the broker role of a cluster needs process.roles")?;
        let to_controllers = super::secured(&security.controller_client)?;
        let inter_broker = match &security.inter_broker {
            Some(c) => super::secured(c)?,
            None => anyhow::bail!("the broker role needs an inter-broker listener"),
        };
        let channel = Arc::new(ControllerChannel::with_connector(
            kraft.quorum_voters()?,
            ChannelConfig {
                client_id: format!("broker-{}-to-controller", kraft.node_id),
                ..ChannelConfig::default()
            },
            to_controllers.connector.clone(),
        ));
        let controller: Arc<dyn ControllerClient> = Arc::new(
            RemoteController::new(channel.clone(), cluster_id).with_heartbeat_timeout(
                std::time::Duration::from_millis(
                    (config.broker_session_timeout_ms / 2).max(1) as u64
                ),
            ),
        );
        let names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
        let metrics = cli::metrics::start(&config).await?;
        let console = cli::console::embedded(&config)?;
        let log_dirs = config.log_dirs.clone();
        let started = std::time::Instant::now();
        let quorum = QuorumMode::Cluster {
            log: log.clone() as Arc<dyn MetadataLog>,
            controller,
            channel,
            connector: inter_broker.connector.clone(),
        };
        let broker = match Broker::start_in(config, fs, clock, quorum).await {
            Ok(b) => b,
            Err(e) => {
                if let Some(o) = &observer {
                    o.shutdown().await;
                }
                return Err(e).context("broker failed to start");
            }
        };
        // A change of the inter-broker or controller listener's stores
        // (KIP-226) reloads the clients this node dials its peers with too;
        // a keystore stored as a dynamic config before this start applies
        // to them from now on.
        let ctx = broker.context();
        if let Some(c) = &security.inter_broker {
            ctx.tls.add_peer(c, inter_broker.tls.as_ref());
        }
        ctx.tls
            .add_peer(&security.controller_client, to_controllers.tls.as_ref());
        let dynamic = ctx.config.dynamic.read().clone();
        if let Err(e) = ctx.tls.reconfigure(&ctx.config.explicit.0, &dynamic) {
            tracing::warn!("connections to peers keep the static SSL keystores: {e}");
        }
        if let Some(state) = &metrics {
            state.set_ready(broker.context().clone());
        }
        cli::metrics::startup_summary(&broker, &log_dirs, started.elapsed(), metrics.is_some());
        if let Some(c) = console {
            cli::console::start_embedded(c, broker.bound_addrs()).await?;
        }
        Ok(BrokerNode {
            broker,
            observer,
            names,
        })
    }

    /// `listening on NAME://addr` for every client listener.
    pub fn listening_lines(&self) -> Vec<String> {
        self.names
            .iter()
            .zip(self.broker.bound_addrs())
            .map(|(n, a)| format!("listening on {n}://{a}"))
            .collect()
    }

    /// Resolves with the reason once the observer's log failed fatally
    /// (on a combined node its controller role reports that), or a failed
    /// log directory must halt the broker (`log_dir_failure`).
    pub async fn fatal(&self) -> String {
        let observer = async {
            match &self.observer {
                Some(log) => sluice_controller::log::failure(&**log).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            why = observer => why,
            why = self.broker.log_dir_failure() => why,
        }
    }

    /// A controlled shutdown (leaderships move off this broker), the
    /// broker, then the observer's log.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let result = self.broker.shutdown().await;
        if let Some(log) = self.observer {
            log.shutdown().await;
        }
        result.context("broker shutdown")
    }
}
