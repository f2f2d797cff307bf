//! What the admin APIs read from the coordinator (Kafka's
//! `TransactionCoordinator.handleDescribeTransactions` and
//! `TransactionStateManager.listTransactionStates`): one id's state, and
//! the ids of every partition this broker coordinates, filtered.

use std::collections::BTreeSet;

use sluice_record::ProducerId;

use super::state_manager::TransactionStateManager;
use super::{TransactionMetadata, TransactionState, TxnError};

/// A described transactional id: its state as of now (pending changes
/// not included).
pub fn describe(
    state: &TransactionStateManager,
    transactional_id: &str,
) -> Result<TransactionMetadata, TxnError> {
    if transactional_id.is_empty() {
        return Err(TxnError::InvalidRequest);
    }
    match state.get(transactional_id)? {
        (_, Some(m)) => {
            let m = m.lock().clone();
            // An expired id is as good as gone.
            if m.state == TransactionState::Dead {
                return Err(TxnError::TransactionalIdNotFound);
            }
            Ok(m)
        }
        (_, None) => Err(TxnError::TransactionalIdNotFound),
    }
}

/// ListTransactions' filters; empty sets and a negative duration filter
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub states: BTreeSet<TransactionState>,
    pub producer_ids: BTreeSet<ProducerId>,
    /// Only transactions running longer than this (ms), if >= 0.
    pub min_duration_ms: i64,
    /// A regular expression the whole id must match (v2).
    pub pattern: Option<String>,
}

/// One listed id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub state: TransactionState,
}

/// Every id of the partitions led here that passes `filter`, sorted by id.
/// COORDINATOR_LOAD_IN_PROGRESS while a partition loads (its ids would be
/// missing).
pub fn list(state: &TransactionStateManager, filter: &ListFilter) -> Result<Vec<Listed>, TxnError> {
    if state.any_loading() {
        return Err(TxnError::CoordinatorLoadInProgress);
    }
    let pattern = match &filter.pattern {
        Some(p) if !p.is_empty() => Some(
            regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|_| TxnError::InvalidRegularExpression)?,
        ),
        _ => None,
    };
    let now = state.now();
    let mut out = Vec::new();
    for p in state.current() {
        for m in p.all() {
            let m = m.lock();
            let keep = m.state != TransactionState::Dead
                && (filter.states.is_empty() || filter.states.contains(&m.state))
                && (filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id))
                && (filter.min_duration_ms < 0
                    || now.saturating_sub(m.start_ms) > filter.min_duration_ms)
                && pattern
                    .as_ref()
                    .is_none_or(|r| r.is_match(&m.transactional_id));
            if keep {
                out.push(Listed {
                    transactional_id: m.transactional_id.clone(),
                    producer_id: m.producer_id,
                    state: m.state,
                });
            }
        }
    }
    out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(out)
}
