//! QuorumController over the in-memory log: each operation, its errors,
//! and answers that follow commits.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::log::LogError;
use sluice_metadata::record::RegisterBrokerRecord;
use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, MetadataRecord};
use sluice_record::ProducerId;
use sluice_storage::ManualClock;
use uuid::Uuid;

use super::*;
use crate::testing::MemoryLog;

pub(crate) fn broker_record(
    id: i32,
    epoch: i64,
    rack: Option<&str>,
    fenced: bool,
) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: BrokerId(id),
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::from_u128(id as u128 + 1),
        broker_epoch: BrokerEpoch(epoch),
        end_points: Vec::new(),
        features: Vec::new(),
        rack: rack.map(str::to_owned),
        fenced,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    })
}

struct Fixture {
    log: Arc<MemoryLog>,
    clock: Arc<ManualClock>,
    c: Arc<QuorumController>,
}

/// A controller on node 1 with `brokers` registered (unfenced) by
/// bootstrap records.
async fn fixture(brokers: &[(i32, Option<&str>)], validator: Arc<dyn ConfigValidator>) -> Fixture {
    let config = ControllerConfig {
        default_num_partitions: 3,
        default_replication_factor: 1,
        ..ControllerConfig::default()
    };
    fixture_with(brokers, validator, config).await
}

async fn fixture_with(
    brokers: &[(i32, Option<&str>)],
    validator: Arc<dyn ConfigValidator>,
    config: ControllerConfig,
) -> Fixture {
    let log = MemoryLog::new(BrokerId(1));
    if !brokers.is_empty() {
        let records = brokers
            .iter()
            .map(|&(id, rack)| broker_record(id, 0, rack, false))
            .collect();
        log.append(sluice_record::LeaderEpoch(1), records)
            .await
            .unwrap();
    }
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c = Arc::new(QuorumController::start(
        log.clone(),
        config,
        validator,
        clock.clone(),
    ));
    Fixture { log, clock, c }
}

async fn three_brokers() -> Fixture {
    fixture(
        &[(1, Some("a")), (2, Some("b")), (3, Some("c"))],
        Arc::new(PermissiveValidator),
    )
    .await
}

fn topic(name: &str, partitions: i32, rf: i16) -> CreateTopic {
    CreateTopic {
        num_partitions: partitions,
        replication_factor: rf,
        ..CreateTopic::named(name)
    }
}

#[tokio::test]
async fn create_topics_answers_after_commit_with_placed_replicas() {
    let f = three_brokers().await;
    let res =
        f.c.create_topics(vec![topic("orders", 6, 3)], false)
            .await
            .unwrap();
    let created = res[0].as_ref().unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (6, 3));
    // The answer came after the commit: the controller's image has it.
    let image = f.c.image();
    let t = image.topic("orders").unwrap();
    assert_eq!(t.id(), created.topic_id);
    assert_eq!(t.partitions().len(), 6);
    for reg in t.partitions().values() {
        assert_eq!(reg.replicas.len(), 3);
        assert_eq!(reg.leader, reg.replicas[0]);
        assert_eq!(reg.isr, vec![reg.leader], "ISR is the leader alone");
    }
    // One batch: TopicRecord + 6 PartitionRecords.
    let batches = f.log.batches();
    assert_eq!(batches.last().unwrap().records.len(), 7);
}

