//! [`Checker`]: folds a history op by op into compact per-value and
//! per-offset state, then [`Checker::finish`] derives the anomalies.
//!
//! Memory is proportional to the distinct values and offsets seen (plus the
//! findings), not to the number of ops: re-reading a record costs lookups,
//! not storage.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::anomaly::{Anomaly, AnomalyKind, Position};
use crate::dense::DenseMap;
use crate::hash::FastMap;
use crate::history::{Call, Offset, Op, OpType, ProcessId, TopicPartition, Value};
use crate::CheckerError;

/// A partition interned as an index into `Checker::tps`.
type Tp = u32;
const NO_TP: Tp = u32::MAX;
const NEVER: usize = usize::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SendState {
    /// No send of this value was seen (yet).
    NotSent,
    /// Invoked, not completed: indeterminate unless a completion follows.
    Invoked,
    Ok,
    Fail,
    Info,
}

/// `ack` of a value acknowledged at an offset the client did not learn.
const ACK_UNKNOWN: i64 = i64::MAX;

/// Everything the checker keeps per distinct value.
#[derive(Clone, Copy, PartialEq)]
struct ValueState {
    send: SendState,
    send_tp: Tp,
    ack: i64,
    /// The send's completion op, or its invocation while it has none.
    send_op: usize,
    /// First known position (acknowledged or polled) and the op that showed it.
    pos_tp: Tp,
    pos_offset: i64,
    pos_op: usize,
    /// First poll that returned the value (`NEVER` if none).
    read_op: usize,
    read_process: u64,
    read_tp: Tp,
    read_offset: i64,
}

impl Default for ValueState {
    fn default() -> Self {
        ValueState {
            send: SendState::NotSent,
            send_tp: NO_TP,
            ack: 0,
            send_op: NEVER,
            pos_tp: NO_TP,
            pos_offset: 0,
            pos_op: NEVER,
            read_op: NEVER,
            read_process: 0,
            read_tp: NO_TP,
            read_offset: 0,
        }
    }
}

/// The first value known at an offset (`op == NEVER`: none).
#[derive(Clone, Copy, PartialEq)]
struct Slot {
    value: u64,
    op: usize,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            value: 0,
            op: NEVER,
        }
    }
}

/// Two consecutive polled offsets of one consumer epoch with a gap between.
struct Gap {
    process: u64,
    tp: Tp,
    from: i64,
    to: i64,
    op: usize,
}

/// Counts describing a checked history.
#[derive(Clone, Default, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub ops: usize,
    pub sends_ok: usize,
    pub sends_failed: usize,
    /// Sends completed `info` or never completed.
    pub sends_indeterminate: usize,
    pub polls: usize,
    pub records_polled: usize,
    pub partitions: usize,
    pub distinct_values: usize,
}

/// The checker's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub stats: Stats,
    /// Sorted by kind, then by the op they are first visible at.
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    pub fn counts(&self) -> BTreeMap<AnomalyKind, usize> {
        let mut counts = BTreeMap::new();
        for a in &self.anomalies {
            *counts.entry(a.kind()).or_default() += 1;
        }
        counts
    }

    pub fn kinds(&self) -> BTreeSet<AnomalyKind> {
        self.anomalies.iter().map(Anomaly::kind).collect()
    }

    /// The anomalies of one kind.
    pub fn of(&self, kind: AnomalyKind) -> impl Iterator<Item = &Anomaly> {
        self.anomalies.iter().filter(move |a| a.kind() == kind)
    }

    /// A human-readable summary: stats, counts per kind, the first
    /// `examples` anomalies of each kind.
    pub fn summary(&self, examples: usize) -> String {
        let s = &self.stats;
        let mut out = format!(
            "{} ops: {} sends ok, {} failed, {} indeterminate; {} polls returned {} records \
             from {} partitions; {} distinct values\n",
            s.ops,
            s.sends_ok,
            s.sends_failed,
            s.sends_indeterminate,
            s.polls,
            s.records_polled,
            s.partitions,
            s.distinct_values
        );
        if self.is_valid() {
            out.push_str("valid: no anomalies\n");
            return out;
        }
        for (kind, n) in self.counts() {
            out.push_str(&format!("{kind}: {n}\n"));
            for a in self.of(kind).take(examples) {
                out.push_str(&format!("  {a}\n"));
            }
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary(5))
    }
}

