//! Prints the checker's throughput on a simulated correct history, in ops
//! per second of wall time and of this thread's CPU time (the machines are
//! shared: CPU time is the number that does not depend on the neighbours).
//!
//! `cargo run --release -p sluice-checker --example throughput [steps]`

use std::time::Instant;

use sluice_checker::history::{read_jsonl, write_jsonl};
use sluice_checker::sim::{generate, SimConfig};
use sluice_checker::{check, Checker};

/// This thread's CPU time in seconds (Linux `schedstat`), if readable.
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn measure<T>(what: &str, units: f64, unit: &str, f: impl FnOnce() -> T) -> T {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu.and_then(|c| Some(cpu_seconds()? - c));
    match cpu {
        Some(cpu) => println!(
            "{what}: {wall:.3} s wall, {cpu:.3} s CPU: {:.0} {unit}/s of CPU ({:.0}/s wall)",
            units / cpu,
            units / wall
        ),
        None => println!("{what}: {wall:.3} s wall: {:.0} {unit}/s", units / wall),
    }
    out
}

fn main() {
    let steps = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(700_000);
    let ops = generate(&SimConfig {
        seed: 42,
        partitions: 8,
        producers: 4,
        consumers: 4,
        steps,
    });
    let n = ops.len() as f64;
    let report = measure("check", n, "ops", || check(&ops).unwrap());
    println!("{}", report.summary(3).trim_end());
    let mut jsonl = Vec::new();
    write_jsonl(&mut jsonl, &ops).unwrap();
    println!(
        "history: {} ops, {:.1} MB of JSON lines",
        ops.len(),
        jsonl.len() as f64 / 1e6
    );
    measure("parse + check (what sluice-check does)", n, "ops", || {
        let mut checker = Checker::new();
        read_jsonl(jsonl.as_slice(), |op| checker.observe(&op)).unwrap();
        checker.finish()
    });
}
