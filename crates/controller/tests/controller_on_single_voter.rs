//! The quorum controller on the single-voter log, through the public API:
//! the committed state survives restarts, and any log the controller
//! writes replays to byte-identical images (property-tested: random
//! operations, snapshots included, replayed by two listeners and again
//! after a restart and a power cut).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use sluice_controller::testing::conformance::collect_until;
use sluice_controller::*;
use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType, MetadataImage};
use sluice_record::Offset;
use sluice_storage::{ManualClock, SimFs};
use uuid::Uuid;

fn open_log(fs: &SimFs, snapshot_every: u64) -> Arc<SingleVoterLog> {
    let config = SingleVoterConfig {
        snapshot_every_records: snapshot_every,
        segment_bytes: 8192,
        ..SingleVoterConfig::new(BrokerId(1), "/meta")
    };
    let clock = Arc::new(ManualClock::new(0));
    Arc::new(SingleVoterLog::open(config, Arc::new(fs.clone()), clock).unwrap())
}

fn start(log: &Arc<SingleVoterLog>, clock: &Arc<ManualClock>) -> QuorumController {
    let config = ControllerConfig {
        default_num_partitions: 2,
        ..ControllerConfig::default()
    };
    QuorumController::start(
        log.clone(),
        config,
        Arc::new(PermissiveValidator),
        clock.clone(),
    )
}

fn registration(id: i32, incarnation: u128) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id: BrokerId(id),
        incarnation_id: Uuid::from_u128(incarnation),
        listeners: Vec::new(),
        features: Vec::new(),
        rack: Some(format!("rack-{}", id % 2)),
        log_dirs: Vec::new(),
        previous_broker_epoch: None,
    }
}

/// The image a fresh listener of `log` builds from its whole history.
async fn replay(log: &SingleVoterLog) -> MetadataImage {
    let hw = log.quorum_info().high_watermark;
    let mut l = log.listen();
    collect_until(&mut *l, Offset(hw.0 - 1)).await.image()
}

#[tokio::test]
async fn committed_state_survives_a_restart_and_epochs_are_record_offsets() {
    let fs = SimFs::new();
    let clock = Arc::new(ManualClock::new(0));
    let log = open_log(&fs, 1000);
    let c = start(&log, &clock);
    let reg = c.register_broker(registration(1, 7)).await.unwrap();
    // The broker epoch is the offset of its RegisterBrokerRecord.
    assert_eq!(reg.broker_epoch, BrokerEpoch(0));
    let hb = BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch: reg.broker_epoch,
        current_metadata_offset: Offset(0),
        want_fence: false,
        want_shutdown: false,
    };
    assert!(!c.heartbeat(hb).await.unwrap().is_fenced);
    let created = c
        .create_topics(vec![CreateTopic::named("orders")], false)
        .await
        .unwrap();
    let id = created[0].as_ref().unwrap().topic_id;
    let before = c.image();
    c.shutdown().await;
    log.shutdown().await;
    drop(log);
    fs.crash(1);

    let log = open_log(&fs, 1000);
    let c = start(&log, &clock);
    // The restarted controller serves against the recovered image.
    let again = c
        .create_topics(vec![CreateTopic::named("orders")], false)
        .await
        .unwrap();
    assert!(matches!(
        again[0],
        Err(ControllerError::TopicAlreadyExists(_))
    ));
    let image = c.image();
    assert_eq!(image.topic("orders").unwrap().id(), id);
    assert_eq!(
        image.write_snapshot(),
        before.write_snapshot(),
        "state lost or changed across the restart"
    );
    // A re-registration (after moving the old registration's leaderships
    // off) gets a higher epoch: again its record's offset.
    let reg2 = c.register_broker(registration(1, 7)).await.unwrap();
    let hw = log.quorum_info().high_watermark;
    let mut l = log.listen();
    let seen = collect_until(&mut *l, Offset(hw.0 - 1)).await;
    let last = seen.batches.last().unwrap();
    let at = last
        .records
        .iter()
        .position(|r| matches!(r, sluice_metadata::MetadataRecord::RegisterBroker(_)))
        .unwrap();
    assert!(at > 0, "leaderships moved off first");
    assert_eq!(
        reg2.broker_epoch,
        BrokerEpoch(last.base_offset.0 + at as i64)
    );
    c.shutdown().await;
}

