//! Fault injection into a valid history: each [`Fault`] rewrites it the way
//! one broker or client bug would, and names the anomaly the checker must
//! then report (and the only others it may report alongside).

use std::collections::{BTreeSet, HashMap};

use crate::anomaly::AnomalyKind;
use crate::history::{Call, Offset, Op, OpType, TopicPartition, Value};
use crate::sim::{max_value, Rng};

/// One injected bug.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// The log loses an acknowledged record below what consumers reached.
    DropAcked,
    /// A record is appended a second time at a new offset.
    Duplicate,
    /// A consumer is served another acknowledged value at an offset.
    SwapValue,
    /// A consumer is re-served its last record without being reassigned.
    PollBackward,
    /// A consumer jumps over a record others read.
    SkipForward,
    /// A send the producer was told failed is in the log.
    FailAcked,
    /// An acknowledged record above every polled offset is never read.
    UnseenAck,
    /// A consumer reads a value nobody sent.
    Phantom,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::DropAcked,
        Fault::Duplicate,
        Fault::SwapValue,
        Fault::PollBackward,
        Fault::SkipForward,
        Fault::FailAcked,
        Fault::UnseenAck,
        Fault::Phantom,
    ];

    /// The anomaly the checker must report for this fault.
    pub fn expected(self) -> AnomalyKind {
        match self {
            Fault::DropAcked => AnomalyKind::LostWrite,
            Fault::Duplicate => AnomalyKind::Duplicate,
            Fault::SwapValue => AnomalyKind::InconsistentOffset,
            Fault::PollBackward => AnomalyKind::NonMonotonicPoll,
            Fault::SkipForward => AnomalyKind::InternalSkip,
            Fault::FailAcked => AnomalyKind::AbortedRead,
            Fault::UnseenAck => AnomalyKind::Unseen,
            Fault::Phantom => AnomalyKind::Phantom,
        }
    }

    /// Every anomaly the fault may cause: the expected one plus its
    /// unavoidable consequences (a dropped record is also a gap in the
    /// consumers' reads; a swapped value also sits at two offsets).
    pub fn allowed(self) -> BTreeSet<AnomalyKind> {
        let mut kinds = BTreeSet::from([self.expected()]);
        match self {
            Fault::DropAcked => {
                kinds.insert(AnomalyKind::InternalSkip);
            }
            Fault::SwapValue => {
                kinds.insert(AnomalyKind::Duplicate);
            }
            _ => {}
        }
        kinds
    }
}

/// A process id no simulated client uses.
const INJECTED_PROCESS: u64 = u64::MAX - 1;

/// One record of a completed poll, located in the history.
#[derive(Clone)]
struct Read {
    op: usize,
    process: u64,
    tp: TopicPartition,
    offset: i64,
    value: u64,
    /// The process's assignment epoch (mirrors the checker's rule).
    epoch: u64,
}

fn reads(ops: &[Op]) -> Vec<Read> {
    let mut epochs: HashMap<u64, u64> = HashMap::new();
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let process = op.process.0;
        match (&op.call, op.kind) {
            (Call::Poll { records }, OpType::Ok) => {
                let epoch = *epochs.entry(process).or_default();
                for (tp, recs) in records {
                    for &(offset, value) in recs {
                        out.push(Read {
                            op: i,
                            process,
                            tp: tp.clone(),
                            offset: offset.0,
                            value: value.0,
                            epoch,
                        });
                    }
                }
            }
            (Call::Poll { .. }, OpType::Info)
            | (
                Call::Assign { .. } | Call::Subscribe { .. } | Call::Rebalance { .. } | Call::Crash,
                _,
            ) => {
                *epochs.entry(process).or_default() += 1;
            }
            _ => {}
        }
    }
    out
}

/// Acknowledged sends: value -> (op index, partition, offset).
fn acks(ops: &[Op]) -> HashMap<u64, (usize, TopicPartition, i64)> {
    let mut out = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let (
            Call::Send {
                tp,
                value,
                offset: Some(offset),
                ..
            },
            OpType::Ok,
        ) = (&op.call, op.kind)
        {
            out.insert(value.0, (i, tp.clone(), offset.0));
        }
    }
    out
}

fn max_offset(ops: &[Op], tp: &TopicPartition) -> i64 {
    let acked = acks(ops)
        .into_values()
        .filter(|(_, t, _)| t == tp)
        .map(|(_, _, o)| o);
    let read = reads(ops)
        .into_iter()
        .filter(|r| &r.tp == tp)
        .map(|r| r.offset);
    acked.chain(read).max().unwrap_or(-1)
}

fn read_counts(reads: &[Read]) -> HashMap<u64, BTreeSet<usize>> {
    let mut counts: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for r in reads {
        counts.entry(r.value).or_default().insert(r.op);
    }
    counts
}

fn pick<T: Clone>(rng: &mut Rng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.index(items.len())].clone())
}

/// Removes one record from a poll op.
fn remove_read(ops: &mut [Op], r: &Read) {
    if let Call::Poll { records } = &mut ops[r.op].call {
        if let Some(recs) = records.get_mut(&r.tp) {
            recs.retain(|&(o, v)| (o.0, v.0) != (r.offset, r.value));
        }
    }
}

