//! Kafka's `kafka-features` tool (FeatureCommand from the pinned 4.1.2
//! jars) against Sluice and against Apache Kafka 4.1.2, one script, the
//! transcripts compared: `describe`; a safe downgrade of
//! `transaction.version` to 0 (the state of a cluster bootstrapped before
//! transaction version 2, which has no record of the feature); refused
//! upgrades (a level no node supports, an unknown feature, a lower level
//! without a downgrade type, a metadata.version downgrade that might lose
//! metadata); the upgrade to 2 that moves an existing cluster to
//! transaction version 2.
//!
//! Between the steps the Java client's transactional producer
//! (`clients/java/TxnDriver.java`, 12 transactions) shows which version it
//! negotiated: at level 0 its epoch stays where InitProducerId left it
//! (transaction version 1), after the upgrade every end bumps it (EndTxn
//! v5): the upgrade reached ApiVersions' finalized features and the
//! transaction coordinator.
//!
//! Kafka's transcript is recorded in `tests/fixtures/features_cli.txt`;
//! Kafka runs the script again (and `sluice features` is checked against
//! it) in the full suite: see `common::transcript`.
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::process::Command;

use sluice_testkit::ReferenceKafka;

/// One FeatureCommand run as a transcript entry: the command, its stdout
/// (describe: only the features both brokers have, epochs elided) and
/// its exit status.
fn features(bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) =
        common::kafka_tool_output("org.apache.kafka.tools.FeatureCommand", &all);
    let shown: Vec<String> = stdout
        .lines()
        .filter(|l| {
            !l.starts_with("Feature: ")
                || l.starts_with("Feature: metadata.version\t")
                || l.starts_with("Feature: transaction.version\t")
        })
        .map(|l| match l.split_once("\tEpoch: ") {
            Some((head, _)) => format!("{head}\tEpoch: _"),
            None => l.to_string(),
        })
        .collect();
    let entry = format!("$ {}\n{}\nok={ok}\n", args.join(" "), shown.join("\n"));
    println!("{bootstrap}: {entry}");
    if !ok && !stderr.contains("operation(s) failed") {
        println!("stderr: {stderr}");
    }
    entry
}

/// The same entry from `sluice features` (which works against any
/// Kafka-compatible cluster): it must read as Kafka's tool's.
fn sluice_features(bootstrap: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("features")
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .output()
        .expect("sluice runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<String> = stdout
        .lines()
        .filter(|l| {
            !l.starts_with("Feature: ")
                || l.starts_with("Feature: metadata.version\t")
                || l.starts_with("Feature: transaction.version\t")
        })
        .map(|l| match l.split_once("\tEpoch: ") {
            Some((head, _)) => format!("{head}\tEpoch: _"),
            None => l.to_string(),
        })
        .collect();
    format!(
        "$ {}\n{}\nok={}\n",
        args.join(" "),
        shown.join("\n"),
        out.status.success()
    )
}

/// The producer epoch after the Java driver's 12 transactions.
fn driver_epoch(bootstrap: &str, topic: &str, txn_id: &str) -> i32 {
    let out = Command::new(common::root().join("clients/java/txn.sh"))
        .args([
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--txn-id",
            txn_id,
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
    text.lines()
        .find_map(|l| l.strip_prefix("producer epoch after 12 transactions: "))
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or_else(|| panic!("no producer epoch printed:\n{text}"))
}

/// The script; returns its transcript.
fn script(bootstrap: &str) -> String {
    let mut t = String::new();
    t += &features(bootstrap, &["describe"]);
    t += &features(
        bootstrap,
        &["downgrade", "--feature", "transaction.version=0"],
    );
    t += &features(bootstrap, &["describe"]);
    let v1 = driver_epoch(bootstrap, "features-v1", "features-v1");
    assert!(v1 < 12, "{bootstrap}: epoch {v1} at transaction.version 0");
    t += &features(
        bootstrap,
        &["upgrade", "--feature", "transaction.version=3"],
    );
    t += &features(bootstrap, &["upgrade", "--feature", "no.such.feature=1"]);
    t += &features(
        bootstrap,
        &["upgrade", "--feature", "transaction.version=2", "--dry-run"],
    );
    t += &features(bootstrap, &["describe"]);
    t += &features(
        bootstrap,
        &["upgrade", "--feature", "transaction.version=2"],
    );
    t += &features(
        bootstrap,
        &["upgrade", "--feature", "transaction.version=1"],
    );
    t += &features(bootstrap, &["downgrade", "--metadata", "3.3"]);
    t += &features(bootstrap, &["describe"]);
    // `sluice features` says what Kafka's tool says, on either broker.
    for args in [
        &["describe"][..],
        &["upgrade", "--feature", "transaction.version=1"],
        &["upgrade", "--feature", "transaction.version=2", "--dry-run"],
        &["downgrade", "--metadata", "3.3"],
    ] {
        let kafkas = features(bootstrap, args).replace(
            " `metadata` flag is deprecated and may be removed in a future release.\n",
            "",
        );
        let ours = sluice_features(bootstrap, args);
        assert_eq!(ours, kafkas, "sluice features {args:?} against {bootstrap}");
    }
    let v2 = driver_epoch(bootstrap, "features-v2", "features-v2");
    assert!(v2 >= 12, "{bootstrap}: epoch {v2} after the upgrade");
    println!("{bootstrap}: driver epochs {v1} at level 0, {v2} at level 2");
    t
}

#[test]
fn kafka_features_moves_sluice_and_kafka_to_transaction_version_2_alike() {
    if !common::kafka_tools_ready("kafka-features") {
        return;
    }
    let sluice = common::start(&[]);
    let on_sluice = script(sluice.bootstrap());
    drop(sluice);
    common::transcript::same_as_kafka("features_cli", &on_sluice, || {
        let kafka = ReferenceKafka::start()
            .expect("Kafka starts")
            .expect("the jars are here (checked above)");
        script(&kafka.bootstrap())
    });
}
