//! Descriptors a partition holds on the real file system, counted in
//! `/proc/self/fd` (alone in its test binary, so no other test opens files
//! meanwhile).

#[path = "../src/testutil.rs"]
mod testutil;

use std::sync::Arc;

use sluice_record::LeaderEpoch;
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, RealFs, SystemClock, TopicPartition,
};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn each_partition_holds_one_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let m = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        },
        Arc::new(RealFs),
        Arc::new(SystemClock),
    )
    .unwrap();
    let before = open_fds();
    let n = 200;
    let mut logs = Vec::new();
    for p in 0..n {
        let log = m
            .get_or_create_log(&TopicPartition::new("fds", p), LogConfig::default())
            .unwrap();
        let mut b = testutil::batch_of(3, 100, 1_700_000_000_000, 1);
        log.append_as_leader(&mut b, LeaderEpoch(0)).unwrap();
        logs.push(log);
    }
    let held = open_fds() - before;
    // One .log per partition; Kafka's figure, not three (.log, .index, .timeindex).
    assert_eq!(held, n as usize, "{held} descriptors for {n} partitions");
    drop(logs);
    m.shutdown().unwrap();
}
