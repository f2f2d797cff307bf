//! Idempotent producers against the real `sluice` binary:
//! * a forged retry (same producer id, epoch and sequence) over a raw
//!   connection gets the original offset and writes nothing, also after a
//!   kill -9 and restart; gaps and stale epochs get their Kafka errors;
//! * librdkafka with `enable.idempotence=true` keeps producing while the
//!   broker is killed with SIGKILL and restarted several times; every
//!   acknowledged record is then read back exactly once, in order per
//!   partition.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, InitProducerIdRequest, ProduceRequest, ProducerId as WirePid, TopicName,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, ProducerId, Timestamp};

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let mut c = RawClient::connect(bootstrap);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let resp = c.send(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

fn init_producer_id(c: &mut RawClient, pid: i64, epoch: i16) -> (i64, i16, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(WirePid(pid))
        .with_producer_epoch(epoch);
    let r = c.send(4, &req);
    (r.producer_id.0, r.producer_epoch, r.error_code)
}

fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None).producer(
        ProducerId(pid),
        ProducerEpoch(epoch),
        seq,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..n {
        let v = format!("seq-{}", seq as usize + i);
        b.append(Timestamp(now), None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Produces `records` to topic/partition 0; returns (error code, base offset).
fn produce(c: &mut RawClient, topic: &str, records: &[u8]) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::copy_from_slice(records)))])]);
    let r = c.send(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn log_end(c: &mut RawClient, topic: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::ListOffsetsRequest;
    let req = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let r = c.send(5, &req);
    r.topics[0].partitions[0].offset
}

#[test]
fn forged_retry_gets_the_original_offset_and_writes_nothing() {
    let mut sluice = start(&[]);
    let topic = "forged";
    create_topic(sluice.bootstrap(), topic, 1);
    let mut c = RawClient::connect(sluice.bootstrap());
    let (pid, epoch, err) = init_producer_id(&mut c, -1, -1);
    assert_eq!(err, 0);
    assert!(pid >= 0);
    assert_eq!(epoch, 0);

    let first = batch(pid, epoch, 0, 3);
    let second = batch(pid, epoch, 3, 2);
    assert_eq!(produce(&mut c, topic, &first), (0, 0));
    assert_eq!(produce(&mut c, topic, &second), (0, 3));
    // The forged retries: the original offsets, error NONE, nothing written.
    assert_eq!(produce(&mut c, topic, &first), (0, 0));
    assert_eq!(produce(&mut c, topic, &second), (0, 3));
    assert_eq!(log_end(&mut c, topic), 5);
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER.
    assert_eq!(produce(&mut c, topic, &batch(pid, epoch, 9, 1)).0, 45);

    // After kill -9 and restart the producer state is rebuilt from the log.
    sluice.kill().unwrap();
    sluice.restart().unwrap();
    let mut c = RawClient::connect(sluice.bootstrap());
    assert_eq!(produce(&mut c, topic, &second), (0, 3));
    assert_eq!(log_end(&mut c, topic), 5);
    assert_eq!(produce(&mut c, topic, &batch(pid, epoch, 5, 1)), (0, 5));

    // KIP-360: re-initialising with the current id and epoch bumps the
    // epoch; the new epoch starts at sequence 0, and once it has written to
    // the partition the old epoch is fenced.
    let (pid2, epoch2, err) = init_producer_id(&mut c, pid, epoch);
    assert_eq!((pid2, epoch2, err), (pid, epoch + 1, 0));
    // A second instance still at the old epoch is a zombie: PRODUCER_FENCED.
    assert_eq!(init_producer_id(&mut c, pid, epoch), (-1, -1, 90));
    assert_eq!(produce(&mut c, topic, &batch(pid, epoch2, 1, 1)).0, 45);
    assert_eq!(produce(&mut c, topic, &batch(pid, epoch2, 0, 1)), (0, 6));
    assert_eq!(produce(&mut c, topic, &batch(pid, epoch, 6, 1)).0, 47);
    assert_eq!(log_end(&mut c, topic), 7);

    // Fresh producer ids are never reused, also across a restart.
    let (other, _, _) = init_producer_id(&mut c, -1, -1);
    assert_ne!(other, pid);
    sluice.kill().unwrap();
    sluice.restart().unwrap();
    let mut c = RawClient::connect(sluice.bootstrap());
    let (after, _, _) = init_producer_id(&mut c, -1, -1);
    assert!(after > other, "{after} after {other}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const PARTITIONS: i32 = 3;
/// Storage's debug line for a retried batch it did not write again.
const DUPLICATE_LOG: &str = "duplicate batch not written";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_survives_sigkill_restarts() {
    // A fixed port, so the producer reconnects to the restarted broker.
    let port = free_port();
    let listener = format!("PLAINTEXT://127.0.0.1:{port}");
    // flush.messages=1: every acknowledgement waits for an fsync, which
    // widens the window in which a kill lands between write and response.
    let mut sluice = start(&[
        ("listeners", listener.as_str()),
        ("log.flush.interval.messages", "1"),
    ]);
    let bootstrap = sluice.bootstrap().to_string();
    let topic = "idempotent";
    create_topic(&bootstrap, topic, PARTITIONS);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .create()
        .expect("producer");

    // Kill -9 and restart the broker KILLS times; the producer keeps
    // producing until the killer is done (however slow restarts are).
    const KILLS: usize = 8;
    let killer = std::thread::spawn(move || {
        let mut kills = 0;
        let mut duplicates = 0;
        while kills < KILLS {
            std::thread::sleep(Duration::from_millis(400));
            duplicates += sluice.output().matches(DUPLICATE_LOG).count();
            sluice.kill().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            sluice.restart().unwrap();
            kills += 1;
        }
        (sluice, kills, duplicates)
    });

    const ROUNDS: usize = 300;
    const PER_ROUND: usize = 15;
    let mut futures = Vec::new();
    let mut round = 0;
    while round < ROUNDS || !killer.is_finished() {
        for j in 0..PER_ROUND {
            let i = round * PER_ROUND + j;
            let value = format!("{i:08}");
            let record = FutureRecord::<(), String>::to(topic)
                .partition((i % PARTITIONS as usize) as i32)
                .payload(&value);
            futures.push((
                i,
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
        round += 1;
    }
    let mut acked: HashMap<usize, (i32, i64)> = HashMap::new();
    let mut failed = Vec::new();
    for (i, f) in futures {
        match f.await.expect("delivery future") {
            Ok(d) => {
                acked.insert(i, (d.partition, d.offset));
            }
            Err((e, _)) => failed.push((i, e.to_string())),
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    drop(producer);
    let (sluice, kills, mut duplicates) = killer.join().unwrap();
    duplicates += sluice.output().matches(DUPLICATE_LOG).count();
    assert_eq!(kills, KILLS);
    assert!(
        !acked.is_empty(),
        "nothing acknowledged; failures: {:?}",
        &failed[..failed.len().min(5)]
    );

    // Read everything back.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", sluice.bootstrap())
        .set("group.id", "idempotence-check")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    let mut eof = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while eof < PARTITIONS && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let v: usize = std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                got.entry(m.partition()).or_default().push((m.offset(), v));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    assert_eq!(eof, PARTITIONS, "did not reach the end of every partition");

    let mut seen: HashMap<usize, usize> = HashMap::new();
    for (p, recs) in &got {
        let values: Vec<usize> = recs.iter().map(|(_, v)| *v).collect();
        if let Some(i) = values.windows(2).position(|w| w[0] >= w[1]) {
            let around = &values[i.saturating_sub(3)..(i + 5).min(values.len())];
            panic!(
                "partition {p}: out of order or duplicated at offset {}: {around:?}",
                recs[i + 1].0
            );
        }
        for &(o, v) in recs {
            *seen.entry(v).or_default() += 1;
            assert_eq!(
                v % PARTITIONS as usize,
                *p as usize,
                "record {v} in partition {p}"
            );
            if let Some(&(ap, ao)) = acked.get(&v) {
                assert_eq!(
                    (ap, ao),
                    (*p, o),
                    "record {v} acknowledged at another offset"
                );
            }
        }
    }
    for (v, n) in &seen {
        assert_eq!(*n, 1, "record {v} stored {n} times");
    }
    for i in acked.keys() {
        assert_eq!(seen.get(i), Some(&1), "acknowledged record {i} missing");
    }
    eprintln!(
        "idempotence: {} acknowledged, {} failed, {} stored, {kills} kills, {duplicates} duplicate batches refused (seen only with SLUICE_LOG=info,sluice_storage::log=debug)",
        acked.len(),
        failed.len(),
        seen.len()
    );
}

/// A client driver from `clients/` (see clients/README.md), if its toolchain
/// is installed.
fn driver(name: &str) -> Option<Vec<String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (cmd, needs) = match name {
        "java" => (
            root.join("clients/java/driver.sh"),
            root.join(".cache/kafka/lib/.complete"),
        ),
        "franz-go" => (
            root.join(".cache/bin/franz-go-driver"),
            root.join(".cache/bin/franz-go-driver"),
        ),
        _ => unreachable!(),
    };
    let java_ok = name != "java"
        || std::process::Command::new("java")
            .arg("-version")
            .output()
            .is_ok();
    if needs.exists() && java_ok {
        return Some(vec![cmd.display().to_string()]);
    }
    let require = std::env::var("SLUICE_REQUIRE_CLIENTS").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(!require, "{name} driver missing; run scripts/setup");
    eprintln!("\n!!! SKIPPED {name}: driver toolchain missing; run scripts/setup !!!\n");
    None
}

fn topic_exists(bootstrap: &str, topic: &str) -> bool {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let mut c = RawClient::connect(bootstrap);
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic))))
        ]))
        .with_allow_auto_topic_creation(false);
    let r = c.send(12, &req);
    r.topics.first().is_some_and(|t| t.error_code == 0)
}

