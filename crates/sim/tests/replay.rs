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
        // Failing fsyncs together with the group's consumers run twice in
        // one process diverge (the state that carries over between runs in
        // one process, see `common`); each replays alone, and every seed
        // replays in a fresh process, as `scripts/sim` runs them.
        io_errors: false,
        ..SimConfig::default()
    };
    let seed = seeds(1)[0] + 1_000;
    let first = run_seed(seed, &config);
    let again = run_seed(seed, &config);
    assert_eq!(first, again, "seed {seed} did not replay identically");
}
