//! Observers (nodes outside `controller.quorum.voters`, as brokers with
//! `process.roles=broker` are) on loopback TCP: the seam's read-side
//! conformance suite against an observer, and 3 voters + 2 observers
//! through a leader kill: the observers follow the new leader, deliver the
//! same stream as the voters, refuse appends, and the leader's
//! `quorum_info` lists them with their log ends and fetch times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::raft::local::LocalCluster;
use sluice_controller::raft::RaftConfig;
use sluice_controller::testing::conformance::config_record;
use sluice_controller::testing::{run_read_side_conformance, ReadSide};
use sluice_controller::{BoxFuture, LogError, LogEvent, MetadataLog, NodeId};
use sluice_metadata::BrokerId;
use sluice_record::Offset;

const PATIENCE: Duration = Duration::from_secs(60);
const SNAPSHOT_EVERY: u64 = 8;

fn tune(c: &mut RaftConfig) {
    c.snapshot_every_entries = SNAPSHOT_EVERY;
    c.entries_kept_after_snapshot = 0;
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct ObserverSide {
    cluster: LocalCluster,
    observer: NodeId,
}

impl ReadSide for ObserverSide {
    fn writer(&mut self) -> BoxFuture<'_, Arc<dyn MetadataLog>> {
        Box::pin(async move {
            let (id, _) = self
                .cluster
                .wait_leader(None, PATIENCE)
                .await
                .expect("a leader");
            self.cluster.nodes[&id].log.clone() as Arc<dyn MetadataLog>
        })
    }

    fn reader(&self) -> Arc<dyn MetadataLog> {
        self.cluster.nodes[&self.observer].log.clone()
    }

    fn settle_reader(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let log = self.cluster.nodes[&self.observer].log.clone();
            let start = Instant::now();
            loop {
                let m = log.raft().metrics().borrow().clone();
                if m.snapshot.is_some() && m.purged == m.snapshot {
                    break;
                }
                assert!(
                    start.elapsed() < PATIENCE,
                    "the observer never compacted: {m:?}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    fn compacts_after(&self) -> usize {
        SNAPSHOT_EVERY as usize * 10
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_conforms_to_the_read_side_of_the_seam() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start_with_observers(3, 1, dir.path().to_path_buf(), tune)
        .await
        .unwrap();
    let mut side = ObserverSide {
        cluster,
        observer: BrokerId(4),
    };
    run_read_side_conformance(&mut side).await;
    side.cluster.shutdown().await;
}

/// The batches a node's listener delivered, by base offset.
fn batches(c: &LocalCluster, id: NodeId) -> Vec<(i64, i32, usize)> {
    c.nodes[&id]
        .seen
        .lock()
        .events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Batch(b) => Some((b.base_offset.0, b.epoch.0, b.records.len())),
            _ => None,
        })
        .collect()
}

async fn append(c: &LocalCluster, from: usize) -> Offset {
    let recs = (from..from + 3).map(config_record).collect();
    c.append(recs, PATIENCE).await.expect("append")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_follow_a_new_leader_after_the_leader_dies() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start_with_observers(3, 2, dir.path().to_path_buf(), |_| {})
        .await
        .unwrap();
    let observers = [BrokerId(4), BrokerId(5)];
    let (leader, epoch) = c.wait_leader(None, PATIENCE).await.expect("a leader");
    let mut last = Offset(-1);
    for i in 0..5 {
        last = append(&c, i * 3).await;
    }
    assert!(
        c.wait_seen(last.0, PATIENCE).await,
        "every node sees the appends"
    );

    // Observers refuse appends and know the leader.
    for o in observers {
        let log = c.nodes[&o].log.clone();
        let r = log.append(epoch, vec![config_record(0)]).await;
        assert!(matches!(r, Err(LogError::NotLeader(_))), "{r:?}");
        eventually("observer knows the leader", || {
            log.leader_and_epoch().leader == Some(leader)
        })
        .await;
        assert!(log.quorum_info().voters.is_empty());
    }

    // The leader lists them, caught up, with fetch times.
    let log = c.nodes[&leader].log.clone();
    eventually("the leader lists both observers caught up", || {
        let q = log.quorum_info();
        let ids: Vec<_> = q.observers.iter().map(|o| o.node).collect();
        ids == observers
            && q.observers.iter().all(|o| {
                o.log_end_offset == q.high_watermark
                    && o.last_fetch_timestamp_ms > 0
                    && o.last_caught_up_timestamp_ms > 0
            })
            && q.voters.iter().all(|v| !observers.contains(&v.node))
    })
    .await;

    // Kill the leader: the observers follow the new one.
    c.kill(leader).await;
    let (new, new_epoch) = c
        .wait_leader(Some(leader), PATIENCE)
        .await
        .expect("a new leader");
    assert!(new_epoch > epoch);
    let mut after = Offset(-1);
    for i in 0..5 {
        after = append(&c, 100 + i * 3).await;
    }
    assert!(
        c.wait_seen(after.0, PATIENCE).await,
        "every live node sees them"
    );
    for o in observers {
        let log = c.nodes[&o].log.clone();
        eventually("observer follows the new leader", || {
            log.leader_and_epoch().leader == Some(new)
        })
        .await;
        assert_eq!(
            batches(&c, o),
            batches(&c, new),
            "observer {o} saw another stream"
        );
        let leaders: Vec<_> = c.nodes[&o]
            .seen
            .lock()
            .events
            .iter()
            .filter_map(|e| match e {
                LogEvent::LeaderChange(l) => l.leader,
                _ => None,
            })
            .collect();
        assert_eq!(leaders.last(), Some(&new), "{leaders:?}");
    }
    let log = c.nodes[&new].log.clone();
    eventually("the new leader lists both observers caught up", || {
        let q = log.quorum_info();
        q.observers.len() == 2
            && q.observers
                .iter()
                .all(|o| o.log_end_offset == q.high_watermark && o.last_fetch_timestamp_ms > 0)
    })
    .await;

    // A restarted observer catches up again.
    c.kill(BrokerId(5)).await;
    let more = append(&c, 200).await;
    c.restart(BrokerId(5)).await.unwrap();
    let caught_up = c.wait_seen(more.0, PATIENCE).await;
    assert!(
        caught_up,
        "the restarted observer catches up: {:?}; leader: {:?}",
        c.nodes[&BrokerId(5)].log.raft().metrics().borrow().clone(),
        c.nodes[&new].log.raft().metrics().borrow().clone()
    );
    c.restart(leader).await.unwrap();
    c.shutdown().await;
}

/// A restarted observer says it has applied its own log
/// (`MetadataLog::catch_up_local`) only when it has: with every voter
/// down nothing can be committed, so it must answer "not in time", and a
/// broker then keeps its stray logs. It once read its target from
/// openraft's metrics, which right after a start may still say "empty
/// log": it answered "caught up" at once, and a restarted broker of the
/// unclean-election test deleted a hosted partition's log as a stray.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_observer_is_caught_up_only_with_its_log_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::start_with_observers(3, 1, dir.path().to_path_buf(), |_| {})
        .await
        .unwrap();
    let observer = BrokerId(4);
    let last = append(&c, 0).await;
    assert!(c.wait_seen(last.0, PATIENCE).await, "every node sees it");
    for id in [observer, BrokerId(1), BrokerId(2), BrokerId(3)] {
        c.kill(id).await;
    }
    c.restart(observer).await.unwrap();
    let log = c.nodes[&observer].log.clone();
    let applied = log.catch_up_local(Duration::from_millis(500)).await;
    let hw = log.quorum_info().high_watermark;
    assert!(
        !applied,
        "no leader, yet the observer says its log is applied (applied up to {hw:?}, its log ends after {last:?})"
    );
    c.shutdown().await;
}
