//! `sluice-bench latency` run several times in a row against one broker and
//! one topic: each run measures only its own records (the earlier runs'
//! records are still in the topic). Needs the `sluice` binary (built by the
//! workspace's tests; `SLUICE_BIN` points elsewhere). Nothing here asserts a
//! speed.

use std::process::Command;

use sluice_testkit::SluiceProcess;

/// `(records measured, records this run sent)` from a latency run's summary
/// line `N records of M sent: p50 ...`.
fn run_latency(bootstrap: &str) -> (u64, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["latency", "--bootstrap", bootstrap, "--topic", "repeat"])
        .args(["--rate-mb-s", "0.5", "--record-size", "1024", "--secs", "2"])
        .output()
        .expect("run sluice-bench latency");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(" records of ") && l.contains(" sent: p50 "))
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[0].parse().unwrap(), words[3].parse().unwrap())
}

#[test]
fn repeated_latency_runs_measure_only_their_own_records() {
    let broker = SluiceProcess::start_default(&[]).expect("sluice starts");
    for run in 1..=3 {
        let (measured, sent) = run_latency(broker.bootstrap());
        // The first 10% of a run is warm-up and not measured; nothing from
        // another run may be.
        assert!(
            measured > 0 && measured <= sent,
            "run {run}: measured {measured} records, sent {sent}"
        );
    }
}
