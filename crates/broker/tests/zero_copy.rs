//! Zero-copy Fetch: the bytes on the wire equal kafka-protocol's encoding of
//! the same response, and a fetch whose file range is not in page cache
//! (KAFKA-7504) does not stall other connections.

mod netkit;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ProduceRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, record_values, Client, SeamFs, TestBroker};
use sluice_broker::BrokerContext;
use sluice_storage::RealFs;
use uuid::Uuid;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_topic(ctx: &BrokerContext, topic: &str, partitions: i32) -> Uuid {
    ctx.controller
        .create_topic(topic, partitions, 1, Default::default())
        .await
        .unwrap()
        .topic_id
}

async fn produce(client: &mut Client, topic: &str, partition: i32, records: Vec<u8>) -> i64 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])]);
    let ResponseKind::Produce(r) = client.call(ApiKey::Produce, 9, &req).await else {
        panic!()
    };
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset
}

/// A fetch of every partition in `topics` (name, id, partitions), plus one
/// partition that does not exist, from offset 0.
fn fetch_all(version: i16, topics: &[(&str, Uuid, i32)], isolation: i8) -> FetchRequest {
    let mut fetch_topics: Vec<FetchTopic> = topics
        .iter()
        .map(|(n, id, parts)| {
            let t = FetchTopic::default().with_partitions(
                (0..*parts + 1) // one past the last: UNKNOWN_TOPIC_OR_PARTITION
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            );
            if version >= 13 {
                t.with_topic_id(*id)
            } else {
                t.with_topic(name(n))
            }
        })
        .collect();
    // Offset 1 of a partition: starts inside the first batch.
    fetch_topics[0].partitions[0].fetch_offset = 1;
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(fetch_topics)
}

/// Produces to three topics (one left empty) and returns their ids.
async fn produce_sample(ctx: &BrokerContext, c: &mut Client) -> [(&'static str, Uuid, i32); 3] {
    let a = create_topic(ctx, "alpha", 2).await;
    let bt = create_topic(ctx, "beta", 1).await;
    let empty = create_topic(ctx, "gamma", 1).await;
    for i in 0..3 {
        let v = format!("alpha-0-{i}");
        produce(c, "alpha", 0, batch(&[v.as_bytes(), b"second"], 1_000 + i)).await;
        let v = format!("beta-{i}");
        produce(c, "beta", 0, batch(&[v.as_bytes()], 5_000 + i)).await;
    }
    produce(c, "alpha", 1, batch(&[b"only"], 9_000)).await;
    [("alpha", a, 2), ("beta", bt, 1), ("gamma", empty, 1)]
}

/// Every Fetch version and isolation level: the bytes `c` receives equal
/// kafka-protocol's encoding of the handler's answer read into memory, and
/// decode to the records produced by [`produce_sample`].
async fn assert_wire_equals_encoding(
    ctx: &BrokerContext,
    c: &mut Client,
    topics: &[(&str, Uuid, i32)],
) {
    let max = sluice_protocol::SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == ApiKey::Fetch)
        .unwrap()
        .2;
    for version in 4..=max {
        for isolation in [0, 1] {
            let req = fetch_all(version, topics, isolation);
            let correlation = c.send(ApiKey::Fetch, version, &req).await;
            let wire = c.recv_frame().await.unwrap();

            // The same request through the handler, records read into memory
            // and encoded by kafka-protocol the ordinary way.
            let header = netkit::request_header(ApiKey::Fetch, version, correlation);
            let plan = sluice_broker::handlers::fetch::handle(ctx, &header, req).await;
            assert!(
                !plan.files.is_empty()
                    && plan.files.iter().all(|f| f.slice.file.raw_fd().is_some()),
                "records must come from files that can be sendfile'd"
            );
            let response = plan.into_materialized().unwrap();
            let expected = sluice_protocol::encode_response(
                ApiKey::Fetch,
                correlation,
                version,
                &ResponseKind::Fetch(response),
            )
            .unwrap();
            assert_eq!(
                &expected[4..],
                &wire[..],
                "fetch v{version} isolation {isolation}"
            );

            // And a client decodes it to the records that were produced.
            let (_, decoded) = netkit::decode_response(ApiKey::Fetch, version, wire);
            let ResponseKind::Fetch(r) = decoded else {
                panic!()
            };
            let beta = &r.responses[1].partitions[0];
            let values: Vec<Vec<u8>> = record_values(beta.records.as_deref().unwrap())
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            assert_eq!(
                values,
                [b"beta-0".to_vec(), b"beta-1".to_vec(), b"beta-2".to_vec()]
            );
            assert_eq!(r.responses[0].partitions[2].error_code, 3);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_fetch_is_byte_identical_to_kafka_protocol_encoding() {
    let b = TestBroker::start(Arc::new(RealFs), &[]).await;
    let ctx = b.broker.context().clone();
    let mut c = b.client().await;
    let topics = produce_sample(&ctx, &mut c).await;
    assert_wire_equals_encoding(&ctx, &mut c, &topics).await;
    b.broker.shutdown().await.unwrap();
}

/// The listener seam: a broker serving a stream that is not a TCP socket
/// (the simulation's network) copies the same files it would `sendfile`,
/// and the bytes are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_is_not_tcp_copies_the_same_bytes() {
    let (b, connector) = TestBroker::start_in_memory(Arc::new(RealFs)).await;
    let ctx = b.broker.context().clone();
    let mut c = connector.connect().await;
    let topics = produce_sample(&ctx, &mut c).await;
    assert_wire_equals_encoding(&ctx, &mut c, &topics).await;
    b.broker.shutdown().await.unwrap();
}

/// KAFKA-7504. The storage seam says the fetched range is not in page cache
/// and its prefault blocks until the test opens a latch. While one
/// connection's fetch is stuck there, another connection's produce must
/// complete; then the fetch completes with the right bytes. The runtime has
/// a single worker thread, so had the cold read run on it (as `sendfile`
/// from a network thread does in Kafka), the produce could never complete;
/// a watchdog turns that hang into a failure after a generous
/// bound (far above the test's normal run time, so it is not a timing
/// assertion) instead of hanging CI.
#[test]
fn a_fetch_waiting_for_a_cold_read_does_not_stall_other_connections() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        cold_read_scenario();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(std::time::Duration::from_secs(300)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the cold-read scenario failed (see its panic above)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
            "stalled: a produce on another connection never completed while a fetch waited for a cold read"
        ),
    }
}

