//! What one applied delta changed, for the broker-side publishers that act
//! on it (create or delete logs, become leader or follower, reload
//! configs). [`MetadataChanges::local_changes`] is Kafka's
//! `TopicsDelta.localChanges(brokerId)`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::MetadataDelta;
use crate::image::{MetadataImage, PartitionRegistration, TopicImage};
use crate::types::{BrokerId, ConfigResource};

/// The partitions of one topic that a delta created or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicChanges {
    pub name: String,
    /// The topic did not exist in the previous image (under this id).
    pub created: bool,
    /// Each created or changed partition's new registration.
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// What changed between [`MetadataChanges::previous`] and
/// [`MetadataChanges::image`].
#[derive(Clone, Debug)]
pub struct MetadataChanges {
    pub previous: MetadataImage,
    pub image: MetadataImage,
    pub features_changed: bool,
    pub brokers_changed: BTreeSet<BrokerId>,
    /// Created or changed topics, by id.
    pub topics: BTreeMap<Uuid, TopicChanges>,
    /// Topics of the previous image that were removed, as they were.
    pub deleted_topics: BTreeMap<Uuid, Arc<TopicImage>>,
    pub configs_changed: BTreeSet<ConfigResource>,
    pub producer_ids_changed: bool,
    /// SCRAM credentials were set or removed.
    pub scram_changed: bool,
    /// ACLs were created or removed.
    pub acls_changed: bool,
    /// Client quotas were set or removed.
    pub quotas_changed: bool,
}

/// One partition as a broker-side publisher needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPartition {
    pub topic_id: Uuid,
    pub topic: String,
    pub partition: i32,
    /// The new registration (for deletes: the last one).
    pub registration: PartitionRegistration,
}

/// What one broker must do after a delta (Kafka's `LocalReplicaChanges`).
/// Every list is in (topic id, partition) order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalReplicaChanges {
    /// Replicas this broker no longer hosts (removed from the replica set,
    /// or the topic was deleted): stop and delete the log.
    pub deletes: Vec<LocalPartition>,
    /// Partitions this broker leads whose registration changed.
    pub leaders: Vec<LocalPartition>,
    /// Those of `leaders` whose leader epoch changed (newly elected).
    pub elected_leaders: Vec<LocalPartition>,
    /// Partitions this broker follows whose registration changed.
    pub followers: Vec<LocalPartition>,
}

impl MetadataChanges {
    pub(super) fn new(delta: MetadataDelta, image: MetadataImage) -> Self {
        MetadataChanges {
            features_changed: delta.features.is_some(),
            brokers_changed: delta.changed_brokers,
            topics: delta
                .topics
                .into_iter()
                .map(|(id, t)| {
                    let changes = TopicChanges {
                        name: t.name,
                        created: t.created,
                        partitions: t.partitions,
                    };
                    (id, changes)
                })
                .collect(),
            deleted_topics: delta.deleted_topics,
            configs_changed: delta.configs.into_keys().collect(),
            producer_ids_changed: delta.next_producer_id.is_some(),
            scram_changed: delta.scram.is_some(),
            acls_changed: delta.acls.is_some(),
            quotas_changed: delta.quotas.is_some(),
            previous: delta.base,
            image,
        }
    }

    /// What `broker` must do to its replicas.
    pub fn local_changes(&self, broker: BrokerId) -> LocalReplicaChanges {
        let mut out = LocalReplicaChanges::default();
        let local =
            |id: Uuid, topic: &str, partition: i32, reg: &PartitionRegistration| LocalPartition {
                topic_id: id,
                topic: topic.to_owned(),
                partition,
                registration: reg.clone(),
            };
        for (&id, t) in &self.topics {
            let previous = (!t.created)
                .then(|| self.previous.topic_by_id(id))
                .flatten();
            for (&p, reg) in &t.partitions {
                let prev = previous.and_then(|old| old.partition(p));
                if !reg.has_replica(broker) {
                    if let Some(prev) = prev.filter(|prev| prev.has_replica(broker)) {
                        out.deletes.push(local(id, &t.name, p, prev));
                    }
                    continue;
                }
                if prev.is_some_and(|prev| prev.partition_epoch == reg.partition_epoch) {
                    continue;
                }
                let info = local(id, &t.name, p, reg);
                if reg.leader == broker {
                    if prev.is_none_or(|prev| prev.leader_epoch != reg.leader_epoch) {
                        out.elected_leaders.push(info.clone());
                    }
                    out.leaders.push(info);
                } else {
                    out.followers.push(info);
                }
            }
        }
        for (&id, t) in &self.deleted_topics {
            for (&p, reg) in t.partitions() {
                if reg.has_replica(broker) {
                    out.deletes.push(local(id, t.name(), p, reg));
                }
            }
        }
        out.deletes.sort_by_key(|l| (l.topic_id, l.partition));
        out
    }
}
