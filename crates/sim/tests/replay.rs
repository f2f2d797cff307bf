//! A seed decides the run: run twice, each time in a fresh process (as
//! `scripts/sim` and its replay commands run seeds; see `common` for the
//! state that two runs in one process do not yet keep apart), it gives the
//! same schedule, the same acknowledged writes at the same offsets and
//! simulated times (the history's digest) and the same verdict.

mod common;

use std::process::Command;

use common::{deterministic, logs, seeds};
use sluice_sim::{run_seed, SimConfig};

/// Set in the child processes this test starts.
const CHILD: &str = "SLUICE_SIM_REPLAY_CHILD";

/// What a child prints: its run's outcome, on one line.
const OUTCOME: &str = "replay outcome: ";

#[test]
fn a_seed_replays_identically() {
    if !deterministic() {
        return;
    }
    let seed = seeds(1)[0] + 1_000;
    if std::env::var_os(CHILD).is_some() {
        logs();
        let config = SimConfig {
            fault_phases: 4,
            ..SimConfig::default()
        };
        println!("{OUTCOME}{:?}", run_seed(seed, &config));
        return;
    }
    let run = || {
        let out = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["a_seed_replays_identically", "--exact", "--nocapture"])
            .env(CHILD, "1")
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
    let first = run();
    let again = run();
    assert!(first.contains("history digest"), "{first}");
    assert_eq!(first, again, "seed {seed} did not replay identically");
}
