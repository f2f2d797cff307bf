//! Topic-level `compression.type` with real clients (librdkafka through the
//! rdkafka crate): a topic created with `compression.type=lz4` (or gzip, or
//! `uncompressed`) stores an uncompressed producer's batches in that codec,
//! as Kafka does, and consumers read exactly the records that were
//! produced; under the default `producer` a batch is stored in the
//! producer's own codec. The stored codec is read from the segment files.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::start;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_record::{BatchHeader, Batches, CompressionType};

const PER_RUN: usize = 50;
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    header: Vec<u8>,
    timestamp: i64,
}

fn records(run: &str) -> Vec<Rec> {
    (0..PER_RUN)
        .map(|i| Rec {
            key: format!("key-{i}").into_bytes(),
            value: format!("{run} value {i} {}", "x".repeat(i * 7)).into_bytes(),
            header: format!("h{i}").into_bytes(),
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

fn produce(bootstrap: &str, topic: &str, codec: &str, recs: &[Rec]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", codec)
        .set("linger.ms", "50")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    for r in recs {
        let headers = OwnedHeaders::new().insert(Header {
            key: "h",
            value: Some(&r.header),
        });
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(0)
                    .key(&r.key)
                    .payload(&r.value)
                    .headers(headers)
                    .timestamp(r.timestamp),
            )
            .expect("enqueued");
    }
    producer.flush(TIMEOUT).expect("every record delivered");
}

fn consume(bootstrap: &str, topic: &str, expected: usize) -> Vec<Rec> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "topic-compression-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => got.push(Rec {
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
                header: m
                    .headers()
                    .and_then(|h| h.iter().next().and_then(|h| h.value.map(<[u8]>::to_vec)))
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis().unwrap_or(-1),
            }),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    got
}

