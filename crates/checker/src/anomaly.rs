//! What the checker finds: [`Anomaly`] (with its evidence) and [`AnomalyKind`]
//! (its name). Op indexes are 0-based positions in the history.

use std::fmt;

use serde::Serialize;

use crate::history::{Offset, ProcessId, TopicPartition, Value};

/// The name of an anomaly, for counting and for tests.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
pub enum AnomalyKind {
    LostWrite,
    Duplicate,
    InconsistentOffset,
    AbortedRead,
    NonMonotonicPoll,
    InternalSkip,
    Unseen,
    Phantom,
    LostCommit,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 9] = [
        AnomalyKind::LostWrite,
        AnomalyKind::Duplicate,
        AnomalyKind::InconsistentOffset,
        AnomalyKind::AbortedRead,
        AnomalyKind::NonMonotonicPoll,
        AnomalyKind::InternalSkip,
        AnomalyKind::Unseen,
        AnomalyKind::Phantom,
        AnomalyKind::LostCommit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::LostWrite => "LostWrite",
            AnomalyKind::Duplicate => "Duplicate",
            AnomalyKind::InconsistentOffset => "InconsistentOffset",
            AnomalyKind::AbortedRead => "AbortedRead",
            AnomalyKind::NonMonotonicPoll => "NonMonotonicPoll",
            AnomalyKind::InternalSkip => "InternalSkip",
            AnomalyKind::Unseen => "Unseen",
            AnomalyKind::Phantom => "Phantom",
            AnomalyKind::LostCommit => "LostCommit",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a value was seen: acknowledged at, or polled from, `offset` of `tp`
/// by op `op`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Position {
    pub tp: TopicPartition,
    pub offset: Offset,
    pub op: usize,
}

/// One finding, with the evidence to look it up in the history. The precise
/// definitions are in the crate documentation.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub enum Anomaly {
    /// Acknowledged at `offset`, never polled by anyone, although some
    /// consumer polled `max_polled` >= `offset` in the same partition.
    LostWrite {
        value: Value,
        tp: TopicPartition,
        offset: Offset,
        send_op: usize,
        max_polled: Offset,
    },
    /// One value at two or more positions (acknowledged or polled).
    Duplicate {
        value: Value,
        positions: Vec<Position>,
    },
    /// Two or more values at one offset (acknowledged or polled).
    InconsistentOffset {
        tp: TopicPartition,
        offset: Offset,
        values: Vec<(Value, usize)>,
    },
    /// A value whose send definitely failed was polled.
    AbortedRead {
        value: Value,
        send_op: usize,
        read: Position,
        process: ProcessId,
    },
    /// Within one assignment epoch, `process` polled `offset` after `previous`
    /// (`offset <= previous`) in `tp`.
    NonMonotonicPoll {
        process: ProcessId,
        tp: TopicPartition,
        previous: Offset,
        offset: Offset,
        op: usize,
    },
    /// Within one assignment epoch, `process` polled `from` and then `to` in
    /// `tp`, but `skipped` (from < skipped < to) holds a record in the log.
    InternalSkip {
        process: ProcessId,
        tp: TopicPartition,
        from: Offset,
        to: Offset,
        skipped: Offset,
        op: usize,
    },
    /// Acknowledged above every polled offset of its partition (or at an
    /// offset the client did not learn: `None`) and never polled by the end
    /// of the history.
    Unseen {
        value: Value,
        tp: TopicPartition,
        offset: Option<Offset>,
        send_op: usize,
    },
    /// A value no producer ever sent was polled.
    Phantom {
        value: Value,
        read: Position,
        process: ProcessId,
    },
    /// `group`'s offset `committed` for `tp` was acknowledged (op
    /// `commit_op`) before a read of the group's offsets began, and that
    /// read (op `read_op`) returned less (`read`; `None`: no offset).
    LostCommit {
        group: String,
        tp: TopicPartition,
        committed: Offset,
        commit_op: usize,
        read: Option<Offset>,
        read_op: usize,
    },
}

