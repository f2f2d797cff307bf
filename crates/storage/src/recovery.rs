//! The offset rules recovery checks batch by batch, on top of framing and
//! CRC (`BatchHeader::validate_stored`).
//!
//! A batch's `baseOffset` and `partitionLeaderEpoch` lie outside its CRC,
//! and `lastOffset` is `baseOffset + lastOffsetDelta`: one flipped bit in
//! the base offset passes every CRC check and would serve the batch's
//! records at wrong offsets (and move the log end offset, and so the high
//! watermark, by as much as the flip). The CRC does cover the batch's span
//! (`lastOffsetDelta`) and its records' offset deltas, so the base offset is
//! the one number recovery has to check against its neighbours:
//!
//! * every batch: `base >= segment base`, `last - segment base <= i32::MAX`
//!   (relative offsets fit an index entry), and for a segment that is not
//!   the last one `last < next segment's base`; `partitionLeaderEpoch >= -1`.
//! * [`Gaps::Impossible`] (`cleanup.policy` without `compact`, and the log
//!   was never cleaned): the first batch starts at the segment's base and
//!   every next batch at `previous last + 1`. Offsets are assigned at the
//!   log end offset and segments are created at it, so this is exact, and
//!   the batch that breaks it is the damaged one (the one before it was
//!   already checked against its own predecessor, down to the file name).
//! * [`Gaps::Possible`] (compaction: the cleaner keeps offsets, and a batch
//!   whose records all went disappears, so `next base > previous last + 1`
//!   is legal): offsets strictly increase. When a batch's base is not above
//!   the previous batch's last offset, either the previous base jumped
//!   forward or this one jumped back, and nothing tells which: recovery
//!   cuts at the previous batch, so it never keeps a batch that may sit at
//!   wrong offsets. A segment that is not the last ends exactly at the next
//!   segment's base (the cleaner keeps a cleaned segment's last batch, empty
//!   if need be, for this), so when it ends short its last batch is cut too
//!   (its base may have moved back into a gap). What this cannot see: a
//!   forward jump of the log's very last batch within its segment's 32-bit
//!   range (no later batch or segment contradicts it).
//! * Both: the leader epoch never decreases from batch to batch. When it
//!   does, the previous batch's epoch may have jumped forward or this one's
//!   back: recovery cuts at the previous batch.
//!
//! As in Kafka, everything from the cut on is removed (and recovery deletes
//! the later segments): valid batches after a damaged one are lost, but no
//! batch is ever served at offsets it was not written at.

use sluice_record::{BatchHeader, Offset};

/// Whether a segment may hold offset gaps between batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gaps {
    /// Never compacted: batches are contiguous from the segment's base.
    Impossible,
    /// Compacted (or may have been): offsets only strictly increase.
    Possible,
}

/// What recovery knows about a segment's offsets before reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OffsetRules {
    pub gaps: Gaps,
    /// The next segment's base offset (`None` for the last segment).
    pub next_segment_base: Option<Offset>,
}

impl OffsetRules {
    /// Rules that accept whatever strictly increases inside the segment
    /// (index rebuilds of a segment that is not being recovered).
    pub(crate) fn relaxed() -> Self {
        OffsetRules {
            gaps: Gaps::Possible,
            next_segment_base: None,
        }
    }
}

