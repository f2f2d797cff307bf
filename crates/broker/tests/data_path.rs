//! The data path over a real socket: Metadata (auto-creation), Produce,
//! Fetch (including the long poll), ListOffsets, ApiVersions, pipelining.

mod netkit;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{batch, record_values, Client, SeamFs, TestBroker};
use uuid::Uuid;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn metadata(
    client: &mut Client,
    version: i16,
    topics: &[&str],
    auto: bool,
) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto);
    match client.call(ApiKey::Metadata, version, &req).await {
        ResponseKind::Metadata(m) => m,
        other => panic!("{other:?}"),
    }
}

/// Auto-creates `topics` as a client does: a Metadata request that allows
/// creation, repeated while a topic answers UNKNOWN_TOPIC_OR_PARTITION (the
/// request that triggers the creation is answered with that error, as in
/// Kafka). Returns the first answer in which every topic exists.
async fn auto_create(client: &mut Client, topics: &[&str]) -> MetadataResponse {
    for _ in 0..100 {
        let m = metadata(client, 12, topics, true).await;
        if m.topics.iter().all(|t| t.error_code == 0) {
            return m;
        }
        assert!(m.topics.iter().all(|t| t.error_code == 3), "{m:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{topics:?} never created");
}

fn produce_request(topic: &str, partition: i32, records: Vec<u8>, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

async fn produce(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
    acks: i16,
) -> PartitionProduceResponse {
    let req = produce_request(topic, partition, records, acks);
    match client.call(ApiKey::Produce, version, &req).await {
        ResponseKind::Produce(mut r) => {
            assert_eq!(r.responses.len(), 1);
            assert_eq!(r.responses[0].name, name(topic));
            r.responses[0].partition_responses.remove(0)
        }
        other => panic!("{other:?}"),
    }
}

fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

async fn fetch(client: &mut Client, version: i16, req: &FetchRequest) -> PartitionData {
    match client.call(ApiKey::Fetch, version, req).await {
        ResponseKind::Fetch(mut r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.session_id, 0);
            assert_eq!(r.responses.len(), 1);
            r.responses[0].partitions.remove(0)
        }
        other => panic!("{other:?}"),
    }
}

async fn list_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    match client.call(ApiKey::ListOffsets, 7, &req).await {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.offset, p.timestamp)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_topics_and_advertises_the_bound_port() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;

    // The request that creates the topic answers as Kafka does: unknown,
    // no partitions, no id; the topic is there on the next request.
    let m = metadata(&mut c, 12, &["orders"], true).await;
    assert_eq!(m.topics[0].error_code, 3); // UNKNOWN_TOPIC_OR_PARTITION
    assert!(m.topics[0].partitions.is_empty());
    assert_eq!(m.topics[0].topic_id, Uuid::nil());
    let m = metadata(&mut c, 12, &["orders"], true).await;
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].port, i32::from(b.addr().port()));
    assert_eq!(m.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(m.controller_id, m.brokers[0].node_id);
    let t = &m.topics[0];
    assert_eq!(t.error_code, 0);
    assert_ne!(t.topic_id, Uuid::nil());
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].leader_id, m.brokers[0].node_id);
    assert_eq!(t.partitions[0].replica_nodes, vec![m.brokers[0].node_id]);
    assert_eq!(t.partitions[0].isr_nodes, vec![m.brokers[0].node_id]);

    // The same id on a second look; all-topics listing includes it.
    let again = metadata(&mut c, 12, &["orders"], true).await;
    assert_eq!(again.topics[0].topic_id, t.topic_id);
    let all = match c
        .call(
            ApiKey::Metadata,
            1,
            &MetadataRequest::default().with_topics(None),
        )
        .await
    {
        ResponseKind::Metadata(m) => m,
        other => panic!("{other:?}"),
    };
    let listed: Vec<&str> = all
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
        .collect();
    assert_eq!(listed, ["orders"]);

    // No creation when the client forbids it; bad names are refused.
    let m = metadata(&mut c, 12, &["other"], false).await;
    assert_eq!(m.topics[0].error_code, 3); // UNKNOWN_TOPIC_OR_PARTITION
    let m = metadata(&mut c, 12, &["bad/name"], true).await;
    assert_eq!(m.topics[0].error_code, 17); // INVALID_TOPIC_EXCEPTION
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_returns_the_records_with_assigned_offsets() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;

    let p = produce(&mut c, 9, "t", 0, batch(&[b"a", b"b", b"c"], 1_000), -1).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let p = produce(&mut c, 3, "t", 0, batch(&[b"d", b"e"], 2_000), 1).await;
    assert_eq!((p.error_code, p.base_offset), (0, 3));
    assert_eq!(p.log_append_time_ms, -1);

    for version in [4, 11, 12] {
        let d = fetch(&mut c, version, &fetch_request("t", 0, 0, 0, 1)).await;
        assert_eq!(d.error_code, 0);
        assert_eq!(d.high_watermark, 5);
        assert_eq!(d.last_stable_offset, 5);
        let values = record_values(d.records.as_deref().unwrap());
        let expected: Vec<(i64, Vec<u8>)> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.as_bytes().to_vec()))
            .collect();
        assert_eq!(values, expected, "fetch v{version}");
    }
    // From the middle of the log: starts at the batch holding offset 4.
    let d = fetch(&mut c, 12, &fetch_request("t", 0, 4, 0, 1)).await;
    let values = record_values(d.records.as_deref().unwrap());
    assert!(values.contains(&(4, b"e".to_vec())));
    assert!(!values.iter().any(|(o, _)| *o < 3));
    // At the end: nothing, no error.
    let d = fetch(&mut c, 12, &fetch_request("t", 0, 5, 0, 1)).await;
    assert_eq!(d.error_code, 0);
    assert!(d.records.as_deref().unwrap_or_default().is_empty());
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reports_offset_out_of_range_and_unknown_partitions() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;
    produce(&mut c, 9, "t", 0, batch(&[b"a"], 1_000), -1).await;

    let d = fetch(&mut c, 12, &fetch_request("t", 0, 100, 0, 1)).await;
    assert_eq!(d.error_code, 1); // OFFSET_OUT_OF_RANGE
    assert_eq!(d.high_watermark, -1);
    let d = fetch(&mut c, 12, &fetch_request("t", 7, 0, 0, 1)).await;
    assert_eq!(d.error_code, 3); // UNKNOWN_TOPIC_OR_PARTITION
    assert_eq!(d.partition_index, 7);
    let d = fetch(&mut c, 12, &fetch_request("nope", 0, 0, 0, 1)).await;
    assert_eq!(d.error_code, 3);
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_reported_per_partition() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;

    let p = produce(&mut c, 9, "t", 3, batch(&[b"a"], 1_000), -1).await;
    assert_eq!(p.error_code, 3); // UNKNOWN_TOPIC_OR_PARTITION
    let p = produce(&mut c, 9, "missing", 0, batch(&[b"a"], 1_000), -1).await;
    assert_eq!(p.error_code, 3);
    let p = produce(&mut c, 9, "t", 0, batch(&[b"a"], 1_000), 2).await;
    assert_eq!(p.error_code, 21); // INVALID_REQUIRED_ACKS

    let mut corrupt = batch(&[b"a", b"b"], 1_000);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // payload no longer matches the CRC
    let p = produce(&mut c, 9, "t", 0, corrupt, -1).await;
    assert_eq!(p.error_code, 2); // CORRUPT_MESSAGE
    assert_eq!(p.base_offset, -1);

    let p = produce(&mut c, 9, "__consumer_offsets", 0, batch(&[b"a"], 0), -1).await;
    assert_eq!(p.error_code, 17); // INVALID_TOPIC_EXCEPTION: clients cannot write internal topics

    // A timestamp two hours ahead (message.timestamp.after.max.ms is 1 h).
    let p = produce(&mut c, 9, "t", 0, batch(&[b"future"], 7_200_000), -1).await;
    assert_eq!(p.error_code, 32); // INVALID_TIMESTAMP

    // A batch over the topic's max.message.bytes.
    let ctx = b.broker.context().clone();
    let configs: BTreeMap<String, String> =
        [("max.message.bytes".to_string(), "200".to_string())].into();
    ctx.controller
        .create_topic("small", 1, 1, configs)
        .await
        .unwrap();
    let p = produce(&mut c, 9, "small", 0, batch(&[&[7u8; 500]], 0), -1).await;
    assert_eq!(p.error_code, 10); // MESSAGE_TOO_LARGE
    let p = produce(&mut c, 9, "small", 0, batch(&[b"fits"], 0), -1).await;
    assert_eq!(p.error_code, 0);

    // Nothing of the rejected requests was written.
    let p = produce(&mut c, 9, "t", 0, batch(&[b"ok"], 1_000), -1).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_answers_earliest_latest_max_timestamp_and_by_timestamp() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;
    let t0 = netkit::now_ms() - 60_000;
    produce(&mut c, 9, "t", 0, netkit::batch_at(&[b"a", b"b"], t0), -1).await; // offsets 0,1 at t0, t0+1
    produce(
        &mut c,
        9,
        "t",
        0,
        netkit::batch_at(&[b"c"], t0 + 10_000),
        -1,
    )
    .await; // offset 2
    produce(&mut c, 9, "t", 0, netkit::batch_at(&[b"d"], t0 + 5_000), -1).await; // offset 3, older ts

    assert_eq!(list_offset(&mut c, "t", 0, -2).await, (0, 0, -1));
    assert_eq!(list_offset(&mut c, "t", 0, -1).await, (0, 4, -1));
    assert_eq!(list_offset(&mut c, "t", 0, -3).await, (0, 2, t0 + 10_000));
    assert_eq!(
        list_offset(&mut c, "t", 0, t0 + 7_000).await,
        (0, 2, t0 + 10_000)
    );
    // Inside a batch: the exact record, not the batch start.
    assert_eq!(list_offset(&mut c, "t", 0, t0 + 1).await, (0, 1, t0 + 1));
    assert_eq!(list_offset(&mut c, "t", 0, t0).await, (0, 0, t0));
    assert_eq!(list_offset(&mut c, "t", 0, t0 + 60_000).await, (0, -1, -1));
    assert_eq!(list_offset(&mut c, "t", 5, -1).await.0, 3);
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_fetch_is_woken_by_a_produce_on_another_connection() {
    let b = TestBroker::start_default().await;
    let mut consumer = b.client().await;
    let mut producer = b.client().await;
    auto_create(&mut producer, &["t"]).await;

    // Long enough that only the append can end the wait in a passing run.
    let req = fetch_request("t", 0, 0, 120_000, 1);
    let correlation = consumer.send(ApiKey::Fetch, 12, &req).await;
    // Give the fetch a chance to start waiting (not required for
    // correctness: if the produce lands first, the fetch finds the data).
    tokio::task::yield_now().await;
    let p = produce(&mut producer, 9, "t", 0, batch(&[b"wake"], 1_000), 1).await;
    assert_eq!(p.error_code, 0);

    let (got, resp) = consumer.recv(ApiKey::Fetch, 12).await;
    assert_eq!(got, correlation);
    let ResponseKind::Fetch(r) = resp else {
        panic!()
    };
    let d = &r.responses[0].partitions[0];
    assert_eq!(
        record_values(d.records.as_deref().unwrap()),
        vec![(0, b"wake".to_vec())]
    );
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_a_fetch_that_is_still_waiting() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;
    let correlation = c
        .send(ApiKey::Fetch, 12, &fetch_request("t", 0, 0, 600_000, 1))
        .await;
    // A ListOffsets behind it on the same connection proves the fetch was
    // read before shutdown starts (requests are handled in order, so the
    // fetch is already waiting once this was decoded... or answered).
    let reader = tokio::spawn(async move {
        let (got, resp) = c.recv(ApiKey::Fetch, 12).await;
        assert_eq!(got, correlation);
        let ResponseKind::Fetch(r) = resp else {
            panic!()
        };
        r.responses[0].partitions[0].error_code
    });
    // Let the request reach the broker before shutting down.
    let mut probe = b.client().await;
    metadata(&mut probe, 12, &["t"], false).await;
    b.broker.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_request_order() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;

    // Ten requests of mixed kinds in one write, then read ten answers.
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10 {
        let correlation = 1000 + i;
        let frame = match i % 3 {
            0 => netkit::request_frame(
                ApiKey::Produce,
                9,
                correlation,
                &produce_request("t", 0, batch(&[format!("v{i}").as_bytes()], 1_000), -1),
            ),
            1 => netkit::request_frame(
                ApiKey::Fetch,
                12,
                correlation,
                &fetch_request("t", 0, 0, 0, 1),
            ),
            _ => {
                netkit::request_frame(ApiKey::ApiVersions, 3, correlation, &api_versions_request())
            }
        };
        wire.extend_from_slice(&frame);
        expected.push((correlation, i % 3));
    }
    c.send_raw(&wire).await.unwrap();
    let mut produced = 0;
    for (correlation, kind) in expected {
        let (api, version) = match kind {
            0 => (ApiKey::Produce, 9),
            1 => (ApiKey::Fetch, 12),
            _ => (ApiKey::ApiVersions, 3),
        };
        let (got, resp) = c.recv(api, version).await;
        assert_eq!(got, correlation);
        match resp {
            ResponseKind::Produce(r) => {
                assert_eq!(r.responses[0].partition_responses[0].base_offset, produced);
                produced += 1;
            }
            ResponseKind::Fetch(r) => {
                // Sees exactly the produces that came before it.
                let values =
                    record_values(r.responses[0].partitions[0].records.as_deref().unwrap());
                assert_eq!(values.len() as i64, produced);
            }
            ResponseKind::ApiVersions(r) => assert_eq!(r.error_code, 0),
            other => panic!("{other:?}"),
        }
    }
    b.broker.shutdown().await.unwrap();
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("netkit"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_produce_is_not_answered_but_is_appended() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;
    c.send(
        ApiKey::Produce,
        9,
        &produce_request("t", 0, batch(&[b"x"], 1_000), 0),
    )
    .await;
    // The next answer on this connection is the fetch's, and it sees the
    // acks=0 record.
    let d = fetch(&mut c, 12, &fetch_request("t", 0, 0, 0, 1)).await;
    assert_eq!(
        record_values(d.records.as_deref().unwrap()),
        vec![(0, b"x".to_vec())]
    );

    // A failing acks=0 produce closes the connection (Kafka's only signal).
    c.send(
        ApiKey::Produce,
        9,
        &produce_request("t", 9, batch(&[b"x"], 1_000), 0),
    )
    .await;
    assert!(c.is_closed_by_broker().await);
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_advertises_the_table_and_falls_back_to_v0() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    let ResponseKind::ApiVersions(r) = c
        .call(ApiKey::ApiVersions, 3, &api_versions_request())
        .await
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    let advertised: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let table: Vec<(i16, i16, i16)> = sluice_protocol::SUPPORTED_APIS
        .iter()
        .map(|&(k, lo, hi)| (k as i16, lo, hi))
        .collect();
    assert_eq!(advertised, table);
    // As a KRaft broker: the supported metadata.version and
    // transaction.version ranges and their finalized levels, with the image's offset as the epoch
    // (`kafka-features describe`). Default-valued tagged fields stay
    // unwritten (old librdkafka), which the encoder does.
    let supported: Vec<(&str, i16, i16)> = r
        .supported_features
        .iter()
        .map(|f| (f.name.as_str(), f.min_version, f.max_version))
        .collect();
    // v3 leaves out ranges that start at 0 (KIP-1022), as Kafka does.
    assert_eq!(supported, vec![("metadata.version", 7, 27)]);
    let finalized: Vec<(&str, i16, i16)> = r
        .finalized_features
        .iter()
        .map(|f| (f.name.as_str(), f.min_version_level, f.max_version_level))
        .collect();
    assert_eq!(
        finalized,
        vec![("metadata.version", 27, 27), ("transaction.version", 2, 2)]
    );
    assert!(r.finalized_features_epoch >= 0);
    assert!(!r.zk_migration_ready);
    // v4 lists them all.
    let ResponseKind::ApiVersions(r4) = c
        .call(ApiKey::ApiVersions, 4, &api_versions_request())
        .await
    else {
        panic!()
    };
    let supported: Vec<(&str, i16, i16)> = r4
        .supported_features
        .iter()
        .map(|f| (f.name.as_str(), f.min_version, f.max_version))
        .collect();
    assert_eq!(
        supported,
        vec![("metadata.version", 7, 27), ("transaction.version", 0, 2)]
    );

    // A version from the future: v0 answer, UNSUPPORTED_VERSION, the ranges.
    // (Encoded as v3 with the header claiming v99: kafka-protocol cannot
    // encode a version it does not know.)
    let correlation = 77;
    let mut wire =
        netkit::request_frame(ApiKey::ApiVersions, 3, correlation, &api_versions_request());
    wire[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&wire).await.unwrap();
    let frame = c.recv_frame().await.unwrap();
    let (got, resp) = netkit::decode_response(ApiKey::ApiVersions, 0, frame);
    assert_eq!(got, correlation);
    let ResponseKind::ApiVersions(r) = resp else {
        panic!()
    };
    assert_eq!(r.error_code, 35);
    assert_eq!(r.api_keys.len(), table.len());

    // Invalid client software name (KIP-511): INVALID_REQUEST.
    let bad = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("-bad"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let ResponseKind::ApiVersions(r) = c.call(ApiKey::ApiVersions, 3, &bad).await else {
        panic!()
    };
    assert_eq!(r.error_code, 42);
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_messages_one_topics_acknowledge_only_after_an_fsync() {
    let (fs, control) = SeamFs::new();
    let b = TestBroker::start(fs, &[]).await;
    let ctx = b.broker.context().clone();
    let configs: BTreeMap<String, String> =
        [("flush.messages".to_string(), "1".to_string())].into();
    let ctx2 = ctx.clone();
    ctx2.controller
        .create_topic("durable", 1, 1, configs)
        .await
        .unwrap();
    let mut c = b.client().await;
    for i in 0..3i64 {
        let before = control.log_syncs.load(Ordering::SeqCst);
        let p = produce(&mut c, 9, "durable", 0, batch(&[b"x"], 1_000), -1).await;
        assert_eq!((p.error_code, p.base_offset), (0, i));
        assert!(
            control.log_syncs.load(Ordering::SeqCst) > before,
            "acknowledged before any fsync of the log"
        );
    }
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_v13_and_later_name_topics_by_id() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    let m = auto_create(&mut c, &["t"]).await;
    let id = m.topics[0].topic_id;
    produce(&mut c, 9, "t", 0, batch(&[b"by-id"], 1_000), -1).await;

    let max = sluice_protocol::SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == ApiKey::Fetch)
        .unwrap()
        .2;
    for version in 13..=max {
        let mut req = fetch_request("", 0, 0, 0, 1);
        req.topics[0].topic_id = id;
        let ResponseKind::Fetch(r) = c.call(ApiKey::Fetch, version, &req).await else {
            panic!()
        };
        assert_eq!(r.responses[0].topic_id, id);
        let d = &r.responses[0].partitions[0];
        assert_eq!(
            record_values(d.records.as_deref().unwrap()),
            vec![(0, b"by-id".to_vec())]
        );

        req.topics[0].topic_id = Uuid::from_u128(42);
        let ResponseKind::Fetch(r) = c.call(ApiKey::Fetch, version, &req).await else {
            panic!()
        };
        assert_eq!(r.responses[0].partitions[0].error_code, 100); // UNKNOWN_TOPIC_ID
    }
    b.broker.shutdown().await.unwrap();
}

fn session_fetch(session_id: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
    let mut req = fetch_request("s", 0, 0, 0, 0)
        .with_session_id(session_id)
        .with_session_epoch(epoch);
    req.topics[0].partitions = partitions
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    if partitions.is_empty() {
        req.topics.clear();
    }
    req
}

async fn fetch_response(
    c: &mut Client,
    req: &FetchRequest,
) -> kafka_protocol::messages::FetchResponse {
    match c.call(ApiKey::Fetch, 12, req).await {
        ResponseKind::Fetch(r) => r,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_fetch_sessions_answer_only_partitions_with_news() {
    let b = TestBroker::start_default().await;
    let ctx = b.broker.context().clone();
    let ctx2 = ctx.clone();
    ctx2.controller
        .create_topic("s", 2, 1, BTreeMap::new())
        .await
        .unwrap();
    let mut c = b.client().await;
    produce(&mut c, 9, "s", 0, batch(&[b"p0"], 1_000), -1).await;

    // Epoch 0: a full fetch that opens a session.
    let r = fetch_response(&mut c, &session_fetch(0, 0, &[(0, 0), (1, 0)])).await;
    let id = r.session_id;
    assert_ne!(id, 0, "no session created");
    let parts = &r.responses[0].partitions;
    assert_eq!(parts.len(), 2);
    assert_eq!(
        record_values(parts[0].records.as_deref().unwrap()),
        vec![(0, b"p0".to_vec())]
    );

    // Epoch 1: the client moved partition 0 past its record; nothing new.
    let r = fetch_response(&mut c, &session_fetch(id, 1, &[(0, 1)])).await;
    assert_eq!((r.error_code, r.session_id), (0, id));
    assert!(r.responses.is_empty(), "{:?}", r.responses);

    // A record arrives on partition 1; the next incremental fetch names no
    // partition at all and still gets it, and only it.
    produce(&mut c, 9, "s", 1, batch(&[b"p1"], 1_000), -1).await;
    let r = fetch_response(&mut c, &session_fetch(id, 2, &[])).await;
    assert_eq!(r.responses.len(), 1);
    let parts = &r.responses[0].partitions;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].partition_index, 1);
    assert_eq!(
        record_values(parts[0].records.as_deref().unwrap()),
        vec![(0, b"p1".to_vec())]
    );

    // Replayed epoch, unknown session, zero id with a positive epoch.
    assert_eq!(
        fetch_response(&mut c, &session_fetch(id, 2, &[]))
            .await
            .error_code,
        71
    );
    assert_eq!(
        fetch_response(&mut c, &session_fetch(id ^ 0x55, 3, &[]))
            .await
            .error_code,
        70
    );
    assert_eq!(
        fetch_response(&mut c, &session_fetch(0, 3, &[]))
            .await
            .error_code,
        71
    );

    // Epoch -1 closes the session with a sessionless full fetch.
    let r = fetch_response(&mut c, &session_fetch(id, -1, &[(0, 0)])).await;
    assert_eq!((r.error_code, r.session_id), (0, 0));
    assert_eq!(r.responses[0].partitions.len(), 1);
    assert_eq!(
        fetch_response(&mut c, &session_fetch(id, 3, &[]))
            .await
            .error_code,
        70
    );
    b.broker.shutdown().await.unwrap();
}

fn max_version(api: ApiKey) -> (i16, i16) {
    let &(_, lo, hi) = sluice_protocol::SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .unwrap();
    (lo, hi)
}

/// kafka-protocol refuses to encode a response that sets a field its
/// version lacks; every advertised version must get a real answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_of_the_data_path_apis_is_answered() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["t"]).await;

    let (lo, hi) = max_version(ApiKey::Produce);
    for v in lo..=hi.min(12) {
        let p = produce(&mut c, v, "t", 0, batch(&[b"x"], 0), -1).await;
        assert_eq!(p.error_code, 0, "produce v{v}");
    }
    let (lo, hi) = max_version(ApiKey::Metadata);
    for v in lo..=hi {
        let m = metadata(&mut c, v, &["t"], true).await;
        assert_eq!(m.topics[0].error_code, 0, "metadata v{v}");
        assert_eq!(m.topics[0].partitions.len(), 1, "metadata v{v}");
    }
    let (lo, hi) = max_version(ApiKey::ListOffsets);
    for v in lo..=hi {
        for ts in [-1, -2, -3, 0] {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts)])]);
            let ResponseKind::ListOffsets(r) = c.call(ApiKey::ListOffsets, v, &req).await else {
                panic!()
            };
            assert_eq!(
                r.topics[0].partitions[0].error_code, 0,
                "list offsets v{v} ts {ts}"
            );
        }
    }
    let (lo, hi) = max_version(ApiKey::ApiVersions);
    for v in lo..=hi {
        let ResponseKind::ApiVersions(r) = c
            .call(ApiKey::ApiVersions, v, &api_versions_request())
            .await
        else {
            panic!()
        };
        assert_eq!(r.error_code, 0, "api versions v{v}");
    }
    b.broker.shutdown().await.unwrap();
}

