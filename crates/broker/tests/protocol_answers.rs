//! Requests Kafka answers with an error code instead of closing the
//! connection: zstd batches on Produce before v7, and the APIs Sluice does
//! not implement (answered as Kafka answers when the feature is absent).

mod netkit;

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, MetadataRequest, ProduceRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use netkit::{now_ms, Client, TestBroker};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_by_metadata(c: &mut Client, topic: &str) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(true);
    c.call(ApiKey::Metadata, 12, &req).await;
}

fn batch_in(codec: CompressionType) -> Vec<u8> {
    let mut b = BatchBuilder::new(codec);
    for i in 0..10 {
        b.append(
            Timestamp(now_ms() + i),
            Some(b"key"),
            Some(b"a value that compresses, a value that compresses"),
            &[],
        )
        .unwrap();
    }
    b.build().unwrap()
}

/// `(error code, base offset)` of producing `records` to partition 0.
async fn produce(c: &mut Client, version: i16, topic: &str, records: Vec<u8>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    match c.call(ApiKey::Produce, version, &req).await {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// KIP-110: zstd needs Produce v7. Kafka answers an older Produce carrying a
/// zstd batch with UNSUPPORTED_COMPRESSION_TYPE (76) for that partition and
/// appends nothing; other codecs and v7+ are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_batches_need_produce_v7() {
    let b = TestBroker::start_default().await;
    let mut c = b.client().await;
    create_by_metadata(&mut c, "z").await;
    for version in [3, 6] {
        let zstd = batch_in(CompressionType::Zstd);
        assert_eq!(
            produce(&mut c, version, "z", zstd).await,
            (76, -1),
            "Produce v{version} with zstd"
        );
    }
    // The connection stays usable, and nothing was appended.
    assert_eq!(
        produce(&mut c, 3, "z", batch_in(CompressionType::Lz4)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, 7, "z", batch_in(CompressionType::Zstd)).await,
        (0, 10)
    );
    b.broker.shutdown().await.unwrap();
}
