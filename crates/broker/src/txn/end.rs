//! EndTxn on the transaction coordinator (Kafka's `endTransaction`), in
//! both transaction versions:
//!
//! - **Version 1** (EndTxn v0–v4): the producer keeps its epoch across
//!   transactions; a request must carry the current epoch, and a retry of
//!   an end that already completed answers success.
//! - **Version 2** (EndTxn v5, KIP-890 part 2): every commit and abort
//!   bumps the epoch, and the answer carries the producer id and epoch to
//!   go on with, so a late write of the ended transaction is fenced. A
//!   retry is told apart by its epoch: one below the current one after a
//!   bump (`retry_on_epoch_bump`), or the last epoch of the previous
//!   producer id after an exhausted epoch moved the id on
//!   (`retry_on_overflow`). A client that does not know whether its
//!   transaction started (partitions are added by the partition leaders)
//!   may abort an empty one: the epoch is bumped and nothing is marked.
//!
//! Order of checks (KAFKA-18464): a change in flight answers
//! CONCURRENT_TRANSACTIONS before the epoch is judged, so an abort racing
//! the previous end's completion waits instead of being fenced.

use sluice_record::{ProducerEpoch, ProducerId};

use super::coordinator::{check_producer, refused, TransactionCoordinator, END_TXN_WAIT};
use super::metadata::{TransactionMetadata, TransactionVersion, Transition, NO_PRODUCER_ID};
use super::{TransactionState, TxnError};

/// What an EndTxn does once checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EndStep {
    /// Write this PrepareCommit/PrepareAbort, then the markers.
    Write(Transition),
    /// A retry of an end that happened: answer with the current producer.
    Done,
}

impl TransactionCoordinator {
    /// EndTxn: PrepareCommit or PrepareAbort is written, then the markers
    /// and the completion (waited for up to [`END_TXN_WAIT`]). Answers the
    /// producer id and epoch the client goes on with (version 2 bumps the
    /// epoch; version 1 keeps it).
    pub async fn end_txn(
        &self,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        commit: bool,
        version: TransactionVersion,
    ) -> Result<(ProducerId, ProducerEpoch), TxnError> {
        let started = std::time::Instant::now();
        let (p, txn) = self.existing(id)?;
        // A version 2 end at an exhausted epoch moves the producer to a
        // new id; it is allocated before the id's lock is taken.
        let exhausted = txn.lock().is_producer_epoch_exhausted();
        let next_id = if version.supports_epoch_bump() && exhausted {
            self.new_producer_id().await?
        } else {
            NO_PRODUCER_ID
        };
        let step = {
            let mut m = txn.lock();
            end_step(
                &mut m,
                (pid, epoch),
                commit,
                version,
                next_id,
                self.state.now(),
            )?
        };
        let t = match step {
            EndStep::Write(t) => t,
            EndStep::Done => {
                let m = txn.lock();
                return Ok((m.producer_id, m.producer_epoch));
            }
        };
        self.write(&p, id, &txn, &t).await?;
        let prepared = started.elapsed();
        // What the client continues with, fixed at the prepare: the next
        // producer id (epoch 0) when the epoch ran out, else the epoch the
        // prepare bumped to.
        let next = if t.value.next_producer_id != NO_PRODUCER_ID {
            (t.value.next_producer_id, ProducerEpoch(0))
        } else {
            (t.value.producer_id, t.value.producer_epoch)
        };
        if let Some(done) = self.send_markers(&p, &txn) {
            let _ = tokio::time::timeout(END_TXN_WAIT, done).await;
        }
        tracing::debug!(
            target: super::STAGES,
            transactional_id = id,
            commit,
            prepare_us = prepared.as_micros() as u64,
            end_us = started.elapsed().as_micros() as u64,
            "EndTxn answered"
        );
        Ok(next)
    }
}

/// What an end is asked with: the client's transaction version and the
/// producer id that replaces an exhausted epoch (`NO_PRODUCER_ID` if
/// none was needed).
#[derive(Clone, Copy)]
struct Ask {
    commit: bool,
    version: TransactionVersion,
    next_id: ProducerId,
    now_ms: i64,
}