fn run_to_end(child: std::process::Child) -> (bool, String) {
    let out = child.wait_with_output().expect("driver output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The client's default producer (idempotence on) produces the driver's
/// records while the broker is SIGKILLed and restarted; the driver's
/// verify phase then reads every partition back and requires exactly the
/// produced records at dense offsets (a duplicate fails it).
fn client_through_sigkill_restarts(name: &str) {
    let Some(cmd) = driver(name) else { return };
    let port = free_port();
    let listener = format!("PLAINTEXT://127.0.0.1:{port}");
    let mut sluice = start(&[
        ("listeners", listener.as_str()),
        ("log.flush.interval.messages", "1"),
    ]);
    let bootstrap = sluice.bootstrap().to_string();
    let topic = format!("idem-{name}");
    let spawn = |phase: &str| {
        std::process::Command::new(&cmd[0])
            .args([
                "--bootstrap",
                &bootstrap,
                "--topic",
                &topic,
                "--phase",
                phase,
            ])
            .args(["--timeout", "120"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start driver")
    };
    let mut producer = spawn("produce");
    // Kill only once the topic exists (the create step is not retried).
    let deadline = Instant::now() + Duration::from_secs(120);
    while !topic_exists(&bootstrap, &topic) {
        assert!(Instant::now() < deadline, "topic never created");
        if producer.try_wait().unwrap().is_some() {
            let (_, out) = run_to_end(producer);
            panic!("{name} driver ended before the topic existed:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut kills = 0;
    while kills < 6 && producer.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(if kills == 0 { 30 } else { 150 }));
        sluice.kill().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        sluice.restart().unwrap();
        kills += 1;
    }
    let (ok, out) = run_to_end(producer);
    assert!(
        ok,
        "{name} produce phase failed after {kills} kills:\n{out}"
    );
    assert!(
        kills >= 1,
        "{name} finished producing before the first kill"
    );
    let (ok, out) = run_to_end(spawn("verify-only"));
    assert!(ok, "{name} verify phase failed after {kills} kills:\n{out}");
    eprintln!("{name}: produced through {kills} SIGKILL restarts, verified exactly once");
}

#[test]
fn java_client_default_settings_through_sigkill_restarts() {
    client_through_sigkill_restarts("java");
}

#[test]
fn franz_go_through_sigkill_restarts() {
    client_through_sigkill_restarts("franz-go");
}
