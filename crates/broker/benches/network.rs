//! Hot paths of the network layer: frame reading, Fetch response layout
//! (the zero-copy chunk list), and produce/fetch round trips through an
//! in-process broker over loopback. Prints criterion's figures; asserts
//! nothing about speed.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use sluice_broker::handlers::fetch::{FetchPlan, FileRecords};
use sluice_broker::network::codec::fetch_chunks;
use sluice_broker::network::frame::{FrameReader, MemoryPool};
use sluice_broker::{Broker, BrokerConfig};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};
use sluice_storage::{FileSlice, Fs, OpenOptions, RealFs, SystemClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_reader");
    for size in [100usize, 16 * 1024, 1 << 20] {
        let count = (8 << 20) / size;
        let mut stream = Vec::with_capacity(count * (size + 4));
        for _ in 0..count {
            stream.extend_from_slice(&(size as i32).to_be_bytes());
            stream.extend(std::iter::repeat_n(7u8, size));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        group.throughput(Throughput::Bytes(stream.len() as u64));
        // Unbounded, and the default queued.max.request.bytes (budget taken
        // as bytes arrive).
        for (name, capacity) in [("unbounded", usize::MAX), ("pool_512MiB", 512 << 20)] {
            let pool = MemoryPool::new(capacity);
            let id = BenchmarkId::new(name, size);
            group.bench_with_input(id, &stream, |b, stream| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut r = FrameReader::new(&stream[..], 100 << 20, pool.clone());
                        let mut n = 0;
                        while let Some(f) = r.next_frame().await.unwrap() {
                            n += f.bytes.len();
                        }
                        n
                    })
                })
            });
        }
    }
    group.finish();
}

fn fetch_layout(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let fs = RealFs;
    let file = fs
        .open(
            &dir.path().join("seg.log"),
            &OpenOptions::read_write_create(),
        )
        .unwrap();
    file.write_at(&vec![0u8; 1 << 20], 0).unwrap();
    let mut group = c.benchmark_group("fetch_chunks");
    for partitions in [1usize, 10, 100] {
        let plan = {
            let parts: Vec<PartitionData> = (0..partitions)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p as i32)
                        .with_high_watermark(1000)
                        .with_last_stable_offset(1000)
                        .with_log_start_offset(0)
                        .with_aborted_transactions(None)
                })
                .collect();
            let response =
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("bench")))
                    .with_partitions(parts)]);
            let files = (0..partitions)
                .map(|p| FileRecords {
                    topic: 0,
                    partition: p,
                    slice: FileSlice {
                        file: file.clone(),
                        position: 0,
                        len: 8192,
                        next_offset: sluice_record::Offset(0),
                    },
                })
                .collect();
            FetchPlan { response, files }
        };
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(12)
            .with_correlation_id(1);
        group.throughput(Throughput::Elements(partitions as u64));
        group.bench_with_input(BenchmarkId::from_parameter(partitions), &plan, |b, plan| {
            b.iter(|| fetch_chunks(&header, plan.clone()).unwrap().len())
        });
    }
    group.finish();
}

fn request(api_key: ApiKey, version: i16, correlation: i32, body: &impl Encodable) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut buf = bytes::BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(
            &mut buf,
            sluice_protocol::request_header_version(api_key, version),
        )
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.to_vec()
}

async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.unwrap();
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

fn round_trips(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().to_str().unwrap().to_string();
    let (broker, mut client) = rt.block_on(async {
        let config = BrokerConfig::with_overrides(&[
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
            ("log.dirs", log_dir.as_str()),
        ])
        .unwrap();
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let broker = Broker::start(config, fs, Arc::new(SystemClock))
            .await
            .unwrap();
        let ctx = broker.context().clone();
        ctx.controller
            .create_topic("bench", 1, 1, Default::default())
            .await
            .unwrap();
        let client = TcpStream::connect(broker.bound_addr()).await.unwrap();
        client.set_nodelay(true).unwrap();
        (broker, client)
    });

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut builder = BatchBuilder::new(CompressionType::None);
    for i in 0..16 {
        builder
            .append(Timestamp(now + i), Some(b"key"), Some(&[b'v'; 1000]), &[])
            .unwrap();
    }
    let batch = Bytes::from(builder.build().unwrap());
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.clone()))])]);
    let produce_frame = request(ApiKey::Produce, 9, 1, &produce);

    let mut group = c.benchmark_group("loopback");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("produce_16KiB_acks1", |b| {
        b.iter(|| {
            rt.block_on(async {
                client.write_all(&produce_frame).await.unwrap();
                read_frame(&mut client).await.len()
            })
        })
    });

    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("bench")))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetch_frame = request(ApiKey::Fetch, 12, 2, &fetch);
    let fetched = rt.block_on(async {
        client.write_all(&fetch_frame).await.unwrap();
        read_frame(&mut client).await.len()
    });
    group.throughput(Throughput::Bytes(fetched as u64));
    group.bench_function("fetch_1MiB_sendfile", |b| {
        b.iter(|| {
            rt.block_on(async {
                client.write_all(&fetch_frame).await.unwrap();
                read_frame(&mut client).await.len()
            })
        })
    });
    group.finish();
    drop(client);
    rt.block_on(broker.shutdown()).unwrap();
}

criterion_group!(benches, frames, fetch_layout, round_trips);
criterion_main!(benches);
