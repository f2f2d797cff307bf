//! One sample of what the cluster has taken in and given out, for the live
//! throughput page: its script takes one every few seconds and charts the
//! differences. Nothing is kept here.
//!
//! - Records in: end offsets (ListOffsets), summed per topic and per
//!   leader broker. Works against any Kafka.
//! - Bytes in: a Sluice broker's own counters ([`super::broker_metrics`])
//!   when every broker leading partitions serves them; otherwise an
//!   estimate from the growth of the leaders' log sizes (DescribeLogDirs),
//!   which retention and compaction make read low. The sample says which.
//! - Consumption: consumer groups' committed offsets
//!   ([`super::consumption`]); bytes consumed are estimated in the page as
//!   records times the topic's mean record size on disk (`record_bytes`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::DescribeLogDirsRequest;

use super::broker_metrics::{self, Endpoint, METRICS_LISTENER};
use super::cluster::partitions;
use super::consumption::{self, Consumption};
use super::offsets::{self, Led};
use super::Session;
use crate::ConsoleError;

const DESCRIBE_LOG_DIRS_VERSIONS: (i16, i16) = (1, 4);

/// Where a sample's bytes in come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BytesSource {
    /// Each Sluice broker's `sluice_topic_bytes_in_total`.
    BrokerMetrics,
    /// The leaders' log sizes (an estimate).
    #[default]
    LogSize,
}

/// Cumulative bytes in, per topic and per broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BytesIn {
    pub source: BytesSource,
    pub topics: BTreeMap<String, i64>,
    pub brokers: BTreeMap<i32, i64>,
    /// Why the broker counters were not used, when a broker looked like Sluice.
    pub note: Option<String>,
}

/// Everything one sample holds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Milliseconds since the epoch, when the offsets were asked for.
    pub at_ms: i64,
    /// Topic -> the sum of its partitions' end offsets.
    pub topics: BTreeMap<String, i64>,
    /// Broker id -> the sum of the end offsets of the partitions it leads.
    pub brokers: BTreeMap<i32, i64>,
    /// Broker id -> how many partitions it leads (a change means its sums jumped).
    pub led: BTreeMap<i32, usize>,
    pub bytes_in: BytesIn,
    /// Topic -> its leaders' bytes on disk per record held (mean record size).
    pub record_bytes: BTreeMap<String, f64>,
    pub consumption: Consumption,
    /// Why consumption could not be sampled, if it could not.
    pub consumption_error: Option<String>,
}

/// Samples every topic (internal ones included) and the groups' offsets.
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
    let hosts: BTreeMap<i32, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string()))
        .collect();
    let cluster_id = md
        .cluster_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let ranges = offsets::ranges(session, &led)?;
    let ends = ranges.iter().map(|(k, r)| (k.clone(), r.end)).collect();
    let mut s = summarize(at_ms, &led, &ends);
    // Sizes are best effort: a cluster may refuse DescribeLogDirs (ACLs).
    let sizes = leader_sizes(session, &led).unwrap_or_default();
    for (topic, (bytes, records)) in sum_per_topic(&sizes, &ranges) {
        if records > 0 {
            s.record_bytes.insert(topic, bytes as f64 / records as f64);
        }
    }
    s.bytes_in = match metrics_bytes_in(session, &led, &hosts, &cluster_id) {
        Ok(Some(b)) => b,
        Ok(None) => log_size_bytes_in(&led, &sizes, None),
        Err(e) => log_size_bytes_in(&led, &sizes, Some(e.to_string())),
    };
    match consumption::sample(session) {
        Ok(c) => s.consumption = c,
        Err(e) => s.consumption_error = Some(e.to_string()),
    }
    Ok(s)
}