/// Every batch in the partition's segment files, in offset order.
fn stored_batches(data_dir: &Path, topic: &str) -> Vec<Vec<u8>> {
    let dir = data_dir.join(format!("{topic}-0"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut out = Vec::new();
    for path in logs {
        let bytes = std::fs::read(&path).unwrap();
        for (pos, h) in Batches::stored(&bytes).map_while(Result::ok) {
            let batch = &bytes[pos..pos + h.size()];
            // Each stored batch is whole and valid as a client would fetch it.
            BatchHeader::validate_stored(batch).unwrap();
            out.push(batch.to_vec());
        }
    }
    out
}

/// Codec of every batch in the partition's segment files, in offset order.
fn stored_codecs(data_dir: &Path, topic: &str) -> Vec<CompressionType> {
    stored_batches(data_dir, topic)
        .iter()
        .map(|b| BatchHeader::parse(b).unwrap().compression())
        .collect()
}

#[tokio::test]
async fn topic_codec_is_how_batches_are_stored_and_consumers_read_the_same_records() {
    let sluice = start(&[]);
    let bootstrap = sluice.bootstrap().to_string();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // (topic, compression.type, the producer's codec, the codecs a batch may
    // be stored in, the codec at least one batch must be stored in). Under a
    // topic codec every batch is re-encoded in it. Under `producer` a batch is
    // stored as sent, and librdkafka sends a batch uncompressed when
    // compressing it would not make it smaller, which depends on how it
    // happened to batch: any mix of the two, but the long records compress
    // in any batching. That batches are stored byte for byte as sent is
    // checked with known batches in
    // `producer_compression_stores_each_batch_exactly_as_sent`.
    let cases = [
        (
            "tc-lz4",
            "lz4",
            "none",
            &[CompressionType::Lz4][..],
            CompressionType::Lz4,
        ),
        (
            "tc-gzip",
            "gzip",
            "none",
            &[CompressionType::Gzip][..],
            CompressionType::Gzip,
        ),
        (
            "tc-uncompressed",
            "uncompressed",
            "snappy",
            &[CompressionType::None][..],
            CompressionType::None,
        ),
        (
            "tc-producer",
            "producer",
            "zstd",
            &[CompressionType::Zstd, CompressionType::None][..],
            CompressionType::Zstd,
        ),
    ];
    let topics: Vec<NewTopic> = cases
        .iter()
        .map(|(t, c, _, _, _)| {
            NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("compression.type", c)
        })
        .collect();
    for r in admin.create_topics(&topics, &opts).await.unwrap() {
        r.expect("compression.type is accepted at create time");
    }

    let mut expected: BTreeMap<&str, Vec<Rec>> = BTreeMap::new();
    for (topic, _, producer_codec, allowed, required) in cases {
        let recs = records(topic);
        produce(&bootstrap, topic, producer_codec, &recs);
        let codecs = stored_codecs(sluice.data_dir(), topic);
        assert!(
            codecs.iter().all(|c| allowed.contains(c)) && codecs.contains(&required),
            "{topic} (stored in {allowed:?}, at least once {required:?}): {codecs:?}"
        );
        assert_eq!(consume(&bootstrap, topic, PER_RUN), recs, "{topic}");
        expected.insert(topic, recs);
    }

    // Altered at run time: the next batches are stored in the new codec.
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("tc-lz4")).set("compression.type", "zstd");
    for r in admin.alter_configs(&[alter], &opts).await.unwrap() {
        r.expect("compression.type alters");
    }
    let more = records("tc-lz4 after alter");
    produce(&bootstrap, "tc-lz4", "gzip", &more);
    let codecs = stored_codecs(sluice.data_dir(), "tc-lz4");
    assert_eq!(codecs.first(), Some(&CompressionType::Lz4));
    assert_eq!(codecs.last(), Some(&CompressionType::Zstd), "{codecs:?}");
    let mut all = expected.remove("tc-lz4").unwrap();
    all.extend(more);
    assert_eq!(consume(&bootstrap, "tc-lz4", all.len()), all);
}

/// Under `compression.type=producer` (the default) each batch is stored
/// exactly as the client sent it, whatever its codec: known batches in four
/// codecs, sent raw, come back from the segment file byte for byte except
/// the base offset and partition leader epoch the broker assigns (outside
/// the CRC). Fails if the broker re-encodes or rewrites a batch.
#[test]
fn producer_compression_stores_each_batch_exactly_as_sent() {
    use common::{sb, RawClient};
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
    use sluice_record::{BatchBuilder, Timestamp};

    let sluice = start(&[]);
    let mut c = RawClient::connect(sluice.bootstrap());
    let created = c.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(sb("as-sent")))
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000),
    );
    assert_eq!(created.topics[0].error_code, 0);

    let codecs = [
        CompressionType::None,
        CompressionType::Zstd,
        CompressionType::Gzip,
        CompressionType::None,
    ];
    let mut sent = Vec::new();
    for (i, codec) in codecs.into_iter().enumerate() {
        let mut b = BatchBuilder::new(codec);
        for r in 0..5 {
            let value = format!("batch {i} record {r} {}", "y".repeat(r * 40));
            b.append(
                Timestamp(1_700_000_000_000 + r as i64),
                None,
                Some(value.as_bytes()),
                &[],
            )
            .unwrap();
        }
        let batch = b.build().unwrap();
        let resp = c.send(
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(sb("as-sent")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes::Bytes::from(batch.clone())))])]),
        );
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 5 * i as i64),
            "batch {i}"
        );
        sent.push(batch);
    }

    let stored = stored_batches(sluice.data_dir(), "as-sent");
    assert_eq!(stored.len(), sent.len());
    for (i, (s, b)) in stored.iter().zip(&sent).enumerate() {
        assert_eq!(
            BatchHeader::parse(s).unwrap().compression(),
            codecs[i],
            "batch {i}"
        );
        assert_eq!(s.len(), b.len(), "batch {i} length");
        // base offset (0..8) and partition leader epoch (12..16) are the broker's
        assert_eq!(&s[8..12], &b[8..12], "batch {i} length field");
        assert_eq!(
            &s[16..],
            &b[16..],
            "batch {i} stored differently from how it was sent"
        );
    }
}
