//! Transactions through the Java client (`clients/java/TxnDriver.java`),
//! against the real `sluice` binary and, for parity, the pinned Apache
//! Kafka: committed and aborted transactions with offsets sent to a
//! group, a zombie fenced by a second instance, `read_committed` and
//! `read_uncommitted` consumers, the group's transactional offset,
//! DescribeTransactions and ListTransactions. Then a kill -9 and restart
//! of Sluice, after which a read_committed consumer still reads exactly
//! the committed records. Skipped without `java`/the pinned jars unless
//! SLUICE_REQUIRE_CLIENTS is set. Both brokers finalize transaction
//! version 2 (KIP-890), so the client bumps its epoch at every end
//! (EndTxn v5), lets the leaders add partitions (Produce v12) and commits
//! offsets without AddOffsetsToTxn (TxnOffsetCommit v5).

use std::path::PathBuf;
use std::process::Command;

use sluice_testkit::{ReferenceKafka, SluiceProcess};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ready() -> bool {
    let jars = root().join(".cache/kafka/lib/.complete").exists();
    let java = Command::new("javac").arg("-version").output().is_ok();
    if jars && java {
        return true;
    }
    assert!(
        std::env::var_os("SLUICE_REQUIRE_CLIENTS").is_none(),
        "java or the pinned Kafka jars missing and SLUICE_REQUIRE_CLIENTS is set"
    );
    eprintln!("SKIPPED: java or the pinned Kafka jars missing (scripts/setup)");
    false
}

/// Runs the driver; panics with its output unless it printed OK.
fn drive(bootstrap: &str, topic: &str) {
    let out = Command::new(root().join("clients/java/txn.sh"))
        .args([
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--txn-id",
            "txn-java",
        ])
        .output()
        .expect("the driver runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("OK java-txn"),
        "driver against {bootstrap} failed:\n{text}"
    );
    // Transaction version 2 (KIP-890 part 2) is finalized on both brokers,
    // so the 4.1.2 client uses it: each of the 12 ends bumped the epoch
    // (with version 1 it would still be where InitProducerId left it).
    let epoch: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("producer epoch after 12 transactions: "))
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or_else(|| panic!("no producer epoch printed:\n{text}"));
    println!("{bootstrap}: producer epoch {epoch} after 12 transactions");
    assert!(
        epoch >= 12,
        "epoch {epoch} after 12 transactions: not transaction version 2\n{text}"
    );
}

/// `sluice transactions list` and `describe` see the driver's id after
/// its last (committed) transaction.
fn cli_sees_the_id(bootstrap: &str) {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["-b", bootstrap])
            .output()
            .expect("sluice runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let listed = run(&["transactions", "list"]);
    assert!(listed.contains("txn-java"), "{listed}");
    let described = run(&["transactions", "describe", "txn-java"]);
    assert!(described.contains("CompleteCommit"), "{described}");
}

#[test]
fn java_transactions_against_sluice() {
    if !ready() {
        return;
    }
    let mut sluice =
        SluiceProcess::start(env!("CARGO_BIN_EXE_sluice"), &[]).expect("sluice starts");
    drive(sluice.bootstrap(), "txn-java");
    sluice.restart().expect("restarts after kill -9");
    // The same transactional id on a topic of its own after the restart:
    // the coordinator reloaded __transaction_state and fences, commits
    // and aborts as before.
    drive(sluice.bootstrap(), "txn-java-after-restart");
    cli_sees_the_id(sluice.bootstrap());
}

#[test]
fn java_transactions_against_reference_kafka() {
    if !ready() {
        return;
    }
    let Some(kafka) = ReferenceKafka::start().expect("Kafka starts") else {
        return;
    };
    drive(&kafka.bootstrap(), "txn-java");
    cli_sees_the_id(&kafka.bootstrap());
}
