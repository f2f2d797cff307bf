//! A simulated hour of the cluster under faults, in one seed: only with
//! `SLUICE_SIM_HOUR=1` (`scripts/sim --hour`), as it takes minutes.
//! `SLUICE_SIM_SEED` picks the seed (default 1) and `SLUICE_SIM_PHASES`
//! the fault phases (default 3300: phases last 0.2-2 s, so about an
//! hour, plus forming, healing and reading).

mod common;

use common::{deterministic, logs};
use sluice_sim::{run_seed, SimConfig};

#[test]
fn a_simulated_hour_keeps_every_invariant() {
    if std::env::var_os("SLUICE_SIM_HOUR").is_none() || !deterministic() {
        return;
    }
    logs();
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = var("SLUICE_SIM_SEED").unwrap_or(1);
    let config = SimConfig {
        fault_phases: var("SLUICE_SIM_PHASES").unwrap_or(3300) as usize,
        ..SimConfig::default()
    };
    let started = std::time::Instant::now();
    match run_seed(seed, &config) {
        Ok(o) => {
            let faults = o.trace.len();
            eprintln!(
                "hour: seed {seed}: ok, {} acked, {:.0} s simulated in {:.0} s of wall time, {faults} schedule entries",
                o.acked,
                o.simulated.as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
            eprintln!(
                "last entries:\n  {}",
                o.trace[faults.saturating_sub(8)..].join("\n  ")
            );
        }
        Err(e) => panic!("{e}"),
    }
}
