//! The feature levels this build supports: `metadata.version` only, from
//! Kafka 3.3-IV3 (level 7, the first KRaft-only level) to 4.1-IV1 (27, the
//! level a new cluster is bootstrapped at). Brokers register them, and
//! every ApiVersions answer (broker and controller listeners) lists them.

use crate::record::BrokerFeature;

pub use crate::image::METADATA_VERSION;

/// The `metadata.version` this build writes and supports (Kafka 4.1-IV1).
pub const METADATA_VERSION_LEVEL: i16 = 27;

/// Lowest `metadata.version` this build reads (Kafka 3.3-IV3).
pub const MIN_METADATA_VERSION_LEVEL: i16 = 7;

/// The features this node supports, as registered with the controller.
pub fn supported_features() -> Vec<BrokerFeature> {
    vec![BrokerFeature {
        name: METADATA_VERSION.into(),
        min_supported_version: MIN_METADATA_VERSION_LEVEL,
        max_supported_version: METADATA_VERSION_LEVEL,
    }]
}
