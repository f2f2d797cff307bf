//! Decode cost of Produce requests: the validation pass alone, and the full
//! `decode_request` (header + validation + kafka-protocol), for small and large requests.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use sluice_protocol::kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
use sluice_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_protocol::{decode_request, request_header_version, validate_request_body};

/// A Produce v9 frame (without size prefix) with `topics` × `partitions` partitions of
/// `batch` record bytes each.
fn produce_frame(topics: usize, partitions: usize, batch: usize) -> (Bytes, usize) {
    let version = 9;
    let topic_data = (0..topics)
        .map(|t| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                .with_partition_data(
                    (0..partitions)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p as i32)
                                .with_records(Some(Bytes::from(vec![0x5a; batch])))
                        })
                        .collect(),
                )
        })
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(topic_data);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, request_header_version(ApiKey::Produce, version))
        .unwrap();
    let header_len = buf.len();
    req.encode(&mut buf, version).unwrap();
    (buf.freeze(), header_len)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_decode");
    for &(topics, partitions, batch) in &[(1, 1, 1024), (4, 16, 16 * 1024), (10, 100, 1024)] {
        let (frame, header_len) = produce_frame(topics, partitions, batch);
        let label = format!("{topics}x{partitions}x{batch}B");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("validate", &label), &frame, |b, f| {
            b.iter(|| validate_request_body(0, 9, black_box(&f[header_len..])).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("decode_request", &label),
            &frame,
            |b, f| b.iter(|| decode_request(black_box(f.clone())).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
