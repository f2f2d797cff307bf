//! `__transaction_state` as Apache Kafka 4.1 writes it, read with Sluice's
//! codec (`sluice_broker::txn::records`; skipped when the pinned jars are
//! absent): Kafka's transaction coordinator serves a transactional
//! producer (Kafka's own `ProducerPerformance` with a transactional id),
//! then every record in its transaction log must decode, encode back to
//! the very bytes Kafka wrote, and walk the states of committed
//! transactions.

use std::path::Path;

use sluice_broker::txn::{records, TransactionState};
use sluice_record::BatchHeader;
use sluice_testkit::ReferenceKafka;

/// Every (key, value) record in the `.log` files under `dir`.
fn log_records(dir: &Path) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).expect("a whole batch");
            let batch = &bytes[pos..pos + h.size()];
            let reader = sluice_record::reader::records(batch, 1 << 20).unwrap();
            for r in reader.records() {
                let r = r.unwrap();
                out.push((
                    r.key.expect("transaction log records have keys").to_vec(),
                    r.value.map(<[u8]>::to_vec),
                ));
            }
            pos += h.size();
        }
    }
    out
}

#[test]
fn kafkas_transaction_log_decodes_and_encodes_back_byte_for_byte() {
    let Some(kafka) = ReferenceKafka::start().expect("Kafka starts") else {
        eprintln!("SKIPPED: the pinned Kafka jars are absent (tools/kafka/fetch)");
        return;
    };
    let bootstrap = format!("bootstrap.servers={}", kafka.bootstrap());
    let out = kafka
        .run_tool(
            "org.apache.kafka.tools.ProducerPerformance",
            &[
                "--topic",
                "txn",
                "--num-records",
                "300",
                "--record-size",
                "16",
                "--throughput",
                "-1",
                "--producer-props",
                &bootstrap,
                "--transactional-id",
                "tx-1",
                "--transaction-duration-ms",
                "100",
            ],
        )
        .expect("ProducerPerformance runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut states = Vec::new();
    let mut versions = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(kafka.dir().join("logs")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("__transaction_state-") {
            continue;
        }
        for (key, value) in log_records(&dir) {
            assert_eq!(records::decode_key(&key).unwrap(), "tx-1");
            assert_eq!(records::key("tx-1"), key, "the key as Kafka wrote it");
            let value = value.expect("no tombstone this early");
            let version = i16::from_be_bytes([value[0], value[1]]);
            let v = records::decode_value(&value).unwrap_or_else(|e| panic!("{e}: {value:02x?}"));
            assert_eq!(
                records::encode_value(&v, version),
                value,
                "{v:?} encodes back to Kafka's bytes"
            );
            versions.insert(version);
            states.push(v.state);
        }
    }
    println!(
        "versions {versions:?}, {} records: {states:?}",
        states.len()
    );
    for s in [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::CompleteCommit,
    ] {
        assert!(states.contains(&s), "no {s:?} record in {states:?}");
    }
    kafka.stop();
}
