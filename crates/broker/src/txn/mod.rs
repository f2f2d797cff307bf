//! The transaction coordinator (KIP-98, KIP-890): what it stores for each
//! transactional id and how a transaction's state may move. The
//! coordinator itself (InitProducerId with a transactional id,
//! AddPartitionsToTxn, EndTxn, the markers) builds on these.

pub mod metadata;
pub mod records;
pub mod state;

pub use metadata::{Refusal, TransactionMetadata, TransactionVersion, Transition};
pub use records::TransactionLogValue;
pub use state::TransactionState;
