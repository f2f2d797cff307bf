//! How many ISR changes a single-voter controller commits: `clients`
//! partition leaders each send AlterPartition for their own partitions
//! (one partition per request, as a leader proposes one change at a time
//! per partition), alternately expanding the ISR to all three replicas and
//! shrinking it to the leader, on a real disk (every commit fsynced).
//!
//! `cargo run --release -p sluice-controller --example alter_partition_rate
//! [seconds] [clients]` prints ISR changes per second and per-request
//! latency percentiles. A figure, not a test: nothing here asserts speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::*;
use sluice_metadata::{BrokerId, LeaderRecoveryState};
use sluice_storage::{ManualClock, RealFs, SystemClock};
use uuid::Uuid;

const PARTITIONS_PER_CLIENT: i32 = 50;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let clients: i32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        SingleVoterLog::open(
            SingleVoterConfig::new(BrokerId(1), dir.path()),
            Arc::new(RealFs),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    // A clock that stands still: no session expires during the run.
    let c = Arc::new(QuorumController::start(
        log,
        ControllerConfig::default(),
        Arc::new(PermissiveValidator),
        Arc::new(ManualClock::new(0)),
    ));
    let mut epochs = Vec::new();
    for id in 1..=3 {
        let reg = c
            .register_broker(BrokerRegistrationRequest {
                broker_id: BrokerId(id),
                incarnation_id: Uuid::from_u128(id as u128),
                listeners: Vec::new(),
                features: Vec::new(),
                rack: None,
                log_dirs: Vec::new(),
                previous_broker_epoch: None,
            })
            .await
            .unwrap();
        c.heartbeat(BrokerHeartbeat {
            broker_id: BrokerId(id),
            broker_epoch: reg.broker_epoch,
            current_metadata_offset: c.image().provenance().last_offset,
            want_fence: false,
            want_shutdown: false,
        })
        .await
        .unwrap();
        epochs.push(reg.broker_epoch);
    }
    let partitions = clients * PARTITIONS_PER_CLIENT;
    let created = c
        .create_topics(
            vec![CreateTopic {
                assignments: (0..partitions)
                    .map(|p| ReplicaAssignment {
                        partition: p,
                        replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                    })
                    .collect(),
                ..CreateTopic::named("isr")
            }],
            false,
        )
        .await
        .unwrap();
    let topic = created[0].as_ref().unwrap().topic_id;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let c = c.clone();
        let leader_epoch = epochs[0];
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let p = client * PARTITIONS_PER_CLIENT + i % PARTITIONS_PER_CLIENT;
                let image = c.image();
                let reg = image.topic("isr").unwrap().partition(p).unwrap().clone();
                let new_isr = if reg.isr.len() == 1 {
                    vec![(BrokerId(1), -1), (BrokerId(2), -1), (BrokerId(3), -1)]
                } else {
                    vec![(BrokerId(1), -1)]
                };
                let req = AlterPartitionRequest {
                    broker_id: BrokerId(1),
                    broker_epoch: leader_epoch,
                    partitions: vec![AlterPartitionItem {
                        topic_id: topic,
                        partition: p,
                        leader_epoch: reg.leader_epoch,
                        partition_epoch: reg.partition_epoch,
                        new_isr,
                        leader_recovery_state: LeaderRecoveryState::Recovered,
                    }],
                };
                let start = Instant::now();
                let reply = c.alter_partition(req).await.unwrap();
                latencies.push(start.elapsed());
                reply.partitions[0].result.as_ref().unwrap();
                i += 1;
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    println!(
        "{} ISR changes in {elapsed:.1} s: {:.0}/s with {clients} leaders; latency p50 {:?} p99 {:?} max {:?}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        all.last().unwrap()
    );
}
