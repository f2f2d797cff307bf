//! Shared start of the loopback (no namespaces) workload tests: one
//! Sluice on a fixed port, so clients reconnect to it across restarts,
//! with the workload's topic created before any client needs it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use sluice_nemesis::workload::{PARTITIONS, TOPIC};
use sluice_testkit::metadata::fetch_metadata;
use sluice_testkit::{locate_sluice_binary, SluiceProcess};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-node Sluice with `extra` settings and the workload's topic;
/// its bootstrap address.
pub fn start_sluice(extra: &[(&str, &str)]) -> (SluiceProcess, String) {
    let binary = locate_sluice_binary().expect("the sluice binary (cargo build -p sluice)");
    let listener = format!("PLAINTEXT://127.0.0.1:{}", free_port());
    let partitions = PARTITIONS.to_string();
    let mut settings = vec![
        ("listeners", listener.as_str()),
        ("num.partitions", partitions.as_str()),
        ("group.initial.rebalance.delay.ms", "0"),
    ];
    settings.extend_from_slice(extra);
    let sluice = SluiceProcess::start(&binary, &settings).expect("start sluice");
    let bootstrap = sluice.bootstrap().to_string();
    // Auto-create the topic before any client needs it.
    let addr = bootstrap.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fetch_metadata(addr, Some(&[TOPIC])).is_ok_and(|md| {
        md.topics
            .iter()
            .any(|t| t.partitions.len() == PARTITIONS as usize)
    }) {
        assert!(Instant::now() < deadline, "topic {TOPIC} not created");
        thread::sleep(Duration::from_millis(100));
    }
    (sluice, bootstrap)
}
