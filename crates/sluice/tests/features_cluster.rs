//! UpdateFeatures on a 3-node Sluice cluster with `sluice features`: each
//! change goes through a different node, so at least two of them forward
//! it to the active controller on another node (the remote controller
//! path, UpdateFeatures over the controller channel). Every node answers
//! only after it published the change, so a describe through that node
//! shows the new level at once; the others follow. A refusal is the
//! controller's, with Kafka's words.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn features(addr: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("features")
        .args(args)
        .args(["-b", addr, "--timeout", "60"])
        .output()
        .expect("sluice runs")
}

/// The finalized transaction.version `sluice features describe` shows
/// through `addr`.
fn level(addr: &str) -> String {
    let out = features(addr, &["describe"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with("Feature: transaction.version\t"))
        .and_then(|l| l.split("FinalizedVersionLevel: ").nth(1))
        .and_then(|rest| rest.split('\t').next())
        .unwrap_or_else(|| panic!("no transaction.version through {addr}: {text}"))
        .to_string()
}

/// Runs a change through `addr` (retried while the cluster settles);
/// its stdout.
fn change(addr: &str, args: &[&str], succeeds: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = features(addr, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() == succeeds && !stdout.is_empty() {
            return stdout;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} through {addr}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn feature_changes_through_every_node_reach_every_node() {
    let c = SluiceCluster::start(BIN, ClusterLayout::Combined(3), &[]).expect("the cluster starts");
    let addrs: Vec<String> = [1, 2, 3]
        .iter()
        .map(|&id| c.broker_addr(id).to_string())
        .collect();
    let steps = [
        (
            "downgrade",
            "0",
            "transaction.version was downgraded to 0.\n",
        ),
        ("upgrade", "1", "transaction.version was upgraded to 1.\n"),
        ("upgrade", "2", "transaction.version was upgraded to 2.\n"),
    ];
    for (via, (verb, to, said)) in addrs.iter().zip(steps) {
        let feature = format!("transaction.version={to}");
        assert_eq!(change(via, &[verb, "--feature", &feature], true), said);
        assert_eq!(level(via), to, "through {via}, right after its answer");
        for other in &addrs {
            let deadline = Instant::now() + Duration::from_secs(60);
            while level(other) != to {
                assert!(Instant::now() < deadline, "{other} never shows {to}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    for via in &addrs {
        let refused = change(
            via,
            &["downgrade", "--feature", "transaction.version=3"],
            false,
        );
        assert!(
            refused.contains("Can't downgrade to a newer version.")
                || refused.contains("only supports versions 0-2"),
            "{refused}"
        );
    }
}
