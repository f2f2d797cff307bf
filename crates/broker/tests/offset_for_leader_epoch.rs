//! OffsetForLeaderEpoch over the wire: advertised as Kafka 4.1.2 does
//! (v2–v4), answered at every version from the leader's epoch cache, and a
//! hostile body is refused by the bounded validation (the connection
//! closes; the process does not abort on a huge array count).
//!
//! `OFLE_TARGET=host:port` runs the same tests against another broker (a
//! one-node Apache Kafka 4.1.2 gave the same answers, see the test names)
//! instead of an in-process Sluice.

mod netkit;

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, MetadataRequest, OffsetForLeaderEpochRequest,
    ProduceRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, request_header, Client, TestBroker};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn produce_until_created(c: &mut Client, topic: &str, records: usize) -> i64 {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    c.call(ApiKey::Metadata, 12, &req).await;
    let values: Vec<Vec<u8>> = (0..records).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch(&refs, 0))))])]);
        let ResponseKind::Produce(r) = c.call(ApiKey::Produce, 9, &req).await else {
            panic!("not a produce response");
        };
        let p = &r.responses[0].partition_responses[0];
        if p.error_code == 0 {
            return p.base_offset;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topic never became writable: {}",
            p.error_code
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn request(topic: &str, current: i32, epoch: i32) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])])
}

/// The broker under test: `OFLE_TARGET`, else an in-process Sluice.
async fn target() -> (Option<TestBroker>, std::net::SocketAddr) {
    if let Ok(addr) = std::env::var("OFLE_TARGET") {
        return (None, addr.parse().expect("OFLE_TARGET is host:port"));
    }
    let b = TestBroker::start_default().await;
    let addr = b.addr();
    (Some(b), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_at_every_advertised_version() {
    let (_b, addr) = target().await;
    let mut c = Client::connect(addr).await;
    let ResponseKind::ApiVersions(v) = c
        .call(ApiKey::ApiVersions, 2, &ApiVersionsRequest::default())
        .await
    else {
        panic!("not an ApiVersions response");
    };
    let api = v
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::OffsetForLeaderEpoch as i16)
        .expect("OffsetForLeaderEpoch advertised");
    assert_eq!((api.min_version, api.max_version), (2, 4));

    produce_until_created(&mut c, "ofle", 3).await;
    let leo = produce_until_created(&mut c, "ofle", 2).await + 2;
    for version in 2..=4 {
        for (current, epoch, want) in [
            (0, 0, (0, 0, leo)),
            (-1, 0, (0, 0, leo)),
            (-1, 1, (0, -1, -1)),
            (1, 0, (75, -1, -1)), // UNKNOWN_LEADER_EPOCH: newer than the leader's
        ] {
            let ResponseKind::OffsetForLeaderEpoch(r) = c
                .call(
                    ApiKey::OffsetForLeaderEpoch,
                    version,
                    &request("ofle", current, epoch),
                )
                .await
            else {
                panic!("not an OffsetForLeaderEpoch response");
            };
            let p = &r.topics[0].partitions[0];
            assert_eq!(
                (p.error_code, p.leader_epoch, p.end_offset),
                want,
                "v{version} current {current} epoch {epoch}"
            );
        }
    }
    let ResponseKind::OffsetForLeaderEpoch(r) = c
        .call(ApiKey::OffsetForLeaderEpoch, 4, &request("missing", -1, 0))
        .await
    else {
        panic!("not an OffsetForLeaderEpoch response");
    };
    assert_eq!(
        r.topics[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

/// A v4 body claiming 2^31 topics in a few bytes, and v1 (outside Kafka
/// 4.1.2's range): the connection is closed, the broker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_or_unsupported_requests_close_the_connection() {
    use bytes::BufMut;
    use kafka_protocol::protocol::Encodable;
    let (_b, addr) = target().await;
    let mut c = Client::connect(addr).await;
    let header = request_header(ApiKey::OffsetForLeaderEpoch, 4, 1);
    let mut frame = bytes::BytesMut::new();
    frame.put_i32(0);
    header
        .encode(
            &mut frame,
            sluice_protocol::request_header_version(ApiKey::OffsetForLeaderEpoch, 4),
        )
        .unwrap();
    frame.put_i32(-1); // replica id
    frame.put_u8(0xff); // compact array length: a varint of 2^31
    frame.put_u8(0xff);
    frame.put_u8(0xff);
    frame.put_u8(0xff);
    frame.put_u8(0x07);
    frame.put_u8(0);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    c.send_raw(&frame).await.unwrap();
    assert!(c.is_closed_by_broker().await);

    // v1 (kafka-protocol no longer encodes it): topics [name, partitions
    // [partition, leader epoch]].
    let mut c = Client::connect(addr).await;
    let mut frame = bytes::BytesMut::new();
    frame.put_i32(0);
    request_header(ApiKey::OffsetForLeaderEpoch, 1, 1)
        .encode(&mut frame, 1)
        .unwrap();
    frame.put_i32(1);
    frame.put_i16(1);
    frame.put_slice(b"t");
    frame.put_i32(1);
    frame.put_i32(0);
    frame.put_i32(0);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    c.send_raw(&frame).await.unwrap();
    assert!(c.is_closed_by_broker().await);

    let mut c = Client::connect(addr).await;
    let ResponseKind::OffsetForLeaderEpoch(r) = c
        .call(ApiKey::OffsetForLeaderEpoch, 4, &request("t", -1, 0))
        .await
    else {
        panic!("not an OffsetForLeaderEpoch response");
    };
    assert_eq!(r.topics[0].partitions[0].error_code, 3);
}
