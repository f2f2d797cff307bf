use sluice_record::{LeaderEpoch, Offset, ProducerId};
use uuid::Uuid;

use super::*;
use crate::types::{BrokerEpoch, PartitionEpoch};

const T: Uuid = Uuid::from_u128(0xabc);

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|&i| BrokerId(i)).collect()
}

fn register(id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: BrokerId(id),
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::from_u128(id as u128),
        broker_epoch: BrokerEpoch(epoch),
        end_points: Vec::new(),
        features: Vec::new(),
        rack: None,
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    })
}

fn topic(name: &str, id: Uuid) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        topic_id: id,
    })
}

fn partition(id: Uuid, p: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: p,
        topic_id: id,
        replicas: b(replicas),
        isr: b(replicas),
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: BrokerId(replicas[0]),
        leader_recovery_state: 0,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        directories: Vec::new(),
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

fn config(kind: ConfigResourceType, name: &str, key: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: kind.id(),
        resource_name: name.into(),
        name: key.into(),
        value: value.map(str::to_owned),
    })
}

fn apply(base: &MetadataImage, records: &[MetadataRecord]) -> (MetadataImage, MetadataChanges) {
    let mut delta = MetadataDelta::new(base.clone());
    let start = base.provenance().last_offset.0 + 1;
    for (i, r) in records.iter().enumerate() {
        delta
            .replay(Offset(start + i as i64), LeaderEpoch(1), r)
            .unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
    delta.apply()
}

fn three_brokers_and_a_topic() -> (MetadataImage, MetadataChanges) {
    apply(
        &MetadataImage::empty(),
        &[
            register(1, 10),
            register(2, 11),
            register(3, 12),
            topic("orders", T),
            partition(T, 0, &[1, 2]),
            partition(T, 1, &[2, 3]),
        ],
    )
}

fn names(list: &[LocalPartition]) -> Vec<(String, i32)> {
    list.iter()
        .map(|l| (l.topic.clone(), l.partition))
        .collect()
}

#[test]
fn a_created_topic_makes_leaders_and_followers() {
    let (image, changes) = three_brokers_and_a_topic();
    assert_eq!(image.topic("orders").unwrap().partitions().len(), 2);
    assert!(changes.topics[&T].created);
    let one = changes.local_changes(BrokerId(1));
    assert_eq!(names(&one.leaders), [("orders".to_owned(), 0)]);
    assert_eq!(names(&one.elected_leaders), [("orders".to_owned(), 0)]);
    assert!(one.followers.is_empty() && one.deletes.is_empty());
    let two = changes.local_changes(BrokerId(2));
    assert_eq!(names(&two.leaders), [("orders".to_owned(), 1)]);
    assert_eq!(names(&two.followers), [("orders".to_owned(), 0)]);
    assert_eq!(
        changes.local_changes(BrokerId(4)),
        LocalReplicaChanges::default()
    );
}

#[test]
fn partition_changes_bump_epochs_like_kafka() {
    let (image, _) = three_brokers_and_a_topic();
    // ISR shrink: partition epoch only.
    let mut shrink = PartitionChangeRecord::new(T, 0);
    shrink.isr = Some(b(&[1]));
    let (image, changes) = apply(&image, &[MetadataRecord::PartitionChange(shrink)]);
    let p = image.topic("orders").unwrap().partition(0).unwrap().clone();
    assert_eq!((p.leader_epoch.0, p.partition_epoch.0), (0, 1));
    assert_eq!(p.isr, b(&[1]));
    // The leader sees a changed registration but no election; the follower
    // is told too (it was dropped from the ISR).
    let one = changes.local_changes(BrokerId(1));
    assert_eq!(one.leaders.len(), 1);
    assert!(one.elected_leaders.is_empty());
    assert_eq!(changes.local_changes(BrokerId(2)).followers.len(), 1);

    // Leader change to 2: both epochs.
    let mut elect = PartitionChangeRecord::new(T, 0);
    elect.leader = BrokerId(2);
    elect.isr = Some(b(&[1, 2]));
    let (image, changes) = apply(&image, &[MetadataRecord::PartitionChange(elect)]);
    let p = image.topic("orders").unwrap().partition(0).unwrap();
    assert_eq!(
        (p.leader.0, p.leader_epoch.0, p.partition_epoch.0),
        (2, 1, 2)
    );
    assert_eq!(changes.local_changes(BrokerId(2)).elected_leaders.len(), 1);
    assert_eq!(changes.local_changes(BrokerId(1)).followers.len(), 1);

    // Reassignment away from 1 deletes its replica.
    let mut move_off = PartitionChangeRecord::new(T, 0);
    move_off.replicas = Some(b(&[2, 3]));
    move_off.isr = Some(b(&[2, 3]));
    let (_, changes) = apply(&image, &[MetadataRecord::PartitionChange(move_off)]);
    let one = changes.local_changes(BrokerId(1));
    assert_eq!(names(&one.deletes), [("orders".to_owned(), 0)]);
    assert_eq!(one.deletes[0].registration.replicas, b(&[1, 2]));
    assert_eq!(changes.local_changes(BrokerId(3)).followers.len(), 1);
}

#[test]
fn removing_a_topic_deletes_its_replicas_and_configs() {
    let (image, _) = three_brokers_and_a_topic();
    let (image, _) = apply(
        &image,
        &[config(
            ConfigResourceType::Topic,
            "orders",
            "retention.ms",
            Some("1000"),
        )],
    );
    let orders = ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: "orders".into(),
    };
    assert_eq!(image.config(&orders).get("retention.ms").unwrap(), "1000");
    let (after, changes) = apply(
        &image,
        &[MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: T,
        })],
    );
    assert!(after.topic("orders").is_none() && after.topic_by_id(T).is_none());
    assert!(after.config(&orders).is_empty());
    assert!(changes.configs_changed.contains(&orders));
    let two = changes.local_changes(BrokerId(2));
    assert_eq!(
        names(&two.deletes),
        [("orders".to_owned(), 0), ("orders".to_owned(), 1)]
    );
    // The name is free again, even within one delta.
    let other = Uuid::from_u128(0xdef);
    let (again, _) = apply(
        &image,
        &[
            MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: T }),
            topic("orders", other),
            partition(other, 0, &[3]),
        ],
    );
    assert_eq!(again.topic("orders").unwrap().id(), other);
    assert_eq!(again.topic_count(), 1);
    assert_eq!(again.topics().count(), 1);
}

