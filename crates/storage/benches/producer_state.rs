//! Criterion bench of the idempotent-producer hot path: the sequence check
//! plus state update per batch (pure), and a whole `Log::append_as_leader`
//! of one idempotent batch vs the same batch without a producer id
//! (SimFs, so the difference is the producer state work, not the disk).
//!
//! `cargo bench -p sluice-storage --bench producer_state`

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice_record::{
    increment_sequence, BatchBuilder, CompressionType, LeaderEpoch, Offset, ProducerEpoch,
    ProducerId, Timestamp,
};
use sluice_storage::producer_state::{
    check_batch, BatchMetadata, ProducerStateManager, SequenceCheck,
};
use sluice_storage::{LogConfig, LogManager, LogManagerConfig, SimFs, SystemClock, TopicPartition};

fn check_and_update(c: &mut Criterion) {
    // 1000 producers tracked; each iteration appends the next batch of one.
    let mut state = ProducerStateManager::new(Offset::ZERO);
    let mut next_seq = vec![0i32; 1000];
    let mut offset = 0i64;
    let mut p = 0usize;
    c.bench_function("producer_state_check_and_update_1000_producers", |b| {
        b.iter(|| {
            p = (p + 7) % next_seq.len();
            let pid = ProducerId(p as i64);
            let first = next_seq[p];
            let last = increment_sequence(first, 9);
            let r = check_batch(state.last_entry(pid), pid, ProducerEpoch(0), first, last);
            assert_eq!(r, Ok(SequenceCheck::Append));
            state.update(
                pid,
                ProducerEpoch(0),
                BatchMetadata {
                    first_seq: first,
                    last_seq: last,
                    first_offset: Offset(offset),
                    last_offset: Offset(offset + 9),
                    timestamp: Timestamp(0),
                },
            );
            offset += 10;
            next_seq[p] = increment_sequence(last, 1);
            black_box(&state);
        })
    });
}

fn batch(pid: Option<i64>, seq: i32) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None);
    if let Some(pid) = pid {
        b = b.producer(ProducerId(pid), ProducerEpoch(0), seq);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for _ in 0..10 {
        b.append(Timestamp(now), None, Some(&[7u8; 100]), &[])
            .unwrap();
    }
    b.build().unwrap()
}

fn append(c: &mut Criterion) {
    let mgr = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/bench")],
            ..Default::default()
        },
        Arc::new(SimFs::new()),
        Arc::new(SystemClock),
    )
    .unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    for (name, idempotent) in [
        ("append_10_records_plain", false),
        ("append_10_records_idempotent", true),
    ] {
        let log = mgr
            .get_or_create_log(&TopicPartition::new(name, 0), config.clone())
            .unwrap();
        let mut seq = 0i32;
        c.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let bytes = batch(idempotent.then_some(1), seq);
                    seq = increment_sequence(seq, 10);
                    bytes
                },
                |mut bytes| {
                    let info = log.append_as_leader(&mut bytes, LeaderEpoch(0)).unwrap();
                    assert!(!info.duplicate);
                    if log.size_in_bytes() > 4 << 20 {
                        log.delete_records_before(log.log_end_offset()).unwrap();
                    }
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, check_and_update, append);
criterion_main!(benches);