/// A node restarted after kill -9: its broker re-registers with a new
/// incarnation at once, even after the restarted controller's fencing
/// check started a session for the old registration (that is no contact).
#[tokio::test]
async fn a_restarted_node_re_registers_after_the_fencing_check() {
    let fs = SimFs::new();
    let clock = Arc::new(ManualClock::new(0));
    let log = open_log(&fs, 1000);
    let c = start(&log, &clock);
    let reg = c.register_broker(registration(1, 7)).await.unwrap();
    let hb = BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch: reg.broker_epoch,
        current_metadata_offset: Offset(i64::MAX),
        want_fence: false,
        want_shutdown: false,
    };
    assert!(!c.heartbeat(hb).await.unwrap().is_fenced);
    c.shutdown().await;
    log.shutdown().await;
    drop(log);
    fs.crash(2);

    let log = open_log(&fs, 1000);
    let c = start(&log, &clock);
    assert!(c.fence_expired_brokers().await.unwrap().is_empty());
    let again = c.register_broker(registration(1, 8)).await;
    assert!(again.is_ok(), "{again:?}");
    c.shutdown().await;
}

#[derive(Clone, Debug)]
enum Op {
    Register(i32, u8),
    Heartbeat(i32, bool),
    Create(u8, i32, i16),
    Delete(u8),
    AddPartitions(u8, i32),
    TopicConfig(u8, u8, Option<u8>),
    BrokerConfig(u8, Option<u8>),
    ProducerIds(i32),
    Elect,
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..4i32, 0..3u8).prop_map(|(b, i)| Op::Register(b, i)),
        (1..4i32, proptest::bool::weighted(0.1)).prop_map(|(b, s)| Op::Heartbeat(b, s)),
        (0..6u8, 1..4i32, 1..3i16).prop_map(|(t, p, r)| Op::Create(t, p, r)),
        (0..6u8).prop_map(Op::Delete),
        (0..6u8, 1..3i32).prop_map(|(t, n)| Op::AddPartitions(t, n)),
        (0..6u8, 0..3u8, proptest::option::of(0..9u8))
            .prop_map(|(t, k, v)| Op::TopicConfig(t, k, v)),
        (0..3u8, proptest::option::of(0..9u8)).prop_map(|(k, v)| Op::BrokerConfig(k, v)),
        (1..4i32).prop_map(Op::ProducerIds),
        Just(Op::Elect),
        Just(Op::Expire),
    ]
}

fn topic(t: u8) -> String {
    format!("topic-{t}")
}

