//! `sluice-checker`: the Jepsen-style checker for histories of the Kafka
//! workload (issue 18, and the cluster tests of issue 16).
//!
//! It owns the history format ([`history`]: JSON lines that drivers in any
//! language write), the checker ([`Checker`], [`check`]), its findings
//! ([`Anomaly`], [`AnomalyKind`]), a simulated correct log that produces valid
//! histories ([`sim`]) and the faults that break them ([`faults`]), and the
//! `sluice-check` binary. It is pure: no clock, no network, no files (the
//! binary reads one).
//!
//! # The workload
//!
//! Producers (acks=all, idempotent) send unique values ([`Value`], a `u64`
//! id) to partitions; a send completes `ok` with the acknowledged offset
//! (or without one when the client did not learn it, as librdkafka for a
//! retried idempotent batch the broker already had),
//! `fail` when it was definitely not written, or `info` (or never) when it is
//! indeterminate. Consumers, manually assigned or in groups, poll and record
//! every `(partition, offset, value)` they receive. A consumer's *assignment
//! epoch* runs from an `assign`, `subscribe`, `rebalance` or `crash` of that
//! process (or an indeterminate poll, which may have moved it unseen) to the
//! next one. The history ends with consumers reading every partition to its
//! end after faults heal.
//!
//! # What is checked, precisely
//!
//! A value's *positions* are the (partition, offset) pairs it was
//! acknowledged at or polled from. The *version order* of a partition maps
//! each offset to the value(s) known there. "Polled" means returned by a
//! completed (`ok`) poll of any consumer.
//!
//! - **LostWrite**: a send acknowledged at offset `o` of partition `p` whose
//!   value no consumer ever polled, although some consumer polled an offset
//!   `>= o` of `p` (Jepsen's lost write: below the highest polled offset yet
//!   never read). Indeterminate sends are never lost.
//! - **Unseen**: a send acknowledged at `o` whose value was never polled, with
//!   `o` above every polled offset of `p` (or acknowledged at an unknown
//!   offset): never seen after healing.
//! - **Duplicate**: one value at two or more positions (e.g. appended twice,
//!   or polled at another offset than it was acknowledged at).
//! - **InconsistentOffset**: two or more values at one offset.
//! - **AbortedRead**: a value whose send completed `fail` was polled.
//! - **NonMonotonicPoll**: within one consumer's assignment epoch, a polled
//!   offset of a partition is `<=` the previous one it polled there.
//! - **InternalSkip**: within one epoch, a consumer polls offset `a` then `b`
//!   of a partition, and some offset strictly between holds a record (is a
//!   position of some value). Gaps no record is known at (transaction
//!   markers, aborted batches) are not skips.
//! - **Phantom**: a polled value that no producer ever sent.
//! - **LostCommit**: a group's offset `c` for a partition was acknowledged
//!   (`commit` completed `ok`) before some read of the group's offset for
//!   that partition (`committed`) was invoked, and that read returned
//!   less than `c` (and not the offset of a commit that completed `info`,
//!   which may land at any time later), or none. A consumer resumes where the read says: its position in each
//!   partition is then just below that offset, so a first poll that jumps
//!   past a record there is an **InternalSkip**.
//!
//! Assumptions a driver must keep: values are unique per history (a
//! second send of one is an error, as is a negative offset); each
//! consumer epoch starts at or below an offset some consumer already
//! polled (committed offsets or `auto.offset.reset=earliest`), else unread
//! records it jumps over count as lost; a poll that may have delivered
//! records it did not record completes `info`; a group's committed
//! offsets only move forward (consumers commit what they read past, and the
//! coordinator refuses commits of fenced members).
//!
//! # Cost
//!
//! State is per distinct value (72 bytes) and per known offset (16 bytes),
//! kept in dense pages for keys below 2^32 (workload ids and offsets are
//! dense from zero) and hash maps otherwise, plus the findings; re-reads cost
//! lookups only. A simulated history of 1.03 M ops (2.35 M polled records,
//! 280 k values) checks in 0.21 s of CPU, about 5 M ops/s; parsing its
//! 97 MB of JSON lines adds about 0.55 s
//! (`cargo run --release -p sluice-checker --example throughput`;
//! `cargo bench -p sluice-checker` for the criterion version).

pub mod anomaly;
mod check;
mod dense;
mod error;
pub mod faults;
mod hash;
pub mod history;
pub mod sim;

pub use anomaly::{Anomaly, AnomalyKind, Position};
pub use check::{check, Checker, Report, Stats};
pub use error::CheckerError;
pub use history::{Call, Offset, Op, OpType, ProcessId, TopicPartition, Value};
