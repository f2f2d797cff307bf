//! One simulated node: a combined controller and broker, or one of the
//! two roles alone ([`Layout`]), wired as `sluice serve` wires it
//! (`crates/sluice/src/node/`), on a simulated disk
//! ([`SimFs`], whose crash loses unsynced bytes), a simulated wall clock
//! that can jump, and turmoil's network.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Which nodes play which roles (`process.roles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub nodes: i32,
    /// 0: every node is combined (a voter and a broker); else nodes
    /// `1..=controllers` are controller-only voters and the others
    /// broker-only observers of the metadata log.
    pub controllers: i32,
}

impl Layout {
    /// The metadata quorum's voters.
    pub fn voters(&self) -> Vec<i32> {
        match self.controllers {
            0 => (1..=self.nodes).collect(),
            c => (1..=c).collect(),
        }
    }

    /// The nodes with the broker role.
    pub fn brokers(&self) -> Vec<i32> {
        (self.controllers + 1..=self.nodes).collect()
    }

    pub fn is_voter(&self, id: i32) -> bool {
        self.controllers == 0 || id <= self.controllers
    }

    pub fn is_broker(&self, id: i32) -> bool {
        id > self.controllers
    }
}

/// A node's configuration: Kafka's keys, as a cluster's
/// `server.properties` would set them.
pub fn config(id: i32, layout: Layout) -> BrokerConfig {
    let voters: Vec<String> = layout
        .voters()
        .into_iter()
        .map(|n| format!("{n}@{}:{CONTROLLER_PORT}", host(n)))
        .collect();
    let h = host(id);
    let replication = (layout.brokers().len() as i32).min(3).to_string();
    let (roles, listeners) = match (layout.is_voter(id), layout.is_broker(id)) {
        (true, true) => (
            "broker,controller",
            format!("PLAINTEXT://{h}:{BROKER_PORT},CONTROLLER://{h}:{CONTROLLER_PORT}"),
        ),
        (true, false) => ("controller", format!("CONTROLLER://{h}:{CONTROLLER_PORT}")),
        _ => ("broker", format!("PLAINTEXT://{h}:{BROKER_PORT}")),
    };
    let mut overrides: Vec<(&str, String)> = vec![
        ("process.roles", roles.to_string()),
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.join(",")),
        ("controller.listener.names", "CONTROLLER".into()),
        ("listeners", listeners),
        ("log.dirs", format!("/{h}/data")),
        ("default.replication.factor", replication.clone()),
        ("offsets.topic.replication.factor", replication),
        ("min.insync.replicas", "2".into()),
        ("auto.create.topics.enable", "false".into()),
        // turmoil's TCP never retransmits what a partition dropped: a
        // request in flight then waits for its timeout, where real TCP
        // would deliver it a few retransmissions after the link heals.
        // Kafka's 30 s would make every such wait outlast the run.
        ("replica.socket.timeout.ms", "3000".into()),
        // The group's coordinator state on 3 partitions, not 50, and
        // members that vanish expire within a fault phase or three.
        ("offsets.topic.num.partitions", "3".into()),
        ("group.consumer.min.session.timeout.ms", "2000".into()),
        ("group.consumer.session.timeout.ms", "6000".into()),
        ("group.consumer.min.heartbeat.interval.ms", "500".into()),
        ("group.consumer.heartbeat.interval.ms", "1000".into()),
    ];
    if layout.is_broker(id) {
        overrides.push(("inter.broker.listener.name", "PLAINTEXT".into()));
    }
    let overrides: Vec<(String, String)> = overrides
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

/// What a running node exposes to the simulation's checks (a
/// controller-only node has no broker, a broker-only one no controller).
#[derive(Clone)]
pub struct Running {
    pub broker: Option<BrokerContext>,
    pub log: Arc<RaftMetadataLog>,
    pub controller: Option<Arc<QuorumController>>,
}

