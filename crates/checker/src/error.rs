//! The checker's one error type: a history it cannot judge (malformed lines,
//! a value sent twice, a completion that contradicts its invocation).
//! Anomalies are not errors; they are the checker's findings ([`crate::Anomaly`]).

use crate::history::Value;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CheckerError {
    #[error("line {line}: not a history op: {message}")]
    Json { line: usize, message: String },
    #[error("reading the history: {0}")]
    Read(String),
    #[error("{0:?} is not a topic partition (expected `topic-partition`)")]
    BadTopicPartition(String),
    #[error("op {op}: value {value} is sent a second time (first at op {first_op}); workload values must be unique")]
    DuplicateSend {
        value: Value,
        first_op: usize,
        op: usize,
    },
    #[error("op {op}: the send of value {value} completes a second time")]
    DuplicateCompletion { value: Value, op: usize },
    #[error(
        "op {op}: the send of value {value} completes on another partition than it was invoked on"
    )]
    SendPartitionMismatch { value: Value, op: usize },
    #[error("op {op}: offset {offset} of value {value} is negative (an unknown offset is not an offset)")]
    NegativeOffset {
        value: Value,
        offset: i64,
        op: usize,
    },
}
