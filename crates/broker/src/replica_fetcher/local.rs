//! The broker's partitions as the fetcher's follower replicas: the
//! [`FollowerReplica`] seam over a [`Partition`] (its `Log` and high
//! watermark) and [`ReplicaSource`] over the [`ReplicaManager`].

use std::sync::Arc;

use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::{StorageError, TopicPartition};

use super::replica::{FollowerAppend, FollowerReplica, ReplicaSource};
use crate::partition::{Partition, ReplicaManager};

impl FollowerReplica for Partition {
    fn log_start_offset(&self) -> Offset {
        self.log().log_start_offset()
    }

    fn log_end_offset(&self) -> Offset {
        self.log().log_end_offset()
    }

    fn high_watermark(&self) -> Offset {
        Partition::high_watermark(self)
    }

    fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.log().latest_epoch()
    }

    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        self.log().end_offset_for_epoch(epoch)
    }

    fn max_message_bytes(&self) -> usize {
        self.log().config().max_message_bytes as usize
    }

    fn is_follower_in(&self, epoch: LeaderEpoch) -> bool {
        !self.is_leader() && self.leader_epoch() == epoch
    }

    fn append_as_follower(&self, records: &[u8]) -> Result<FollowerAppend, StorageError> {
        let log = self.log();
        let info = match log.append_as_follower(records) {
            // The leader's log start lies inside the first batch (a
            // DeleteRecords or retention there) and this log is empty at
            // that start: begin the log at the batch instead (Kafka's
            // `appendRecordsToFollowerOrFutureReplica`).
            Err(StorageError::UnexpectedAppendOffset {
                first_offset,
                log_end,
                ..
            }) if log.log_start_offset() == log_end && first_offset < log_end => {
                tracing::info!(partition = %log.topic_partition(), from = log_end.0, to = first_offset.0,
                    "the leader's first batch starts below this empty log's start; restarting the log at it");
                log.truncate_fully_and_start_at(first_offset)?;
                self.reset_high_watermark();
                log.append_as_follower(records)?
            }
            other => other?,
        };
        if info.bytes > 0 {
            self.note_append(info.first_offset, info.bytes);
            // flush.messages: the follower flushes as the leader would (the
            // fetcher runs on the blocking pool).
            if info.needs_flush {
                self.log().flush_until(info.last_offset)?;
            }
        }
        Ok(FollowerAppend {
            last_offset: info.last_offset,
            bytes: info.bytes,
        })
    }

    fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        self.log().truncate_to(offset)?;
        if Partition::high_watermark(self) > self.log().log_end_offset() {
            self.reset_high_watermark();
        }
        Ok(())
    }

    fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), StorageError> {
        self.log().truncate_fully_and_start_at(offset)?;
        // Empty at `offset`: the high watermark is the log end.
        self.reset_high_watermark();
        Ok(())
    }

    fn update_high_watermark(&self, leader_hw: Offset) -> Offset {
        self.follow_high_watermark(leader_hw)
    }

    fn maybe_increment_log_start_offset(
        &self,
        leader_log_start: Offset,
    ) -> Result<(), StorageError> {
        if leader_log_start > self.log().log_start_offset()
            && leader_log_start <= Partition::high_watermark(self)
        {
            self.log().delete_records_before(leader_log_start)?;
        }
        Ok(())
    }
}

impl ReplicaSource for ReplicaManager {
    fn follower(&self, tp: &TopicPartition) -> Option<Arc<dyn FollowerReplica>> {
        self.get_partition(tp)
            .map(|p| p as Arc<dyn FollowerReplica>)
    }
}

#[cfg(test)]
mod tests {
    use sluice_record::{BatchBuilder, CompressionType, Timestamp};
    use sluice_storage::{LogConfig, LogManager, LogManagerConfig, ManualClock, SimFs};

    use super::*;
    use crate::replica::ReplicaRole;
    use sluice_metadata::BrokerId;

