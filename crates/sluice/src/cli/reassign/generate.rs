//! `sluice reassign generate`: a proposed assignment of whole topics over
//! a list of brokers, as `kafka-reassign-partitions --generate` proposes
//! one: each topic keeps its partition count and replication factor, and
//! its replicas are placed as a new topic's would be (the broker's own
//! striped, rack-aware placement: leaders round-robin, replicas of a
//! partition on distinct racks when there are enough). Nothing changes on
//! the cluster: the output is the current assignment (to roll back with)
//! and the proposal, both in Kafka's JSON, for `execute`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use sluice_metadata::placement::{ReplicaPlacer, UsableBroker};
use sluice_metadata::BrokerId;

use super::plan::Targets;
use super::Brokers;

/// The brokers to place on: those of `list` the cluster has (Kafka's tool
/// leaves the others out), with their racks unless `rack_aware` is off.
/// Some brokers with a rack and some without is refused, as Kafka refuses it.
pub fn usable(
    list: &[i32],
    cluster: &Brokers,
    rack_aware: bool,
) -> anyhow::Result<Vec<UsableBroker>> {
    let distinct: BTreeSet<i32> = list.iter().copied().collect();
    if distinct.len() != list.len() {
        bail!("the broker list {list:?} names a broker twice");
    }
    let out: Vec<UsableBroker> = distinct
        .iter()
        .filter_map(|id| cluster.get(id).map(|b| (id, b)))
        .map(|(id, b)| UsableBroker {
            id: BrokerId(*id),
            rack: b.rack.clone().filter(|_| rack_aware),
        })
        .collect();
    let rackless = out.iter().filter(|b| b.rack.is_none()).count();
    if rackless != 0 && rackless != out.len() {
        bail!(
            "not all brokers have rack information; add --disable-rack-aware \
             to place replicas without racks"
        );
    }
    Ok(out)
}

/// Proposes where the partitions of `current` (whole topics) go. Topics
/// take turns at the placement's start so their leaders spread too.
pub fn propose(current: &Targets, brokers: &[UsableBroker]) -> anyhow::Result<Targets> {
    let placer = ReplicaPlacer::new(brokers);
    let mut by_topic: BTreeMap<&str, Vec<(i32, usize)>> = BTreeMap::new();
    for ((t, p), r) in current {
        by_topic.entry(t).or_default().push((*p, r.len()));
    }
    let mut out = Targets::new();
    let mut start = 0u64;
    for (topic, parts) in by_topic {
        let rf = parts.first().map_or(0, |p| p.1);
        let rf = i16::try_from(rf).context("replication factor")?;
        let count = i32::try_from(parts.len()).context("partition count")?;
        let placed = placer
            .place(start, count, rf)
            .with_context(|| format!("placing topic {topic}"))?;
        for ((p, _), replicas) in parts.iter().zip(placed) {
            out.insert(
                (topic.to_string(), *p),
                replicas.into_iter().map(|b| b.0).collect(),
            );
        }
        start += parts.len() as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Broker;
    use super::*;

    fn cluster(spec: &[(i32, Option<&str>)]) -> Brokers {
        spec.iter()
            .map(|&(id, rack)| {
                (
                    id,
                    Broker {
                        addr: format!("127.0.0.1:{}", 9000 + id),
                        rack: rack.map(str::to_owned),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn brokers_not_in_the_cluster_are_left_out_and_racks_must_be_all_or_none() {
        let c = cluster(&[(1, Some("a")), (2, Some("b")), (3, None)]);
        let got = usable(&[1, 2, 9], &c, true).unwrap();
        assert_eq!(got.iter().map(|b| b.id.0).collect::<Vec<_>>(), [1, 2]);
        let e = usable(&[1, 2, 3], &c, true).unwrap_err().to_string();
        assert!(e.contains("--disable-rack-aware"), "{e}");
        let got = usable(&[1, 2, 3], &c, false).unwrap();
        assert!(got.iter().all(|b| b.rack.is_none()));
        assert!(usable(&[1, 1], &c, false).is_err());
    }

    #[test]
    fn a_proposal_keeps_counts_and_factors_and_uses_only_the_listed_brokers() {
        let key = |t: &str, p| (t.to_string(), p);
        let current = Targets::from([
            (key("a", 0), vec![1, 2]),
            (key("a", 1), vec![2, 3]),
            (key("a", 2), vec![3, 1]),
            (key("b", 0), vec![1, 2, 3]),
        ]);
        let c = cluster(&[(2, None), (3, None), (4, None)]);
        let brokers = usable(&[2, 3, 4], &c, true).unwrap();
        let got = propose(&current, &brokers).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            current.keys().collect::<Vec<_>>()
        );
        for (k, r) in &got {
            assert_eq!(r.len(), current[k].len(), "{k:?}");
            let distinct: BTreeSet<_> = r.iter().collect();
            assert_eq!(distinct.len(), r.len(), "{k:?}: {r:?}");
            assert!(r.iter().all(|b| [2, 3, 4].contains(b)), "{k:?}: {r:?}");
        }
        // Leaders round-robin within a topic, and the next topic goes on.
        let leaders: Vec<i32> = got.values().map(|r| r[0]).collect();
        assert_eq!(leaders, [2, 3, 4, 2]);
        // A factor larger than the broker list cannot be placed.
        let two = usable(&[2, 3], &c, true).unwrap();
        let e = format!("{:#}", propose(&current, &two).unwrap_err());
        assert!(e.contains("placing topic b"), "{e}");
    }
}
