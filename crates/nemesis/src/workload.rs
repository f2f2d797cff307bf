//! Jepsen's Kafka workload with librdkafka clients: producers (acks=all,
//! idempotent) send unique values to [`PARTITIONS`] partitions; one consumer
//! assigned every partition and two in a group poll them, each recreated
//! every few seconds (a new assignment epoch); every call and completion goes
//! into the checker's history with its time. [`final_read`] reads every
//! partition to its end after the faults heal. With
//! [`WorkloadConfig::transactional`] the producers send in transactions
//! instead ([`crate::transactional`]) and the consumers read committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset as KafkaOffset, TopicPartitionList};
use sluice_checker::{Call, Offset, Op, OpType, TopicPartition, Value};

/// The workload's topic (auto-created with `num.partitions` = [`PARTITIONS`]).
pub const TOPIC: &str = "nemesis";
pub const PARTITIONS: i32 = 3;
/// Consumers are recreated this often.
const EPOCH: Duration = Duration::from_secs(5);

/// The history every client appends to, with times since the start.
pub struct History {
    started: Instant,
    ops: Mutex<Vec<Op>>,
}

impl History {
    pub fn new() -> Arc<Self> {
        Arc::new(History {
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
        })
    }

    pub fn push(&self, mut op: Op) {
        op.time = Some(self.started.elapsed().as_nanos() as u64);
        self.ops.lock().unwrap().push(op);
    }

    pub fn take(&self) -> Vec<Op> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }

    /// The highest acknowledged offset of each partition so far.
    fn acked_ends(&self) -> BTreeMap<i32, i64> {
        let mut ends = BTreeMap::new();
        for op in self.ops.lock().unwrap().iter() {
            if let (
                OpType::Ok,
                Call::Send {
                    tp,
                    offset: Some(o),
                    ..
                },
            ) = (op.kind, &op.call)
            {
                let e = ends.entry(tp.partition).or_insert(-1);
                *e = (*e).max(o.0);
            }
        }
        ends
    }
}

/// How the clients behave.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub bootstrap: String,
    pub producers: usize,
    /// Sends per second of each producer.
    pub rate: u32,
    /// acks=1 without idempotence: the unsafe client of the must-fail runs.
    pub unsafe_client: bool,
    /// Transactional producers ([`crate::transactional`]).
    pub transactional: bool,
    /// Consumers (the final read included) in `isolation.level=read_committed`.
    pub read_committed: bool,
}

impl WorkloadConfig {
    /// The idempotent workload: acks=all, read_uncommitted consumers.
    pub fn idempotent(bootstrap: String, producers: usize, rate: u32) -> Self {
        WorkloadConfig {
            bootstrap,
            producers,
            rate,
            unsafe_client: false,
            transactional: false,
            read_committed: false,
        }
    }
}

/// What the clients met, besides the history.
#[derive(Default, Debug)]
pub struct ClientCounts {
    pub producers_created: AtomicU64,
    /// Idempotent producers that raised a fatal error (and were replaced).
    pub producer_fatal: AtomicU64,
    pub consumers_created: AtomicU64,
    /// Consumers whose close (librdkafka's leave-group and shutdown) had
    /// not returned after [`CLOSE_WAIT`]; left to finish on their own.
    pub consumer_closes_stuck: AtomicU64,
}

pub(crate) fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

pub(crate) fn value_of(payload: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(payload?).ok()?.parse().ok()
}

pub(crate) fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.timeout.ms", "10000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("log_level", "3");
    c
}

