//! `group.coordinator.append.linger.ms`: lingered coordinator writes
//! (OffsetCommit, ConsumerGroupHeartbeat) of different groups share one
//! batch of `__consumer_offsets`, each is in the log when it is answered,
//! a failed batch answers every commit in it with an error and leaves
//! nothing of them behind, and 0 writes each commit on its own. In process,
//! over the simulated file system.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker::group::append::AppendQueue;
use sluice_broker::group::{CommitRequest, GroupCoordinator, GroupError, OFFSETS_TOPIC};
use sluice_broker::{Broker, BrokerConfig};
use sluice_record::Batches;
use sluice_storage::{Clock, Fault, FaultKind, Fs, SimFs, SystemClock, TopicPartition};

const DIR: &str = "/sim/data";
const GROUPS: usize = 20;

async fn start(fs: &Arc<SimFs>, linger_ms: &str) -> Broker {
    let config = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
        ("log.dirs", DIR),
        // Every group on one partition, so they can share its batches.
        ("offsets.topic.num.partitions", "1"),
        ("group.coordinator.append.linger.ms", linger_ms),
    ])
    .unwrap();
    let fs: Arc<dyn Fs> = fs.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let broker = Broker::start(config, fs, clock).await.unwrap();
    let ctx = broker.context();
    ctx.groups.ensure_offsets_topic(ctx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.groups.check_ready("g") == Err(GroupError::CoordinatorLoadInProgress) {
        assert!(Instant::now() < deadline, "offsets partition never loaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker
}

fn commit(offset: i64) -> Vec<CommitRequest> {
    (0..4)
        .map(|p| CommitRequest {
            topic: "events".into(),
            partition: p,
            offset: offset + i64::from(p),
            leader_epoch: 0,
            metadata: String::new(),
        })
        .collect()
}

/// `(batches, records)` in partition 0 of `__consumer_offsets`.
fn offsets_log(broker: &Broker) -> (usize, usize) {
    let part = broker
        .context()
        .replicas
        .get_partition(&TopicPartition::new(OFFSETS_TOPIC, 0))
        .expect("offsets partition");
    let log = part.log();
    let buf = log.read_to_vec(log.log_start_offset(), 64 << 20).unwrap();
    let mut batches = 0;
    let mut records = 0;
    for item in Batches::without_crc(&buf) {
        let (_, header) = item.unwrap();
        batches += 1;
        records += header.record_count as usize;
    }
    (batches, records)
}

/// Commits `offset` for groups `g0..g{GROUPS}` at once; every answer.
async fn commit_all(groups: &Arc<GroupCoordinator>, offset: i64) -> Vec<Result<(), GroupError>> {
    let mut set = tokio::task::JoinSet::new();
    for g in 0..GROUPS {
        let groups = groups.clone();
        set.spawn(async move {
            (
                g,
                groups
                    .commit_offsets(&format!("g{g}"), "", None, -1, None, commit(offset))
                    .await,
            )
        });
    }
    let mut out = vec![Ok(()); GROUPS];
    while let Some(r) = set.join_next().await {
        let (g, r) = r.unwrap();
        out[g] = r;
    }
    out
}

fn committed(groups: &GroupCoordinator, g: usize) -> Option<i64> {
    groups
        .fetch_offsets(&format!("g{g}"), Some(vec![("events".into(), 0)]))
        .unwrap()[0]
        .2
        .as_ref()
        .map(|v| v.offset)
}

/// Every group's committed offset of `events`-0 is `offset`.
fn assert_all_committed(groups: &GroupCoordinator, offset: i64, when: &str) {
    for g in 0..GROUPS {
        assert_eq!(committed(groups, g), Some(offset), "g{g} {when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_a_batch_and_are_in_the_log_when_answered() {
    let fs = Arc::new(SimFs::new());
    // Long enough that commits sent together on a busy machine still meet.
    let broker = start(&fs, "200").await;
    let groups = broker.context().groups.clone();
    let (b0, r0) = offsets_log(&broker);

    let answers = commit_all(&groups, 100).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    // Answered means written: every record is in the log now.
    let (b1, r1) = offsets_log(&broker);
    assert_eq!(r1 - r0, GROUPS * 4, "one record per committed partition");
    assert!(
        b1 - b0 < GROUPS,
        "{GROUPS} concurrent commits took {} batches: none shared",
        b1 - b0
    );
    assert_all_committed(&groups, 100, "when answered");

    // And they are what a restart loads.
    broker.shutdown().await.unwrap();
    let broker = start(&fs, "200").await;
    let groups = broker.context().groups.clone();
    assert_all_committed(&groups, 100, "after restart");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linger_zero_writes_each_commit_on_its_own() {
    let fs = Arc::new(SimFs::new());
    let broker = start(&fs, "0").await;
    let groups = broker.context().groups.clone();
    let (b0, _) = offsets_log(&broker);
    let answers = commit_all(&groups, 7).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let (b1, _) = offsets_log(&broker);
    assert_eq!(b1 - b0, GROUPS, "one batch per commit");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_fails_every_commit_in_it_and_keeps_none() {
    let fs = Arc::new(SimFs::new());
    let broker = start(&fs, "200").await;
    let groups = broker.context().groups.clone();
    let answers = commit_all(&groups, 10).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");

    fs.inject(Fault {
        path_contains: OFFSETS_TOPIC.into(),
        kind: FaultKind::WriteError(libc::EIO),
        times: 1000,
    });
    let answers = commit_all(&groups, 20).await;
    assert!(
        answers
            .iter()
            .all(|r| *r == Err(GroupError::StorageFailure)),
        "every commit of the failed batch is answered with the failure: {answers:?}"
    );
    // The failed changes do not linger in memory: the partition is
    // reloaded from the log, and until it is readable again (the log
    // directory is offline after an I/O error) the coordinator says so
    // rather than answering with offsets that are not in the log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match groups.fetch_offsets("g0", Some(vec![("events".into(), 0)])) {
            Err(GroupError::CoordinatorLoadInProgress) => break,
            Ok(rows) if rows[0].2.as_ref().map(|v| v.offset) == Some(10) => break,
            other => assert!(
                Instant::now() < deadline,
                "the failed commit is still visible: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(groups);
    let _ = broker.shutdown().await;

    // After a restart: the acknowledged commits, none of the failed ones.
    fs.clear_faults();
    let broker = start(&fs, "200").await;
    let groups = broker.context().groups.clone();
    assert_all_committed(&groups, 10, "after restart");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_writes_nothing_waits_for_what_is_staged() {
    let fs = Arc::new(SimFs::new());
    let broker = start(&fs, "0").await;
    let part = broker
        .context()
        .replicas
        .get_partition(&TopicPartition::new(OFFSETS_TOPIC, 0))
        .unwrap();
    let queue = Arc::new(AppendQueue::new(part, Arc::new(SystemClock), 60_000, 5_000));
    // Nothing staged: nothing to wait for.
    let mut nothing = queue.stage(Vec::new());
    assert!(nothing.is_written());
    assert_eq!(nothing.wait().await, Ok(()));
    let mut first = queue.stage(vec![(b"k".to_vec(), Some(b"v".to_vec()))]);
    let mut second = queue.stage(Vec::new());
    assert!(
        !first.is_written() && !second.is_written(),
        "both must wait for the staged record"
    );
    let (_, r0) = offsets_log(&broker);
    // A write-through carries the staged record before its own, and
    // answers both waiters.
    queue
        .write_through(vec![(b"k2".to_vec(), Some(b"v2".to_vec()))])
        .unwrap();
    assert!(first.is_written() && second.is_written());
    assert_eq!(first.wait().await, Ok(()));
    assert_eq!(second.wait().await, Ok(()));
    let (_, r1) = offsets_log(&broker);
    assert_eq!(r1 - r0, 2);
    broker.shutdown().await.unwrap();
}
