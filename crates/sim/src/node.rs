//! One simulated node: a combined controller and broker, wired as
//! `sluice serve` wires it (`crates/sluice/src/node/`), on a simulated disk
//! ([`SimFs`], whose crash loses unsynced bytes), a simulated wall clock
//! that can jump, and turmoil's network.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_broker::config::roles::KraftConfig;
use sluice_broker::metadata::validator::BrokerConfigValidator;
use sluice_broker::metadata::QuorumMode;
use sluice_broker::network::Listener;
use sluice_broker::{Broker, BrokerConfig, BrokerContext};
use sluice_controller::raft::{RaftConfig, RaftMetadataLog};
use sluice_controller::{MetadataLog, QuorumController};
use sluice_metadata::BrokerId;
use sluice_storage::{meta_properties, Clock, Fs, SimFs};
use sluice_transport::{
    ChannelConfig, ControllerChannel, ControllerServer, RemoteController, ServerConfig,
};

use crate::net::{SimListener, SimNet};

/// The simulated cluster's id (a formatted node's `meta.properties`).
pub const CLUSTER_ID: &str = "q1Sh-9_ISia_zwGINzRvyQ";
/// The client listener's port on every node.
pub const BROKER_PORT: u16 = 9092;
/// The controller listener's port (`controller.quorum.voters`).
pub const CONTROLLER_PORT: u16 = 9093;
/// The metadata log's raft RPC port (one port with the controller
/// listener in the binary; two here, each behind its own seam).
pub const RAFT_PORT: u16 = 9094;

/// A node's simulated host name.
pub fn host(id: i32) -> String {
    format!("n{id}")
}

/// Simulated wall clock: the simulation's elapsed time plus an offset that
/// [`SimClock::jump`] moves (NTP steps, VM pauses), from a fixed epoch.
#[derive(Clone, Default)]
pub struct SimClock {
    offset_ms: Arc<AtomicI64>,
}

/// 2026-01-01, so timestamps look like timestamps.
const EPOCH_MS: i64 = 1_767_225_600_000;

impl SimClock {
    /// Moves this clock by `ms` (either way).
    pub fn jump(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        let sim = turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as i64);
        EPOCH_MS + sim + self.offset_ms.load(Ordering::Relaxed)
    }
}

