//! The Kafka workload against a real single-node Sluice that is killed with
//! SIGKILL and restarted while it runs: an idempotent acks=all librdkafka
//! producer sends unique values to three partitions, two consumers (one
//! assigned every partition, one in a group with rebalance markers, both
//! recreated now and then) poll them, a final consumer reads every
//! partition after the last restart, and the checker must find no anomaly
//! in the history.
//!
//! Needs the `sluice` binary (`cargo build -p sluice`; `cargo test
//! --workspace` builds it). The history is kept in a file when the check
//! fails, and always written to `$SLUICE_WORKLOAD_HISTORY` when set.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset as KafkaOffset, TopicPartitionList};
use sluice_checker::faults::{inject, Fault};
use sluice_checker::history::write_jsonl;
use sluice_checker::{check, Call, Offset, Op, OpType, TopicPartition, Value};
use sluice_testkit::metadata::fetch_metadata;
use sluice_testkit::{locate_sluice_binary, SluiceProcess};

const TOPIC: &str = "workload";
const PARTITIONS: i32 = 3;
const KILLS: usize = 3;
const PRODUCER: u64 = 0;
const DRAIN: u64 = 999;

/// The history every client appends to, with times since the start.
struct History {
    started: Instant,
    ops: Mutex<Vec<Op>>,
}

impl History {
    fn push(&self, mut op: Op) {
        op.time = Some(self.started.elapsed().as_nanos() as u64);
        self.ops.lock().unwrap().push(op);
    }
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

fn value_of(payload: Option<&[u8]>) -> u64 {
    let text = std::str::from_utf8(payload.expect("a payload")).expect("utf-8");
    text.parse().expect("a workload value")
}

/// Records each delivery report as the send's completion. A failed delivery
/// of an idempotent producer may still have been written (a timeout after
/// the broker appended), so every failure is indeterminate (`info`).
struct Deliveries(Arc<History>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let (kind, m, offset) = match result {
            // Delivered at an unknown offset (-1001): a retried idempotent
            // batch the broker already had.
            Ok(m) => (OpType::Ok, m, (m.offset() >= 0).then(|| m.offset())),
            Err((_, m)) => (OpType::Info, m, None),
        };
        let op = Op::send(
            PRODUCER,
            kind,
            &tp(m.partition()),
            value_of(m.payload()),
            offset,
        );
        self.0.push(op);
    }
}

/// A consumer's recorder: buffers what polls return and writes it as one
/// poll op; a rebalance first writes what came before it, then its marker,
/// so records are judged in the assignment epoch they were fetched in.
struct Recorder {
    process: u64,
    history: Arc<History>,
    buffer: Mutex<BTreeMap<TopicPartition, Vec<(Offset, Value)>>>,
}

impl Recorder {
    fn new(process: u64, history: &Arc<History>) -> Self {
        Recorder {
            process,
            history: history.clone(),
            buffer: Mutex::default(),
        }
    }

    fn record(&self, m: &BorrowedMessage<'_>) {
        self.buffer
            .lock()
            .unwrap()
            .entry(tp(m.partition()))
            .or_default()
            .push((Offset(m.offset()), Value(value_of(m.payload()))));
    }

    fn flush(&self) {
        let records = std::mem::take(&mut *self.buffer.lock().unwrap());
        if !records.is_empty() {
            let op = Op::new(self.process, OpType::Ok, Call::Poll { records });
            self.history.push(op);
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.flush();
        let (assigned, revoked) = match rebalance {
            Rebalance::Assign(tpl) => (partitions_of(tpl), Vec::new()),
            Rebalance::Revoke(tpl) => (Vec::new(), partitions_of(tpl)),
            Rebalance::Error(_) => (Vec::new(), Vec::new()),
        };
        let op = Op::new(
            self.process,
            OpType::Info,
            Call::Rebalance { assigned, revoked },
        );
        self.history.push(op);
    }
}

type Client = BaseConsumer<Recorder>;

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    c
}

/// A consumer manually assigned every partition from the beginning.
fn assigned_consumer(bootstrap: &str, eof: bool, recorder: Recorder) -> Client {
    let consumer: Client = config(bootstrap)
        .set("group.id", "workload-assigned")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .create_with_context(recorder)
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, KafkaOffset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let op = Op::new(
        consumer.context().process,
        OpType::Ok,
        Call::Assign {
            partitions: (0..PARTITIONS).map(tp).collect(),
        },
    );
    consumer.context().history.push(op);
    consumer
}

/// A consumer in a group: auto-committed offsets, earliest when none.
fn group_consumer(bootstrap: &str, recorder: Recorder) -> Client {
    let consumer: Client = config(bootstrap)
        .set("group.id", "workload-group")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create_with_context(recorder)
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let op = Op::new(
        consumer.context().process,
        OpType::Ok,
        Call::Subscribe {
            topics: vec![TOPIC.into()],
        },
    );
    consumer.context().history.push(op);
    consumer
}

