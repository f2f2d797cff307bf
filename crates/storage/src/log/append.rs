//! Appends as leader: validation, offset and leader-epoch stamping (in
//! place, or as patched heads over shared bytes), the leader-epoch cache
//! entry of a new epoch, the one write, segment rolls and the producer
//! snapshot a roll takes.

use super::*;

impl Log {
    /// Validates every batch of `records`, then assigns offsets (rewriting
    /// base offsets and leader epochs in place; LogAppendTime topics also get
    /// their max timestamp stamped and CRC recomputed) and appends them with
    /// one positional write. Nothing of a rejected call is written. A
    /// client's append ([`AppendOrigin::Client`]): see
    /// [`Log::append_as_leader_from`].
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, StorageError> {
        self.append_as_leader_from(
            records,
            leader_epoch,
            AppendOrigin::Client,
            Verification::NotRequired,
        )
    }

    /// [`Log::append_as_leader`] for an append of `origin`, which decides
    /// the producer checks (`producer_state::txn`): a client's batches get
    /// the sequence rules and may not be control batches; a coordinator's
    /// (TxnOffsetCommit batches carry base sequence -1) only the epoch rule.
    /// `verification` is KIP-890 part 1's, for both: a transactional batch
    /// that would start a transaction needs the guard of
    /// [`Log::maybe_start_transaction_verification`] when it is required.
    pub fn append_as_leader_from(
        &self,
        records: &mut [u8],
        leader_epoch: LeaderEpoch,
        origin: AppendOrigin,
        verification: Verification,
    ) -> Result<AppendInfo, StorageError> {
        let source = Source {
            origin,
            transaction_version: None,
            verification,
        };
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let headers = validate_batches(records, &config, now, &self.env.decompression)?;
        if let Some((mut converted, headers, _held)) =
            self.convert(records, &headers, &config, now)?
        {
            return self.append_validated(
                Payload::InPlace(&mut converted),
                headers,
                &config,
                now,
                leader_epoch,
                source,
            );
        }
        self.append_validated(
            Payload::InPlace(records),
            headers,
            &config,
            now,
            leader_epoch,
            source,
        )
    }

