//! Tests of the partitions publisher: strays, and partitions offline on a
//! full disk.

use sluice_metadata::{MetadataDelta, MetadataImage};
use sluice_storage::{ManualClock, SimFs};

use super::*;

/// A log of `t-0` on disk that the first (empty) image does not name:
/// deleted as a stray, unless the node's metadata log was not known to
/// be applied ([`PartitionsPublisher::keep_strays`]).
fn first_publish_leaves_t0(keep: bool) -> bool {
    let fs = Arc::new(SimFs::new());
    let config = Arc::new(BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap());
    let logs = Arc::new(
        LogManager::open(
            config.log_manager_config(),
            fs.clone(),
            Arc::new(ManualClock::new(1_700_000_000_000)),
        )
        .unwrap(),
    );
    let tp = TopicPartition::new("t", 0);
    logs.get_or_create_log(&tp, LogConfig::default()).unwrap();
    let p = PartitionsPublisher::new(
        BrokerId(1),
        config,
        logs.clone(),
        Arc::new(ReplicaManager::new()),
        fs,
    );
    if keep {
        p.keep_strays();
    }
    let (_, changes) = MetadataDelta::new(MetadataImage::empty()).apply();
    p.publish(&changes);
    logs.on_disk_partitions().contains(&tp)
}

/// A partition this broker leads, created while the disk is full, is
/// offline; once the disk has room the retry brings it online without
/// any metadata change.
#[test]
fn a_partition_offline_on_a_full_disk_comes_back_when_the_disk_has_room() {
    use sluice_metadata::record::{PartitionRecord, TopicRecord};
    use sluice_metadata::{MetadataRecord, PartitionEpoch};
    use sluice_record::{LeaderEpoch, Offset};

    let fs = Arc::new(SimFs::new());
    let config = Arc::new(BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap());
    let logs = Arc::new(
        LogManager::open(
            config.log_manager_config(),
            fs.clone(),
            Arc::new(ManualClock::new(1_700_000_000_000)),
        )
        .unwrap(),
    );
    let replicas = Arc::new(ReplicaManager::new());
    let p = PartitionsPublisher::new(BrokerId(1), config, logs, replicas.clone(), fs.clone());
    let topic_id = uuid::Uuid::from_u128(7);
    let records = [
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }),
        MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id,
            replicas: vec![BrokerId(1)],
            isr: vec![BrokerId(1)],
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader: BrokerId(1),
            leader_recovery_state: 0,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(0),
            directories: Vec::new(),
            eligible_leader_replicas: None,
            last_known_elr: None,
        }),
    ];
    let mut delta = MetadataDelta::new(MetadataImage::empty());
    for (i, r) in records.iter().enumerate() {
        delta.replay(Offset(i as i64), LeaderEpoch(1), r).unwrap();
    }
    let (_, changes) = delta.apply();
    let tp = TopicPartition::new("t", 0);

    fs.set_capacity(Some(0));
    p.publish(&changes);
    assert!(
        replicas.get_partition(&tp).is_none(),
        "created on a full disk"
    );
    assert!(p.failure(&tp).is_some_and(|f| f.no_space));
    p.retry_full_disk();
    assert!(
        replicas.get_partition(&tp).is_none(),
        "the disk is still full"
    );

    fs.set_capacity(None);
    p.retry_full_disk();
    assert!(replicas.get_partition(&tp).is_some(), "still offline");
    assert!(p.failure(&tp).is_none());
}

#[test]
fn strays_are_deleted_only_when_the_first_image_is_complete() {
    assert!(!first_publish_leaves_t0(false), "a stray survived");
    assert!(
        first_publish_leaves_t0(true),
        "a possibly hosted log was deleted"
    );
}
