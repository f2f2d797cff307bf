//! Replica placement for CreateTopics and CreatePartitions, with the
//! semantics of Kafka's `StripedReplicaPlacer`: only usable brokers
//! (registered, unfenced, not in controlled shutdown) get replicas;
//! leaders go round-robin over the brokers so leader counts differ by at
//! most one; a partition's replicas are on distinct racks whenever there
//! are at least as many racks as replicas, and never twice on one broker.
//!
//! The brokers are laid out rack-alternated (the first broker of each
//! rack, then the second of each, ...), racks sorted by name and brokers by
//! id. Partition `g` (counted from the caller's start index) is led by
//! broker `g mod n` of that list; its followers are picked scanning forward
//! from there, skipping racks already used while unused racks remain, with
//! the scan's start shifted once per full round so followers spread too.
//! Everything is determined by the broker set and the start index (Kafka
//! picks a random one; a controller stores its choice in the records, so
//! replay never re-runs placement). A broker without `broker.rack` is a
//! rack of its own.

use std::collections::BTreeMap;

use crate::error::MetadataError;
use crate::image::MetadataImage;
use crate::types::BrokerId;

/// A broker replicas may be placed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsableBroker {
    pub id: BrokerId,
    pub rack: Option<String>,
}

/// The brokers of `image` that may get new replicas, by id.
pub fn usable_brokers(image: &MetadataImage) -> Vec<UsableBroker> {
    image
        .brokers()
        .values()
        .filter(|b| b.is_usable())
        .map(|b| UsableBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rack {
    Named(String),
    Alone(BrokerId),
}

/// Places replicas over one set of usable brokers.
#[derive(Clone, Debug)]
pub struct ReplicaPlacer {
    /// Rack-alternated broker order, with each broker's rack index.
    order: Vec<(BrokerId, usize)>,
    racks: usize,
}

impl ReplicaPlacer {
    /// Duplicate broker ids count once (the first rack given wins).
    pub fn new(brokers: &[UsableBroker]) -> Self {
        let mut by_id: BTreeMap<BrokerId, Rack> = BTreeMap::new();
        for b in brokers {
            let rack = b.rack.clone().map_or(Rack::Alone(b.id), Rack::Named);
            by_id.entry(b.id).or_insert(rack);
        }
        let mut racks: BTreeMap<Rack, Vec<BrokerId>> = BTreeMap::new();
        for (id, rack) in by_id {
            racks.entry(rack).or_default().push(id); // ids come sorted
        }
        let racks: Vec<Vec<BrokerId>> = racks.into_values().collect();
        let deepest = racks.iter().map(Vec::len).max().unwrap_or(0);
        let mut order = Vec::new();
        for round in 0..deepest {
            for (r, members) in racks.iter().enumerate() {
                if let Some(&id) = members.get(round) {
                    order.push((id, r));
                }
            }
        }
        ReplicaPlacer {
            order,
            racks: racks.len(),
        }
    }

    pub fn broker_count(&self) -> usize {
        self.order.len()
    }

    pub fn rack_count(&self) -> usize {
        self.racks
    }

    /// Replica lists (leader first) of `partitions` new partitions with
    /// `replication_factor` replicas each, the first counted as partition
    /// `start` of the rotation.
    pub fn place(
        &self,
        start: u64,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<BrokerId>>, MetadataError> {
        let n = self.order.len();
        if replication_factor <= 0 || replication_factor as usize > n {
            return Err(MetadataError::InvalidReplicationFactor {
                requested: i32::from(replication_factor),
                available: n,
            });
        }
        if partitions <= 0 {
            return Err(MetadataError::InvalidPartitionCount(partitions));
        }
        let rf = replication_factor as usize;
        let n64 = n as u64;
        let mut out = Vec::with_capacity(partitions as usize);
        let mut used_rack = vec![false; self.racks];
        let mut chosen = vec![false; n];
        for i in 0..partitions as u64 {
            let g = start.wrapping_add(i);
            let leader = (g % n64) as usize;
            let shift = if n > 1 {
                ((g / n64) % (n64 - 1)) as usize
            } else {
                0
            };
            used_rack.iter_mut().for_each(|u| *u = false);
            chosen.iter_mut().for_each(|c| *c = false);
            let mut replicas = Vec::with_capacity(rf);
            let mut pos = leader;
            let first = leader + 1 + shift;
            loop {
                let (id, rack) = self.order[pos];
                chosen[pos] = true;
                used_rack[rack] = true;
                replicas.push(id);
                if replicas.len() == rf {
                    break;
                }
                let all_racks_used = used_rack.iter().all(|&u| u);
                // rf <= n leaves an unchosen broker, on an unused rack if
                // any rack is unused, so the scan always finds one.
                let next = (0..n)
                    .map(|j| (first + j) % n)
                    .find(|&p| !chosen[p] && (all_racks_used || !used_rack[self.order[p].1]));
                let Some(next) = next else {
                    return Err(MetadataError::InvalidReplicationFactor {
                        requested: i32::from(replication_factor),
                        available: n,
                    });
                };
                pos = next;
            }
            out.push(replicas);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    fn brokers(spec: &[(i32, Option<&str>)]) -> Vec<UsableBroker> {
        spec.iter()
            .map(|&(id, rack)| UsableBroker {
                id: BrokerId(id),
                rack: rack.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn three_racks_of_two_spread_every_partition_over_all_racks() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let rack: HashMap<_, _> = b.iter().map(|b| (b.id, b.rack.clone())).collect();
        let placer = ReplicaPlacer::new(&b);
        let placed = placer.place(0, 12, 3).unwrap();
        for replicas in &placed {
            let racks: BTreeSet<_> = replicas.iter().map(|id| &rack[id]).collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
        // Rack-alternated order: 1 (a), 3 (b), 5 (c), 2 (a), 4 (b), 6 (c).
        let leaders: Vec<i32> = placed.iter().map(|r| r[0].0).collect();
        assert_eq!(leaders, [1, 3, 5, 2, 4, 6, 1, 3, 5, 2, 4, 6]);
        assert_eq!(placed[0], [BrokerId(1), BrokerId(3), BrokerId(5)]);
    }

    #[test]
    fn too_few_brokers_is_an_invalid_replication_factor() {
        let placer = ReplicaPlacer::new(&brokers(&[(1, None), (2, None)]));
        assert_eq!(
            placer.place(0, 1, 3),
            Err(MetadataError::InvalidReplicationFactor {
                requested: 3,
                available: 2
            })
        );
        assert!(placer.place(0, 1, 0).is_err());
        assert!(placer.place(0, 0, 1).is_err());
        let none = ReplicaPlacer::new(&[]);
        assert!(matches!(
            none.place(0, 1, 1),
            Err(MetadataError::InvalidReplicationFactor { available: 0, .. })
        ));
    }

    fn broker_set() -> impl Strategy<Value = Vec<UsableBroker>> {
        proptest::collection::btree_map(0..40i32, proptest::option::weighted(0.8, 0..5u8), 1..12)
            .prop_map(|m| {
                m.into_iter()
                    .map(|(id, rack)| UsableBroker {
                        id: BrokerId(id),
                        rack: rack.map(|r| format!("rack-{r}")),
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn placements_keep_kafkas_promises(
            b in broker_set(),
            rf_pick in any::<prop::sample::Index>(),
            partitions in 1..60i32,
            start in any::<u64>(),
        ) {
            let placer = ReplicaPlacer::new(&b);
            let rf = rf_pick.index(b.len()) as i16 + 1;
            let placed = placer.place(start, partitions, rf).unwrap();
            prop_assert_eq!(&placed, &placer.place(start, partitions, rf).unwrap());
            prop_assert_eq!(placed.len(), partitions as usize);
            let rack: HashMap<_, _> = b.iter().map(|b| (b.id, b.rack.clone().ok_or(b.id))).collect();
            let mut leaders: HashMap<BrokerId, usize> = b.iter().map(|b| (b.id, 0)).collect();
            for replicas in &placed {
                prop_assert_eq!(replicas.len(), rf as usize);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(distinct.len(), replicas.len(), "duplicate broker in {:?}", replicas);
                let racks: BTreeSet<_> = replicas.iter().map(|id| &rack[id]).collect();
                if placer.rack_count() >= rf as usize {
                    prop_assert_eq!(racks.len(), replicas.len(), "racks repeat in {:?}", replicas);
                }
                *leaders.get_mut(&replicas[0]).unwrap() += 1;
            }
            let most = leaders.values().max().unwrap();
            let least = leaders.values().min().unwrap();
            prop_assert!(most - least <= 1, "leaders unbalanced: {:?}", leaders);
        }
    }
}
