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

fn zigzag(out: &mut Vec<u8>, v: i32) {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// One record: no key, `value`, no headers, its length varint off by `lie`.
fn record(offset_delta: i32, value: &[u8], lie: i32) -> Vec<u8> {
    let mut body = vec![0u8, 0]; // attributes, timestamp delta 0
    zigzag(&mut body, offset_delta);
    zigzag(&mut body, -1); // null key
    zigzag(&mut body, value.len() as i32);
    body.extend_from_slice(value);
    zigzag(&mut body, 0); // no headers
    let mut out = Vec::new();
    zigzag(&mut out, body.len() as i32 + lie);
    out.extend(body);
    out
}

/// A batch laid out field by field with a correct CRC, whatever its count
/// and last offset delta say about `section`.
fn raw_batch(
    codec: CompressionType,
    last_offset_delta: i32,
    count: i32,
    section: &[u8],
) -> Vec<u8> {
    let section = sluice_record::compress(codec, section).unwrap();
    let now = netkit::now_ms();
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, below
    b.extend_from_slice(&codec.id().to_be_bytes()); // attributes
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&section);
    let crc = sluice_record::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn records(values: &[(i32, &[u8], i32)]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&(delta, v, lie)| record(delta, v, lie))
        .collect()
}

/// The malformed batches of the issue, each named.
fn cases(codec: CompressionType) -> Vec<(String, Vec<u8>)> {
    let three = records(&[(0, b"a", 0), (1, b"b", 0), (2, b"c", 0)]);
    let two = records(&[(0, b"a", 0), (1, b"b", 0)]);
    let c = codec.name();
    vec![
        (
            format!("{c}: count 2^31-1, lastOffsetDelta 2^31-2, three records"),
            raw_batch(codec, i32::MAX - 1, i32::MAX, &three),
        ),
        (
            format!("{c}: count 3 over two records"),
            raw_batch(codec, 2, 3, &two),
        ),
        (
            format!("{c}: count 1 over two records"),
            raw_batch(codec, 0, 1, &two),
        ),
        (
            format!("{c}: first record's length one byte long"),
            raw_batch(codec, 1, 2, &records(&[(0, b"a", 1), (1, b"b", 0)])),
        ),
        (
            format!("{c}: second record's length one byte short"),
            raw_batch(codec, 1, 2, &records(&[(0, b"a", 0), (1, b"bb", -1)])),
        ),
        (
            format!("{c}: records at offset deltas 0 and 5"),
            raw_batch(codec, 1, 2, &records(&[(0, b"a", 0), (5, b"b", 0)])),
        ),
    ]
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

/// (high watermark from Fetch, latest offset from ListOffsets).
async fn offsets(c: &mut Client) -> (i64, i64) {
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
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
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(f) = c.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!()
    };
    let values = record_values(f.responses[0].partitions[0].records.as_deref().unwrap());
    assert_eq!(values.len() as i64, next);
    assert!(values.iter().all(|(_, v)| v == b"ok"));
    b.broker.shutdown().await.unwrap();
}