    /// [`Log::append_as_leader`] without touching `records`: the bytes are
    /// written from the caller's buffer, and only the first 16 bytes of each
    /// batch (base offset and leader epoch, outside the CRC) come from
    /// patched copies, in one vectored write. The produce path uses it to
    /// skip copying every request into a scratch buffer. LogAppendTime
    /// topics and batches the topic's compression.type converts are copied
    /// (they are rewritten under the CRC).
    pub fn append_as_leader_shared(
        &self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, StorageError> {
        self.append_as_leader_shared_verified(records, leader_epoch, Verification::NotRequired)
    }

    /// [`Log::append_as_leader_shared`] for a Produce request that brings
    /// a transaction `verification` (KIP-890 part 1): a client's
    /// transactional batch that would start a transaction needs the guard
    /// of [`Log::maybe_start_transaction_verification`].
    pub fn append_as_leader_shared_verified(
        &self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
        verification: Verification,
    ) -> Result<AppendInfo, StorageError> {
        let source = Source {
            verification,
            ..Source::CLIENT
        };
        self.check()?;
        let config = self.config.read().clone();
        let now = self.env.clock.now_ms();
        let headers = validate_batches(records, &config, now, &self.env.decompression)?;
        if let Some((mut converted, headers, _held)) =
            self.convert(records, &headers, &config, now)?
        {
            return self.append_validated(
                Payload::InPlace(&mut converted),
                headers,
                &config,
                now,
                leader_epoch,
                source,
            );
        }
        if config.message_timestamp_type == TimestampType::LogAppendTime {
            let mut owned = records.to_vec();
            return self.append_validated(
                Payload::InPlace(&mut owned),
                headers,
                &config,
                now,
                leader_epoch,
                source,
            );
        }
        let heads = Vec::with_capacity(headers.len());
        self.append_validated(
            Payload::Shared { records, heads },
            headers,
            &config,
            now,
            leader_epoch,
            source,
        )
    }

    /// [`Log::append_as_leader_shared`] for a caller that must not wait:
    /// `Ok(None)` (nothing written) when another thread holds the log's
    /// lock (a roll, a retention deletion, a cleaner swap, another append),
    /// when the batches would need converting first (a `compression.type`
    /// codec or LogAppendTime), when a batch is compressed (checking its
    /// records decompresses it), or when the append would roll the segment
    /// (file creation and a producer snapshot's fsyncs) or start a new
    /// leader epoch (the epoch cache's file is fsynced); the caller then
    /// appends from a thread that may block. The network threads use this for small produce requests.
    pub fn try_append_as_leader_shared(
        &self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.try_append_as_leader_shared_verified(records, leader_epoch, Verification::NotRequired)
    }

    /// [`Log::try_append_as_leader_shared`] with a transaction
    /// `verification` (see [`Log::append_as_leader_shared_verified`]).
    pub fn try_append_as_leader_shared_verified(
        &self,
        records: &[u8],
        leader_epoch: LeaderEpoch,
        verification: Verification,
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        if config.compression.is_some()
            || config.message_timestamp_type == TimestampType::LogAppendTime
        {
            return Ok(None);
        }
        let now = self.env.clock.now_ms();
        let headers = validate_headers(records, &config)?;
        // Compressed records are checked by decompressing them: CPU that
        // may be large, so not on a network thread.
        if headers
            .iter()
            .any(|(_, h)| h.compression() != sluice_record::CompressionType::None)
        {
            return Ok(None);
        }
        check_batches(
            records,
            &headers,
            &config,
            now,
            &self.env.decompression,
            Framing::Check,
        )?;
        let Some(st) = self.state.try_write() else {
            return Ok(None);
        };
        let heads = Vec::with_capacity(headers.len());
        self.append_locked(
            st,
            Payload::Shared { records, heads },
            headers,
            &config,
            now,
            leader_epoch,
            Source {
                verification,
                ..Source::CLIENT
            },
            Roll::Defer,
        )
    }

    /// The batches re-encoded in the topic's `compression.type` where it
    /// asks for it, with their headers (sizes, counts and keys checked
    /// again on what is stored) and the budget their bytes hold until
    /// written; `None` when every batch is stored as received.
    #[allow(clippy::type_complexity)]
    pub(super) fn convert(
        &self,
        records: &[u8],
        headers: &[(usize, BatchHeader)],
        config: &LogConfig,
        now: i64,
    ) -> Result<Option<(Vec<u8>, Vec<(usize, BatchHeader)>, Reservation)>, StorageError> {
        let budget = &self.env.decompression;
        let Some((converted, held)) = recompress_batches(records, headers, config, budget)? else {
            return Ok(None);
        };
        let headers = validate_headers(&converted, config)?;
        check_batches(&converted, &headers, config, now, budget, Framing::Trusted)?;
        Ok(Some((converted, headers, held)))
    }

    /// The part of [`Log::append_as_leader`] after validation: offsets,
    /// producer state, the write.
    pub(super) fn append_validated(
        &self,
        records: Payload<'_>,
        headers: Vec<(usize, BatchHeader)>,
        config: &LogConfig,
        now: i64,
        leader_epoch: LeaderEpoch,
        source: Source,
    ) -> Result<AppendInfo, StorageError> {
        let st = self.state.write();
        let info = self.append_locked(
            st,
            records,
            headers,
            config,
            now,
            leader_epoch,
            source,
            Roll::Allow,
        )?;
        Ok(info.expect("an append that may roll always appends"))
    }

    /// [`Log::append_validated`] with the log's lock already held. With
    /// [`Roll::Defer`] an append that would roll the segment (new files,
    /// index preallocation, a producer snapshot with two fsyncs) writes
    /// nothing and answers `None`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append_locked(
        &self,
        mut st: parking_lot::RwLockWriteGuard<'_, LogState>,
        mut records: Payload<'_>,
        headers: Vec<(usize, BatchHeader)>,
        config: &LogConfig,
        now: i64,
        leader_epoch: LeaderEpoch,
        source: Source,
        roll: Roll,
    ) -> Result<Option<AppendInfo>, StorageError> {
        let log_append = config.message_timestamp_type == TimestampType::LogAppendTime;

        self.check()?;
        let first_offset = st.log_end_offset;
        let mut next = first_offset;
        let mut stamped = headers;
        let mut record_count = 0i64;
        for (pos, h) in stamped.iter_mut() {
            let append_time = log_append.then_some(Timestamp(now));
            records.stamp(*pos, h.size(), next, leader_epoch, append_time);
            h.base_offset = next;
            if log_append {
                h.max_timestamp = Timestamp(now);
            }
            record_count += h.last_offset_delta as i64 + 1;
            next = h.next_offset();
        }
        let last_offset = next.plus(-1);

        // Producer state: every batch is checked (sequences, epochs,
        // transactions, markers) before a byte is written; an exact retry of
        // a client's batch is answered with the original offsets.
        let prepared = if stamped
            .iter()
            .any(|(_, h)| h.has_producer_id() || h.is_control())
        {
            let batches = producer_batches(
                &stamped,
                |pos, size| records.batch(pos, size),
                source.origin,
            )?;
            match st.producers.prepare_append_verified(
                &batches,
                source.origin,
                source.transaction_version,
                source.verification,
            )? {
                Prepared::Duplicate(b) => {
                    let log_start_offset = st.log_start_offset;
                    drop(st);
                    tracing::debug!(log = %self.tp, first_seq = b.first_seq, offset = b.first_offset.0, "duplicate batch not written");
                    return Ok(Some(AppendInfo {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        log_append_time: if log_append {
                            b.timestamp
                        } else {
                            Timestamp::NONE
                        },
                        log_start_offset,
                        record_count: 0,
                        bytes: 0,
                        needs_flush: config.flush_messages <= 1
                            && b.last_offset >= self.recovery_point(),
                        duplicate: true,
                    }));
                }
                Prepared::Append(p) => {
                    let new_producers = p.new_producers();
                    let max = self.env.producer_state.max_producers;
                    if new_producers > 0 && st.producers.len() + new_producers > max {
                        st.producers.remove_expired(
                            now,
                            self.env.producer_state_config().producer_id_expiration_ms,
                        );
                        if st.producers.len() + new_producers > max {
                            return Err(StorageError::TooManyProducers {
                                tp: self.tp.clone(),
                                max,
                            });
                        }
                    }
                    Some(p)
                }
            }
        } else {
            None
        };

        let mut pending_snapshot = None;
        let active = st.active().clone();
        if active.should_roll(
            config.segment_bytes,
            config.segment_ms,
            records.len() as u64,
            last_offset,
            now,
        )? {
            if roll == Roll::Defer {
                return Ok(None);
            }
            pending_snapshot = self.roll_locked(&mut st, config, now)?;
        }
        // A batch of a newer leader epoch starts an entry of the epoch
        // cache, written before the data as in Kafka (a crash in between
        // leaves an entry past the log end, dropped on load).
        let new_epoch =
            leader_epoch.0 >= 0 && st.epochs.latest_epoch().is_none_or(|l| leader_epoch > l);
        let epochs_before = if new_epoch {
            if roll == Roll::Defer {
                return Ok(None); // the file write fsyncs
            }
            let before = st.epochs.clone();
            st.epochs.assign(leader_epoch, first_offset);
            if let Err(e) = self.persist_epochs(&st.epochs) {
                st.epochs = before;
                return Err(e);
            }
            Some(before)
        } else {
            None
        };
        let active = st.active().clone();
        // Aborted transactions go to the index before their markers go to
        // the log (undone if the log write fails; a crash in between leaves
        // an entry past the log end, and recovery rebuilds the index).
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
        let pieces = records.pieces(&stamped);
        if let Err(f) = active.append(&pieces, &stamped, config.index_interval_bytes) {
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
        self.log_end.store(next.0, Ordering::Release);
        let log_start_offset = st.log_start_offset;
        drop(st);
        self.write_pending_snapshot(pending_snapshot);
        let unflushed = next.distance_from(self.recovery_point());
        Ok(Some(AppendInfo {
            first_offset,
            last_offset,
            log_append_time: if log_append {
                Timestamp(now)
            } else {
                Timestamp::NONE
            },
            log_start_offset,
            record_count,
            bytes: records.len(),
            needs_flush: unflushed >= config.flush_messages,
            duplicate: false,
        }))
    }

    pub(super) fn roll_locked(
        &self,
        st: &mut LogState,
        config: &LogConfig,
        now: i64,
    ) -> Result<Option<PendingSnapshot>, StorageError> {
        let base = st.log_end_offset;
        let active = st.active().clone();
        if active.base_offset() == base {
            return Ok(None); // empty active segment: nothing to roll
        }
        // The new segment first: if it cannot be created (a full disk),
        // the active one stays active and the append is refused.
        let seg = LogSegment::create(
            self.env.fs.clone(),
            &self.dir,
            base,
            seg_config(config),
            self.env.cache.clone(),
            now,
        )?;
        active.make_inactive()?;
        st.segments.insert(base.0, seg);
        self.dir_dirty.store(true, Ordering::Release);
        // Kafka takes a producer state snapshot at every roll, so recovery
        // replays at most the active segment. It is encoded here and
        // written (two fsyncs) by the caller after the state lock is
        // released, so appends and reads do not wait for those fsyncs.
        st.producers.set_map_end_offset(base);
        let bytes = encode_snapshot(&st.producers);
        tracing::debug!(log = %self.tp, base = base.0, "rolled new segment");
        Ok(Some(PendingSnapshot {
            offset: base,
            bytes,
            truncations: self.truncations.load(Ordering::Acquire),
        }))
    }

    /// Writes a snapshot taken by a roll, unless a truncation came between.
    /// A missing snapshot only costs a longer replay on load.
    pub(super) fn write_pending_snapshot(&self, pending: Option<PendingSnapshot>) {
        let Some(p) = pending else { return };
        let _g = self.snapshot_lock.lock();
        if self.truncations.load(Ordering::Acquire) != p.truncations {
            return;
        }
        if let Err(e) = write_snapshot_bytes(&*self.env.fs, &self.dir, p.offset, &p.bytes) {
            tracing::warn!(log = %self.tp, error = %e, "cannot write producer state snapshot");
        }
    }

    /// Starts a new segment at the log end offset (no-op if the active
    /// segment is empty).
    pub fn roll(&self) -> Result<(), StorageError> {
        self.check()?;
        let config = self.config.read().clone();
        let mut st = self.state.write();
        let pending = self.roll_locked(&mut st, &config, self.env.clock.now_ms())?;
        drop(st);
        self.write_pending_snapshot(pending);
        Ok(())
    }
}

/// Bytes at the start of a batch that the leader rewrites outside the CRC:
/// base offset (0..8), batch length (8..12), partition leader epoch (12..16).
pub(super) const BATCH_HEAD: usize = 16;

/// The batches of one append and how they are stamped.
pub(super) enum Payload<'a> {
    /// Rewritten in place.
    InPlace(&'a mut [u8]),
    /// Left untouched; `heads` collects each batch's patched first
    /// [`BATCH_HEAD`] bytes, in batch order.
    Shared {
        records: &'a [u8],
        heads: Vec<[u8; BATCH_HEAD]>,
    },
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::InPlace(r) => r.len(),
            Payload::Shared { records, .. } => records.len(),
        }
    }

    /// The bytes of the batch of `size` bytes at `pos` (in the shared case
    /// without its stamped head, which lies outside the CRC).
    fn batch(&self, pos: usize, size: usize) -> &[u8] {
        match self {
            Payload::InPlace(r) => &r[pos..pos + size],
            Payload::Shared { records, .. } => &records[pos..pos + size],
        }
    }

    /// Assigns `base` and `epoch` to the batch of `size` bytes at `pos`
    /// (and, in place only, the LogAppendTime with a new CRC).
    fn stamp(
        &mut self,
        pos: usize,
        size: usize,
        base: Offset,
        epoch: LeaderEpoch,
        append_time: Option<Timestamp>,
    ) {
        match self {
            Payload::InPlace(records) => {
                let batch = &mut records[pos..pos + size];
                set_base_offset(batch, base);
                set_partition_leader_epoch(batch, epoch);
                if let Some(t) = append_time {
                    set_log_append_time(batch, t);
                }
            }
            Payload::Shared { records, heads } => {
                debug_assert!(append_time.is_none(), "LogAppendTime is stamped in place");
                let mut head = [0u8; BATCH_HEAD];
                head.copy_from_slice(&records[pos..pos + BATCH_HEAD]);
                set_base_offset(&mut head, base);
                set_partition_leader_epoch(&mut head, epoch);
                heads.push(head);
            }
        }
    }

    /// The bytes to write, in order, after every batch was stamped.
    fn pieces(&self, stamped: &[(usize, BatchHeader)]) -> Vec<std::io::IoSlice<'_>> {
        match self {
            Payload::InPlace(records) => vec![std::io::IoSlice::new(records)],
            Payload::Shared { records, heads } => {
                let mut out = Vec::with_capacity(2 * heads.len());
                for ((pos, h), head) in stamped.iter().zip(heads) {
                    out.push(std::io::IoSlice::new(head));
                    out.push(std::io::IoSlice::new(
                        &records[pos + BATCH_HEAD..pos + h.size()],
                    ));
                }
                out
            }
        }
    }
}

/// Where an append comes from and, for a coordinator's marker, its
/// transaction version.
#[derive(Clone, Copy, Debug)]
pub(super) struct Source {
    pub(super) origin: AppendOrigin,
    pub(super) transaction_version: Option<i16>,
    pub(super) verification: Verification,
}

impl Source {
    pub(super) const CLIENT: Source = Source {
        origin: AppendOrigin::Client,
        transaction_version: None,
        verification: Verification::NotRequired,
    };
}

/// Whether an append may roll the active segment itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Roll {
    Allow,
    /// Leave a roll to a caller that may block: the append writes nothing.
    Defer,
}

/// A producer snapshot encoded under the state lock at a roll, written
/// after it is released.
pub(super) struct PendingSnapshot {
    pub(super) offset: Offset,
    pub(super) bytes: Vec<u8>,
    /// `Log::truncations` when it was taken.
    pub(super) truncations: u64,
}
