//! The leader side of replication (issue 17): what a partition leader does
//! for its followers and for `acks=all` producers.
//!
//! - [`isr`]: the pure, clock-driven rules: follower progress (Kafka's
//!   `ReplicaState`), the high watermark (min LEO of the maximal ISR,
//!   strict min ISR), ISR expand/shrink proposals and how answers apply.
//! - [`leader`]: the `Partition` methods around them (role from the image,
//!   appends, follower fetches, `acks=all` waits).
//! - [`purgatory`]: the bounded `acks=all` waiters of a partition.
//! - [`markers`]: WriteTxnMarkers on a leader: transaction markers
//!   appended and waited for like `acks=all`.
//! - [`alter`]: the ISR changes sent to the controller (one in flight per
//!   partition) and the periodic shrink check; [`controller`]: that seam on
//!   `ControllerClient::alter_partition`.
//! - [`selector`]: KIP-392, which replica a consumer is sent to
//!   (`replica.selector.class`).
//! - [`quota`]: replication throttles (`*.replication.throttled.rate` on
//!   the replicas `*.replication.throttled.replicas` name).

pub mod alter;
pub mod controller;
#[cfg(test)]
mod fetch_tests;
pub mod isr;
pub mod leader;
pub mod markers;
pub mod purgatory;
pub mod quota;
#[cfg(test)]
mod read_replica_tests;
pub mod refusals;
pub mod selector;
#[cfg(test)]
mod txn_tests;

pub use leader::ReplicaRole;

use kafka_protocol::error::ResponseError;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::Log;

/// KIP-279 on the leader: where a follower that last fetched
/// `last_fetched_epoch` and now fetches at `fetch_offset` diverges from
/// this log. `Ok(Some((epoch, end offset)))` is the DivergingEpoch to
/// answer (no records); `Err` OFFSET_OUT_OF_RANGE when this log cannot say
/// where that epoch ends (it starts after it) or the offset is below the
/// log start.
pub fn divergence(
    log: &Log,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Result<Option<(i32, i64)>, i16> {
    divergence_from(
        epoch_end(log, LeaderEpoch(last_fetched_epoch)),
        last_fetched_epoch,
        Offset(fetch_offset),
        log.log_start_offset(),
    )
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor` on this log.
fn epoch_end(log: &Log, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
    log.end_offset_for_epoch(epoch)
}

/// The rule of [`divergence`] on the epoch cache's answer `end`
/// (`end_offset_for_epoch(last_fetched_epoch)`).
pub fn divergence_from(
    end: Option<(LeaderEpoch, Offset)>,
    last_fetched_epoch: i32,
    fetch_offset: Offset,
    log_start: Offset,
) -> Result<Option<(i32, i64)>, i16> {
    let out_of_range = ResponseError::OffsetOutOfRange.code();
    let Some((epoch, end_offset)) = end else {
        return Err(out_of_range);
    };
    if fetch_offset < log_start {
        return Err(out_of_range);
    }
    if epoch.0 < last_fetched_epoch || end_offset < fetch_offset {
        return Ok(Some((epoch.0, end_offset.0)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_follows_kip_279() {
        let lso = Offset(0);
        // The follower's epoch 3 ends at 50 here; it fetches at 40: fine.
        assert_eq!(
            divergence_from(Some((LeaderEpoch(3), Offset(50))), 3, Offset(40), lso),
            Ok(None)
        );
        // It has 60 in epoch 3, the leader's epoch 3 ended at 50: truncate to 50.
        assert_eq!(
            divergence_from(Some((LeaderEpoch(3), Offset(50))), 3, Offset(60), lso),
            Ok(Some((3, 50)))
        );
        // This log never had epoch 4; its largest below is 2, ending at 30.
        assert_eq!(
            divergence_from(Some((LeaderEpoch(2), Offset(30))), 4, Offset(30), lso),
            Ok(Some((2, 30)))
        );
        // Unknown epoch (older than the log's history): out of range.
        assert_eq!(divergence_from(None, 1, Offset(5), lso), Err(1));
        assert_eq!(
            divergence_from(Some((LeaderEpoch(3), Offset(50))), 3, Offset(5), Offset(10)),
            Err(1)
        );
    }
}
