//! The failover figure of issue 16: a new active controller after the old
//! one dies, with default timeouts.
//!
//! Three real `RaftMetadataLog` voters over loopback TCP in one process
//! (real files, fsync), each with a `QuorumController`. Each round: wait
//! until the quorum is steady (every voter has everything), kill the
//! leader (its raft, RPC server and connections stop at once, with no
//! resignation: what peers see of a kill -9), and measure from the kill
//!
//! - **leader**: until a surviving voter says it leads a newer epoch;
//! - **append**: until that new leader commits an append (a one-record
//!   batch through the `MetadataLog` seam);
//! - **controller**: until the new active controller answers an operation
//!   (an IncrementalAlterConfigs of a cluster-wide broker config), i.e.
//!   after it applied its leader change and committed the operation's
//!   records.
//!
//! Then the killed voter restarts and catches up before the next round.
//! Prints every round and median / p99 / max of each figure. The issue's
//! goal: new active controller after kill -9, median <= 1 s, p99 <= 2 s.
//!
//! `cargo run --release -p sluice-controller --example failover`
//! (`FAILOVER_ROUNDS`, default 30).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::raft::local::LocalCluster;
use sluice_controller::{
    AlterConfigOp, ConfigAlteration, ControllerConfig, MetadataLog, NodeId, PermissiveValidator,
    QuorumController,
};
use sluice_metadata::record::FeatureLevelRecord;
use sluice_metadata::{ConfigResource, ConfigResourceType, MetadataRecord};
use sluice_storage::SystemClock;

const PATIENCE: Duration = Duration::from_secs(30);

fn record(i: usize) -> Vec<MetadataRecord> {
    vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: format!("round.{i}"),
        feature_level: 1,
    })]
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn start_controller(c: &LocalCluster, id: NodeId) -> Arc<QuorumController> {
    Arc::new(QuorumController::start(
        c.nodes[&id].log.clone(),
        ControllerConfig::default(),
        Arc::new(PermissiveValidator),
        Arc::new(SystemClock),
    ))
}

/// Polls the survivors until one leads an epoch after `old_epoch` and
/// commits an append; returns (leader seen, append committed) times.
async fn new_leader_appends(
    c: &LocalCluster,
    start: Instant,
    old_epoch: i32,
    round: usize,
) -> (Duration, Duration) {
    let mut led = None;
    while start.elapsed() < PATIENCE {
        for (&id, n) in &c.nodes {
            let le = n.log.leader_and_epoch();
            if le.leader != Some(id) || le.epoch.0 <= old_epoch {
                continue;
            }
            let led_at = *led.get_or_insert_with(|| start.elapsed());
            if n.log.append(le.epoch, record(round)).await.is_ok() {
                return (led_at, start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("no new leader committed an append within {PATIENCE:?}");
}

/// Sends an IncrementalAlterConfigs to the active controller until one
/// answers it committed.
async fn controller_answers(
    controllers: &BTreeMap<NodeId, Arc<QuorumController>>,
    start: Instant,
    round: usize,
) -> Duration {
    while start.elapsed() < PATIENCE {
        for c in controllers.values() {
            if !c.is_active() {
                continue;
            }
            let resource = ConfigResource {
                resource_type: ConfigResourceType::Broker,
                name: String::new(),
            };
            let op = ConfigAlteration {
                name: "log.retention.ms".into(),
                op: AlterConfigOp::Set,
                value: Some((1000 + round).to_string()),
            };
            let r = c
                .incremental_alter_configs(vec![(resource, vec![op])], false)
                .await;
            if r.is_ok_and(|items| items.iter().all(|i| i.is_ok())) {
                return start.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("no controller answered within {PATIENCE:?}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Quiet by default: openraft logs every refused connection to the
    // killed voter. `RUST_LOG` turns logs on.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let rounds: usize = std::env::var("FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start(3, dir.path().to_path_buf(), |_| {})
        .await
        .unwrap();
    let mut controllers: BTreeMap<NodeId, Arc<QuorumController>> = BTreeMap::new();
    for &id in c.voters.keys() {
        controllers.insert(id, start_controller(&c, id));
    }
    let (mut leader_ms, mut append_ms, mut controller_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (leader, epoch) = c.wait_leader(None, PATIENCE).await.expect("a leader");
        let last = c.append(record(round), PATIENCE).await.unwrap();
        assert!(c.wait_seen(last.0, PATIENCE).await, "quorum steady");
        let start = Instant::now();
        c.kill(leader).await;
        if let Some(old) = controllers.remove(&leader) {
            tokio::spawn(async move { old.shutdown().await });
        }
        let (led, appended) = new_leader_appends(&c, start, epoch.0, round).await;
        let answered = controller_answers(&controllers, start, round).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "round {round}: killed leader {} (epoch {}); new leader after {:.0} ms, \
             its first append committed after {:.0} ms, new active controller answered after {:.0} ms",
            leader.0,
            epoch.0,
            ms(led),
            ms(appended),
            ms(answered)
        );
        leader_ms.push(ms(led));
        append_ms.push(ms(appended));
        controller_ms.push(ms(answered));
        c.restart(leader).await.unwrap();
        controllers.insert(leader, start_controller(&c, leader));
    }
    for (what, v) in [
        ("new leader", &mut leader_ms),
        ("first committed append by the new leader", &mut append_ms),
        (
            "first operation answered by the new active controller",
            &mut controller_ms,
        ),
    ] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{what}, {} kills: median {:.0} ms, p99 {:.0} ms, max {:.0} ms, min {:.0} ms",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99),
            v[v.len() - 1],
            v[0]
        );
    }
    for c in controllers.values() {
        c.shutdown().await;
    }
    c.shutdown().await;
}