/// A node's configuration: Kafka's keys, as a 3-node cluster's
/// `server.properties` would set them.
pub fn config(id: i32, nodes: i32) -> BrokerConfig {
    let voters: Vec<String> = (1..=nodes)
        .map(|n| format!("{n}@{}:{CONTROLLER_PORT}", host(n)))
        .collect();
    let h = host(id);
    let overrides: Vec<(String, String)> = [
        ("process.roles", "broker,controller".to_string()),
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.join(",")),
        ("controller.listener.names", "CONTROLLER".into()),
        (
            "listeners",
            format!("PLAINTEXT://{h}:{BROKER_PORT},CONTROLLER://{h}:{CONTROLLER_PORT}"),
        ),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        ("log.dirs", format!("/{h}/data")),
        ("default.replication.factor", nodes.min(3).to_string()),
        ("offsets.topic.replication.factor", nodes.min(3).to_string()),
        ("min.insync.replicas", "2".into()),
        ("auto.create.topics.enable", "false".into()),
        // turmoil's TCP never retransmits what a partition dropped: a
        // request in flight then waits for its timeout, where real TCP
        // would deliver it a few retransmissions after the link heals.
        // Kafka's 30 s would make every such wait outlast the run.
        ("replica.socket.timeout.ms", "3000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    BrokerConfig::from_properties(None, &overrides).expect("the simulated node's config is valid")
}

/// Formats a node's directories on `fs` (`sluice storage format`).
pub fn format(fs: &SimFs, config: &BrokerConfig) {
    let meta_dir = sluice_broker::metadata::metadata_log_dir(config);
    let dirs = meta_properties::node_dirs(&config.log_dirs, &meta_dir);
    meta_properties::format(fs, &dirs, CLUSTER_ID, config.node_id, false, 0)
        .expect("formatting a fresh simulated disk");
}

/// What a running node exposes to the simulation's checks.
#[derive(Clone)]
pub struct Running {
    pub broker: BrokerContext,
    pub log: Arc<RaftMetadataLog>,
    pub controller: Arc<QuorumController>,
}

/// A node's parts that outlive its crashes.
#[derive(Clone)]
pub struct NodeHandles {
    pub id: i32,
    pub nodes: i32,
    pub fs: Arc<SimFs>,
    pub clock: SimClock,
    /// Set once the node serves; cleared by the simulation when it crashes.
    pub running: Arc<Mutex<Option<Running>>>,
    /// Why the node's process halted or exited on its own, until the
    /// simulation takes note (and restarts it later).
    pub halted: Arc<Mutex<Option<String>>>,
    /// KIP-966 in the controllers (on, as in Kafka 4.1; off only to show
    /// what the simulation finds without it).
    pub eligible_leader_replicas: bool,
}

fn quorum_voters(kraft: &KraftConfig) -> sluice_transport::QuorumVoters {
    kraft
        .quorum_voters()
        .expect("the simulated voters are valid")
}

/// The node's process. It halts, as `sluice serve` does, once its metadata
/// log or controller fails fatally (a full disk, say), and exits when it
/// cannot start on a full disk: both are noted in `halted` for the
/// simulation, which restarts the node later. Any other error fails the
/// run.
pub async fn node_main(h: NodeHandles) -> Result<(), Box<dyn std::error::Error>> {
    match serve(&h).await {
        Ok(why) => {
            *h.halted.lock() = Some(why);
            Ok(())
        }
        Err(e) if h.fs.capacity().is_some() => {
            *h.halted.lock() = Some(format!("exited on a full disk: {e}"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The node's software: the controller role, then the broker role, then
/// serving until the simulation crashes the host or the node must halt
/// (the reason).
async fn serve(h: &NodeHandles) -> Result<String, Box<dyn std::error::Error>> {
    let config = config(h.id, h.nodes);
    let kraft = config.kraft.clone().expect("a cluster node");
    let fs: Arc<dyn Fs> = h.fs.clone();
    let clock: Arc<dyn Clock> = Arc::new(h.clock.clone());

    // The controller role (`ControllerNode::start`).
    let raft_voters: BTreeMap<BrokerId, String> = (1..=h.nodes)
        .map(|n| (BrokerId(n), format!("{}:{RAFT_PORT}", host(n))))
        .collect();
    let raft = RaftConfig::new(
        BrokerId(h.id),
        CLUSTER_ID,
        raft_voters,
        kraft
            .metadata_log_dir
            .join(format!("{}-0", sluice_storage::METADATA_TOPIC)),
    );
    let log = RaftMetadataLog::start(
        raft,
        fs.clone(),
        Arc::new(SimNet),
        Box::new(SimListener::bind(RAFT_PORT).await?),
        clock.clone(),
    )
    .await?;
    let log = Arc::new(log);
    let controller_config = sluice_controller::ControllerConfig {
        eligible_leader_replicas_enabled: h.eligible_leader_replicas,
        ..kraft.controller_config(&config)
    };
    let controller = Arc::new(QuorumController::start(
        log.clone() as Arc<dyn MetadataLog>,
        controller_config,
        Arc::new(BrokerConfigValidator::new(Arc::new(config.clone()))),
        clock.clone(),
    ));
    let server_config = ServerConfig {
        max_request_bytes: config.socket_request_max_bytes,
        voters: Some(quorum_voters(&kraft)),
        listener_name: kraft.controller_listener_names[0].clone(),
        ..ServerConfig::new(CLUSTER_ID)
    };
    let _server = ControllerServer::start(
        Box::new(SimListener::bind(CONTROLLER_PORT).await?),
        controller.clone(),
        server_config,
    )?;

    // The broker role (`BrokerNode::start`), on the voter's log.
    let channel = Arc::new(ControllerChannel::with_connector(
        quorum_voters(&kraft),
        ChannelConfig {
            client_id: format!("broker-{}-to-controller", h.id),
            ..ChannelConfig::default()
        },
        Arc::new(SimNet),
    ));
    let quorum = QuorumMode::Cluster {
        log: log.clone() as Arc<dyn MetadataLog>,
        controller: Arc::new(RemoteController::new(channel.clone(), CLUSTER_ID)),
        channel,
        connector: Arc::new(SimNet),
    };
    let listeners = vec![Listener::Other(Box::new(
        SimListener::bind(BROKER_PORT).await?,
    ))];
    let failure = async {
        tokio::select! {
            why = sluice_controller::log::failure(&*log) => why,
            why = controller.failure() => why,
        }
    };
    tokio::pin!(failure);
    let broker = tokio::select! {
        b = Broker::start_on(config, fs, clock, quorum, listeners) => b?,
        why = &mut failure => return Ok(why),
    };
    *h.running.lock() = Some(Running {
        broker: broker.context().clone(),
        log: log.clone(),
        controller: controller.clone(),
    });
    let why = failure.await;
    drop(broker);
    Ok(why)
}
