//! The `cluster` scenario of clients/README.md with librdkafka (the
//! `rdkafka` crate) in a thread of the test process, printing the same
//! lines as the drivers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::Running;

const PER_PARTITION: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(90);
const LOOP_LIMIT: Duration = Duration::from_secs(400);

/// (partition, offset) -> value of every acknowledged record, and failures.
#[derive(Default)]
struct Acks {
    acked: BTreeMap<(i32, i64), String>,
    /// (partition, value) of records acknowledged without an offset: the
    /// idempotent producer learnt they were written without an answer
    /// that says where (a request that failed with an unknown outcome,
    /// e.g. on a killed leader, while a later one with higher sequence
    /// numbers succeeded: librdkafka's implicit ack, or
    /// DUPLICATE_SEQUENCE_NUMBER) and reports offset -1001.
    no_offset: Vec<(i32, String)>,
    failed: Vec<String>,
    /// Offsets acknowledged for two different records: the first was lost.
    reused: Vec<String>,
}

#[derive(Clone)]
struct AckContext(Arc<Mutex<Acks>>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut a = self.0.lock().unwrap();
        match result {
            Ok(m) if m.offset() < 0 => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                a.no_offset.push((m.partition(), v));
            }
            Ok(m) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let k = (m.partition(), m.offset());
                if let Some(old) = a.acked.insert(k, v.clone()) {
                    if old != v {
                        a.reused.push(format!("{k:?}: {old} then {v}"));
                    }
                }
            }
            Err((e, m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                a.failed.push(format!("{} {v}: {e}", m.partition()));
            }
        }
    }
}

struct Scenario {
    bootstrap: String,
    topic: String,
    partitions: i32,
    stop_file: PathBuf,
    out: Sender<String>,
}

impl Acks {
    /// Every acknowledged record, with or without its offset.
    fn count(&self) -> usize {
        self.acked.len() + self.no_offset.len()
    }
}

impl Scenario {
    fn say(&self, line: String) {
        let _ = self.out.send(line);
    }

