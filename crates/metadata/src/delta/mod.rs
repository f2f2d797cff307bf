//! `MetadataDelta`: records replayed against a base image, then applied
//! at once to make the next image, with a description of what changed.
//!
//! Every record is checked against the state it applies to (the base plus
//! the records before it); a record that does not fit (a partition change
//! for a partition that does not exist, a config of an unknown topic, a
//! broker change for another incarnation ...) is a [`MetadataError`], and
//! leaves the delta as it was. Splitting the same records into deltas
//! differently gives the same final image (tested).
//!
//! The checks, beyond Kafka's own replay (which trusts its controller):
//! - `TopicRecord`: neither its name nor its id is in use.
//! - `PartitionRecord`: its topic exists, the partition does not yet; the
//!   registration is consistent (below).
//! - `PartitionChangeRecord`: the partition exists; leader is -2, -1 or a
//!   broker; recovery state -1, 0 or 1; the merged registration is
//!   consistent (below).
//! - `RemoveTopicRecord`: the topic exists. Its topic configs go with it.
//! - `ConfigRecord`: a known resource type; a TOPIC resource names an
//!   existing topic.
//! - `RegisterBrokerRecord`: a non-negative id and an epoch above the
//!   current registration's. `UnregisterBrokerRecord` and
//!   `BrokerRegistrationChangeRecord` name a registration by id and epoch;
//!   the latter's change bytes are Kafka's (1/0/-1, 0/1).
//! - `FeatureLevelRecord`: a level of at least 0 (0 removes the feature).
//! - `ProducerIdsRecord`: the next producer id goes up, so an id is never
//!   handed out twice.
//! - `UserScramCredentialRecord`: a non-empty user name, a mechanism id of
//!   Kafka's (1 or 2). `RemoveUserScramCredentialRecord`: the credential
//!   exists.
//! - `AccessControlEntryRecord`: codes a binding may hold, a principal
//!   `type:name`, a non-empty name, and an id not in use;
//!   `RemoveAccessControlEntryRecord`: the id exists (`acls.rs`).
//! - `ClientQuotaRecord`: an entity Kafka's controller accepts, a non-empty
//!   key (`quotas.rs`).
//!
//! A consistent registration has a non-negative partition id, at least one
//! replica, no replica twice, non-negative replica ids, ISR, adding and
//! removing replicas among the replicas, no ISR member twice, a leader that
//! is -1 or a replica, and no directories or one per replica.

mod acls;
mod changes;
mod quotas;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sluice_record::{LeaderEpoch, Offset, ProducerId};
use uuid::Uuid;

use crate::error::MetadataError;
use crate::image::{
    shard_of, BrokerRegistration, ClientQuotas, MetadataImage, MetadataProvenance,
    PartitionRegistration, ScramCredentialData, ScramCredentials, TopicImage,
};
use crate::record::*;
use crate::types::{BrokerId, ConfigResource, ConfigResourceType};

pub use changes::{LocalPartition, LocalReplicaChanges, MetadataChanges, TopicChanges};

/// A topic created or changed by the delta.
#[derive(Clone, Debug)]
struct TopicChange {
    name: String,
    /// Not in the base image (or deleted from it and created again).
    created: bool,
    /// The partitions created or changed by the delta.
    partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Records replayed on top of a base image, not yet applied.
#[derive(Clone, Debug)]
pub struct MetadataDelta {
    base: MetadataImage,
    provenance: MetadataProvenance,
    features: Option<BTreeMap<String, i16>>,
    brokers: Option<BTreeMap<BrokerId, BrokerRegistration>>,
    changed_brokers: BTreeSet<BrokerId>,
    topics: BTreeMap<Uuid, TopicChange>,
    /// Names of the topics in `topics` that are `created`.
    created_names: BTreeMap<String, Uuid>,
    /// Base-image topics the delta removed.
    deleted_topics: BTreeMap<Uuid, Arc<TopicImage>>,
    /// Whole new key maps of the config resources the delta touched.
    configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    next_producer_id: Option<ProducerId>,
    /// The whole new credential map, once a SCRAM record was replayed.
    scram: Option<ScramCredentials>,
    /// The whole new ACL map by id, once an ACL record was replayed.
    acls: Option<BTreeMap<Uuid, sluice_auth::acl::StandardAcl>>,
    /// The whole new quota map, once a `ClientQuotaRecord` was replayed.
    quotas: Option<ClientQuotas>,
}

impl MetadataDelta {
    pub fn new(base: MetadataImage) -> Self {
        MetadataDelta {
            provenance: base.provenance,
            base,
            features: None,
            brokers: None,
            changed_brokers: BTreeSet::new(),
            topics: BTreeMap::new(),
            created_names: BTreeMap::new(),
            deleted_topics: BTreeMap::new(),
            configs: BTreeMap::new(),
            next_producer_id: None,
            scram: None,
            acls: None,
            quotas: None,
        }
    }

