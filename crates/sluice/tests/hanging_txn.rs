//! Hanging transactions and the tools that find and end them, against the
//! real `sluice` binary and, with the same steps, the pinned Apache Kafka
//! 4.1.2; the two transcripts are then compared.
//!
//! A hanging transaction is made as Kafka's own tests make one: with
//! `transaction.partition.verification.enable=false` on the broker, a raw
//! client gets a producer id for a transactional id (InitProducerId) and
//! writes a transactional batch without AddPartitionsToTxn, so no
//! coordinator will ever end it and the partition's last stable offset is
//! stuck. Three such producers (A, B, C) and one legitimate transaction
//! (D, added to its transaction, so its coordinator will end it) write
//! records stamped 20 minutes in the past, between plain records.
//!
//! Then, on each broker: `describe-producers` (Sluice's CLI and Kafka's
//! `kafka-transactions`, byte for byte the same output) lists the four;
//! `find-hanging --broker-id` (both tools) reports A, B and C, not D,
//! and nothing with a 30-minute timeout; Kafka's `abort --start-offset`
//! ends A, Sluice's `abort --start-offset` ends B and Sluice's
//! `--producer-id/--producer-epoch/--coordinator-epoch 5` form ends C, each
//! moving the read_committed latest offset (ListOffsets) to the next open
//! transaction; an abort with coordinator epoch 4 is refused by both tools
//! (TRANSACTION_COORDINATOR_FENCED) and writes nothing; describe-producers
//! shows the coordinator epochs the markers carried (C: 5); D ends through
//! its coordinator, and a read_committed consumer reads every plain record
//! and none of the aborted ones.
//!
//! On a 3-node cluster of each (an RF-2 partition), as Kafka serves
//! DescribeProducers from any replica: `describe-producers --broker-id`
//! of the follower and `find-hanging --broker-id` of the follower show the
//! hanging transaction with both tools; the broker without a replica
//! answers NOT_LEADER_OR_FOLLOWER (both tools fail) and finds nothing;
//! Sluice's abort ends it at the leader.
//!
//! Kafka's transcripts are recorded in `tests/fixtures/hanging_txn.*.txt`
//! and Sluice's must equal them. Running Kafka's half too (a JVM broker, or
//! three, and another dozen JVM tools: over a minute) is for the full
//! suite (`SLUICE_TEST_FULL=1`), which checks that Kafka still gives the
//! recorded transcript; `SLUICE_RECORD_TRANSCRIPTS=1` rewrites the files
//! from Kafka's run. Every step of Sluice's half still runs Kafka's own
//! tool beside Sluice's against Sluice.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{create_topic, kafka_tool_output, kafka_tools_ready, sb, start, RawClient};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, BrokerId, CreateTopicsRequest, EndTxnRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest,
    ProducerId as WirePid, TopicName, TransactionalId,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, ProducerId, Timestamp};
use sluice_testkit::metadata::fetch_metadata;
use sluice_testkit::{ClusterLayout, ReferenceKafka, ReferenceKafkaCluster, SluiceCluster};

const TOPIC: &str = "hang";
const TXN_TOOL: &str = "org.apache.kafka.tools.TransactionsCommand";
/// Set explicitly on both brokers: with verification on, the leader asks
/// the coordinator and refuses the batch that makes a transaction hang.
const VERIFICATION_OFF: (&str, &str) = ("transaction.partition.verification.enable", "false");

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Retries `f` until it returns `Some`, for at most a minute.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A producer id and epoch 0 for `txn_id` from its coordinator, found
/// through `c` (one broker, or any broker of a cluster).
fn init_producer_id(c: &mut RawClient, txn_id: &str) -> i64 {
    let coordinator = eventually(&format!("the coordinator of {txn_id}"), || {
        let f = c.send(
            3,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_key(sb(txn_id)),
        );
        (f.error_code == 0).then(|| format!("{}:{}", f.host, f.port))
    });
    let mut at = RawClient::connect(&coordinator);
    eventually(&format!("InitProducerId of {txn_id}"), || {
        let r = at.send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb(txn_id))))
                .with_transaction_timeout_ms(900_000)
                .with_producer_id(WirePid(-1))
                .with_producer_epoch(-1),
        );
        // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
        assert!([0, 14, 15, 16].contains(&r.error_code), "{r:?}");
        (r.error_code == 0).then(|| {
            assert_eq!(r.producer_epoch, 0);
            r.producer_id.0
        })
    })
}

