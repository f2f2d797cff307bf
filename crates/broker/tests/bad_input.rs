//! Hostile bytes over a raw socket. Every case gets Kafka's answer or a
//! closed connection; none panics, none makes the broker allocate what the
//! bytes claim (a counting allocator watches the largest single
//! allocation), and a well-behaved client on another connection keeps
//! being served throughout.
//!
//! One test function on purpose: the allocation watermark is process-wide.

mod netkit;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, MetadataRequest, ProduceRequest,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, record_values, Client, TestBroker};
use tokio::io::AsyncWriteExt;

struct Watermark;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watermark {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Watermark = Watermark;

/// Nothing a bad request does may allocate more than this at once.
const ALLOCATION_LIMIT: usize = 16 << 20;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A frame: size prefix, then `header_and_body` as given.
fn frame(header_and_body: &[u8]) -> Vec<u8> {
    let mut v = (header_and_body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(header_and_body);
    v
}

/// Request header v1 (classic) or v2 (flexible) for `api_key`/`version`.
fn header(api_key: i16, version: i16, flexible: bool) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(4242);
    b.put_i16(3);
    b.put_slice(b"bad");
    if flexible {
        b.put_u8(0); // no tagged fields
    }
    b
}

/// An unsigned varint of `v` (compact lengths are length + 1).
fn uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// Every hostile input, with what it is.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases: Vec<(&'static str, Vec<u8>)> = Vec::new();
    cases.push((
        "garbage (an HTTP request)",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
    ));
    cases.push(("garbage with a small size prefix", frame(&[0xab; 12])));
    cases.push((
        "size prefix of 2 GiB (0x80000000)",
        vec![0x80, 0, 0, 0, 1, 2, 3],
    ));
    cases.push((
        "size prefix just under 2 GiB",
        vec![0x7f, 0xff, 0xff, 0xff, 0, 18],
    ));
    cases.push(("negative size -1", (-1i32).to_be_bytes().to_vec()));
    cases.push((
        "negative size -100000",
        (-100_000i32).to_be_bytes().to_vec(),
    ));
    cases.push(("unknown api key 9999", {
        let mut h = header(9999, 0, false);
        h.put_slice(&[0; 8]);
        frame(&h)
    }));
    cases.push(("unsupported Produce version 0", {
        let mut h = header(0, 0, false);
        h.put_slice(&[0; 16]);
        frame(&h)
    }));
    cases.push((
        "Metadata v12 with a compact array count of 2^32-2 (the kafka-protocol abort)",
        {
            let mut h = header(3, 12, true);
            h.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00]);
            frame(&h)
        },
    ));
    cases.push(("Metadata v4 with topics array length INT32_MAX", {
        let mut h = header(3, 4, false);
        h.put_i32(i32::MAX);
        h.put_u8(1);
        frame(&h)
    }));
    cases.push(("Metadata v12 topic name compact string length 2^32-2", {
        let mut h = header(3, 12, true);
        uvarint(&mut h, 2); // one topic
        h.put_slice(&[0; 16]); // topic id
        h.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // name length
        h.put_slice(b"abc");
        frame(&h)
    }));
    cases.push(("Produce v3 with topic_data length INT32_MAX", {
        let mut h = header(0, 3, false);
        h.put_i16(-1); // transactional id: null
        h.put_i16(1); // acks
        h.put_i32(1000); // timeout
        h.put_i32(i32::MAX);
        frame(&h)
    }));
    cases.push(("Produce v9 with compact topic_data count 2^32-2", {
        let mut h = header(0, 9, true);
        h.put_u8(0); // transactional id: null
        h.put_i16(1);
        h.put_i32(1000);
        h.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        frame(&h)
    }));
    cases.push(("Produce v3 with records length INT32_MAX", {
        let mut h = header(0, 3, false);
        h.put_i16(-1);
        h.put_i16(1);
        h.put_i32(1000);
        h.put_i32(1); // one topic
        h.put_i16(1);
        h.put_slice(b"t");
        h.put_i32(1); // one partition
        h.put_i32(0); // index
        h.put_i32(i32::MAX); // records length
        h.put_slice(&[0; 32]);
        frame(&h)
    }));
    cases.push(("Produce v3 with topic name length 32767 and 3 bytes", {
        let mut h = header(0, 3, false);
        h.put_i16(-1);
        h.put_i16(1);
        h.put_i32(1000);
        h.put_i32(1);
        h.put_i16(i16::MAX);
        h.put_slice(b"abc");
        frame(&h)
    }));
    cases.push(("Fetch v4 with topics length INT32_MAX", {
        let mut h = header(1, 4, false);
        h.put_i32(-1); // replica id
        h.put_i32(500); // max wait
        h.put_i32(1); // min bytes
        h.put_i32(1 << 20); // max bytes
        h.put_i8(0); // isolation
        h.put_i32(i32::MAX);
        frame(&h)
    }));
    cases.push(("Fetch v12 with compact partitions count 2^32-2", {
        let mut h = header(1, 12, true);
        h.put_i32(-1);
        h.put_i32(500);
        h.put_i32(1);
        h.put_i32(1 << 20);
        h.put_i8(0);
        h.put_i32(0); // session id
        h.put_i32(-1); // session epoch
        uvarint(&mut h, 2); // one topic
        uvarint(&mut h, 2); // name "t"
        h.put_slice(b"t");
        h.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        frame(&h)
    }));
    cases.push(("ListOffsets v1 with topics length INT32_MAX", {
        let mut h = header(2, 1, false);
        h.put_i32(-1);
        h.put_i32(i32::MAX);
        frame(&h)
    }));
    cases.push(("CreateTopics v4 with topics length INT32_MAX", {
        let mut h = header(19, 4, false);
        h.put_i32(i32::MAX);
        h.put_i32(1000);
        frame(&h)
    }));
    cases.push(("header client id length 32767 with 3 bytes", {
        let mut b = BytesMut::new();
        b.put_i16(18);
        b.put_i16(2);
        b.put_i32(1);
        b.put_i16(i16::MAX);
        b.put_slice(b"abc");
        frame(&b)
    }));
    cases.push(("frame shorter than a header", frame(&[0, 18, 0])));
    cases
}

