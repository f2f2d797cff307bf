//! AlterPartition on the controller listener: `RemoteController` answers
//! as the in-process client (states, errors, committed offsets), raw v2
//! and v3 requests get Kafka's fields and error codes, and only the
//! controller listener advertises the API.

mod common;

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use common::*;
use sluice_controller::client::ControllerClient;
use sluice_controller::{
    AlterPartitionItem, AlterPartitionRequest, BrokerHeartbeat, BrokerRegistrationRequest,
    ControllerError, CreateTopic, PartitionState, ReplicaAssignment,
};
use sluice_metadata::{BrokerEpoch, BrokerId, LeaderRecoveryState, PartitionEpoch};
use sluice_protocol::kafka_protocol::messages::alter_partition_request::{
    BrokerState, PartitionData, TopicData,
};
use sluice_protocol::kafka_protocol::messages::*;
use sluice_protocol::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use sluice_record::LeaderEpoch;
use sluice_transport::{RemoteController, CONTROLLER_APIS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// Registers brokers 1-3 through `c` and heartbeats until unfenced;
/// returns their epochs.
async fn three_brokers(c: &dyn ControllerClient, ctl: &Controller) -> Vec<BrokerEpoch> {
    let mut epochs = Vec::new();
    for id in 1..=3 {
        let reg = c
            .register_broker(BrokerRegistrationRequest {
                broker_id: BrokerId(id),
                incarnation_id: Uuid::from_u128(id as u128),
                listeners: Vec::new(),
                features: Vec::new(),
                rack: None,
                log_dirs: Vec::new(),
                previous_broker_epoch: None,
            })
            .await
            .unwrap();
        epochs.push(reg.value.broker_epoch);
    }
    for (i, &epoch) in epochs.iter().enumerate() {
        let bound = tokio::time::Instant::now() + LONG;
        loop {
            let hb = BrokerHeartbeat {
                broker_id: BrokerId(i as i32 + 1),
                broker_epoch: epoch,
                current_metadata_offset: ctl.c.image().provenance().last_offset,
                want_fence: false,
                want_shutdown: false,
            };
            if !c.heartbeat(hb).await.unwrap().value.is_fenced {
                break;
            }
            assert!(tokio::time::Instant::now() < bound, "never unfenced");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    epochs
}

/// Topic `t` with one partition on [1, 2, 3] (leader 1, ISR [1]).
async fn topic(c: &dyn ControllerClient) -> Uuid {
    let created = c
        .create_topics(
            vec![CreateTopic {
                assignments: vec![ReplicaAssignment {
                    partition: 0,
                    replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                }],
                ..CreateTopic::named("t")
            }],
            false,
        )
        .await
        .unwrap();
    created.value[0].as_ref().unwrap().topic_id
}

/// One side: a controller and the client that reaches it.
struct Side {
    ctl: Controller,
    client: Arc<dyn ControllerClient>,
    topic: Uuid,
    epochs: Vec<BrokerEpoch>,
}

impl Side {
    async fn start(remote: bool) -> Side {
        let ctl = Controller::start(1).await;
        let client: Arc<dyn ControllerClient> = if remote {
            Arc::new(RemoteController::new(
                ctl.channel(&ctl.voter(1)),
                CLUSTER_ID,
            ))
        } else {
            Arc::new(ctl.c.clone())
        };
        let epochs = three_brokers(&*client, &ctl).await;
        let topic = topic(&*client).await;
        Side {
            ctl,
            client,
            topic,
            epochs,
        }
    }

    /// An item for partition 0 at the partition's epochs shifted by
    /// (leader, partition) proposing `isr` at the members' real epochs.
    fn item(&self, shift: (i32, i32), isr: &[i32]) -> AlterPartitionItem {
        let image = self.ctl.c.image();
        let reg = image.topic("t").unwrap().partition(0).unwrap();
        AlterPartitionItem {
            topic_id: self.topic,
            partition: 0,
            leader_epoch: LeaderEpoch(reg.leader_epoch.0 + shift.0),
            partition_epoch: PartitionEpoch(reg.partition_epoch.0 + shift.1),
            new_isr: isr
                .iter()
                .map(|&b| (BrokerId(b), self.epochs[b as usize - 1].0))
                .collect(),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        }
    }
}

/// A result with the side's topic id left out.
fn key(r: &Result<PartitionState, ControllerError>) -> String {
    match r {
        Ok(s) => format!("{s:?}"),
        Err(e) => format!("error {}", sluice_transport::controller_error_code(e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_client_answers_as_the_in_process_one() {
    let local = Side::start(false).await;
    let far = Side::start(true).await;
    // Rounds of requests, each built from the side's own image.
    type Build = fn(&Side) -> AlterPartitionRequest;
    let rounds: Vec<(&str, Build)> = vec![
        ("expand", |s| {
            request(1, s.epochs[0], vec![s.item((0, 0), &[1, 2, 3])])
        }),
        ("batch of refusals and a shrink", |s| {
            let mut unknown = s.item((0, 0), &[1, 2]);
            unknown.topic_id = Uuid::from_u128(77);
            let mut ineligible = s.item((0, 0), &[1, 2]);
            ineligible.new_isr[1].1 += 100;
            request(
                1,
                s.epochs[0],
                vec![
                    s.item((-1, 0), &[1, 2]),
                    s.item((0, -1), &[1, 2]),
                    s.item((1, 0), &[1, 2]),
                    s.item((0, 0), &[2, 3]),
                    s.item((0, 0), &[1, 1]),
                    unknown,
                    ineligible,
                    s.item((0, 0), &[1, 3]),
                ],
            )
        }),
        ("not the leader", |s| {
            request(2, s.epochs[1], vec![s.item((0, 0), &[1, 2])])
        }),
    ];
    for (what, build) in rounds {
        let l = local.client.alter_partition(build(&local)).await.unwrap();
        let r = far.client.alter_partition(build(&far)).await.unwrap();
        let lk: Vec<_> = l.value.partitions.iter().map(|p| key(&p.result)).collect();
        let rk: Vec<_> = r.value.partitions.iter().map(|p| key(&p.result)).collect();
        assert_eq!(lk, rk, "{what}");
        for (p, asked) in r.value.partitions.iter().zip(&build(&far).partitions) {
            assert_eq!((p.topic_id, p.partition), (asked.topic_id, 0));
        }
        // The remote answer's offset is the far controller's truth.
        let image = far.ctl.c.image_at(r.offset).await.unwrap();
        let committed = PartitionState::of(image.topic("t").unwrap().partition(0).unwrap());
        if let Some(Ok(state)) = r.value.partitions.last().map(|p| &p.result) {
            assert_eq!(*state, committed, "{what}");
        }
        assert_eq!(l.offset, r.offset, "{what}");
    }
    // A whole-request refusal: the stale broker epoch.
    let stale = |s: &Side| {
        request(
            1,
            BrokerEpoch(s.epochs[0].0 + 50),
            vec![s.item((0, 0), &[1])],
        )
    };
    let l = local.client.alter_partition(stale(&local)).await;
    let r = far.client.alter_partition(stale(&far)).await;
    assert!(
        matches!(l, Err(ControllerError::StaleBrokerEpoch { .. })),
        "{l:?}"
    );
    assert!(
        matches!(r, Err(ControllerError::StaleBrokerEpoch { .. })),
        "{r:?}"
    );
    let state =
        |s: &Side| PartitionState::of(s.ctl.c.image().topic("t").unwrap().partition(0).unwrap());
    assert_eq!(state(&local), state(&far));
    assert_eq!(state(&far).isr, vec![BrokerId(1), BrokerId(3)]);
}

fn request(
    broker: i32,
    epoch: BrokerEpoch,
    items: Vec<AlterPartitionItem>,
) -> AlterPartitionRequest {
    AlterPartitionRequest {
        broker_id: BrokerId(broker),
        broker_epoch: epoch,
        partitions: items,
    }
}

/// Sends `req` at `version` on a fresh connection and decodes the answer.
async fn call<R: Encodable + HeaderVersion>(
    ctl: &Controller,
    key: ApiKey,
    version: i16,
    req: &R,
) -> BytesMut {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .encode(&mut body, R::header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    let mut s = tokio::net::TcpStream::connect(ctl.server.local_addr())
        .await
        .unwrap();
    s.write_all(&frame).await.unwrap();
    let len = tokio::time::timeout(LONG, s.read_i32())
        .await
        .unwrap()
        .unwrap();
    let mut answer = vec![0u8; len as usize];
    s.read_exact(&mut answer).await.unwrap();
    BytesMut::from(&answer[..])
}

async fn alter_at(ctl: &Controller, version: i16, req: &WireRequest) -> AlterPartitionResponse {
    let mut answer = call(ctl, ApiKey::AlterPartition, version, req).await;
    let header =
        ResponseHeader::decode(&mut answer, AlterPartitionResponse::header_version(version))
            .unwrap();
    assert_eq!(header.correlation_id, 9);
    let resp = AlterPartitionResponse::decode(&mut answer, version).unwrap();
    assert!(!answer.has_remaining(), "the whole answer was read");
    resp
}

type WireRequest = sluice_protocol::kafka_protocol::messages::AlterPartitionRequest;

fn wire(broker: i32, epoch: i64, topic: Uuid, parts: Vec<PartitionData>) -> WireRequest {
    WireRequest::default()
        .with_broker_id(broker.into())
        .with_broker_epoch(epoch)
        .with_topics(vec![TopicData::default()
            .with_topic_id(topic)
            .with_partitions(parts)])
}

fn part(leader_epoch: i32, partition_epoch: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_epoch(leader_epoch)
        .with_partition_epoch(partition_epoch)
}

fn with_epochs(p: PartitionData, isr: &[(i32, i64)]) -> PartitionData {
    p.with_new_isr_with_epochs(
        isr.iter()
            .map(|&(b, e)| {
                BrokerState::default()
                    .with_broker_id(b.into())
                    .with_broker_epoch(e)
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_error_codes_and_fields_come_back_on_the_wire() {
    let side = Side::start(false).await;
    let ctl = &side.ctl;
    let (id, e) = (side.topic, |b: usize| side.epochs[b - 1].0);
    let pe = ctl
        .c
        .image()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .partition_epoch
        .0;
    // v3, one request: each refusal by its Kafka code, and a success with
    // every field of the committed state.
    let req = wire(
        1,
        e(1),
        id,
        vec![
            with_epochs(part(-1, pe), &[(1, e(1))]), // FENCED_LEADER_EPOCH
            with_epochs(part(0, pe - 1), &[(1, e(1))]), // INVALID_UPDATE_VERSION
            with_epochs(part(1, pe), &[(1, e(1))]),  // NOT_CONTROLLER
            with_epochs(part(0, pe), &[(2, e(2))]),  // INVALID_REQUEST
            with_epochs(part(0, pe), &[(1, e(1)), (2, 99)]), // INELIGIBLE_REPLICA
            with_epochs(part(0, pe), &[(1, e(1))]).with_leader_recovery_state(7), // INVALID_REQUEST
            with_epochs(part(0, pe), &[(1, e(1)), (3, e(3))]),
        ],
    );
    let before = ctl.c.image().provenance().last_offset;
    let resp = alter_at(ctl, 3, &req).await;
    assert_eq!(resp.error_code, 0);
    let parts = &resp.topics[0].partitions;
    let codes: Vec<i16> = parts.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, [74, 95, 41, 42, 107, 42, 0]);
    let ok = &parts[6];
    assert_eq!(
        (
            ok.leader_id.0,
            ok.leader_epoch,
            ok.partition_epoch,
            ok.leader_recovery_state
        ),
        (1, 0, pe + 1, 0)
    );
    assert_eq!(ok.isr.iter().map(|b| b.0).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(resp.topics[0].topic_id, id);
    // The committed offset rides in tagged field 10000.
    let offset = sluice_transport::committed::read(&resp.unknown_tagged_fields).unwrap();
    assert!(offset > before);
    // UNKNOWN_TOPIC_ID; a stale broker epoch is the top-level error.
    let resp = alter_at(ctl, 3, &wire(1, e(1), Uuid::from_u128(5), vec![part(0, 0)])).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 100);
    let resp = alter_at(ctl, 3, &wire(1, e(1) + 1, id, vec![part(0, 0)])).await;
    assert_eq!((resp.error_code, resp.topics.len()), (77, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_carries_the_isr_as_ids_and_its_epochs_are_not_checked() {
    let side = Side::start(false).await;
    let ctl = &side.ctl;
    let pe = ctl
        .c
        .image()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .partition_epoch
        .0;
    let p = part(0, pe).with_new_isr(vec![1.into(), 2.into()]);
    let resp = alter_at(ctl, 2, &wire(1, side.epochs[0].0, side.topic, vec![p])).await;
    let ok = &resp.topics[0].partitions[0];
    assert_eq!(ok.error_code, 0, "{resp:?}");
    assert_eq!(ok.isr.iter().map(|b| b.0).collect::<Vec<_>>(), [1, 2]);
    let image = ctl.c.image();
    assert_eq!(
        image.topic("t").unwrap().partition(0).unwrap().isr,
        [BrokerId(1), BrokerId(2)]
    );
    // v0 and v1 (topic names) are not served, as Kafka 4.1: the connection
    // closes without an answer.
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::AlterPartition as i16)
        .with_request_api_version(1)
        .with_correlation_id(9)
        .encode(&mut frame, 2)
        .unwrap();
    frame.put_i32(1);
    frame.put_u8(0);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    let mut s = tokio::net::TcpStream::connect(ctl.server.local_addr())
        .await
        .unwrap();
    s.write_all(&out).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(LONG, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
}

#[test]
fn only_the_controller_listener_advertises_alter_partition() {
    let on = |list: &[(ApiKey, i16, i16)]| {
        list.iter()
            .find(|(k, _, _)| *k == ApiKey::AlterPartition)
            .map(|&(_, lo, hi)| (lo, hi))
    };
    assert_eq!(on(CONTROLLER_APIS), Some((2, 3)), "Kafka 4.1.2's range");
    assert_eq!(on(sluice_protocol::SUPPORTED_APIS), None);
}

#[test]
fn the_channel_sends_v2_with_the_ids_alone() {
    use sluice_transport::ControllerApi;
    let v3 = wire(
        1,
        5,
        Uuid::from_u128(1),
        vec![with_epochs(part(0, 0), &[(1, 5), (2, 6)])],
    );
    assert!(v3.at_version(3).is_none(), "v3 goes as built");
    let v2 = v3.at_version(2).unwrap();
    let p = &v2.topics[0].partitions[0];
    assert!(p.new_isr_with_epochs.is_empty());
    assert_eq!(p.new_isr.iter().map(|b| b.0).collect::<Vec<_>>(), [1, 2]);
    // Each encodes at its version (a v3 field left in v2 would not).
    let mut buf = BytesMut::new();
    v2.encode(&mut buf, 2).unwrap();
    assert!(v3.encode(&mut BytesMut::new(), 2).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_alter_partition_closes_the_connection_and_writes_nothing() {
    let side = Side::start(false).await;
    let ctl = &side.ctl;
    let before = ctl.log.batches().len();
    // v3 body: broker id, broker epoch, then a topics count of ~2^32
    // (compact array) with nothing behind it; and a topic whose ISR count
    // is huge.
    let mut huge_topics = BytesMut::new();
    huge_topics.put_i32(1);
    huge_topics.put_i64(side.epochs[0].0);
    huge_topics.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut huge_isr = BytesMut::new();
    huge_isr.put_i32(1);
    huge_isr.put_i64(side.epochs[0].0);
    huge_isr.put_u8(2); // one topic
    huge_isr.extend_from_slice(side.topic.as_bytes());
    huge_isr.put_u8(2); // one partition
    huge_isr.put_i32(0); // index
    huge_isr.put_i32(0); // leader epoch
    huge_isr.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // NewIsrWithEpochs
    for body in [huge_topics, huge_isr] {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::AlterPartition as i16)
            .with_request_api_version(3)
            .with_correlation_id(9)
            .encode(&mut frame, 2)
            .unwrap();
        frame.extend_from_slice(&body);
        sluice_transport::fuzzing::controller_frame(&frame);
        let mut out = (frame.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&frame);
        let mut s = tokio::net::TcpStream::connect(ctl.server.local_addr())
            .await
            .unwrap();
        s.write_all(&out).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(LONG, s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty(), "answered a hostile frame");
    }
    assert_eq!(ctl.log.batches().len(), before, "a hostile frame wrote");
    // The listener still serves AlterPartition.
    let pe = ctl
        .c
        .image()
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .partition_epoch
        .0;
    let ok = wire(
        1,
        side.epochs[0].0,
        side.topic,
        vec![with_epochs(part(0, pe), &[(1, -1), (2, -1)])],
    );
    assert_eq!(
        alter_at(ctl, 3, &ok).await.topics[0].partitions[0].error_code,
        0
    );
}