    pub fn base(&self) -> &MetadataImage {
        &self.base
    }

    /// The offset and epoch of the last record replayed (or the base's).
    pub fn provenance(&self) -> MetadataProvenance {
        self.provenance
    }

    /// Replays the committed record at `offset`, written in leader epoch
    /// `epoch`. Offsets must increase and epochs must not go back.
    pub fn replay(
        &mut self,
        offset: Offset,
        epoch: LeaderEpoch,
        record: &MetadataRecord,
    ) -> Result<(), MetadataError> {
        let last = self.provenance;
        if offset <= last.last_offset {
            return Err(MetadataError::OffsetNotIncreasing {
                last: last.last_offset,
                offset,
            });
        }
        if epoch < last.last_epoch {
            return Err(MetadataError::InvalidValue {
                field: "leader epoch",
                value: i64::from(epoch.0),
            });
        }
        self.replay_record(record)?;
        self.provenance = MetadataProvenance {
            last_offset: offset,
            last_epoch: epoch,
        };
        Ok(())
    }

    /// Replays a record without a log position (the records of a snapshot,
    /// which all share the snapshot's provenance).
    pub fn replay_record(&mut self, record: &MetadataRecord) -> Result<(), MetadataError> {
        use MetadataRecord as M;
        match record {
            M::RegisterBroker(r) => self.register_broker(r),
            M::UnregisterBroker(r) => self.unregister_broker(r),
            M::BrokerRegistrationChange(r) => self.change_broker(r),
            M::Topic(r) => self.create_topic(r),
            M::Partition(r) => self.create_partition(r),
            M::PartitionChange(r) => self.change_partition(r),
            M::RemoveTopic(r) => self.remove_topic(r),
            M::Config(r) => self.config(r),
            M::FeatureLevel(r) => self.feature_level(r),
            M::ProducerIds(r) => self.producer_ids(r),
            M::NoOp(_) => Ok(()),
            M::UserScramCredential(r) => self.scram_credential(r),
            M::RemoveUserScramCredential(r) => self.remove_scram_credential(r),
            M::AccessControlEntry(r) => self.access_control_entry(r),
            M::RemoveAccessControlEntry(r) => self.remove_access_control_entry(r),
            M::ClientQuota(r) => self.client_quota(r),
        }
    }

    // ---- current state (base + delta) ----

    fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        match &self.brokers {
            Some(b) => b.get(&id),
            None => self.base.brokers.get(&id),
        }
    }

    fn topic_name(&self, id: Uuid) -> Option<&str> {
        if let Some(t) = self.topics.get(&id) {
            return Some(&t.name);
        }
        if self.deleted_topics.contains_key(&id) {
            return None;
        }
        self.base.topic_by_id(id).map(|t| t.name())
    }

    fn topic_id(&self, name: &str) -> Option<Uuid> {
        if let Some(&id) = self.created_names.get(name) {
            return Some(id);
        }
        let id = *self.base.topics_by_name.get(name)?;
        (!self.deleted_topics.contains_key(&id)).then_some(id)
    }

    fn partition(&self, id: Uuid, partition: i32) -> Option<&PartitionRegistration> {
        if let Some(t) = self.topics.get(&id) {
            if let Some(p) = t.partitions.get(&partition) {
                return Some(p);
            }
            if t.created {
                return None;
            }
        } else if self.deleted_topics.contains_key(&id) {
            return None;
        }
        self.base.topic_by_id(id)?.partition(partition)
    }