#[test]
fn records_that_do_not_fit_are_errors_and_change_nothing() {
    let (image, _) = three_brokers_and_a_topic();
    let unknown = Uuid::from_u128(0x999);
    let mut bad_leader = PartitionChangeRecord::new(T, 0);
    bad_leader.leader = BrokerId(3); // not a replica of partition 0
    let mut fence_wrong_epoch = BrokerRegistrationChangeRecord {
        broker_id: BrokerId(1),
        broker_epoch: BrokerEpoch(9),
        fenced: 1,
        in_controlled_shutdown: 0,
        log_dirs: Vec::new(),
    };
    let cases: Vec<(MetadataRecord, MetadataError)> = vec![
        (
            MetadataRecord::PartitionChange(PartitionChangeRecord::new(T, 7)),
            MetadataError::UnknownPartition {
                topic_id: T,
                partition: 7,
            },
        ),
        (
            MetadataRecord::PartitionChange(PartitionChangeRecord::new(unknown, 0)),
            MetadataError::UnknownTopicId(unknown),
        ),
        (
            partition(unknown, 0, &[1]),
            MetadataError::UnknownTopicId(unknown),
        ),
        (
            MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: unknown }),
            MetadataError::UnknownTopicId(unknown),
        ),
        (
            topic("orders", unknown),
            MetadataError::TopicAlreadyExists("orders".into()),
        ),
        (topic("other", T), MetadataError::TopicIdAlreadyExists(T)),
        (
            MetadataRecord::PartitionChange(bad_leader),
            MetadataError::InvalidPartition {
                topic_id: T,
                partition: 0,
                reason: "leader is not a replica",
            },
        ),
        (
            partition(T, 0, &[1]),
            MetadataError::InvalidPartition {
                topic_id: T,
                partition: 0,
                reason: "partition already exists",
            },
        ),
        (
            partition(T, 5, &[1, 1]),
            MetadataError::InvalidPartition {
                topic_id: T,
                partition: 5,
                reason: "a replica is listed twice",
            },
        ),
        (
            config(ConfigResourceType::Topic, "nope", "k", Some("v")),
            MetadataError::UnknownTopic("nope".into()),
        ),
        (
            MetadataRecord::BrokerRegistrationChange(fence_wrong_epoch.clone()),
            MetadataError::UnknownBroker {
                broker: BrokerId(1),
                epoch: BrokerEpoch(9),
            },
        ),
        (
            register(1, 10),
            MetadataError::InvalidValue {
                field: "BrokerEpoch",
                value: 10,
            },
        ),
        (
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: BrokerId(1),
                broker_epoch: BrokerEpoch(10),
                next_producer_id: ProducerId(0),
            }),
            MetadataError::ProducerIdNotIncreasing {
                current: 0,
                next: 0,
            },
        ),
    ];
    fence_wrong_epoch.broker_epoch = BrokerEpoch(10);
    fence_wrong_epoch.fenced = 5;
    let mut cases = cases;
    cases.push((
        MetadataRecord::BrokerRegistrationChange(fence_wrong_epoch),
        MetadataError::InvalidValue {
            field: "Fenced",
            value: 5,
        },
    ));
    let mut bad_type = match config(ConfigResourceType::Broker, "", "k", None) {
        MetadataRecord::Config(c) => c,
        _ => unreachable!(),
    };
    bad_type.resource_type = 3;
    cases.push((
        MetadataRecord::Config(bad_type),
        MetadataError::UnknownConfigResourceType(3),
    ));

    for (record, want) in cases {
        let mut delta = MetadataDelta::new(image.clone());
        // A valid record first, so "unchanged" means more than "empty".
        delta
            .replay(Offset(100), LeaderEpoch(2), &register(4, 100))
            .unwrap();
        let before = delta.clone().apply().0;
        assert_eq!(
            delta.replay(Offset(101), LeaderEpoch(2), &record),
            Err(want),
            "{record:?}"
        );
        assert_eq!(delta.apply().0, before, "{record:?} changed the delta");
    }
}