fn cold_read_scenario() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (fs, control) = SeamFs::new();
        let b = TestBroker::start(fs, &[]).await;
        let ctx = b.broker.context().clone();
        create_topic(&ctx, "cold", 1).await;
        create_topic(&ctx, "hot", 1).await;
        let mut producer = b.client().await;
        for i in 0..3 {
            let v = format!("old-{i}");
            produce(&mut producer, "cold", 0, batch(&[v.as_bytes()], 1_000 + i)).await;
        }

        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        *control.prefault_entered.lock().unwrap() = Some(entered_tx);
        control.cold_reads.store(true, Ordering::SeqCst);

        let mut consumer = b.client().await;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("cold"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let correlation = consumer.send(ApiKey::Fetch, 12, &req).await;

        // Wait until the fetch is inside the blocked prefault.
        tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
            .await
            .unwrap();

        // Meanwhile another connection produces, and gets its answer.
        let mut other = b.client().await;
        let offset = produce(&mut other, "hot", 0, batch(&[b"while-blocked"], 2_000)).await;
        assert_eq!(offset, 0);
        let offset = produce(&mut other, "hot", 0, batch(&[b"again"], 2_001)).await;
        assert_eq!(offset, 1);
        assert_eq!(control.prefaults.load(Ordering::SeqCst), 1);

        // Release the disk: the fetch completes with the records.
        control.release.open();
        let (got, resp) = consumer.recv(ApiKey::Fetch, 12).await;
        assert_eq!(got, correlation);
        let ResponseKind::Fetch(r) = resp else {
            panic!()
        };
        let values: Vec<(i64, Vec<u8>)> =
            record_values(r.responses[0].partitions[0].records.as_deref().unwrap());
        assert_eq!(
            values,
            vec![
                (0, b"old-0".to_vec()),
                (1, b"old-1".to_vec()),
                (2, b"old-2".to_vec())
            ]
        );
        control.cold_reads.store(false, Ordering::SeqCst);
        b.broker.shutdown().await.unwrap();
    });
}

/// Files without a descriptor (the simulated disk) are served through the
/// bounded copy path, with the same bytes on the wire; a failing disk write
/// is answered with KAFKA_STORAGE_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_without_a_descriptor_are_copied_and_disk_errors_are_reported() {
    let sim = Arc::new(sluice_storage::SimFs::new());
    let b = TestBroker::start(sim.clone(), &[]).await;
    let ctx = b.broker.context().clone();
    let id = create_topic(&ctx, "sim", 1).await;
    let mut c = b.client().await;
    for i in 0..4 {
        let v = format!("sim-{i}");
        produce(&mut c, "sim", 0, batch(&[v.as_bytes(), b"x"], i)).await;
    }
    for version in [4, 12, 13] {
        let req = fetch_all(version, &[("sim", id, 1)], 0);
        let correlation = c.send(ApiKey::Fetch, version, &req).await;
        let wire = c.recv_frame().await.unwrap();
        let header = netkit::request_header(ApiKey::Fetch, version, correlation);
        let plan = sluice_broker::handlers::fetch::handle(&ctx, &header, req).await;
        assert!(
            !plan.files.is_empty() && plan.files.iter().all(|f| f.slice.file.raw_fd().is_none())
        );
        let expected = sluice_protocol::encode_response(
            ApiKey::Fetch,
            correlation,
            version,
            &ResponseKind::Fetch(plan.into_materialized().unwrap()),
        )
        .unwrap();
        assert_eq!(&expected[4..], &wire[..], "fetch v{version}");
        let (_, decoded) = netkit::decode_response(ApiKey::Fetch, version, wire);
        let ResponseKind::Fetch(r) = decoded else {
            panic!()
        };
        // fetch_all starts partition 0 at offset 1 (inside the first batch).
        let values = record_values(r.responses[0].partitions[0].records.as_deref().unwrap());
        assert_eq!(values.len(), 8);
        assert_eq!(values[2], (2, b"sim-1".to_vec()));
    }

    sim.inject(sluice_storage::Fault::once(
        "sim-0",
        sluice_storage::FaultKind::WriteError(libc::EIO),
    ));
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("sim"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch(&[b"lost"], 0))))])]);
    let ResponseKind::Produce(r) = c.call(ApiKey::Produce, 9, &req).await else {
        panic!()
    };
    assert_eq!(r.responses[0].partition_responses[0].error_code, 56); // KAFKA_STORAGE_ERROR
                                                                      // Shutdown flushes; the simulated disk's write error may surface there.
    let _ = b.broker.shutdown().await;
}
