//! Loading a log from its directory (Kafka's `LogLoader`): leftovers of
//! interrupted operations removed, segments recovered above the recovery
//! point, producer state rebuilt from its snapshot and the batches after it,
//! and with it the aborted-transaction index of every recovered segment
//! (and of any whose index does not read back).

use super::*;

impl Log {
    /// Loads the log in `dir` (creating it if needed), recovering it when the
    /// last shutdown was not clean.
    pub fn open(
        dir: PathBuf,
        tp: TopicPartition,
        config: LogConfig,
        env: LogEnv,
        opts: LoadOptions,
    ) -> Result<Arc<Log>, StorageError> {
        env.dir_state.check()?;
        let fs = env.fs.clone();
        let now = env.clock.now_ms();
        let scfg = seg_config(&config);
        create_partition_dir(&*fs, &dir)?;
        // An interrupted log cleaner swap is completed first (cleaner::swap).
        crate::cleaner::swap::complete_swaps(&*fs, &dir)?;
        let bases = remove_leftovers(&*fs, &dir)?;
        let mut segments = BTreeMap::new();
        for (i, base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            let seg =
                LogSegment::load(fs.clone(), &dir, *base, scfg, env.cache.clone(), next, now)?;
            segments.insert(base.0, seg);
        }

        let gaps = offset_gaps(&*fs, &dir, &tp, &config);
        let recovery = if !segments.is_empty() && !opts.had_clean_shutdown {
            let rp = opts.recovery_point.unwrap_or(Offset::ZERO);
            recover_after_crash(&dir, &tp, &env, &mut segments, rp, gaps)?
        } else {
            check_active_segment(&tp, &segments, gaps)?
        };

        if segments.is_empty() {
            let base = opts
                .log_start_offset
                .unwrap_or(Offset::ZERO)
                .max(Offset::ZERO);
            let seg = LogSegment::create(fs.clone(), &dir, base, scfg, env.cache.clone(), now)?;
            segments.insert(base.0, seg);
            fs.sync_dir(&dir).ctx("fsync directory", &dir)?;
        } else {
            let last = segments.values().next_back().expect("non-empty").clone();
            // The last segment becomes active: indexes mapped at full size.
            last.make_active()?;
            last.load_tail_state()?;
        }
        let last = segments.values().next_back().expect("non-empty").clone();
        let first_base = Offset(*segments.keys().next().expect("non-empty"));
        let log_end = last.next_offset();
        let log_start = opts
            .log_start_offset
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        // Recovery may have cut below the checkpointed recovery point (a
        // corrupt batch it covered): a later crash must not trust the
        // offsets rewritten from there.
        env.dir_state.lower_recovery_point(&tp, log_end)?;
        let recovery_point = if opts.had_clean_shutdown || recovery.recovered_any {
            log_end
        } else {
            opts.recovery_point.unwrap_or(Offset::ZERO).min(log_end)
        };
        let rebuild_txn_from = check_txn_indexes(&tp, &segments, recovery.rebuild_txn_from)?;
        let producers = load_producer_state(
            &*fs,
            &dir,
            &segments,
            log_start,
            log_end,
            now,
            &env.producer_state_config(),
            rebuild_txn_from,
        )?;
        let epochs = load_epoch_cache(&*fs, &dir, &segments, log_start, log_end)?;
        tracing::debug!(log = %tp, log_start = log_start.0, log_end = log_end.0, producers = producers.len(), epochs = epochs.entries().len(), "log loaded");
        let first_unstable = producers.first_unstable_offset().map_or(i64::MAX, |o| o.0);
        let unreplicated_min = producers
            .min_unreplicated_marker()
            .map_or(i64::MAX, |o| o.0);
        Ok(Arc::new(Log {
            tp,
            dir,
            config: RwLock::new(Arc::new(config)),
            state: RwLock::new(LogState {
                segments,
                log_start_offset: log_start,
                log_end_offset: log_end,
                producers,
                epochs,
            }),
            flush_lock: Mutex::new(()),
            snapshot_lock: Mutex::new(()),
            truncations: std::sync::atomic::AtomicU64::new(0),
            recovery_point: AtomicI64::new(recovery_point.0),
            log_end: AtomicI64::new(log_end.0),
            log_start: AtomicI64::new(log_start.0),
            last_flush_ms: AtomicI64::new(now),
            dir_dirty: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            first_unstable: AtomicI64::new(first_unstable),
            unreplicated_min: AtomicI64::new(unreplicated_min),
            env,
        }))
    }
}

