//! The exactly-once checker: each word's counts in `output` must be 1, 2,
//! ..., n, and the changelog must end at n.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{PARTITIONS, STEP};

/// Every (word, count) of `topic` in partition order, read from the
/// beginning up to each partition's end (the last stable offset with
/// `read_committed`) by librdkafka.
pub(crate) fn read_counts(
    bootstrap: &str,
    topic: &str,
    read_committed: bool,
) -> Vec<(String, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("streams-eos-check-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("checking consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut per_partition: BTreeMap<i32, Vec<(String, i64)>> = BTreeMap::new();
    let mut at_end = BTreeSet::new();
    let t0 = Instant::now();
    while at_end.len() < PARTITIONS as usize {
        assert!(
            t0.elapsed() < STEP,
            "reading {topic} never reached the end of {at_end:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let word = String::from_utf8(m.key().expect("a key").to_vec()).unwrap();
                let value = m.payload().expect("a value");
                let count = i64::from_be_bytes(
                    value
                        .try_into()
                        .unwrap_or_else(|_| panic!("{topic}: {value:?} is not a long")),
                );
                per_partition
                    .entry(m.partition())
                    .or_default()
                    .push((word, count));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    per_partition.into_values().flatten().collect()
}

/// The exactly-once check: per word, the counts in read order are exactly
/// 1, 2, ..., n with n the word's number of input records. Returns every
/// anomaly found (a repeated or backwards count is a duplicate, a jump a
/// loss, a wrong or missing last count a wrong result).
pub(crate) fn check_counts(
    expected: &BTreeMap<String, u64>,
    seen: &[(String, i64)],
) -> Vec<String> {
    let mut anomalies = Vec::new();
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (word, count) in seen {
        if !expected.contains_key(word) {
            anomalies.push(format!("{word}: not an input word (count {count})"));
            continue;
        }
        let prev = last.get(word.as_str()).copied().unwrap_or(0);
        if *count <= prev {
            anomalies.push(format!(
                "{word}: count {count} after {prev} (a duplicate: the count went {})",
                if *count == prev {
                    "nowhere"
                } else {
                    "backwards"
                }
            ));
        } else if *count != prev + 1 {
            anomalies.push(format!(
                "{word}: count {count} after {prev} (skipped {})",
                count - prev - 1
            ));
        }
        last.insert(word, *count);
    }
    for (word, n) in expected {
        match last.get(word.as_str()) {
            Some(&c) if c == *n as i64 => {}
            Some(&c) => anomalies.push(format!("{word}: last count {c}, expected {n}")),
            None => anomalies.push(format!("{word}: no count at all, expected {n}")),
        }
    }
    anomalies
}

/// The last value per word of the changelog must be the true count.
pub(crate) fn check_changelog(
    expected: &BTreeMap<String, u64>,
    seen: &[(String, i64)],
) -> Vec<String> {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (word, count) in seen {
        last.insert(word, *count);
    }
    expected
        .iter()
        .filter(|(word, n)| last.get(word.as_str()) != Some(&(**n as i64)))
        .map(|(word, n)| {
            format!(
                "changelog {word}: last value {:?}, expected {n}",
                last.get(word.as_str())
            )
        })
        .collect()
}

/// Polls `output` (read_committed) until every word has its true count.

#[test]
fn the_checker_catches_duplicates_losses_and_wrong_totals() {
    let expected: BTreeMap<String, u64> = [("a".to_string(), 3), ("b".to_string(), 2)].into();
    let seq = |s: &[(&str, i64)]| -> Vec<(String, i64)> {
        s.iter().map(|(w, c)| (w.to_string(), *c)).collect()
    };
    let exact = seq(&[("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]);
    assert!(check_counts(&expected, &exact).is_empty());
    // A record counted twice after a restart (what at_least_once allows).
    let twice = seq(&[("a", 1), ("a", 2), ("a", 2), ("a", 3), ("b", 1), ("b", 2)]);
    assert!(check_counts(&expected, &twice)[0].contains("duplicate"));
    // Restored state ahead of the input offsets: the same records counted
    // again on top, so the count ends above the truth.
    let over = seq(&[("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 1), ("b", 2)]);
    assert!(check_counts(&expected, &over)[0].contains("last count 4"));
    let lost = seq(&[("a", 1), ("a", 3), ("b", 1), ("b", 2)]);
    assert!(check_counts(&expected, &lost)[0].contains("skipped 1"));
    let missing = seq(&[("a", 1), ("a", 2), ("a", 3)]);
    assert!(check_counts(&expected, &missing)[0].contains("no count"));
    assert!(!check_changelog(&expected, &seq(&[("a", 3), ("b", 1)])).is_empty());
}
