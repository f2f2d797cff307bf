//! Kafka Streams 4.1.2 with `processing.guarantee=exactly_once_v2` gives
//! exactly the right counts although the application is killed with
//! `kill -9` several times mid-stream: against one Sluice node, against the
//! pinned Apache Kafka 4.1.2 for parity, and against a 3-node Sluice
//! cluster (replication factor 3) where the broker that coordinates the
//! application's group is also killed and restarted mid-stream.
//!
//! The application (`clients/java/StreamsEosApp.java`, run by
//! `clients/java/streams.sh`) counts words: `input` → `selectKey` → the
//! repartition topic → `count()` (changelog topic) → `output`, one thread,
//! `commit.interval.ms=100`, record cache off, so every input record
//! yields exactly one output record. The test writes `keys × per_key`
//! records (key `word-NN`) with an idempotent producer, one slice per
//! application run, paced so the application is processing while it is
//! killed; each run but the last is killed at a random point of its
//! slice's progress (the output's high watermark passing a random target,
//! so an open transaction has usually written output records), and the
//! next run starts on the same state directory. A killed instance's
//! transaction is aborted by the coordinator on its timeout (in-memory
//! store: every start is a new Streams process id) or by the next
//! instance's InitProducerId (RocksDB store, the cluster test: the process
//! id, hence the transactional.id, survives in the state directory). After
//! the last slice the application runs until every word has its true
//! count and is closed with SIGTERM; no transaction may stay open. Then a
//! `read_committed` consumer (librdkafka) reads `output` from the
//! beginning and the checker requires, for every word, the sequence of
//! counts to be exactly 1, 2, ..., n (n = the word's input records): a
//! duplicate shows as a repeated or backwards count, a loss as a gap, and
//! the last count must equal n. The changelog's last value per word must
//! be n too. A `read_uncommitted` read of `output` must hold more records
//! (those of the aborted transactions: the kills hit open transactions);
//! its anomalies are printed, the checker at work on what exactly-once
//! hides.
//!
//! Skipped without `java` or the jars of `tools/kafka-streams/fetch` (and,
//! for the parity run, `tools/kafka/fetch`) unless SLUICE_REQUIRE_CLIENTS
//! is set. The Kafka parity run is part of the full suite only
//! (`SLUICE_TEST_FULL=1`). Bounded by default (20 words × 500, 3 kills; about 50 s per
//! broker); longer runs: SLUICE_STREAMS_RECORDS_PER_KEY,
//! SLUICE_STREAMS_KEYS, SLUICE_STREAMS_KILLS; SLUICE_STREAMS_SEED replays
//! the kill points of an earlier run. The application's output is kept in
//! `target/streams-eos/<broker>.log`.

#[path = "streams_eos/app.rs"]
mod app;
#[path = "streams_eos/check.rs"]
mod check;
mod common;
#[path = "streams_eos/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::FindCoordinatorRequest;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_testkit::{ClusterLayout, ReferenceKafka, SluiceCluster, SluiceProcess};

use app::{tail, App, KeepLog};
use check::{check_changelog, check_counts, read_counts};
use common::{env_on, root, sb, RawClient};
use workload::*;

/// The Streams application id; its internal topics are named after it.
const APP_ID: &str = "streams-eos";
const INPUT: &str = "input";
const OUTPUT: &str = "output";
/// The count store's changelog (Streams' naming: `<app>-<store>-changelog`).
const CHANGELOG: &str = "streams-eos-counts-changelog";
/// The repartition topic of the `groupByKey` (`<app>-<name>-repartition`).
const REPARTITION: &str = "streams-eos-by-word-repartition";
/// Partitions of `input` and `output` (the repartition topic and the
/// changelog get as many: one task per partition and sub-topology).
const PARTITIONS: i32 = 3;
/// Generous bound for any one step on a busy 2-core machine.
const STEP: Duration = Duration::from_secs(180);

/// The heavy tests run one at a time: each starts a JVM broker or a
/// cluster plus the Streams JVM, which is all two cores can carry.
static HEAVY: Mutex<()> = Mutex::new(());

/// SLUICE_REQUIRE_CLIENTS is set.
fn ready(kafka_too: bool) -> bool {
    let mut missing = Vec::new();
    if !Command::new("javac")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("javac on PATH".to_string());
    }
    let mut markers = vec![".cache/kafka-streams/lib/.complete"];
    if kafka_too {
        markers.push(".cache/kafka/lib/.complete");
    }
    for m in markers {
        if !root().join(m).exists() {
            missing.push(m.to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        !env_on("SLUICE_REQUIRE_CLIENTS"),
        "streams test needs {} (SLUICE_REQUIRE_CLIENTS is set; run scripts/setup)",
        missing.join(", ")
    );
    eprintln!(
        "\n\n!!! SKIPPED streams test: needs {}; run scripts/setup !!!\n",
        missing.join(", ")
    );
    false
}

fn wait_for_counts(bootstrap: &str, w: &Workload, app: &mut App) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "streams-eos-progress")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("progress consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(OUTPUT, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let expected = w.expected();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let t0 = Instant::now();
    loop {
        if expected
            .iter()
            .all(|(word, n)| last.get(word).is_some_and(|c| *c >= *n as i64))
        {
            return;
        }
        app.assert_alive("waiting for the final counts");
        assert!(
            t0.elapsed() < STEP,
            "the counts never reached {} per word; last seen {last:?}\n{}",
            w.per_key,
            tail(&app.output(), 60)
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let word = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            if let Some(Ok(v)) = m.payload().map(<[u8; 8]>::try_from) {
                last.insert(word, i64::from_be_bytes(v));
            }
        }
    }
}