/// What recovery did: whether it recovered any segment, and the first
/// segment whose aborted-transaction index must be rebuilt.
#[derive(Default)]
struct Recovery {
    recovered_any: bool,
    rebuild_txn_from: Option<Offset>,
}

/// Creates the partition's directory if needed, durably (the parent
/// directory is synced when the entry is new).
fn create_partition_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    let created = !fs.exists(dir);
    fs.create_dir_all(dir)
        .ctx("create partition directory", dir)?;
    if created {
        if let Some(parent) = dir.parent() {
            fs.sync_dir(parent).ctx("fsync directory", parent)?;
        }
    }
    Ok(())
}

/// Removes the leftovers of interrupted operations (deleted segments, temp,
/// swap and cleaned files, indexes without their log) and returns the base
/// offsets of the segments found, in order.
fn remove_leftovers(fs: &dyn Fs, dir: &Path) -> Result<Vec<Offset>, StorageError> {
    let entries = fs.read_dir(dir).ctx("list partition directory", dir)?;
    let mut bases = Vec::new();
    for p in &entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(DELETED_FILE_SUFFIX)
            || name.ends_with(".tmp")
            || name.ends_with(".swap")
            || name.ends_with(".cleaned")
        {
            fs.remove_file(p).ctx("remove leftover file", p)?;
        } else if let Some(base) = parse_log_file_name(name) {
            bases.push(base);
        }
    }
    for p in &entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for suffix in [
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            TXN_INDEX_FILE_SUFFIX,
        ] {
            if let Some(stem) = name.strip_suffix(suffix) {
                let log = dir.join(format!("{stem}{LOG_FILE_SUFFIX}"));
                if !fs.exists(&log) {
                    fs.remove_file(p).ctx("remove orphan index", p)?;
                }
            }
        }
    }
    bases.sort();
    Ok(bases)
}

/// After an unclean shutdown: recovers every segment from the one holding
/// the recovery point on, stopping at the first torn or corrupt tail, and
/// deletes the segments after it (they would hold data past a hole).
fn recover_after_crash(
    dir: &Path,
    tp: &TopicPartition,
    env: &LogEnv,
    segments: &mut BTreeMap<i64, Arc<LogSegment>>,
    rp: Offset,
    gaps: Gaps,
) -> Result<Recovery, StorageError> {
    let start_base = segments
        .range(..=rp.0)
        .next_back()
        .map(|(b, _)| *b)
        .unwrap_or(i64::MIN);
    let to_recover: Vec<Arc<LogSegment>> = segments
        .range(start_base..)
        .map(|(_, s)| s.clone())
        .collect();
    let total = to_recover.len();
    let mut recovery = Recovery {
        recovered_any: false,
        rebuild_txn_from: to_recover.first().map(|s| s.base_offset()),
    };
    let last_base = segments.keys().next_back().copied();
    tracing::info!(log = %tp, segments = total, recovery_point = rp.0, "recovering log after unclean shutdown");
    let mut cut_after: Option<i64> = None;
    for (i, seg) in to_recover.iter().enumerate() {
        let is_last = Some(seg.base_offset().0) == last_base;
        let next_base = to_recover.get(i + 1).map(|s| s.base_offset());
        let rules = OffsetRules {
            gaps,
            next_segment_base: next_base,
        };
        let r = seg.recover(!is_last, &rules)?;
        seg.flush()?;
        recovery.recovered_any = true;
        if env.recovery_progress_every > 0 && (i + 1) % env.recovery_progress_every == 0 {
            tracing::info!(log = %tp, done = i + 1, total, "recovery progress");
        }
        // Segments are created at the log end offset, so a segment that
        // now ends before the next one starts lost its tail: the later
        // segments hold data past a hole and must go too.
        let hole = next_base.is_some_and(|nb| r.next_offset != nb);
        if r.truncated_bytes > 0 || hole {
            tracing::warn!(log = %tp, segment = seg.base_offset().0, truncated = r.truncated_bytes, next_offset = r.next_offset.0, "truncated torn or corrupt tail");
            if !is_last {
                cut_after = Some(seg.base_offset().0);
            }
            break;
        }
    }
    if let Some(cut) = cut_after {
        let fs = &env.fs;
        let doomed: Vec<i64> = segments.range(cut + 1..).map(|(b, _)| *b).collect();
        for b in doomed {
            let seg = segments.remove(&b).expect("listed");
            tracing::warn!(log = %tp, segment = b, "deleting segment after the truncation point");
            for p in seg.rename_to_deleted()? {
                fs.remove_file(&p).ctx("remove segment", &p)?;
            }
        }
        // The removals must be durable before the recovered log is used:
        // otherwise a second crash resurrects them.
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
    }
    Ok(recovery)
}

