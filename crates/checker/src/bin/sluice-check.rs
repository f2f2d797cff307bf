//! `sluice-check <history.jsonl>`: checks a Kafka workload history and
//! prints a report. Exit status: 0 valid, 1 anomalies found, 2 the history
//! could not be read or judged.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use sluice_checker::{history::read_jsonl, Checker};

#[derive(Parser)]
#[command(
    name = "sluice-check",
    about = "Check a Kafka workload history (JSON lines) for lost, duplicated, inconsistent, aborted, skipped and unseen writes"
)]
struct Args {
    /// The history: one op per line, or `-` for stdin.
    history: PathBuf,
    /// How many examples of each anomaly to print.
    #[arg(long, default_value_t = 5)]
    examples: usize,
    /// Print the whole report (stats and every anomaly) as JSON instead.
    #[arg(long)]
    json: bool,
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut checker = Checker::new();
    let observe = |op| checker.observe(&op);
    if args.history.as_os_str() == "-" {
        read_jsonl(io::stdin().lock(), observe)
    } else {
        let file = File::open(&args.history)
            .with_context(|| format!("opening {}", args.history.display()))?;
        read_jsonl(BufReader::with_capacity(1 << 20, file), observe)
    }
    .with_context(|| format!("checking {}", args.history.display()))?;
    let report = checker.finish();
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary(args.examples));
        eprintln!(
            "checked {} ops in {:.3} s ({:.0} ops/s)",
            report.stats.ops,
            elapsed.as_secs_f64(),
            report.stats.ops as f64 / elapsed.as_secs_f64().max(1e-9)
        );
    }
    Ok(report.is_valid())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sluice-check: {e:#}");
            ExitCode::from(2)
        }
    }
}
