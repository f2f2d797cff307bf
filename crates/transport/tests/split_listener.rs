//! One controller address for both protocols: a voter's `RaftMetadataLog`
//! and its `ControllerServer` serve the same port through a
//! `SplitListener`, a broker registers there and creates a topic (which
//! the quorum must commit), and connections that are neither protocol, or
//! never send a header, are closed without holding up the others.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sluice_controller::raft::{RaftConfig, RaftMetadataLog, TcpTransport};
use sluice_controller::{ControllerConfig, MetadataLog, PermissiveValidator, QuorumController};
use sluice_metadata::BrokerId;
use sluice_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use sluice_protocol::kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_storage::{Clock, Fs, RealFs, SystemClock};
use sluice_transport::listener::{SplitConfig, SplitListener};
use sluice_transport::{BrokerLifecycleManager, BrokerState, ControllerServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Reads until the peer closes; true if it closed within `within`.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await,
        Ok(())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_and_controller_apis_share_the_voter_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = SplitConfig {
        classify_timeout: Duration::from_millis(500),
        ..SplitConfig::default()
    };
    let listener = SplitListener::bind(any_port(), config).await.unwrap();
    let addr = listener.local_addr();
    let (kafka, quorum) = listener.split();

    let voters = BTreeMap::from([(BrokerId(1), addr.to_string())]);
    let raft = RaftConfig::new(BrokerId(1), CLUSTER_ID, voters, dir.path().join("meta"));
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let log = RaftMetadataLog::start(
        raft,
        fs,
        Arc::new(TcpTransport),
        Box::new(quorum),
        clock.clone(),
    )
    .await
    .unwrap();
    let log: Arc<dyn MetadataLog> = Arc::new(log);
    let controller = Arc::new(QuorumController::start(
        log.clone(),
        ControllerConfig::default(),
        Arc::new(PermissiveValidator),
        clock.clone(),
    ));
    let server = ControllerServer::start(
        Box::new(kafka),
        controller.clone(),
        ServerConfig::new(CLUSTER_ID),
    )
    .unwrap();
    assert_eq!(server.local_addr(), addr);

    // Connections that are neither protocol, or silent, are closed; the
    // silent one must not hold up the broker's connection meanwhile.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent.write_all(&[0, 0]).await.unwrap();
    let mut foreign = TcpStream::connect(addr).await.unwrap();
    foreign
        .write_all(&[0, 0, 0, 8, 0x7f, 1, 2, 3, 4, 5, 6, 7])
        .await
        .unwrap();
    assert!(closed_by_peer(&mut foreign, LONG).await);

    // A broker registers at the voter address, over Kafka's protocol, with
    // the quorum (same port) committing its registration.
    let voter = format!("1@{addr}");
    let channel = Arc::new(sluice_transport::ControllerChannel::new(
        sluice_transport::QuorumVoters::parse(&voter).unwrap(),
        channel_config(),
    ));
    let c = controller.clone();
    let broker = BrokerLifecycleManager::new(
        lifecycle_config(1, CLUSTER_ID),
        channel.clone(),
        clock.clone(),
        Arc::new(move || c.image().provenance().last_offset.0),
    );
    broker.start();
    let mut status = broker.subscribe();
    tokio::time::timeout(LONG, status.wait_for(|s| s.state == BrokerState::Running))
        .await
        .expect("the broker was never unfenced")
        .unwrap();
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("split")))
            .with_num_partitions(2)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let resp = channel.send(&req, LONG).await.unwrap();
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    assert!(controller.image().topic("split").is_some());
    assert!(closed_by_peer(&mut silent, LONG).await);

    broker.stop().await;
    server.shutdown().await;
    log.shutdown().await;
    controller.shutdown().await;
}
