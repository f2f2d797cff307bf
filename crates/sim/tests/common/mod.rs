//! What the simulation's test binaries share: the determinism check, the
//! seed list from the environment, and logs stamped with simulated time.
//! A seed replays exactly whether it runs in a fresh process or after
//! other seeds in the same one (`run_seed` aligns tokio's process-wide
//! task ids; `replay.rs` checks it).
#![allow(dead_code)]

/// Without `--cfg tokio_unstable` (`.cargo/config.toml`, replaced by any
/// RUSTFLAGS variable) turmoil cannot seed the hosts' runtimes and a seed
/// would not replay: say so and run nothing.
pub fn deterministic() -> bool {
    if !cfg!(tokio_unstable) {
        eprintln!(
            "SKIPPED: built without --cfg tokio_unstable (a RUSTFLAGS variable replaced \
             .cargo/config.toml's); the simulation would not be deterministic"
        );
    }
    cfg!(tokio_unstable)
}

pub fn seeds(default_n: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SLUICE_SIM_SEED") {
        return vec![s.parse().expect("SLUICE_SIM_SEED is a number")];
    }
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let first = var("SLUICE_SIM_FIRST_SEED").unwrap_or(0);
    let n = var("SLUICE_SIM_SEEDS").unwrap_or(default_n);
    (first..first + n).collect()
}

/// Log lines stamped with the simulated time.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3}s", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

/// `SLUICE_SIM_LOG=<filter>` prints the nodes' logs (e.g. `info`), each
/// line stamped with the simulated time and the node it comes from.
pub fn logs() {
    if let Ok(filter) = std::env::var("SLUICE_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_timer(SimTime)
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    }
}