/// Many producers on their own connections append to one partition while a
/// consumer long-polls behind them: every record arrives exactly once, with
/// contiguous offsets, and the consumer sees all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_and_a_tailing_consumer_agree_on_every_record() {
    const PRODUCERS: usize = 6;
    const EACH: usize = 40;
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    auto_create(&mut c, &["busy"]).await;

    let addr = b.addr();
    let consumer = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let mut seen = Vec::new();
        let mut next = 0i64;
        while seen.len() < PRODUCERS * EACH {
            let d = fetch(&mut c, 12, &fetch_request("busy", 0, next, 60_000, 1)).await;
            assert_eq!(d.error_code, 0);
            for (offset, value) in record_values(d.records.as_deref().unwrap()) {
                if offset >= next {
                    seen.push((offset, value));
                    next = offset + 1;
                }
            }
        }
        seen
    });
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        producers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for i in 0..EACH {
                let v = format!("p{p}-{i}");
                let r = produce(&mut c, 9, "busy", 0, batch(&[v.as_bytes()], 0), -1).await;
                assert_eq!(r.error_code, 0);
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let seen = consumer.await.unwrap();
    let offsets: Vec<i64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..(PRODUCERS * EACH) as i64).collect::<Vec<_>>());
    let mut values: Vec<Vec<u8>> = seen.into_iter().map(|(_, v)| v).collect();
    values.sort();
    let mut expected: Vec<Vec<u8>> = (0..PRODUCERS)
        .flat_map(|p| (0..EACH).map(move |i| format!("p{p}-{i}").into_bytes()))
        .collect();
    expected.sort();
    assert_eq!(values, expected);
    b.broker.shutdown().await.unwrap();
}

