//! The transactional variant of the workload (issue 19): each producer
//! (librdkafka, `transactional.id` fixed per producer slot, so a
//! replacement fences its predecessor) sends its unique values in
//! transactions of [`TXN_SIZE`] sends spread over the partitions, and
//! commits three of four and aborts the fourth, after its records are
//! written. Consumers read committed.
//!
//! How outcomes enter the history, so the checker's rules mean what
//! Jepsen's transactional Kafka checks mean:
//! - every send is invoked when handed to librdkafka;
//! - a committed transaction completes its sends `ok`, at the offsets the
//!   delivery reports gave (a value must then be read where it was written:
//!   **LostWrite**, **Duplicate**, **InconsistentOffset**);
//! - a transaction that was aborted (by choice, or because
//!   `commit_transaction` said it must be) completes them `fail`: a
//!   read_committed consumer that returns one is an **AbortedRead**;
//! - anything else (a fatal error, a commit whose outcome is unknown)
//!   completes them `info`: they may or may not have been committed.
//!
//! A read of a transaction's later writes without its earlier ones, within
//! a partition a consumer reads in order, is an **InternalSkip** or a
//! **LostWrite** of the earlier write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaError};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use sluice_checker::{Call, Op, OpType};

use crate::workload::{
    base_config, next_process, send_next, tp, value_of, ClientCounts, History, WorkloadConfig,
    PARTITIONS,
};

/// Sends per transaction.
pub const TXN_SIZE: u64 = 5;
/// Every this many transactions one is aborted on purpose.
const ABORT_EVERY: u64 = 4;
/// How long librdkafka may take for a transactional call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivery reports of the open transaction: value → offset (if known).
struct Pending {
    process: u64,
    delivered: Mutex<BTreeMap<u64, Option<i64>>>,
}

impl ClientContext for Pending {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!(
            "rdkafka txn producer {} {level:?} {fac}: {log_message}",
            self.process
        );
    }
}

impl ProducerContext for Pending {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        // A failed delivery fails the transaction's commit; the outcome is
        // recorded for the whole transaction then.
        if let Ok(m) = result {
            if let Some(v) = value_of(m.payload()) {
                let offset = (m.offset() >= 0).then(|| m.offset());
                self.delivered.lock().unwrap().insert(v, offset);
            }
        }
    }
}

type TxnProducer = ThreadedProducer<Pending>;

/// A transactional producer for `slot`, initialised (fencing any earlier
/// producer of the slot).
fn new_producer(
    config: &WorkloadConfig,
    slot: usize,
    counts: &ClientCounts,
) -> Option<(u64, TxnProducer)> {
    let process = next_process();
    let mut c = base_config(&config.bootstrap);
    c.set("transactional.id", format!("nemesis-txn-{slot}"))
        .set("transaction.timeout.ms", "30000")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "100");
    let p: TxnProducer = c
        .create_with_context(Pending {
            process,
            delivered: Mutex::default(),
        })
        .ok()?;
    counts.producers_created.fetch_add(1, Ordering::Relaxed);
    for _ in 0..10 {
        match p.init_transactions(CALL_TIMEOUT) {
            Ok(()) => return Some((process, p)),
            Err(e) => {
                eprintln!("nemesis: txn producer {process}: init_transactions: {e}");
                thread::sleep(Duration::from_millis(500));
            }
        }
    }
    None
}

/// How one transaction ended, for the history.
enum Outcome {
    Committed,
    Aborted,
    Unknown,
}

fn txn_error(e: &KafkaError) -> Option<&RDKafkaError> {
    match e {
        KafkaError::Transaction(t) => Some(t),
        _ => None,
    }
}

/// Commits (or, when `abort`, aborts) the open transaction.
fn finish(p: &TxnProducer, abort: bool) -> Outcome {
    if abort {
        // Written first (librdkafka would otherwise drop them unsent), so
        // the log holds the aborted records a read_committed consumer must
        // skip.
        if p.flush(CALL_TIMEOUT).is_err() {
            return Outcome::Unknown;
        }
        return match p.abort_transaction(CALL_TIMEOUT) {
            Ok(()) => Outcome::Aborted,
            Err(_) => Outcome::Unknown,
        };
    }
    for _ in 0..3 {
        match p.commit_transaction(CALL_TIMEOUT) {
            Ok(()) => return Outcome::Committed,
            Err(e) => match txn_error(&e) {
                Some(t) if t.txn_requires_abort() => {
                    return match p.abort_transaction(CALL_TIMEOUT) {
                        Ok(()) => Outcome::Aborted,
                        Err(_) => Outcome::Unknown,
                    };
                }
                Some(t) if t.is_retriable() => continue,
                _ => return Outcome::Unknown,
            },
        }
    }
    Outcome::Unknown
}

/// One producer slot's loop: transactions until `stop`, replacing the
/// producer after a fatal error or an unknown outcome.
pub fn produce(
    config: WorkloadConfig,
    stop: Arc<AtomicBool>,
    history: Arc<History>,
    counts: Arc<ClientCounts>,
    values: Arc<AtomicU64>,
) {
    static SLOTS: AtomicU64 = AtomicU64::new(0);
    let slot = SLOTS.fetch_add(1, Ordering::Relaxed) as usize;
    let pause = Duration::from_secs_f64(TXN_SIZE as f64 / config.rate.max(1) as f64);
    let mut current = new_producer(&config, slot, &counts);
    let mut txns = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some((process, p)) = current.take() else {
            thread::sleep(Duration::from_millis(500));
            current = new_producer(&config, slot, &counts);
            continue;
        };
        txns += 1;
        let (outcome, sent) = one_transaction(&p, process, &history, &values, txns);
        let delivered = std::mem::take(&mut *p.context().delivered.lock().unwrap());
        for value in sent {
            let partition = (value % PARTITIONS as u64) as i32;
            let (kind, offset) = match outcome {
                Outcome::Committed => (OpType::Ok, delivered.get(&value).copied().flatten()),
                Outcome::Aborted => (OpType::Fail, None),
                Outcome::Unknown => (OpType::Info, None),
            };
            history.push(Op::send(process, kind, &tp(partition), value, offset));
        }
        if matches!(outcome, Outcome::Unknown) {
            counts.producer_fatal.fetch_add(1, Ordering::Relaxed);
            history.push(Op::new(process, OpType::Info, Call::Crash));
            drop(p);
            current = new_producer(&config, slot, &counts);
        } else {
            current = Some((process, p));
        }
        thread::sleep(pause);
    }
}

/// Begins a transaction, sends [`TXN_SIZE`] values (invoked in the
/// history), and ends it; the outcome and the values sent.
fn one_transaction(
    p: &TxnProducer,
    process: u64,
    history: &History,
    values: &AtomicU64,
    n: u64,
) -> (Outcome, Vec<u64>) {
    if p.begin_transaction().is_err() {
        return (Outcome::Unknown, Vec::new());
    }
    let sent = (0..TXN_SIZE)
        .filter_map(|_| send_next(p, process, history, values))
        .collect();
    (finish(p, n % ABORT_EVERY == 0), sent)
}