/// Where and how the application runs.
#[derive(Clone, Copy)]
struct Setup<'a> {
    /// Names the application's log (`target/streams-eos/<name>.log`).
    name: &'a str,
    bootstrap: &'a str,
    /// Of every topic, the internal ones included.
    replication: i16,
    /// The count store. `memory`: every start is a new Streams process id,
    /// so a killed instance's transaction is aborted on its timeout.
    /// `rocksdb`: the state directory keeps the process id, so the next
    /// instance has the same transactional.id and its InitProducerId
    /// fences and aborts the killed one's transaction.
    store: &'a str,
}

/// A fault beside the application's kills, injected once in run `run`
/// while its slice is being written (the cluster test kills a broker).
type Fault<'a> = &'a mut dyn FnMut(usize);

/// The whole scenario against the brokers at `bootstrap`: topics, the
/// application killed `w.kills` times at random points of its progress
/// and restarted, the final run closed cleanly, and the checks.
fn run_scenario(setup: &Setup<'_>, fault: Fault<'_>) {
    let Setup {
        name,
        bootstrap,
        replication,
        store,
    } = *setup;
    let w = Workload::from_env();
    let mut rng = Rng::from_env();
    let t_all = Instant::now();
    let first = bootstrap.split(',').next().unwrap();
    create_topics(
        first,
        &[(INPUT, PARTITIONS), (OUTPUT, PARTITIONS)],
        replication,
    );
    let state = tempfile::Builder::new()
        .prefix("streams-eos-state-")
        .tempdir()
        .unwrap();
    let state_dir = state.path().display().to_string();
    let log = Arc::new(Mutex::new(String::new()));
    let _keep = KeepLog {
        path: root().join(format!("target/streams-eos/{name}.log")),
        log: log.clone(),
    };
    let marks = watermark_client(bootstrap);
    let stable = stable_offsets_client(bootstrap);
    // Paced so that a slice takes about 4 s to write.
    let rate = (w.total() / (w.kills + 1) / 4).max(50);
    println!(
        "{name}: {} words x {} records, {} kills, {} records per run at ~{rate}/s, \
         replication factor {replication}, {store} store",
        w.keys,
        w.per_key,
        w.kills,
        w.total() / (w.kills + 1)
    );

    for run in 0..=w.kills {
        let t_run = Instant::now();
        let mut app = App::start(setup, &state_dir, &log);
        let to_running = app.wait_running();
        let base = high_watermarks(&marks, OUTPUT);
        let slice = w.slice(run);
        let writer = produce_slice(bootstrap.to_string(), w, slice, rate);
        fault(run);
        if run == w.kills {
            writer.join().expect("the last slice was written");
            wait_for_counts(bootstrap, &w, &mut app);
            app.terminate();
            println!(
                "run {run}: RUNNING after {:.1} s, all counts reached, closed after {:.1} s",
                to_running.as_secs_f64(),
                t_run.elapsed().as_secs_f64()
            );
            break;
        }
        // Kill once the output has grown by a random share (10%..90%) of
        // this slice's records: always while the application processes.
        let len = (slice.1 - slice.0) as u64;
        let target = base + rng.range(len / 10, len * 9 / 10) as i64;
        let t_wait = Instant::now();
        let mut at = high_watermarks(&marks, OUTPUT);
        while at < target {
            app.assert_alive("waiting for the kill point");
            assert!(
                t_wait.elapsed() < STEP,
                "run {run}: the output stayed at {at} (kill point {target}):\n{}",
                tail(&app.output(), 60)
            );
            std::thread::sleep(Duration::from_millis(10));
            at = high_watermarks(&marks, OUTPUT);
        }
        app.kill9();
        // The killed instance's open transaction, if it had written output
        // records, holds the last stable offset below the high watermark
        // until it is aborted (its timeout is 10 s; a moment for followers
        // to fetch its last records first).
        std::thread::sleep(Duration::from_secs(1));
        let open = open_partitions(&marks, &stable, OUTPUT);
        println!(
            "run {run}: RUNNING after {:.1} s, kill -9 at output offset sum {at} \
             (+{} in this run) after {:.1} s; output partitions in an open transaction: {open:?}",
            to_running.as_secs_f64(),
            at - base,
            t_run.elapsed().as_secs_f64()
        );
        writer.join().expect("the slice was written");
    }

    // Every transaction of a killed instance gets aborted by the
    // coordinator once it is older than its timeout (10 s, Streams'
    // default), and the last instance committed its last one at its close.
    let t_open = Instant::now();
    for topic in [OUTPUT, CHANGELOG, REPARTITION] {
        loop {
            let open = open_partitions(&marks, &stable, topic);
            if open.is_empty() {
                break;
            }
            assert!(
                t_open.elapsed() < Duration::from_secs(60),
                "{topic}: transactions still open on partitions {open:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let expected = w.expected();
    let committed = read_counts(bootstrap, OUTPUT, true);
    let anomalies = check_counts(&expected, &committed);
    let changelog = read_counts(bootstrap, CHANGELOG, true);
    let changelog_anomalies = check_changelog(&expected, &changelog);
    let uncommitted = read_counts(bootstrap, OUTPUT, false);
    let uncommitted_anomalies = check_counts(&expected, &uncommitted);
    println!(
        "read_committed output: {} records for {} input records; \
         read_uncommitted: {} ({} from aborted transactions, {} anomalies there, e.g. {:?}); \
         {:.0} s in all",
        committed.len(),
        w.total(),
        uncommitted.len(),
        uncommitted.len() as i64 - committed.len() as i64,
        uncommitted_anomalies.len(),
        uncommitted_anomalies.first(),
        t_all.elapsed().as_secs_f64()
    );
    assert!(
        anomalies.is_empty() && changelog_anomalies.is_empty(),
        "not exactly once: {} anomalies in output, first {:?}; changelog: {:?}\n{}",
        anomalies.len(),
        &anomalies[..anomalies.len().min(20)],
        &changelog_anomalies[..changelog_anomalies.len().min(20)],
        tail(&log.lock().unwrap(), 80)
    );
    assert_eq!(committed.len(), w.total());
    assert!(
        w.kills == 0 || uncommitted.len() > committed.len(),
        "no aborted output records: none of the {} kills found an open \
         transaction with output records, so the run did not test the aborts",
        w.kills
    );
}

#[test]
fn exactly_once_v2_survives_kill9_on_sluice() {
    if !ready(false) {
        return;
    }
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let broker = SluiceProcess::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "2000",
        )],
    )
    .expect("sluice starts");
    let setup = Setup {
        name: "sluice",
        bootstrap: broker.bootstrap(),
        replication: 1,
        store: "memory",
    };
    run_scenario(&setup, &mut |_| {});
}

