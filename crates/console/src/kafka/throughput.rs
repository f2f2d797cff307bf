//! One sample of the cluster's end offsets, summed per topic and per
//! leader broker: the live throughput page's script takes one every few
//! seconds and charts the differences (records produced per second). Only
//! ListOffsets, so it works against any Kafka; nothing is kept here.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::cluster::partitions;
use super::offsets::{self, Led};
use super::Session;
use crate::ConsoleError;

/// End offsets summed per topic and per broker, at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// Milliseconds since the epoch, when the offsets were asked for.
    pub at_ms: i64,
    /// Topic -> the sum of its partitions' end offsets.
    pub topics: BTreeMap<String, i64>,
    /// Broker id -> the sum of the end offsets of the partitions it leads.
    pub brokers: BTreeMap<i32, i64>,
}

/// Samples every topic's end offsets, internal topics included.
pub fn sample(session: &mut Session) -> Result<Sample, ConsoleError> {
    let md = session.metadata(None)?;
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut led: Vec<Led> = Vec::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
            continue;
        };
        if t.error_code != 0 {
            continue;
        }
        led.extend(
            partitions(t)
                .into_iter()
                .filter(|p| p.leader >= 0)
                .map(|p| ((name.clone(), p.partition), p.leader)),
        );
    }
    let ends = offsets::ends(session, &led)?;
    Ok(summarize(at_ms, &led, &ends))
}

/// Sums `ends` per topic and per leader (pure).
pub fn summarize(at_ms: i64, led: &[Led], ends: &BTreeMap<(String, i32), i64>) -> Sample {
    let mut s = Sample {
        at_ms,
        ..Default::default()
    };
    for (tp, leader) in led {
        let Some(&end) = ends.get(tp) else { continue };
        *s.topics.entry(tp.0.clone()).or_default() += end;
        *s.brokers.entry(*leader).or_default() += end;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_topic_and_leader() {
        let led: Vec<Led> = vec![
            (("a".into(), 0), 1),
            (("a".into(), 1), 2),
            (("b".into(), 0), 1),
            (("c".into(), 0), 2),
        ];
        let ends: BTreeMap<(String, i32), i64> = [
            (("a".into(), 0), 5),
            (("a".into(), 1), 7),
            (("b".into(), 0), 100),
        ]
        .into_iter()
        .collect();
        let s = summarize(9, &led, &ends);
        assert_eq!(
            s.topics,
            [("a".into(), 12), ("b".into(), 100)].into_iter().collect()
        );
        assert_eq!(s.brokers, [(1, 105), (2, 7)].into_iter().collect());
    }
}
