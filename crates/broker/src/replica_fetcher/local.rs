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
        let info = self.log().append_as_follower(records)?;
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
        let hw = leader_hw.min(self.log().log_end_offset());
        self.advance_high_watermark(hw);
        Partition::high_watermark(self)
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
