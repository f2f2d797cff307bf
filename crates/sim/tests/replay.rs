//! A seed decides the run (its own test binary, so its own process: see
//! `common`).

mod common;

use common::{deterministic, logs, seeds};
use sluice_sim::{run_seed, SimConfig};

/// The same seed, run twice, gives the same schedule, the same
/// acknowledged writes at the same offsets and simulated times (the
/// history's digest) and the same verdict.
#[test]
fn a_seed_replays_identically() {
    if !deterministic() {
        return;
    }
    logs();
    let config = SimConfig {
        fault_phases: 4,
        ..SimConfig::default()
    };
    let seed = seeds(1)[0] + 1_000;
    let first = run_seed(seed, &config);
    let again = run_seed(seed, &config);
    assert_eq!(first, again, "seed {seed} did not replay identically");
}
