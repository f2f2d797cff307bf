//! librdkafka (rdkafka crate, librdkafka 2.12) against the real `sluice`
//! binary: create a topic, produce keyed records with headers under every
//! compression codec, consume them back exactly and in order, list offsets
//! (earliest/latest/by timestamp), restart (clean and kill -9) and read the
//! same data with the same topic id, delete the topic.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use uuid::Uuid;

const TOPIC: &str = "roundtrip";
const PARTITIONS: i32 = 3;
const PER_CODEC: usize = 40;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn producer(bootstrap: &str, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", codec)
        .set("linger.ms", "20")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

fn consume_all(bootstrap: &str, expected: usize) -> BTreeMap<i32, Vec<(i64, Rec)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-rdkafka-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got: BTreeMap<i32, Vec<(i64, Rec)>> = BTreeMap::new();
    let mut n = 0;
    let deadline = Instant::now() + TIMEOUT;
    while n < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                got.entry(m.partition()).or_default().push((
                    m.offset(),
                    Rec {
                        key: m.key().unwrap_or_default().to_vec(),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers,
                        timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    },
                ));
                n += 1;
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    assert_eq!(n, expected, "consumed {n} of {expected} records");
    // nothing more arrives
    assert!(consumer.poll(Duration::from_millis(500)).is_none());
    got
}

fn topic_id(bootstrap: &str, topic: &str) -> Uuid {
    let mut c = RawClient::connect(bootstrap);
    let resp = c.send(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic))))
            ]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].error_code, 0, "metadata for {topic}");
    resp.topics[0].topic_id
}

/// Produces PER_CODEC records per codec; returns partition -> [(offset, record)] as acknowledged.
async fn produce_all(bootstrap: &str, base_ts: i64) -> BTreeMap<i32, Vec<(i64, Rec)>> {
    let mut acked: BTreeMap<i32, Vec<(i64, Rec)>> = BTreeMap::new();
    for (c, codec) in CODECS.iter().enumerate() {
        let producer = producer(bootstrap, codec);
        let mut pending = Vec::new();
        for i in 0..PER_CODEC {
            let n = c * PER_CODEC + i;
            let rec = Rec {
                key: format!("key-{}", n % 7).into_bytes(),
                value: format!("{codec} value {n} {}", "x".repeat(n % 50)).into_bytes(),
                headers: vec![
                    ("codec".to_string(), codec.as_bytes().to_vec()),
                    ("n".to_string(), n.to_string().into_bytes()),
                ],
                timestamp: base_ts + n as i64,
            };
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "codec",
                    value: Some(codec.as_bytes()),
                })
                .insert(Header {
                    key: "n",
                    value: Some(n.to_string().as_bytes()),
                });
            let fut = producer
                .send_result(
                    FutureRecord::to(TOPIC)
                        .key(&rec.key)
                        .payload(&rec.value)
                        .headers(headers)
                        .timestamp(rec.timestamp),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
            pending.push((fut, rec));
        }
        for (fut, rec) in pending {
            let delivery = fut
                .await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("produce with {codec} failed: {e}"));
            acked
                .entry(delivery.partition)
                .or_default()
                .push((delivery.offset, rec));
        }
    }
    for recs in acked.values_mut() {
        recs.sort_by_key(|(o, _)| *o);
    }
    acked
}

