//! What consumer groups have consumed, as their committed offsets say: the
//! throughput page charts the differences between samples as records
//! consumed per second, per group and per topic. Works against any Kafka
//! (ListGroups, FindCoordinator, OffsetFetch); at most [`MAX_GROUPS`]
//! groups are sampled, and the sample says how many were left out.

use std::collections::BTreeMap;

use super::groups;
use super::Session;
use crate::ConsoleError;

/// Groups sampled at most (by id), so a sample stays a bounded number of
/// requests however many groups the cluster has.
pub const MAX_GROUPS: usize = 50;

/// One group's committed offsets on one topic, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Committed {
    /// The sum of the committed offsets.
    pub offsets: i64,
    /// How many partitions have one (a change means the sum jumped).
    pub partitions: usize,
}

/// Committed offsets per group and topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Consumption {
    /// Group -> topic -> its committed offsets there.
    pub groups: BTreeMap<String, BTreeMap<String, Committed>>,
    /// Groups not sampled (beyond [`MAX_GROUPS`]).
    pub left_out: usize,
    /// Groups whose offsets could not be read this time (coordinator moving, ...).
    pub unavailable: usize,
}

/// The committed offsets of the first [`MAX_GROUPS`] groups.
pub fn sample(session: &mut Session) -> Result<Consumption, ConsoleError> {
    let all = groups::list(session)?;
    let mut c = Consumption {
        left_out: all.len().saturating_sub(MAX_GROUPS),
        ..Default::default()
    };
    for g in all.iter().take(MAX_GROUPS) {
        let offsets = groups::coordinator(session, &g.group_id)
            .and_then(|coord| groups::committed(session, coord, &g.group_id));
        match offsets {
            Ok(o) if o.is_empty() => {}
            Ok(o) => {
                c.groups.insert(g.group_id.clone(), per_topic(&o));
            }
            Err(_) => c.unavailable += 1,
        }
    }
    Ok(c)
}

/// Committed offsets summed per topic (pure).
pub fn per_topic(committed: &BTreeMap<(String, i32), i64>) -> BTreeMap<String, Committed> {
    let mut out: BTreeMap<String, Committed> = BTreeMap::new();
    for ((topic, _), &offset) in committed {
        let e = out.entry(topic.clone()).or_default();
        e.offsets = e.offsets.saturating_add(offset);
        e.partitions += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_committed_offsets_per_topic() {
        let committed: BTreeMap<(String, i32), i64> = [
            (("a".into(), 0), 5),
            (("a".into(), 2), 7),
            (("b".into(), 0), 100),
        ]
        .into_iter()
        .collect();
        let got = per_topic(&committed);
        assert_eq!(
            got["a"],
            Committed {
                offsets: 12,
                partitions: 2
            }
        );
        assert_eq!(
            got["b"],
            Committed {
                offsets: 100,
                partitions: 1
            }
        );
    }
}
