//! The workload, Jepsen's Kafka workload on the simulated network: one
//! idempotent `acks=all` producer per partition sending unique values,
//! retrying a batch with the same sequence until it is acknowledged (as a
//! client does up to `delivery.timeout.ms`), then a reader that reads every
//! partition from its leader after the faults healed. Every operation goes
//! into a history in `sluice_checker`'s form, so the same checker that
//! judges the process-level nemesis names what went wrong here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_checker::{Call, Offset, Op, OpType, ProcessId, TopicPartition, Value};

use crate::client::Client;

pub const TOPIC: &str = "sim";
/// The reader's process id in the history.
const READER: u64 = 1_000;
/// A send still unacknowledged after this long is given up (indeterminate).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// What the workload's tasks share with the simulation.
pub struct Workload {
    /// The nodes with the broker role, which the clients connect to.
    pub brokers: Vec<i32>,
    pub partitions: i32,
    history: Mutex<Vec<Op>>,
    next_value: AtomicU64,
    /// Producers stop sending new values once set.
    pub stop: AtomicBool,
    /// Producers that have stopped.
    pub stopped: AtomicU64,
    /// Set when the reader has read every partition.
    pub read_done: AtomicBool,
    /// Consumers in the group (`group`), and how many have stopped.
    pub consumers: u64,
    pub consumers_done: AtomicU64,
    /// Offset commits the group coordinator acknowledged.
    pub commits_acked: AtomicU64,
    /// Reassignments the fault schedule asked for (partition, replicas),
    /// sent by the client's admin task in order.
    reassignments: Mutex<VecDeque<(i32, Vec<i32>)>>,
    /// What became of each: (partition, replicas, error code or -1 when no
    /// node answered before the next one was asked for).
    reassigned: Mutex<Vec<(i32, Vec<i32>, i16)>>,
    /// Topics the slow-disk trial asked for (name, partitions), created
    /// by the admin task before any reassignment.
    creations: Mutex<VecDeque<(String, i32)>>,
}

fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

impl Workload {
    pub fn new(brokers: Vec<i32>, partitions: i32, consumers: u64) -> Workload {
        Workload {
            brokers,
            partitions,
            consumers,
            consumers_done: AtomicU64::new(0),
            commits_acked: AtomicU64::new(0),
            history: Mutex::new(Vec::new()),
            next_value: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stopped: AtomicU64::new(0),
            read_done: AtomicBool::new(false),
            reassignments: Mutex::new(VecDeque::new()),
            reassigned: Mutex::new(Vec::new()),
            creations: Mutex::new(VecDeque::new()),
        }
    }

    /// The broker after `n` in `brokers` (the first if `n` is none).
    pub fn next_broker(&self, n: i32) -> i32 {
        let b = &self.brokers;
        b[b.iter()
            .position(|&x| x == n)
            .map_or(0, |i| (i + 1) % b.len())]
    }

    /// Asks the admin task to move `partition` to `replicas`.
    pub fn request_reassignment(&self, partition: i32, replicas: Vec<i32>) {
        self.reassignments.lock().push_back((partition, replicas));
    }

    /// Asks the admin task to create `topic` with `partitions` partitions.
    pub fn request_topic(&self, topic: String, partitions: i32) {
        self.creations.lock().push_back((topic, partitions));
    }

    /// The reassignments sent so far and their answers.
    pub fn reassigned(&self) -> Vec<(i32, Vec<i32>, i16)> {
        self.reassigned.lock().clone()
    }

    pub(crate) fn record(&self, process: u64, kind: OpType, call: Call) {
        self.history.lock().push(Op {
            process: ProcessId(process),
            kind,
            call,
            time: Some(now_ms()),
        });
    }

    pub fn history(&self) -> Vec<Op> {
        self.history.lock().clone()
    }

    /// Sends acknowledged so far.
    pub fn acked(&self) -> usize {
        self.history
            .lock()
            .iter()
            .filter(|o| o.kind == OpType::Ok && matches!(o.call, Call::Send { .. }))
            .count()
    }
}

