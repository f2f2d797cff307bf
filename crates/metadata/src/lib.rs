//! Cluster metadata as pure data: Kafka's metadata records, the immutable
//! image they build, the deltas between images, and replica placement.
//! Part 1 of the cluster work (issue 16) builds the controller quorum on
//! this crate; today nothing uses it yet (the broker still keeps its
//! metadata in `crates/broker/src/metadata.rs`).
//!
//! - [`record`]: the records with Kafka's names, api keys, versions and
//!   meaning (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`,
//!   `PartitionChangeRecord`, `ConfigRecord`, `FeatureLevelRecord`,
//!   `ProducerIdsRecord`, ...), in Kafka's metadata-record framing, so
//!   Kafka's own `MetadataRecordSerde` reads our bytes and writes the same
//!   bytes back (`kafka-check/run` checks it against the reference jars).
//! - [`image`]: [`MetadataImage`]: features, broker registrations, topics
//!   (by id and name, partitions as [`PartitionRegistration`]s), config
//!   overrides by resource, the next producer id, and the provenance (offset
//!   and epoch of the last record applied); its canonical snapshot
//!   ([`MetadataImage::write_snapshot`], [`MetadataImage::canonical_bytes`]).
//! - [`delta`]: [`MetadataDelta`] replays records onto a base image with
//!   validity checks and applies them into the next image plus
//!   [`MetadataChanges`] (with Kafka's `localChanges(brokerId)`: the
//!   partitions a broker must lead, follow or delete).
//! - [`placement`]: rack-aware striped replica placement for CreateTopics
//!   and CreatePartitions.
//!
//! How the single-node broker's state maps onto records: a topic
//! (`TopicMetadata`: name, id, partition count) is a `TopicRecord` plus one
//! `PartitionRecord` per partition (replicas, ISR and leader = the node);
//! topic overrides, per-broker and cluster-default dynamic broker configs
//! (resource name = node id or "") and KIP-848 group configs are
//! `ConfigRecord`s of resource type TOPIC, BROKER and GROUP; the producer-id
//! block high-water mark is a `ProducerIdsRecord`; the node itself is a
//! `RegisterBrokerRecord` (see the test
//! `delta::tests::the_single_node_brokers_state_maps_onto_records`).
//!
//! Invariants:
//! - **Images are immutable.** Nothing mutates a [`MetadataImage`]; a delta
//!   builds the next one and shares every unchanged map with its base.
//! - **Records apply in log order**: offsets strictly increase and leader
//!   epochs never go back ([`MetadataDelta::replay`]); a record that does
//!   not fit the image is an error that leaves the delta unchanged.
//! - **Every node gets identical images**: replay is a function of the
//!   records alone (ordered maps only, no clock, no randomness, no
//!   dependence on how records are grouped into deltas), so two replays of
//!   one log give byte-identical [`MetadataImage::canonical_bytes`], and an
//!   image rebuilt from its own snapshot equals it (property-tested).
//! - **Untrusted bytes never panic or over-allocate**: decoding bounds every
//!   count by the bytes remaining (the `metadata_record` fuzz target).
//!
//! Pure code: no I/O, no async runtime, no broker or storage types, and no
//! Kafka error codes (placement and replay errors are [`MetadataError`]
//! variants the broker maps at its edge).

#[cfg(test)]
mod arbitrary;
mod codec;
pub mod delta;
pub mod error;
pub mod features;
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
    BrokerRegistration, MetadataImage, MetadataProvenance, PartitionRegistration,
    ScramCredentialData, ScramCredentials, TopicImage,
};
pub use record::MetadataRecord;
pub use types::{
    BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, LeaderRecoveryState, PartitionEpoch,
};
