//! The partition leader's side of transactions over a real socket:
//! transactional produce, WriteTxnMarkers (and its errors), Fetch in
//! read_committed (stops at the last stable offset; lists the aborted
//! transactions of what it returns; zero copy) and read_uncommitted,
//! ListOffsets in read_committed, and the produce refusals' Kafka codes.

mod netkit;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, ProducerId as WirePid, ResponseKind, TopicName, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use netkit::{now_ms, record_values, Client, TestBroker};
use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, ProducerId, Timestamp};

const TOPIC: &str = "txn";

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create(client: &mut Client) {
    for _ in 0..100 {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
            ]))
            .with_allow_auto_topic_creation(true);
        if let ResponseKind::Metadata(m) = client.call(ApiKey::Metadata, 12, &req).await {
            if m.topics[0].error_code == 0 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("topic never created");
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str], txn: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
        .transactional(txn);
    for v in values {
        b.append(Timestamp(now_ms()), None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// (error code, base offset)
async fn produce(client: &mut Client, records: Vec<u8>) -> (i16, i64) {
    produce_as(client, Some("t"), records).await
}

/// [`produce`] with the request's transactional id.
async fn produce_as(client: &mut Client, id: Option<&str>, records: Vec<u8>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_transactional_id(id.map(|id| StrBytes::from_string(id.to_string()).into()))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    match client.call(ApiKey::Produce, 9, &req).await {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// Error code per partition of one marker.
async fn markers(
    client: &mut Client,
    pid: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    topics: &[(&str, &[i32])],
) -> Vec<i16> {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(WirePid(pid))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(coordinator_epoch)
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect(),
        )]);
    match client.call(ApiKey::WriteTxnMarkers, 1, &req).await {
        ResponseKind::WriteTxnMarkers(r) => {
            assert_eq!(r.markers[0].producer_id, WirePid(pid));
            r.markers[0]
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        }
        other => panic!("{other:?}"),
    }
}

async fn fetch(client: &mut Client, offset: i64, isolation: i8) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    match client.call(ApiKey::Fetch, 11, &req).await {
        ResponseKind::Fetch(mut r) => {
            assert_eq!(r.error_code, 0);
            r.responses.remove(0).partitions.remove(0)
        }
        other => panic!("{other:?}"),
    }
}

async fn latest(client: &mut Client, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    match client.call(ApiKey::ListOffsets, 7, &req).await {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0);
            p.offset
        }
        other => panic!("{other:?}"),
    }
}

