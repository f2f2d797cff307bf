//! Retention (time and size), `delete_records_before` (the log start
//! offset), `truncate_to` (cutting the log back to an offset) and
//! `truncate_fully_and_start_at`; each keeps the leader-epoch cache, the
//! producer state and the transaction indexes (which go with their
//! segments, or are cut with the log) in step.

use super::*;

impl Log {
    pub(super) fn delete_segments_locked(
        &self,
        st: &mut LogState,
        bases: &[i64],
    ) -> Result<usize, StorageError> {
        let delay = self.config.read().file_delete_delay_ms;
        let now = self.env.clock.now_ms();
        let mut n = 0;
        for b in bases {
            if let Some(seg) = st.segments.remove(b) {
                let paths = seg.rename_to_deleted()?;
                self.env
                    .deleter
                    .schedule(paths, now.saturating_add(delay), now);
                n += 1;
            }
        }
        if n > 0 {
            // Make the deletions durable so a crash cannot bring back
            // segments below the log start offset.
            if let Err(e) = self
                .env
                .fs
                .sync_dir(&self.dir)
                .ctx("fsync directory", &self.dir)
            {
                self.offline(&e);
                return Err(e);
            }
            let first = Offset(*st.segments.keys().next().expect("active segment stays"));
            if st.log_start_offset < first {
                st.log_start_offset = first;
                self.log_start.store(first.0, Ordering::Release);
            }
        }
        let lso = st.log_start_offset;
        st.producers.truncate_head(lso);
        self.publish_txn_state(&st.producers);
        // The leader-epoch entry covering the new log start moves up to it
        // (Kafka's truncateFromStart).
        if st.epochs.truncate_from_start(lso) {
            self.persist_epochs(&st.epochs)?;
        }
        Ok(n)
    }

