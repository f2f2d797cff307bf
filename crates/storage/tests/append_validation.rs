//! Issue 15 at the storage boundary: an append checks every batch's records
//! against its header (count, offset deltas, record framing) on every
//! append path and topic kind, and writes nothing of a call it refuses;
//! and every decoding of the append path draws on the log manager's one
//! decompression budget, so a batch that would take more than is free is
//! refused, written nowhere, and gives back what it took.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_record::{
    BatchBuilder, Budget, CompressionType, LeaderEpoch, Offset, RecordError, Timestamp,
};
use sluice_storage::{
    CleanupPolicy, LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs, StorageError,
    TopicPartition,
};

const NOW: i64 = 1_700_000_000_000;

fn manager(fs: &SimFs, budget: usize) -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/data")],
            decompression_memory_bytes: budget,
            ..Default::default()
        },
        Arc::new(fs.clone()),
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap()
}

fn malformed(codec: CompressionType) -> Vec<(&'static str, Vec<u8>)> {
    sluice_record::testing::malformed_batches(codec, Some(b"k"), NOW)
}

fn good(codec: CompressionType) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    b.append(Timestamp(NOW), Some(b"k"), Some(b"ok"), &[])
        .unwrap();
    b.build().unwrap()
}

fn is_invalid_records(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::CorruptRecord(
            RecordError::CountMismatch { .. }
                | RecordError::MalformedRecord(_)
                | RecordError::InvalidOffsetDelta { .. }
        )
    )
}

#[test]
fn records_that_disagree_with_their_header_are_refused_on_every_path_and_topic() {
    let topics = [
        ("delete", LogConfig::default()),
        (
            "compact",
            LogConfig {
                compaction: sluice_storage::CompactionConfig {
                    cleanup_policy: CleanupPolicy::Compact,
                    ..Default::default()
                },
                ..LogConfig::default()
            },
        ),
        (
            "lz4 codec",
            LogConfig {
                compression: Some(CompressionType::Lz4),
                ..LogConfig::default()
            },
        ),
    ];
    for (kind, config) in topics {
        let fs = SimFs::new();
        let m = manager(&fs, 64 << 20);
        let log = m
            .get_or_create_log(&TopicPartition::new("t", 0), config)
            .unwrap();
        for codec in [CompressionType::None, CompressionType::Gzip] {
            for (what, bad) in malformed(codec) {
                let ctx = format!("{kind} {codec:?} {what}");
                // Behind a valid batch: the whole call is refused.
                let mut call = good(CompressionType::None);
                call.extend(&bad);
                let e = log
                    .append_as_leader(&mut call.clone(), LeaderEpoch(0))
                    .unwrap_err();
                assert!(is_invalid_records(&e), "{ctx}: {e}");
                let e = log
                    .append_as_leader_shared(&call, LeaderEpoch(0))
                    .unwrap_err();
                assert!(is_invalid_records(&e), "{ctx}: {e}");
                match log.try_append_as_leader_shared(&call, LeaderEpoch(0)) {
                    Ok(None) => {} // handed to the blocking path, checked above
                    Ok(Some(_)) => panic!("{ctx}: appended"),
                    Err(e) => assert!(is_invalid_records(&e), "{ctx}: {e}"),
                }
                assert_eq!(log.log_end_offset(), Offset(0), "{ctx}");
                assert_eq!(fs.stats().writes, 0, "{ctx}: bytes reached a file");
            }
        }
        assert_eq!(m.decompression_budget().in_use(), 0);
        let info = log
            .append_as_leader_shared(&good(CompressionType::Gzip), LeaderEpoch(0))
            .unwrap();
        assert_eq!(info.first_offset, Offset(0), "{kind}");
    }
}

/// A zstd batch of one valid record whose value is `n` zeros.
fn expanding(n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::Zstd);
    b.append(Timestamp(NOW), Some(b"k"), Some(&vec![0u8; n]), &[])
        .unwrap();
    b.build().unwrap()
}

#[test]
fn decoding_on_append_draws_on_the_shared_budget_and_is_refused_beyond_it() {
    let configs = [
        LogConfig {
            compression: Some(CompressionType::Gzip),
            ..LogConfig::default()
        },
        LogConfig {
            compaction: sluice_storage::CompactionConfig {
                cleanup_policy: CleanupPolicy::Compact,
                ..Default::default()
            },
            ..LogConfig::default()
        },
    ];
    for (i, config) in configs.into_iter().enumerate() {
        let fs = SimFs::new();
        let budget = 16 << 20;
        let m = manager(&fs, budget);
        let log = m
            .get_or_create_log(&TopicPartition::new("t", i as i32), config)
            .unwrap();
        // 32 MiB of output cannot be decoded within 16 MiB.
        let bomb = expanding(32 << 20);
        assert!(bomb.len() < 64 << 10);
        let e = log
            .append_as_leader_shared(&bomb, LeaderEpoch(0))
            .unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::CorruptRecord(RecordError::MemoryBudget { .. })
            ),
            "{i}: {e}"
        );
        assert_eq!(m.decompression_budget().in_use(), 0, "{i}: given back");
        assert_eq!(log.log_end_offset(), Offset(0));
        // 1 MiB fits, and decoding it gives everything back afterwards.
        log.append_as_leader_shared(&expanding(1 << 20), LeaderEpoch(0))
            .unwrap();
        assert_eq!(m.decompression_budget().in_use(), 0);
        // The budget is broker-wide: while something else holds most of
        // it, even that batch is refused; once it is given back, it fits.
        let mut other = m.decompression_budget().reservation();
        other.grow(budget - (1 << 20)).unwrap();
        let e = log
            .append_as_leader_shared(&expanding(1 << 20), LeaderEpoch(0))
            .unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::CorruptRecord(RecordError::MemoryBudget { .. })
            ),
            "{i}: {e}"
        );
        drop(other);
        log.append_as_leader_shared(&expanding(1 << 20), LeaderEpoch(0))
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(2));
    }
}