/// Polls up to 200 records (or for about 100 ms) into one poll op. Returns
/// the partitions that reported end-of-partition.
fn poll_once(c: &Client) -> Vec<i32> {
    let mut n = 0;
    let mut eofs = Vec::new();
    let until = Instant::now() + Duration::from_millis(100);
    while n < 200 && Instant::now() < until {
        match c.poll(Duration::from_millis(20)) {
            Some(Ok(m)) => {
                c.context().record(&m);
                n += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => eofs.push(p),
            // Transport errors while the broker restarts: librdkafka
            // reconnects and resumes at its fetch position.
            Some(Err(_)) | None => {}
        }
    }
    c.context().flush();
    eofs
}

/// Consumers that poll until `stop`: one assigned every partition and one
/// in a group, each recreated (a new epoch) every couple of seconds.
fn consume_until(bootstrap: String, stop: Arc<AtomicBool>, history: Arc<History>) {
    let (assigned, grouped) = (100, 200);
    while !stop.load(Ordering::Relaxed) {
        let clients = [
            assigned_consumer(&bootstrap, false, Recorder::new(assigned, &history)),
            group_consumer(&bootstrap, Recorder::new(grouped, &history)),
        ];
        let epoch = Instant::now();
        while !stop.load(Ordering::Relaxed) && epoch.elapsed() < Duration::from_secs(3) {
            for c in &clients {
                poll_once(c);
            }
        }
        for c in clients {
            let process = c.context().process;
            drop(c);
            history.push(Op::new(process, OpType::Info, Call::Crash));
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sluice_through_sigkill_restarts_has_no_anomalies() {
    let binary = locate_sluice_binary().expect("the sluice binary (cargo build -p sluice)");
    // A fixed port, so clients reconnect to the restarted broker.
    let port = free_port();
    let listener = format!("PLAINTEXT://127.0.0.1:{port}");
    let partitions = PARTITIONS.to_string();
    let mut sluice = SluiceProcess::start(
        &binary,
        &[
            ("listeners", listener.as_str()),
            ("num.partitions", partitions.as_str()),
            // Acknowledge after fsync: widens the window in which a kill lands
            // between the write and its acknowledgement.
            ("log.flush.interval.messages", "1"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    )
    .expect("start sluice");
    let bootstrap = sluice.bootstrap().to_string();
    // Auto-create the topic (three partitions) before any client needs it.
    let addr = bootstrap.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fetch_metadata(addr, Some(&[TOPIC])).is_ok_and(|md| {
        md.topics
            .iter()
            .any(|t| t.partitions.len() == PARTITIONS as usize)
    }) {
        assert!(Instant::now() < deadline, "topic {TOPIC} not created");
        thread::sleep(Duration::from_millis(100));
    }

    let history = Arc::new(History {
        started: Instant::now(),
        ops: Mutex::new(Vec::new()),
    });
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(Deliveries(history.clone()))
        .expect("producer");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (b, s, h) = (bootstrap.clone(), stop.clone(), history.clone());
        thread::spawn(move || consume_until(b, s, h))
    };
    let killer = thread::spawn(move || {
        for _ in 0..KILLS {
            thread::sleep(Duration::from_millis(1500));
            sluice.kill().unwrap();
            thread::sleep(Duration::from_millis(200));
            sluice.restart().unwrap();
        }
        thread::sleep(Duration::from_millis(1000));
        sluice
    });

    // Produce until the killer is done: ten values every 10 ms.
    let mut value = 0u64;
    while !killer.is_finished() {
        for _ in 0..10 {
            let partition = (value % PARTITIONS as u64) as i32;
            let text = value.to_string();
            history.push(Op::send(
                PRODUCER,
                OpType::Invoke,
                &tp(partition),
                value,
                None,
            ));
            let record = BaseRecord::<str, str>::to(TOPIC)
                .partition(partition)
                .key(&text)
                .payload(&text);
            match producer.send(record) {
                Ok(()) => {}
                // Never handed to librdkafka: definitely not written.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    history.push(Op::send(
                        PRODUCER,
                        OpType::Fail,
                        &tp(partition),
                        value,
                        None,
                    ));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
            value += 1;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let sluice = killer.join().unwrap();
    producer.flush(Duration::from_secs(120)).expect("flush");
    drop(producer);
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    // After the last restart: read every partition to its end.
    let drain = assigned_consumer(sluice.bootstrap(), true, Recorder::new(DRAIN, &history));
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "final read did not reach the end: {at_end:?}"
        );
        at_end.extend(poll_once(&drain));
    }
    drop(drain);

    let ops = std::mem::take(&mut *history.ops.lock().unwrap());
    if let Some(path) = std::env::var_os("SLUICE_WORKLOAD_HISTORY") {
        write_jsonl(&mut std::fs::File::create(path).unwrap(), &ops).unwrap();
    }
    let report = check(&ops).expect("a well-formed history");
    eprintln!("{}", report.summary(5));
    let mut per_consumer: BTreeMap<u64, usize> = BTreeMap::new();
    for op in &ops {
        if let Call::Poll { records } = &op.call {
            *per_consumer.entry(op.process.0).or_default() +=
                records.values().map(Vec::len).sum::<usize>();
        }
    }
    eprintln!("records polled per consumer (100 assigned, 200 in a group, {DRAIN} final): {per_consumer:?}");
    assert!(report.stats.sends_ok > 0, "nothing acknowledged");
    if !report.is_valid() {
        let path = std::env::temp_dir().join(format!("sluice-workload-{port}.jsonl"));
        let mut file = std::fs::File::create(&path).unwrap();
        write_jsonl(&mut file, &ops).unwrap();
        panic!(
            "anomalies after {KILLS} kills (history kept in {}):\n{report}",
            path.display()
        );
    }
    // The real history is one the checker can fail on: the same bugs
    // injected into it are found.
    for fault in Fault::ALL {
        let mut broken = ops.clone();
        assert!(inject(&mut broken, fault, 1), "{fault:?} found no place");
        let kinds = check(&broken).unwrap().kinds();
        assert!(kinds.contains(&fault.expected()), "{fault:?}: {kinds:?}");
    }
}