/// The parts of librdkafka's statistics that say why a producer is stuck.
pub(crate) fn stats_summary(v: &serde_json::Value) -> serde_json::Value {
    let pick = |o: &serde_json::Value, keys: &[&str]| {
        let m: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .filter_map(|k| Some((k.to_string(), o.get(*k)?.clone())))
            .collect();
        serde_json::Value::Object(m)
    };
    let brokers: Vec<_> = v["brokers"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .map(|b| {
            pick(
                b,
                &[
                    "nodeid",
                    "state",
                    "stateage",
                    "outbuf_cnt",
                    "waitresp_cnt",
                    "req_timeouts",
                    "disconnects",
                    "toppars",
                ],
            )
        })
        .collect();
    let partitions: Vec<_> = v["topics"][TOPIC]["partitions"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|p| p["partition"].as_i64().is_some_and(|n| n >= 0))
        .map(|p| {
            pick(
                p,
                &[
                    "partition",
                    "leader",
                    "msgq_cnt",
                    "xmit_msgq_cnt",
                    "msgs_inflight",
                    "next_ack_seq",
                    "next_err_seq",
                    "acked_msgid",
                ],
            )
        })
        .collect();
    serde_json::json!({
        "ts": v["ts"],
        "msg_cnt": v["msg_cnt"],
        "eos": v["eos"],
        "brokers": brokers,
        "partitions": partitions,
    })
}

/// Records each delivery report as the send's completion. A failed delivery
/// may still have been written (a timeout after the broker appended), so
/// every failure is indeterminate (`info`).
struct Deliveries {
    process: u64,
    history: Arc<History>,
}

impl ClientContext for Deliveries {
    /// librdkafka's own log lines (errors only, unless
    /// SLUICE_NEMESIS_RDKAFKA_DEBUG asks for more) to stderr, with the
    /// producer's process id.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!(
            "rdkafka producer {} {level:?} {fac}: {log_message}",
            self.process
        );
    }

    /// With SLUICE_NEMESIS_RDKAFKA_STATS=ms: the producer's idempotence
    /// state, brokers and partitions every `ms`, one line each, to see
    /// where a producer that stopped delivering is waiting.
    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(statistics) {
            eprintln!(
                "rdkafka stats producer {} {}",
                self.process,
                stats_summary(&v)
            );
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let (kind, m, offset) = match result {
            // librdkafka reports a retried idempotent batch the broker
            // already had (DUPLICATE_SEQUENCE_NUMBER) as delivered at
            // offset -1001: written, offset unknown.
            Ok(m) => (OpType::Ok, m, (m.offset() >= 0).then(|| m.offset())),
            Err((_, m)) => (OpType::Info, m, None),
        };
        let Some(value) = value_of(m.payload()) else {
            return;
        };
        let op = Op::send(self.process, kind, &tp(m.partition()), value, offset);
        self.history.push(op);
    }
}

/// A consumer's recorder: buffers what polls return and writes it as one
/// poll op; a rebalance first writes what came before it, then its marker,
/// so records are judged in the assignment epoch they were fetched in.
struct Recorder {
    process: u64,
    history: Arc<History>,
    /// Whether its consumer reads committed records only.
    read_committed: bool,
    buffer: Mutex<BTreeMap<TopicPartition, Vec<(Offset, Value)>>>,
    /// The last offset polled from each partition.
    last: Mutex<BTreeMap<i32, i64>>,
}

impl Recorder {
    fn new(process: u64, history: &Arc<History>, read_committed: bool) -> Self {
        Recorder {
            process,
            history: history.clone(),
            read_committed,
            buffer: Mutex::default(),
            last: Mutex::default(),
        }
    }

    fn record(&self, m: &BorrowedMessage<'_>) {
        let value = value_of(m.payload()).expect("a workload value (a decimal number)");
        self.buffer
            .lock()
            .unwrap()
            .entry(tp(m.partition()))
            .or_default()
            .push((Offset(m.offset()), Value(value)));
    }

    fn flush(&self) {
        let records = std::mem::take(&mut *self.buffer.lock().unwrap());
        let mut last = self.last.lock().unwrap();
        for (tp, recs) in &records {
            if let Some((o, _)) = recs.last() {
                last.insert(tp.partition, o.0);
            }
        }
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

fn isolation(read_committed: bool) -> &'static str {
    if read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    }
}

