//! (crate doc written below)

#[cfg(test)]
mod arbitrary;
mod codec;
pub mod delta;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod placement;
pub mod record;
#[cfg(test)]
mod scenario;
pub mod types;

pub use delta::{LocalPartition, LocalReplicaChanges, MetadataChanges, MetadataDelta};
pub use error::MetadataError;
pub use image::{
    BrokerRegistration, MetadataImage, MetadataProvenance, PartitionRegistration, TopicImage,
};
pub use record::MetadataRecord;
pub use types::{
    BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, LeaderRecoveryState, PartitionEpoch,
};