fn negative(value: Value, offset: Offset, op: usize) -> CheckerError {
    CheckerError::NegativeOffset {
        value,
        offset: offset.0,
        op,
    }
}

/// Checks a whole history held in memory.
pub fn check<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Result<Report, CheckerError> {
    let mut c = Checker::new();
    for op in ops {
        c.observe(op)?;
    }
    Ok(c.finish())
}

/// The streaming checker: [`Checker::observe`] each op in history order, then
/// [`Checker::finish`].
#[derive(Default)]
pub struct Checker {
    next_op: usize,
    tp_index: FastMap<TopicPartition, Tp>,
    tps: Vec<TopicPartition>,
    /// Highest offset any consumer polled, per partition (`i64::MIN`: none).
    max_polled: Vec<i64>,
    values: DenseMap<ValueState>,
    /// The version order: per partition, the first value known at each offset.
    slots: Vec<DenseMap<Slot>>,
    /// Offsets at which more than one value was seen, with every value.
    conflicts: FastMap<(Tp, i64), Vec<(u64, usize)>>,
    /// Values seen at more than one position, with every position.
    duplicates: FastMap<u64, Vec<(Tp, i64, usize)>>,
    /// Per consumer process: the last offset polled per partition in its
    /// current assignment epoch.
    positions: FastMap<u64, FastMap<Tp, i64>>,
    gaps: Vec<Gap>,
    /// Per (group, partition): the highest acknowledged commit and its op.
    commits: BTreeMap<(String, Tp), (i64, usize)>,
    /// Commits that completed indeterminate: each may still land, later
    /// than any other (a request the client gave up on).
    maybe_commits: BTreeSet<(String, Tp, i64)>,
    /// Per process: the group offsets acknowledged when its read of them
    /// began (what that read must return at least).
    commit_reads: FastMap<u64, Vec<(Tp, i64, usize)>>,
    found: Vec<Anomaly>,
    stats: Stats,
}

impl Checker {
    pub fn new() -> Self {
        Checker::default()
    }