    fn topic_mut(&mut self, id: Uuid) -> &mut TopicChange {
        let base = &self.base;
        self.topics.entry(id).or_insert_with(|| TopicChange {
            name: base
                .topic_by_id(id)
                .map(|t| t.name().to_owned())
                .unwrap_or_default(),
            created: false,
            partitions: BTreeMap::new(),
        })
    }

    // ---- brokers ----

    fn brokers_mut(&mut self) -> &mut BTreeMap<BrokerId, BrokerRegistration> {
        let base = &self.base;
        self.brokers.get_or_insert_with(|| (*base.brokers).clone())
    }

    fn registered(
        &self,
        id: BrokerId,
        epoch: crate::BrokerEpoch,
    ) -> Result<&BrokerRegistration, MetadataError> {
        self.broker(id)
            .filter(|b| b.epoch == epoch)
            .ok_or(MetadataError::UnknownBroker { broker: id, epoch })
    }

    fn register_broker(&mut self, r: &RegisterBrokerRecord) -> Result<(), MetadataError> {
        if r.broker_id.0 < 0 {
            return Err(MetadataError::InvalidValue {
                field: "BrokerId",
                value: i64::from(r.broker_id.0),
            });
        }
        if self
            .broker(r.broker_id)
            .is_some_and(|b| b.epoch >= r.broker_epoch)
        {
            return Err(MetadataError::InvalidValue {
                field: "BrokerEpoch",
                value: r.broker_epoch.0,
            });
        }
        self.changed_brokers.insert(r.broker_id);
        self.brokers_mut()
            .insert(r.broker_id, BrokerRegistration::from_record(r));
        Ok(())
    }

    fn unregister_broker(&mut self, r: &UnregisterBrokerRecord) -> Result<(), MetadataError> {
        self.registered(r.broker_id, r.broker_epoch)?;
        self.changed_brokers.insert(r.broker_id);
        self.brokers_mut().remove(&r.broker_id);
        Ok(())
    }

    fn change_broker(&mut self, r: &BrokerRegistrationChangeRecord) -> Result<(), MetadataError> {
        let mut b = self.registered(r.broker_id, r.broker_epoch)?.clone();
        match r.fenced {
            BrokerRegistrationChangeRecord::FENCE => b.fenced = true,
            BrokerRegistrationChangeRecord::UNFENCE => b.fenced = false,
            BrokerRegistrationChangeRecord::NO_CHANGE => {}
            v => return Err(bad("Fenced", v.into())),
        }
        match r.in_controlled_shutdown {
            BrokerRegistrationChangeRecord::IN_CONTROLLED_SHUTDOWN => {
                b.in_controlled_shutdown = true
            }
            BrokerRegistrationChangeRecord::NO_CHANGE => {}
            v => return Err(bad("InControlledShutdown", v.into())),
        }
        if !r.log_dirs.is_empty() {
            b.directories = r.log_dirs.clone();
        }
        self.changed_brokers.insert(r.broker_id);
        self.brokers_mut().insert(r.broker_id, b);
        Ok(())
    }

    // ---- topics and partitions ----

    fn create_topic(&mut self, r: &TopicRecord) -> Result<(), MetadataError> {
        if self.topic_name(r.topic_id).is_some() {
            return Err(MetadataError::TopicIdAlreadyExists(r.topic_id));
        }
        if self.topic_id(&r.name).is_some() {
            return Err(MetadataError::TopicAlreadyExists(r.name.clone()));
        }
        self.topics.insert(
            r.topic_id,
            TopicChange {
                name: r.name.clone(),
                created: true,
                partitions: BTreeMap::new(),
            },
        );
        self.created_names.insert(r.name.clone(), r.topic_id);
        Ok(())
    }

    fn create_partition(&mut self, r: &PartitionRecord) -> Result<(), MetadataError> {
        if self.topic_name(r.topic_id).is_none() {
            return Err(MetadataError::UnknownTopicId(r.topic_id));
        }
        if self.partition(r.topic_id, r.partition_id).is_some() {
            return Err(MetadataError::InvalidPartition {
                topic_id: r.topic_id,
                partition: r.partition_id,
                reason: "partition already exists",
            });
        }
        let reg = PartitionRegistration::from_record(r)?;
        self.topic_mut(r.topic_id)
            .partitions
            .insert(r.partition_id, reg);
        Ok(())
    }