/// How long a consumer's close may take before the lane goes on without it.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Closes `c` on a thread of its own and waits up to [`CLOSE_WAIT`]: a
/// group consumer's close waits for its coordinator, and one that never
/// answers must not stop the run (it is counted instead).
fn close_bounded(c: Client, counts: &ClientCounts) {
    let (done, wait) = std::sync::mpsc::channel();
    let closing = thread::Builder::new()
        .name("nemesis-close".into())
        .spawn(move || {
            drop(c);
            let _ = done.send(());
        });
    if closing.is_err() || wait.recv_timeout(CLOSE_WAIT).is_err() {
        counts.consumer_closes_stuck.fetch_add(1, Ordering::Relaxed);
    }
}

/// A consumer manually assigned every partition, at `start` (offsets some
/// consumer polled) or else from the beginning.
fn assigned_consumer(
    bootstrap: &str,
    eof: bool,
    recorder: Recorder,
    start: &BTreeMap<i32, i64>,
) -> Option<Client> {
    let consumer: Client = base_config(bootstrap)
        .set("isolation.level", isolation(recorder.read_committed))
        .set("group.id", "nemesis-assigned")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .create_with_context(recorder)
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let at = match start.get(&p) {
            Some(&o) => KafkaOffset::Offset(o),
            None => KafkaOffset::Beginning,
        };
        tpl.add_partition_offset(TOPIC, p, at).ok()?;
    }
    consumer.assign(&tpl).ok()?;
    let op = Op::new(
        consumer.context().process,
        OpType::Ok,
        Call::Assign {
            partitions: (0..PARTITIONS).map(tp).collect(),
        },
    );
    consumer.context().history.push(op);
    Some(consumer)
}

/// A consumer in a group: auto-committed offsets, earliest when none.
fn group_consumer(bootstrap: &str, recorder: Recorder) -> Option<Client> {
    let consumer: Client = base_config(bootstrap)
        .set("isolation.level", isolation(recorder.read_committed))
        .set("group.id", "nemesis-group")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(recorder)
        .ok()?;
    consumer.subscribe(&[TOPIC]).ok()?;
    let op = Op::new(
        consumer.context().process,
        OpType::Ok,
        Call::Subscribe {
            topics: vec![TOPIC.into()],
        },
    );
    consumer.context().history.push(op);
    Some(consumer)
}

/// Polls up to `max` records (or for about 100 ms) into one poll op.
/// Returns the partitions that reported end-of-partition.
fn poll_once(c: &Client, max: usize) -> Vec<i32> {
    let mut n = 0;
    let mut eofs = Vec::new();
    let until = Instant::now() + Duration::from_millis(100);
    while n < max && Instant::now() < until {
        match c.poll(Duration::from_millis(20)) {
            Some(Ok(m)) => {
                c.context().record(&m);
                n += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => eofs.push(p),
            // Transport errors during faults: librdkafka reconnects and
            // resumes at its fetch position.
            Some(Err(_)) | None => {}
        }
    }
    c.context().flush();
    eofs
}

/// The running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub history: Arc<History>,
    pub counts: Arc<ClientCounts>,
}

static NEXT_PROCESS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn next_process() -> u64 {
    NEXT_PROCESS.fetch_add(1, Ordering::Relaxed)
}

impl Workload {
    /// Starts the producers and consumers on threads of the calling thread's
    /// network namespace.
    pub fn start(config: WorkloadConfig, history: Arc<History>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(ClientCounts::default());
        let values = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for _ in 0..config.producers {
            let (c, s, h, k, v) = (
                config.clone(),
                stop.clone(),
                history.clone(),
                counts.clone(),
                values.clone(),
            );
            if c.transactional {
                threads.push(thread::spawn(move || {
                    crate::transactional::produce(c, s, h, k, v)
                }));
            } else {
                threads.push(thread::spawn(move || produce(c, s, h, k, v)));
            }
        }
        for grouped in [false, true] {
            let (b, s, h, k) = (
                config.bootstrap.clone(),
                stop.clone(),
                history.clone(),
                counts.clone(),
            );
            let rc = config.read_committed;
            threads.push(thread::spawn(move || consume(b, grouped, rc, s, h, k)));
        }
        Workload {
            stop,
            threads,
            history,
            counts,
        }
    }

