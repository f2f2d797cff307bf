//! `__consumer_offsets` stays bounded under a steady commit load: groups
//! commit at a fixed rate into a one-partition offsets topic with small
//! segments, the background log cleaner (on its `log.cleaner.backoff.ms`
//! timer) compacts rolled segments, and the bytes on disk settle at about
//! one active segment plus one generation of live keys, however much was
//! written. Committed offsets stay correct, also after a restart that
//! replays the compacted log.
//!
//! Default: 25,000 commits at 1,000 commits/s (about 25 s).
//! `SLUICE_TEST_FULL=1`: 300,000 commits (five minutes).
//! The measured figures are printed (see BENCHMARKS.md, "Consumer offsets").

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker::group::{CommitRequest, GroupCoordinator, GroupError};
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{Clock, Fs, RealFs, SystemClock};

const GROUPS: usize = 20;
const PARTITIONS_PER_COMMIT: i32 = 8;
const SEGMENT_BYTES: u64 = 1_048_576;
const RATE_PER_SEC: u64 = 1_000;

async fn start(dir: &Path) -> Broker {
    let dir = dir.to_str().unwrap().to_string();
    let config = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", dir.as_str()),
        ("offsets.topic.num.partitions", "1"),
        ("offsets.topic.segment.bytes", "1048576"),
        ("log.cleaner.backoff.ms", "200"),
    ])
    .unwrap();
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Broker::start(config, fs, clock).await.unwrap()
}

async fn ready(broker: &Broker, group: &str) {
    let ctx = broker.context();
    ctx.groups.ensure_offsets_topic(ctx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match ctx.groups.check_ready(group) {
            Ok(()) => return,
            Err(GroupError::CoordinatorLoadInProgress) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(Instant::now() < deadline, "offsets partition never loaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn group_name(g: usize) -> String {
    format!("load-{g:02}")
}

/// The commit number `n` of a group: every partition at `n * 10 + p`.
fn commits(n: u64) -> Vec<CommitRequest> {
    (0..PARTITIONS_PER_COMMIT)
        .map(|p| CommitRequest {
            topic: "events".into(),
            partition: p,
            offset: n as i64 * 10 + i64::from(p),
            leader_epoch: 0,
            metadata: "m".into(),
        })
        .collect()
}

/// Sum of the `.log` files of the offsets topic (what compaction bounds),
/// and every file in its directory (indexes included) by allocated blocks.
fn offsets_disk_bytes(data: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let dir = data.join("__consumer_offsets-0");
    let mut logs = 0;
    let mut all = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let Ok(e) = e else { continue };
        // A file may vanish under us during a cleaner swap.
        let Ok(m) = e.metadata() else { continue };
        if !m.is_file() {
            continue;
        }
        all += m.blocks() * 512;
        if e.file_name().to_string_lossy().ends_with(".log") {
            logs += m.len();
        }
    }
    (logs, all)
}

fn assert_latest(groups: &GroupCoordinator, last: &[Option<u64>]) {
    for (g, n) in last.iter().enumerate() {
        let rows = groups.fetch_offsets(&group_name(g), None).unwrap();
        let n = n.expect("every group committed");
        let mut got: Vec<(i32, i64)> = rows
            .iter()
            .map(|(t, p, v)| {
                assert_eq!(t, "events");
                (*p, v.as_ref().expect("committed offset").offset)
            })
            .collect();
        got.sort();
        let want: Vec<(i32, i64)> = (0..PARTITIONS_PER_COMMIT)
            .map(|p| (p, n as i64 * 10 + i64::from(p)))
            .collect();
        assert_eq!(got, want, "group {}", group_name(g));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_offsets_stays_bounded_under_steady_commits() {
    let full = std::env::var("SLUICE_TEST_FULL").is_ok_and(|v| v == "1");
    let total: u64 = if full { 300_000 } else { 25_000 };
    let tmp = tempfile::tempdir().unwrap();
    let broker = start(tmp.path()).await;
    let groups = broker.context().groups.clone();
    for g in 0..GROUPS {
        ready(&broker, &group_name(g)).await;
    }

    // Every commit is one batch of the same size: measure it once.
    let (before, _) = offsets_disk_bytes(tmp.path());
    groups
        .commit_offsets(&group_name(0), "", None, -1, None, commits(0))
        .await
        .unwrap();
    let (after, _) = offsets_disk_bytes(tmp.path());
    let batch_bytes = after - before;
    assert!(batch_bytes > 0, "a commit must reach the offsets log");
    // One generation of live keys: the latest commit of every group.
    let live_bytes = batch_bytes * GROUPS as u64;
    let mut last: Vec<Option<u64>> = vec![None; GROUPS];
    last[0] = Some(0);

    let started = Instant::now();
    let mut peak = 0u64;
    let mut next_sample = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let per_tick = RATE_PER_SEC / 100;
    let mut done = 1u64;
    while done < total {
        tick.tick().await;
        // The tick's commits go to different groups and are in flight
        // together, as from many consumers: they share the coordinator's
        // batches (group.coordinator.append.linger.ms).
        let mut in_flight = tokio::task::JoinSet::new();
        for _ in 0..per_tick.min(total - done) {
            let g = (done % GROUPS as u64) as usize;
            let n = done / GROUPS as u64 + 1;
            let groups = groups.clone();
            in_flight.spawn(async move {
                groups
                    .commit_offsets(&group_name(g), "", None, -1, None, commits(n))
                    .await
            });
            last[g] = Some(n);
            done += 1;
        }
        while let Some(r) = in_flight.join_next().await {
            r.unwrap().unwrap();
        }
        if Instant::now() >= next_sample {
            peak = peak.max(offsets_disk_bytes(tmp.path()).0);
            next_sample = Instant::now() + Duration::from_millis(250);
        }
    }
    let elapsed = started.elapsed();
    // Commits that shared a batch share its header: a little less was
    // written than this, which the bound below leaves room for.
    let written = done * batch_bytes;
    assert_latest(&groups, &last);

    // Let the cleaner compact what has rolled. Bound: the active segment
    // (which Kafka never cleans either) plus a small multiple of the live
    // generation (merged cleaned segments keep one batch per group plus an
    // empty batch at each segment end).
    let bound = SEGMENT_BYTES + 16 * live_bytes;
    assert!(
        written > 4 * bound,
        "the load must write well beyond the bound to show anything"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let settled = loop {
        let (logs, _) = offsets_disk_bytes(tmp.path());
        if logs <= bound {
            break logs;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets not bounded: {logs} bytes of .log files after writing {written} \
             (bound {bound}: one {SEGMENT_BYTES}-byte segment + 16 x {live_bytes} live bytes)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, all_files) = offsets_disk_bytes(tmp.path());
    println!(
        "consumer offsets: {done} commits ({GROUPS} groups x {PARTITIONS_PER_COMMIT} partitions, \
         {batch_bytes} B/commit) in {:.1} s ({:.0} commits/s); written {written} B; \
         on disk after cleaning {settled} B of .log ({all_files} B allocated incl. indexes); \
         peak sampled {peak} B; live generation {live_bytes} B; bound {bound} B",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    assert_latest(&groups, &last);

    // The compacted log replays to the same offsets.
    broker.shutdown().await.unwrap();
    let broker = start(tmp.path()).await;
    for g in 0..GROUPS {
        ready(&broker, &group_name(g)).await;
    }
    assert_latest(&broker.context().groups, &last);
    broker.shutdown().await.unwrap();
}