    fn change_partition(&mut self, r: &PartitionChangeRecord) -> Result<(), MetadataError> {
        if self.topic_name(r.topic_id).is_none() {
            return Err(MetadataError::UnknownTopicId(r.topic_id));
        }
        let current =
            self.partition(r.topic_id, r.partition_id)
                .ok_or(MetadataError::UnknownPartition {
                    topic_id: r.topic_id,
                    partition: r.partition_id,
                })?;
        let next = current.merge(r)?;
        self.topic_mut(r.topic_id)
            .partitions
            .insert(r.partition_id, next);
        Ok(())
    }

    fn remove_topic(&mut self, r: &RemoveTopicRecord) -> Result<(), MetadataError> {
        let name = self
            .topic_name(r.topic_id)
            .ok_or(MetadataError::UnknownTopicId(r.topic_id))?
            .to_owned();
        if let Some(t) = self.topics.remove(&r.topic_id) {
            if t.created {
                self.created_names.remove(&t.name);
            }
        }
        if let Some(t) = self.base.topic_by_id(r.topic_id) {
            self.deleted_topics
                .entry(r.topic_id)
                .or_insert_with(|| t.clone());
        }
        // As in Kafka, a topic's configs go with it.
        let resource = ConfigResource {
            resource_type: ConfigResourceType::Topic,
            name,
        };
        self.configs.insert(resource, BTreeMap::new());
        Ok(())
    }

    // ---- configs, features, producer ids ----

    fn config(&mut self, r: &ConfigRecord) -> Result<(), MetadataError> {
        let resource_type = ConfigResourceType::from_id(r.resource_type)
            .ok_or(MetadataError::UnknownConfigResourceType(r.resource_type))?;
        if resource_type == ConfigResourceType::Topic && self.topic_id(&r.resource_name).is_none() {
            return Err(MetadataError::UnknownTopic(r.resource_name.clone()));
        }
        let resource = ConfigResource {
            resource_type,
            name: r.resource_name.clone(),
        };
        let base = &self.base;
        let keys = self
            .configs
            .entry(resource)
            .or_insert_with_key(|res| base.config(res).clone());
        match &r.value {
            Some(v) => keys.insert(r.name.clone(), v.clone()),
            None => keys.remove(&r.name),
        };
        Ok(())
    }

    fn feature_level(&mut self, r: &FeatureLevelRecord) -> Result<(), MetadataError> {
        if r.feature_level < 0 {
            return Err(bad("FeatureLevel", r.feature_level.into()));
        }
        let base = &self.base;
        let features = self
            .features
            .get_or_insert_with(|| (*base.features).clone());
        if r.feature_level == 0 {
            features.remove(&r.name);
        } else {
            features.insert(r.name.clone(), r.feature_level);
        }
        Ok(())
    }

    fn producer_ids(&mut self, r: &ProducerIdsRecord) -> Result<(), MetadataError> {
        let current = self.next_producer_id.unwrap_or(self.base.next_producer_id);
        if r.next_producer_id <= current {
            return Err(MetadataError::ProducerIdNotIncreasing {
                current: current.0,
                next: r.next_producer_id.0,
            });
        }
        self.next_producer_id = Some(r.next_producer_id);
        Ok(())
    }

    fn scram_credential(&mut self, r: &UserScramCredentialRecord) -> Result<(), MetadataError> {
        if r.name.is_empty() {
            return Err(MetadataError::Malformed("empty SCRAM user name"));
        }
        if !matches!(r.mechanism, 1 | 2) {
            return Err(bad("Mechanism", r.mechanism.into()));
        }
        let base = &self.base;
        self.scram
            .get_or_insert_with(|| (*base.scram).clone())
            .insert(
                (r.name.clone(), r.mechanism),
                ScramCredentialData {
                    salt: r.salt.clone(),
                    stored_key: r.stored_key.clone(),
                    server_key: r.server_key.clone(),
                    iterations: r.iterations,
                },
            );
        Ok(())
    }