/// A node's parts that outlive its crashes.
#[derive(Clone)]
pub struct NodeHandles {
    pub id: i32,
    pub layout: Layout,
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
/// log or controller fails fatally (a full disk, say) or a log directory
/// fails (an fsync error), and exits when it cannot start on a full disk
/// or on an I/O error: both are noted in `halted` for the
/// simulation, which restarts the node later. Any other error fails the
/// run.
pub async fn node_main(h: NodeHandles) -> Result<(), Box<dyn std::error::Error>> {
    let faults_before = h.fs.stats().faults_fired;
    match serve(&h).await {
        Ok(why) => {
            *h.halted.lock() = Some(why);
            Ok(())
        }
        Err(e) if h.fs.capacity().is_some() => {
            *h.halted.lock() = Some(format!("exited on a full disk: {e}"));
            Ok(())
        }
        // An injected I/O error during the start (recovery's fsyncs, the
        // metadata log's first writes): the process exits, as Kafka's.
        Err(e) if h.fs.stats().faults_fired > faults_before => {
            *h.halted.lock() = Some(format!("exited on an I/O error: {e}"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The node's software: the controller role (a voter), then the broker
/// role (on the voter's log, or on an observer of the log on a broker-only
/// node), then serving until the simulation crashes the host or the node
/// must halt (the reason).
async fn serve(h: &NodeHandles) -> Result<String, Box<dyn std::error::Error>> {
    let config = config(h.id, h.layout);
    let kraft = config.kraft.clone().expect("a cluster node");
    let fs: Arc<dyn Fs> = h.fs.clone();
    let clock: Arc<dyn Clock> = Arc::new(h.clock.clone());
    let raft_voters: BTreeMap<BrokerId, String> = h
        .layout
        .voters()
        .into_iter()
        .map(|n| (BrokerId(n), format!("{}:{RAFT_PORT}", host(n))))
        .collect();
    let mut raft = RaftConfig::new(
        BrokerId(h.id),
        CLUSTER_ID,
        raft_voters,
        kraft
            .metadata_log_dir
            .join(format!("{}-0", sluice_storage::METADATA_TOPIC)),
    );
    if !h.layout.is_voter(h.id) {
        // A broker-only node observes the log (`BrokerNode::start`).
        raft.observer_address = Some(format!("{}:{RAFT_PORT}", host(h.id)));
    }
    let log = RaftMetadataLog::start(
        raft,
        fs.clone(),
        Arc::new(SimNet),
        Box::new(SimListener::bind(RAFT_PORT).await?),
        clock.clone(),
    )
    .await?;
    let log = Arc::new(log);

    // The controller role (`ControllerNode::start`).
    let mut controller = None;
    let mut _server = None;
    if h.layout.is_voter(h.id) {
        let controller_config = sluice_controller::ControllerConfig {
            eligible_leader_replicas_enabled: h.eligible_leader_replicas,
            ..kraft.controller_config(&config)
        };
        let c = Arc::new(QuorumController::start(
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
        _server = Some(ControllerServer::start(
            Box::new(SimListener::bind(CONTROLLER_PORT).await?),
            c.clone(),
            server_config,
        )?);
        controller = Some(c);
    }
    let failure = async {
        let c = async {
            match &controller {
                Some(c) => c.failure().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            why = sluice_controller::log::failure(&*log) => why,
            why = c => why,
        }
    };
    tokio::pin!(failure);
    if !h.layout.is_broker(h.id) {
        *h.running.lock() = Some(Running {
            broker: None,
            log: log.clone(),
            controller: controller.clone(),
        });
        return Ok(failure.await);
    }

    // The broker role (`BrokerNode::start`).
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
        controller: Arc::new(
            RemoteController::new(channel.clone(), CLUSTER_ID).with_heartbeat_timeout(
                Duration::from_millis((config.broker_session_timeout_ms / 2).max(1) as u64),
            ),
        ),
        channel,
        connector: Arc::new(SimNet),
    };
    let listeners = vec![Listener::Other(Box::new(
        SimListener::bind(BROKER_PORT).await?,
    ))];
    let broker = tokio::select! {
        b = Broker::start_on(config, fs, clock, quorum, listeners) => b?,
        why = &mut failure => return Ok(why),
    };
    *h.running.lock() = Some(Running {
        broker: Some(broker.context().clone()),
        log: log.clone(),
        controller: controller.clone(),
    });
    // A failed log directory halts the node too (`log_dir_failure`).
    let why = tokio::select! {
        why = failure => why,
        why = broker.log_dir_failure() => why,
    };
    drop(broker);
    Ok(why)
}