    /// DeleteRecords: moves the log start offset to `offset` and deletes the
    /// segments wholly below it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        self.check()?;
        let mut st = self.state.write();
        if offset > st.log_end_offset || offset.0 < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: st.log_start_offset,
                log_end: st.log_end_offset,
            });
        }
        if offset > st.log_start_offset {
            st.log_start_offset = offset;
            self.log_start.store(offset.0, Ordering::Release);
        }
        let lso = st.log_start_offset;
        let bases: Vec<i64> = st.segments.keys().copied().collect();
        let doomed: Vec<i64> = bases
            .windows(2)
            .take_while(|w| w[1] <= lso.0)
            .map(|w| w[0])
            .collect();
        self.delete_segments_locked(&mut st, &doomed)?;
        Ok(lso)
    }

    /// Deletes old segments by `retention.ms` (segment's largest timestamp),
    /// `retention.bytes` and the log start offset, oldest first, as Kafka
    /// does: a non-empty active segment may go too, after rolling a new empty
    /// one. Returns the number of segments deleted.
    pub fn delete_old_segments(&self) -> Result<usize, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let mut st = self.state.write();
        st.producers.remove_expired(
            now,
            self.env.producer_state_config().producer_id_expiration_ms,
        );
        let segs: Vec<Arc<LogSegment>> = st.segments.values().cloned().collect();
        let lso = st.log_start_offset;
        let mut doomed = Vec::new();
        let mut total: i64 = segs.iter().map(|s| s.size() as i64).sum();
        for (i, s) in segs.iter().enumerate() {
            let next_base = segs.get(i + 1).map(|n| n.base_offset());
            let is_last = next_base.is_none();
            if is_last && s.size() == 0 {
                break;
            }
            let by_start = next_base.is_some_and(|nb| nb <= lso);
            // cleanup.policy=compact alone keeps data forever (no time or
            // size retention), as in Kafka.
            let delete_policy = config.compaction.cleanup_policy.delete();
            let by_time = delete_policy
                && config.retention_ms >= 0
                && s.max_timestamp()?
                    .is_some_and(|m| now.saturating_sub(m.timestamp.0) > config.retention_ms);
            let by_size = delete_policy
                && config.retention_bytes >= 0
                && total - s.size() as i64 >= config.retention_bytes;
            if !(by_start || by_time || by_size) {
                break;
            }
            total -= s.size() as i64;
            doomed.push(s.base_offset().0);
        }
        if doomed.len() == segs.len() {
            // Written after the state lock (below) would be better; rolls
            // for retention are rare, and this keeps the deletion atomic.
            let pending = match self.roll_locked(&mut st, &config, now) {
                Ok(p) => p,
                // A full disk has no room for the new segment: delete the
                // others now (freeing space), the active one next time.
                Err(e) if e.is_no_space() => {
                    tracing::warn!(log = %self.tp, error = %e, "disk full: retention keeps the active segment until a new one fits");
                    doomed.pop();
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(p) = pending {
                if let Err(e) = write_snapshot_bytes(&*self.env.fs, &self.dir, p.offset, &p.bytes) {
                    tracing::warn!(log = %self.tp, error = %e, "cannot write producer state snapshot");
                }
            }
        }
        let n = self.delete_segments_locked(&mut st, &doomed)?;
        if n > 0 {
            tracing::info!(log = %self.tp, deleted = n, log_start = st.log_start_offset.0, "deleted segments by retention");
        }
        Ok(n)
    }

    /// Removes every batch with an offset `>= offset` (a batch straddling it
    /// goes whole) and the leader-epoch entries starting at or after it.
    /// Truncating below the first segment empties the log and restarts it at
    /// `offset` (as [`Log::truncate_fully_and_start_at`]).
    pub fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        self.truncate(offset, false)
    }

    /// A follower whose fetch offset is out of the leader's range: every
    /// segment goes, the log restarts empty at `offset` (log start = log
    /// end = recovery point = `offset`), with no producer state and an
    /// empty leader-epoch cache (Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), StorageError> {
        if offset.0 < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                log_end: self.log_end_offset(),
            });
        }
        self.truncate(offset, true)
    }

    /// Makes `seg`, which a truncation will make the log's last segment,
    /// writable again. On a failure (a full disk cannot take its index)
    /// it stays inactive and the log is unchanged.
    fn reactivate(seg: &Arc<LogSegment>) -> Result<(), StorageError> {
        if seg.is_active() {
            return Ok(());
        }
        seg.make_active().inspect_err(|_| {
            // Back among the cached inactive segments (best effort: its
            // files are as they were).
            let _ = seg.make_inactive();
        })
    }

    fn truncate(&self, offset: Offset, fully: bool) -> Result<(), StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let _snapshots = self.snapshot_lock.lock();
        let _flush = self.flush_lock.lock();
        let mut st = self.state.write();
        if !fully && offset >= st.log_end_offset {
            // Nothing to remove, but the epoch cache may still end with an
            // entry at the log end: this broker led an epoch and lost the
            // leadership before appending in it. A follower keeping that
            // entry sends it as LastFetchedEpoch, the leader (which never
            // saw the epoch) answers DivergingEpoch at this same offset
            // forever, and the replica never fetches on or rejoins the ISR.
            // Kafka's `UnifiedLog.truncateTo` drops it the same way.
            let le = st.log_end_offset;
            if st.epochs.truncate_from_end(le) {
                self.persist_epochs(&st.epochs)?;
            }
            return Ok(());
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let first_base = Offset(*st.segments.keys().next().expect("non-empty"));
        let fully = fully || offset <= first_base || offset < st.log_start_offset;
        // What may fail for lack of space (a new segment, an index made
        // writable again) comes first, so that a full disk leaves the log
        // as it was and the truncation can be tried again (found by the
        // cluster simulation: a follower's truncation on a full disk left
        // a log without segments). Only then do segments go.
        let active = if fully {
            // The new segment's base (a negative offset starts it at 0).
            let base = offset.max(Offset::ZERO);
            match st.segments.get(&base.0).cloned() {
                // The new start is a segment's base: that segment, emptied,
                // is the new log (no file of the same name to create).
                Some(seg) => {
                    Self::reactivate(&seg)?;
                    seg
                }
                None => LogSegment::create(
                    self.env.fs.clone(),
                    &self.dir,
                    base,
                    seg_config(&config),
                    self.env.cache.clone(),
                    now,
                )?,
            }
        } else {
            let (_, seg) = st
                .segments
                .range(..offset.0)
                .next_back()
                .expect("a segment below an offset above the first base");
            let seg = seg.clone();
            Self::reactivate(&seg)?;
            seg
        };
        let doomed: Vec<i64> = st
            .segments
            .keys()
            .copied()
            .filter(|&b| b != active.base_offset().0 && (fully || b >= offset.0))
            .collect();
        for b in &doomed {
            let Some(s) = st.segments.remove(b) else {
                continue;
            };
            match s.rename_to_deleted() {
                Ok(paths) => self.env.deleter.schedule(
                    paths,
                    now.saturating_add(config.file_delete_delay_ms),
                    now,
                ),
                Err(e) => {
                    self.offline(&e);
                    return Err(e);
                }
            }
        }
        if let Err(e) = active.truncate_to(offset) {
            self.offline(&e);
            return Err(e);
        }
        st.segments.insert(active.base_offset().0, active.clone());
        st.log_end_offset = active.next_offset();
        if fully {
            st.log_start_offset = offset;
            debug_assert_eq!(st.log_end_offset, offset.max(Offset::ZERO));
        } else if st.log_start_offset > st.log_end_offset {
            st.log_start_offset = st.log_end_offset;
        }
        assert_eq!(
            st.segments.keys().next_back(),
            Some(&active.base_offset().0),
            "the truncated log ends with its active segment"
        );
        // Truncation is made durable at once: a crash must not resurrect
        // the removed batches (they would pass recovery's CRC checks).
        let durable = st.active().flush().and_then(|_| {
            self.env
                .fs
                .sync_dir(&self.dir)
                .ctx("fsync directory", &self.dir)
        });
        if let Err(e) = durable {
            self.offline(&e);
            return Err(e);
        }
        self.log_end.store(st.log_end_offset.0, Ordering::Release);
        self.log_start
            .store(st.log_start_offset.0, Ordering::Release);
        // Leader epochs: entries past the new end describe batches that are
        // gone (a crash before this write is repaired on load, which drops
        // entries past the log end).
        let le = st.log_end_offset;
        let epochs_changed = if fully {
            st.epochs.clear()
        } else {
            st.epochs.truncate_from_end(le)
        };
        if epochs_changed {
            self.persist_epochs(&st.epochs)?;
        }
        // Producer state: snapshots above the truncation point describe
        // batches that are gone (after a full truncation, all of them);
        // rebuild from what remains.
        let ls = st.log_start_offset;
        let keep_below = if fully { Offset(i64::MIN) } else { le };
        let rebuilt = remove_snapshots_after(&*self.env.fs, &self.dir, keep_below).and_then(|_| {
            load_producer_state(
                &*self.env.fs,
                &self.dir,
                &st.segments,
                ls,
                le,
                now,
                &self.env.producer_state_config(),
                None,
            )
        });
        match rebuilt {
            Ok(p) => {
                st.producers = p;
                self.publish_txn_state(&st.producers);
            }
            Err(e) => {
                self.offline(&e);
                return Err(e);
            }
        }
        let leo = st.log_end_offset.0;
        if fully {
            // Everything below the new start is gone, and the rest is empty.
            self.recovery_point.store(leo, Ordering::Release);
        } else {
            self.recovery_point.fetch_min(leo, Ordering::AcqRel);
        }
        if let Err(e) = self
            .env
            .dir_state
            .lower_recovery_point(&self.tp, Offset(leo))
        {
            self.offline(&e);
            return Err(e);
        }
        tracing::info!(log = %self.tp, log_end = leo, fully, "truncated log");
        Ok(())
    }
}
