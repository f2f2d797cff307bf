//! Torn-write test: the last segment is cut, corrupted, zero-filled or
//! extended with garbage at hundreds of random byte offsets; recovery must
//! always end at the last whole valid batch, serve exactly the batches
//! before it, and leave indexes equal to indexes built from scratch (by an
//! independent implementation of Kafka's indexing rule, below).

#[path = "../src/testutil.rs"]
mod testutil;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_record::{Batches, LeaderEpoch, Offset};
use sluice_storage::{
    Fs, LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs, TopicPartition,
    CLEAN_SHUTDOWN_FILE,
};

const NOW: i64 = 1_700_000_000_000;
const INTERVAL: u32 = 300;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: INTERVAL,
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("torn", 0)
}

fn manager(fs: &SimFs) -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: vec![PathBuf::from("/d")],
            max_open_segment_files: 2,
            recovery_progress_every: 1,
            ..Default::default()
        },
        Arc::new(fs.clone()),
        Arc::new(ManualClock::new(NOW)),
    )
    .unwrap()
}

type OffsetEntries = Vec<(i64, u32)>;
type TimeEntries = Vec<(i64, i64)>;

/// Kafka's rule, written independently of the engine: before each batch,
/// if more than `interval` bytes were appended since the last entry, index
/// this batch (its last offset, its position) and the largest timestamp so
/// far; a rolled segment gets a final max-timestamp entry.
fn scratch_indexes(bytes: &[u8], interval: u64, rolled: bool) -> (OffsetEntries, TimeEntries) {
    let mut offsets = Vec::new();
    let mut times: TimeEntries = Vec::new();
    let mut since = 0u64;
    let mut max: Option<(i64, i64)> = None;
    let push_time = |times: &mut TimeEntries, m: Option<(i64, i64)>| {
        if let Some((ts, off)) = m {
            if times.last().is_none_or(|l| ts > l.0) {
                times.push((ts, off));
            }
        }
    };
    for r in Batches::new(bytes) {
        let (pos, h) = r.expect("scratch input is valid");
        if since > interval {
            offsets.push((h.last_offset().0, pos as u32));
            push_time(&mut times, max);
            since = 0;
        }
        if max.is_none_or(|m| h.max_timestamp.0 > m.0) {
            max = Some((h.max_timestamp.0, h.last_offset().0));
        }
        since += h.size() as u64;
    }
    if rolled {
        push_time(&mut times, max);
    }
    (offsets, times)
}

/// Length of the longest prefix of whole, CRC-valid batches with increasing
/// offsets starting at `base`, and the offset after it.
fn valid_prefix(bytes: &[u8], base: i64) -> (usize, i64) {
    let mut end = 0;
    let mut next = base;
    for r in Batches::new(bytes) {
        match r {
            Ok((pos, h))
                if h.base_offset.0 >= next && h.last_offset().0 - base <= i32::MAX as i64 =>
            {
                end = pos + h.size();
                next = h.next_offset().0;
            }
            _ => break,
        }
    }
    (end, next)
}

struct Original {
    files: Vec<(PathBuf, Vec<u8>)>,
    last_segment: PathBuf,
    last_base: i64,
}