/// Runs one operation; per-item errors are part of the game.
async fn run(
    c: &QuorumController,
    clock: &ManualClock,
    epochs: &Mutex<BTreeMap<i32, BrokerEpoch>>,
    op: Op,
) {
    clock.advance(1000);
    let set = |k: u8, v: Option<u8>| ConfigAlteration {
        name: format!("k{k}"),
        op: if v.is_some() {
            AlterConfigOp::Set
        } else {
            AlterConfigOp::Delete
        },
        value: v.map(|v| v.to_string()),
    };
    match op {
        Op::Register(b, inc) => {
            if let Ok(r) = c.register_broker(registration(b, inc.into())).await {
                epochs.lock().unwrap().insert(b, r.broker_epoch);
            }
        }
        Op::Heartbeat(b, shutdown) => {
            let epoch = epochs
                .lock()
                .unwrap()
                .get(&b)
                .copied()
                .unwrap_or(BrokerEpoch(-1));
            let hb = BrokerHeartbeat {
                broker_id: BrokerId(b),
                broker_epoch: epoch,
                current_metadata_offset: Offset(i64::MAX),
                want_fence: false,
                want_shutdown: shutdown,
            };
            let _ = c.heartbeat(hb).await;
        }
        Op::Create(t, p, r) => {
            let ct = CreateTopic {
                num_partitions: p,
                replication_factor: r,
                ..CreateTopic::named(topic(t))
            };
            c.create_topics(vec![ct], false).await.unwrap();
        }
        Op::Delete(t) => {
            c.delete_topics(vec![TopicRef::Name(topic(t))])
                .await
                .unwrap();
        }
        Op::AddPartitions(t, n) => {
            let current = c
                .image()
                .topic(&topic(t))
                .map_or(0, |t| t.partitions().len() as i32);
            let cp = CreatePartitions {
                topic: topic(t),
                count: current + n,
                assignments: None,
            };
            c.create_partitions(vec![cp], false).await.unwrap();
        }
        Op::TopicConfig(t, k, v) => {
            let res = ConfigResource {
                resource_type: ConfigResourceType::Topic,
                name: topic(t),
            };
            c.incremental_alter_configs(vec![(res, vec![set(k, v)])], false)
                .await
                .unwrap();
        }
        Op::BrokerConfig(k, v) => {
            let res = ConfigResource {
                resource_type: ConfigResourceType::Broker,
                name: String::new(),
            };
            c.incremental_alter_configs(vec![(res, vec![set(k, v)])], false)
                .await
                .unwrap();
        }
        Op::ProducerIds(b) => {
            let epoch = epochs
                .lock()
                .unwrap()
                .get(&b)
                .copied()
                .unwrap_or(BrokerEpoch(-1));
            let _ = c.allocate_producer_ids(BrokerId(b), epoch).await;
        }
        Op::Elect => {
            c.elect_leaders(ElectionType::Preferred, None)
                .await
                .unwrap();
        }
        Op::Expire => {
            clock.advance(ControllerConfig::default().broker_session_timeout_ms);
            c.fence_expired_brokers().await.unwrap();
        }
    }
}

fn check_replays_are_identical(ops: Vec<Op>, seed: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let fs = SimFs::new();
        let clock = Arc::new(ManualClock::new(0));
        let log = open_log(&fs, 16);
        let c = start(&log, &clock);
        // Three live brokers first, so that most operations write.
        let epochs = Arc::new(Mutex::new(BTreeMap::new()));
        for b in 1..=3 {
            run(&c, &clock, &epochs, Op::Register(b, 0)).await;
            run(&c, &clock, &epochs, Op::Heartbeat(b, false)).await;
        }
        // Operations run in waves of up to three at once, so that the
        // controller plans some of them against a speculative image and
        // commits them together.
        let c = Arc::new(c);
        for wave in ops.chunks(3) {
            let tasks: Vec<_> = wave
                .iter()
                .cloned()
                .map(|op| {
                    let (c, clock, epochs) = (c.clone(), clock.clone(), epochs.clone());
                    tokio::spawn(async move { run(&c, &clock, &epochs, op).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        let live = c.image();
        let want = live.canonical_bytes().unwrap();
        if log.quorum_info().high_watermark == Offset::ZERO {
            return;
        }
        log.quiesce().await;
        assert_eq!(
            replay(&log).await.canonical_bytes().unwrap(),
            want,
            "first replay"
        );
        assert_eq!(
            replay(&log).await.canonical_bytes().unwrap(),
            want,
            "second replay"
        );
        // No fenced broker is a leader, in any image.
        for t in live.topics() {
            for reg in t.partitions().values() {
                if reg.has_leader() {
                    assert!(live.broker(reg.leader).is_some_and(|b| !b.fenced));
                }
            }
        }
        c.shutdown().await;
        log.shutdown().await;
        drop(log);
        fs.crash(seed);
        let log = open_log(&fs, 16);
        assert_eq!(
            replay(&log).await.canonical_bytes().unwrap(),
            want,
            "after a restart"
        );
        log.shutdown().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn two_replays_of_the_log_give_identical_images(
        ops in proptest::collection::vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        check_replays_are_identical(ops, seed);
    }
}
