//! The feature levels this build supports:
//! - `metadata.version` from Kafka 3.3-IV3 (level 7, the first KRaft-only
//!   level) to 4.1-IV1 (27, the level a new cluster is bootstrapped at);
//! - `transaction.version` 0 to 2 (2: KIP-890 part 2, every transaction
//!   ends with an epoch bump and partition leaders add partitions). A new
//!   cluster is bootstrapped at 2, as Kafka 4.x's `kafka-storage format`
//!   does; a cluster without the record stays at 0 and clients use
//!   version 1.
//!
//! Brokers register them, and every ApiVersions answer (broker and
//! controller listeners) lists them.

use crate::record::BrokerFeature;

pub use crate::image::METADATA_VERSION;

/// The `metadata.version` this build writes and supports (Kafka 4.1-IV1).
pub const METADATA_VERSION_LEVEL: i16 = 27;

/// Lowest `metadata.version` this build reads (Kafka 3.3-IV3).
pub const MIN_METADATA_VERSION_LEVEL: i16 = 7;

/// The feature of the transaction protocol version (KIP-890).
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// The highest `transaction.version` this build speaks, and the level a
/// new cluster is bootstrapped at.
pub const TRANSACTION_VERSION_LEVEL: i16 = 2;

/// The features this node supports, as registered with the controller.
pub fn supported_features() -> Vec<BrokerFeature> {
    vec![
        BrokerFeature {
            name: METADATA_VERSION.into(),
            min_supported_version: MIN_METADATA_VERSION_LEVEL,
            max_supported_version: METADATA_VERSION_LEVEL,
        },
        BrokerFeature {
            name: TRANSACTION_VERSION.into(),
            min_supported_version: 0,
            max_supported_version: TRANSACTION_VERSION_LEVEL,
        },
    ]
}