fn assert_same(got: &BTreeMap<i32, Vec<(i64, Rec)>>, want: &BTreeMap<i32, Vec<(i64, Rec)>>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (p, want_recs) in want {
        let got_recs = &got[p];
        assert_eq!(got_recs.len(), want_recs.len(), "partition {p}");
        for ((go, g), (wo, w)) in got_recs.iter().zip(want_recs) {
            assert_eq!(go, wo, "partition {p}: offsets in order");
            assert_eq!(g, w, "partition {p} offset {go}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_produce_consume_restart_delete() {
    let mut sluice = start(&[("num.partitions", "1")]);
    let bootstrap = sluice.bootstrap().to_string();

    // --- create the topic ---
    let admin_client = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = admin_client
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create_topics");
    assert_eq!(res.len(), 1);
    assert_eq!(res[0], Ok(TOPIC.to_string()));
    // creating it again fails with TOPIC_ALREADY_EXISTS
    let again = admin_client
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create_topics");
    assert!(
        matches!(&again[0], Err((_, code)) if *code == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists),
        "{again:?}"
    );
    let id = topic_id(&bootstrap, TOPIC);
    assert!(!id.is_nil());

    // --- produce under every codec, consume back exactly and in order ---
    let base_ts = 1_700_000_000_000;
    let acked = produce_all(&bootstrap, base_ts).await;
    let total = CODECS.len() * PER_CODEC;
    assert_eq!(acked.values().map(Vec::len).sum::<usize>(), total);
    assert!(
        acked.len() > 1,
        "keys spread over partitions: {:?}",
        acked.keys()
    );
    for recs in acked.values() {
        // offsets are dense from 0
        let offsets: Vec<i64> = recs.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..recs.len() as i64).collect::<Vec<_>>());
    }
    let got = consume_all(&bootstrap, total);
    assert_same(&got, &acked);

    // --- list offsets: earliest/latest and by timestamp ---
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "sluice-rdkafka-offsets")
        .create()
        .unwrap();
    for (p, recs) in &acked {
        let (low, high) = consumer.fetch_watermarks(TOPIC, *p, TIMEOUT).unwrap();
        assert_eq!(
            (low, high),
            (0, recs.len() as i64),
            "watermarks of partition {p}"
        );
        // the first record of the partition, found by its timestamp
        let (first_offset, first) = &recs[0];
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, *p, Offset::Offset(first.timestamp))
            .unwrap();
        let found = consumer.offsets_for_times(tpl, TIMEOUT).unwrap();
        let e = found.find_partition(TOPIC, *p).unwrap();
        assert_eq!(
            e.offset(),
            Offset::Offset(*first_offset),
            "partition {p} by timestamp"
        );
        // past the newest timestamp: end
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, *p, Offset::Offset(base_ts + 1_000_000))
            .unwrap();
        let found = consumer.offsets_for_times(tpl, TIMEOUT).unwrap();
        assert_eq!(
            found.find_partition(TOPIC, *p).unwrap().offset(),
            Offset::End
        );
    }
    drop(consumer);
    drop(admin_client);

    // --- clean restart: same data, same topic id ---
    let status = sluice.terminate().expect("SIGTERM");
    assert!(
        status.success(),
        "clean exit: {status}\n{}",
        sluice.output()
    );
    sluice.restart().expect("restart");
    let bootstrap = sluice.bootstrap().to_string();
    assert_eq!(topic_id(&bootstrap, TOPIC), id, "topic id survives restart");
    let got = consume_all(&bootstrap, total);
    assert_same(&got, &acked);

    // --- kill -9 restart: acknowledged data is still there ---
    sluice.kill().unwrap();
    sluice.restart().expect("restart after kill -9");
    let bootstrap = sluice.bootstrap().to_string();
    assert_eq!(topic_id(&bootstrap, TOPIC), id);
    let got = consume_all(&bootstrap, total);
    assert_same(&got, &acked);

    // --- delete the topic; it stays deleted across a restart; re-creating gives a new id ---
    let admin_client = admin(&bootstrap);
    let res = admin_client
        .delete_topics(&[TOPIC], &opts)
        .await
        .expect("delete_topics");
    assert_eq!(res[0], Ok(TOPIC.to_string()));
    let mut raw = RawClient::connect(&bootstrap);
    let resp = raw.send(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(TOPIC))))
            ]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(resp.topics[0].error_code, 3, "deleted topic is unknown");
    drop(admin_client);
    sluice.terminate().unwrap();
    sluice.restart().unwrap();
    let bootstrap = sluice.bootstrap().to_string();
    let mut raw = RawClient::connect(&bootstrap);
    let resp = raw.send(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(TOPIC))))
            ]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(
        resp.topics[0].error_code, 3,
        "deleted topic is unknown after restart"
    );
    let admin_client = admin(&bootstrap);
    let res = admin_client
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(res[0], Ok(TOPIC.to_string()));
    let new_id = topic_id(&bootstrap, TOPIC);
    assert_ne!(new_id, id, "a re-created topic gets a new id");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "sluice-rdkafka-offsets")
        .create()
        .unwrap();
    assert_eq!(
        consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap(),
        (0, 0),
        "re-created topic starts empty"
    );
}

/// Kafka answers ListOffsets-by-timestamp with the first *record* whose
/// timestamp is >= the target, also inside a (compressed) batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_the_exact_record() {
    let sluice = start(&[]);
    let bootstrap = sluice.bootstrap().to_string();
    let admin_client = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    admin_client
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    let acked = produce_all(&bootstrap, 1_700_000_000_000).await;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "sluice-rdkafka-offsets")
        .create()
        .unwrap();
    for (p, recs) in &acked {
        for (offset, rec) in recs {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC, *p, Offset::Offset(rec.timestamp))
                .unwrap();
            let found = consumer.offsets_for_times(tpl, TIMEOUT).unwrap();
            let e = found.find_partition(TOPIC, *p).unwrap();
            assert_eq!(
                e.offset(),
                Offset::Offset(*offset),
                "partition {p} ts {}",
                rec.timestamp
            );
        }
    }
}

/// librdkafka producing to a topic nobody created (auto-creation on, the
/// default): the Metadata request that triggers the creation answers
/// UNKNOWN_TOPIC_OR_PARTITION, as Kafka does, and librdkafka waits for the
/// topic instead of failing the records. Every delivery succeeds, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producing_to_a_new_topic_auto_creates_it_without_errors() {
    let sluice = start(&[("num.partitions", "2")]);
    let bootstrap = sluice.bootstrap().to_string();
    let p = producer(&bootstrap, "none");
    let mut offsets = BTreeMap::<i32, Vec<i64>>::new();
    for i in 0..20 {
        let key = format!("k{i}");
        let d = p
            .send(
                FutureRecord::to("never-created").key(&key).payload("v"),
                TIMEOUT,
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("record {i}: {e}"));
        offsets.entry(d.partition).or_default().push(d.offset);
    }
    for (partition, got) in &offsets {
        let want: Vec<i64> = (0..got.len() as i64).collect();
        assert_eq!(got, &want, "partition {partition}");
    }
    assert!(offsets.keys().all(|p| (0..2).contains(p)), "{offsets:?}");
    assert_ne!(topic_id(&bootstrap, "never-created"), Uuid::nil());
}