#[test]
fn offsets_must_increase_and_epochs_must_not_go_back() {
    let (image, _) = three_brokers_and_a_topic();
    let last = image.provenance().last_offset;
    let noop = MetadataRecord::NoOp(NoOpRecord);
    let mut delta = MetadataDelta::new(image);
    assert_eq!(
        delta.replay(last, LeaderEpoch(1), &noop),
        Err(MetadataError::OffsetNotIncreasing { last, offset: last })
    );
    assert!(delta.replay(last.plus(1), LeaderEpoch(0), &noop).is_err());
    delta.replay(last.plus(5), LeaderEpoch(3), &noop).unwrap();
    assert_eq!(delta.provenance().last_offset, last.plus(5));
}

#[test]
fn broker_registration_changes_follow_kafka() {
    let (image, _) = three_brokers_and_a_topic();
    let change = |fenced, cs| {
        MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: BrokerId(2),
            broker_epoch: BrokerEpoch(11),
            fenced,
            in_controlled_shutdown: cs,
            log_dirs: Vec::new(),
        })
    };
    let (image, changes) = apply(&image, &[change(1, 0)]);
    assert!(image.broker(BrokerId(2)).unwrap().fenced);
    assert!(changes.brokers_changed.contains(&BrokerId(2)));
    let placeable: Vec<_> = crate::placement::usable_brokers(&image)
        .into_iter()
        .map(|b| b.id.0)
        .collect();
    assert_eq!(placeable, [1, 3]);
    let (image, _) = apply(&image, &[change(-1, 1)]);
    let two = image.broker(BrokerId(2)).unwrap();
    assert!(!two.fenced && two.in_controlled_shutdown && !two.is_usable());
    let (image, _) = apply(
        &image,
        &[MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
            broker_id: BrokerId(2),
            broker_epoch: BrokerEpoch(11),
        })],
    );
    assert!(image.broker(BrokerId(2)).is_none());
}

/// What the single-node broker keeps today (`crates/broker/src/metadata.rs`,
/// `config/dynamic.rs`, `storage/src/producer_id.rs`) as records: topics
/// with ids, partition counts and config overrides; per-broker and
/// cluster-default dynamic broker configs; group configs; the producer-id
/// high-water mark.
#[test]
fn the_single_node_brokers_state_maps_onto_records() {
    let node = 1;
    let mut records = vec![
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 27,
        }),
        register(node, 0),
        topic("orders", T),
    ];
    records.extend((0..3).map(|p| partition(T, p, &[node])));
    records.extend([
        config(
            ConfigResourceType::Topic,
            "orders",
            "cleanup.policy",
            Some("compact"),
        ),
        config(
            ConfigResourceType::Broker,
            "",
            "log.retention.ms",
            Some("60000"),
        ),
        config(
            ConfigResourceType::Broker,
            "1",
            "log.cleaner.threads",
            Some("2"),
        ),
        config(
            ConfigResourceType::Group,
            "g1",
            "consumer.session.timeout.ms",
            Some("50000"),
        ),
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: BrokerId(node),
            broker_epoch: BrokerEpoch(0),
            next_producer_id: ProducerId(2000),
        }),
    ]);
    let (image, _) = apply(&MetadataImage::empty(), &records);
    let orders = image.topic("orders").unwrap();
    assert_eq!((orders.id(), orders.partitions().len()), (T, 3));
    let res = |t, n: &str| ConfigResource {
        resource_type: t,
        name: n.into(),
    };
    assert_eq!(
        image
            .config(&res(ConfigResourceType::Topic, "orders"))
            .len(),
        1
    );
    assert_eq!(image.config(&res(ConfigResourceType::Broker, "")).len(), 1);
    assert_eq!(image.config(&res(ConfigResourceType::Broker, "1")).len(), 1);
    assert_eq!(image.config(&res(ConfigResourceType::Group, "g1")).len(), 1);
    assert_eq!(image.next_producer_id(), ProducerId(2000));
    assert_eq!(image.feature_level("metadata.version"), Some(27));
    // Deleting a key removes it; an empty resource disappears.
    let (image, _) = apply(
        &image,
        &[config(
            ConfigResourceType::Group,
            "g1",
            "consumer.session.timeout.ms",
            None,
        )],
    );
    assert!(!image
        .configs()
        .contains_key(&res(ConfigResourceType::Group, "g1")));
}

