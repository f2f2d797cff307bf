//! Appends as follower (Kafka's `appendAsFollower`): the leader's batches
//! written as they are, and the leader-epoch cache's accessors.

use super::*;

impl Log {
    /// Batches fetched from the leader, appended as they are: offsets and
    /// partition leader epochs as the leader wrote them (no re-encoding, one
    /// write). Whole batches only; a trailing partial batch is ignored (its
    /// bytes are not counted in [`AppendInfo::bytes`]); with no whole batch
    /// nothing is written and `record_count` is 0. Each batch's framing,
    /// magic and CRC are checked (the leader checked the records); the first
    /// batch's base offset must be `>=` the log end offset
    /// ([`StorageError::UnexpectedAppendOffset`]; a larger one leaves a gap,
    /// as compaction does on the leader) and offsets must increase strictly
    /// from batch to batch. `max.message.bytes` is not applied: the leader
    /// accepted these batches, and a follower refusing them would stall.
    ///
    /// Producer state is updated from the batches (no sequence check, as
    /// Kafka's replication origin), so a follower that becomes leader
    /// recognizes an idempotent producer's retries and knows the open
    /// transactions; the leader's ABORT markers add entries to the
    /// transaction index as the leader's did; a batch whose leader
    /// epoch is newer than the cache's latest starts an epoch entry
    /// (written before the data, as Kafka does). Flushing and rolling follow
    /// the same policy as leader appends.
    pub fn append_as_follower(&self, records: &[u8]) -> Result<AppendInfo, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let (headers, whole) = follower_batches(records)?;
        let mut st = self.state.write();
        self.check()?;
        let leo = st.log_end_offset;
        let log_start_offset = st.log_start_offset;
        let (Some((_, first)), Some((_, last))) = (headers.first(), headers.last()) else {
            return Ok(AppendInfo {
                first_offset: leo,
                last_offset: leo.plus(-1),
                log_append_time: Timestamp::NONE,
                log_start_offset,
                record_count: 0,
                bytes: 0,
                needs_flush: false,
                duplicate: false,
            });
        };
        let (first_offset, last_offset, next) =
            (first.base_offset, last.last_offset(), last.next_offset());
        if first_offset < leo {
            return Err(StorageError::UnexpectedAppendOffset {
                tp: self.tp.clone(),
                first_offset,
                log_end: leo,
            });
        }
        if last_offset.distance_from(leo) > i32::MAX as i64 {
            return Err(StorageError::InvalidRecord(format!(
                "follower append ending at {last_offset} is too far past the log end {leo} for one segment"
            )));
        }
        let record_count: i64 = headers.iter().map(|(_, h)| i64::from(h.record_count)).sum();
        let batches = producer_batches(
            &headers,
            |pos, size| &records[pos..pos + size],
            AppendOrigin::Replication,
        )?;
        let prepared = if batches.is_empty() {
            None
        } else {
            match st
                .producers
                .prepare_append(&batches, AppendOrigin::Replication, None)?
            {
                Prepared::Append(p) => Some(p),
                // Only a client's batch can be a duplicate.
                Prepared::Duplicate(_) => None,
            }
        };
        let new_producers = prepared.as_ref().is_some_and(|p| p.new_producers() > 0);