/// Connects to some node, trying each from `first` on.
async fn any_node(w: &Workload, first: i32, client_id: &str) -> Client {
    let mut n = first;
    loop {
        if let Ok(c) = Client::connect(n, client_id).await {
            return c;
        }
        n = w.next_broker(n);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader of `partition` as some node's metadata says.
pub(crate) async fn find_leader(w: &Workload, partition: i32, rotate: &mut i32) -> Option<i32> {
    *rotate = w.next_broker(*rotate);
    let mut c = Client::connect(*rotate, "sim-metadata").await.ok()?;
    let leaders = c.leaders(TOPIC).await.ok()?;
    leaders.get(partition as usize).copied().flatten()
}

/// Creates the workload's topic (any node, until it exists).
pub async fn create_topic(w: &Workload) {
    create_named(w, TOPIC, w.partitions).await;
}

/// Creates `topic` with replication factor 3 (or every broker, if fewer):
/// any node, until it exists.
async fn create_named(w: &Workload, topic: &str, partitions: i32) {
    let mut n = w.brokers[0];
    loop {
        let mut c = any_node(w, n, "sim-admin").await;
        let created = c
            .create_topic(topic, partitions, 3.min(w.brokers.len()) as i16)
            .await;
        // 36: TOPIC_ALREADY_EXISTS (an earlier try that timed out).
        if let Ok(0 | 36) = created {
            return;
        }
        n = w.next_broker(n);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A producer's session: its id, epoch and next sequence.
struct Session {
    producer: (i64, i16),
    sequence: i32,
}

async fn init_session(w: &Workload, rotate: &mut i32) -> Session {
    loop {
        *rotate = w.next_broker(*rotate);
        if let Ok(mut c) = Client::connect(*rotate, "sim-producer").await {
            match c.init_producer_id().await {
                Ok(Ok(producer)) => {
                    return Session {
                        producer,
                        sequence: 0,
                    }
                }
                Ok(Err(code)) => tracing::debug!(code, "InitProducerId refused"),
                Err(e) => tracing::debug!(error = %e.0, "InitProducerId failed"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How one send ended.
enum Sent {
    Acked(i64),
    /// Acknowledged as a duplicate of an earlier attempt, offset unknown.
    AckedDuplicate,
    /// Not acknowledged; it may have been written (the session is over).
    GaveUp,
}

/// Retriable: the leader moved, or the ISR is too small for now.
fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 19 | 20 | 74 | 75 | 13 | 15)
}

async fn send_one(
    w: &Workload,
    partition: i32,
    session: &Session,
    value: u64,
    rotate: &mut i32,
    conn: &mut Option<Client>,
) -> Sent {
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if conn.is_none() {
            if let Some(leader) = find_leader(w, partition, rotate).await {
                *conn = Client::connect(leader, "sim-producer").await.ok();
            }
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let now = crate::node::SimClock::default();
        let answer = c
            .produce(
                TOPIC,
                partition,
                session.producer,
                session.sequence,
                value,
                sluice_storage::Clock::now_ms(&now),
            )
            .await;
        match answer {
            Ok((0, offset)) => return Sent::Acked(offset),
            Ok((46, _)) => return Sent::AckedDuplicate,
            Ok((code, _)) if retriable(code) => {
                tracing::debug!(partition, code, "produce refused; retrying");
                *conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok((code, _)) => {
                tracing::debug!(partition, code, "produce failed; giving up");
                return Sent::GaveUp;
            }
            Err(e) => {
                tracing::debug!(partition, error = %e.0, "produce call failed; retrying");
                *conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Sent::GaveUp
}

/// One partition's producer, until the workload stops.
pub async fn producer(w: Arc<Workload>, partition: i32) {
    let tp = TopicPartition::new(TOPIC, partition);
    let process = partition as u64;
    let mut rotate = partition;
    let mut session = init_session(&w, &mut rotate).await;
    let mut conn = None;
    while !w.stop.load(Ordering::Relaxed) {
        let value = w.next_value.fetch_add(1, Ordering::Relaxed);
        let send = |offset: Option<Offset>| Call::Send {
            tp: tp.clone(),
            key: None,
            value: Value(value),
            offset,
        };
        w.record(process, OpType::Invoke, send(None));
        match send_one(&w, partition, &session, value, &mut rotate, &mut conn).await {
            Sent::Acked(o) => {
                w.record(process, OpType::Ok, send(Some(Offset(o))));
                session.sequence += 1;
            }
            Sent::AckedDuplicate => {
                w.record(process, OpType::Ok, send(None));
                session.sequence += 1;
            }
            Sent::GaveUp => {
                w.record(process, OpType::Info, send(None));
                // The batch may still land under this session's sequence:
                // a new session (producer id) keeps the next send apart.
                session = init_session(&w, &mut rotate).await;
                conn = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.stopped.fetch_add(1, Ordering::Relaxed);
}

/// Reads every partition from its leader, from offset 0 to the high
/// watermark of a leader with its full ISR, as one assigned consumer's
/// polls.
pub async fn reader(w: Arc<Workload>) {
    let tps: Vec<TopicPartition> = (0..w.partitions)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    w.record(
        READER,
        OpType::Invoke,
        Call::Assign {
            partitions: tps.clone(),
        },
    );
    w.record(READER, OpType::Ok, Call::Assign { partitions: tps });
    let mut rotate = 0;
    for p in 0..w.partitions {
        let tp = TopicPartition::new(TOPIC, p);
        let mut offset = 0;
        loop {
            let Some(leader) = find_leader(&w, p, &mut rotate).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(mut c) = Client::connect(leader, "sim-reader").await else {
                continue;
            };
            let Ok((0, hw, records)) = c.fetch(TOPIC, p, offset).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let records: Vec<(Offset, Value)> = records
                .into_iter()
                .filter(|(o, _)| *o >= offset && *o < hw)
                .map(|(o, v)| (Offset(o), Value(v)))
                .collect();
            if let Some((last, _)) = records.last() {
                offset = last.0 + 1;
                let mut polled = std::collections::BTreeMap::new();
                polled.insert(tp.clone(), records);
                w.record(
                    READER,
                    OpType::Invoke,
                    Call::Poll {
                        records: Default::default(),
                    },
                );
                w.record(READER, OpType::Ok, Call::Poll { records: polled });
            }
            // Done at the high watermark of a leader with its full ISR: a
            // leader elected moments ago may not have raised its high
            // watermark to what its predecessor acknowledged yet (it does
            // once its followers fetch), and a read that stopped there
            // would count acknowledged records as lost.
            // (A second past that, the followers have fetched again.)
            if offset >= hw && matches!(c.fully_replicated(TOPIC, p, leader).await, Ok(true)) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Ok((0, again, _)) = c.fetch(TOPIC, p, offset).await else {
                    continue;
                };
                if again <= offset {
                    break;
                }
            }
            if offset >= hw {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    w.read_done.store(true, Ordering::Relaxed);
}

/// The admin task: creates each requested topic (until it exists), and
/// sends each requested reassignment (AlterPartitionReassignments,
/// KIP-455) to some node, which forwards it to the active controller,
/// retrying on other nodes while none answers or the answer is retriable
/// (NOT_CONTROLLER, REQUEST_TIMED_OUT), until a newer request supersedes it.
pub async fn admin(w: Arc<Workload>) {
    let mut n = w.brokers[0];
    loop {
        let creation = w.creations.lock().pop_front();
        if let Some((topic, partitions)) = creation {
            create_named(&w, &topic, partitions).await;
            continue;
        }
        let Some((partition, replicas)) = w.reassignments.lock().pop_front() else {
            if w.read_done.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut code = -1;
        while w.reassignments.lock().is_empty() {
            n = w.next_broker(n);
            let Ok(mut c) = Client::connect(n, "sim-admin").await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match c.reassign(TOPIC, partition, &replicas).await {
                // 41 NOT_CONTROLLER, 7 REQUEST_TIMED_OUT: another try.
                Ok(41 | 7) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(answer) => {
                    code = answer;
                    break;
                }
            }
        }
        w.reassigned.lock().push((partition, replicas, code));
    }
}
