//! What the coordinators (groups in [`crate::group`], transactions in
//! [`crate::txn`]) share: the byte layout of their records in internal topics.

pub mod codec;