impl Anomaly {
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Anomaly::LostWrite { .. } => AnomalyKind::LostWrite,
            Anomaly::Duplicate { .. } => AnomalyKind::Duplicate,
            Anomaly::InconsistentOffset { .. } => AnomalyKind::InconsistentOffset,
            Anomaly::AbortedRead { .. } => AnomalyKind::AbortedRead,
            Anomaly::NonMonotonicPoll { .. } => AnomalyKind::NonMonotonicPoll,
            Anomaly::InternalSkip { .. } => AnomalyKind::InternalSkip,
            Anomaly::Unseen { .. } => AnomalyKind::Unseen,
            Anomaly::Phantom { .. } => AnomalyKind::Phantom,
            Anomaly::LostCommit { .. } => AnomalyKind::LostCommit,
        }
    }

    /// The op the anomaly is first visible at (for sorting and reports).
    pub fn op(&self) -> usize {
        match self {
            Anomaly::LostWrite { send_op, .. } | Anomaly::Unseen { send_op, .. } => *send_op,
            Anomaly::Duplicate { positions, .. } => {
                positions.iter().map(|p| p.op).min().unwrap_or(0)
            }
            Anomaly::InconsistentOffset { values, .. } => {
                values.iter().map(|v| v.1).min().unwrap_or(0)
            }
            Anomaly::AbortedRead { read, .. } | Anomaly::Phantom { read, .. } => read.op,
            Anomaly::NonMonotonicPoll { op, .. } | Anomaly::InternalSkip { op, .. } => *op,
            Anomaly::LostCommit { read_op, .. } => *read_op,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.kind())?;
        match self {
            Anomaly::LostWrite {
                value,
                tp,
                offset,
                send_op,
                max_polled,
            } => write!(
                f,
                "value {value} acknowledged at {tp}@{offset} (op {send_op}) was never polled; offsets up to {max_polled} were"
            ),
            Anomaly::Duplicate { value, positions } => {
                write!(f, "value {value} at")?;
                for p in positions {
                    write!(f, " {}@{} (op {})", p.tp, p.offset, p.op)?;
                }
                Ok(())
            }
            Anomaly::InconsistentOffset { tp, offset, values } => {
                write!(f, "{tp}@{offset} holds")?;
                for (v, op) in values {
                    write!(f, " value {v} (op {op})")?;
                }
                Ok(())
            }
            Anomaly::AbortedRead {
                value,
                send_op,
                read,
                process,
            } => write!(
                f,
                "value {value} whose send failed (op {send_op}) was polled by process {process} at {}@{} (op {})",
                read.tp, read.offset, read.op
            ),
            Anomaly::NonMonotonicPoll {
                process,
                tp,
                previous,
                offset,
                op,
            } => write!(
                f,
                "process {process} polled {tp}@{offset} after {tp}@{previous} in one assignment epoch (op {op})"
            ),
            Anomaly::InternalSkip {
                process,
                tp,
                from,
                to,
                skipped,
                op,
            } => write!(
                f,
                "process {process} polled {tp}@{from} then {tp}@{to}, skipping {tp}@{skipped} (op {op})"
            ),
            Anomaly::Unseen {
                value,
                tp,
                offset,
                send_op,
            } => match offset {
                Some(offset) => write!(
                    f,
                    "value {value} acknowledged at {tp}@{offset} (op {send_op}) was never polled"
                ),
                None => write!(
                    f,
                    "value {value} acknowledged on {tp} at an unknown offset (op {send_op}) was never polled"
                ),
            },
            Anomaly::Phantom {
                value,
                read,
                process,
            } => write!(
                f,
                "value {value}, never sent, was polled by process {process} at {}@{} (op {})",
                read.tp, read.offset, read.op
            ),
            Anomaly::LostCommit {
                group,
                tp,
                committed,
                commit_op,
                read,
                read_op,
            } => {
                write!(
                    f,
                    "group {group} committed {tp}@{committed} (op {commit_op}), yet a later read of its offsets (op {read_op}) returned "
                )?;
                match read {
                    Some(o) => write!(f, "{o}"),
                    None => f.write_str("none"),
                }
            }
        }
    }
}