/// Bytes in from every leader's own counters: `None` when the brokers
/// are not Sluice (no `sluice.metrics.listener`), an error when one is
/// but its counters cannot be read.
fn metrics_bytes_in(
    session: &mut Session,
    led: &[Led],
    hosts: &BTreeMap<i32, String>,
    cluster_id: &str,
) -> Result<Option<BytesIn>, ConsoleError> {
    let leaders: std::collections::BTreeSet<i32> = led.iter().map(|(_, l)| *l).collect();
    let mut b = BytesIn {
        source: BytesSource::BrokerMetrics,
        ..Default::default()
    };
    for id in leaders {
        let host = hosts.get(&id).map_or("127.0.0.1", String::as_str);
        let addr = match broker_metrics::endpoint(session, id, host)? {
            Endpoint::At(a) => a,
            Endpoint::NotSluice => return Ok(None),
            Endpoint::Unknown(v) => {
                return Err(ConsoleError::Metrics {
                    broker: id.to_string(),
                    error: format!("{METRICS_LISTENER}={v:?} names no port to read"),
                })
            }
        };
        let counters = broker_metrics::bytes_in(&addr, cluster_id, id)?;
        for (topic, n) in counters {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            *b.brokers.entry(id).or_default() += n;
            *b.topics.entry(topic).or_default() += n;
        }
    }
    Ok(Some(b))
}

/// Bytes in estimated as the leaders' log sizes (pure).
pub fn log_size_bytes_in(
    led: &[Led],
    sizes: &BTreeMap<(String, i32), i64>,
    note: Option<String>,
) -> BytesIn {
    let mut b = BytesIn {
        source: BytesSource::LogSize,
        note,
        ..Default::default()
    };
    for (tp, leader) in led {
        let Some(&size) = sizes.get(tp) else { continue };
        *b.topics.entry(tp.0.clone()).or_default() += size;
        *b.brokers.entry(*leader).or_default() += size;
    }
    b
}

/// Per topic: the leaders' bytes and the records they hold, over the
/// partitions with both (pure).
fn sum_per_topic(
    sizes: &BTreeMap<(String, i32), i64>,
    ranges: &BTreeMap<(String, i32), super::model::OffsetRange>,
) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (tp, r) in ranges {
        if let Some(&size) = sizes.get(tp) {
            let e = out.entry(tp.0.clone()).or_default();
            e.0 = e.0.saturating_add(size);
            e.1 = e.1.saturating_add(r.messages());
        }
    }
    out
}

/// Bytes on disk of each partition's leader replica: one DescribeLogDirs
/// of every topic on each leader.
fn leader_sizes(
    session: &mut Session,
    led: &[Led],
) -> Result<BTreeMap<(String, i32), i64>, ConsoleError> {
    let leader_of: BTreeMap<(&str, i32), i32> = led
        .iter()
        .map(|((t, p), l)| ((t.as_str(), *p), *l))
        .collect();
    let leaders: std::collections::BTreeSet<i32> = led.iter().map(|(_, l)| *l).collect();
    let mut out = BTreeMap::new();
    for id in leaders {
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let (_, resp) = session.send_to(id, &req, DESCRIBE_LOG_DIRS_VERSIONS)?;
        for dir in resp.results.iter().filter(|d| d.error_code == 0) {
            for t in &dir.topics {
                for p in t.partitions.iter().filter(|p| !p.is_future_key) {
                    if leader_of.get(&(t.name.as_str(), p.partition_index)) == Some(&id) {
                        *out.entry((t.name.to_string(), p.partition_index))
                            .or_insert(0) += p.partition_size.max(0);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Sums `ends` per topic and per leader, and counts each leader's
/// partitions (pure).
pub fn summarize(at_ms: i64, led: &[Led], ends: &BTreeMap<(String, i32), i64>) -> Sample {
    let mut s = Sample {
        at_ms,
        ..Default::default()
    };
    for (tp, leader) in led {
        *s.led.entry(*leader).or_default() += 1;
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
        assert_eq!(s.led, [(1, 2), (2, 2)].into_iter().collect());
        let sizes: BTreeMap<(String, i32), i64> = [
            (("a".into(), 0), 50),
            (("a".into(), 1), 70),
            (("b".into(), 0), 9),
        ]
        .into_iter()
        .collect();
        let b = log_size_bytes_in(&led, &sizes, None);
        assert_eq!(b.source, BytesSource::LogSize);
        assert_eq!(
            b.topics,
            [("a".into(), 120), ("b".into(), 9)].into_iter().collect()
        );
        assert_eq!(b.brokers, [(1, 59), (2, 70)].into_iter().collect());
    }
}
