//! The controller listener on the wire: the admin APIs a broker forwards,
//! answered after commit with Kafka's error codes; the channel's move to
//! another voter on NOT_CONTROLLER or an unreachable voter; and hostile
//! frames, which close the connection without a panic or a write.

mod common;

use std::time::Duration;

use common::*;
use sluice_metadata::{BrokerId, ConfigResource, ConfigResourceType};
use sluice_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use sluice_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use sluice_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use sluice_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use sluice_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use sluice_protocol::kafka_protocol::messages::*;
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_transport::{ControllerChannel, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn topic(name: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

async fn create(
    ch: &ControllerChannel,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    ch.send(&req, LONG).await.unwrap()
}

/// A controller with brokers 1 and 2 registered and unfenced.
async fn with_two_brokers() -> (
    Controller,
    Vec<std::sync::Arc<sluice_transport::BrokerLifecycleManager>>,
) {
    let ctl = Controller::start(1).await;
    let brokers: Vec<_> = (1..=2).map(|id| ctl.broker(id)).collect();
    for m in &brokers {
        m.start();
    }
    for id in 1..=2 {
        until("brokers unfenced", || {
            ctl.c
                .image()
                .broker(BrokerId(id))
                .is_some_and(|b| !b.fenced)
        })
        .await;
    }
    (ctl, brokers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_through_the_channel_answer_after_commit() {
    let (ctl, brokers) = with_two_brokers().await;
    let ch = ctl.channel(&ctl.voter(1));
    let resp = create(
        &ch,
        vec![
            topic("orders", 4).with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))]),
        ],
        false,
    )
    .await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0, "{t:?}");
    assert_eq!(t.num_partitions, 4);
    assert!(!t.topic_id.is_nil());
    let configs = t.configs.as_ref().unwrap();
    assert!(configs.iter().any(|c| &*c.name == "cleanup.policy"));
    // Answered after commit: the image already holds it.
    let image = ctl.c.image();
    let orders = image.topic("orders").expect("committed before the answer");
    assert_eq!(orders.id(), t.topic_id);
    assert_eq!(orders.partitions().len(), 4);

    let again = create(&ch, vec![topic("orders", 1), topic("dry", 2)], true).await;
    assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    assert_eq!(again.topics[1].error_code, 0);
    assert!(again.topics[1].topic_id.is_nil());
    assert!(ctl.c.image().topic("dry").is_none(), "validate_only wrote");

    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("orders")))
            .with_count(6)
            .with_assignments(None)])
        .with_timeout_ms(30_000);
    let resp = ch.send(&req, LONG).await.unwrap();
    assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0]);
    assert_eq!(ctl.c.image().topic("orders").unwrap().partitions().len(), 6);

    let req = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(s("orders")))),
            DeleteTopicState::default().with_topic_id(Uuid::from_u128(7)),
        ])
        .with_timeout_ms(30_000);
    let resp = ch.send(&req, LONG).await.unwrap();
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].topic_id, t.topic_id);
    assert_eq!(resp.responses[1].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert!(ctl.c.image().topic("orders").is_none());
    for m in &brokers {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_elections_and_producer_ids_through_the_channel() {
    let (ctl, brokers) = with_two_brokers().await;
    let ch = ctl.channel(&ctl.voter(1));
    assert_eq!(
        create(&ch, vec![topic("cfg", 2)], false).await.topics[0].error_code,
        0
    );

    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(99)
            .with_resource_name(s("cfg")),
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("cfg"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s("1000")))]),
    ]);
    let resp = ch.send(&req, LONG).await.unwrap();
    assert_eq!(resp.responses[0].error_code, 42, "INVALID_REQUEST");
    assert_eq!(resp.responses[1].error_code, 0, "{:?}", resp.responses[1]);
    let res = ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: "cfg".into(),
    };
    assert_eq!(
        ctl.c
            .image()
            .config(&res)
            .get("retention.ms")
            .map(String::as_str),
        Some("1000")
    );

    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(TopicName(s("cfg")))
            .with_partitions(vec![0])]))
        .with_timeout_ms(30_000);
    let resp = ch.send(&req, LONG).await.unwrap();
    assert_eq!(resp.error_code, 0);
    let pr = &resp.replica_election_results[0].partition_result[0];
    assert_eq!(pr.error_code, 84, "ELECTION_NOT_NEEDED: {pr:?}");

    let epoch = brokers[0].status().broker_epoch.unwrap();
    let req = AllocateProducerIdsRequest::default()
        .with_broker_id(BrokerId(1).0.into())
        .with_broker_epoch(epoch);
    let resp = ch.send(&req, LONG).await.unwrap();
    assert_eq!(resp.error_code, 0);
    assert!(resp.producer_id_len > 0);
    let resp = ch
        .send(&req.with_broker_epoch(epoch - 1), LONG)
        .await
        .unwrap();
    assert_eq!(resp.error_code, 77, "STALE_BROKER_EPOCH");

    let hb = BrokerHeartbeatRequest::default()
        .with_broker_id(42.into())
        .with_broker_epoch(1);
    let resp = ch.send(&hb, LONG).await.unwrap();
    assert_eq!(resp.error_code, 102, "BROKER_ID_NOT_REGISTERED");
    assert!(resp.is_fenced);
    for m in &brokers {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_controller_and_dead_voters_move_the_channel_on() {
    let inactive = Controller::start(1).await;
    inactive.log.set_leader(Some(BrokerId(2)));
    let active = Controller::start(2).await;
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };

    let only_inactive = inactive.channel(&inactive.voter(1));
    match only_inactive
        .send(
            &CreateTopicsRequest::default().with_topics(vec![topic("x", 1)]),
            Duration::from_millis(300),
        )
        .await
    {
        Err(TransportError::ControllerUnavailable { last, .. }) => {
            assert!(last.contains("NOT_CONTROLLER"), "{last}")
        }
        other => panic!("expected NOT_CONTROLLER to exhaust the voters: {other:?}"),
    }

    let b = active.broker(1);
    b.register().await.unwrap();
    b.heartbeat().await.unwrap();
    let voters = format!("3@{dead},{},{}", inactive.voter(1), active.voter(2));
    let ch = active.channel(&voters);
    let resp = create(&ch, vec![topic("x", 1)], false).await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    assert_eq!(ch.controller_hint(), 2);
    assert!(active.c.image().topic("x").is_some());
    assert!(inactive.c.image().topic("x").is_none());
}