#[test]
fn exactly_once_v2_survives_kill9_on_reference_kafka() {
    // The parity run costs a minute of CI; it runs in the full suite.
    if !common::env_on("SLUICE_TEST_FULL") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 for the Kafka parity run");
        return;
    }
    if !ready(true) {
        return;
    }
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kafka) = ReferenceKafka::start_with(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "2000",
    )])
    .expect("Kafka starts") else {
        return;
    };
    let bootstrap = kafka.bootstrap();
    let setup = Setup {
        name: "kafka",
        bootstrap: &bootstrap,
        replication: 1,
        store: "memory",
    };
    run_scenario(&setup, &mut |_| {});
}

/// The broker that coordinates `group` (FindCoordinator v3 through `addr`).
fn group_coordinator(addr: &str, group: &str) -> i32 {
    let t0 = Instant::now();
    loop {
        let resp = RawClient::connect(addr).send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(group))
                .with_key_type(0),
        );
        if resp.error_code == 0 {
            return resp.node_id.0;
        }
        assert!(t0.elapsed() < STEP, "FindCoordinator {group}: {resp:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The same on three combined Sluice nodes, every topic at replication
/// factor 3, and in the second run also a kill -9 of the broker that
/// coordinates the application's group (its `__consumer_offsets`
/// partition, where the transactional offsets go), restarted 5 s later
/// at the same address while the application goes on.
#[test]
fn exactly_once_v2_survives_kill9_on_a_three_node_sluice_cluster() {
    if !ready(false) {
        return;
    }
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = SluiceCluster::start_pinned(
        env!("CARGO_BIN_EXE_sluice"),
        ClusterLayout::Combined(3),
        &[(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "2000",
        )],
    )
    .expect("the cluster starts");
    let bootstrap = cluster.bootstrap();
    let first = bootstrap.split(',').next().unwrap().to_string();
    let setup = Setup {
        name: "sluice-cluster",
        bootstrap: &bootstrap,
        replication: 3,
        store: "rocksdb",
    };
    run_scenario(&setup, &mut |run| {
        if run != 1 {
            return;
        }
        let victim = group_coordinator(&first, APP_ID);
        let t0 = Instant::now();
        cluster.node_mut(victim).process.kill().expect("kill -9");
        std::thread::sleep(Duration::from_secs(5));
        cluster
            .node_mut(victim)
            .process
            .restart()
            .expect("the broker restarts");
        println!(
            "run {run}: broker {victim} (the group's coordinator) killed with kill -9, \
             back after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    });
}