        let mut pending_snapshot = None;
        if st.active().should_roll(
            config.segment_bytes,
            config.segment_ms,
            whole as u64,
            last_offset,
            now,
        )? {
            pending_snapshot = self.roll_locked(&mut st, &config, now)?;
        }
        let epochs_before = self.assign_batch_epochs(&mut st.epochs, &headers)?;
        let active = st.active().clone();
        let txn_mark = match self.index_aborted(&active, prepared.as_ref()) {
            Ok(mark) => mark,
            Err(e) => {
                if let Some(before) = epochs_before {
                    st.epochs = before;
                    let _ = self.persist_epochs(&st.epochs);
                }
                return Err(e);
            }
        };
        let piece = [std::io::IoSlice::new(&records[..whole])];
        if let Err(f) = active.append(&piece, &headers, config.index_interval_bytes) {
            if f.unrecoverable {
                self.offline(&f.error);
            }
            self.unindex_aborted(&active, txn_mark);
            if let Some(before) = epochs_before {
                st.epochs = before;
                let _ = self.persist_epochs(&st.epochs);
            }
            return Err(f.error);
        }
        st.log_end_offset = next;
        if let Some(p) = prepared {
            st.producers.apply(p);
        }
        st.producers.set_map_end_offset(next);
        self.publish_txn_state(&st.producers);
        // Never refused on a follower; idle producers go when over the bound.
        if new_producers && st.producers.len() > self.env.producer_state.max_producers {
            st.producers.remove_expired(
                now,
                self.env.producer_state_config().producer_id_expiration_ms,
            );
        }
        self.log_end.store(next.0, Ordering::Release);
        drop(st);
        self.write_pending_snapshot(pending_snapshot);
        let unflushed = next.distance_from(self.recovery_point());
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_append_time: Timestamp::NONE,
            log_start_offset,
            record_count,
            bytes: whole,
            needs_flush: unflushed >= config.flush_messages,
            duplicate: false,
        })
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch
    /// `<= epoch` this log knows and where it ends (the start offset of the
    /// next larger epoch, or the log end offset for the latest one). For an
    /// epoch below the first known one: that epoch and the first entry's
    /// start. `None` = UNDEFINED (-1, -1): a negative epoch, no entries, or
    /// an epoch above the latest.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let st = self.state.read();
        st.epochs.end_offset_for(epoch, st.log_end_offset)
    }

    /// The newest leader epoch this log holds data of (or was assigned).
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.state.read().epochs.latest_epoch()
    }

    /// The epoch cache's entries, oldest first (tests, replica comparison).
    pub fn epoch_entries(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.state.read().epochs.entries().to_vec()
    }

    /// A new leader records that `epoch` starts at `start` (its log end
    /// offset) before it appends anything (Kafka's
    /// `maybeAssignEpochStartOffset`). Entries with a larger epoch or a
    /// start at or after `start` are replaced; the file is written when
    /// anything changed.
    pub fn assign_epoch_start_offset(
        &self,
        epoch: LeaderEpoch,
        start: Offset,
    ) -> Result<(), StorageError> {
        self.check()?;
        let mut st = self.state.write();
        if epoch.0 < 0 {
            return Err(StorageError::InvalidRecord(format!(
                "leader epoch {epoch:?} cannot start an epoch entry"
            )));
        }
        if start.0 < 0 || start > st.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: start,
                log_start: st.log_start_offset,
                log_end: st.log_end_offset,
            });
        }
        let before = st.epochs.clone();
        if st.epochs.assign(epoch, start) {
            if let Err(e) = self.persist_epochs(&st.epochs) {
                st.epochs = before;
                return Err(e);
            }
            tracing::debug!(log = %self.tp, epoch = epoch.0, start = start.0, "assigned leader epoch start offset");
        }
        Ok(())
    }

    /// Starts an epoch entry for each batch of a newer leader epoch than
    /// the latest, and writes the file. Returns the cache as it was when
    /// anything changed (to restore if the data write fails); on a failed
    /// file write the cache is restored and the error returned.
    fn assign_batch_epochs(
        &self,
        epochs: &mut LeaderEpochCache,
        headers: &[(usize, BatchHeader)],
    ) -> Result<Option<LeaderEpochCache>, StorageError> {
        let mut before = None;
        for (_, h) in headers {
            let epoch = h.partition_leader_epoch;
            if epoch.0 >= 0 && epochs.latest_epoch().is_none_or(|l| epoch > l) {
                before.get_or_insert_with(|| epochs.clone());
                epochs.assign(epoch, h.base_offset);
            }
        }
        if let Some(b) = &before {
            if let Err(e) = self.persist_epochs(epochs) {
                *epochs = b.clone();
                return Err(e);
            }
        }
        Ok(before)
    }

    /// Writes the epoch cache's file; a failure other than a full disk (or
    /// no descriptor) takes the log directory offline, as for every other
    /// metadata write of the log.
    pub(super) fn persist_epochs(&self, epochs: &LeaderEpochCache) -> Result<(), StorageError> {
        let r = epochs.persist(&*self.env.fs);
        if let Err(e) = &r {
            if !e.is_resource_exhausted() {
                self.offline(e);
            }
        }
        r
    }
}

/// The whole batches at the start of `records` (framing, magic 2, CRC,
/// counts as stored) with offsets strictly increasing, and how many bytes
/// they take; a trailing partial batch is left out.
fn follower_batches(records: &[u8]) -> Result<(Vec<(usize, BatchHeader)>, usize), StorageError> {
    let mut out: Vec<(usize, BatchHeader)> = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        // A partial trailing batch (a fetch cut at its byte limit) is
        // skipped; anything malformed in what is there is an error.
        match BatchHeader::peek_size(rest) {
            Ok(size) if size > rest.len() => break,
            Err(sluice_record::RecordError::Truncated { .. }) => break,
            _ => {}
        }
        let h = BatchHeader::validate_stored(rest)?;
        if let Some((_, prev)) = out.last() {
            if h.base_offset <= prev.last_offset() {
                return Err(StorageError::InvalidRecord(format!(
                    "follower append: batch at {} does not follow the batch ending at {}",
                    h.base_offset,
                    prev.last_offset()
                )));
            }
        }
        if h.base_offset.0 < 0 || h.last_offset() < h.base_offset {
            return Err(StorageError::InvalidRecord(format!(
                "follower append: batch offsets {}..{} are invalid",
                h.base_offset,
                h.last_offset()
            )));
        }
        out.push((pos, h));
        pos += h.size();
    }
    Ok((out, pos))
}
