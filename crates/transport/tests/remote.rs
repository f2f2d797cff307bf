//! `RemoteController` against a real controller listener over TCP: the same
//! requests, given to the in-process client of one controller and to the
//! remote client of an identical one, answer the same domain results, the
//! same `ControllerError`s and the same committed offsets; NOT_CONTROLLER
//! moves on to the active voter; a controller that omits or garbles the
//! committed offset is refused.

mod common;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use sluice_controller::client::{Committed, ControllerClient, Items};
use sluice_controller::{
    AlterConfigOp, BrokerHeartbeat, BrokerRegistrationRequest, ConfigAlteration, ControllerError,
    CreatePartitions, CreateTopic, ElectionResult, ElectionType, LogError, ReassignPartition,
    ReassignmentResult, ReplicaAssignment, TopicRef,
};
use sluice_metadata::record::BrokerEndpoint;
use sluice_metadata::{BrokerEpoch, BrokerId, ConfigResource, ConfigResourceType};
use sluice_protocol::kafka_protocol::messages::{
    BrokerHeartbeatResponse, CreateTopicsResponse, RequestKind, ResponseKind,
};
use sluice_protocol::{api_versions_response, decode_request_with, encode_response};
use sluice_record::Offset;
use sluice_transport::committed::COMMITTED_OFFSET_TAG;
use sluice_transport::{controller_error_code, RemoteController, CONTROLLER_APIS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

type Res<T> = Result<Committed<T>, ControllerError>;

/// Two identical controllers: one asked in process, one over the wire.
struct Twin {
    local: Controller,
    far: Controller,
    remote: RemoteController,
}

impl Twin {
    async fn start() -> Twin {
        let local = Controller::start(1).await;
        let far = Controller::start(1).await;
        let remote = RemoteController::new(far.channel(&far.voter(1)), CLUSTER_ID);
        Twin { local, far, remote }
    }
}

/// Runs `$call` with `$c` the in-process client, then the remote one.
macro_rules! both {
    ($t:expr, |$c:ident| $call:expr) => {{
        let local = {
            let $c: &dyn ControllerClient = &$t.local.c;
            $call.await
        };
        let remote = {
            let $c: &dyn ControllerClient = &$t.remote;
            $call.await
        };
        (local, remote)
    }};
}

/// An error by its code and text. The broker RPCs have no message field,
/// so STALE_BROKER_EPOCH's current epoch is not on the wire.
fn err_key(e: &ControllerError) -> (i16, String) {
    let text = match e {
        ControllerError::StaleBrokerEpoch { broker, given, .. } => format!("{broker:?} {given}"),
        e => e.to_string(),
    };
    (controller_error_code(e), text)
}

/// Asserts both answered alike (by `key`) at the same committed offset;
/// returns both values (`None` if both failed alike).
fn same<T: Debug>(
    what: &str,
    (l, r): (Res<T>, Res<T>),
    key: impl Fn(&T) -> String,
) -> Option<(T, T)> {
    match (l, r) {
        (Ok(l), Ok(r)) => {
            assert_eq!(key(&l.value), key(&r.value), "{what}: answers differ");
            assert_eq!(l.offset, r.offset, "{what}: committed offsets differ");
            Some((l.value, r.value))
        }
        (Err(l), Err(r)) => {
            assert_eq!(err_key(&l), err_key(&r), "{what}: errors differ");
            None
        }
        (l, r) => panic!("{what}: in process {l:?}, remote {r:?}"),
    }
}

/// Items with their errors as (code, text) and values by `f`.
fn items<T>(v: &Items<T>, f: impl Fn(&T) -> String) -> String {
    let keyed: Vec<_> = v
        .iter()
        .map(|r| r.as_ref().map(&f).map_err(err_key))
        .collect();
    format!("{keyed:?}")
}

fn dbg<T: Debug>(t: &T) -> String {
    format!("{t:?}")
}

/// Topic ids are random per controller: only nil or not is compared.
fn id_kind(id: Uuid) -> &'static str {
    if id.is_nil() {
        "nil"
    } else {
        "id"
    }
}

