//! The metadata-log seam's conformance suite (`testing::run_conformance`)
//! against the openraft quorum: three voters on loopback TCP (the log
//! under test is whichever leads; a restart restarts the voters that were
//! shut down), and a single voter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::raft::local::LocalCluster;
use sluice_controller::raft::RaftConfig;
use sluice_controller::testing::{run_conformance, LogFactory};
use sluice_controller::{BoxFuture, MetadataLog};

const SNAPSHOT_EVERY: u64 = 8;

fn tune(c: &mut RaftConfig) {
    c.snapshot_every_entries = SNAPSHOT_EVERY;
    c.entries_kept_after_snapshot = 0;
}

struct QuorumFactory {
    voters: i32,
    dir: tempfile::TempDir,
    cluster: Option<LocalCluster>,
}

impl QuorumFactory {
    fn new(voters: i32) -> Self {
        QuorumFactory {
            voters,
            dir: tempfile::tempdir().unwrap(),
            cluster: None,
        }
    }
}

impl LogFactory for QuorumFactory {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn MetadataLog>> {
        Box::pin(async move {
            if self.cluster.is_none() {
                let c = LocalCluster::start(self.voters, self.dir.path().to_path_buf(), tune);
                self.cluster = Some(c.await.expect("start the quorum"));
            }
            let c = self.cluster.as_mut().unwrap();
            c.restart_stopped().await.expect("restart");
            let (id, _) = c
                .wait_leader(None, Duration::from_secs(60))
                .await
                .expect("a leader");
            c.nodes[&id].log.clone() as Arc<dyn MetadataLog>
        })
    }

    /// Waits until the leader's latest snapshot has compacted its log and
    /// no further one is due.
    fn settle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let c = self.cluster.as_ref().unwrap();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Some((id, _)) = c.leader() {
                    let m = c.nodes[&id].log.raft().metrics().borrow().clone();
                    // Compacted, and no further snapshot is due (an older
                    // snapshot, purged, is not yet the settled state).
                    let due = match (m.snapshot, m.last_applied) {
                        (Some(s), Some(a)) => a.index >= s.index + SNAPSHOT_EVERY,
                        _ => true,
                    };
                    if m.snapshot.is_some() && m.purged == m.snapshot && !due {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    fn max_records_per_append(&self) -> usize {
        10_000
    }

    fn compacts_after(&self) -> Option<usize> {
        Some(SNAPSHOT_EVERY as usize * 50)
    }

    fn restartable(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voter_quorum_conforms_to_the_seam() {
    run_conformance(&mut QuorumFactory::new(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_raft_conforms_to_the_seam() {
    run_conformance(&mut QuorumFactory::new(1)).await;
}
