//! What the network hop costs a broker's controller call: broker
//! heartbeats (one small committed write each, the most frequent call)
//! through the in-process `Arc<QuorumController>` and through
//! `RemoteController` over loopback TCP to the same controller, one at a
//! time (latency) and 16 at once (throughput through the pipelined
//! channel). The metadata log is the in-memory one, so the figures are
//! the controller plus the RPC, not a disk or a quorum.
//!
//! `cargo run --release -p sluice-transport --example remote_latency [n]`
//!
//! Measured on the project's 2-core VM (3 runs of 5000, shared machine):
//! in-process p50 7-10 µs, p99 26-42 µs; remote p50 57-72 µs, p99
//! 90-118 µs (the loopback round trip between cores is ~53 µs there); 16 at
//! once: in-process 1.2-1.6 M/s, remote 60-87 k/s. These heartbeats change
//! nothing, so they answer without a commit: the figures are the RPC's
//! cost, which a real write (an fsync, a quorum round) adds to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::client::ControllerClient;
use sluice_controller::testing::MemoryLog;
use sluice_controller::{
    BrokerHeartbeat, BrokerRegistrationRequest, ControllerConfig, PermissiveValidator,
    QuorumController,
};
use sluice_metadata::{BrokerEpoch, BrokerId};
use sluice_record::Offset;
use sluice_storage::SystemClock;
use sluice_transport::{
    ChannelConfig, ControllerChannel, ControllerServer, QuorumVoters, RemoteController,
    ServerConfig,
};
use uuid::Uuid;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn serial(client: &dyn ControllerClient, hb: BrokerHeartbeat, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.heartbeat(hb).await.expect("heartbeat");
        took.push(t.elapsed());
    }
    took.sort();
    took
}

async fn concurrent(client: Arc<dyn ControllerClient>, hb: BrokerHeartbeat, n: usize) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..n / 16 {
                    client.heartbeat(hb).await.expect("heartbeat");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (n / 16 * 16) as f64 / start.elapsed().as_secs_f64()
}

fn report(what: &str, took: &[Duration]) {
    println!(
        "{what:<12} p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs",
        percentile(took, 0.5).as_secs_f64() * 1e6,
        percentile(took, 0.99).as_secs_f64() * 1e6,
        took.last().unwrap().as_secs_f64() * 1e6,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let log = MemoryLog::new(BrokerId(1));
    let controller = Arc::new(QuorumController::start(
        log,
        ControllerConfig {
            broker_session_timeout_ms: 600_000,
            ..ControllerConfig::default()
        },
        Arc::new(PermissiveValidator),
        Arc::new(SystemClock),
    ));
    let server = ControllerServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        controller.clone(),
        ServerConfig::new("bench"),
    )
    .await
    .unwrap();
    let channel = Arc::new(ControllerChannel::new(
        QuorumVoters::parse(&format!("1@{}", server.local_addr())).unwrap(),
        ChannelConfig::default(),
    ));
    let remote: Arc<dyn ControllerClient> = Arc::new(RemoteController::new(channel, "bench"));
    let local: Arc<dyn ControllerClient> = Arc::new(controller.clone());

    let reg = remote
        .register_broker(BrokerRegistrationRequest {
            broker_id: BrokerId(1),
            incarnation_id: Uuid::new_v4(),
            listeners: Vec::new(),
            features: Vec::new(),
            rack: None,
            log_dirs: vec![Uuid::new_v4()],
            previous_broker_epoch: None,
        })
        .await
        .unwrap();
    let hb = BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch: BrokerEpoch(reg.value.broker_epoch.0),
        current_metadata_offset: Offset(i64::MAX),
        want_fence: false,
        want_shutdown: false,
    };
    // Warm up (unfences the broker, opens the connection).
    serial(&*remote, hb, 200).await;
    serial(&*local, hb, 200).await;

    println!("{n} broker heartbeats, one at a time:");
    report("in-process", &serial(&*local, hb, n).await);
    report("remote", &serial(&*remote, hb, n).await);
    println!("{n} broker heartbeats, 16 at once:");
    println!(
        "in-process   {:>9.0} /s",
        concurrent(local.clone(), hb, n).await
    );
    println!(
        "remote       {:>9.0} /s",
        concurrent(remote.clone(), hb, n).await
    );
    server.shutdown().await;
}
