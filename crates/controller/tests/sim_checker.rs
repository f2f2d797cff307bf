//! The simulations' invariant checker (`common::checker`) can fail: fed
//! histories with one corruption each (a fenced or unregistered leader, a
//! diverging prefix, diverging images, a reused or misplaced broker epoch,
//! two leaders in one epoch, a lost acknowledged operation), it flags
//! each; the same history without the corruption passes.

mod common;

use sluice_controller::{CommittedBatch, LeaderAndEpoch};
use sluice_metadata::record::{
    BrokerRegistrationChangeRecord, PartitionRecord, RegisterBrokerRecord, TopicRecord,
};
use sluice_metadata::{
    BrokerEpoch, BrokerId, MetadataDelta, MetadataImage, MetadataRecord, PartitionEpoch,
};
use sluice_record::{LeaderEpoch, Offset};
use uuid::Uuid;

use common::checker::{Acked, Checker};

const TOPIC: Uuid = Uuid::from_u128(0x7);

fn register(broker: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: BrokerId(broker),
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::from_u128(broker as u128),
        broker_epoch: BrokerEpoch(epoch),
        end_points: Vec::new(),
        features: Vec::new(),
        rack: None,
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    })
}

fn fence(broker: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
        broker_id: BrokerId(broker),
        broker_epoch: BrokerEpoch(epoch),
        fenced: BrokerRegistrationChangeRecord::FENCE,
        in_controlled_shutdown: BrokerRegistrationChangeRecord::NO_CHANGE,
        log_dirs: Vec::new(),
    })
}

fn topic() -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        topic_id: TOPIC,
    })
}

fn partition(leader: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: 0,
        topic_id: TOPIC,
        replicas: vec![BrokerId(leader)],
        isr: vec![BrokerId(leader)],
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: BrokerId(leader),
        leader_recovery_state: 0,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        directories: Vec::new(),
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

fn batch(base: i64, records: Vec<MetadataRecord>) -> CommittedBatch {
    CommittedBatch {
        base_offset: Offset(base),
        epoch: LeaderEpoch(1),
        append_time_ms: 0,
        records,
    }
}

/// The image after replaying `records` from offset 0.
fn image(records: &[MetadataRecord]) -> MetadataImage {
    let mut d = MetadataDelta::new(MetadataImage::empty());
    for (i, r) in records.iter().enumerate() {
        d.replay(Offset(i as i64), LeaderEpoch(1), r).unwrap();
    }
    d.apply().0
}

/// A consistent history: broker 0 registers at offset 0, leads t-0.
fn good() -> Vec<MetadataRecord> {
    vec![register(0, 0), topic(), partition(0)]
}

fn flagged(r: Result<impl std::fmt::Debug, String>, what: &str) {
    match r {
        Err(e) => assert!(e.contains(what), "flagged, but as {e:?} (wanted {what:?})"),
        Ok(v) => panic!("not flagged: {v:?} (wanted {what:?})"),
    }
}

#[test]
fn a_consistent_history_passes() {
    let mut c = Checker::default();
    c.batch(1, &batch(0, good())).unwrap();
    c.batch(2, &batch(0, good())).unwrap();
    c.image("n1", &image(&good())).unwrap();
    c.image("n2", &image(&good())).unwrap();
    c.leader(1, 1, "state").unwrap();
    c.leader_change(
        2,
        LeaderAndEpoch {
            leader: Some(BrokerId(1)),
            epoch: LeaderEpoch(1),
        },
    )
    .unwrap();
    let acked = vec![
        Acked::Registered {
            broker: 0,
            epoch: 0,
        },
        Acked::TopicCreated {
            name: "t".into(),
            id: TOPIC,
        },
    ];
    assert_eq!(c.check_acked(&acked), Ok(0));
}

#[test]
fn a_fenced_leader_is_flagged() {
    let mut recs = good();
    recs.push(fence(0, 0));
    flagged(
        Checker::default().image("n1", &image(&recs)),
        "names a fenced broker",
    );
}

#[test]
fn an_unregistered_leader_is_flagged() {
    let recs = vec![register(0, 0), topic(), partition(5)];
    flagged(
        Checker::default().image("n1", &image(&recs)),
        "names an unregistered broker",
    );
}

#[test]
fn a_diverging_prefix_is_flagged() {
    let mut c = Checker::default();
    c.batch(1, &batch(0, good())).unwrap();
    let mut other = good();
    other[2] = partition(1);
    flagged(c.batch(2, &batch(0, other)), "diverging prefix");
}

#[test]
fn diverging_images_are_flagged() {
    let mut c = Checker::default();
    c.image("n1", &image(&good())).unwrap();
    let other = vec![register(0, 0), register(1, 1), topic()];
    flagged(
        c.image("n2", &image(&other)),
        "diverging images at offset 2",
    );
}

#[test]
fn a_reused_broker_epoch_is_flagged() {
    let mut c = Checker::default();
    c.batch(1, &batch(0, vec![register(0, 0), topic()]))
        .unwrap();
    flagged(
        c.batch(1, &batch(2, vec![register(1, 0)])),
        "broker epoch 0 given twice",
    );
}

#[test]
fn a_broker_epoch_that_is_not_its_offset_is_flagged() {
    let mut c = Checker::default();
    c.batch(1, &batch(0, vec![register(0, 0), topic()]))
        .unwrap();
    flagged(
        c.batch(1, &batch(2, vec![register(0, 1)])),
        "registered at offset 2 with epoch 1",
    );
}

#[test]
fn two_leaders_in_one_epoch_are_flagged() {
    let mut c = Checker::default();
    c.leader(3, 1, "state").unwrap();
    let le = LeaderAndEpoch {
        leader: Some(BrokerId(2)),
        epoch: LeaderEpoch(3),
    };
    flagged(c.leader_change(2, le), "two leaders in epoch 3");
}

#[test]
fn a_lost_acknowledged_operation_is_flagged() {
    let mut c = Checker::default();
    c.batch(1, &batch(0, good())).unwrap();
    let acked = vec![Acked::TopicCreated {
        name: "u".into(),
        id: Uuid::from_u128(9),
    }];
    flagged(c.check_acked(&acked), "is not in the committed log");
    let mut c = Checker::default();
    c.batch(1, &batch(0, good())).unwrap();
    let acked = vec![Acked::Registered {
        broker: 0,
        epoch: 7,
    }];
    flagged(c.check_acked(&acked), "is not in the committed log");
}