fn elections(v: &[ElectionResult]) -> String {
    let keyed: Vec<_> = v
        .iter()
        .map(|e| (&e.topic, e.partition, e.result.as_ref().map_err(err_key)))
        .collect();
    format!("{keyed:?}")
}

fn registration(id: i32, incarnation: Uuid) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id: BrokerId(id),
        incarnation_id: incarnation,
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092 + id as u16,
            security_protocol: 0,
        }],
        features: Vec::new(),
        rack: Some("r1".into()),
        log_dirs: vec![Uuid::from_u128(id as u128)],
        previous_broker_epoch: None,
    }
}

fn heartbeat(id: i32, epoch: i64, offset: Offset) -> BrokerHeartbeat {
    BrokerHeartbeat {
        broker_id: BrokerId(id),
        broker_epoch: BrokerEpoch(epoch),
        current_metadata_offset: offset,
        want_fence: false,
        want_shutdown: false,
    }
}

fn topic(name: &str, partitions: i32, rf: i16) -> CreateTopic {
    CreateTopic {
        num_partitions: partitions,
        replication_factor: rf,
        ..CreateTopic::named(name)
    }
}

fn resource(t: ConfigResourceType, name: &str) -> ConfigResource {
    ConfigResource {
        resource_type: t,
        name: name.into(),
    }
}

fn set(name: &str, value: &str) -> ConfigAlteration {
    ConfigAlteration {
        name: name.into(),
        op: AlterConfigOp::Set,
        value: Some(value.into()),
    }
}

