//! `sluice-bench`: the benchmark harness that runs the same librdkafka workloads against
//! Sluice, the reference Apache Kafka and a bench-only sink broker (the client's own
//! ceiling) in one run, alongside loopback and disk ceilings, and reports medians,
//! spreads, ratios and fractions of ceilings (terminal table, JSON, Markdown).
//!
//! `scripts/bench [--quick|--full]` builds everything and calls `sluice-bench run`.
//! Subcommands:
//! - `sluice-bench sink [--listen 127.0.0.1:0] [--write-dir DIR] [--sendfile] [--serve FILE]`:
//!   the sink broker (prints `listening on PLAINTEXT://host:port`); it acknowledges and
//!   discards produce (or writes it, `--write-dir`: the page-cache write floor) and serves
//!   what was produced back to consumers (the client's consume ceiling).
//! - `sluice-bench run --quick|--full ...`: the whole benchmark.
//! - `sluice-bench ceilings --dir DIR`: only the loopback and disk ceilings.
//! - `sluice-bench quotas [--secs 30] [--quota-mb 10]`: client quotas (issue 21), limited
//!   vs unlimited producers and consumers on one Sluice (`scripts/bench-quotas`).
//! - `sluice-bench noisy [--secs 20] [--request-percentage 10]`: a steady producer's
//!   latency alone and beside a client flooding small requests, without and with a
//!   request quota (issue 21, `scripts/bench-noisy`).
//! - `sluice-bench produce|consume|latency|kafka7504 --bootstrap HOST:PORT ...`: one
//!   scenario against a running broker (see BENCHMARKS.md "One scenario by hand").

