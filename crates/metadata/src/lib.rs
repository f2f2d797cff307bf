//! (crate doc written below)

#[cfg(test)]
mod arbitrary;
mod codec;
pub mod error;
pub mod record;
pub mod types;

pub use error::MetadataError;
pub use types::{
    BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, LeaderRecoveryState, PartitionEpoch,
};
