//! Fixtures for the transport tests: a quorum controller over the
//! in-memory metadata log, its controller listener on a loopback port, and
//! brokers (lifecycle managers) talking to it through real sockets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_controller::testing::MemoryLog;
use sluice_controller::{ControllerConfig, PermissiveValidator, QuorumController};
use sluice_metadata::record::BrokerEndpoint;
use sluice_metadata::BrokerId;
use sluice_storage::{Clock, ManualClock};
use sluice_transport::*;
use uuid::Uuid;

pub const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qk";
pub const SESSION_TIMEOUT_MS: i64 = 6000;

pub struct Controller {
    pub log: Arc<MemoryLog>,
    pub clock: Arc<ManualClock>,
    pub c: Arc<QuorumController>,
    pub server: ControllerServer,
}

impl Controller {
    /// A controller on node `node` whose log this node leads.
    pub async fn start(node: i32) -> Controller {
        let log = MemoryLog::new(BrokerId(node));
        let clock = Arc::new(ManualClock::new(1_000_000));
        let config = ControllerConfig {
            default_num_partitions: 3,
            broker_session_timeout_ms: SESSION_TIMEOUT_MS,
            ..ControllerConfig::default()
        };
        let c = Arc::new(QuorumController::start(
            log.clone(),
            config,
            Arc::new(PermissiveValidator),
            clock.clone(),
        ));
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = ControllerServer::bind(addr, c.clone(), ServerConfig::new(CLUSTER_ID))
            .await
            .unwrap();
        Controller {
            log,
            clock,
            c,
            server,
        }
    }

    pub fn voter(&self, id: i32) -> String {
        format!("{id}@{}", self.server.local_addr())
    }

    /// The offset a broker's loader would have applied: everything the
    /// controller's image holds.
    pub fn offset_fn(&self) -> Arc<dyn Fn() -> i64 + Send + Sync> {
        let c = self.c.clone();
        Arc::new(move || c.image().provenance().last_offset.0)
    }

    pub fn channel(&self, voters: &str) -> Arc<ControllerChannel> {
        Arc::new(ControllerChannel::new(
            QuorumVoters::parse(voters).unwrap(),
            channel_config(),
        ))
    }

    /// A broker with node id `id` (a fresh incarnation) talking to this
    /// controller, not started.
    pub fn broker(&self, id: i32) -> Arc<BrokerLifecycleManager> {
        self.broker_in(id, CLUSTER_ID)
    }

    pub fn broker_in(&self, id: i32, cluster_id: &str) -> Arc<BrokerLifecycleManager> {
        BrokerLifecycleManager::new(
            lifecycle_config(id, cluster_id),
            self.channel(&self.voter(1)),
            self.clock.clone() as Arc<dyn Clock>,
            self.offset_fn(),
        )
    }

    /// Partitions `broker` leads in the controller's image.
    pub fn leaders_of(&self, broker: i32) -> usize {
        self.c
            .image()
            .topics()
            .flat_map(|t| {
                t.partitions()
                    .values()
                    .map(|p| p.leader)
                    .collect::<Vec<_>>()
            })
            .filter(|l| *l == BrokerId(broker))
            .count()
    }

    pub fn fenced(&self, broker: i32) -> bool {
        self.c.image().broker(BrokerId(broker)).unwrap().fenced
    }

    /// No partition of the image is led by a fenced broker.
    pub fn assert_no_fenced_leader(&self) {
        let image = self.c.image();
        for t in image.topics() {
            for (p, reg) in t.partitions() {
                if reg.has_leader() {
                    let b = image.broker(reg.leader).expect("leader registered");
                    assert!(!b.fenced, "{}-{p} led by fenced broker {}", t.name(), b.id);
                }
            }
        }
    }
}

pub fn channel_config() -> ChannelConfig {
    ChannelConfig {
        request_timeout_ms: 10_000,
        retry_backoff_ms: 5,
        retry_backoff_max_ms: 50,
        ..ChannelConfig::default()
    }
}

pub fn lifecycle_config(id: i32, cluster_id: &str) -> LifecycleConfig {
    LifecycleConfig {
        node_id: id,
        cluster_id: cluster_id.into(),
        incarnation_id: Uuid::new_v4(),
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092 + id as u16,
            security_protocol: 0,
        }],
        features: Vec::new(),
        rack: None,
        log_dirs: vec![Uuid::new_v4()],
        heartbeat_interval_ms: 20,
    }
}

/// Waits (polling) until `f` holds; a generous bound turns a hang into a
/// failure with `what` (not a timing assertion).
pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let bound = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            tokio::time::Instant::now() < bound,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub const LONG: Duration = Duration::from_secs(30);