#[tokio::test]
async fn create_topics_errors_have_kafkas_meanings() {
    let f = three_brokers().await;
    f.c.create_topics(vec![topic("a.b", 1, 1)], false)
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    let res =
        f.c.create_topics(
            vec![
                topic("a.b", 1, 1),
                topic("a_b", 1, 1),
                topic("bad name", 1, 1),
                topic("zero", 0, 1),
                topic("rf0", 1, 0),
                topic("rf4", 1, 4),
                topic("dup", 1, 1),
                topic("dup", 1, 1),
                topic("fine", 2, 2),
            ],
            false,
        )
        .await
        .unwrap();
    assert!(matches!(
        res[0],
        Err(ControllerError::TopicAlreadyExists(_))
    ));
    assert!(
        matches!(res[1], Err(ControllerError::InvalidTopic(_))),
        "{:?}",
        res[1]
    );
    assert!(matches!(res[2], Err(ControllerError::InvalidTopic(_))));
    assert!(matches!(res[3], Err(ControllerError::InvalidPartitions(_))));
    assert!(matches!(
        res[4],
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    assert!(matches!(
        res[5],
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    assert!(matches!(res[6], Err(ControllerError::InvalidRequest(_))));
    assert!(matches!(res[7], Err(ControllerError::InvalidRequest(_))));
    assert!(res[8].is_ok());
    let image = f.c.image();
    assert_eq!(image.topic_count(), 2, "only a.b and fine exist");
}

#[tokio::test]
async fn explicit_assignments_are_checked_and_used() {
    let f = three_brokers().await;
    let assign = |lists: &[&[i32]]| {
        lists
            .iter()
            .enumerate()
            .map(|(p, r)| ReplicaAssignment {
                partition: p as i32,
                replicas: r.iter().map(|&b| BrokerId(b)).collect(),
            })
            .collect::<Vec<_>>()
    };
    let with = |name: &str, a| CreateTopic {
        assignments: a,
        ..CreateTopic::named(name)
    };
    let res =
        f.c.create_topics(
            vec![
                with("ok", assign(&[&[3, 1], &[2, 3]])),
                with("unknown-broker", assign(&[&[9]])),
                with("twice", assign(&[&[1, 1]])),
                with("ragged", assign(&[&[1, 2], &[3]])),
                CreateTopic {
                    num_partitions: 2,
                    ..with("both", assign(&[&[1]]))
                },
            ],
            false,
        )
        .await
        .unwrap();
    assert!(res[0].is_ok());
    assert!(matches!(
        res[1],
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(
        res[2],
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(
        res[3],
        Err(ControllerError::InvalidReplicaAssignment(_))
    ));
    assert!(matches!(res[4], Err(ControllerError::InvalidRequest(_))));
    let image = f.c.image();
    let p1 = image.topic("ok").unwrap().partition(1).unwrap().clone();
    assert_eq!(p1.replicas, vec![BrokerId(2), BrokerId(3)]);
    assert_eq!(p1.leader, BrokerId(2));
}

#[tokio::test]
async fn validate_only_writes_nothing() {
    let f = three_brokers().await;
    let before = f.log.batches().len();
    let res =
        f.c.create_topics(vec![topic("t", 2, 1)], true)
            .await
            .unwrap();
    assert!(res[0].as_ref().unwrap().topic_id.is_nil());
    assert_eq!(f.log.batches().len(), before);
    assert!(f.c.image().topic("t").is_none());
}

struct RejectRetention;
impl ConfigValidator for RejectRetention {
    fn validate(
        &self,
        _r: &ConfigResource,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        match configs.get("retention.ms") {
            Some(v) if v.parse::<i64>().is_err() => Err(ControllerError::InvalidConfig(format!(
                "Invalid value {v} for configuration retention.ms"
            ))),
            _ => Ok(()),
        }
    }
    fn list_default(&self, _t: ConfigResourceType, name: &str) -> Option<Vec<String>> {
        (name == "cleanup.policy").then(|| vec!["delete".to_string()])
    }
}

#[tokio::test]
async fn topic_configs_go_through_the_validator() {
    let f = fixture(&[(1, None)], Arc::new(RejectRetention)).await;
    let mut bad = topic("bad", 1, 1);
    bad.configs = vec![("retention.ms".into(), Some("soon".into()))];
    let mut good = topic("good", 1, 1);
    good.configs = vec![("retention.ms".into(), Some("1000".into()))];
    let res = f.c.create_topics(vec![bad, good], false).await.unwrap();
    assert!(matches!(res[0], Err(ControllerError::InvalidConfig(_))));
    assert_eq!(res[1].as_ref().unwrap().configs["retention.ms"], "1000");
    let image = f.c.image();
    let res = ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: "good".into(),
    };
    assert_eq!(image.config(&res)["retention.ms"], "1000");
}

#[tokio::test]
async fn delete_topics_by_name_and_id() {
    let f = three_brokers().await;
    let res =
        f.c.create_topics(vec![topic("x", 1, 1), topic("y", 1, 1)], false)
            .await
            .unwrap();
    let y = res[1].as_ref().unwrap().topic_id;
    let res =
        f.c.delete_topics(vec![
            TopicRef::Name("x".into()),
            TopicRef::Id(y),
            TopicRef::Name("nope".into()),
            TopicRef::Id(Uuid::from_u128(7)),
        ])
        .await
        .unwrap();
    assert_eq!(res[0].as_ref().unwrap().name, "x");
    assert_eq!(res[1].as_ref().unwrap().name, "y");
    assert!(matches!(
        res[2],
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    assert!(matches!(res[3], Err(ControllerError::UnknownTopicId(_))));
    assert_eq!(f.c.image().topic_count(), 0);
}

#[tokio::test]
async fn create_partitions_adds_placed_or_assigned_partitions() {
    let f = three_brokers().await;
    f.c.create_topics(vec![topic("t", 2, 2)], false)
        .await
        .unwrap();
    let res =
        f.c.create_partitions(
            vec![
                CreatePartitions {
                    topic: "t".into(),
                    count: 4,
                    assignments: Some(vec![
                        vec![BrokerId(1), BrokerId(2)],
                        vec![BrokerId(3), BrokerId(1)],
                    ]),
                },
                CreatePartitions {
                    topic: "missing".into(),
                    count: 4,
                    assignments: None,
                },
            ],
            false,
        )
        .await
        .unwrap();
    assert!(res[0].is_ok(), "{:?}", res[0]);
    assert!(matches!(
        res[1],
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    let img = f.c.image();
    let t = img.topic("t").unwrap();
    assert_eq!(t.partitions().len(), 4);
    assert_eq!(t.partition(3).unwrap().leader, BrokerId(3));

    let errs =
        f.c.create_partitions(
            vec![
                CreatePartitions {
                    topic: "t".into(),
                    count: 4,
                    assignments: None,
                },
                CreatePartitions {
                    topic: "t2".into(),
                    count: 1,
                    assignments: None,
                },
            ],
            false,
        )
        .await
        .unwrap();
    assert!(matches!(
        errs[0],
        Err(ControllerError::InvalidPartitions(_))
    ));
    let errs =
        f.c.create_partitions(
            vec![CreatePartitions {
                topic: "t".into(),
                count: 5,
                assignments: Some(vec![vec![BrokerId(1)]]),
            }],
            false,
        )
        .await
        .unwrap();
    assert!(
        matches!(errs[0], Err(ControllerError::InvalidReplicaAssignment(_))),
        "rf mismatch"
    );
    let ok =
        f.c.create_partitions(
            vec![CreatePartitions {
                topic: "t".into(),
                count: 6,
                assignments: None,
            }],
            true,
        )
        .await
        .unwrap();
    assert!(ok[0].is_ok());
    assert_eq!(
        f.c.image().topic("t").unwrap().partitions().len(),
        4,
        "validate only"
    );
}

#[tokio::test]
async fn producer_id_blocks_are_consecutive_and_need_a_current_broker_epoch() {
    let f = three_brokers().await;
    let a =
        f.c.allocate_producer_ids(BrokerId(1), BrokerEpoch(0))
            .await
            .unwrap();
    let b =
        f.c.allocate_producer_ids(BrokerId(2), BrokerEpoch(0))
            .await
            .unwrap();
    assert_eq!(a.first_producer_id, ProducerId(0));
    assert_eq!(b.first_producer_id, ProducerId(1000));
    assert_eq!(f.c.image().next_producer_id(), ProducerId(2000));
    assert!(matches!(
        f.c.allocate_producer_ids(BrokerId(1), BrokerEpoch(5)).await,
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    assert!(matches!(
        f.c.allocate_producer_ids(BrokerId(9), BrokerEpoch(0)).await,
        Err(ControllerError::BrokerIdNotRegistered(_))
    ));
}

#[tokio::test]
async fn not_the_leader_answers_not_controller() {
    let f = three_brokers().await;
    f.log.set_leader(Some(BrokerId(2)));
    let err =
        f.c.create_topics(vec![topic("t", 1, 1)], false)
            .await
            .unwrap_err();
    match err {
        ControllerError::NotController(l) => assert_eq!(l.leader, Some(BrokerId(2))),
        other => panic!("{other:?}"),
    }
    f.log.set_leader(Some(BrokerId(1)));
    assert!(f
        .c
        .create_topics(vec![topic("t", 1, 1)], false)
        .await
        .unwrap()[0]
        .is_ok());
}

#[tokio::test]
async fn shutdown_refuses_later_operations() {
    let f = three_brokers().await;
    f.c.shutdown().await;
    assert!(matches!(
        f.c.create_topics(vec![topic("t", 1, 1)], false).await,
        Err(ControllerError::Log(LogError::Shutdown))
    ));
    let _ = &f.clock;
}

#[tokio::test]
async fn preferred_election_moves_leadership_only_to_a_usable_isr_member() {
    let f = three_brokers().await;
    f.c.create_topics(
        vec![CreateTopic {
            assignments: vec![ReplicaAssignment {
                partition: 0,
                replicas: vec![BrokerId(1), BrokerId(2)],
            }],
            ..CreateTopic::named("t")
        }],
        false,
    )
    .await
    .unwrap();
    let one = Some(vec![("t".to_string(), 0), ("t".to_string(), 5)]);
    let res =
        f.c.elect_leaders(ElectionType::Preferred, one.clone())
            .await
            .unwrap();
    assert!(matches!(
        res[0].result,
        Err(ControllerError::ElectionNotNeeded)
    ));
    assert!(matches!(
        res[1].result,
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    // Every partition: nothing to do, nothing answered.
    assert!(f
        .c
        .elect_leaders(ElectionType::Preferred, None)
        .await
        .unwrap()
        .is_empty());
}

mod brokers;
mod configs;
mod features;
mod group;
mod isr;
mod quotas;
mod reassign;
mod rebalance;

#[tokio::test]
async fn a_log_that_shuts_down_answers_shutdown_not_fatal() {
    let f = three_brokers().await;
    f.log.shutdown().await;
    let r = f.c.create_topics(vec![topic("t", 1, 1)], false).await;
    assert!(
        matches!(r, Err(ControllerError::Log(LogError::Shutdown))),
        "{r:?}"
    );
}

#[test]
fn duplicate_keeps_the_kind_and_message() {
    let e = ControllerError::InvalidConfig("bad".into());
    assert!(matches!(e.duplicate(), ControllerError::InvalidConfig(m) if m == "bad"));
    let e = ControllerError::Log(LogError::TooLarge {
        records: 3,
        bytes: 9,
    });
    assert!(matches!(
        e.duplicate(),
        ControllerError::Log(LogError::TooLarge {
            records: 3,
            bytes: 9
        })
    ));
}

/// The first active controller of an empty log commits its bootstrap
/// records ahead of the first operation, once; a log that is not empty is
/// never bootstrapped again.
#[tokio::test]
async fn an_empty_log_is_bootstrapped_once_before_the_first_operation() {
    use sluice_metadata::record::FeatureLevelRecord;
    let bootstrap = vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: "metadata.version".into(),
        feature_level: 27,
    })];
    let config = ControllerConfig {
        bootstrap: bootstrap.clone(),
        ..ControllerConfig::default()
    };
    let f = fixture_with(&[], Arc::new(PermissiveValidator), config.clone()).await;
    let block =
        f.c.allocate_producer_ids(BrokerId(1), BrokerEpoch(-1))
            .await;
    // Whatever the operation's own answer, the bootstrap went first.
    let _ = block;
    let image = f.c.image();
    assert_eq!(image.feature_level("metadata.version"), Some(27));
    let records = || -> Vec<MetadataRecord> {
        f.log
            .batches()
            .into_iter()
            .flat_map(|b| b.records)
            .collect()
    };
    assert_eq!(records().first(), Some(&bootstrap[0]));
    let n = records().len();
    // A second controller on the same (now non-empty) log adds nothing.
    f.c.shutdown().await;
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c2 = Arc::new(QuorumController::start(
        f.log.clone(),
        config,
        Arc::new(PermissiveValidator),
        clock,
    ));
    let _ = c2.allocate_producer_ids(BrokerId(1), BrokerEpoch(-1)).await;
    let features = records()
        .iter()
        .filter(|r| matches!(r, MetadataRecord::FeatureLevel(_)))
        .count();
    assert_eq!(features, 1, "bootstrapped twice ({n} records before)");
}
