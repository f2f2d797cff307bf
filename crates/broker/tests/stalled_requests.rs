//! Issue 15: a dozen 14-byte requests, each claiming a 100 MiB frame and
//! then sending nothing more, must not stall the broker. Request budget
//! (`queued.max.request.bytes`) is taken as bytes arrive, so the claims
//! hold a few bytes each; other clients are answered at once, and the
//! heap does not grow with what the frames claim (a counting allocator
//! watches the live bytes).
//!
//! One test function on purpose: the allocation counters are process-wide.

mod netkit;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, MetadataRequest, ProduceRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, Client, TestBroker};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CLAIMS: usize = 12;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A hang means the broker is stalled; this turns it into a failure.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer after 120 s: the broker is stalled"))
}

/// Metadata for `topic`, auto-creating it: the creating request answers
/// UNKNOWN_TOPIC_OR_PARTITION (3) as Kafka's does, so ask again, as
/// clients do.
async fn metadata(c: &mut Client, topic: &str) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    for _ in 0..2 {
        match c.call(ApiKey::Metadata, 12, &req).await {
            ResponseKind::Metadata(m) if m.topics[0].error_code == 0 => return,
            ResponseKind::Metadata(m) => assert_eq!(m.topics[0].error_code, 3),
            other => panic!("{other:?}"),
        }
    }
    panic!("{topic} not created after two Metadata requests");
}

async fn produce(c: &mut Client, topic: &str, value: &[u8]) -> i64 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch(&[value], 0))))])]);
    match c.call(ApiKey::Produce, 9, &req).await {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0);
            p.base_offset
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dozen_stalled_claims_do_not_stall_the_broker() {
    // A pool smaller than one claim: reserving what a frame claims would
    // let the first claim take all of it.
    let b = TestBroker::start(
        Arc::new(sluice_storage::RealFs),
        &[("queued.max.request.bytes", "67108864")],
    )
    .await;
    let mut good = b.client().await;
    metadata(&mut good, "t").await;
    produce(&mut good, "t", b"before").await;

    // The same stall with claims 50 times smaller, then the issue's own.
    let small = stall_and_serve(&b, &mut good, 2 << 20).await;
    let big = stall_and_serve(&b, &mut good, 100 << 20).await;
    println!(
        "heap growth while {CLAIMS} connections claimed 2 MiB each: {small} bytes, \
         100 MiB each: {big} bytes"
    );
    // At most the 1 MiB buffer preallocation per connection, whatever the
    // claim (1.2 GiB in all for the big ones), and no more for big claims
    // than for small ones.
    assert!(big < 32 << 20, "heap grew by {big} bytes");
    assert!(
        big < small + (8 << 20),
        "heap growth follows the claims: {small} then {big} bytes"
    );
    within("produce", produce(&mut good, "t", b"after")).await;
    b.broker.shutdown().await.unwrap();
}

/// Opens [`CLAIMS`] connections that each send 14 bytes of a frame claiming
/// `claim` bytes, checks that other clients are answered meanwhile, and
/// returns how much the heap grew at most. The stalled connections are
/// then dropped (tests/connection_limits.rs shows the broker closing them
/// after sluice.request.stall.timeout.ms).
async fn stall_and_serve(b: &TestBroker, good: &mut Client, claim: i32) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut stalled = Vec::new();
    for _ in 0..CLAIMS {
        let mut c = b.client().await;
        let mut bytes = claim.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 10]); // 14 bytes in all
        c.send_raw(&bytes).await.unwrap();
        stalled.push(c);
    }
    // Other clients go on being answered while the claims stall, on an
    // existing connection and on new ones.
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let value = format!("while stalled {round}");
        within("produce", produce(good, "t", value.as_bytes())).await;
        let mut fresh = b.client().await;
        within("metadata", metadata(&mut fresh, "t")).await;
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    drop(stalled);
    // The broker sees the connections end and frees their buffers, so the
    // next measurement starts clean.
    within("freeing the stalled connections' buffers", async {
        while LIVE.load(Ordering::Relaxed) > base + (1 << 20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    peak
}
