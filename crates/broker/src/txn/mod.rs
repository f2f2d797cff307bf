//! The transaction coordinator (KIP-98, KIP-890), as far as it is built:
//! what it stores for each transactional id (`records`), how a
//! transaction's state may move (`state`, `metadata`), and how a
//! `__transaction_state` partition loads (`load`; its partition is
//! [`crate::coordinator::partition_for`]). The coordinator itself
//! (InitProducerId with a transactional id, AddPartitionsToTxn, EndTxn,
//! the markers, timeouts) builds on these and is not written yet.

pub mod load;
pub mod metadata;
pub mod records;
pub mod state;

pub use metadata::{Refusal, TransactionMetadata, TransactionVersion, Transition};
pub use records::TransactionLogValue;
pub use state::TransactionState;
