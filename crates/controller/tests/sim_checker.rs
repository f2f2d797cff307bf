//! The simulations' invariant checker (`common::checker`) can fail: fed
//! histories with one corruption each (a fenced or unregistered leader, a
//! diverging prefix, diverging images, a reused or misplaced broker epoch,
//! two leaders in one epoch, a lost acknowledged operation, a fenced
//! member left in an ISR, a leader outside its ISR), it flags each; the
//! same history without the corruption passes.

mod common;

use sluice_controller::{CommittedBatch, LeaderAndEpoch};
use sluice_metadata::record::{
    BrokerRegistrationChangeRecord, PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord,
    TopicRecord,
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

/// Brokers 0 and 1, topic t-0 on replicas [0, 1] led by 0 with ISR [0, 1].
fn two_replicas() -> Vec<MetadataRecord> {
    let MetadataRecord::Partition(mut p) = partition(0) else {
        unreachable!()
    };
    p.replicas = vec![BrokerId(0), BrokerId(1)];
    p.isr = vec![BrokerId(0), BrokerId(1)];
    vec![
        register(0, 0),
        register(1, 1),
        topic(),
        MetadataRecord::Partition(p),
    ]
}

fn change(isr: &[i32], leader: Option<i32>) -> MetadataRecord {
    let mut c = PartitionChangeRecord::new(TOPIC, 0);
    c.isr = Some(isr.iter().map(|&b| BrokerId(b)).collect());
    if let Some(l) = leader {
        c.leader = BrokerId(l);
    }
    MetadataRecord::PartitionChange(c)
}

#[test]
fn a_fenced_member_of_a_larger_isr_is_flagged_and_a_last_leaderless_one_is_not() {
    // Fenced, but still in an ISR of two: what fencing must never leave.
    let mut recs = two_replicas();
    recs.push(fence(1, 1));
    flagged(
        Checker::default().image("n1", &image(&recs)),
        "1 cannot serve",
    );
    // As the controller does it: out of the ISR first.
    let mut recs = two_replicas();
    recs.push(change(&[0], None));
    recs.push(fence(1, 1));
    Checker::default().image("n1", &image(&recs)).unwrap();
    // Then the last member fenced: it stays, leaderless; that is sound.
    recs.push(change(&[0], Some(-1)));
    recs.push(fence(0, 0));
    Checker::default().image("n1", &image(&recs)).unwrap();
    // The same with a leader still named is not.
    let mut recs = two_replicas();
    recs.push(change(&[0], None));
    recs.push(fence(0, 0));
    flagged(
        Checker::default().image("n1", &image(&recs)),
        "names a fenced broker",
    );
}

#[test]
fn a_leader_outside_its_isr_and_a_broken_isr_are_flagged() {
    let mut recs = two_replicas();
    recs.push(change(&[1], None));
    flagged(
        Checker::default().image("n1", &image(&recs)),
        "a broker outside its ISR",
    );
    let mut recs = two_replicas();
    recs.push(change(&[], Some(-1)));
    flagged(Checker::default().image("n1", &image(&recs)), "empty");
}

#[test]
fn a_lost_acknowledged_isr_change_is_flagged() {
    let checker = || {
        let mut recs = two_replicas();
        recs.push(change(&[0], None));
        let mut c = Checker::default();
        c.batch(1, &batch(0, recs)).unwrap();
        c
    };
    let acked = |isr: &[i32]| {
        vec![Acked::IsrChanged {
            topic: TOPIC,
            partition: 0,
            isr: isr.to_vec(),
        }]
    };
    // The change's ISR, and the creation's (an answer that changed
    // nothing), are in the log; an ISR no record set is not.
    assert_eq!(checker().check_acked(&acked(&[0])), Ok(0));
    assert_eq!(checker().check_acked(&acked(&[0, 1])), Ok(0));
    flagged(
        checker().check_acked(&acked(&[1, 0])),
        "is not in the committed log",
    );
}

#[test]
fn with_elr_an_empty_leaderless_isr_passes_and_a_fenced_or_doubled_member_does_not() {
    let elr = || Checker::with_elr(true);
    let with_elr = |isr: &[i32], elr: &[i32], leader: i32| {
        let mut c = PartitionChangeRecord::new(TOPIC, 0);
        c.isr = Some(isr.iter().map(|&b| BrokerId(b)).collect());
        c.eligible_leader_replicas = Some(elr.iter().map(|&b| BrokerId(b)).collect());
        c.leader = BrokerId(leader);
        MetadataRecord::PartitionChange(c)
    };
    // Both fenced, the ISR emptied into the ELR: sound with ELR only.
    let mut recs = two_replicas();
    recs.push(with_elr(&[0], &[1], 0));
    recs.push(with_elr(&[], &[0, 1], -1));
    recs.push(fence(1, 1));
    recs.push(fence(0, 0));
    elr().image("n1", &image(&recs)).unwrap();
    flagged(Checker::default().image("n1", &image(&recs)), "empty");
    // With ELR even the last leaderless member may not be fenced.
    let mut recs = two_replicas();
    recs.push(with_elr(&[0], &[1], 0));
    recs.push(with_elr(&[0], &[1], -1));
    recs.push(fence(0, 0));
    flagged(elr().image("n1", &image(&recs)), "0 cannot serve");
    // A broker in both lists; an ELR without ELR enabled.
    let mut recs = two_replicas();
    recs.push(with_elr(&[0], &[0], 0));
    flagged(
        elr().image("n1", &image(&recs)),
        "in both the ISR and the ELR",
    );
    let mut recs = two_replicas();
    recs.push(with_elr(&[0], &[1], 0));
    flagged(
        Checker::default().image("n1", &image(&recs)),
        "an ELR without ELR enabled",
    );
}