/// Kafka's `endTransaction` checks for a client of `version`.
pub(super) fn end_step(
    m: &mut TransactionMetadata,
    (pid, epoch): (ProducerId, ProducerEpoch),
    commit: bool,
    version: TransactionVersion,
    next_id: ProducerId,
    now_ms: i64,
) -> Result<EndStep, TxnError> {
    if m.pending().is_some() {
        return Err(TxnError::ConcurrentTransactions);
    }
    let ask = Ask {
        commit,
        version,
        next_id,
        now_ms,
    };
    if m.client_version.supports_epoch_bump() {
        end_step_v2(m, pid, epoch, ask)
    } else {
        end_step_v1(m, pid, epoch, ask)
    }
}

/// The id's last transaction was of version 1 (or there was none yet):
/// strict epoch equality.
fn end_step_v1(
    m: &mut TransactionMetadata,
    pid: ProducerId,
    epoch: ProducerEpoch,
    ask: Ask,
) -> Result<EndStep, TxnError> {
    use TransactionState::*;
    check_producer(m, pid, epoch)?;
    match (m.state, ask.commit) {
        (Ongoing, _) => prepare(m, ask, false),
        (CompleteCommit, true) | (CompleteAbort, false) if !ask.version.supports_epoch_bump() => {
            Ok(EndStep::Done)
        }
        // A version 2 client aborting a transaction it never started.
        (Empty | CompleteCommit | CompleteAbort, false) if ask.version.supports_epoch_bump() => {
            prepare(m, ask, true)
        }
        (PrepareCommit, true) | (PrepareAbort, false) => Err(TxnError::ConcurrentTransactions),
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The id's last transaction was of version 2: every end bumped the
/// epoch, so a retry carries the epoch before the bump.
fn end_step_v2(
    m: &mut TransactionMetadata,
    pid: ProducerId,
    epoch: ProducerEpoch,
    ask: Ask,
) -> Result<EndStep, TxnError> {
    use TransactionState::*;
    let retry_on_overflow = m.previous_producer_id == pid
        && epoch.0 == i16::MAX - 1
        && m.producer_epoch == ProducerEpoch(0);
    let retry_on_bump = i32::from(m.producer_epoch.0) == i32::from(epoch.0) + 1;
    if m.producer_id != pid && !retry_on_overflow {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    let current = epoch == m.producer_epoch && m.producer_id == pid;
    let valid = match m.state {
        Ongoing | Empty | Dead | PrepareEpochFence => current,
        PrepareCommit | PrepareAbort => retry_on_bump,
        CompleteCommit | CompleteAbort => retry_on_bump || retry_on_overflow || current,
    };
    if !valid {
        return Err(TxnError::ProducerFenced);
    }
    let retry = !current && (retry_on_bump || retry_on_overflow);
    match (m.state, ask.commit) {
        (Ongoing, _) => prepare(m, ask, false),
        (CompleteCommit, true) | (CompleteAbort, false) if retry => Ok(EndStep::Done),
        (Empty | CompleteCommit | CompleteAbort, false) if !retry => prepare(m, ask, true),
        (PrepareCommit, true) | (PrepareAbort, false) => Err(TxnError::ConcurrentTransactions),
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// PrepareCommit or PrepareAbort (`empty`: no partition was added, so no
/// marker follows).
fn prepare(m: &mut TransactionMetadata, ask: Ask, empty: bool) -> Result<EndStep, TxnError> {
    use TransactionState::*;
    let to = if ask.commit {
        PrepareCommit
    } else {
        PrepareAbort
    };
    let rotate = ask.version.supports_epoch_bump() && m.is_producer_epoch_exhausted();
    if rotate && ask.next_id == NO_PRODUCER_ID {
        // The epoch ran out between the allocation and the lock; the
        // client retries and gets one.
        return Err(TxnError::ConcurrentTransactions);
    }
    let next = if rotate { ask.next_id } else { NO_PRODUCER_ID };
    m.prepare_abort_or_commit(to, ask.version, next, ask.now_ms, empty)
        .map(EndStep::Write)
        .map_err(|r| refused(r, &m.transactional_id))
}

#[cfg(test)]
#[path = "end_tests.rs"]
mod tests;
