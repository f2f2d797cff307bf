//! The immutable metadata image: everything the cluster metadata log says,
//! as of one offset.
//!
//! An image never changes after it is built; the next one comes from
//! [`crate::delta::MetadataDelta::apply`]. Cloning one is a few `Arc`
//! increments, and a delta copies only what it changes: topics live in 256
//! shards by the first byte of their (random) id, so a delta that changes
//! a few partitions copies a few shards (about topics / 256 entries each)
//! and the partition maps of those topics (pointers to shared
//! registrations, so O(partitions of the topic)); the name index is copied only
//! when topics are created or deleted, config, feature and broker maps
//! only when those change. `examples/apply_cost.rs` measures it. A
//! persistent map crate (`im`, `rpds`: both MPL-2.0) would make every
//! update O(log n); this two-level layout gets most of that with plain
//! `BTreeMap`s, keeps iteration order canonical and adds no dependency.

mod acls;
mod partition;
pub mod quotas;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_record::{LeaderEpoch, Offset, ProducerId};
use uuid::Uuid;

use crate::record::{BrokerEndpoint, BrokerFeature, RegisterBrokerRecord};
use crate::types::{BrokerEpoch, BrokerId, ConfigResource};

pub use acls::{acl_from_record, acl_to_record, AclsImage};
pub use partition::PartitionRegistration;
pub use quotas::{ClientQuotaEntity, ClientQuotas, EntityName, QuotaValues};
pub use snapshot::METADATA_VERSION;

/// Where an image comes from: the offset and leader epoch of the last
/// record applied (Kafka's `MetadataProvenance`; -1/-1 for the empty image).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetadataProvenance {
    pub last_offset: Offset,
    pub last_epoch: LeaderEpoch,
}

impl MetadataProvenance {
    pub const EMPTY: MetadataProvenance = MetadataProvenance {
        last_offset: Offset(-1),
        last_epoch: LeaderEpoch(-1),
    };
}

/// One broker's registration (Kafka's `BrokerRegistration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    pub epoch: BrokerEpoch,
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub supported_features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    pub is_migrating_zk_broker: bool,
    pub directories: Vec<Uuid>,
}

impl BrokerRegistration {
    pub(crate) fn from_record(r: &RegisterBrokerRecord) -> Self {
        BrokerRegistration {
            id: r.broker_id,
            epoch: r.broker_epoch,
            incarnation_id: r.incarnation_id,
            listeners: r.end_points.clone(),
            supported_features: r.features.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
            in_controlled_shutdown: r.in_controlled_shutdown,
            is_migrating_zk_broker: r.is_migrating_zk_broker,
            directories: r.log_dirs.clone(),
        }
    }

    pub fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.id,
            is_migrating_zk_broker: self.is_migrating_zk_broker,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.epoch,
            end_points: self.listeners.clone(),
            features: self.supported_features.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
            in_controlled_shutdown: self.in_controlled_shutdown,
            log_dirs: self.directories.clone(),
        }
    }

    /// Whether replicas may be placed on it and it may lead: registered,
    /// unfenced and not shutting down.
    pub fn is_usable(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// A user's SCRAM credential for one mechanism, as the image keeps it
/// (Kafka's `ScramCredentialData`): what a server needs, never the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentialData {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredentialData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialData")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// SCRAM credentials by (user name, Kafka's mechanism id).
pub type ScramCredentials = BTreeMap<(String, i8), ScramCredentialData>;

/// One topic: its name, id and partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    name: String,
    id: Uuid,
    partitions: Arc<PartitionMap>,
}

/// A topic's partitions. Each registration is shared too, so a delta that
/// changes one partition of a big topic copies pointers, not replica lists.
pub type PartitionMap = BTreeMap<i32, Arc<PartitionRegistration>>;

