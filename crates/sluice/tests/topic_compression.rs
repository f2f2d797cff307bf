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

/// Codec of every batch in the partition's segment files, in offset order.
fn stored_codecs(data_dir: &Path, topic: &str) -> Vec<CompressionType> {
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
            // Each stored batch is whole and valid as a client would fetch it.
            BatchHeader::validate_stored(&bytes[pos..pos + h.size()]).unwrap();
            out.push(h.compression());
        }
    }
    out
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
    // (topic, compression.type, the producer's codec, the codec stored)
    let cases = [
        ("tc-lz4", "lz4", "none", CompressionType::Lz4),
        ("tc-gzip", "gzip", "none", CompressionType::Gzip),
        (
            "tc-uncompressed",
            "uncompressed",
            "snappy",
            CompressionType::None,
        ),
        ("tc-producer", "producer", "zstd", CompressionType::Zstd),
    ];
    let topics: Vec<NewTopic> = cases
        .iter()
        .map(|(t, c, _, _)| {
            NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("compression.type", c)
        })
        .collect();
    for r in admin.create_topics(&topics, &opts).await.unwrap() {
        r.expect("compression.type is accepted at create time");
    }

    let mut expected: BTreeMap<&str, Vec<Rec>> = BTreeMap::new();
    for (topic, _, producer_codec, stored) in cases {
        let recs = records(topic);
        produce(&bootstrap, topic, producer_codec, &recs);
        let codecs = stored_codecs(sluice.data_dir(), topic);
        assert!(!codecs.is_empty(), "{topic}: nothing stored");
        assert!(
            codecs.iter().all(|c| *c == stored),
            "{topic} (compression.type stored as {stored:?}): {codecs:?}"
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
