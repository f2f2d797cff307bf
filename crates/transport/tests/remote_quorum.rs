//! `RemoteController` against a real 3-voter metadata quorum (openraft on
//! loopback, one `QuorumController` and controller listener per voter) and
//! an observer standing in for a broker's metadata loader: writes go to
//! whichever voter leads, before and after the leader is killed, and every
//! answer's committed offset is one at which the observer's copy of the
//! log already holds the change.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{channel_config, CLUSTER_ID};
use sluice_controller::client::ControllerClient;
use sluice_controller::raft::local::{fold, LocalCluster};
use sluice_controller::{
    BrokerHeartbeat, BrokerRegistrationRequest, ControllerConfig, CreateTopic, LogEvent, NodeId,
    PermissiveValidator, QuorumController,
};
use sluice_metadata::record::BrokerEndpoint;
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataImage};
use sluice_record::Offset;
use sluice_storage::SystemClock;
use sluice_transport::{
    ControllerChannel, ControllerServer, QuorumVoters, RemoteController, ServerConfig,
};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);
const OBSERVER: NodeId = BrokerId(4);

struct Voter {
    controller: Arc<QuorumController>,
    server: ControllerServer,
}

/// The observer's image folded from its events up to `offset` only, once
/// it has seen that far: what a broker's loader publishes at `offset`.
async fn observed_at(c: &LocalCluster, offset: Offset) -> MetadataImage {
    let seen = c.nodes[&OBSERVER].seen.clone();
    let bound = tokio::time::Instant::now() + PATIENCE;
    loop {
        {
            let s = seen.lock();
            let far = s
                .image
                .as_ref()
                .is_some_and(|i| i.provenance().last_offset >= offset);
            if far {
                let mut image = MetadataImage::empty();
                for e in &s.events {
                    let end = match e {
                        LogEvent::Batch(b) => b.last_offset(),
                        LogEvent::Snapshot(i) => i.provenance().last_offset,
                        LogEvent::LeaderChange(_) => Offset(-1),
                    };
                    if end <= offset {
                        image = fold(image, e);
                    }
                }
                return image;
            }
        }
        assert!(
            tokio::time::Instant::now() < bound,
            "the observer never reached offset {}",
            offset.0
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn register_and_unfence(c: &LocalCluster, remote: &RemoteController) {
    let reg = remote
        .register_broker(BrokerRegistrationRequest {
            broker_id: BrokerId(100),
            incarnation_id: Uuid::new_v4(),
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
                security_protocol: 0,
            }],
            features: Vec::new(),
            rack: None,
            log_dirs: vec![Uuid::new_v4()],
            previous_broker_epoch: None,
        })
        .await
        .expect("registered");
    let image = observed_at(c, reg.offset).await;
    assert!(image.broker(BrokerId(100)).is_some());
    let bound = tokio::time::Instant::now() + PATIENCE;
    loop {
        let applied = c.nodes[&OBSERVER]
            .seen
            .lock()
            .image
            .as_ref()
            .map_or(Offset(-1), |i| i.provenance().last_offset);
        let hb = BrokerHeartbeat {
            broker_id: BrokerId(100),
            broker_epoch: BrokerEpoch(reg.value.broker_epoch.0),
            current_metadata_offset: applied,
            want_fence: false,
            want_shutdown: false,
        };
        let answer = remote.heartbeat(hb).await.expect("heartbeat");
        if !answer.value.is_fenced {
            let image = observed_at(c, answer.offset).await;
            assert!(!image.broker(BrokerId(100)).unwrap().fenced);
            return;
        }
        assert!(tokio::time::Instant::now() < bound, "never unfenced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create(c: &LocalCluster, remote: &RemoteController, name: &str) -> Offset {
    let answer = remote
        .create_topics(
            vec![CreateTopic {
                num_partitions: 2,
                replication_factor: 1,
                ..CreateTopic::named(name)
            }],
            false,
        )
        .await
        .expect("answered");
    let created = answer.value[0].as_ref().expect("created");
    let image = observed_at(c, answer.offset).await;
    let t = image
        .topic(name)
        .unwrap_or_else(|| panic!("{name} not in the log at {}", answer.offset.0));
    assert_eq!(t.id(), created.topic_id);
    answer.offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_whichever_voter_leads_and_their_offsets_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start_with_observers(3, 1, dir.path().to_path_buf(), |_| {})
        .await
        .unwrap();
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let controller = Arc::new(QuorumController::start(
            c.nodes[&BrokerId(id)].log.clone(),
            ControllerConfig {
                // No fencing for silence while the test runs.
                broker_session_timeout_ms: 600_000,
                ..ControllerConfig::default()
            },
            Arc::new(PermissiveValidator),
            Arc::new(SystemClock),
        ));
        let server = ControllerServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            controller.clone(),
            ServerConfig::new(CLUSTER_ID),
        )
        .await
        .unwrap();
        voters.insert(BrokerId(id), Voter { controller, server });
    }
    let (first, _) = c.wait_leader(None, PATIENCE).await.expect("a leader");
    // Followers first: the first attempt meets NOT_CONTROLLER.
    let mut order: Vec<NodeId> = voters.keys().copied().filter(|&id| id != first).collect();
    order.push(first);
    let spec = order
        .iter()
        .map(|id| format!("{}@{}", id.0, voters[id].server.local_addr()))
        .collect::<Vec<_>>()
        .join(",");
    let channel = Arc::new(ControllerChannel::new(
        QuorumVoters::parse(&spec).unwrap(),
        channel_config(),
    ));
    let remote = RemoteController::new(channel, CLUSTER_ID).with_timeout(PATIENCE);

    register_and_unfence(&c, &remote).await;
    let a = create(&c, &remote, "a").await;
    // (Unless leadership moved on by itself meanwhile.)
    if c.leader().map(|l| l.0) == Some(first) {
        assert_eq!(remote.channel().controller_hint(), first.0);
    }

    // The leader dies: its listener, its log, its controller.
    let dead = voters.remove(&first).unwrap();
    dead.server.shutdown().await;
    c.kill(first).await;
    dead.controller.shutdown().await;

    let b = create(&c, &remote, "b").await;
    assert!(
        b > a,
        "offsets go forward across the failover: {a:?} then {b:?}"
    );
    let second = remote.channel().controller_hint();
    assert_ne!(second, first.0);
    let image = observed_at(&c, b).await;
    assert!(image.topic("a").is_some());

    for (_, v) in voters {
        v.server.shutdown().await;
    }
    c.shutdown().await;
}
