//! `Log::append_as_leader_shared` (the produce path: the caller's buffer is
//! written as is, with patched copies of each batch's first 16 bytes) stores
//! exactly what `Log::append_as_leader` (stamping a copy in place) stores,
//! answers the same, and never modifies the caller's bytes — across segment
//! rolls, many batches per call, and LogAppendTime topics.

#[path = "../src/testutil.rs"]
mod testutil;

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{
    LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs, TimestampType, TopicPartition,
};
use testutil::batch_of;

const NOW: i64 = 1_700_000_000_000;

fn manager() -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/data")],
            ..Default::default()
        },
        Arc::new(SimFs::new()),
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap()
}

/// Every byte of the log, read back batch range by batch range.
fn contents(log: &sluice_storage::Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = Offset(0);
    while next < log.log_end_offset() {
        let chunk = log.read_to_vec(next, 1 << 20).unwrap();
        assert!(!chunk.is_empty(), "no progress at {next:?}");
        let mut last = next;
        for b in sluice_record::Batches::new(&chunk) {
            let (_, h) = b.expect("valid stored batch");
            last = h.last_offset();
        }
        out.extend_from_slice(&chunk);
        next = last.plus(1);
    }
    out
}

/// One append call: batches of (record count, record size).
fn calls() -> impl Strategy<Value = Vec<Vec<(usize, usize)>>> {
    prop::collection::vec(prop::collection::vec((1usize..12, 0usize..300), 1..6), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn shared_append_stores_what_the_in_place_append_stores(
        calls in calls(),
        log_append_time in any::<bool>(),
        epoch in 0i32..5,
    ) {
        let config = LogConfig {
            segment_bytes: 8 * 1024,
            index_interval_bytes: 512,
            message_timestamp_type: if log_append_time {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            ..LogConfig::default()
        };
        let (ma, mb) = (manager(), manager());
        let tp = TopicPartition::new("t", 0);
        let a = ma.get_or_create_log(&tp, config.clone()).unwrap();
        let b = mb.get_or_create_log(&tp, config).unwrap();
        let mut seed = 0u8;
        for call in &calls {
            let mut records = Vec::new();
            for &(count, size) in call {
                seed = seed.wrapping_add(1);
                records.extend(batch_of(count, size, NOW - 10, seed));
            }
            let original = records.clone();
            let mut copy = records.clone();
            let in_place = a.append_as_leader(&mut copy, LeaderEpoch(epoch)).unwrap();
            let shared = b.append_as_leader_shared(&records, LeaderEpoch(epoch)).unwrap();
            prop_assert_eq!(in_place, shared);
            prop_assert_eq!(&records, &original, "the caller's bytes are untouched");
        }
        prop_assert_eq!(a.log_end_offset(), b.log_end_offset());
        prop_assert_eq!(contents(&a), contents(&b));
    }
}

#[test]
fn a_rejected_shared_append_writes_nothing() {
    let m = manager();
    let log = m
        .get_or_create_log(&TopicPartition::new("t", 0), LogConfig::default())
        .unwrap();
    let mut records = batch_of(3, 10, NOW, 1);
    records.extend(batch_of(3, 10, NOW, 2));
    let last = records.len() - 1;
    records[last] ^= 0xff; // the second batch's CRC no longer matches
    assert!(log
        .append_as_leader_shared(&records, LeaderEpoch(0))
        .is_err());
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.size_in_bytes(), 0);
}

#[test]
fn a_non_waiting_append_appends_like_the_shared_one_or_leaves_conversions_to_the_caller() {
    let tp = TopicPartition::new("t", 0);
    let (ma, mb) = (manager(), manager());
    let a = ma.get_or_create_log(&tp, LogConfig::default()).unwrap();
    let b = mb.get_or_create_log(&tp, LogConfig::default()).unwrap();
    // A new leader epoch is left to a caller that may block (the epoch
    // cache's file is fsynced); a leader assigns its epoch on election.
    assert_eq!(
        a.try_append_as_leader_shared(&batch_of(1, 10, NOW, 0), LeaderEpoch(0))
            .unwrap(),
        None
    );
    assert_eq!(a.log_end_offset(), Offset(0));
    for log in [&a, &b] {
        log.assign_epoch_start_offset(LeaderEpoch(0), Offset(0))
            .unwrap();
    }
    for seed in 0..5u8 {
        let records = batch_of(4, 100, NOW, seed);
        let tried = a
            .try_append_as_leader_shared(&records, LeaderEpoch(0))
            .unwrap()
            .expect("an uncontended log appends without waiting");
        let shared = b.append_as_leader_shared(&records, LeaderEpoch(0)).unwrap();
        assert_eq!(tried, shared);
    }
    assert_eq!(contents(&a), contents(&b));

    // Batches that must be converted (LogAppendTime stamps, a topic codec)
    // are left to a caller that may block: nothing is written.
    for config in [
        LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        },
        LogConfig {
            compression: Some(sluice_record::CompressionType::Lz4),
            ..LogConfig::default()
        },
    ] {
        let m = manager();
        let log = m.get_or_create_log(&tp, config).unwrap();
        let records = batch_of(2, 10, NOW, 9);
        assert_eq!(
            log.try_append_as_leader_shared(&records, LeaderEpoch(0))
                .unwrap(),
            None
        );
        assert_eq!(log.log_end_offset(), Offset(0));
        log.append_as_leader_shared(&records, LeaderEpoch(0))
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(2));
    }
}

#[test]
fn a_non_waiting_append_leaves_a_segment_roll_to_the_caller() {
    let m = manager();
    let config = LogConfig {
        segment_bytes: 4 * 1024,
        ..LogConfig::default()
    };
    let log = m
        .get_or_create_log(&TopicPartition::new("t", 0), config)
        .unwrap();
    log.assign_epoch_start_offset(LeaderEpoch(0), Offset(0))
        .unwrap();
    let mut deferred = 0;
    for seed in 0..20u8 {
        let records = batch_of(2, 400, NOW, seed);
        match log
            .try_append_as_leader_shared(&records, LeaderEpoch(0))
            .unwrap()
        {
            Some(_) => {}
            None => {
                deferred += 1;
                let before = log.segment_base_offsets().len();
                log.append_as_leader_shared(&records, LeaderEpoch(0))
                    .unwrap();
                assert_eq!(log.segment_base_offsets().len(), before + 1);
            }
        }
    }
    assert!(
        deferred >= 3,
        "16 KiB into 4 KiB segments rolls: {deferred}"
    );
    assert_eq!(log.log_end_offset(), Offset(40));
}