/// A voter that answers ApiVersions, then holds CreateTopics requests
/// until `together` are in flight on its connection and refuses them all
/// at once with NOT_CONTROLLER.
async fn refusing_voter(together: usize) -> std::net::SocketAddr {
    use bytes::Bytes;
    use sluice_protocol::{api_versions_response, decode_request_with, encode_response};
    use sluice_transport::CONTROLLER_APIS;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut frame = vec![0; i32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut frame).await.is_err() {
                        return;
                    }
                    let req = decode_request_with(Bytes::from(frame), CONTROLLER_APIS).unwrap();
                    let (key, cid, v) = (req.api_key, req.correlation_id(), req.api_version());
                    match req.body {
                        RequestKind::ApiVersions(_) => {
                            let body = ResponseKind::ApiVersions(api_versions_response(
                                CONTROLLER_APIS,
                                0,
                            ));
                            let out = encode_response(key, cid, v, &body).unwrap();
                            s.write_all(&out).await.unwrap();
                        }
                        RequestKind::CreateTopics(r) => {
                            held.push((key, cid, v, r));
                            if held.len() < together {
                                continue;
                            }
                            for (key, cid, v, r) in held.drain(..) {
                                let topics = r
                                    .topics
                                    .iter()
                                    .map(|t| {
                                        create_topics_response::CreatableTopicResult::default()
                                            .with_name(t.name.clone())
                                            .with_error_code(41)
                                    })
                                    .collect();
                                let body = ResponseKind::CreateTopics(
                                    CreateTopicsResponse::default().with_topics(topics),
                                );
                                let out = encode_response(key, cid, v, &body).unwrap();
                                if s.write_all(&out).await.is_err() {
                                    return;
                                }
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            });
        }
    });
    addr
}

/// As many requests in flight as there are voters, all refused with
/// NOT_CONTROLLER by the same voter, move the channel on once, not once
/// each: else they bring it back to that voter every round and never reach
/// the active one (the cluster simulation's seed 1517).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_together_move_the_channel_on_once() {
    let active = Controller::start(2).await;
    let b = active.broker(1);
    b.register().await.unwrap();
    b.heartbeat().await.unwrap();
    let refusing = refusing_voter(3).await;
    // Voters 1 and 3 are the same refusing voter; 2 is active.
    let voters = format!("1@{refusing},{},3@{refusing}", active.voter(2));
    let ch = active.channel(&voters);
    let sends: Vec<_> = (0..3)
        .map(|i| {
            let ch = ch.clone();
            tokio::spawn(async move {
                let req = CreateTopicsRequest::default()
                    .with_topics(vec![topic(&format!("t{i}"), 1)])
                    .with_timeout_ms(30_000);
                ch.send(&req, Duration::from_secs(10)).await
            })
        })
        .collect();
    for (i, send) in sends.into_iter().enumerate() {
        let resp = send.await.unwrap();
        let resp =
            resp.unwrap_or_else(|e| panic!("request {i} never reached the active voter: {e}"));
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    }
    assert_eq!(ch.controller_hint(), 2);
}