    fn remove_scram_credential(
        &mut self,
        r: &RemoveUserScramCredentialRecord,
    ) -> Result<(), MetadataError> {
        let key = (r.name.clone(), r.mechanism);
        let exists = match &self.scram {
            Some(s) => s.contains_key(&key),
            None => self.base.scram.contains_key(&key),
        };
        if !exists {
            return Err(MetadataError::Malformed(
                "RemoveUserScramCredentialRecord of a credential that does not exist",
            ));
        }
        let base = &self.base;
        self.scram
            .get_or_insert_with(|| (*base.scram).clone())
            .remove(&key);
        Ok(())
    }

    // ---- the next image ----

    /// The next image, and what changed from the base to it.
    pub fn apply(self) -> (MetadataImage, MetadataChanges) {
        let base = &self.base;
        let mut image = MetadataImage {
            provenance: self.provenance,
            features: self
                .features
                .clone()
                .map_or_else(|| base.features.clone(), Arc::new),
            brokers: self
                .brokers
                .clone()
                .map_or_else(|| base.brokers.clone(), Arc::new),
            topics_by_id: base.topics_by_id.clone(),
            topics_by_name: base.topics_by_name.clone(),
            configs: base.configs.clone(),
            next_producer_id: self.next_producer_id.unwrap_or(base.next_producer_id),
            scram: self
                .scram
                .clone()
                .map_or_else(|| base.scram.clone(), Arc::new),
            acls: self.acls.clone().map_or_else(
                || base.acls.clone(),
                |by_id| Arc::new(crate::image::AclsImage::new(by_id)),
            ),
            quotas: self
                .quotas
                .clone()
                .map_or_else(|| base.quotas.clone(), Arc::new),
        };
        if !self.topics.is_empty() || !self.deleted_topics.is_empty() {
            let shards = Arc::make_mut(&mut image.topics_by_id);
            for id in self.deleted_topics.keys() {
                Arc::make_mut(&mut shards[shard_of(*id)]).remove(id);
            }
            for (&id, t) in &self.topics {
                let mut partitions = match base.topic_by_id(id) {
                    Some(old) if !t.created => old.partitions_arc().clone(),
                    _ => Arc::default(),
                };
                let parts = Arc::make_mut(&mut partitions);
                for (&p, reg) in &t.partitions {
                    parts.insert(p, Arc::new(reg.clone()));
                }
                let topic = Arc::new(TopicImage::new(t.name.clone(), id, partitions));
                Arc::make_mut(&mut shards[shard_of(id)]).insert(id, topic);
            }
            // Names change only when topics come or go.
            if !self.deleted_topics.is_empty() || !self.created_names.is_empty() {
                let by_name = Arc::make_mut(&mut image.topics_by_name);
                for t in self.deleted_topics.values() {
                    by_name.remove(t.name());
                }
                for (name, &id) in &self.created_names {
                    by_name.insert(name.clone(), id);
                }
            }
        }
        if !self.configs.is_empty() {
            let configs = Arc::make_mut(&mut image.configs);
            for (res, keys) in &self.configs {
                if keys.is_empty() {
                    configs.remove(res);
                } else {
                    configs.insert(res.clone(), Arc::new(keys.clone()));
                }
            }
        }
        let changes = MetadataChanges::new(self, image.clone());
        (image, changes)
    }
}

fn bad(field: &'static str, value: i64) -> MetadataError {
    MetadataError::InvalidValue { field, value }
}

impl MetadataImage {
    /// The image a snapshot's records describe, stamped with the snapshot's
    /// provenance (`MetadataImage::write_snapshot`'s inverse).
    pub fn from_snapshot<'a>(
        records: impl IntoIterator<Item = &'a MetadataRecord>,
        provenance: MetadataProvenance,
    ) -> Result<MetadataImage, MetadataError> {
        let mut delta = MetadataDelta::new(MetadataImage::empty());
        for r in records {
            delta.replay_record(r)?;
        }
        delta.provenance = provenance;
        Ok(delta.apply().0)
    }
}

#[cfg(test)]
mod tests;