fn scram(name: &str, mechanism: i8, iterations: i32) -> MetadataRecord {
    MetadataRecord::UserScramCredential(UserScramCredentialRecord {
        name: name.into(),
        mechanism,
        salt: vec![1, 2, 3],
        stored_key: vec![4; 32],
        server_key: vec![5; 32],
        iterations,
    })
}

#[test]
fn scram_credentials_are_set_replaced_removed_and_snapshotted() {
    let mut d = MetadataDelta::new(MetadataImage::empty());
    d.replay_record(&scram("alice", 1, 4096)).unwrap();
    d.replay_record(&scram("alice", 2, 8192)).unwrap();
    d.replay_record(&scram("bob", 1, 4096)).unwrap();
    // Invalid ones change nothing.
    assert!(d.replay_record(&scram("", 1, 4096)).is_err());
    assert!(d.replay_record(&scram("carol", 3, 4096)).is_err());
    let (image, changes) = d.apply();
    assert!(changes.scram_changed);
    assert_eq!(image.scram_credentials().len(), 3);
    assert_eq!(image.scram_credential("alice", 2).unwrap().iterations, 8192);

    let mut d = MetadataDelta::new(image.clone());
    d.replay_record(&scram("alice", 1, 5000)).unwrap();
    d.replay_record(&MetadataRecord::RemoveUserScramCredential(
        RemoveUserScramCredentialRecord {
            name: "bob".into(),
            mechanism: 1,
        },
    ))
    .unwrap();
    assert!(d
        .replay_record(&MetadataRecord::RemoveUserScramCredential(
            RemoveUserScramCredentialRecord {
                name: "bob".into(),
                mechanism: 2,
            },
        ))
        .is_err());
    let (next, _) = d.apply();
    assert_eq!(next.scram_credential("alice", 1).unwrap().iterations, 5000);
    assert!(next.scram_credential("bob", 1).is_none());
    // The base image is untouched, and a snapshot recreates the image.
    assert!(image.scram_credential("bob", 1).is_some());
    let again = MetadataImage::from_snapshot(&next.write_snapshot(), next.provenance()).unwrap();
    assert_eq!(again, next);
    assert!(!MetadataImage::empty()
        .scram_credentials()
        .contains_key(&("x".into(), 1)));
}

fn acl(id: u128, name: &str, pattern_type: i8, operation: i8) -> MetadataRecord {
    MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
        id: Uuid::from_u128(id),
        resource_type: 2,
        resource_name: name.into(),
        pattern_type,
        principal: "User:alice".into(),
        host: "*".into(),
        operation,
        permission_type: 3,
    })
}

#[test]
fn acls_are_created_removed_indexed_and_snapshotted() {
    let mut d = MetadataDelta::new(MetadataImage::empty());
    d.replay_record(&acl(1, "t", 3, 3)).unwrap();
    d.replay_record(&acl(2, "pre", 4, 4)).unwrap();
    // A used id, a MATCH pattern, an ANY operation, an empty name: refused.
    assert!(d.replay_record(&acl(1, "u", 3, 3)).is_err());
    assert!(d.replay_record(&acl(3, "u", 2, 3)).is_err());
    assert!(d.replay_record(&acl(3, "u", 3, 1)).is_err());
    assert!(d.replay_record(&acl(3, "", 3, 3)).is_err());
    let (image, changes) = d.apply();
    assert!(changes.acls_changed);
    assert_eq!(image.acls().len(), 2);
    assert_eq!(image.acls().index().len(), 2);

    let mut d = MetadataDelta::new(image.clone());
    d.replay_record(&MetadataRecord::RemoveAccessControlEntry(
        RemoveAccessControlEntryRecord {
            id: Uuid::from_u128(1),
        },
    ))
    .unwrap();
    assert!(d
        .replay_record(&MetadataRecord::RemoveAccessControlEntry(
            RemoveAccessControlEntryRecord {
                id: Uuid::from_u128(9),
            },
        ))
        .is_err());
    let (next, _) = d.apply();
    assert_eq!(next.acls().len(), 1);
    assert_eq!(next.acls().index().len(), 1);
    assert_eq!(image.acls().len(), 2, "the base image is untouched");
    let again = MetadataImage::from_snapshot(&next.write_snapshot(), next.provenance()).unwrap();
    assert_eq!(again, next);
    let (_, no_acl_change) = MetadataDelta::new(next).apply();
    assert!(!no_acl_change.acls_changed);
}
