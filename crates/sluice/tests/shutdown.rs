//! SIGTERM while clients are connected: the real binary with a few hundred
//! partitions holding data, an idle producer connection and consumers
//! parked in long-polling fetches (asking to wait five minutes). The broker
//! answers the parked fetches, flushes and closes every log, writes the
//! clean-shutdown marker and exits — well before any fetch's wait would
//! have expired — and the next start recovers nothing and serves every
//! record that was acknowledged.

mod common;

use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

const TOPIC: &str = "shutdown-many";
const PARTITIONS: i32 = 300;
const RECORDS_PER_PARTITION: i64 = 20;
/// What the parked fetches ask for: far longer than the bound below.
const FETCH_WAIT_MS: i32 = 300_000;
/// A generous bound on the whole shutdown on a slow, busy machine; the
/// point is that it does not depend on the fetches' five-minute wait.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(90);

fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(60))),
        ))
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

fn latest_offset(bootstrap: &str, partition: i32) -> i64 {
    let mut c = RawClient::connect(bootstrap);
    let resp = c.send(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1)])]),
    );
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.offset
}

/// A fetch at the log end that waits for one more byte than there is.
fn parked_fetch(partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(sb(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

#[test]
fn sigterm_with_parked_long_polls_exits_promptly_and_cleanly() {
    let mut s = start(&[]);
    let bootstrap = s.bootstrap().to_string();
    create_topic(&bootstrap);

    // Data in every partition, acknowledged (acks=all), from a producer
    // that then stays connected.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut pending = Vec::new();
        for p in 0..PARTITIONS {
            for i in 0..RECORDS_PER_PARTITION {
                let value = format!("p{p}-r{i}-{}", "x".repeat(200));
                let record = FutureRecord::<(), _>::to(TOPIC)
                    .partition(p)
                    .payload(&value);
                let queued = producer.send_result(record).map_err(|(e, _)| e);
                pending.push(queued.expect("queued"));
            }
        }
        for f in pending {
            f.await.expect("delivered").expect("acknowledged");
        }
    });
    producer.flush(Duration::from_secs(30)).unwrap();
    for p in [0, PARTITIONS / 2, PARTITIONS - 1] {
        assert_eq!(latest_offset(&bootstrap, p), RECORDS_PER_PARTITION);
    }

    // Consumers parked at the log end of a few partitions, each on its own
    // connection, waiting for data that will not come.
    let fetchers: Vec<_> = (0..6)
        .map(|i| {
            let bootstrap = bootstrap.clone();
            let partition = i * 37 % PARTITIONS;
            std::thread::spawn(move || {
                let mut c = RawClient::connect(&bootstrap);
                let resp = c.send(12, &parked_fetch(partition, RECORDS_PER_PARTITION));
                let data = &resp.responses[0].partitions[0];
                (resp.error_code, data.error_code, data.records.clone())
            })
        })
        .collect();
    // Let the fetches reach the broker and park (if one has not parked yet
    // when the signal arrives, it is answered at once all the same).
    std::thread::sleep(Duration::from_secs(1));

    let began = Instant::now();
    let status = s.terminate().expect("sluice exits after SIGTERM");
    let took = began.elapsed();
    assert!(status.success(), "{status}\n{}", s.output());
    assert!(
        took < SHUTDOWN_BOUND,
        "shutdown took {took:?} with {FETCH_WAIT_MS} ms long-polls parked\n{}",
        s.output()
    );
    assert!(
        s.data_dir().join(".kafka_cleanshutdown").exists(),
        "clean-shutdown marker written\n{}",
        s.output()
    );
    assert!(s.output().contains("broker stopped"), "{}", s.output());
    // Every parked fetch got an answer (no error, nothing new) rather than
    // a connection cut in the middle of its wait.
    for f in fetchers {
        let (top, partition, records) = f.join().expect("parked fetch answered");
        assert_eq!((top, partition), (0, 0));
        assert!(records.as_ref().is_none_or(|r| r.is_empty()), "{records:?}");
    }
    drop(producer);

    // The next start needs no recovery and has every acknowledged record.
    s.restart().unwrap();
    // The summary goes to stderr, read by another thread than the
    // "listening on" line: wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.output().contains("sluice started") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        s.output().contains("0 recovered after an unclean shutdown"),
        "{}",
        s.output()
    );
    let bootstrap = s.bootstrap().to_string();
    for p in [0, 1, PARTITIONS / 2, PARTITIONS - 1] {
        assert_eq!(
            latest_offset(&bootstrap, p),
            RECORDS_PER_PARTITION,
            "partition {p}"
        );
    }
    s.terminate().unwrap();
}
