//! AlterClientQuotas on a 3-node Sluice cluster with `sluice quotas`: each
//! alteration goes through a different node, so at least two of them
//! forward it to the active controller on another node (the remote
//! controller path over the controller channel, AlterClientQuotas v1 with
//! the committed offset). The node answers only after it published the
//! change, so a describe through it shows the quota at once; the others
//! follow. A refusal is the controller's, with Kafka's words.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sluice_testkit::{ClusterLayout, SluiceCluster};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn quotas(addr: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("quotas")
        .args(args)
        .args(["-b", addr, "--timeout", "60"])
        .output()
        .expect("sluice runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs an alteration through `addr`, retried while the cluster settles.
fn alter(addr: &str, args: &[&str], succeeds: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = quotas(addr, &[&["alter"][..], args].concat());
        if out.status.success() == succeeds && (succeeds || text(&out).contains("InvalidRequest")) {
            return text(&out);
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} through {addr}: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn describe(addr: &str, client: &str) -> String {
    let out = quotas(addr, &["describe", "--client-id", client]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn quota_changes_through_every_node_reach_every_node() {
    let c = SluiceCluster::start(BIN, ClusterLayout::Combined(3), &[]).expect("the cluster starts");
    let addrs: Vec<String> = [1, 2, 3]
        .iter()
        .map(|&id| c.broker_addr(id).to_string())
        .collect();
    for (i, via) in addrs.iter().enumerate() {
        let client = format!("app-{i}");
        let rate = format!("producer_byte_rate={}", 1024 * (i + 1));
        alter(via, &["--client-id", &client, "--add", &rate], true);
        let want = format!(
            "Quota configs for client-id '{client}' are producer_byte_rate={}.0",
            1024 * (i + 1)
        );
        assert_eq!(
            describe(via, &client),
            want,
            "through {via}, right after its answer"
        );
        for other in &addrs {
            let deadline = Instant::now() + Duration::from_secs(60);
            while describe(other, &client) != want {
                assert!(Instant::now() < deadline, "{other} never shows {want}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    for via in &addrs {
        let refused = alter(
            via,
            &["--client-id", "x", "--add", "consumer_byte_rate=1.5"],
            false,
        );
        assert!(
            refused.contains("consumer_byte_rate cannot be a fractional value."),
            "{refused}"
        );
    }
}