    /// Stops the consumers and the producers (which first wait up to two
    /// minutes for their outstanding sends).
    pub fn stop(self) -> Arc<ClientCounts> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.counts
    }
}

fn new_producer(
    config: &WorkloadConfig,
    history: &Arc<History>,
    counts: &ClientCounts,
) -> Option<(u64, ThreadedProducer<Deliveries>)> {
    let process = next_process();
    let mut c = base_config(&config.bootstrap);
    c.set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "100");
    // SLUICE_NEMESIS_RDKAFKA_STATS=ms: a summary of librdkafka's
    // statistics every `ms` (see `Deliveries::stats_raw`); it does not
    // change the timing as debug logs do.
    if let Ok(ms) = std::env::var("SLUICE_NEMESIS_RDKAFKA_STATS") {
        c.set("statistics.interval.ms", ms);
    }
    // SLUICE_NEMESIS_RDKAFKA_DEBUG=eos,... : librdkafka's debug contexts
    // for the producers (to the run's stderr), for a post-mortem.
    if let Ok(debug) = std::env::var("SLUICE_NEMESIS_RDKAFKA_DEBUG") {
        c.set("debug", debug)
            .set("log_level", "7")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    if config.unsafe_client {
        c.set("acks", "1").set("enable.idempotence", "false");
    } else {
        c.set("acks", "all").set("enable.idempotence", "true");
    }
    let p = c
        .create_with_context(Deliveries {
            process,
            history: history.clone(),
        })
        .ok()?;
    counts.producers_created.fetch_add(1, Ordering::Relaxed);
    Some((process, p))
}

fn produce(
    config: WorkloadConfig,
    stop: Arc<AtomicBool>,
    history: Arc<History>,
    counts: Arc<ClientCounts>,
    values: Arc<AtomicU64>,
) {
    let batch = 5u32;
    let pause = Duration::from_secs_f64(batch as f64 / config.rate.max(1) as f64);
    let Some((mut process, mut producer)) = new_producer(&config, &history, &counts) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        if producer.client().fatal_error().is_some() {
            // An idempotent producer that raised a fatal error sends no
            // more: replace it (its open sends stay indeterminate).
            counts.producer_fatal.fetch_add(1, Ordering::Relaxed);
            let _ = producer.flush(Duration::from_secs(1));
            drop(producer);
            history.push(Op::new(process, OpType::Info, Call::Crash));
            match new_producer(&config, &history, &counts) {
                Some((p, pr)) => (process, producer) = (p, pr),
                None => return,
            }
        }
        for _ in 0..batch {
            send_next(&producer, process, &history, &values);
        }
        thread::sleep(pause);
    }
    let _ = producer.flush(Duration::from_secs(120));
}

/// Sends the next unique value (invoked in the history) to its partition;
/// the value if librdkafka took it (one it refused is definitely not
/// written: completed `fail`).
pub(crate) fn send_next<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &ThreadedProducer<C>,
    process: u64,
    history: &History,
    values: &AtomicU64,
) -> Option<u64> {
    let value = values.fetch_add(1, Ordering::Relaxed);
    let partition = (value % PARTITIONS as u64) as i32;
    let text = value.to_string();
    history.push(Op::send(
        process,
        OpType::Invoke,
        &tp(partition),
        value,
        None,
    ));
    let record = BaseRecord::<str, str>::to(TOPIC)
        .partition(partition)
        .key(&text)
        .payload(&text);
    if producer.send(record).is_err() {
        history.push(Op::send(process, OpType::Fail, &tp(partition), value, None));
        return None;
    }
    Some(value)
}