    /// Folds in the next op of the history.
    pub fn observe(&mut self, op: &Op) -> Result<(), CheckerError> {
        let index = self.next_op;
        self.next_op += 1;
        let process = op.process.0;
        match &op.call {
            Call::Send {
                tp, value, offset, ..
            } => {
                let tp = self.intern(tp);
                self.send(index, op.kind, tp, *value, *offset)?;
            }
            Call::Poll { records } => match op.kind {
                OpType::Ok => {
                    self.stats.polls += 1;
                    let mut last = std::mem::take(self.positions.entry(process).or_default());
                    let mut result = Ok(());
                    'poll: for (tp, recs) in records {
                        let tp = self.intern(tp);
                        for &(offset, value) in recs {
                            if offset.0 < 0 {
                                result = Err(negative(value, offset, index));
                                break 'poll;
                            }
                            self.polled(index, process, &mut last, tp, offset.0, value.0);
                        }
                    }
                    self.positions.insert(process, last);
                    result?;
                }
                // Records may have been delivered that the history does not
                // show: where the consumer stands is unknown from here on.
                OpType::Info => self.new_epoch(process),
                OpType::Invoke | OpType::Fail => {}
            },
            Call::Assign { .. } | Call::Subscribe { .. } | Call::Rebalance { .. } | Call::Crash => {
                self.new_epoch(process)
            }
            Call::Commit { group, offsets } if op.kind == OpType::Ok => {
                for (tp, offset) in offsets {
                    let tp = self.intern(tp);
                    let best = self
                        .commits
                        .entry((group.clone(), tp))
                        .or_insert((i64::MIN, index));
                    if offset.0 > best.0 {
                        *best = (offset.0, index);
                    }
                }
            }
            Call::Commit { group, offsets } if op.kind == OpType::Info => {
                for (tp, offset) in offsets {
                    let tp = self.intern(tp);
                    self.maybe_commits.insert((group.clone(), tp, offset.0));
                }
            }
            Call::Commit { .. } => {}
            Call::Committed {
                group,
                partitions,
                offsets,
            } => self.committed(index, process, op.kind, group, partitions, offsets),
        }
        Ok(())
    }

    /// A read of `group`'s committed offsets of `partitions`: at its
    /// invocation, what it must return at least; at its completion, that
    /// it did (else [`Anomaly::LostCommit`]), and the consumer's position
    /// in each partition is just below the offset it resumes from, so a
    /// first poll past records there is a skip.
    fn committed(
        &mut self,
        index: usize,
        process: u64,
        kind: OpType,
        group: &str,
        partitions: &[TopicPartition],
        offsets: &BTreeMap<TopicPartition, Offset>,
    ) {
        match kind {
            OpType::Invoke => {
                let asked: Vec<Tp> = partitions.iter().map(|tp| self.intern(tp)).collect();
                let floor = asked
                    .into_iter()
                    .filter_map(|tp| {
                        let &(o, op) = self.commits.get(&(group.to_string(), tp))?;
                        Some((tp, o, op))
                    })
                    .collect();
                self.commit_reads.insert(process, floor);
            }
            OpType::Ok => {
                for (tp, committed, commit_op) in
                    self.commit_reads.remove(&process).unwrap_or_default()
                {
                    let read = offsets.get(&self.tps[tp as usize]).copied();
                    let lost = match read {
                        None => true,
                        // An indeterminate commit of that offset may
                        // have landed after the acknowledged one.
                        Some(r) => {
                            r.0 < committed
                                && !self.maybe_commits.contains(&(group.to_string(), tp, r.0))
                        }
                    };
                    if lost {
                        self.found.push(Anomaly::LostCommit {
                            group: group.to_string(),
                            tp: self.tps[tp as usize].clone(),
                            committed: Offset(committed),
                            commit_op,
                            read,
                            read_op: index,
                        });
                    }
                }
                for (tp, offset) in offsets {
                    let tp = self.intern(tp);
                    if offset.0 > 0 {
                        self.positions
                            .entry(process)
                            .or_default()
                            .insert(tp, offset.0 - 1);
                    }
                }
            }
            OpType::Fail | OpType::Info => {
                self.commit_reads.remove(&process);
            }
        }
    }

    fn intern(&mut self, tp: &TopicPartition) -> Tp {
        if let Some(&i) = self.tp_index.get(tp) {
            return i;
        }
        let i = Tp::try_from(self.tps.len()).expect("fewer than 2^32 partitions");
        self.tp_index.insert(tp.clone(), i);
        self.tps.push(tp.clone());
        self.max_polled.push(i64::MIN);
        self.slots.push(DenseMap::default());
        i
    }

    fn new_epoch(&mut self, process: u64) {
        if let Some(p) = self.positions.get_mut(&process) {
            p.clear();
        }
    }

    fn send(
        &mut self,
        index: usize,
        kind: OpType,
        tp: Tp,
        value: Value,
        offset: Option<Offset>,
    ) -> Result<(), CheckerError> {
        let v = self.values.entry(value.0);
        if kind == OpType::Invoke {
            if v.send != SendState::NotSent {
                return Err(CheckerError::DuplicateSend {
                    value,
                    first_op: v.send_op,
                    op: index,
                });
            }
            v.send = SendState::Invoked;
            v.send_tp = tp;
            v.send_op = index;
            return Ok(());
        }
        match v.send {
            SendState::NotSent => v.send_tp = tp,
            SendState::Invoked if v.send_tp != tp => {
                return Err(CheckerError::SendPartitionMismatch { value, op: index })
            }
            SendState::Invoked => {}
            SendState::Ok | SendState::Fail | SendState::Info => {
                return Err(CheckerError::DuplicateCompletion { value, op: index })
            }
        }
        // From here on the completion is the evidence: it shows the outcome.
        v.send_op = index;
        v.send = match kind {
            OpType::Ok => SendState::Ok,
            OpType::Fail => SendState::Fail,
            OpType::Info | OpType::Invoke => SendState::Info,
        };
        if kind == OpType::Ok {
            // An acknowledgement without an offset: the client learnt that
            // the value was written, not where (librdkafka's -1001 for a
            // retried idempotent batch the broker already had).
            let Some(offset) = offset else {
                v.ack = ACK_UNKNOWN;
                return Ok(());
            };
            if offset.0 < 0 {
                return Err(negative(value, offset, index));
            }
            v.ack = offset.0;
            self.position(index, tp, offset.0, value.0);
        }
        Ok(())
    }

    /// A record `process` polled; `last` is its epoch's last offset per partition.
    fn polled(
        &mut self,
        index: usize,
        process: u64,
        last: &mut FastMap<Tp, i64>,
        tp: Tp,
        offset: i64,
        value: u64,
    ) {
        self.stats.records_polled += 1;
        let v = self.position(index, tp, offset, value);
        if v.read_op == NEVER {
            v.read_op = index;
            v.read_process = process;
            v.read_tp = tp;
            v.read_offset = offset;
        }
        let max = &mut self.max_polled[tp as usize];
        *max = (*max).max(offset);
        match last.insert(tp, offset) {
            Some(previous) if offset <= previous => self.found.push(Anomaly::NonMonotonicPoll {
                process: ProcessId(process),
                tp: self.tps[tp as usize].clone(),
                previous: Offset(previous),
                offset: Offset(offset),
                op: index,
            }),
            Some(previous) if offset > previous.saturating_add(1) => self.gaps.push(Gap {
                process,
                tp,
                from: previous,
                to: offset,
                op: index,
            }),
            _ => {}
        }
    }

    /// Records that `value` is at (`tp`, `offset`) per op `index`; returns
    /// the value's state.
    fn position(&mut self, index: usize, tp: Tp, offset: i64, value: u64) -> &mut ValueState {
        let slot = self.slots[tp as usize].entry(offset as u64);
        if slot.op == NEVER {
            *slot = Slot { value, op: index };
        } else if slot.value != value {
            let first = (slot.value, slot.op);
            let seen = self
                .conflicts
                .entry((tp, offset))
                .or_insert_with(|| vec![first]);
            if !seen.iter().any(|&(v, _)| v == value) {
                seen.push((value, index));
            }
        }
        let v = self.values.entry(value);
        if v.pos_tp == NO_TP {
            v.pos_tp = tp;
            v.pos_offset = offset;
            v.pos_op = index;
        } else if (v.pos_tp, v.pos_offset) != (tp, offset) {
            let first = (v.pos_tp, v.pos_offset, v.pos_op);
            let seen = self.duplicates.entry(value).or_insert_with(|| vec![first]);
            if !seen.iter().any(|&(t, o, _)| (t, o) == (tp, offset)) {
                seen.push((tp, offset, index));
            }
        }
        v
    }

    fn at(&self, tp: Tp, offset: i64, op: usize) -> Position {
        Position {
            tp: self.tps[tp as usize].clone(),
            offset: Offset(offset),
            op,
        }
    }

    /// Derives the anomalies that need the whole history.
    pub fn finish(mut self) -> Report {
        let mut found = std::mem::take(&mut self.found);
        self.value_anomalies(&mut found);
        for (value, positions) in &self.duplicates {
            found.push(Anomaly::Duplicate {
                value: Value(*value),
                positions: positions
                    .iter()
                    .map(|&(tp, o, op)| self.at(tp, o, op))
                    .collect(),
            });
        }
        for (&(tp, offset), values) in &self.conflicts {
            found.push(Anomaly::InconsistentOffset {
                tp: self.tps[tp as usize].clone(),
                offset: Offset(offset),
                values: values.iter().map(|&(v, op)| (Value(v), op)).collect(),
            });
        }
        self.skips(&mut found);
        found.sort_by_key(|a| (a.kind(), a.op()));
        self.stats.ops = self.next_op;
        self.stats.partitions = self.tps.len();
        self.stats.distinct_values = self.values.iter().count();
        Report {
            stats: self.stats,
            anomalies: found,
        }
    }

    /// Lost, unseen, aborted and phantom values; counts the sends.
    fn value_anomalies(&mut self, found: &mut Vec<Anomaly>) {
        let (mut ok, mut failed, mut indeterminate) = (0, 0, 0);
        for (value, v) in self.values.iter() {
            let read = v.read_op != NEVER;
            let read_at = || self.at(v.read_tp, v.read_offset, v.read_op);
            match v.send {
                SendState::Ok => {
                    ok += 1;
                    if read {
                        continue;
                    }
                    let tp = self.tps[v.send_tp as usize].clone();
                    let max_polled = self.max_polled[v.send_tp as usize];
                    found.push(if v.ack == ACK_UNKNOWN {
                        Anomaly::Unseen {
                            value: Value(value),
                            tp,
                            offset: None,
                            send_op: v.send_op,
                        }
                    } else if v.ack <= max_polled {
                        Anomaly::LostWrite {
                            value: Value(value),
                            tp,
                            offset: Offset(v.ack),
                            send_op: v.send_op,
                            max_polled: Offset(max_polled),
                        }
                    } else {
                        Anomaly::Unseen {
                            value: Value(value),
                            tp,
                            offset: Some(Offset(v.ack)),
                            send_op: v.send_op,
                        }
                    });
                }
                SendState::Fail => {
                    failed += 1;
                    if read {
                        found.push(Anomaly::AbortedRead {
                            value: Value(value),
                            send_op: v.send_op,
                            read: read_at(),
                            process: ProcessId(v.read_process),
                        });
                    }
                }
                SendState::Info | SendState::Invoked => indeterminate += 1,
                SendState::NotSent => found.push(Anomaly::Phantom {
                    value: Value(value),
                    read: read_at(),
                    process: ProcessId(v.read_process),
                }),
            }
        }
        self.stats.sends_ok = ok;
        self.stats.sends_failed = failed;
        self.stats.sends_indeterminate = indeterminate;
    }

    /// Gaps between a consumer's consecutive offsets that hide a known record.
    fn skips(&self, found: &mut Vec<Anomaly>) {
        if self.gaps.is_empty() {
            return;
        }
        // Offsets holding a record (never negative: refused on input), ascending.
        let known: Vec<Vec<i64>> = self
            .slots
            .iter()
            .map(|slots| {
                let mut offsets: Vec<i64> = slots.iter().map(|(o, _)| o as i64).collect();
                offsets.sort_unstable();
                offsets
            })
            .collect();
        for g in &self.gaps {
            let offsets = &known[g.tp as usize];
            let i = offsets.partition_point(|&o| o <= g.from);
            if let Some(&skipped) = offsets.get(i).filter(|&&o| o < g.to) {
                found.push(Anomaly::InternalSkip {
                    process: ProcessId(g.process),
                    tp: self.tps[g.tp as usize].clone(),
                    from: Offset(g.from),
                    to: Offset(g.to),
                    skipped: Offset(skipped),
                    op: g.op,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_value_and_per_offset_state_stay_as_small_as_documented() {
        assert_eq!(std::mem::size_of::<ValueState>(), 72);
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }
}