/// One batch of `values` at `timestamp`; `pid` -1: a plain batch.
fn batch(pid: i64, values: &[&str], timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None).transactional(pid >= 0);
    if pid >= 0 {
        b = b.producer(ProducerId(pid), ProducerEpoch(0), 0);
    }
    for v in values {
        b.append(Timestamp(timestamp), None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Produces to partition 0 and returns the base offset. Kafka refuses a
/// transactional batch whose request names no transactional id
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), so `txn_id` goes with it.
fn produce(c: &mut RawClient, txn_id: Option<&str>, records: Vec<u8>) -> i64 {
    produce_to(c, TOPIC, txn_id, records)
}

fn produce_to(c: &mut RawClient, topic: &str, txn_id: Option<&str>, records: Vec<u8>) -> i64 {
    let req = ProduceRequest::default()
        .with_transactional_id(txn_id.map(|t| TransactionalId(sb(t))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::from(records)))])]);
    let r = c.send(9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.base_offset
}

/// ListOffsets LATEST of partition 0: the last stable offset in
/// read_committed, the high watermark otherwise.
fn latest(c: &mut RawClient, read_committed: bool) -> i64 {
    latest_of(c, TOPIC, read_committed)
}

fn latest_of(c: &mut RawClient, topic: &str, read_committed: bool) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let r = c.send(5, &req);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// D's legitimate transaction: hang-0 added through its coordinator.
fn add_partition(c: &mut RawClient, txn_id: &str, pid: i64) {
    let r = c.send(
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(txn_id)))
            .with_v3_and_below_producer_id(WirePid(pid))
            .with_v3_and_below_producer_epoch(0)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![0])]),
    );
    let code = r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
    assert_eq!(code, 0, "{r:?}");
}