/// After a clean shutdown Kafka trusts every segment. The active one is
/// validated anyway, as after a crash: it is small, its pages are usually
/// cached, and damage to it would otherwise be served as it is (fetches are
/// zero-copy: nothing checks a CRC on the way out).
fn check_active_segment(
    tp: &TopicPartition,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    gaps: Gaps,
) -> Result<Recovery, StorageError> {
    let mut recovery = Recovery::default();
    let Some(last) = segments.values().next_back() else {
        return Ok(recovery);
    };
    let rules = OffsetRules {
        gaps,
        next_segment_base: None,
    };
    let r = last.recover(false, &rules)?;
    if r.truncated_bytes > 0 {
        recovery.rebuild_txn_from = Some(last.base_offset());
        last.flush()?;
        tracing::warn!(log = %tp, segment = last.base_offset().0, truncated = r.truncated_bytes, next_offset = r.next_offset.0, "truncated a corrupt active segment after a clean shutdown");
    }
    Ok(recovery)
}

/// The first segment whose aborted-transaction index must be rebuilt:
/// `rebuild_from`, or an earlier one whose index does not read back.
fn check_txn_indexes(
    tp: &TopicPartition,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    mut rebuild_from: Option<Offset>,
) -> Result<Option<Offset>, StorageError> {
    for seg in segments.values() {
        if seg.txn_index().is_empty() {
            continue;
        }
        match seg.txn_index().validate() {
            Ok(()) => {}
            Err(e @ StorageError::CorruptTxnIndex { .. }) => {
                tracing::warn!(log = %tp, segment = seg.base_offset().0, error = %e, "transaction index does not read back; rebuilding it");
                let b = seg.base_offset();
                rebuild_from = Some(rebuild_from.map_or(b, |r| r.min(b)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(rebuild_from)
}

/// Which offset rule recovery holds `tp`'s segments to (see
/// [`crate::recovery`]): contiguous batches unless the log is compacted now
/// or was cleaned before (it has an entry in its log dir's
/// `cleaner-offset-checkpoint`: a topic switched from `compact` to
/// `delete` keeps its gaps). A checkpoint file that cannot be read or
/// holds nothing (`checkpoint::read` ignores a malformed one) counts as
/// cleaned: the weaker rule never truncates valid data.
pub(super) fn offset_gaps(
    fs: &dyn Fs,
    dir: &Path,
    tp: &TopicPartition,
    config: &LogConfig,
) -> Gaps {
    if config.compaction.cleanup_policy.compact() {
        return Gaps::Possible;
    }
    let Some(log_dir) = dir.parent() else {
        return Gaps::Possible;
    };
    if !fs.exists(&log_dir.join(CLEANER_OFFSET_CHECKPOINT)) {
        return Gaps::Impossible;
    }
    match checkpoint::read(fs, log_dir, CLEANER_OFFSET_CHECKPOINT) {
        Ok(cp) if !cp.is_empty() && !cp.contains_key(tp) => Gaps::Impossible,
        Ok(_) => Gaps::Possible,
        Err(e) => {
            tracing::warn!(log = %tp, error = %e, "cannot read the cleaner checkpoint; recovery allows offset gaps");
            Gaps::Possible
        }
    }
}

/// The leader-epoch cache of a loaded log: its checkpoint file, or, when
/// that is missing or corrupt, rebuilt from the batch headers of every
/// segment (each batch with a newer epoch than the last starts an entry, as
/// Kafka's recovery assigns them); then entries past the log end (written
/// before data that a crash lost) are dropped and the one covering the log
/// start is moved up to it. The file is rewritten when any of this changed
/// it (a missing file of a log without data stays missing).
pub(super) fn load_epoch_cache(
    fs: &dyn Fs,
    dir: &Path,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    log_start: Offset,
    log_end: Offset,
) -> Result<LeaderEpochCache, StorageError> {
    use crate::epoch_cache::Loaded;
    let has_data = segments.values().any(|s| s.size() > 0);
    let (mut cache, mut dirty) = match LeaderEpochCache::load(fs, dir)? {
        Loaded::Ok(c) => (c, false),
        Loaded::Missing(c) if !has_data => (c, false),
        Loaded::Missing(mut c) | Loaded::Corrupt(mut c) => {
            for seg in segments.values() {
                seg.for_each_header_from(seg.base_offset(), |h| {
                    let epoch = h.partition_leader_epoch;
                    if h.base_offset < log_end && c.latest_epoch().is_none_or(|l| epoch > l) {
                        c.assign(epoch, h.base_offset);
                    }
                })?;
            }
            tracing::info!(dir = %dir.display(), entries = c.entries().len(), "rebuilt the leader epoch cache from the log");
            (c, true)
        }
    };
    dirty |= cache.truncate_from_end(log_end);
    dirty |= cover_log_start(&mut cache, segments, log_start, log_end)?;
    dirty |= cache.truncate_from_start(log_start);
    if dirty {
        cache.persist(fs)?;
    }
    Ok(cache)
}

/// A crash can leave the log start offset checkpoint older than the epoch
/// cache (DeleteRecords moved the first entry up, or a truncation below the
/// new start emptied the cache, before the start offset was checkpointed):
/// the batches from the log start to the first entry (or to the log end)
/// then have no epoch. Their headers are read (only that range) and the
/// entries they start are put in front. Returns whether anything changed.
/// (Batches without an epoch, -1, which Sluice does not write, are read
/// again at every load.)
fn cover_log_start(
    cache: &mut LeaderEpochCache,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    log_start: Offset,
    log_end: Offset,
) -> Result<bool, StorageError> {
    let first_start = cache.earliest().map_or(log_end, |(_, s)| s);
    if first_start <= log_start {
        return Ok(false);
    }
    let mut head = LeaderEpochCache::new(PathBuf::new());
    let from = segments
        .range(..=log_start.0)
        .next_back()
        .map(|(b, _)| *b)
        .unwrap_or(i64::MIN);
    'scan: for seg in segments.range(from..).map(|(_, s)| s) {
        if seg.base_offset() >= first_start {
            break;
        }
        let mut done = false;
        seg.for_each_header_from(log_start, |h| {
            if done || h.base_offset >= first_start {
                done = true;
                return;
            }
            let epoch = h.partition_leader_epoch;
            if head.latest_epoch().is_none_or(|l| epoch > l) {
                head.assign(epoch, h.base_offset.max(log_start));
            }
        })?;
        if done {
            break 'scan;
        }
    }
    if head.is_empty() {
        return Ok(false);
    }
    for (epoch, start) in cache.entries().to_vec() {
        if head.latest_epoch() != Some(epoch) {
            head.assign(epoch, start);
        }
    }
    let changed = head.entries() != cache.entries();
    let dir = cache.clone();
    *cache = dir.with_entries(head.entries());
    Ok(changed)
}

/// Producer state for a loaded log: the newest usable snapshot at or below
/// the log end, plus a replay of the batches after it (headers, and the
/// record of each marker); snapshots above the log end (the log lost its
/// tail) and unreadable ones are deleted. Producers whose data is all below
/// the log start, or idle longer than `producer.id.expiration.ms` without a
/// transaction open, are dropped.
///
/// With `rebuild_txn_from`, the transaction indexes of the segments from
/// that base on are rebuilt by the replay (Kafka's recovery of a segment
/// replays its markers): the snapshot is then taken at or below it, so the
/// transactions open there are known, and the rebuilt indexes are fsynced.
#[allow(clippy::too_many_arguments)]
pub(super) fn load_producer_state(
    fs: &dyn Fs,
    dir: &Path,
    segments: &BTreeMap<i64, Arc<LogSegment>>,
    log_start: Offset,
    log_end: Offset,
    now: i64,
    config: &ProducerStateConfig,
    rebuild_txn_from: Option<Offset>,
) -> Result<ProducerStateManager, StorageError> {
    let first_base = Offset(segments.keys().next().copied().unwrap_or(log_start.0));
    let limit = rebuild_txn_from.map_or(log_end, |b| b.min(log_end));
    let mut state = None;
    for (off, path) in list_snapshots(fs, dir)?.into_iter().rev() {
        if off <= log_end && off >= first_base {
            if off > limit {
                // Usable, but after the indexes to rebuild: kept.
                continue;
            }
            if let Some(s) = read_snapshot(fs, &path)? {
                if s.map_end_offset() == off {
                    state = Some(s);
                    break;
                }
            }
        }
        tracing::warn!(snapshot = %path.display(), log_end = log_end.0, "removing unusable producer state snapshot");
        fs.remove_file(&path)
            .ctx("remove producer snapshot", &path)?;
    }
    let mut state = state.unwrap_or_else(|| ProducerStateManager::new(first_base));
    let from = state.map_end_offset().max(first_base);
    let rebuilt: Vec<&Arc<LogSegment>> = match rebuild_txn_from {
        Some(b) => segments.range(b.0..).map(|(_, s)| s).collect(),
        None => Vec::new(),
    };
    for seg in &rebuilt {
        seg.txn_index().reset()?;
    }
    let mut created = false;
    for seg in segments.values() {
        if seg.next_offset() <= from {
            continue;
        }
        let rebuild = rebuild_txn_from.is_some_and(|b| seg.base_offset() >= b);
        let mut aborted = Vec::new();
        seg.for_each_producer_batch_from(from, |b| {
            if b.header.last_offset() >= log_end {
                return;
            }
            if let Some((c, lso)) = state.replay(&b) {
                if rebuild && c.is_aborted {
                    aborted.push(crate::txn_index::AbortedTxn {
                        producer_id: c.producer_id,
                        first_offset: c.first_offset,
                        last_offset: c.last_offset,
                        last_stable_offset: lso,
                    });
                }
            }
        })?;
        created |= seg.txn_index().append(&aborted)?;
    }
    for seg in &rebuilt {
        seg.txn_index().sync()?;
    }
    if created {
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
    }
    if !rebuilt.is_empty() {
        tracing::debug!(dir = %dir.display(), segments = rebuilt.len(), from = from.0, "rebuilt transaction indexes");
    }
    state.set_map_end_offset(log_end);
    state.truncate_head(log_start);
    state.remove_expired(now, config.producer_id_expiration_ms);
    Ok(state)
}
