//! Issue 15: the active segment is validated at start even after a clean
//! shutdown. The real binary takes records, stops on SIGTERM (clean
//! shutdown marker written), one byte in the middle of its active segment
//! is flipped on disk, and after a restart a librdkafka consumer with
//! `check.crcs=true` reads exactly the records before the damaged batch,
//! without a CRC error; the next record produced lands right after them.
//! Before the fix the damaged batch was served as it was.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::start;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_record::Batches;

const TOPIC: &str = "active-segment";
const RECORDS: usize = 120;
const DAMAGED: usize = 70;
const TIMEOUT: Duration = Duration::from_secs(60);

fn value(i: usize) -> String {
    format!("record-{i:04}-{}", "x".repeat(40))
}

fn produce(bootstrap: &str, range: std::ops::Range<usize>) -> Vec<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One record per request, so every record is its own batch.
    range
        .map(|i| {
            let v = value(i);
            rt.block_on(producer.send(
                FutureRecord::<(), _>::to(TOPIC).partition(0).payload(&v),
                Duration::from_secs(60),
            ))
            .expect("acknowledged")
            .offset
        })
        .collect()
}

fn consume(bootstrap: &str, want: usize) -> (Vec<(i64, String)>, Vec<String>, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "active-segment-test")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let (mut got, mut errors) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    // A little longer: nothing more (and no error) may arrive.
    let quiet = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push((m.offset(), String::new())),
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, TIMEOUT)
        .expect("watermarks");
    (got, errors, high)
}

#[test]
fn corrupt_active_segment_after_clean_shutdown_is_cut_at_the_damage() {
    let mut sluice = start(&[]);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", sluice.bootstrap())
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        ))
        .expect("create_topics")
    {
        r.expect("topic created");
    }
    drop(admin);
    let offsets = produce(sluice.bootstrap(), 0..RECORDS);
    assert_eq!(offsets, (0..RECORDS as i64).collect::<Vec<_>>());

    assert!(sluice.terminate().expect("clean shutdown").success());
    let dir: PathBuf = sluice.data_dir().to_path_buf();
    assert!(
        dir.join(".kafka_cleanshutdown").exists(),
        "no clean shutdown marker in {}",
        dir.display()
    );
    // Flip one byte in the records of the batch holding offset DAMAGED.
    let seg = dir
        .join(format!("{TOPIC}-0"))
        .join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).expect("active segment");
    let (pos, h) = Batches::new(&bytes)
        .map(|r| r.expect("valid batch"))
        .find(|(_, h)| h.last_offset().0 >= DAMAGED as i64)
        .expect("the batch holding the damaged offset");
    assert_eq!(h.base_offset.0, DAMAGED as i64, "one record per batch");
    let at = pos + h.size() - 5;
    bytes[at] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();

    sluice.restart().expect("restart");
    let (got, errors, high) = consume(sluice.bootstrap(), DAMAGED);
    assert!(errors.is_empty(), "consumer errors: {errors:?}");
    assert_eq!(high, DAMAGED as i64, "high watermark");
    let want: Vec<(i64, String)> = (0..DAMAGED).map(|i| (i as i64, value(i))).collect();
    assert_eq!(got, want);

    // The log goes on right after the last valid batch.
    assert_eq!(
        produce(sluice.bootstrap(), RECORDS..RECORDS + 1),
        vec![DAMAGED as i64]
    );
    let (got, errors, _) = consume(sluice.bootstrap(), DAMAGED + 1);
    assert!(errors.is_empty(), "consumer errors: {errors:?}");
    assert_eq!(got.len(), DAMAGED + 1);
    assert_eq!(got[DAMAGED], (DAMAGED as i64, value(RECORDS)));
}