/// Registers brokers 1 and 2 on both sides and heartbeats them until
/// unfenced; returns their epochs.
async fn brokers(t: &Twin) -> Vec<i64> {
    let mut epochs = Vec::new();
    for id in 1..=2 {
        let inc = Uuid::from_u128(100 + id as u128);
        let (l, _) = same(
            "register_broker",
            both!(t, |c| c.register_broker(registration(id, inc))),
            dbg,
        )
        .unwrap();
        epochs.push(l.broker_epoch.0);
    }
    for (i, &epoch) in epochs.iter().enumerate() {
        let id = i as i32 + 1;
        let bound = tokio::time::Instant::now() + LONG;
        loop {
            let at = t.local.c.image().provenance().last_offset;
            let (l, _) = same(
                "heartbeat",
                both!(t, |c| c.heartbeat(heartbeat(id, epoch, at))),
                dbg,
            )
            .unwrap();
            if !l.is_fenced {
                break;
            }
            assert!(
                tokio::time::Instant::now() < bound,
                "broker {id} never unfenced"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    epochs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_the_in_process_client() {
    let t = Twin::start().await;
    let epochs = brokers(&t).await;

    // CreateTopics: created (with configs and an explicit assignment),
    // and each kind of refusal.
    let created = |v: &Items<sluice_controller::CreatedTopic>| {
        items(v, |c| {
            format!(
                "{} {} {} {} {:?}",
                c.name,
                id_kind(c.topic_id),
                c.num_partitions,
                c.replication_factor,
                c.configs
            )
        })
    };
    let batch = || {
        vec![
            CreateTopic {
                configs: vec![("cleanup.policy".into(), Some("compact".into()))],
                ..topic("orders", 4, 1)
            },
            CreateTopic {
                assignments: vec![
                    ReplicaAssignment {
                        partition: 0,
                        replicas: vec![BrokerId(1), BrokerId(2)],
                    },
                    ReplicaAssignment {
                        partition: 1,
                        replicas: vec![BrokerId(2), BrokerId(1)],
                    },
                ],
                ..topic("assigned", -1, -1)
            },
            topic("defaults", -1, -1),
            topic("too-many-replicas", 1, 3),
            topic("zero", 0, 1),
            topic("bad/name", 1, 1),
            CreateTopic {
                configs: vec![("retention.ms".into(), None)],
                ..topic("null-config", 1, 1)
            },
        ]
    };
    let (l, r) = same(
        "create_topics",
        both!(t, |c| c.create_topics(batch(), false)),
        created,
    )
    .unwrap();
    assert!(l.iter().take(3).all(|r| r.is_ok()), "{l:?}");
    assert!(
        matches!(l[3], Err(ControllerError::InvalidReplicationFactor(_))),
        "{:?}",
        l[3]
    );
    assert!(
        matches!(l[4], Err(ControllerError::InvalidPartitions(_))),
        "{:?}",
        l[4]
    );
    assert!(
        matches!(l[5], Err(ControllerError::InvalidTopic(_))),
        "{:?}",
        l[5]
    );
    assert!(
        matches!(l[6], Err(ControllerError::InvalidConfig(_))),
        "{:?}",
        l[6]
    );
    // The remote answer is the far controller's own truth.
    let far_orders = r[0].as_ref().unwrap();
    let image = t.far.c.image();
    assert_eq!(image.topic("orders").unwrap().id(), far_orders.topic_id);
    let local_assigned = l[1].as_ref().unwrap().topic_id;
    let far_assigned = r[1].as_ref().unwrap().topic_id;

    let (l, _) = same(
        "create_topics again, validate_only",
        both!(t, |c| c.create_topics(
            vec![topic("orders", 1, 1), topic("dry", 2, 1)],
            true
        )),
        created,
    )
    .unwrap();
    assert!(matches!(l[0], Err(ControllerError::TopicAlreadyExists(_))));
    assert!(l[1].as_ref().unwrap().topic_id.is_nil());
    assert!(
        t.far.c.image().topic("dry").is_none(),
        "validate_only wrote"
    );

    // CreatePartitions.
    for validate_only in [true, false] {
        same(
            "create_partitions",
            both!(t, |c| c.create_partitions(
                vec![
                    CreatePartitions {
                        topic: "orders".into(),
                        count: 6,
                        assignments: None,
                    },
                    CreatePartitions {
                        topic: "assigned".into(),
                        count: 3,
                        assignments: Some(vec![vec![BrokerId(1), BrokerId(2)]]),
                    },
                    CreatePartitions {
                        topic: "defaults".into(),
                        count: 1,
                        assignments: None,
                    },
                    CreatePartitions {
                        topic: "nope".into(),
                        count: 2,
                        assignments: None,
                    },
                ],
                validate_only
            )),
            |v| items(v, dbg),
        )
        .unwrap();
    }
    assert_eq!(
        t.far.c.image().topic("orders").unwrap().partitions().len(),
        6
    );

    // Configs: TOPIC, BROKER (one and the cluster default), GROUP, and refusals.
    let (l, _) = same(
        "incremental_alter_configs",
        both!(t, |c| c.incremental_alter_configs(
            vec![
                (
                    resource(ConfigResourceType::Topic, "orders"),
                    vec![set("retention.ms", "1000")]
                ),
                (
                    resource(ConfigResourceType::Broker, "1"),
                    vec![set("log.cleaner.threads", "2")]
                ),
                (
                    resource(ConfigResourceType::Broker, ""),
                    vec![set("log.cleaner.threads", "3")]
                ),
                (
                    resource(ConfigResourceType::Group, "g1"),
                    vec![set("consumer.session.timeout.ms", "50000")]
                ),
                (
                    resource(ConfigResourceType::Topic, "nope"),
                    vec![set("retention.ms", "1")]
                ),
                (
                    resource(ConfigResourceType::Topic, "assigned"),
                    vec![ConfigAlteration {
                        name: "cleanup.policy".into(),
                        op: AlterConfigOp::Append,
                        value: Some("delete".into()),
                    }]
                ),
            ],
            false
        )),
        |v| items(v, dbg),
    )
    .unwrap();
    assert!(l[..4].iter().all(|r| r.is_ok()), "{l:?}");
    assert!(l[4].is_err() && l[5].is_err(), "{l:?}");
    let group = resource(ConfigResourceType::Group, "g1");
    assert_eq!(
        t.far
            .c
            .image()
            .config(&group)
            .get("consumer.session.timeout.ms")
            .map(String::as_str),
        Some("50000")
    );
    same(
        "alter_configs",
        both!(t, |c| c.alter_configs(
            vec![
                (
                    resource(ConfigResourceType::Topic, "orders"),
                    vec![("segment.ms".into(), Some("60000".into()))]
                ),
                (
                    resource(ConfigResourceType::Group, "g1"),
                    vec![("consumer.heartbeat.interval.ms".into(), Some("6000".into()))]
                ),
                (
                    resource(ConfigResourceType::Topic, "nope"),
                    vec![("segment.ms".into(), Some("1".into()))]
                ),
            ],
            true
        )),
        |v| items(v, dbg),
    )
    .unwrap();

    // ElectLeaders: listed (interleaved topics, one unknown), and all.
    let listed = || {
        Some(vec![
            ("orders".to_string(), 0),
            ("assigned".to_string(), 1),
            ("orders".to_string(), 1),
            ("nope".to_string(), 0),
        ])
    };
    for election in [ElectionType::Preferred, ElectionType::Unclean] {
        let (l, _) = same(
            "elect_leaders listed",
            both!(t, |c| c.elect_leaders(election, listed())),
            |v| elections(v),
        )
        .unwrap();
        assert_eq!(l.len(), 4);
    }
    same(
        "elect_leaders all",
        both!(t, |c| c.elect_leaders(ElectionType::Preferred, None)),
        |v| elections(v),
    )
    .unwrap();

    // Reassignments: one left in progress (its ISR without the removed
    // leader is empty), one completed at once, and the refusals.
    let moves = || {
        let one = |topic: &str, p: i32, replicas: Option<&[i32]>| ReassignPartition {
            topic: topic.into(),
            partition: p,
            replicas: replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect()),
        };
        vec![
            one("assigned", 0, Some(&[2])),
            one("assigned", 1, Some(&[2])),
            one("nope", 0, Some(&[1])),
            one("assigned", 5, Some(&[1])),
            one("assigned", 1, Some(&[9])),
            one("assigned", 1, None),
        ]
    };
    let reassigned = |v: &Vec<ReassignmentResult>| {
        v.iter()
            .map(|r| match &r.result {
                Ok(()) => format!("{}-{} ok", r.topic, r.partition),
                Err(e) => format!("{}-{} {:?}", r.topic, r.partition, err_key(e)),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (l, _) = same(
        "alter_partition_reassignments",
        both!(t, |c| c.alter_partition_reassignments(moves(), true)),
        reassigned,
    )
    .unwrap();
    assert!(l[0].result.is_ok() && l[1].result.is_ok(), "{l:?}");
    assert!(matches!(
        l[5].result,
        Err(ControllerError::NoReassignmentInProgress)
    ));
    let (l, _) = same(
        "list_partition_reassignments all",
        both!(t, |c| c.list_partition_reassignments(None)),
        dbg,
    )
    .unwrap();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(
        (l[0].partition, l[0].removing.clone()),
        (0, vec![BrokerId(1)])
    );
    same(
        "list_partition_reassignments named",
        both!(t, |c| c.list_partition_reassignments(Some(vec![
            ("assigned".into(), vec![1, 0]),
            ("nope".into(), vec![0]),
        ]))),
        dbg,
    )
    .unwrap();

    // Producer ids, broker RPC refusals.
    same(
        "allocate_producer_ids",
        both!(t, |c| c
            .allocate_producer_ids(BrokerId(1), BrokerEpoch(epochs[0]))),
        dbg,
    )
    .unwrap();
    for (broker, epoch) in [(1, epochs[0] - 1), (42, 1)] {
        assert!(same(
            "allocate_producer_ids refused",
            both!(t, |c| c
                .allocate_producer_ids(BrokerId(broker), BrokerEpoch(epoch))),
            dbg,
        )
        .is_none());
    }
    let (l, r) = both!(t, |c| c.heartbeat(heartbeat(42, 1, Offset(0))));
    assert!(
        matches!(l, Err(ControllerError::BrokerIdNotRegistered(_))),
        "{l:?}"
    );
    same("heartbeat refused", (l, r), dbg);
    let (l, r) = both!(t, |c| c.heartbeat(heartbeat(1, epochs[0] - 1, Offset(0))));
    assert!(
        matches!(l, Err(ControllerError::StaleBrokerEpoch { .. })),
        "{l:?}"
    );
    same("stale heartbeat", (l, r), dbg);
    let (l, r) = both!(t, |c| c
        .register_broker(registration(1, Uuid::from_u128(999))));
    assert!(
        matches!(l, Err(ControllerError::DuplicateBrokerRegistration(_))),
        "{l:?}"
    );
    same("duplicate registration", (l, r), dbg);

    // DeleteTopics by name and by id (each side its own id).
    let deleted = |v: &Items<sluice_controller::DeletedTopic>| {
        items(v, |d| format!("{} {}", d.name, id_kind(d.topic_id)))
    };
    let unknown = Uuid::from_u128(7);
    let l = t
        .local
        .c
        .delete_topics(vec![
            TopicRef::Name("orders".into()),
            TopicRef::Id(local_assigned),
            TopicRef::Id(unknown),
            TopicRef::Name("nope".into()),
        ])
        .await;
    let r = t
        .remote
        .delete_topics(vec![
            TopicRef::Name("orders".into()),
            TopicRef::Id(far_assigned),
            TopicRef::Id(unknown),
            TopicRef::Name("nope".into()),
        ])
        .await;
    let (l, r) = same("delete_topics", (l, r), deleted).unwrap();
    assert!(matches!(l[2], Err(ControllerError::UnknownTopicId(id)) if id == unknown));
    assert!(matches!(
        l[3],
        Err(ControllerError::UnknownTopicOrPartition(_))
    ));
    assert_eq!(r[0].as_ref().unwrap().topic_id, far_orders.topic_id);
    assert!(t.far.c.image().topic("orders").is_none());

    // Nothing was left out: both logs hold the same number of batches.
    assert_eq!(t.local.log.batches().len(), t.far.log.batches().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_created_and_deleted_alike() {
    use sluice_auth::acl::*;
    let t = Twin::start().await;
    let binding = |name: &str, pattern_type| AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern_type,
        },
        entry: AccessControlEntry {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission_type: AclPermissionType::Allow,
        },
    };
    let creations = vec![
        binding("t", PatternType::Literal),
        binding("pre", PatternType::Prefixed),
        binding("bad", PatternType::Match),
    ];
    let (l, _) = same(
        "create_acls",
        both!(t, |c| c.create_acls(creations.clone())),
        |v| items(v, dbg),
    )
    .unwrap();
    assert_eq!(
        l[2].as_ref().unwrap_err().to_string(),
        "Invalid patternType MATCH"
    );
    assert_eq!(t.far.c.image().acls().len(), 2);
    let mut filter = AclBindingFilter::any();
    filter.pattern.name = Some("pre-x".into());
    filter.pattern.pattern_type = PatternType::Match;
    let mut unknown = AclBindingFilter::any();
    unknown.pattern.pattern_type = PatternType::Unknown;
    let (l, _) = same(
        "delete_acls",
        both!(t, |c| c.delete_acls(vec![filter.clone(), unknown.clone()])),
        |v| items(v, dbg),
    )
    .unwrap();
    assert_eq!(
        l[0].as_ref().unwrap(),
        &vec![binding("pre", PatternType::Prefixed)]
    );
    assert!(matches!(l[1], Err(ControllerError::InvalidRequest(_))));
    assert_eq!(t.far.c.image().acls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_offset_is_the_one_the_answer_is_true_at() {
    let t = Twin::start().await;
    brokers(&t).await;
    let answer = t
        .remote
        .create_topics(vec![topic("t", 2, 1)], false)
        .await
        .unwrap();
    let image = t.far.c.image_at(answer.offset).await.unwrap();
    assert!(image.topic("t").is_some());
    assert_eq!(answer.offset, t.far.c.image().provenance().last_offset);
    // The batch that created it ends at that offset.
    let last = t.far.log.batches().last().unwrap().last_offset();
    assert_eq!(answer.offset, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_controller_moves_on_to_the_active_voter() {
    let inactive = Controller::start(1).await;
    inactive.log.set_leader(Some(BrokerId(2)));
    let active = Controller::start(2).await;

    let voters = format!("{},{}", inactive.voter(1), active.voter(2));
    let remote = RemoteController::new(active.channel(&voters), CLUSTER_ID);
    let reg = remote
        .register_broker(registration(1, Uuid::new_v4()))
        .await
        .unwrap();
    let epoch = reg.value.broker_epoch.0;
    let bound = tokio::time::Instant::now() + LONG;
    while remote
        .heartbeat(heartbeat(
            1,
            epoch,
            active.c.image().provenance().last_offset,
        ))
        .await
        .unwrap()
        .value
        .is_fenced
    {
        assert!(tokio::time::Instant::now() < bound, "never unfenced");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let created = remote
        .create_topics(vec![topic("x", 1, 1)], false)
        .await
        .unwrap();
    assert!(created.value[0].is_ok(), "{:?}", created.value);
    assert!(created.offset > reg.offset);
    assert_eq!(remote.channel().controller_hint(), 2);
    assert!(active.c.image().topic("x").is_some());
    assert!(inactive.c.image().topic("x").is_none());

    // Only the inactive voter: no controller answers within the timeout;
    // the outcome is unknown to the caller (REQUEST_TIMED_OUT).
    let lost = RemoteController::new(inactive.channel(&inactive.voter(1)), CLUSTER_ID)
        .with_timeout(Duration::from_millis(300));
    let r = lost.create_topics(vec![topic("y", 1, 1)], false).await;
    assert!(
        matches!(r, Err(ControllerError::Log(LogError::Uncertain))),
        "{r:?}"
    );

    // Another cluster's broker is refused by name.
    let other = RemoteController::new(active.channel(&active.voter(2)), "another-cluster");
    let r = other.register_broker(registration(3, Uuid::new_v4())).await;
    assert!(
        matches!(r, Err(ControllerError::InconsistentClusterId(_))),
        "{r:?}"
    );
}

/// A controller listener that answers ApiVersions and BrokerHeartbeat
/// (caught up, unfenced), with `tag` as the committed-offset field's bytes
/// (`None`: no field).
async fn fake_controller(tag: Option<Vec<u8>>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tag = tag.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut frame = vec![0; i32::from_be_bytes(len) as usize];
                    s.read_exact(&mut frame).await.unwrap();
                    let req = decode_request_with(Bytes::from(frame), CONTROLLER_APIS).unwrap();
                    let (key, cid, v) = (req.api_key, req.correlation_id(), req.api_version());
                    let body = match req.body {
                        RequestKind::ApiVersions(_) => {
                            ResponseKind::ApiVersions(api_versions_response(CONTROLLER_APIS, 0))
                        }
                        RequestKind::BrokerHeartbeat(_) => {
                            let mut r = BrokerHeartbeatResponse::default()
                                .with_is_caught_up(true)
                                .with_is_fenced(false);
                            if let Some(t) = &tag {
                                r.unknown_tagged_fields
                                    .insert(COMMITTED_OFFSET_TAG, Bytes::from(t.clone()));
                            }
                            ResponseKind::BrokerHeartbeat(r)
                        }
                        // Answers no topic, whatever was asked.
                        RequestKind::CreateTopics(_) => {
                            let mut r = CreateTopicsResponse::default();
                            r.unknown_tagged_fields.insert(
                                COMMITTED_OFFSET_TAG,
                                Bytes::from(7i64.to_be_bytes().to_vec()),
                            );
                            ResponseKind::CreateTopics(r)
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    let out = encode_response(key, cid, v, &body).unwrap();
                    s.write_all(&out).await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_a_trustworthy_offset_is_refused() {
    let hb = heartbeat(1, 1, Offset(0));
    let client = |addr: SocketAddr| {
        let ch = std::sync::Arc::new(sluice_transport::ControllerChannel::new(
            sluice_transport::QuorumVoters::parse(&format!("1@{addr}")).unwrap(),
            channel_config(),
        ));
        RemoteController::new(ch, CLUSTER_ID)
    };
    // An honest answer passes, so the refusals below are about the field.
    let honest = client(fake_controller(Some(42i64.to_be_bytes().to_vec())).await);
    let ok = honest.heartbeat(hb).await.unwrap();
    assert_eq!(ok.offset, Offset(42));
    assert!(!ok.value.is_fenced && ok.value.is_caught_up);

    for (tag, why) in [
        (None, "no committed offset"),
        (Some(vec![0, 0, 0, 42]), "4 bytes"),
        (Some(vec![0; 12]), "12 bytes"),
        (Some((-5i64).to_be_bytes().to_vec()), "below -1"),
    ] {
        let liar = client(fake_controller(tag.clone()).await);
        match liar.heartbeat(hb).await {
            Err(ControllerError::Internal(m)) => assert!(m.contains(why), "{tag:?}: {m}"),
            other => panic!("{tag:?} was taken: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_about_other_items_is_refused() {
    let addr = fake_controller(None).await;
    let ch = std::sync::Arc::new(sluice_transport::ControllerChannel::new(
        sluice_transport::QuorumVoters::parse(&format!("1@{addr}")).unwrap(),
        channel_config(),
    ));
    // What the broker holds: any ControllerClient behind one pointer.
    let client: std::sync::Arc<dyn ControllerClient> =
        std::sync::Arc::new(RemoteController::new(ch, CLUSTER_ID));
    match client.create_topics(vec![topic("a", 1, 1)], false).await {
        Err(ControllerError::Internal(m)) => assert!(m.contains("0 items for 1"), "{m}"),
        other => panic!("a short answer was taken: {other:?}"),
    }
}

/// A heartbeat gives up within the heartbeat timeout (half the broker's
/// session), not the admin requests' budget: a voter that accepted the
/// connection and went silent would otherwise hold it until the session
/// expired (the cluster simulation's seed 1517).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_gives_up_within_its_own_timeout() {
    // Accepts connections and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            conns.push(s);
        }
    });
    let ch = std::sync::Arc::new(sluice_transport::ControllerChannel::new(
        sluice_transport::QuorumVoters::parse(&format!("1@{addr}")).unwrap(),
        channel_config(),
    ));
    let client = RemoteController::new(ch, CLUSTER_ID)
        .with_timeout(Duration::from_secs(3600))
        .with_heartbeat_timeout(Duration::from_millis(300));
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        client.heartbeat(heartbeat(1, 1, Offset(0))),
    )
    .await
    .expect("the heartbeat waited as long as an admin request may");
    assert!(
        matches!(r, Err(ControllerError::Log(LogError::Uncertain))),
        "{r:?}"
    );
    hold.abort();
}