/// (exit status success, stdout, stderr) of `sluice transactions ARGS`.
fn sluice_tool(bootstrap: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("transactions")
        .args(args)
        .args(["-b", bootstrap])
        .output()
        .expect("sluice runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The same for Kafka's `kafka-transactions ARGS`.
fn kafka_tool(bootstrap: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    kafka_tool_output(TXN_TOOL, &all)
}

/// Stdout of a run that must succeed.
fn ok(what: &str, run: (bool, String, String)) -> String {
    assert!(run.0, "{what} failed:\n{}\n{}", run.1, run.2);
    run.1
}

/// Runs `args` with both tools, which must print the same table (rows in
/// any order); returns it.
fn both(bootstrap: &str, args: &[&str]) -> String {
    let ours = ok(&format!("sluice {args:?}"), sluice_tool(bootstrap, args));
    let kafkas = ok(&format!("kafka {args:?}"), kafka_tool(bootstrap, args));
    eprintln!("{bootstrap} {args:?}:\n{ours}");
    let sorted = |s: &str| {
        let mut lines: Vec<&str> = s.lines().collect();
        lines[1..].sort();
        lines.join("\n")
    };
    assert_eq!(
        sorted(&ours),
        sorted(&kafkas),
        "{args:?}: the two tools differ"
    );
    ours
}

/// What a scenario saw, normalized so two brokers' runs compare: per step,
/// the table's header and its sorted rows.
type Transcript = Vec<(&'static str, Vec<Vec<String>>)>;

/// One scenario's run on one broker or cluster: where the tools go, the
/// producers' names, the records' old timestamp and what the steps saw.
struct Run {
    bootstrap: String,
    /// Producer id -> the scenario's name for it (A, B, ...).
    names: BTreeMap<i64, &'static str>,
    start: i64,
    /// The records' timestamp: 20 minutes and 1 second before `start`.
    t_old: i64,
    transcript: Transcript,
}

impl Run {
    fn new(bootstrap: &str) -> Run {
        let mut run = Run {
            bootstrap: bootstrap.to_string(),
            names: BTreeMap::new(),
            start: 0,
            t_old: 0,
            transcript: Transcript::new(),
        };
        run.start_clock();
        run
    }

    /// Called right before the first record: "Duration(min)" then reads
    /// 20 for the next 59 seconds.
    fn start_clock(&mut self) {
        self.start = now_ms();
        self.t_old = self.start - 20 * 60_000 - 1_000;
    }

    /// Runs `args` with both tools ([`both`]) and records the table as
    /// step `label`; returns it.
    fn step(&mut self, label: &'static str, args: &[&str]) -> Vec<Vec<String>> {
        let out = both(&self.bootstrap, args);
        let t = self.table(&out);
        self.transcript.push((label, t.clone()));
        t
    }

    /// A Kafka-style table (tab-terminated padded cells) as rows of cells,
    /// sorted, with producer ids by name and timestamps as `T_OLD` (the
    /// records' stamp) or `LATER` (a marker's, after `start`).
    fn table(&self, out: &str) -> Vec<Vec<String>> {
        let cells = |l: &str| -> Vec<String> {
            l.split('\t')
                .map(str::trim_end)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut lines = out.lines();
        let header = cells(lines.next().expect("a header line"));
        let pid_col = header.iter().position(|h| h == "ProducerId").unwrap();
        let ts_col = header.iter().position(|h| h == "LastTimestamp").unwrap();
        let mut rows: Vec<Vec<String>> = lines
            .map(|l| {
                let mut row = cells(l);
                let pid: i64 = row[pid_col].parse().unwrap();
                row[pid_col] = self.names.get(&pid).expect("a known producer").to_string();
                let ts: i64 = row[ts_col].parse().unwrap();
                row[ts_col] = match ts {
                    t if t == self.t_old => "T_OLD".into(),
                    t if (self.start..=now_ms()).contains(&t) => "LATER".into(),
                    t => t.to_string(),
                };
                row
            })
            .collect();
        rows.sort();
        std::iter::once(header).chain(rows).collect()
    }
}

fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

const DESCRIBE: [&str; 5] = ["describe-producers", "--topic", TOPIC, "--partition", "0"];
const PRODUCER_HEADER: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];
const HANGING_HEADER: [&str; 8] = [
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
];

/// The layout of `hang-0`: A's transaction at 0-1, plain p1-p3 at 2-4, B
/// at 5, p4-p5 at 6-7, C at 8, p6 at 9, D (added to its transaction) at
/// 10, p7 at 11. Returns the producer ids of A, B, C and D.
fn write_layout(run: &mut Run, c: &mut RawClient) -> [i64; 4] {
    create_topic(c, TOPIC, &[]);
    let ids = ["hang-a", "hang-b", "hang-c", "legit-d"];
    let pids = ids.map(|t| init_producer_id(c, t));
    run.names = pids.iter().copied().zip(["A", "B", "C", "D"]).collect();
    run.start_clock();
    let (old, now) = (run.t_old, run.start);
    let txn = |c: &mut RawClient, i: usize, values: &[&str]| {
        produce(c, Some(ids[i]), batch(pids[i], values, old))
    };
    let plain = |c: &mut RawClient, values: &[&str]| produce(c, None, batch(-1, values, now));
    assert_eq!(txn(c, 0, &["a1", "a2"]), 0);
    assert_eq!(plain(c, &["p1", "p2", "p3"]), 2);
    assert_eq!(txn(c, 1, &["b1"]), 5);
    assert_eq!(plain(c, &["p4", "p5"]), 6);
    assert_eq!(txn(c, 2, &["c1"]), 8);
    assert_eq!(plain(c, &["p6"]), 9);
    add_partition(c, ids[3], pids[3]);
    assert_eq!(txn(c, 3, &["d1"]), 10);
    assert_eq!(plain(c, &["p7"]), 11);
    assert_eq!((latest(c, true), latest(c, false)), (0, 12));
    pids
}

/// Before any abort: what both tools describe and find.
fn find_before_aborts(run: &mut Run, broker_id: &str) {
    let open = run.step("open", &DESCRIBE);
    assert_eq!(
        open,
        rows(&[
            &PRODUCER_HEADER,
            &["A", "0", "-1", "1", "T_OLD", "0"],
            &["B", "0", "-1", "0", "T_OLD", "5"],
            &["C", "0", "-1", "0", "T_OLD", "8"],
            &["D", "0", "-1", "0", "T_OLD", "10"],
        ])
    );
    let find = ["find-hanging", "--broker-id", broker_id];
    assert_eq!(
        run.step("hanging", &find),
        rows(&[
            &HANGING_HEADER,
            &[TOPIC, "0", "A", "0", "-1", "0", "T_OLD", "20"],
            &[TOPIC, "0", "B", "0", "-1", "5", "T_OLD", "20"],
            &[TOPIC, "0", "C", "0", "-1", "8", "T_OLD", "20"],
        ]),
        "D's coordinator counts the partition in its transaction: not hanging"
    );
    let longer = [&find[..], &["--max-transaction-timeout", "30"]].concat();
    let none = run.step("none older than 30 min", &longer);
    assert_eq!(none, rows(&[&HANGING_HEADER]));
}

/// Kafka's tool ends A and Sluice's ends B, by start offset; Sluice's ends
/// C by producer id and epochs, with coordinator epoch 5; epoch 4 is then
/// fenced for both tools. Each marker moves the LSO to the next open
/// transaction.
fn abort_three(run: &mut Run, c: &mut RawClient, c_pid: i64) {
    let b = run.bootstrap.clone();
    let abort = ["abort", "--topic", TOPIC, "--partition", "0"];
    let at = |o: &'static str| [&abort[..], &["--start-offset", o]].concat();
    ok("kafka abort A", kafka_tool(&b, &at("0")));
    assert_eq!(latest(c, true), 5, "A's abort marker moves the LSO to B");
    ok("sluice abort B", sluice_tool(&b, &at("5")));
    assert_eq!(latest(c, true), 8, "then to C");
    let c_pid = c_pid.to_string();
    let by_id = |epoch: &'static str| -> Vec<&str> {
        let mut v = abort.to_vec();
        v.extend(["--producer-id", &c_pid, "--producer-epoch", "0"]);
        v.extend(["--coordinator-epoch", epoch]);
        v
    };
    ok("sluice abort C", sluice_tool(&b, &by_id("5")));
    assert_eq!(latest(c, true), 10, "then to D");
    assert_eq!(latest(c, false), 15, "three markers");

    // An older coordinator epoch is fenced, by the broker, for both tools.
    let (k_ok, _, k_err) = kafka_tool(&b, &by_id("4"));
    assert!(!k_ok && k_err.contains("has been fenced"), "{k_err}");
    let (s_ok, _, s_err) = sluice_tool(&b, &by_id("4"));
    assert!(
        !s_ok && s_err.contains("TransactionCoordinatorFenced"),
        "{s_err}"
    );
    assert_eq!(latest(c, false), 15, "a fenced marker is not written");

    let decided = run.step("decided", &DESCRIBE);
    assert_eq!(
        decided,
        rows(&[
            &PRODUCER_HEADER,
            &["A", "0", "0", "1", "LATER", "None"],
            &["B", "0", "0", "0", "LATER", "None"],
            &["C", "0", "5", "0", "LATER", "None"],
            &["D", "0", "-1", "0", "T_OLD", "10"],
        ])
    );
}

/// The whole scenario on the broker at `bootstrap` (node `broker_id`).
fn scenario(bootstrap: &str, broker_id: i32) -> Transcript {
    let mut run = Run::new(bootstrap);
    let mut c = RawClient::connect(bootstrap);
    let [_, _, c_pid, d] = write_layout(&mut run, &mut c);
    let id = broker_id.to_string();
    find_before_aborts(&mut run, &id);
    abort_three(&mut run, &mut c, c_pid);
    let zero = [
        "find-hanging",
        "--broker-id",
        &id,
        "--max-transaction-timeout",
        "0",
    ];
    assert_eq!(run.step("nothing hangs", &zero), rows(&[&HANGING_HEADER]));

    // D ends through its coordinator; everything is stable.
    let r = c.send(
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb("legit-d")))
            .with_producer_id(WirePid(d))
            .with_producer_epoch(0)
            .with_committed(false),
    );
    assert_eq!(r.error_code, 0);
    eventually("D's marker", || (latest(&mut c, true) == 16).then_some(()));
    assert_eq!(
        consume_committed(bootstrap),
        ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]
    );
    run.transcript
}

