//! `sluice-nemesis`: the process-level part of the fault-testing bed of
//! issue 18. It runs a broker cluster (a 3-node Apache Kafka, or Sluice) in
//! Linux network namespaces that it creates and removes ([`netns`]), drives
//! Jepsen's Kafka workload against it with librdkafka ([`workload`]), injects
//! a seeded schedule of faults ([`fault`]: kill -9 and SIGSTOP/SIGCONT of
//! any node, of a partition leader or of the active controller, clean
//! restarts, partitions (majority/minority, leader or controller isolation,
//! one-way, clients cut off), full disks, reassignments of every partition
//! ([`admin`]), and delay, jitter or held traffic between nodes through an
//! in-repo TCP proxy ([`proxy`])) alternating with healing, and checks the
//! history with `sluice-checker` ([`run`]), then compares the partitions'
//! replicas byte for byte ([`replicas`]).
//!
//! Network faults are nftables rules inside a node's own namespace; nothing
//! touches the host's interfaces or ruleset. Needs root; [`netns::unavailable`]
//! says why not otherwise.

pub mod admin;
pub mod cluster;
mod error;
pub mod fault;
pub mod netns;
pub mod node;
pub mod proxy;
pub mod replicas;
pub mod run;
pub mod transactional;
pub mod workload;

pub use cluster::{Cluster, Safety, System};
pub use error::NemesisError;
pub use fault::FaultKind;
pub use run::{run, RunConfig, RunReport};

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM end a run early but cleanly (heal, check,
/// remove the namespaces) instead of killing the process.
pub fn install_interrupt_handler() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// True after SIGINT or SIGTERM (with [`install_interrupt_handler`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