mod brokers;
mod ceilings;
mod cluster;
mod evict;
mod fetchstats;
mod k7504;
mod load;
mod noisy;
mod procstat;
mod quotas;
mod report;
mod run;
mod schedstat;
mod sink;
mod txn;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use brokers::Target;

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    about = "Sluice vs Apache Kafka benchmark harness"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bench-only sink broker (acknowledges produce requests and discards them;
    /// serves topics produced to it back to consumers from batches built in memory).
    Sink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Page-cache write floor: write each produce request's records with one
        /// writev to DIR/<topic>.log before acknowledging.
        #[arg(long)]
        write_dir: Option<PathBuf>,
        /// Serve fetched records with sendfile from a memfd (as a broker sends from
        /// the page cache) instead of writev from memory.
        #[arg(long)]
        sendfile: bool,
        /// Serve these topics from the start: a JSON list of topic batch layouts
        /// ({"topic", "value_size", "partitions": [[records per batch, ...], ...]}).
        #[arg(long)]
        serve: Option<PathBuf>,
    },
    /// One consume-throughput run against any broker (reads the topic from the
    /// beginning); `--stats` adds librdkafka statistics: fetches, bytes and RTT per fetch.
    Consume {
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value = "bench-produce")]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 64)]
        mib: u64,
        #[arg(long)]
        stats: bool,
    },
    /// Client quotas (issue 21): two producers, one limited to `--quota-mb`
    /// MB/s, for `--secs`; then two consumers the same way. Prints rates.
    Quotas {
        #[arg(long, default_value = "target/bench-quotas")]
        work_dir: PathBuf,
        #[arg(long, default_value_t = 30.0)]
        secs: f64,
        #[arg(long, default_value_t = 10.0)]
        quota_mb: f64,
        #[arg(long, default_value_t = 16384)]
        record_size: usize,
    },
    /// Noisy neighbour (issue 21): a steady producer's latency alone, beside a
    /// client flooding small Metadata requests, and with a request_percentage
    /// quota on that client.
    Noisy {
        #[arg(long, default_value = "target/bench-noisy")]
        work_dir: PathBuf,
        #[arg(long, default_value_t = 20.0)]
        secs: f64,
        #[arg(long, default_value_t = 1.0)]
        rate_mb_s: f64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// Connections of the flooding client.
        #[arg(long, default_value_t = 8)]
        conns: usize,
        /// Requests each flooding connection keeps pipelined.
        #[arg(long, default_value_t = 8)]
        inflight: usize,
        #[arg(long, default_value_t = 10.0)]
        request_percentage: f64,
    },
    /// Measure the loopback TCP and disk write ceilings only.
    Ceilings {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 256)]
        mib: u64,
    },
    /// One produce-throughput run against any broker (for profiling a single scenario).
    Produce {
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value = "bench-produce")]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 64)]
        mib: u64,
        /// Extra producer settings, k=v (repeatable), on top of the standard ones.
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// One fixed-rate latency run against any broker: end to end (produce call to
    /// consumer receipt) or, with `--producer-only`, send to acknowledgement.
    Latency {
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value = "bench-latency")]
        topic: String,
        #[arg(long, default_value_t = 50.0)]
        rate_mb_s: f64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 8.0)]
        secs: f64,
        #[arg(long)]
        producer_only: bool,
    },
    /// The KAFKA-7504 scenario against a running broker: producer latency alone, with a
    /// reader of resident old data (hot) and with a reader of evicted old data (cold).
    Kafka7504 {
        #[arg(long)]
        bootstrap: String,
        /// The broker's data directory (partition directories `<topic>-<n>/`).
        #[arg(long)]
        data_dir: PathBuf,
        /// The broker's pid, for its CPU-seconds per phase.
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long, default_value = "k7504-old")]
        old_topic: String,
        /// Size of the old topic, written first if it has less than half of this.
        #[arg(long, default_value_t = 512)]
        old_mib: u64,
        #[arg(long, default_value_t = 20.0)]
        rate_mb_s: f64,
        #[arg(long, default_value_t = 6.0)]
        secs: f64,
        /// Comma-separated phases in order: alone,hot,cold.
        #[arg(long, default_value = "alone,hot,cold")]
        phases: String,
        #[arg(long, default_value_t = 1)]
        reps: usize,
    },
    /// The cluster figures of issue 16 on a 3-node cluster: controller failover
    /// after kill -9, metadata propagation, bulk topic creation, idle RSS and CPU.
    Cluster {
        /// `kafka` (the pinned Apache Kafka, three KRaft nodes on loopback) or
        /// `sluice` (three combined Sluice nodes on loopback).
        #[arg(long, default_value = "kafka")]
        target: String,
        #[arg(long, default_value_t = 10)]
        failover_trials: usize,
        #[arg(long, default_value_t = 200)]
        propagation_topics: usize,
        #[arg(long, default_value_t = 1000)]
        bulk_topics: usize,
        #[arg(long, default_value_t = 3)]
        bulk_partitions: i32,
        #[arg(long, default_value_t = 3)]
        bulk_replication_factor: i16,
        #[arg(long, default_value_t = 16)]
        bulk_in_flight: usize,
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// Also write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The replication figures of issue 17 on a 3-node cluster: acks=all
    /// produce (RF=3, min.insync.replicas=2) throughput and CPU per GB of
    /// leader and followers, end-to-end latency at a fixed rate, leader
    /// failover (kill -9 -> first acks=all acknowledgement) and the same
    /// after a follower's kill.
    Replication {
        /// `kafka` (three KRaft nodes on loopback), `sluice` (three combined
        /// nodes) or `sluice-kafka-timeouts` (Sluice with Kafka's
        /// broker.session.timeout.ms and broker.heartbeat.interval.ms).
        #[arg(long, default_value = "kafka")]
        target: String,
        /// MiB produced in each throughput run.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 50.0)]
        e2e_rate_mb_per_s: f64,
        #[arg(long, default_value_t = 30)]
        e2e_secs: u64,
        #[arg(long, default_value_t = 5)]
        failover_trials: usize,
        /// Only the leader and follower kill trials (no throughput or
        /// latency runs).
        #[arg(long)]
        failover_only: bool,
        /// `key=value` config for every Sluice node (repeatable), e.g. to
        /// try other broker.session.timeout.ms values.
        #[arg(long = "override")]
        overrides: Vec<String>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The reassignment figure of issue 17 on a 3-node cluster: a one-partition
    /// topic filled with --size-mib moves one replica to another broker with
    /// kafka-reassign-partitions --throttle while an acks=all producer keeps
    /// writing: the move's duration and rate against the throttle, and the
    /// producer's longest error streak and longest time without an ack.
    Reassign {
        /// `kafka` (three KRaft nodes on loopback) or `sluice` (three combined nodes).
        #[arg(long, default_value = "kafka")]
        target: String,
        /// MiB written to the partition before the move.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// The replication throttle, MiB/s.
        #[arg(long, default_value_t = 32.0)]
        throttle_mib_per_s: f64,
        /// The acks=all producer's rate during the move, MB/s.
        #[arg(long, default_value_t = 4.0)]
        produce_mb_per_s: f64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// Also write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The transaction figures of issue 19 on one broker: transactional
    /// produce (1 KiB records, 100 per transaction, 1 and 8 partitions),
    /// commit-to-visible latency, read_committed consume, with the
    /// broker's CPU per GB.
    Transactions {
        /// `sluice`, `kafka` (the pinned Apache Kafka, one KRaft node) or
        /// `both` (Kafka, then Sluice, in one run, side by side).
        #[arg(long, default_value = "sluice")]
        target: String,
        /// Where the broker's data goes.
        #[arg(long, default_value = "target/bench-txn")]
        work_dir: PathBuf,
        /// MiB produced in each throughput run.
        #[arg(long, default_value_t = 256)]
        mib: u64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        #[arg(long, default_value_t = 100)]
        records_per_txn: usize,
        /// One-record transactions timed for the commit latency.
        #[arg(long, default_value_t = 1000)]
        commit_samples: usize,
        /// Transactional producers at once in the throughput runs.
        #[arg(long, default_value_t = 8)]
        producers: usize,
        /// Also write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the benchmark.
    Run {
        /// Small sizes, one repetition: proves the harness works (≤ 2 minutes).
        #[arg(long, conflicts_with = "full")]
        quick: bool,
        /// Full sizes, three repetitions (≈ 20 minutes).
        #[arg(long)]
        full: bool,
        /// Override the number of repetitions.
        #[arg(long)]
        reps: Option<usize>,
        /// The release `sluice` binary.
        #[arg(long)]
        sluice_bin: Option<PathBuf>,
        /// `clients/reference-kafka` (start/stop DIR).
        #[arg(long)]
        kafka_script: Option<PathBuf>,
        /// Raw run directories (broker data and logs).
        #[arg(long, default_value = "bench/runs")]
        work_dir: PathBuf,
        /// Where results go (results-*.json, latest.json, latest.md).
        #[arg(long, default_value = "bench")]
        out_dir: PathBuf,
        /// Comma-separated: sluice,kafka,sink.
        #[arg(long, default_value = "sluice,kafka,sink")]
        targets: String,
        /// Splice the Markdown section into this file (BENCHMARKS.md).
        #[arg(long)]
        update_benchmarks: Option<PathBuf>,
        /// The command line to print in the report.
        #[arg(long, default_value = "scripts/bench")]
        command: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Sink {
            listen,
            write_dir,
            sendfile,
            serve,
        } => {
            let serve: Vec<sink::TopicShapes> = match serve {
                Some(p) => serde_json::from_slice(
                    &std::fs::read(&p).with_context(|| format!("read {p:?}"))?,
                )
                .with_context(|| format!("parse {p:?}"))?,
                None => Vec::new(),
            };
            let s = sink::Sink::start(
                &listen,
                sink::SinkOptions {
                    write_dir,
                    sendfile,
                    serve,
                },
            )?;
            println!("listening on PLAINTEXT://{}", s.addr());
            loop {
                std::thread::park();
            }
        }
        Cmd::Cluster {
            target,
            failover_trials,
            propagation_topics,
            bulk_topics,
            bulk_partitions,
            bulk_replication_factor,
            bulk_in_flight,
            idle_secs,
            out,
        } => cluster::run(cluster::ClusterOptions {
            target,
            failover_trials,
            propagation_topics,
            bulk_topics,
            bulk_partitions,
            bulk_replication_factor,
            bulk_in_flight,
            idle_secs,
            out,
        }),
        Cmd::Replication {
            target,
            mib,
            record_size,
            e2e_rate_mb_per_s,
            e2e_secs,
            failover_trials,
            failover_only,
            overrides,
            out,
        } => cluster::run_replication(cluster::ReplicationOptions {
            target,
            mib,
            record_size,
            e2e_rate_mb_per_s,
            e2e_secs,
            failover_trials,
            failover_only,
            overrides,
            out,
        }),
        Cmd::Reassign {
            target,
            size_mib,
            throttle_mib_per_s,
            produce_mb_per_s,
            record_size,
            out,
        } => cluster::run_reassign(cluster::ReassignOptions {
            target,
            size_mib,
            throttle_mib_per_s,
            produce_mb_per_s,
            record_size,
            out,
        }),
        Cmd::Transactions {
            target,
            work_dir,
            mib,
            record_size,
            records_per_txn,
            commit_samples,
            producers,
            out,
        } => txn::run(txn::TxnOptions {
            targets: match target.as_str() {
                "sluice" => vec![Target::Sluice],
                "kafka" => vec![Target::Kafka],
                "both" => vec![Target::Kafka, Target::Sluice],
                other => bail!("--target sluice|kafka|both, not {other}"),
            },
            work_dir,
            mib,
            record_size,
            records_per_txn,
            commit_samples,
            producers,
            out,
        }),
        Cmd::Quotas {
            work_dir,
            secs,
            quota_mb,
            record_size,
        } => quotas::run(quotas::QuotaOptions {
            work_dir,
            secs,
            quota_mb,
            record_size,
        }),
        Cmd::Noisy {
            work_dir,
            secs,
            rate_mb_s,
            record_size,
            conns,
            inflight,
            request_percentage,
        } => noisy::run(noisy::NoisyOptions {
            work_dir,
            secs,
            rate_mb_s,
            record_size,
            conns,
            inflight,
            request_percentage,
        }),
        Cmd::Ceilings { dir, mib } => {
            let bytes = mib << 20;
            println!(
                "loopback TCP: {:.0} MB/s",
                ceilings::loopback_mbps(bytes * 4)?
            );
            println!(
                "disk buffered+fdatasync: {:.0} MB/s",
                ceilings::disk_write_buffered_mbps(&dir, bytes)?
            );
            match ceilings::disk_write_direct_mbps(&dir, bytes)? {
                Some(d) => println!("disk O_DIRECT 1 MiB: {d:.0} MB/s"),
                None => println!("disk O_DIRECT: not supported here"),
            }
            Ok(())
        }
        Cmd::Produce {
            bootstrap,
            topic,
            partitions,
            record_size,
            mib,
            set,
        } => {
            let mut settings = load::ClientSettings::standard();
            for kv in set {
                let (k, v) = kv.split_once('=').context("--set takes k=v")?;
                settings
                    .throughput_producer
                    .insert(k.to_string(), v.to_string());
            }
            load::create_topic(&bootstrap, &topic, partitions, &[])?;
            let t = load::produce_throughput(
                &bootstrap,
                &settings,
                &topic,
                partitions,
                record_size,
                mib << 20,
            )?;
            println!(
                "{:.1} MB/s, {:.0} records/s ({} records in {:.2} s)",
                t.mb_per_s(),
                t.records_per_s(),
                t.records,
                t.secs
            );
            Ok(())
        }
        Cmd::Consume {
            bootstrap,
            topic,
            partitions,
            mib,
            stats,
        } => {
            let settings = load::ClientSettings::standard();
            if stats {
                let s = fetchstats::consume_with_stats(
                    &bootstrap,
                    &settings,
                    &topic,
                    partitions,
                    mib << 20,
                    200,
                )?;
                let line: Vec<String> = fetchstats::describe(&s)
                    .into_iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                println!("{}", line.join(", "));
            } else {
                let t =
                    load::consume_throughput(&bootstrap, &settings, &topic, partitions, mib << 20)?;
                println!(
                    "{:.1} MB/s ({} records in {:.2} s, {:.0} ms to the first record)",
                    t.mb_per_s(),
                    t.records,
                    t.secs,
                    t.startup_secs * 1e3
                );
            }
            Ok(())
        }
        Cmd::Latency {
            bootstrap,
            topic,
            rate_mb_s,
            record_size,
            secs,
            producer_only,
        } => {
            let settings = load::ClientSettings::standard();
            load::create_topic(&bootstrap, &topic, 1, &[])?;
            let rate = rate_mb_s * 1e6;
            let dur = std::time::Duration::from_secs_f64(secs);
            let l = if producer_only {
                load::produce_latency(&bootstrap, &settings, &topic, rate, record_size, dur)?
            } else {
                load::end_to_end_latency(&bootstrap, &settings, &topic, rate, record_size, dur)?
            };
            println!(
                "{} records of {} sent: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms at {:.1} MB/s offered",
                l.count, l.sent, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.offered_mb_per_s
            );
            Ok(())
        }
        Cmd::Kafka7504 {
            bootstrap,
            data_dir,
            pid,
            old_topic,
            old_mib,
            rate_mb_s,
            secs,
            phases,
            reps,
        } => {
            let phases = phases
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    k7504::Reader::parse(p)
                        .with_context(|| format!("unknown phase {p:?} (alone, hot, cold)"))
                })
                .collect::<Result<Vec<_>>>()?;
            k7504::standalone(&k7504::Standalone {
                bootstrap,
                data_dir,
                pid,
                old_topic,
                old_mib,
                rate_mb_s,
                secs,
                phases,
                reps: reps.max(1),
            })
        }
        Cmd::Run {
            quick,
            full,
            reps,
            sluice_bin,
            kafka_script,
            work_dir,
            out_dir,
            targets,
            update_benchmarks,
            command,
        } => {
            let mut plan = if full {
                run::Plan::full()
            } else {
                run::Plan::quick()
            };
            let _ = quick;
            if let Some(r) = reps {
                plan.reps = r.max(1);
            }
            let mut tg = Vec::new();
            for t in targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                tg.push(match t {
                    "sluice" => Target::Sluice,
                    "kafka" => Target::Kafka,
                    "sink" => Target::Sink,
                    other => bail!("unknown target {other:?} (sluice, kafka, sink)"),
                });
            }
            let opts = run::RunOptions {
                plan,
                sluice_bin,
                kafka_script,
                work_dir,
                out_dir: out_dir.clone(),
                targets: tg,
                command,
            };
            let report = run::run(&opts)?;
            println!();
            for l in report::table_lines(&report.summary, false) {
                println!("{l}");
            }
            if !report.failures.is_empty() {
                println!("\nFailed scenarios:");
                for f in &report.failures {
                    println!(
                        "  {} rep {} {}: {}",
                        f.target.name(),
                        f.rep + 1,
                        f.scenario,
                        f.error
                    );
                }
            }
            println!(
                "\n{} of the measurements were noisy (other processes > {} cores; marked !).",
                report.noisy_samples,
                report::NOISY_OTHER_CORES
            );
            let json = serde_json::to_string_pretty(&report)?;
            let stamp = report.machine.date_utc.replace([' ', ':'], "-");
            let path = out_dir.join(format!(
                "results-{}-{}.json",
                report.plan.mode,
                stamp.trim_end_matches("-UTC")
            ));
            std::fs::write(&path, &json).with_context(|| format!("write {path:?}"))?;
            std::fs::write(
                out_dir.join(format!("latest-{}.json", report.plan.mode)),
                &json,
            )?;
            let md = run::markdown(&report);
            std::fs::write(out_dir.join(format!("latest-{}.md", report.plan.mode)), &md)?;
            println!(
                "results: {} (and {}/latest-{}.json, .md)",
                path.display(),
                out_dir.display(),
                report.plan.mode
            );
            if let Some(doc) = update_benchmarks {
                let old = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
                std::fs::write(&doc, run::splice_section(&old, &md))?;
                println!("updated {}", doc.display());
            }
            Ok(())
        }
    }
}