/// Partition 0's values in read_committed, from the start to the end the
/// consumer is told (the last stable offset), with librdkafka.
fn consume_committed(bootstrap: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "hanging-check")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return got,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    panic!("no end of partition after {got:?}");
}

/// The tests of this file one at a time: each runs a JVM broker (or
/// three) and a dozen JVM tools, too much for a 2-core machine at once.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn hanging_transactions_found_and_aborted_on_sluice_and_kafka() {
    if !kafka_tools_ready("hanging transactions") {
        return;
    }
    let _one = one_at_a_time();
    let sluice = start(&[VERIFICATION_OFF]);
    let ours = scenario(sluice.bootstrap(), 1);
    drop(sluice);

    same_as_kafka("single", &ours, || {
        let kafka = ReferenceKafka::start_with(&[VERIFICATION_OFF])
            .expect("Kafka starts")
            .expect("the jars are here (checked above)");
        scenario(&kafka.bootstrap(), 1)
    });
}

/// A transcript as text: a `## step` line, then one tab-separated line
/// per row (the header first).
fn render(t: &Transcript) -> String {
    let mut out = String::new();
    for (label, rows) in t {
        out.push_str(&format!("## {label}\n"));
        for row in rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
    }
    out
}

/// Asserts that Sluice's transcript `ours` of scenario `name` is the one
/// Kafka 4.1.2 gave (`tests/fixtures/hanging_txn.<name>.txt`; see
/// `common::transcript`).
fn same_as_kafka(name: &str, ours: &Transcript, kafka: impl FnOnce() -> Transcript) {
    common::transcript::same_as_kafka(&format!("hanging_txn.{name}"), &render(ours), || {
        render(&kafka())
    });
}

