//! One round of reads of a Fetch: each wanted partition's offsets (high
//! watermark, last stable offset, log start) and a file slice of whole
//! batches, below the high watermark for a consumer in read_uncommitted,
//! below the last stable offset in read_committed (with the aborted
//! transactions the slice overlaps, from the transaction index), up to the
//! log end for a follower.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, LeaderIdAndEpoch, PartitionData,
};
use kafka_protocol::messages::BrokerId;
use sluice_record::Offset;
use sluice_storage::{FileSlice, StorageError};

use super::{check_leader_epoch, NotServed, Throttle, Wanted};
use crate::error::storage_error_code;

pub(super) struct Round {
    /// One entry per wanted partition, in order.
    pub(super) partitions: Vec<(PartitionData, Option<FileSlice>)>,
    pub(super) bytes: u64,
    /// An error, a DivergingEpoch or a PreferredReadReplica: answered
    /// without waiting for `min_bytes`.
    pub(super) answer_now: bool,
}

/// Reads every wanted partition once, honouring `max_bytes` across the
/// response and `partition_max_bytes` per partition; the first batch of the
/// first non-empty partition is returned whole even if bigger (KIP-74).
/// With `hold`, partitions the leader's throttle limits get no records.
pub(super) fn read_all(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
    hold: bool,
) -> Round {
    let mut round = Round {
        partitions: Vec::with_capacity(wanted.len()),
        bytes: 0,
        answer_now: false,
    };
    let mut limit = max_bytes;
    let mut min_one = true;
    for w in wanted {
        let data = PartitionData::default()
            .with_partition_index(w.key.partition)
            .with_aborted_transactions(if read_committed {
                Some(Vec::new())
            } else {
                None
            })
            .with_records(Some(Bytes::new()));
        let entry = match read_one(w, limit, min_one, hold, read_committed) {
            Ok(Read {
                high_watermark: hw,
                last_stable: lso,
                log_start,
                slice,
                aborted,
            }) => {
                if let Some(slice) = &slice {
                    let len = slice.len as usize;
                    limit = limit.saturating_sub(len);
                    min_one = false;
                    round.bytes += len as u64;
                }
                let mut data = data
                    .with_high_watermark(hw.value())
                    .with_last_stable_offset(lso.value())
                    .with_log_start_offset(log_start.value());
                if read_committed {
                    data = data.with_aborted_transactions(Some(
                        aborted
                            .into_iter()
                            .map(|t| {
                                AbortedTransaction::default()
                                    .with_producer_id(kafka_protocol::messages::ProducerId(
                                        t.producer_id.0,
                                    ))
                                    .with_first_offset(t.first_offset.value())
                            })
                            .collect(),
                    ));
                }
                if let Some((epoch, end_offset)) = w.diverging {
                    // Answered at once: the follower must truncate first.
                    round.answer_now = true;
                    data = data.with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset),
                    );
                }
                if let Some(replica) = w.preferred {
                    // Answered at once: the consumer goes to the follower.
                    round.answer_now = true;
                    data = data.with_preferred_read_replica(BrokerId(replica));
                }
                (data, slice)
            }
            Err(ns) => {
                round.answer_now = true;
                let mut data = data;
                if let Some((leader_id, leader_epoch)) = ns.leader {
                    // Fetch v12+ (tagged; older versions do not carry it).
                    data = data.with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader_id))
                            .with_leader_epoch(leader_epoch),
                    );
                }
                let data = data
                    .with_error_code(ns.code)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1);
                (data, None)
            }
        };
        round.partitions.push(entry);
    }
    round
}

/// What one partition's read found.
struct Read {
    high_watermark: Offset,
    last_stable: Offset,
    log_start: Offset,
    slice: Option<FileSlice>,
    /// For read_committed: the aborted transactions overlapping `slice`.
    aborted: Vec<sluice_storage::txn_index::AbortedTxn>,
}

/// The offsets and records of one partition, or a Kafka error code.
fn read_one(
    w: &Wanted,
    limit: usize,
    min_one: bool,
    hold: bool,
    read_committed: bool,
) -> Result<Read, NotServed> {
    let partition = w.target.as_ref().map_err(|ns| *ns)?;
    let epoch = partition.leader_epoch().0;
    check_leader_epoch(epoch, w.current_leader_epoch).map_err(|code| NotServed {
        code,
        leader: Some((w.leader, epoch)),
    })?;
    let log = partition.log();
    let hw = partition.high_watermark();
    let lso = log.last_stable_offset(hw);
    let log_start = log.log_start_offset();
    let log_end = log.log_end_offset();
    let offset = Offset(w.fetch_offset);
    if offset < log_start || offset > log_end {
        return Err(NotServed::code(ResponseError::OffsetOutOfRange.code()));
    }
    let nothing = Read {
        high_watermark: hw,
        last_stable: lso,
        log_start,
        slice: None,
        aborted: Vec::new(),
    };
    if w.preferred.is_some() {
        // Redirected: no read here (Kafka skips it too).
        return Ok(nothing);
    }
    // Consumers read below the high watermark (a follower's own, on a
    // follower) or, in read_committed, the last stable offset; followers
    // up to the end.
    let visible = match (&w.follower, w.diverging) {
        (Some(_), Some(_)) => return Ok(nothing),
        (Some(_), None) => log_end,
        (None, _) if read_committed => lso,
        (None, _) => hw,
    };
    if offset >= visible || (hold && w.throttle == Throttle::Limited) {
        return Ok(nothing);
    }
    let max = limit.min(w.partition_max_bytes.max(0) as usize);
    let max_offset = if w.follower.is_some() {
        None
    } else {
        Some(visible)
    };
    let failed = |e: StorageError| {
        if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
            tracing::warn!(partition = %partition.topic_partition(), error = %e, "fetch read failed");
        }
        NotServed::code(storage_error_code(&e))
    };
    let slice = log
        .read(offset, max, max_offset, min_one)
        .map_err(failed)?
        .filter(|s| s.len > 0);
    let aborted = match &slice {
        Some(s) if read_committed && w.follower.is_none() => log
            .collect_aborted_transactions(offset, s.next_offset)
            .map_err(failed)?,
        _ => Vec::new(),
    };
    Ok(Read {
        slice,
        aborted,
        ..nothing
    })
}