/// Where a batch that breaks the rules makes recovery cut the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// At this batch: it is the damaged one.
    Here(&'static str),
    /// At the batch before it: either of the two may be the damaged one.
    BeforePrevious(&'static str),
}

/// Checks batch `h` of the segment based at `base`, `prev` being the batch
/// before it in the segment (already checked).
pub(crate) fn check_batch(
    base: Offset,
    h: &BatchHeader,
    prev: Option<&BatchHeader>,
    rules: &OffsetRules,
) -> Result<(), Cut> {
    if h.partition_leader_epoch.0 < -1 {
        return Err(Cut::Here("negative partition leader epoch"));
    }
    if h.base_offset < base {
        return Err(Cut::Here("base offset below the segment's base offset"));
    }
    if h.last_offset().distance_from(base) > i32::MAX as i64 {
        return Err(Cut::Here("last offset beyond the segment's 32-bit range"));
    }
    if rules
        .next_segment_base
        .is_some_and(|nb| h.last_offset() >= nb)
    {
        return Err(Cut::Here("last offset at or past the next segment's base"));
    }
    let Some(p) = prev else {
        if rules.gaps == Gaps::Impossible && h.base_offset != base {
            return Err(Cut::Here(
                "first batch does not start at the segment's base",
            ));
        }
        return Ok(());
    };
    match rules.gaps {
        Gaps::Impossible if h.base_offset != p.next_offset() => {
            return Err(Cut::Here("base offset does not follow the previous batch"));
        }
        Gaps::Possible if h.base_offset <= p.last_offset() => {
            return Err(Cut::BeforePrevious("offsets do not increase"));
        }
        _ => {}
    }
    if h.partition_leader_epoch < p.partition_leader_epoch {
        return Err(Cut::BeforePrevious("partition leader epoch decreased"));
    }
    Ok(())
}

/// After the last whole valid batch `last` of a segment that is not the
/// last one: whether it ends where the next segment starts. Under
/// [`Gaps::Possible`] a short end may mean `last`'s base moved back into
/// a gap, so `last` is cut too; a contiguous segment's last batch was
/// checked from the segment's base and stays (the hole still makes
/// recovery delete the later segments).
pub(crate) fn keep_last_batch(last: &BatchHeader, rules: &OffsetRules) -> bool {
    match (rules.gaps, rules.next_segment_base) {
        (Gaps::Possible, Some(nb)) => last.next_offset() == nb,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::LeaderEpoch;

    fn header(base: i64, delta: i32, epoch: i32) -> BatchHeader {
        let mut b = crate::testutil::batch_of(1, 4, 0, 0);
        sluice_record::batch::set_base_offset(&mut b, Offset(base));
        sluice_record::batch::set_partition_leader_epoch(&mut b, LeaderEpoch(epoch));
        let mut h = BatchHeader::parse(&b).unwrap();
        h.last_offset_delta = delta;
        h
    }

    fn rules(gaps: Gaps, next: Option<i64>) -> OffsetRules {
        OffsetRules {
            gaps,
            next_segment_base: next.map(Offset),
        }
    }

    #[test]
    fn contiguous_rules_blame_the_batch_that_jumped() {
        let r = rules(Gaps::Impossible, Some(100));
        let base = Offset(10);
        assert_eq!(check_batch(base, &header(10, 4, 0), None, &r), Ok(()));
        assert!(matches!(
            check_batch(base, &header(11, 4, 0), None, &r),
            Err(Cut::Here(_))
        ));
        let prev = header(10, 4, 0);
        assert_eq!(
            check_batch(base, &header(15, 0, 0), Some(&prev), &r),
            Ok(())
        );
        for bad in [16, 14, 10, 15 + (1 << 20), 15 - 8] {
            assert!(
                matches!(
                    check_batch(base, &header(bad, 0, 0), Some(&prev), &r),
                    Err(Cut::Here(_))
                ),
                "{bad}"
            );
        }
        // Past the next segment, below the base, beyond 2^31.
        assert!(check_batch(base, &header(99, 1, 0), Some(&prev), &r).is_err());
        assert!(check_batch(base, &header(-5, 1, 0), None, &r).is_err());
        let open = rules(Gaps::Possible, None);
        assert!(check_batch(base, &header(10 + i32::MAX as i64, 1, 0), None, &open).is_err());
        assert_eq!(
            check_batch(base, &header(9 + i32::MAX as i64, 1, 0), None, &open),
            Ok(())
        );
    }

    #[test]
    fn gap_rules_allow_gaps_and_blame_both_batches_when_offsets_go_back() {
        let r = rules(Gaps::Possible, None);
        let base = Offset(0);
        let prev = header(5, 4, 0);
        assert_eq!(check_batch(base, &header(3, 0, 0), None, &r), Ok(()));
        assert_eq!(
            check_batch(base, &header(20, 0, 0), Some(&prev), &r),
            Ok(())
        );
        assert!(matches!(
            check_batch(base, &header(9, 0, 0), Some(&prev), &r),
            Err(Cut::BeforePrevious(_))
        ));
        assert!(keep_last_batch(&prev, &rules(Gaps::Possible, Some(10))));
        assert!(!keep_last_batch(&prev, &rules(Gaps::Possible, Some(12))));
        assert!(keep_last_batch(&prev, &rules(Gaps::Impossible, Some(12))));
    }

    #[test]
    fn leader_epochs_never_decrease() {
        let r = rules(Gaps::Impossible, None);
        let prev = header(0, 0, 5);
        assert_eq!(
            check_batch(Offset(0), &header(1, 0, 5), Some(&prev), &r),
            Ok(())
        );
        assert_eq!(
            check_batch(Offset(0), &header(1, 0, 6), Some(&prev), &r),
            Ok(())
        );
        assert!(matches!(
            check_batch(Offset(0), &header(1, 0, 4), Some(&prev), &r),
            Err(Cut::BeforePrevious(_))
        ));
        assert!(matches!(
            check_batch(Offset(0), &header(0, 0, -2), None, &r),
            Err(Cut::Here(_))
        ));
        assert_eq!(check_batch(Offset(0), &header(0, 0, -1), None, &r), Ok(()));
    }
}
