//! Batches whose records disagree with their header, written byte by byte
//! and sent over a raw socket (issue 15): a count of 2^31-1 over three
//! records, a count of 3 (or 1) over two, a record whose length varint
//! lies, and a record at the wrong offset delta. Kafka 4.1.2 answers each
//! with INVALID_RECORD (87); so must Sluice, writing nothing: the high
//! watermark and log end offset stay where they were, and a valid batch
//! sent next gets the offset the bad ones would have taken.

mod netkit;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, record_values, Client, TestBroker};
use sluice_record::CompressionType;

const TOPIC: &str = "malformed";

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The malformed batches of the issue, each named.
fn cases(codec: CompressionType) -> Vec<(String, Vec<u8>)> {
    let c = codec.name();
    sluice_record::testing::malformed_batches(codec, None, netkit::now_ms())
        .into_iter()
        .map(|(what, batch)| (format!("{c}: {what}"), batch))
        .collect()
}

async fn produce(c: &mut Client, records: Vec<u8>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    let ResponseKind::Produce(r) = c.call(ApiKey::Produce, 9, &req).await else {
        panic!("not a produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A consumer's Fetch of the partition from offset 0, not waiting.
fn fetch_from_start(min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

/// (high watermark from Fetch, latest offset from ListOffsets).
async fn offsets(c: &mut Client) -> (i64, i64) {
    let fetch = fetch_from_start(0);
    let ResponseKind::Fetch(f) = c.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!("not a fetch response")
    };
    let hw = f.responses[0].partitions[0].high_watermark;
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let ResponseKind::ListOffsets(l) = c.call(ApiKey::ListOffsets, 7, &list).await else {
        panic!("not a list offsets response")
    };
    (hw, l.topics[0].partitions[0].offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_whose_records_disagree_with_their_header_are_invalid_and_write_nothing() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    let meta = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
        ]))
        .with_allow_auto_topic_creation(true);
    c.call(ApiKey::Metadata, 12, &meta).await;

    // The requests were about 70 bytes of batch; these are as small.
    assert!(cases(CompressionType::None)
        .iter()
        .all(|(_, b)| b.len() < 100));
    let mut next = 0i64;
    for codec in [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Zstd,
    ] {
        for (what, bad) in cases(codec) {
            assert_eq!(produce(&mut c, bad).await, (87, -1), "{what}");
            assert_eq!(offsets(&mut c).await, (next, next), "{what}: offsets moved");
            // A valid batch still appends, at the next offset.
            let (code, base) = produce(&mut c, batch(&[b"ok"], 0)).await;
            assert_eq!((code, base), (0, next), "{what}: the valid batch after it");
            next += 1;
        }
    }
    let (hw, _) = offsets(&mut c).await;
    assert_eq!(hw, next);
    // What a consumer reads is exactly the valid batches.
    let fetch = fetch_from_start(1);
    let ResponseKind::Fetch(f) = c.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!()
    };
    let values = record_values(f.responses[0].partitions[0].records.as_deref().unwrap());
    assert_eq!(values.len() as i64, next);
    assert!(values.iter().all(|(_, v)| v == b"ok"));
    b.broker.shutdown().await.unwrap();
}
