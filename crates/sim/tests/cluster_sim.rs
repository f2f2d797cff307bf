//! The cluster simulation's seeds (see the crate docs).
//!
//! `SLUICE_SIM_SEEDS=N` runs N seeds (default 6 on 3 nodes and 2 on 5, the
//! bounded subset the test suite runs) from `SLUICE_SIM_FIRST_SEED`; `SLUICE_SIM_SEED=S`
//! replays one. A failure prints the seed, the violated invariant and the
//! fault schedule. `SLUICE_SIM_PHASES=P` sets the fault phases per seed
//! (default 8), `SLUICE_SIM_ELR=0` runs the controllers without KIP-966,
//! `SLUICE_SIM_SLOW_NODES=0` leaves out stalls and full disks,
//! `SLUICE_SIM_REASSIGN=0` leaves out reassignments,
//! `SLUICE_SIM_IO_ERRORS=0` leaves out failing fsyncs and writes,
//! `SLUICE_SIM_SLOW_DISKS=0` leaves out slow and stalled disks (and the
//! slow-disk trial after healing), `SLUICE_SIM_TRIAL_STALL_MS=N` makes
//! every trial stall a majority of the voters for N ms and
//! `SLUICE_SIM_TRIAL_HOLD=reassign|topic|restart|none` picks the metadata
//! write the trial starts as the disks slow down (debugging),
//! `SLUICE_SIM_HELD_COMMITS=0` leaves out the held-commit trial after it
//! (`=always`: one in every seed),
//! `SLUICE_SIM_GROUPS=0` leaves out the consumers in a group (the bounded
//! default runs them on even seeds only),
//! `SLUICE_SIM_NODES=N` runs N combined nodes instead of 3 (each a voter;
//! replication factor 3 whatever N), `SLUICE_SIM_SPLIT=1` with 5 nodes
//! runs 3 controller-only nodes and 2 broker-only ones (the bounded
//! default runs its second 5-node seed so),
//! `SLUICE_SIM_HISTORY=path` writes the history (JSON lines, simulated ms),
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
        reassignments: var("SLUICE_SIM_REASSIGN").is_none_or(|v| v != "0"),
        io_errors: var("SLUICE_SIM_IO_ERRORS").is_none_or(|v| v != "0"),
        slow_disks: var("SLUICE_SIM_SLOW_DISKS").is_none_or(|v| v != "0"),
        held_commits: var("SLUICE_SIM_HELD_COMMITS").is_none_or(|v| v != "0"),
        consumer_groups: var("SLUICE_SIM_GROUPS").is_none_or(|v| v != "0"),
        split_roles: var("SLUICE_SIM_SPLIT").is_some_and(|v| v == "1"),
        nodes: var("SLUICE_SIM_NODES")
            .and_then(|v| v.parse().ok())
            .unwrap_or(SimConfig::default().nodes),
        fault_phases: var("SLUICE_SIM_PHASES")
            .and_then(|v| v.parse().ok())
            .unwrap_or(SimConfig::default().fault_phases),
        ..SimConfig::default()
    };
    // The bounded default also runs two seeds on 5 nodes; a chosen node
    // count or seed runs only what was chosen. To stay within its time, it
    // rotates the costliest feature: the group's consumers run on every
    // other seed (a chosen run has them unless SLUICE_SIM_GROUPS=0).
    let chosen = ["SLUICE_SIM_NODES", "SLUICE_SIM_SEED", "SLUICE_SIM_SEEDS"];
    let bounded = chosen.iter().all(|v| var(v).is_none());
    let rotate = |seed: u64, config: &SimConfig| SimConfig {
        consumer_groups: config.consumer_groups && (!bounded || seed % 2 == 0),
        ..config.clone()
    };
    let mut runs: Vec<(u64, SimConfig)> = seeds(6)
        .into_iter()
        .map(|s| (s, rotate(s, &config)))
        .collect();
    if bounded {
        let five = SimConfig {
            nodes: 5,
            ..config.clone()
        };
        runs.extend((0..2).map(|s| (s, rotate(s, &five))));
        // Its second 5-node seed with split roles.
        runs[7].1.split_roles = true;
    }
    let mut failed = Vec::new();
    for (seed, config) in runs {
        let started = std::time::Instant::now();
        let nodes = config.nodes;
        let what = format!(
            "{}{}",
            if config.split_roles {
                ", split roles"
            } else {
                ""
            },
            if config.consumer_groups {
                ", consumers in a group"
            } else {
                ""
            }
        );
        match run_seed(seed, &config) {
            Ok(o) => eprintln!(
                "seed {seed}: ok, {} acked, {:?} simulated in {:?} on {nodes} nodes{what}\n  {}",
                o.acked,
                o.simulated,
                started.elapsed(),
                o.trace.join("\n  ")
            ),
            Err(e) => {
                let env = format!(
                    "{}{}",
                    if config.split_roles {
                        "SLUICE_SIM_SPLIT=1 "
                    } else {
                        ""
                    },
                    if config.consumer_groups {
                        ""
                    } else {
                        "SLUICE_SIM_GROUPS=0 "
                    }
                );
                eprintln!("{e}\n(replay: {env}SLUICE_SIM_NODES={nodes} SLUICE_SIM_SEED={seed})");
                failed.push((seed, nodes));
            }
        }
    }
    assert!(failed.is_empty(), "failing (seed, nodes): {failed:?}");
}