/// One lane of consumers, recreated every [`EPOCH`]. An assigned consumer
/// starts where the previous one stopped, every other time 2,000 records
/// before that (a re-read), so it neither skips records nor re-reads the
/// whole log every time.
fn consume(
    bootstrap: String,
    grouped: bool,
    read_committed: bool,
    stop: Arc<AtomicBool>,
    history: Arc<History>,
    counts: Arc<ClientCounts>,
) {
    let mut resume: BTreeMap<i32, i64> = BTreeMap::new();
    let mut epochs = 0u64;
    while !stop.load(Ordering::Relaxed) {
        epochs += 1;
        let rewind = if epochs % 2 == 0 { 2000 } else { 0 };
        let start: BTreeMap<i32, i64> = resume
            .iter()
            .map(|(&p, &o)| (p, (o - rewind).max(0)))
            .collect();
        let clients: Vec<Client> = if grouped {
            (0..2)
                .filter_map(|_| {
                    let r = Recorder::new(next_process(), &history, read_committed);
                    group_consumer(&bootstrap, r)
                })
                .collect()
        } else {
            assigned_consumer(
                &bootstrap,
                false,
                Recorder::new(next_process(), &history, read_committed),
                &start,
            )
            .into_iter()
            .collect()
        };
        counts
            .consumers_created
            .fetch_add(clients.len() as u64, Ordering::Relaxed);
        let epoch = Instant::now();
        while !stop.load(Ordering::Relaxed) && epoch.elapsed() < EPOCH {
            for c in &clients {
                poll_once(c, 500);
            }
            if clients.is_empty() {
                thread::sleep(Duration::from_millis(100));
            }
        }
        for c in clients {
            if !grouped {
                // Where the next one starts: just after the last polled record.
                for (&p, &o) in c.context().last.lock().unwrap().iter() {
                    resume.insert(p, o + 1);
                }
            }
            let process = c.context().process;
            close_bounded(c, &counts);
            history.push(Op::new(process, OpType::Info, Call::Crash));
        }
    }
}

/// After healing: one assigned consumer reads every partition from the
/// beginning until it reports the end of each and has passed the highest
/// acknowledged offset of each. False when `timeout` passed first.
pub fn final_read(bootstrap: &str, history: &Arc<History>, timeout: Duration) -> bool {
    final_read_with(bootstrap, history, timeout, false)
}

/// [`final_read`] in read_committed when `read_committed`.
pub fn final_read_with(
    bootstrap: &str,
    history: &Arc<History>,
    timeout: Duration,
    read_committed: bool,
) -> bool {
    let ends = history.acked_ends();
    let deadline = Instant::now() + timeout;
    let recorder = Recorder::new(next_process(), history, read_committed);
    let Some(reader) = assigned_consumer(bootstrap, true, recorder, &BTreeMap::new()) else {
        return false;
    };
    let mut at_end = BTreeSet::new();
    let mut last_positions = BTreeMap::new();
    let mut moved = Instant::now();
    loop {
        at_end.extend(poll_once(&reader, 20_000));
        let positions = reader.context().last.lock().unwrap().clone();
        if positions != last_positions {
            last_positions = positions.clone();
            moved = Instant::now();
        }
        let done = (0..PARTITIONS).all(|p| {
            at_end.contains(&p)
                && positions.get(&p).copied().unwrap_or(-1) >= ends.get(&p).copied().unwrap_or(-1)
        });
        if done {
            break;
        }
        // Every partition read to its end, and nothing more for a minute,
        // yet short of what was acknowledged: those records are not there
        // (the checker says which); waiting longer would not bring them.
        let stuck =
            at_end.len() == PARTITIONS as usize && moved.elapsed() > Duration::from_secs(60);
        if Instant::now() > deadline || stuck {
            eprintln!(
                "nemesis: final read incomplete: positions {positions:?}, acknowledged ends {ends:?}, at end {at_end:?}"
            );
            return false;
        }
    }
    let process = reader.context().process;
    drop(reader);
    history.push(Op::new(process, OpType::Info, Call::Crash));
    true
}