/// Injects `fault` into the valid history `ops`. Returns false (and leaves
/// `ops` unchanged) when the history offers no place for it.
pub fn inject(ops: &mut Vec<Op>, fault: Fault, seed: u64) -> bool {
    let mut rng = Rng::new(seed);
    let all_reads = reads(ops);
    let acked = acks(ops);
    let counts = read_counts(&all_reads);
    let fresh = max_value(ops).map_or(0, |v| v.0 + 1);
    match fault {
        Fault::DropAcked => {
            let mut max_polled: HashMap<&TopicPartition, i64> = HashMap::new();
            for r in &all_reads {
                let m = max_polled.entry(&r.tp).or_insert(i64::MIN);
                *m = (*m).max(r.offset);
            }
            let mut candidates: Vec<u64> = acked
                .iter()
                .filter(|(_, (_, tp, o))| max_polled.get(tp).is_some_and(|m| o < m))
                .map(|(&v, _)| v)
                .collect();
            candidates.sort_unstable();
            let Some(value) = pick(&mut rng, &candidates) else {
                return false;
            };
            for r in all_reads.iter().filter(|r| r.value == value) {
                remove_read(ops, r);
            }
        }
        Fault::Duplicate => {
            let Some(r) = pick(&mut rng, &all_reads) else {
                return false;
            };
            let next = max_offset(ops, &r.tp) + 1;
            ops.push(Op::poll_ok(INJECTED_PROCESS, &[(&r.tp, next, r.value)]));
        }
        Fault::SwapValue => {
            let candidates: Vec<&Read> = all_reads
                .iter()
                .filter(|r| {
                    acked.get(&r.value).is_some_and(|a| a.2 == r.offset)
                        && counts.get(&r.value).is_some_and(|c| c.len() >= 2)
                })
                .collect();
            let Some(r) = pick(&mut rng, &candidates).cloned() else {
                return false;
            };
            let mut others: Vec<u64> = acked.keys().copied().filter(|&v| v != r.value).collect();
            others.sort_unstable();
            let Some(w) = pick(&mut rng, &others) else {
                return false;
            };
            if let Call::Poll { records } = &mut ops[r.op].call {
                for rec in records.get_mut(&r.tp).into_iter().flatten() {
                    if rec.0 .0 == r.offset {
                        rec.1 = Value(w);
                    }
                }
            }
        }
        Fault::PollBackward => {
            let Some(r) = pick(&mut rng, &all_reads) else {
                return false;
            };
            // The op's last record of that partition, re-served right after it.
            let last = all_reads
                .iter()
                .rev()
                .find(|x| x.op == r.op && x.tp == r.tp)
                .expect("r itself");
            let again = Op::poll_ok(last.process, &[(&last.tp, last.offset, last.value)]);
            ops.insert(last.op + 1, again);
        }
        Fault::SkipForward => {
            // Reads grouped by consumer epoch and partition, in poll order.
            let mut runs: HashMap<(u64, u64, &TopicPartition), Vec<&Read>> = HashMap::new();
            for r in &all_reads {
                runs.entry((r.process, r.epoch, &r.tp)).or_default().push(r);
            }
            let mut candidates: Vec<Read> = runs
                .values()
                .flat_map(|run| run.iter().skip(1).take(run.len().saturating_sub(2)))
                .filter(|r| {
                    counts
                        .get(&r.value)
                        .is_some_and(|ops| ops.iter().any(|&o| o != r.op))
                })
                .map(|r| (*r).clone())
                .collect();
            candidates.sort_by_key(|r| (r.op, r.offset));
            let Some(r) = pick(&mut rng, &candidates) else {
                return false;
            };
            remove_read(ops, &r);
        }
        Fault::FailAcked => {
            let mut candidates: Vec<u64> = acked
                .keys()
                .copied()
                .filter(|v| counts.contains_key(v))
                .collect();
            candidates.sort_unstable();
            let Some(value) = pick(&mut rng, &candidates) else {
                return false;
            };
            let op = &mut ops[acked[&value].0];
            op.kind = OpType::Fail;
            if let Call::Send { offset, .. } = &mut op.call {
                *offset = None;
            }
        }
        Fault::UnseenAck => {
            let tp = TopicPartition::new("t", 0);
            let next = max_offset(ops, &tp) + 1;
            ops.push(Op::send(
                INJECTED_PROCESS,
                OpType::Ok,
                &tp,
                fresh,
                Some(next),
            ));
        }
        Fault::Phantom => {
            let tp = TopicPartition::new("t", 0);
            let next = max_offset(ops, &tp) + 1;
            ops.push(Op::poll_ok(INJECTED_PROCESS, &[(&tp, next, fresh)]));
        }
    }
    true
}

/// The offset of `value` in a completed send, for tests.
pub fn acked_offset(ops: &[Op], value: Value) -> Option<Offset> {
    acks(ops).get(&value.0).map(|a| Offset(a.2))
}