/// connections.max.idle.ms: a connection with nothing in flight is closed
/// once idle, but a long poll longer than the idle time is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_not_while_a_request_waits() {
    use sluice_broker::network::{connection, ConnectionConfig, MemoryPool};
    let b = TestBroker::start_default().await;
    let ctx = b.broker.context().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let config = ConnectionConfig {
                max_request_bytes: 1 << 20,
                pool: MemoryPool::new(usize::MAX),
                idle_timeout: Some(std::time::Duration::from_millis(200)),
                stall_timeout: None,
                sasl: None,
            };
            tokio::spawn(connection::serve(
                stream,
                peer,
                sluice_broker::request::RequestContext::plaintext(Some(peer)),
                ctx.clone(),
                config,
                stop_rx.clone(),
            ));
        }
    });

    let mut c = Client::connect(addr).await;
    auto_create(&mut c, &["idle"]).await;
    // Waits up to 1.5 s for data that never comes: longer than the idle
    // timeout, yet answered, because a request is in flight.
    let d = fetch(&mut c, 12, &fetch_request("idle", 0, 0, 1_500, 1)).await;
    assert_eq!(d.error_code, 0);
    // Then nothing more is sent: the broker closes the connection.
    assert!(c.is_closed_by_broker().await);
    b.broker.shutdown().await.unwrap();
}
