//! Log compaction through a real client (librdkafka) against the `sluice`
//! binary: keyed updates to a `cleanup.policy=compact` topic are cleaned by
//! the background cleaner so that a consumer reading from the beginning sees
//! only the latest value of each key, at its original offset; records
//! without a key are refused with INVALID_RECORD.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::start;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TOPIC: &str = "changelog";
const KEYS: usize = 20;
const ROUNDS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Every record from the beginning up to the high watermark: offset -> (key, value).
fn read_from_beginning(bootstrap: &str) -> BTreeMap<i64, (String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-compaction-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, TIMEOUT)
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let k = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                let v = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                out.insert(m.offset(), (k, v));
                if m.offset() + 1 >= high {
                    return out;
                }
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    panic!("did not reach the high watermark {high}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_only_the_latest_value_per_key() {
    let sluice = start(&[("num.partitions", "1"), ("log.cleaner.backoff.ms", "100")]);
    let bootstrap = sluice.bootstrap().to_string();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")
                .set("segment.ms", "100")
                .set("min.cleanable.dirty.ratio", "0.01")],
            &opts,
        )
        .await
        .expect("create_topics");
    assert_eq!(res[0], Ok(TOPIC.to_string()));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let key = format!("key-{k:02}");
            let value = format!("round-{round}-{key}");
            let offset = producer
                .send(FutureRecord::to(TOPIC).key(&key).payload(&value), TIMEOUT)
                .await
                .expect("keyed produce")
                .offset;
            latest.insert(key, (offset, value));
        }
        // segment.ms = 100: the next round starts a new segment.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // One more record rolls the last round out of the active segment.
    let offset = producer
        .send(
            FutureRecord::to(TOPIC).key("sentinel").payload("end"),
            TIMEOUT,
        )
        .await
        .expect("sentinel")
        .offset;
    latest.insert("sentinel".into(), (offset, "end".into()));

    // A record without a key is refused on a compacted topic.
    let err = producer
        .send(FutureRecord::<(), _>::to(TOPIC).payload("no key"), TIMEOUT)
        .await
        .expect_err("keyless record must be refused");
    assert!(
        matches!(
            err.0,
            KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)
        ),
        "{:?}",
        err.0
    );

    // The cleaner runs every 100 ms; wait until the log is compacted.
    let want: BTreeMap<i64, (String, String)> = latest
        .iter()
        .map(|(k, (o, v))| (*o, (k.clone(), v.clone())))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = read_from_beginning(&bootstrap);
        if got == want {
            break;
        }
        // Whatever the cleaner has done so far, nothing is lost or altered.
        for (o, (k, v)) in &want {
            assert_eq!(
                got.get(o),
                Some(&(k.clone(), v.clone())),
                "latest of {k} at {o}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "not compacted after {TIMEOUT:?}: {} records, want {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        want.len(),
        KEYS + 1,
        "one record per key (plus the sentinel)"
    );
}