fn values(p: &PartitionData) -> Vec<(i64, String)> {
    p.records
        .as_ref()
        .map(|r| record_values(r))
        .unwrap_or_default()
        .into_iter()
        .map(|(o, v)| (o, String::from_utf8(v).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_end_transactions_and_read_committed_sees_only_what_is_decided() {
    // The leader's side alone, with no transaction coordinator behind the
    // batches: as in Kafka's own leader-side tests, without KIP-890's
    // verification (which would ask the coordinator first).
    let broker = TestBroker::start(
        std::sync::Arc::new(sluice_storage::RealFs),
        &[("transaction.partition.verification.enable", "false")],
    )
    .await;
    let mut c = broker.client().await;
    create(&mut c).await;
    // WriteTxnMarkers is advertised at v1, as Kafka 4.1.2 does.
    match c
        .call(ApiKey::ApiVersions, 2, &ApiVersionsRequest::default())
        .await
    {
        ResponseKind::ApiVersions(r) => {
            let k = r
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::WriteTxnMarkers as i16)
                .expect("advertised");
            assert_eq!((k.min_version, k.max_version), (1, 1));
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(
        produce(&mut c, txn_batch(9, 0, 0, &["plain"], false)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, txn_batch(1, 0, 0, &["a1", "a2"], true)).await,
        (0, 1)
    );
    assert_eq!(
        produce(&mut c, txn_batch(2, 0, 0, &["c1"], true)).await,
        (0, 3)
    );
    // INVALID_TXN_STATE: a plain batch inside producer 1's transaction.
    assert_eq!(
        produce(&mut c, txn_batch(1, 0, 2, &["x"], false)).await.0,
        48
    );

    // read_committed stops at the first open transaction; uncommitted does not.
    let p = fetch(&mut c, 0, 1).await;
    assert_eq!((p.high_watermark, p.last_stable_offset), (4, 1));
    assert_eq!(values(&p), vec![(0, "plain".into())]);
    assert_eq!(p.aborted_transactions, Some(vec![]));
    let p = fetch(&mut c, 0, 0).await;
    assert_eq!(
        p.last_stable_offset, 1,
        "read_uncommitted is told the LSO too"
    );
    assert_eq!(values(&p).len(), 4);
    assert_eq!(p.aborted_transactions, None);
    assert_eq!(latest(&mut c, 1).await, 1);
    assert_eq!(latest(&mut c, 0).await, 4);
    assert_eq!(fetch(&mut c, 1, 1).await.records.map_or(0, |r| r.len()), 0);

    // Producer 1 aborts, producer 2 commits.
    assert_eq!(
        markers(&mut c, 1, 0, false, 0, &[(TOPIC, &[0])]).await,
        vec![0]
    );
    assert_eq!(
        markers(&mut c, 2, 0, true, 0, &[(TOPIC, &[0])]).await,
        vec![0]
    );
    let p = fetch(&mut c, 0, 1).await;
    assert_eq!((p.high_watermark, p.last_stable_offset), (6, 6));
    // Everything up to the markers (at 4 and 5, coordinator epoch 0): a
    // client drops the aborted records itself, from the list below.
    assert_eq!(
        values(&p),
        vec![
            (0, "plain".into()),
            (1, "a1".into()),
            (2, "a2".into()),
            (3, "c1".into()),
            (4, "\0\0\0\0\0\0".into()),
            (5, "\0\0\0\0\0\0".into()),
        ]
    );
    let aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .unwrap()
        .iter()
        .map(|t| (t.producer_id.0, t.first_offset))
        .collect();
    assert_eq!(aborted, vec![(1, 1)]);
    // A fetch from inside it (its marker ahead) is told about it, one past
    // its marker is not.
    let p = fetch(&mut c, 3, 1).await;
    assert_eq!(p.aborted_transactions.unwrap().len(), 1);
    let p = fetch(&mut c, 5, 1).await;
    assert_eq!(p.aborted_transactions, Some(vec![]));
    assert_eq!(latest(&mut c, 1).await, 6);

    // Errors: a fenced coordinator, an old producer epoch, unknown partitions.
    assert_eq!(
        produce(&mut c, txn_batch(1, 0, 2, &["b"], true)).await,
        (0, 6)
    );
    assert_eq!(
        markers(&mut c, 1, 0, true, 5, &[(TOPIC, &[0])]).await,
        vec![0]
    );
    assert_eq!(produce(&mut c, txn_batch(1, 0, 3, &["b"], true)).await.0, 0);
    assert_eq!(
        markers(&mut c, 1, 0, true, 4, &[(TOPIC, &[0])]).await,
        vec![52]
    );
    assert_eq!(
        produce(&mut c, txn_batch(1, 1, 0, &["e1"], true)).await.0,
        0
    );
    assert_eq!(
        markers(&mut c, 1, 0, true, 5, &[(TOPIC, &[0])]).await,
        vec![47]
    );
    assert_eq!(
        markers(&mut c, 1, 1, true, 5, &[(TOPIC, &[7]), ("nope", &[0])]).await,
        vec![3, 3]
    );
}

/// With `transaction.partition.verification.enable` (the default), a
/// transactional batch may start a transaction only once its coordinator
/// said the partition is in it (KIP-890 part 1): without a transactional
/// id the request is refused as Kafka refuses it; with an id whose
/// coordinator is not there yet, the retriable NOT_ENOUGH_REPLICAS.
/// Nothing is written either way, and the last stable offset stays free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_transactional_batch_opens_no_transaction() {
    let broker = TestBroker::start_default().await;
    let mut c = broker.client().await;
    create(&mut c).await;
    // Kafka refuses transactional batches without a transactional id
    // before anything else (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
    assert_eq!(
        produce_as(&mut c, None, txn_batch(1, 0, 0, &["a"], true)).await,
        (53, -1)
    );
    // An id whose coordinator does not exist yet (no __transaction_state):
    // the retriable NOT_ENOUGH_REPLICAS, nothing written.
    assert_eq!(
        produce_as(&mut c, Some("t"), txn_batch(1, 0, 0, &["a"], true))
            .await
            .0,
        19
    );
    assert_eq!(
        produce_as(&mut c, None, txn_batch(9, 0, 0, &["plain"], false)).await,
        (0, 0)
    );
    assert_eq!(latest(&mut c, 1).await, 1, "no transaction holds the LSO");
}