/// Leader, follower and the broker without a replica of the RF-2 topic
/// `topic`, once Metadata shows the partition led with both in sync.
fn roles(addrs: &BTreeMap<i32, String>, topic: &str) -> (i32, i32, i32) {
    eventually(&format!("{topic}-0 led, both replicas in sync"), || {
        let m = fetch_metadata(addrs[&1].parse().unwrap(), Some(&[topic])).ok()?;
        let p = m.topics.first()?.partitions.first()?;
        let in_sync = p.leader >= 0 && p.isr.len() == 2 && m.brokers.len() == 3;
        in_sync.then(|| {
            let follower = *p.replicas.iter().find(|&&r| r != p.leader).unwrap();
            let outsider = *addrs.keys().find(|b| !p.replicas.contains(b)).unwrap();
            (p.leader, follower, outsider)
        })
    })
}

/// A hanging transaction on a partition of a 3-node cluster, seen from
/// each replica: the follower describes it and find-hanging finds it there
/// (both tools, as Kafka serves DescribeProducers from any replica); the
/// broker without a replica refuses (NOT_LEADER_OR_FOLLOWER, both tools);
/// Sluice's abort ends it at the leader.
fn replica_scenario(addrs: &BTreeMap<i32, String>) -> Transcript {
    const RF2: &str = "hang-rf2";
    let mut run = Run::new(&addrs[&1]);
    let mut c = RawClient::connect(&addrs[&1]);
    let created = c.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(sb(RF2)))
                .with_num_partitions(1)
                .with_replication_factor(2)])
            .with_timeout_ms(30_000),
    );
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let (leader, follower, outsider) = roles(addrs, RF2);
    let pid = init_producer_id(&mut c, "hang-f");
    run.names.insert(pid, "F");
    run.start_clock();
    let mut at_leader = RawClient::connect(&addrs[&leader]);
    let txn = batch(pid, &["f1"], run.t_old);
    assert_eq!(produce_to(&mut at_leader, RF2, Some("hang-f"), txn), 0);
    let plain = batch(-1, &["q1"], run.start);
    assert_eq!(produce_to(&mut at_leader, RF2, None, plain), 1);
    assert_eq!(latest_of(&mut at_leader, RF2, true), 0);

    let (f, o) = (follower.to_string(), outsider.to_string());
    let describe = |broker| {
        [
            "describe-producers",
            "--topic",
            RF2,
            "--partition",
            "0",
            "--broker-id",
            broker,
        ]
    };
    let at_follower = run.step("follower", &describe(&f));
    assert_eq!(
        at_follower,
        rows(&[&PRODUCER_HEADER, &["F", "0", "-1", "0", "T_OLD", "0"]])
    );
    let (k_ok, _, k_err) = kafka_tool(&run.bootstrap, &describe(&o));
    // The admin client's text for NOT_LEADER_OR_FOLLOWER from a broker
    // named with --broker-id.
    let refused =
        format!("Failed to describe active producers for partition {RF2}-0 on brokerId {o}");
    assert!(!k_ok && k_err.contains(&refused), "{k_err}");
    let (s_ok, _, s_err) = sluice_tool(&run.bootstrap, &describe(&o));
    assert!(!s_ok && s_err.contains("NotLeaderOrFollower"), "{s_err}");
    let found = run.step(
        "found at the follower",
        &["find-hanging", "--broker-id", &f],
    );
    assert_eq!(
        found,
        rows(&[
            &HANGING_HEADER,
            &[RF2, "0", "F", "0", "-1", "0", "T_OLD", "20"]
        ])
    );
    let none = run.step("none at the outsider", &["find-hanging", "--broker-id", &o]);
    assert_eq!(none, rows(&[&HANGING_HEADER]));

    let abort = [
        "abort",
        "--topic",
        RF2,
        "--partition",
        "0",
        "--start-offset",
        "0",
    ];
    ok("sluice abort F", sluice_tool(&run.bootstrap, &abort));
    assert_eq!(
        latest_of(&mut at_leader, RF2, true),
        3,
        "the marker is at 2"
    );
    run.transcript
}

/// Kafka answers DescribeProducers from every replica, so `--broker-id`
/// of a follower works with both tools; Sluice does the same.
#[test]
fn every_replica_describes_its_producers_on_sluice_and_kafka() {
    if !kafka_tools_ready("hanging transactions on a cluster") {
        return;
    }
    let _one = one_at_a_time();
    let cluster = SluiceCluster::start(
        env!("CARGO_BIN_EXE_sluice"),
        ClusterLayout::Combined(3),
        &[VERIFICATION_OFF],
    )
    .expect("the 3-node cluster starts");
    let addrs = (1..=3)
        .map(|id| (id, cluster.broker_addr(id).to_string()))
        .collect();
    let ours = replica_scenario(&addrs);
    drop(cluster);

    same_as_kafka("cluster", &ours, || {
        let kafka = ReferenceKafkaCluster::start_with(&[VERIFICATION_OFF])
            .expect("the Kafka cluster starts")
            .expect("the jars are here (checked above)");
        let addrs = (1..=3).map(|id| (id, kafka.addr(id).to_string())).collect();
        replica_scenario(&addrs)
    });
}