/// Writes `bytes` on a fresh connection and reads until the server closes.
async fn raw(ctl: &Controller, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(ctl.server.local_addr())
        .await
        .unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let r = tokio::time::timeout(LONG, s.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "the server kept a hostile connection open");
    out
}

fn frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&7i32.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_the_connection_and_write_nothing() {
    let ctl = Controller::start(1).await;
    let before = ctl.log.batches().len();
    // A size prefix far above socket.request.max.bytes, and a negative one.
    assert!(raw(&ctl, &0x7fff_ffffi32.to_be_bytes(), false)
        .await
        .is_empty());
    assert!(raw(&ctl, &(-5i32).to_be_bytes(), false).await.is_empty());
    // A truncated frame, then EOF.
    let mut t = frame(18, 0, &[]);
    t.truncate(7);
    assert!(raw(&ctl, &t, true).await.is_empty());
    // An api key Kafka does not define, and one the listener does not serve.
    assert!(raw(&ctl, &frame(9999, 0, &[]), false).await.is_empty());
    assert!(raw(&ctl, &frame(0, 9, &[0; 16]), false).await.is_empty());
    // CreateTopics v2 whose topics array claims 2^31-1 elements.
    let lying = frame(19, 2, &[0x7f, 0xff, 0xff, 0xff, 0, 1, b'a']);
    assert!(raw(&ctl, &lying, false).await.is_empty());
    // A registration whose listener count lies (flexible: compact varint).
    let mut reg = vec![0, 0, 0, 1, 0x01 /* empty cluster id */];
    reg.extend_from_slice(&[0; 16]);
    reg.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
    let mut f = frame(62, 0, &[]);
    f.push(0); // request header v2 tagged fields
    f.extend_from_slice(&reg);
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    assert!(raw(&ctl, &f, false).await.is_empty());
    // ApiVersions newer than the listener: Kafka's v0 fallback, error 35.
    // (v3+ has request header v2: the byte is its empty tagged fields.)
    let answer = raw(&ctl, &frame(18, 99, &[0]), true).await;
    assert!(answer.len() > 10, "{answer:?}");
    assert_eq!(&answer[4..8], &7i32.to_be_bytes());
    assert_eq!(i16::from_be_bytes([answer[8], answer[9]]), 35);

    assert_eq!(ctl.log.batches().len(), before, "a hostile frame wrote");
    // The listener still serves.
    let m = ctl.broker(1);
    m.register().await.unwrap();
}

#[test]
fn fuzz_bodies_survive_hostile_inputs() {
    use sluice_transport::fuzzing::{controller_frame, parse_voters};
    controller_frame(&frame(19, 2, &[0x7f, 0xff, 0xff, 0xff]));
    controller_frame(&frame(62, 4, &[0xff; 40]));
    controller_frame(&[0xff; 3]);
    parse_voters(b"1@[::1]:9093,2@h:1");
    parse_voters(&[0xff, 0x40]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_voter_times_out_instead_of_hanging() {
    // Accepts connections and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            conns.push(s);
        }
    });
    let config = sluice_transport::ChannelConfig {
        request_timeout_ms: 100,
        ..channel_config()
    };
    let ch = ControllerChannel::new(
        sluice_transport::QuorumVoters::parse(&format!("1@{addr}")).unwrap(),
        config,
    );
    let r = ch
        .send(
            &BrokerHeartbeatRequest::default(),
            Duration::from_millis(500),
        )
        .await;
    assert!(
        matches!(r, Err(TransportError::ControllerUnavailable { .. })),
        "{r:?}"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_their_own_answers() {
    let (ctl, brokers) = with_two_brokers().await;
    let config = sluice_transport::ChannelConfig {
        max_in_flight: 4,
        ..channel_config()
    };
    let ch = std::sync::Arc::new(ControllerChannel::new(
        sluice_transport::QuorumVoters::parse(&ctl.voter(1)).unwrap(),
        config,
    ));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("p{i}");
            let resp = create(&ch, vec![topic(&name, 1)], false).await;
            (name, resp)
        }));
    }
    for t in tasks {
        let (name, resp) = t.await.unwrap();
        assert_eq!(&*resp.topics[0].name.0, name.as_str());
        assert_eq!(resp.topics[0].error_code, 0);
        assert!(ctl.c.image().topic(&name).is_some());
    }
    for m in &brokers {
        m.stop().await;
    }
}