fn build_original() -> Original {
    let fs = SimFs::new();
    let m = manager(&fs);
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    for i in 0..90 {
        let n = rng.gen_range(1..5);
        let size = rng.gen_range(10..400);
        let mut b = testutil::batch_of(n, size, NOW - 1000 + rng.gen_range(0..500) + i, i as u8);
        log.append_as_leader(&mut b, LeaderEpoch(3)).unwrap();
    }
    assert!(log.num_segments() >= 4);
    let last_base = log.segment_base_offsets().last().unwrap().0;
    drop(log);
    m.shutdown().unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> = fs
        .list_files()
        .into_iter()
        .filter(|p| !p.ends_with(CLEAN_SHUTDOWN_FILE))
        .map(|p| {
            let c = fs.contents(&p).unwrap();
            (p, c)
        })
        .collect();
    let last_segment = PathBuf::from(format!("/d/torn-0/{last_base:020}.log"));
    assert!(files
        .iter()
        .any(|(p, c)| *p == last_segment && c.len() > 1000));
    Original {
        files,
        last_segment,
        last_base,
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Cut(usize),
    FlipByte(usize, u8),
    ZeroFrom(usize),
    Garbage(usize),
}

fn damage(bytes: &[u8], d: Damage, rng: &mut StdRng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match d {
        Damage::Cut(at) => b.truncate(at),
        Damage::FlipByte(at, x) => b[at] ^= x.max(1),
        Damage::ZeroFrom(at) => b[at..].fill(0),
        Damage::Garbage(n) => b.extend((0..n).map(|_| rng.gen::<u8>())),
    }
    b
}

fn check_case(orig: &Original, seed: u64, trust_earlier: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/d/torn-0")).unwrap();
    let clean = orig
        .files
        .iter()
        .find(|(p, _)| *p == orig.last_segment)
        .unwrap()
        .1
        .clone();
    let d = match rng.gen_range(0..4) {
        0 => Damage::Cut(rng.gen_range(0..=clean.len())),
        1 => Damage::FlipByte(rng.gen_range(0..clean.len()), rng.gen()),
        2 => Damage::ZeroFrom(rng.gen_range(0..clean.len())),
        _ => Damage::Garbage(rng.gen_range(1..200)),
    };
    let torn = damage(&clean, d, &mut rng);
    for (p, c) in &orig.files {
        if *p == orig.last_segment {
            fs.set_contents(p, &torn);
        } else if p.ends_with("recovery-point-offset-checkpoint") {
            // Either recover everything, or trust all but the last segment.
            if trust_earlier {
                fs.set_contents(p, format!("0\n1\ntorn 0 {}\n", orig.last_base).as_bytes());
            }
        } else {
            fs.set_contents(p, c);
        }
    }
    // The last segment's indexes are stale relative to the damaged log.
    let m = manager(&fs);
    assert!(!m.had_clean_shutdown(Path::new("/d")));
    let log = m.get_or_create_log(&tp(), config()).unwrap();

    let (valid_len, next) = valid_prefix(&torn, orig.last_base);
    let ctx = format!("seed {seed} damage {d:?} trust_earlier {trust_earlier}");
    assert_eq!(log.log_end_offset(), Offset(next), "{ctx}");
    assert_eq!(
        fs.contents(&orig.last_segment).unwrap().len(),
        valid_len,
        "{ctx}: torn tail cut off"
    );

    // Every segment's indexes equal the scratch-built ones.
    let segs = log.segments();
    for (i, seg) in segs.iter().enumerate() {
        let bytes = fs.contents(&seg.log_path()).unwrap();
        let rolled = i + 1 < segs.len();
        let (want_o, want_t) = scratch_indexes(&bytes, INTERVAL as u64, rolled);
        let (got_o, got_t) = seg.index_entries().unwrap();
        let got_o: OffsetEntries = got_o.iter().map(|e| (e.offset.0, e.position)).collect();
        let got_t: TimeEntries = got_t
            .iter()
            .map(|e| (e.offset.0, e.timestamp.0))
            .map(|(o, t)| (t, o))
            .collect();
        assert_eq!(
            got_o,
            want_o,
            "{ctx}: offset index of segment {}",
            seg.base_offset()
        );
        assert_eq!(
            got_t,
            want_t,
            "{ctx}: time index of segment {}",
            seg.base_offset()
        );
    }

    // Reads return exactly the surviving batches, byte for byte.
    let mut expect = Vec::new();
    for (p, c) in &orig.files {
        if p.extension().is_some_and(|e| e == "log") && *p != orig.last_segment {
            expect.extend_from_slice(c);
        }
    }
    expect.extend_from_slice(&torn[..valid_len]);
    let mut got = Vec::new();
    let mut at = Offset(0);
    while at < log.log_end_offset() {
        let chunk = log.read_to_vec(at, 1 << 20).unwrap();
        let last = Batches::new(&chunk).last().unwrap().unwrap().1;
        at = last.next_offset();
        got.extend(chunk);
    }
    assert!(got == expect, "{ctx}: served bytes differ");

    // And the log takes new appends right after the last valid batch.
    let mut b = testutil::batch_of(1, 10, NOW, 0);
    assert_eq!(
        log.append_as_leader(&mut b, LeaderEpoch(4))
            .unwrap()
            .first_offset,
        Offset(next),
        "{ctx}"
    );
}

#[test]
fn recovery_ends_at_last_whole_valid_batch() {
    let orig = build_original();
    for seed in 0..400u64 {
        check_case(&orig, seed, seed % 2 == 0);
    }
}

#[test]
fn live_indexes_equal_scratch_built_ones() {
    let orig = build_original();
    let fs = SimFs::new();
    for (p, c) in &orig.files {
        fs.set_contents(p, c);
    }
    fs.set_contents(&Path::new("/d").join(CLEAN_SHUTDOWN_FILE), b"");
    let m = manager(&fs);
    assert!(m.had_clean_shutdown(Path::new("/d")));
    let log = m.get_or_create_log(&tp(), config()).unwrap();
    let segs = log.segments();
    for (i, seg) in segs.iter().enumerate() {
        let bytes = fs.contents(&seg.log_path()).unwrap();
        let (want_o, want_t) = scratch_indexes(&bytes, INTERVAL as u64, i + 1 < segs.len());
        let (got_o, got_t) = seg.index_entries().unwrap();
        assert_eq!(
            got_o
                .iter()
                .map(|e| (e.offset.0, e.position))
                .collect::<Vec<_>>(),
            want_o
        );
        assert_eq!(
            got_t
                .iter()
                .map(|e| (e.timestamp.0, e.offset.0))
                .collect::<Vec<_>>(),
            want_t
        );
    }
}
