//! The single-node broker's metadata as Kafka's metadata records: what
//! the store's files hold, bootstrapped into the metadata log at start,
//! and the records of each change the store commits.
//!
//! The mapping (see `sluice_metadata`'s crate docs): a topic is a
//! `TopicRecord` plus one `PartitionRecord` per partition with this node
//! as the only replica, ISR member and leader, leader epoch 0 and
//! partition epoch 0 (what the single-node release stamped every batch
//! with), and a TOPIC `ConfigRecord` per override; a KIP-848 group
//! override is a GROUP `ConfigRecord`; the node itself is a
//! `RegisterBrokerRecord` with its advertised listeners.

use std::collections::BTreeMap;

use sluice_metadata::record::{
    BrokerEndpoint, ConfigRecord, PartitionRecord, RegisterBrokerRecord, RemoveTopicRecord,
    TopicRecord,
};
use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResourceType, MetadataRecord, PartitionEpoch};
use sluice_record::LeaderEpoch;
use uuid::Uuid;

use super::TopicMetadata;
use crate::config::BrokerConfig;

/// Kafka's `SecurityProtocol.PLAINTEXT` id (the only one Sluice serves).
const PLAINTEXT: i16 = 0;

/// This node's registration: its advertised listeners, unfenced.
pub fn register_broker(config: &BrokerConfig, directory_id: Uuid) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: BrokerId(config.node_id),
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::new_v4(),
        broker_epoch: BrokerEpoch(0),
        end_points: config
            .advertised_listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
                security_protocol: PLAINTEXT,
            })
            .collect(),
        features: Vec::new(),
        rack: None,
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: if directory_id.is_nil() {
            Vec::new()
        } else {
            vec![directory_id]
        },
    })
}

/// One partition led by `node`, its only replica.
pub fn partition_record(topic_id: Uuid, partition: i32, node: BrokerId) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: partition,
        topic_id,
        replicas: vec![node],
        isr: vec![node],
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: node,
        leader_recovery_state: 0,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        directories: Vec::new(),
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

/// A new topic: its `TopicRecord`, partitions and config overrides.
pub fn create_topic(topic: &TopicMetadata, node: BrokerId) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::Topic(TopicRecord {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
    })];
    out.extend((0..topic.partitions).map(|p| partition_record(topic.topic_id, p, node)));
    out.extend(config_changes(
        ConfigResourceType::Topic,
        &topic.name,
        &BTreeMap::new(),
        &topic.configs,
    ));
    out
}

pub fn remove_topic(topic_id: Uuid) -> Vec<MetadataRecord> {
    vec![MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })]
}

/// The records that turn the overrides `before` of a resource into `after`:
/// one per key set or changed, one with no value per key removed.
pub fn config_changes(
    resource_type: ConfigResourceType,
    resource_name: &str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &str, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: resource_type.id(),
            resource_name: resource_name.to_string(),
            name: name.to_string(),
            value: value.cloned(),
        })
    };
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|k| record(k, None));
    let set = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| record(k, Some(v)));
    removed.chain(set).collect()
}

/// Everything the store's files hold, as the records that build the same
/// state from an empty image.
pub fn bootstrap_records(
    config: &BrokerConfig,
    directory_id: Uuid,
    topics: &BTreeMap<String, TopicMetadata>,
    group_configs: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<MetadataRecord> {
    let node = BrokerId(config.node_id);
    let mut out = vec![register_broker(config, directory_id)];
    for t in topics.values() {
        out.extend(create_topic(t, node));
    }
    for (group, keys) in group_configs {
        out.extend(config_changes(
            ConfigResourceType::Group,
            group,
            &BTreeMap::new(),
            keys,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::{ConfigResource, MetadataDelta, MetadataImage};
    use sluice_record::Offset;

    #[test]
    fn bootstrap_records_rebuild_the_stores_state() {
        let config = BrokerConfig::with_overrides(&[("node.id", "3")]).unwrap();
        let id = Uuid::from_u128(7);
        let topics = BTreeMap::from([(
            "orders".to_string(),
            TopicMetadata {
                name: "orders".into(),
                topic_id: id,
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
        )]);
        let groups = BTreeMap::from([(
            "g".to_string(),
            BTreeMap::from([("consumer.session.timeout.ms".into(), "50000".into())]),
        )]);
        let records = bootstrap_records(&config, Uuid::nil(), &topics, &groups);
        let mut delta = MetadataDelta::new(MetadataImage::empty());
        for (i, r) in records.iter().enumerate() {
            delta.replay(Offset(i as i64), LeaderEpoch(1), r).unwrap();
        }
        let (image, _) = delta.apply();
        let t = image.topic("orders").unwrap();
        assert_eq!((t.id(), t.partitions().len()), (id, 3));
        let p = t.partition(2).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (BrokerId(3), LeaderEpoch(0)));
        assert_eq!(p.replicas, vec![BrokerId(3)]);
        let res = |t, n: &str| ConfigResource {
            resource_type: t,
            name: n.into(),
        };
        assert_eq!(
            image.config(&res(ConfigResourceType::Topic, "orders"))["retention.ms"],
            "1000"
        );
        assert_eq!(image.config(&res(ConfigResourceType::Group, "g")).len(), 1);
        assert!(image.broker(BrokerId(3)).is_some());
    }

    #[test]
    fn config_changes_set_and_remove_exactly_the_difference() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let records = config_changes(
            ConfigResourceType::Topic,
            "t",
            &m(&[("a", "1"), ("b", "2")]),
            &m(&[("b", "3"), ("c", "4")]),
        );
        let got: Vec<(String, Option<String>)> = records
            .into_iter()
            .map(|r| match r {
                MetadataRecord::Config(c) => (c.name, c.value),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), None),
                ("b".into(), Some("3".into())),
                ("c".into(), Some("4".into()))
            ]
        );
    }
}
