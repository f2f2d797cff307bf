//! The cluster simulation's seeds (see the crate docs).
//!
//! `SLUICE_SIM_SEEDS=N` runs N seeds (default 6, the bounded subset the
//! test suite runs) from `SLUICE_SIM_FIRST_SEED`; `SLUICE_SIM_SEED=S`
//! replays one. A failure prints the seed, the violated invariant and the
//! fault schedule. `SLUICE_SIM_PHASES=P` sets the fault phases per seed
//! (default 8), `SLUICE_SIM_ELR=0` runs the controllers without KIP-966,
//! `SLUICE_SIM_SLOW_NODES=0` leaves out stalls and full disks,
//! `SLUICE_SIM_LOG=<filter>` prints the nodes' logs stamped with simulated
//! time, and `SLUICE_SIM_TRACE_PARTITION=topic-p` prints every change of
//! that partition's registration. `scripts/sim` runs thousands of seeds.

mod common;

use common::{deterministic, logs, seeds};
use sluice_sim::{run_seed, SimConfig};

#[test]
fn the_cluster_keeps_its_invariants_under_faults() {
    if !deterministic() {
        return;
    }
    logs();
    let var = |name: &str| std::env::var(name).ok();
    let config = SimConfig {
        eligible_leader_replicas: var("SLUICE_SIM_ELR").is_none_or(|v| v != "0"),
        slow_nodes: var("SLUICE_SIM_SLOW_NODES").is_none_or(|v| v != "0"),
        fault_phases: var("SLUICE_SIM_PHASES")
            .and_then(|v| v.parse().ok())
            .unwrap_or(SimConfig::default().fault_phases),
        ..SimConfig::default()
    };
    let mut failed = Vec::new();
    for seed in seeds(6) {
        let started = std::time::Instant::now();
        match run_seed(seed, &config) {
            Ok(o) => eprintln!(
                "seed {seed}: ok, {} acked, {:?} simulated in {:?}\n  {}",
                o.acked,
                o.simulated,
                started.elapsed(),
                o.trace.join("\n  ")
            ),
            Err(e) => {
                eprintln!("{e}");
                failed.push(seed);
            }
        }
    }
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}