    fn batch(base: i64, count: usize, epoch: i32) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None)
            .base_offset(Offset(base))
            .partition_leader_epoch(LeaderEpoch(epoch));
        for i in 0..count {
            let v = format!("v{base}-{i}");
            b.append(Timestamp(1_700_000_000_000), None, Some(v.as_bytes()), &[])
                .unwrap();
        }
        b.build().unwrap()
    }

    fn follower() -> (Arc<Partition>, LogManager) {
        let logs = LogManager::open(
            LogManagerConfig {
                log_dirs: vec!["/d".into()],
                ..Default::default()
            },
            Arc::new(SimFs::new()),
            Arc::new(ManualClock::new(1_700_000_000_000)),
        )
        .unwrap();
        let tp = TopicPartition::new("t", 0);
        let log = logs.get_or_create_log(&tp, LogConfig::default()).unwrap();
        let p = Arc::new(Partition::new(log));
        let mut role = ReplicaRole::alone(BrokerId(1), LeaderEpoch(2));
        role.leader = BrokerId(2);
        p.become_replica(&role);
        (p, logs)
    }

    #[test]
    fn appends_byte_for_byte_and_follows_the_leaders_high_watermark() {
        let (p, _logs) = follower();
        let r: &dyn FollowerReplica = &*p;
        assert!(r.is_follower_in(LeaderEpoch(2)));
        assert!(!r.is_follower_in(LeaderEpoch(3)));
        let mut bytes = batch(0, 3, 1);
        bytes.extend(batch(3, 2, 2));
        let a = r.append_as_follower(&bytes).unwrap();
        assert_eq!((a.last_offset, a.bytes), (Offset(4), bytes.len()));
        assert_eq!(p.log().read_to_vec(Offset(0), 1 << 20).unwrap(), bytes);
        assert_eq!(r.latest_epoch(), Some(LeaderEpoch(2)));
        assert_eq!(
            r.end_offset_for_epoch(LeaderEpoch(1)),
            Some((LeaderEpoch(1), Offset(3)))
        );
        // HW = min(leader HW, own LEO), never past the log end.
        p.reset_high_watermark();
        r.truncate_to(Offset(0)).unwrap();
        r.append_as_follower(&bytes).unwrap();
        assert_eq!(r.update_high_watermark(Offset(2)), Offset(2));
        assert_eq!(r.update_high_watermark(Offset(100)), Offset(5));
        // A new leader whose HW trails the old one's: followed down, so
        // consumers reading here never see more than the leader shows.
        assert_eq!(r.update_high_watermark(Offset(4)), Offset(4));
        assert_eq!(r.high_watermark(), Offset(4));
        assert_eq!(r.update_high_watermark(Offset(100)), Offset(5));
        // Truncation below the HW brings it down.
        r.truncate_to(Offset(3)).unwrap();
        assert_eq!(r.high_watermark(), Offset(3));
        assert_eq!(r.latest_epoch(), Some(LeaderEpoch(1)));
        // The leader's log start within our HW is followed.
        r.maybe_increment_log_start_offset(Offset(2)).unwrap();
        assert_eq!(r.log_start_offset(), Offset(2));
        r.maybe_increment_log_start_offset(Offset(50)).unwrap();
        assert_eq!(r.log_start_offset(), Offset(2), "not past the HW");
        // A leader's batch for this broker as leader is not appended.
        p.become_replica(&ReplicaRole::alone(BrokerId(1), LeaderEpoch(2)));
        assert!(!r.is_follower_in(LeaderEpoch(2)));
    }

    #[test]
    fn a_leader_log_start_inside_the_first_batch_restarts_an_empty_log_there() {
        let (p, _logs) = follower();
        let r: &dyn FollowerReplica = &*p;
        // Out of range earlier: this log was emptied to start at 12, the
        // leader's log start, which lies inside its batch [10, 15).
        r.truncate_fully_and_start_at(Offset(12)).unwrap();
        let bytes = batch(10, 5, 2);
        let a = r.append_as_follower(&bytes).unwrap();
        assert_eq!(a.last_offset, Offset(14));
        assert_eq!(r.log_start_offset(), Offset(10));
        assert_eq!(r.log_end_offset(), Offset(15));
        // A non-empty log refuses a batch below its end.
        assert!(matches!(
            r.append_as_follower(&batch(13, 1, 2)),
            Err(StorageError::UnexpectedAppendOffset { .. })
        ));
    }
}