async fn healthy_round_trip(c: &mut Client, round: usize) {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("good"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let ResponseKind::ApiVersions(r) = c.call(ApiKey::ApiVersions, 3, &req).await else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    let value = format!("round-{round}");
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("healthy"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch(
                    &[value.as_bytes()],
                    1_000,
                ))))])]);
    let ResponseKind::Produce(r) = c.call(ApiKey::Produce, 9, &produce).await else {
        panic!()
    };
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name("healthy"))
            .with_partitions(vec![FetchPartition::default()
                .with_fetch_offset(p.base_offset)
                .with_partition_max_bytes(1 << 20)])]);
    let ResponseKind::Fetch(r) = c.call(ApiKey::Fetch, 12, &fetch).await else {
        panic!()
    };
    let values = record_values(r.responses[0].partitions[0].records.as_deref().unwrap());
    assert_eq!(values[0], (p.base_offset, value.into_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_close_only_their_own_connection() {
    let b = TestBroker::start_default().await;
    let mut good = b.client().await;
    let meta = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("healthy")))
        ]))
        .with_allow_auto_topic_creation(true);
    good.call(ApiKey::Metadata, 12, &meta).await;
    healthy_round_trip(&mut good, 0).await;

    ARMED.store(true, Ordering::SeqCst);
    for (round, (what, bytes)) in cases().into_iter().enumerate() {
        let mut bad = b.client().await;
        // The broker may close while we are still writing; that is fine.
        let _ = bad.send_raw(&bytes).await;
        assert!(
            bad.is_closed_by_broker().await,
            "{what}: connection left open"
        );
        healthy_round_trip(&mut good, round + 1).await;
    }

    // A frame cut short by the client: the broker waits for the rest, and
    // closes when the client half-closes.
    let mut bad = b.client().await;
    bad.send_raw(&[0, 0, 0, 100, 0, 18, 0, 3, 0, 0, 0, 1])
        .await
        .unwrap();
    bad.stream.shutdown().await.unwrap();
    assert!(
        bad.is_closed_by_broker().await,
        "truncated frame: connection left open"
    );
    healthy_round_trip(&mut good, 1000).await;
    ARMED.store(false, Ordering::SeqCst);

    let largest = LARGEST.load(Ordering::SeqCst);
    assert!(
        largest < ALLOCATION_LIMIT,
        "largest single allocation was {largest} bytes"
    );
    b.broker.shutdown().await.unwrap();
}
