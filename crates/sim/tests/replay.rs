//! A seed decides the run: run twice, once in a fresh process and once
//! after another seed in the same process (as `scripts/sim` runs many
//! seeds in one test binary), it gives the same schedule, the same
//! acknowledged writes at the same offsets and simulated times (the
//! history's digest) and the same verdict.

mod common;

use std::process::Command;

use common::{deterministic, logs, seeds};
use sluice_sim::{run_seed, SimConfig};

/// Set in the child processes this test starts: `fresh`, or `after` to
/// run another seed first.
const CHILD: &str = "SLUICE_SIM_REPLAY_CHILD";

/// What a child prints: its run's outcome, on one line.
const OUTCOME: &str = "replay outcome: ";

#[test]
fn a_seed_replays_identically() {
    if !deterministic() {
        return;
    }
    let seed = seeds(1)[0] + 1_000;
    if let Ok(how) = std::env::var(CHILD) {
        logs();
        let config = SimConfig {
            fault_phases: 4,
            ..SimConfig::default()
        };
        if how == "after" {
            // Tokio's task ids are process-wide: before `run_seed` aligned
            // them, this made the next seed diverge.
            let _ = run_seed(seed + 1, &config);
        }
        println!("{OUTCOME}{:?}", run_seed(seed, &config));
        return;
    }
    let run = |how: &str| {
        let out = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["a_seed_replays_identically", "--exact", "--nocapture"])
            .env(CHILD, how)
            .env("SLUICE_SIM_SEED", (seed - 1_000).to_string())
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the run of seed {seed} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(OUTCOME).map(str::to_string))
            .unwrap_or_else(|| panic!("no outcome printed:\n{stdout}"))
    };
    let first = run("fresh");
    let again = run("after");
    assert!(first.contains("history digest"), "{first}");
    assert_eq!(first, again, "seed {seed} did not replay identically");
}
