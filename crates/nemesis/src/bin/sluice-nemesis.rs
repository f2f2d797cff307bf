//! `sluice-nemesis`: one seeded fault run against a 3-node Apache Kafka or
//! Sluice in network namespaces, checked with `sluice-checker`. Prints the
//! schedule as it goes and writes a JSON report. `scripts/fault` drives it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use sluice_nemesis::cluster::SLUICE_NODES;
use sluice_nemesis::{install_interrupt_handler, netns, run, FaultKind, RunConfig, System};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Target {
    Kafka,
    Sluice,
}

#[derive(Parser, Debug)]
#[command(about = "Jepsen-style fault run in Linux network namespaces (needs root)")]
struct Cli {
    /// What to test.
    #[arg(long, value_enum)]
    system: Target,
    /// Seed of the fault schedule (random when absent; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of faults.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Go on until at least this many fault cycles (up to 1.5 × --seconds).
    #[arg(long, default_value_t = 0)]
    min_cycles: usize,
    /// Only these faults (comma-separated names, e.g. kill-leader,pause).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Sends per second of each of the two producers.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// acks=1, no idempotence, and for Kafka unclean leader election with
    /// min.insync.replicas=1: the checker is expected to find anomalies.
    #[arg(long = "unsafe")]
    unsafe_mode: bool,
    /// Transactional producers (3 of 4 transactions committed, 1 aborted)
    /// and read_committed consumers.
    #[arg(long)]
    transactional: bool,
    /// Write the history (JSON lines) here, valid or not.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The `sluice` binary (default: next to this one).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Nodes (Kafka: 3; Sluice: the cluster's default). With --split, the
    /// broker-only nodes.
    #[arg(long)]
    nodes: Option<usize>,
    /// Sluice with split roles: this many controller-only nodes (the
    /// metadata quorum's voters, ids 1..=N) next to the --nodes broker-only
    /// ones (3 and 3 when given without a number).
    #[arg(long, num_args = 0..=1, default_missing_value = "3")]
    split: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(why) = netns::unavailable() {
        bail!("cannot run: {why}");
    }
    install_interrupt_handler();
    let system = match cli.system {
        Target::Kafka => System::Kafka {
            lib: sluice_testkit::ReferenceKafka::lib_dir()
                .context("no Kafka jars in .cache/kafka/lib (scripts/setup)")?,
            nodes: cli.nodes.unwrap_or(3),
        },
        Target::Sluice => {
            let controllers = cli.split.unwrap_or(0);
            let brokers = cli.nodes.unwrap_or(SLUICE_NODES);
            if cli.split.is_some() && (controllers == 0 || brokers == 0) {
                bail!("--split needs at least one controller and one broker");
            }
            System::Sluice {
                binary: match cli.sluice {
                    Some(p) => p,
                    None => sluice_testkit::locate_sluice_binary()?,
                },
                nodes: controllers + brokers,
                controllers,
            }
        }
    };
    let seed = cli.seed.unwrap_or_else(rand::random);
    let mut config = RunConfig::new(system, seed, Duration::from_secs(cli.seconds));
    config.min_cycles = cli.min_cycles;
    config.rate = cli.rate;
    config.unsafe_mode = cli.unsafe_mode;
    config.transactional = cli.transactional;
    config.history = cli.history;
    if !cli.faults.is_empty() {
        config.faults = cli
            .faults
            .iter()
            .map(|f| FaultKind::parse(f).with_context(|| format!("unknown fault {f}")))
            .collect::<anyhow::Result<_>>()?;
    }
    eprintln!("nemesis: seed {seed}");
    let report = run(config)?;
    eprintln!("{}", report.summary);
    let json = serde_json::to_string_pretty(&report)?;
    match cli.report {
        Some(path) => {
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{json}"),
    }
    Ok(())
}
