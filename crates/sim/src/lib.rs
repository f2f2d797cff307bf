//! Deterministic simulation of a whole Sluice cluster (issue 18): the
//! real controller quorum, brokers, replica fetchers and purgatories, not
//! a model of them, on turmoil's simulated network and clock, with every
//! node's storage on a simulated disk that loses unsynced bytes when the
//! node crashes. One seed decides the whole run: the network's delays and
//! losses, the fault schedule, openraft's election timeouts and every id
//! the nodes draw (`sluice_runtime`, which also runs their blocking work
//! inline), so a failing seed replays the same schedule.
//!
//! - [`net`]: turmoil's TCP behind the nodes' socket seams;
//! - [`node`]: one node (combined, or one role of a split layout), wired
//!   as `sluice serve` wires it;
//! - [`client`], [`workload`]: idempotent `acks=all` producers and a
//!   reader, recorded as a `sluice_checker` history, and an admin task
//!   that sends the schedule's reassignments;
//! - [`group`]: consumers in a group (KIP-848) that commit offsets and
//!   resume from them;
//! - [`invariants`]: what is checked while the run goes on;
//! - [`run`]: one seed's fault schedule (network, crashes, clocks; stalls
//!   and full disks; reassignments; failing fsyncs and writes; slow and
//!   stalled disks: five streams) and verdict;
//! - `slow_disk`: the fifth stream, and the trial after healing that
//!   checks no broker whose heartbeats arrive loses its session.
//!
//! `tests/cluster_sim.rs` runs a bounded number of seeds in CI;
//! `scripts/sim` runs thousands and lists the failing seeds.

pub mod client;
mod faults;
pub mod group;
pub mod invariants;
pub mod net;
pub mod node;
pub mod run;
mod slow_disk;
pub mod workload;

pub use run::{run_seed, Outcome, SimConfig};