    fn consumer(&self, group: &str) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer")
    }

    /// Reads every partition up to its end offset by assignment; every
    /// expected (partition, offset) must hold its value, and every
    /// (partition, value) of `anywhere` must be in that partition.
    fn read_all(
        &self,
        expected: &BTreeMap<(i32, i64), String>,
        anywhere: &[(i32, String)],
        what: &str,
    ) -> Result<(), String> {
        let c = self.consumer(&format!("{}-assign", self.topic));
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for p in 0..self.partitions {
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)
                .unwrap();
            let (_, high) = c
                .fetch_watermarks(&self.topic, p, TIMEOUT)
                .map_err(|e| format!("{what}: watermarks of {p}: {e}"))?;
            ends.insert(p, high);
        }
        c.assign(&tpl).map_err(|e| e.to_string())?;
        let mut pos: BTreeMap<i32, i64> = BTreeMap::new();
        let mut seen = BTreeMap::new();
        let bound = Instant::now() + TIMEOUT;
        while ends
            .iter()
            .any(|(p, &end)| pos.get(p).copied().unwrap_or(0) < end)
        {
            if Instant::now() > bound {
                return Err(format!("{what}: positions {pos:?} short of {ends:?}"));
            }
            match c.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    seen.insert((m.partition(), m.offset()), v);
                    let e = pos.entry(m.partition()).or_insert(0);
                    *e = (*e).max(m.offset() + 1);
                }
                Some(Err(e)) => self.say(format!("consumer error (retried): {e}")),
                None => {}
            }
        }
        let missing: Vec<_> = expected
            .iter()
            .filter(|(k, v)| seen.get(*k) != Some(*v))
            .take(5)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{what}: acknowledged records not read back, e.g. {missing:?}"
            ));
        }
        // Values are unique: each must be read exactly once (idempotence).
        let mut read: BTreeMap<(i32, &String), usize> = BTreeMap::new();
        for ((p, _), v) in &seen {
            *read.entry((*p, v)).or_default() += 1;
        }
        let missing: Vec<_> = anywhere
            .iter()
            .filter(|(p, v)| read.get(&(*p, v)) != Some(&1))
            .take(5)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{what}: records acknowledged without an offset not read back exactly once, e.g. {missing:?}"
            ));
        }
        self.say(format!(
            "{what}: read {} records, every acknowledged one at its offset ({} found by value)",
            seen.len(),
            anywhere.len()
        ));
        Ok(())
    }

    fn group_read(&self, expected: &BTreeMap<(i32, i64), String>) -> Result<(), String> {
        let group = format!("{}-group", self.topic);
        let c = self.consumer(&group);
        c.subscribe(&[&self.topic]).map_err(|e| e.to_string())?;
        let mut seen = BTreeSet::new();
        let bound = Instant::now() + TIMEOUT;
        while seen.len() < expected.len() {
            if Instant::now() > bound {
                return Err(format!(
                    "group {group}: read {} of {}",
                    seen.len(),
                    expected.len()
                ));
            }
            if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
                let k = (m.partition(), m.offset());
                if expected.get(&k).map(|v| v.as_bytes()) == m.payload() {
                    seen.insert(k);
                }
            }
        }
        c.commit_consumer_state(CommitMode::Sync)
            .map_err(|e| format!("group {group}: commit: {e}"))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let committed = c
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| format!("group {group}: committed: {e}"))?;
        for p in 0..self.partitions {
            let want = expected
                .keys()
                .filter(|(q, _)| *q == p)
                .map(|(_, o)| o + 1)
                .max()
                .unwrap_or(0);
            let got = committed.find_partition(&self.topic, p).map(|e| e.offset());
            if got != Some(Offset::Offset(want)) {
                return Err(format!(
                    "group {group}: committed {got:?} on {p}, expected {want}"
                ));
            }
        }
        self.say(format!("GROUP_READ {}", seen.len()));
        Ok(())
    }

    /// A new member of `<topic>-group` starts on every partition exactly at
    /// the offset committed before its coordinator was killed.
    fn group_resume(&self) -> Result<(), String> {
        let group = format!("{}-group", self.topic);
        let c = self.consumer(&group);
        c.subscribe(&[&self.topic]).map_err(|e| e.to_string())?;
        let mut first = BTreeMap::new();
        let bound = Instant::now() + TIMEOUT;
        while first.len() < self.partitions as usize {
            if Instant::now() > bound {
                return Err(format!(
                    "group {group} after the kill: first offsets {first:?}"
                ));
            }
            if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
                first.entry(m.partition()).or_insert(m.offset());
            }
        }
        if first.values().any(|&o| o != PER_PARTITION as i64) {
            return Err(format!(
                "group {group} resumed at {first:?}, not at the committed {PER_PARTITION}"
            ));
        }
        self.say(format!("GROUP_RESUMED {PER_PARTITION}"));
        Ok(())
    }

    fn run(&self) -> Result<String, String> {
        let acks = Arc::new(Mutex::new(Acks::default()));
        // acks=all, idempotent: an acknowledged record is on every in-sync
        // replica (at least min.insync.replicas=2), so it survives the
        // SIGKILL of its leader, and retries are not written twice.
        let producer: ThreadedProducer<AckContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("topic.metadata.refresh.interval.ms", "5000")
            .create_with_context(AckContext(acks.clone()))
            .map_err(|e| e.to_string())?;
        let send = |p: i32, v: String| {
            let mut rec = BaseRecord::to(&self.topic).partition(p).key(&v).payload(&v);
            // A full queue only delays: poll and try again.
            loop {
                match producer.send(rec) {
                    Ok(()) => return,
                    Err((e, r)) => {
                        self.say(format!("send queued later: {e}"));
                        rec = r;
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        };
        for p in 0..self.partitions {
            for i in 0..PER_PARTITION {
                send(p, format!("first-{p}-{i}"));
            }
        }
        producer.flush(TIMEOUT).map_err(|e| format!("flush: {e}"))?;
        let first = {
            let a = acks.lock().unwrap();
            if !a.failed.is_empty()
                || !a.no_offset.is_empty()
                || a.acked.len() != self.partitions as usize * PER_PARTITION
            {
                return Err(format!(
                    "first batch: {} acknowledged at an offset, {} without, failures {:?}",
                    a.acked.len(),
                    a.no_offset.len(),
                    a.failed
                ));
            }
            a.acked.clone()
        };
        self.say(format!("PRODUCED {}", first.len()));
        self.read_all(&first, &[], "assign")?;
        self.group_read(&first)?;

        self.say("LOOP_STARTED".into());
        let started = Instant::now();
        let mut last_report = Instant::now() - Duration::from_secs(2);
        let mut round = 0;
        while !self.stop_file.exists() {
            if started.elapsed() > LOOP_LIMIT {
                return Err(format!("no stop file after {LOOP_LIMIT:?}"));
            }
            for p in 0..self.partitions {
                send(p, format!("loop-{p}-{round}"));
            }
            round += 1;
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let a = acks.lock().unwrap();
                self.say(format!("ACKED {} FAILED {}", a.count(), a.failed.len()));
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.say(format!("stop file seen after {round} rounds"));
        let finals: Vec<String> = (0..self.partitions).map(|p| format!("final-{p}")).collect();
        for (p, v) in finals.iter().enumerate() {
            send(p as i32, v.clone());
        }
        producer
            .flush(Duration::from_secs(150))
            .map_err(|e| format!("flush after the stop file: {e}"))?;
        let (acked, no_offset, failed) = {
            let a = acks.lock().unwrap();
            if let Some(r) = a.reused.first() {
                return Err(format!(
                    "{} offsets acknowledged for two records (the first lost), e.g. {r}",
                    a.reused.len()
                ));
            }
            (a.acked.clone(), a.no_offset.clone(), a.failed.clone())
        };
        let acked_values: BTreeSet<&String> = acked
            .values()
            .chain(no_offset.iter().map(|(_, v)| v))
            .collect();
        for v in &finals {
            if !acked_values.contains(v) {
                return Err(format!("{v} not acknowledged; failures: {failed:?}"));
            }
        }
        for p in 0..self.partitions {
            let n = acked.keys().filter(|(q, _)| *q == p).count()
                + no_offset.iter().filter(|(q, _)| *q == p).count();
            self.say(format!("PARTITION {p} acked={n}"));
        }
        if let Some(r) = no_offset.first() {
            self.say(format!(
                "{} records acknowledged without an offset (checked by value), e.g. {r:?}",
                no_offset.len()
            ));
        }
        if let Some(f) = failed.first() {
            self.say(format!(
                "{} sends failed (a leader was killed), e.g. {f}",
                failed.len()
            ));
        }
        self.read_all(&acked, &no_offset, "after the restart")?;
        self.group_resume()?;
        Ok(format!(
            "OK librdkafka acked={} failed={} (without an offset: {})",
            acked.len() + no_offset.len(),
            failed.len(),
            no_offset.len()
        ))
    }
}

/// Starts the scenario in a thread.
pub fn start(bootstrap: &str, topic: &str, partitions: i32, stop_file: &Path) -> Running {
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let output = Arc::new(Mutex::new(String::new()));
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let out = output.clone();
    // Lines go to the shared output and on to the test.
    thread::spawn(move || {
        for l in line_rx {
            out.lock().unwrap().push_str(&format!("{l}\n"));
            let _ = tx.send((Instant::now(), l));
        }
    });
    let s = Scenario {
        bootstrap: bootstrap.to_string(),
        topic: topic.to_string(),
        partitions,
        stop_file: stop_file.to_path_buf(),
        out: line_tx,
    };
    let handle = thread::spawn(move || {
        let verdict = s.run();
        let ok = verdict.is_ok();
        s.say(verdict.unwrap_or_else(|e| format!("FAIL librdkafka: {e}")));
        ok
    });
    let mut handle = Some(handle);
    let finished = Box::new(move |limit: Duration| {
        let bound = Instant::now() + limit;
        let h = handle.take()?;
        while !h.is_finished() {
            if Instant::now() >= bound {
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
        // Let the last lines reach the output.
        thread::sleep(Duration::from_millis(100));
        Some(h.join().unwrap_or(false))
    });
    Running {
        lines: rx,
        last_at: None,
        output,
        finished,
    }
}
