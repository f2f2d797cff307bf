//! Property test: random sequences of append / read / roll / flush /
//! truncate / retention / delete_records / power cut + recovery / clean
//! restart against an in-memory model, over `SimFs`.
//!
//! Checked: every read returns exactly the model's batches (same bytes,
//! whole batches, starting at the batch holding the fetch offset); after a
//! power cut the log keeps at least everything acknowledged as fsynced, at
//! most what was appended, ends on a batch boundary, and its content is a
//! prefix of the model's history.

#[path = "../src/testutil.rs"]
mod testutil;

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use sluice_record::{Batches, LeaderEpoch, Offset};
use sluice_storage::{
    Clock, Fault, FaultKind, Fs, Log, LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs,
    TopicPartition, CLEAN_SHUTDOWN_FILE,
};

const NOW: i64 = 1_700_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<(u8, u16)>),
    /// An append whose write fails (short write then ENOSPC/EIO).
    FailedAppend {
        short: u16,
        eio: bool,
    },
    Flush,
    Read {
        at: u16,
        max: u16,
    },
    Roll,
    Truncate {
        at: u16,
    },
    Retention {
        bytes: u16,
    },
    DeleteRecords {
        at: u16,
    },
    Crash {
        seed: u64,
    },
    CleanRestart,
    /// A crash (or, if `clean`, a clean shutdown), then `mask` flipped in
    /// the base offset (outside the CRC) of the `pick`-th whole batch of
    /// the active segment on disk, then a restart.
    FlipBaseOffset {
        pick: u16,
        mask: u64,
        clean: bool,
        seed: u64,
    },
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((1u8..5, 1u16..300), 1..4).prop_map(Op::Append),
        1 => (0u16..5000, any::<bool>()).prop_map(|(short, eio)| Op::FailedAppend { short, eio }),
        2 => Just(Op::Flush),
        6 => (any::<u16>(), 60u16..3000).prop_map(|(at, max)| Op::Read { at, max }),
        1 => Just(Op::Roll),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => (500u16..8000).prop_map(|bytes| Op::Retention { bytes }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        1 => Just(Op::CleanRestart),
        1 => (any::<u16>(), 0u32..64, any::<u64>(), any::<bool>(), any::<u64>()).prop_map(
            |(pick, bit, extra, clean, seed)| Op::FlipBaseOffset {
                pick,
                // Mostly one bit; sometimes a few more.
                mask: (1u64 << bit) | if pick % 4 == 0 { extra } else { 0 },
                clean,
                seed,
            }
        ),
        1 => Just(Op::Tick),
    ]
}

#[derive(Clone, Debug)]
struct ModelBatch {
    base: Offset,
    last: Offset,
    bytes: Vec<u8>,
}

struct Harness {
    fs: SimFs,
    clock: Arc<ManualClock>,
    mgr: Option<LogManager>,
    log: Option<Arc<Log>>,
    /// Every batch ever appended and not truncated, in offset order.
    history: Vec<ModelBatch>,
    /// Offsets below this were acknowledged as fsynced.
    durable: Offset,
    lso: Offset,
}

