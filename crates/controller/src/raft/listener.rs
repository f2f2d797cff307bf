//! The pull-based listener of the Raft metadata log.
//!
//! A listener is a cursor: the next Raft index to read, the next record
//! offset and the last term it reported. It reads committed entries
//! (index ≤ last applied) from the in-memory log, and takes the latest
//! snapshot instead when its position is at or below the snapshot floor or
//! the entry was purged. Nothing is queued for it: a slow listener only
//! falls behind, and at worst gets a snapshot.
//!
//! Invariants: events come in log order; a `LeaderChange` precedes the
//! first batch of each new epoch (announced by the leader's first entry of
//! the epoch, normally the empty batch it commits on election); offsets are
//! those the state machine assigned (the same running count).

use std::sync::Arc;

use openraft::EntryPayload;
use parking_lot::RwLock;
use sluice_record::{LeaderEpoch, Offset};
use tokio::sync::watch;

use super::log_store::LogEntries;
use super::state_machine::{decode_records, SmShared};
use crate::{BoxFuture, CommittedBatch, LeaderAndEpoch, LogError, LogEvent, LogListener};

pub struct RaftListener {
    log: Arc<RwLock<LogEntries>>,
    sm: Arc<SmShared>,
    changed: watch::Receiver<u64>,
    /// The next Raft index to read.
    pos: u64,
    next_offset: i64,
    /// The last term reported in a `LeaderChange` (0: none yet).
    term: u64,
    pending: Option<LogEvent>,
}

impl RaftListener {
    pub(crate) fn new(log: Arc<RwLock<LogEntries>>, sm: Arc<SmShared>) -> Self {
        let changed = sm.changed.subscribe();
        RaftListener {
            log,
            sm,
            changed,
            pos: 0,
            next_offset: 0,
            term: 0,
            pending: None,
        }
    }

    /// The next event if one is ready.
    fn poll_event(&mut self) -> Result<Option<LogEvent>, LogError> {
        if let Some(ev) = self.pending.take() {
            return Ok(Some(ev));
        }
        if let Some(why) = self.sm.fatal.get() {
            return Err(LogError::Fatal(why));
        }
        let (applied, floor, snapshot) = {
            let g = self.sm.state.lock();
            if g.shutdown {
                return Err(LogError::Shutdown);
            }
            (g.last_applied.map(|l| l.index), g.floor, g.snapshot.clone())
        };
        let Some(applied) = applied.filter(|&a| a >= self.pos) else {
            return Ok(None);
        };
        let entry = if floor.is_some_and(|f| self.pos <= f) {
            None
        } else {
            self.log.read().get(self.pos).cloned()
        };
        let Some(entry) = entry else {
            // The snapshot read above may predate the one whose purge took
            // the entry (a snapshot is stored before the log behind it is
            // purged): read it again.
            let snapshot = snapshot
                .filter(|s| s.index().is_some_and(|i| i >= self.pos))
                .or_else(|| self.sm.state.lock().snapshot.clone());
            let Some(snap) = snapshot.filter(|s| s.index().is_some_and(|i| i >= self.pos)) else {
                return Err(LogError::Fatal(format!(
                    "committed metadata log entry {} (applied up to {applied}) is missing",
                    self.pos
                )));
            };
            self.pos = snap.index().unwrap_or(0) + 1;
            self.next_offset = snap.next_offset;
            self.term = self.term.max(snap.term());
            return Ok(Some(LogEvent::Snapshot(snap.image.clone())));
        };
        self.pos += 1;
        let term = entry.log_id.leader_id.term;
        let EntryPayload::Normal(b) = &entry.payload else {
            return Ok(None); // blank and membership entries: nothing to report
        };
        if b.epoch as u64 != term {
            return Ok(None); // appended in another epoch than named: ignored
        }
        let change = (term > self.term).then(|| {
            self.term = term;
            LogEvent::LeaderChange(LeaderAndEpoch {
                leader: Some(sluice_metadata::BrokerId(b.leader)),
                epoch: LeaderEpoch(b.epoch),
            })
        });
        let batch = if b.records.is_empty() {
            None
        } else {
            let records = decode_records(&b.records).map_err(LogError::Fatal)?;
            let batch = CommittedBatch {
                base_offset: Offset(self.next_offset),
                epoch: LeaderEpoch(b.epoch),
                append_time_ms: b.append_time_ms,
                records,
            };
            self.next_offset += batch.records.len() as i64;
            Some(LogEvent::Batch(batch))
        };
        Ok(match (change, batch) {
            (Some(c), b) => {
                self.pending = b;
                Some(c)
            }
            (None, b) => b,
        })
    }
}

impl LogListener for RaftListener {
    fn next(&mut self) -> BoxFuture<'_, Result<LogEvent, LogError>> {
        Box::pin(async move {
            loop {
                let fatal = self.sm.fatal.clone();
                let halted = fatal.wait();
                tokio::pin!(halted);
                halted.as_mut().enable();
                self.changed.borrow_and_update();
                let before = self.pos;
                if let Some(ev) = self.poll_event()? {
                    return Ok(ev);
                }
                // An entry with nothing to report was consumed: read on.
                if self.pos != before {
                    continue;
                }
                tokio::select! {
                    r = self.changed.changed() => if r.is_err() {
                        return Err(LogError::Shutdown);
                    },
                    _ = &mut halted => {}
                }
            }
        })
    }
}