impl TopicImage {
    pub(crate) fn new(name: String, id: Uuid, partitions: Arc<PartitionMap>) -> Self {
        TopicImage {
            name,
            id,
            partitions,
        }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn id(&self) -> Uuid {
        self.id
    }
    pub fn partitions(&self) -> &PartitionMap {
        &self.partitions
    }
    pub(crate) fn partitions_arc(&self) -> &Arc<PartitionMap> {
        &self.partitions
    }
    pub fn partition(&self, partition: i32) -> Option<&PartitionRegistration> {
        self.partitions.get(&partition).map(Arc::as_ref)
    }
}

/// Everything the metadata log says as of [`MetadataImage::provenance`].
/// Immutable; clones share all their maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataImage {
    pub(crate) provenance: MetadataProvenance,
    /// Finalized feature levels (`metadata.version`, ...); level 0 is absent.
    pub(crate) features: Arc<BTreeMap<String, i16>>,
    pub(crate) brokers: Arc<BTreeMap<BrokerId, BrokerRegistration>>,
    /// Topics by id, in [`TOPIC_SHARDS`] shards by the id's first byte.
    pub(crate) topics_by_id: Arc<Vec<Arc<TopicShard>>>,
    pub(crate) topics_by_name: Arc<BTreeMap<String, Uuid>>,
    /// Config overrides per resource; a resource with no keys is absent.
    pub(crate) configs: Arc<BTreeMap<ConfigResource, Arc<BTreeMap<String, String>>>>,
    /// The first producer id not yet handed out in a block (0 initially).
    pub(crate) next_producer_id: ProducerId,
    /// SCRAM credentials (`UserScramCredentialRecord`s).
    pub(crate) scram: Arc<ScramCredentials>,
    /// ACLs (`AccessControlEntryRecord`s).
    pub(crate) acls: Arc<AclsImage>,
    /// Client quotas (`ClientQuotaRecord`s).
    pub(crate) quotas: Arc<ClientQuotas>,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage::empty()
    }
}

/// How many shards the topics are split into.
pub(crate) const TOPIC_SHARDS: usize = 256;

pub(crate) type TopicShard = BTreeMap<Uuid, Arc<TopicImage>>;

/// The shard of a topic id: its first byte, so that shards in order hold
/// the ids in order.
pub(crate) fn shard_of(id: Uuid) -> usize {
    usize::from(id.as_bytes()[0])
}

static EMPTY_MAP: BTreeMap<String, String> = BTreeMap::new();

impl MetadataImage {
    /// The image before any record.
    pub fn empty() -> MetadataImage {
        MetadataImage {
            provenance: MetadataProvenance::EMPTY,
            features: Arc::default(),
            brokers: Arc::default(),
            topics_by_id: Arc::new(vec![Arc::default(); TOPIC_SHARDS]),
            topics_by_name: Arc::default(),
            configs: Arc::default(),
            next_producer_id: ProducerId(0),
            scram: Arc::default(),
            acls: Arc::default(),
            quotas: Arc::default(),
        }
    }

    pub fn provenance(&self) -> MetadataProvenance {
        self.provenance
    }
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
            && self.brokers.is_empty()
            && self.topics_by_name.is_empty()
            && self.configs.is_empty()
            && self.next_producer_id == ProducerId(0)
            && self.scram.is_empty()
            && self.acls.is_empty()
            && self.quotas.is_empty()
    }
    pub fn features(&self) -> &BTreeMap<String, i16> {
        &self.features
    }
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerRegistration> {
        &self.brokers
    }
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }
    /// Topics in id order.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics_by_id.iter().flat_map(|shard| shard.values())
    }
    pub fn topic_count(&self) -> usize {
        self.topics_by_name.len()
    }
    pub fn topic_names(&self) -> &BTreeMap<String, Uuid> {
        &self.topics_by_name
    }
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id[shard_of(id)].get(&id)
    }
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics_by_name
            .get(name)
            .and_then(|&id| self.topic_by_id(id))
    }
    pub fn configs(&self) -> &BTreeMap<ConfigResource, Arc<BTreeMap<String, String>>> {
        &self.configs
    }
    /// The overrides of one resource (empty when it has none).
    pub fn config(&self, resource: &ConfigResource) -> &BTreeMap<String, String> {
        self.configs.get(resource).map_or(&EMPTY_MAP, |m| m)
    }
    pub fn next_producer_id(&self) -> ProducerId {
        self.next_producer_id
    }
    /// Every SCRAM credential, by (user, mechanism id).
    pub fn scram_credentials(&self) -> &ScramCredentials {
        &self.scram
    }
    /// `user`'s credential for the mechanism with Kafka's id `mechanism`.
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&ScramCredentialData> {
        self.scram.get(&(user.to_owned(), mechanism))
    }
    /// Every ACL, by id and in the authorizer's order.
    pub fn acls(&self) -> &AclsImage {
        &self.acls
    }
    /// Client quotas by entity.
    pub fn client_quotas(&self) -> &ClientQuotas {
        &self.quotas
    }
}

#[cfg(test)]
mod tests;