fn tp() -> TopicPartition {
    TopicPartition::new("prop", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        segment_index_bytes: 96,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

impl Harness {
    fn new() -> Self {
        let mut h = Harness {
            fs: SimFs::new(),
            clock: Arc::new(ManualClock::new(NOW)),
            mgr: None,
            log: None,
            history: Vec::new(),
            durable: Offset(0),
            lso: Offset(0),
        };
        h.open();
        h
    }

    fn open(&mut self) {
        let mgr = LogManager::open(
            LogManagerConfig {
                log_dirs: vec![PathBuf::from("/logs")],
                max_open_segment_files: 3,
                recovery_progress_every: 0,
                ..Default::default()
            },
            Arc::new(self.fs.clone()),
            self.clock.clone(),
        )
        .unwrap();
        self.log = Some(mgr.get_or_create_log(&tp(), config()).unwrap());
        self.mgr = Some(mgr);
    }

    fn log(&self) -> &Arc<Log> {
        self.log.as_ref().unwrap()
    }

    fn leo(&self) -> Offset {
        self.log().log_end_offset()
    }

    fn pick(&self, at: u16, lo: Offset, hi: Offset) -> Offset {
        if hi <= lo {
            return lo;
        }
        Offset(lo.0 + (at as i64) % (hi.0 - lo.0 + 1))
    }

    /// Reads everything from the log start and compares with the history.
    fn check_full_contents(&self) {
        let log = self.log();
        let lso = log.log_start_offset();
        let leo = log.log_end_offset();
        let mut next = lso;
        let mut got = Vec::new();
        while next < leo {
            let bytes = log.read_to_vec(next, 1 << 20).unwrap();
            let batches: Vec<_> = Batches::new(&bytes).map(|r| r.unwrap()).collect();
            assert!(!batches.is_empty(), "no progress at {next} (leo {leo})");
            for (pos, h) in batches {
                got.push((h.base_offset, bytes[pos..pos + h.size()].to_vec()));
                next = h.next_offset();
            }
        }
        let expect: Vec<(Offset, Vec<u8>)> = self
            .history
            .iter()
            .filter(|b| b.last >= lso)
            .map(|b| (b.base, b.bytes.clone()))
            .collect();
        assert_eq!(got.len(), expect.len(), "batch count from {lso} to {leo}");
        assert!(got == expect, "log content differs from the model");
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(batches) => {
                let mut buf = Vec::new();
                let mut bounds = Vec::new();
                for (i, (n, size)) in batches.iter().enumerate() {
                    let b = testutil::batch_of(
                        *n as usize,
                        *size as usize,
                        self.clock.now_ms(),
                        i as u8,
                    );
                    bounds.push((buf.len(), b.len(), *n as i64));
                    buf.extend(b);
                }
                let leo = self.leo();
                let info = self
                    .log()
                    .append_as_leader(&mut buf, LeaderEpoch(1))
                    .unwrap();
                assert_eq!(info.first_offset, leo);
                let mut next = info.first_offset;
                for (pos, len, n) in bounds {
                    self.history.push(ModelBatch {
                        base: next,
                        last: next.plus(n - 1),
                        bytes: buf[pos..pos + len].to_vec(),
                    });
                    next = next.plus(n);
                }
                assert_eq!(info.last_offset.plus(1), next);
                assert_eq!(self.log().log_end_offset(), next);
            }
            Op::FailedAppend { short, eio } => {
                let leo = self.log().log_end_offset();
                let size = self.log().size_in_bytes();
                let mut buf = testutil::batch_of(3, 700, self.clock.now_ms(), 9);
                buf.extend(testutil::batch_of(2, 50, self.clock.now_ms(), 8));
                if *short > 0 {
                    self.fs
                        .inject(Fault::once(".log", FaultKind::ShortWrite(*short as usize)));
                }
                let errno = if *eio { libc::EIO } else { libc::ENOSPC };
                self.fs
                    .inject(Fault::once(".log", FaultKind::WriteError(errno)));
                let err = self.log().append_as_leader(&mut buf, LeaderEpoch(1));
                self.fs.clear_faults();
                // A short write larger than the buffer completes the append.
                if let Ok(info) = err {
                    assert!(*short as usize >= buf.len());
                    for r in Batches::new(&buf) {
                        let (pos, h) = r.unwrap();
                        self.history.push(ModelBatch {
                            base: h.base_offset,
                            last: h.last_offset(),
                            bytes: buf[pos..pos + h.size()].to_vec(),
                        });
                    }
                    assert_eq!(self.history.last().unwrap().last, info.last_offset);
                    return;
                }
                assert!(
                    matches!(err, Err(sluice_storage::StorageError::Io { .. })),
                    "{err:?}"
                );
                assert_eq!(self.log().log_end_offset(), leo);
                assert_eq!(
                    self.log().size_in_bytes(),
                    size,
                    "cut back to the last whole batch"
                );
            }
            Op::Flush => {
                let leo = self.log().log_end_offset();
                if leo > Offset(0) {
                    self.log().flush_until(leo.plus(-1)).unwrap();
                }
                assert!(self.log().recovery_point() >= leo);
                self.durable = leo;
            }
            Op::Read { at, max } => {
                let lso = self.log().log_start_offset();
                let leo = self.log().log_end_offset();
                if leo <= lso {
                    assert!(self
                        .log()
                        .read(lso, *max as usize, None, true)
                        .unwrap()
                        .is_none());
                    return;
                }
                let f = self.pick(*at, lso, leo.plus(-1));
                let slice = self
                    .log()
                    .read(f, *max as usize, None, true)
                    .unwrap()
                    .expect("data below LEO");
                let bytes = slice.read_to_vec().unwrap();
                let got: Vec<_> = Batches::new(&bytes).map(|r| r.unwrap()).collect();
                assert!(!got.is_empty());
                assert!(
                    bytes.len() <= *max as usize || got.len() == 1,
                    "budget exceeded by more than one batch"
                );
                let start = self.history.iter().position(|b| b.last >= f).unwrap();
                for (i, (pos, h)) in got.iter().enumerate() {
                    let m = &self.history[start + i];
                    assert_eq!(h.base_offset, m.base);
                    assert_eq!(&bytes[*pos..*pos + h.size()], &m.bytes[..]);
                }
            }
            Op::Roll => {
                self.log().roll().unwrap();
            }
            Op::Truncate { at } => {
                let lso = self.log().log_start_offset();
                let to = self.pick(*at, lso, self.leo());
                self.log().truncate_to(to).unwrap();
                // The batch straddling `to` goes whole.
                self.history.retain(|b| b.last < to);
                let leo = self.log().log_end_offset();
                assert!(leo <= to);
                let lso = self.log().log_start_offset();
                assert!(lso <= leo);
                if let Some(last) = self.history.last().filter(|b| b.last >= lso) {
                    assert_eq!(leo, last.last.plus(1));
                }
                self.durable = self.durable.min(leo);
                self.lso = lso;
            }
            Op::Retention { bytes } => {
                let mut c = self.log().config();
                c.retention_bytes = *bytes as i64;
                self.log().update_config(c);
                self.log().delete_old_segments().unwrap();
                let mut c = self.log().config();
                c.retention_bytes = -1;
                self.log().update_config(c);
                let lso = self.log().log_start_offset();
                assert!(lso >= self.lso);
                self.lso = lso;
                assert!(self.log().size_in_bytes() <= *bytes as u64 + 8192);
            }
            Op::DeleteRecords { at } => {
                let lso = self.log().log_start_offset();
                let to = self.pick(*at, lso, self.log().log_end_offset());
                assert_eq!(self.log().delete_records_before(to).unwrap(), to);
                self.lso = to;
            }
            Op::Crash { seed } => {
                let before_leo = self.log().log_end_offset();
                self.log = None;
                self.mgr = None;
                self.fs.crash(*seed);
                self.open();
                let leo = self.log().log_end_offset();
                assert!(
                    leo >= self.durable,
                    "lost acknowledged data: leo {leo} < durable {}",
                    self.durable
                );
                assert!(leo <= before_leo, "log grew in a crash");
                // Prefix-consistent: the new end is a batch boundary of the history.
                self.history.retain(|b| b.last < leo);
                let lso = self.log().log_start_offset();
                assert!(lso <= leo);
                if let Some(last) = self.history.last().filter(|b| b.last >= lso) {
                    assert_eq!(last.last.plus(1), leo, "log end not on a batch boundary");
                }
                self.lso = lso;
                self.durable = self.log().recovery_point();
            }
            Op::CleanRestart => {
                let leo = self.log().log_end_offset();
                let lso = self.log().log_start_offset();
                self.log = None;
                self.mgr.take().unwrap().shutdown().unwrap();
                self.fs.crash(0); // after a clean shutdown a power cut changes nothing
                self.open();
                assert_eq!(self.log().log_end_offset(), leo);
                assert_eq!(self.log().log_start_offset(), lso);
                self.durable = leo;
            }
            Op::FlipBaseOffset {
                pick,
                mask,
                clean,
                seed,
            } => self.flip_base_offset(*pick, *mask, *clean, *seed),
            Op::Tick => {
                self.clock.advance(1000);
                self.mgr.as_ref().unwrap().flush_dirty_logs().unwrap();
            }
        }
    }
}

impl Harness {
    /// A crash or a clean restart (checked as usual), then a clean
    /// shutdown, `mask` flipped in the base offset of one batch of the
    /// active segment on disk, and a start: clean, or (`!clean`) without
    /// the marker, as after kill -9. Either way the active segment is
    /// checked and cut exactly at the damaged batch; nothing is served at
    /// a wrong offset (`check_full_contents` compares every batch).
    fn flip_base_offset(&mut self, pick: u16, mask: u64, clean: bool, seed: u64) {
        if clean {
            self.apply(&Op::CleanRestart);
        } else {
            self.apply(&Op::Crash { seed });
        }
        let active = self.log().segments().last().unwrap().log_path();
        let leo = self.leo();
        self.log = None;
        self.mgr.take().unwrap().shutdown().unwrap();
        self.fs.crash(0);
        let mut bytes = self.fs.contents(&active).unwrap();
        let batches: Vec<_> = Batches::new(&bytes).map(|r| r.unwrap()).collect();
        let picked = batches.get(pick as usize % batches.len().max(1)).copied();
        if let Some((pos, _)) = picked {
            let field = &mut bytes[pos..pos + 8];
            let flipped = u64::from_be_bytes(field.try_into().unwrap()) ^ mask;
            field.copy_from_slice(&flipped.to_be_bytes());
            self.fs.set_contents(&active, &bytes);
        }
        if !clean {
            // Durably, as the broker does (or a later crash brings it back).
            let logs = PathBuf::from("/logs");
            self.fs
                .remove_file(&logs.join(CLEAN_SHUTDOWN_FILE))
                .unwrap();
            self.fs.sync_dir(&logs).unwrap();
        }
        self.open();
        let want = picked.map_or(leo, |(_, h)| h.base_offset);
        assert_eq!(self.leo(), want, "log end after flipping {mask:#x}");
        self.history.retain(|b| b.last < want);
        self.lso = self.log().log_start_offset();
        self.durable = self.durable.min(want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new();
        for op in &ops {
            h.apply(op);
            h.check_full_contents();
        }
    }
}

/// Found by the property test: a truncation followed by rewrites and a
/// power cut must not let recovery trust a stale recovery-point checkpoint.
#[test]
fn regression_truncate_then_crash_with_stale_checkpoint() {
    let ops = vec![
        Op::Append(vec![(2, 1), (1, 1)]),
        Op::Append(vec![(4, 1)]),
        Op::Append(vec![(1, 1), (2, 1)]),
        Op::Append(vec![(3, 1), (2, 1)]),
        Op::Crash {
            seed: 2628673346043942967,
        },
        Op::Append(vec![(4, 1)]),
        Op::CleanRestart,
        Op::Append(vec![(3, 1)]),
        Op::Truncate { at: 40790 },
        Op::Append(vec![(1, 1)]),
        Op::Flush,
        Op::Append(vec![(3, 3)]),
        Op::Append(vec![(2, 100), (3, 276), (2, 269)]),
        Op::Truncate { at: 30247 },
        Op::Crash { seed: 1706895449 },
    ];
    let mut h = Harness::new();
    for op in &ops {
        h.apply(op);
        h.check_full_contents();
    }
}

/// Found by the property test: recovery that drops segments after a hole
/// must make the removal durable before a second crash.
#[test]
fn regression_second_crash_does_not_resurrect_segments() {
    let ops = vec![
        Op::Append(vec![(1, 1), (1, 238)]),
        Op::Append(vec![(2, 264), (4, 242)]),
        Op::Append(vec![(3, 97)]),
        Op::DeleteRecords { at: 35042 },
        Op::Crash { seed: 0 },
        Op::Flush,
        Op::Crash { seed: 0 },
    ];
    let mut h = Harness::new();
    for op in &ops {
        h.apply(op);
        h.check_full_contents();
    }
}

/// Found by the property test (a fault in the test itself: the
/// clean-shutdown marker it removed came back with a later crash).
#[test]
fn regression_flip_after_a_crash_keeps_the_marker_removed() {
    let ops = vec![
        Op::FlipBaseOffset {
            pick: 0,
            mask: 1,
            clean: false,
            seed: 0,
        },
        Op::Append(vec![(4, 63), (3, 254)]),
        Op::Append(vec![(2, 41), (3, 203)]),
        Op::FlipBaseOffset {
            pick: 0,
            mask: 1,
            clean: false,
            seed: 0,
        },
    ];
    let mut h = Harness::new();
    for op in &ops {
        h.apply(op);
        h.check_full_contents();
    }
}

/// Found by the property test: recovery that cut a flipped batch below the
/// checkpointed recovery point left the checkpoint above the new log end,
/// so after the next crash recovery trusted a segment whose unflushed
/// bytes were gone (it served a read past the end of the file).
#[test]
fn regression_cut_below_the_checkpointed_recovery_point() {
    let ops = vec![
        Op::Append(vec![(1, 1)]),
        Op::Append(vec![(1, 1)]),
        Op::Flush,
        Op::Truncate { at: 0 },
        Op::Append(vec![(3, 150), (4, 199), (3, 23)]),
        Op::FlipBaseOffset {
            pick: 32532,
            mask: 9409719510625676453,
            clean: false,
            seed: 4780246751811227855,
        },
        Op::Append(vec![(3, 32), (1, 197), (2, 260)]),
        Op::Append(vec![(3, 155), (4, 123)]),
        Op::FlipBaseOffset {
            pick: 63075,
            mask: 140737488355328,
            clean: false,
            seed: 2493197535295507573,
        },
    ];
    let mut h = Harness::new();
    for op in &ops {
        h.apply(op);
        h.check_full_contents();
    }
}
