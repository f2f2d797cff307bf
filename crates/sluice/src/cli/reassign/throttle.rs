//! Replication throttles as `kafka-reassign-partitions --throttle` sets
//! them and `--verify`/`--cancel` remove them (Kafka's config keys):
//!
//! - on each topic with moving partitions,
//!   `leader.replication.throttled.replicas` = `partition:broker` for the
//!   replicas each moving partition copies from (its current replicas, or
//!   those of the reassignment already in progress), and
//!   `follower.replication.throttled.replicas` = `partition:broker` for the
//!   replicas being added;
//! - on every broker of those partitions, `leader.replication.throttled.rate`
//!   and `follower.replication.throttled.rate` = the rate in bytes/s.
//!
//! Reassignments already in progress count as moving, as in Kafka, so an
//! `--additional` execute keeps their throttles. Removing reads the configs
//! first and deletes only those set, so a broker that knows no throttle
//! keys is left alone.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};

use super::plan::Targets;
use super::{Brokers, Ongoing};
use crate::cli::raw::{error_text, str_bytes, RawConnection};
use crate::cli::ConnectArgs;

/// Kafka's config resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
/// DescribeConfigs sources of a value set on the resource itself.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;

pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";

/// Where one partition's data comes from and goes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Move {
    pub sources: BTreeSet<i32>,
    pub destinations: BTreeSet<i32>,
}

/// topic → partition → move.
pub type Moves = BTreeMap<String, BTreeMap<i32, Move>>;

/// The moves of the reassignments in progress and of the proposed ones
/// (Kafka's `calculateProposedMoveMap`): a partition already moving keeps
/// its sources; the destinations are the proposed replicas not among them.
pub fn moves(ongoing: &Ongoing, proposed: &Targets, current: &Targets) -> Moves {
    let mut out = Moves::new();
    for ((t, p), r) in ongoing {
        let adding: BTreeSet<i32> = r.adding.iter().copied().collect();
        let sources = r
            .replicas
            .iter()
            .copied()
            .filter(|b| !adding.contains(b))
            .collect();
        let m = Move {
            sources,
            destinations: adding,
        };
        out.entry(t.clone()).or_default().insert(*p, m);
    }
    for ((t, p), replicas) in proposed {
        let parts = out.entry(t.clone()).or_default();
        let sources = match parts.get(p) {
            Some(m) => m.sources.clone(),
            None => current
                .get(&(t.clone(), *p))
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default(),
        };
        let destinations = replicas
            .iter()
            .copied()
            .filter(|b| !sources.contains(b))
            .collect();
        parts.insert(
            *p,
            Move {
                sources,
                destinations,
            },
        );
    }
    out
}

/// One config change: a set value, or `None` to delete the key.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigChange {
    kind: i8,
    resource: String,
    key: &'static str,
    value: Option<String>,
}

fn replica_list(parts: &BTreeMap<i32, Move>, pick: impl Fn(&Move) -> Vec<i32>) -> String {
    let mut items = Vec::new();
    for (p, m) in parts {
        items.extend(pick(m).into_iter().map(|b| format!("{p}:{b}")));
    }
    items.join(",")
}

/// Kafka's throttle configs for `moves` at `rate` bytes/s. An empty
/// replica list deletes its key, which means the same as Kafka's empty value.
pub fn throttle_changes(moves: &Moves, rate: u64) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    let mut brokers = BTreeSet::new();
    for (t, parts) in moves {
        let leaders = replica_list(parts, |m| m.sources.iter().copied().collect());
        let followers = replica_list(parts, |m| m.destinations.iter().copied().collect());
        for (key, list) in [(LEADER_REPLICAS, leaders), (FOLLOWER_REPLICAS, followers)] {
            out.push(ConfigChange {
                kind: TOPIC,
                resource: t.clone(),
                key,
                value: (!list.is_empty()).then_some(list),
            });
        }
        for m in parts.values() {
            brokers.extend(m.sources.iter().chain(&m.destinations).copied());
        }
    }
    for b in brokers {
        for key in [LEADER_RATE, FOLLOWER_RATE] {
            out.push(ConfigChange {
                kind: BROKER,
                resource: b.to_string(),
                key,
                value: Some(rate.to_string()),
            });
        }
    }
    out
}

/// The brokers whose rates `changes` set.
pub fn throttled_brokers(changes: &[ConfigChange]) -> Vec<String> {
    let ids: BTreeSet<i32> = changes
        .iter()
        .filter(|c| c.kind == BROKER)
        .filter_map(|c| c.resource.parse().ok())
        .collect();
    ids.iter().map(i32::to_string).collect()
}

/// A connection to where a resource's configs are handled: a broker's own
/// configs by that broker (Kafka's brokers answer only for themselves),
/// the rest by any broker.
fn connect_for(
    connect: &ConnectArgs,
    kind: i8,
    resource: &str,
    brokers: &Brokers,
) -> anyhow::Result<RawConnection> {
    let own = (kind == BROKER)
        .then(|| resource.parse::<i32>().ok().and_then(|id| brokers.get(&id)))
        .flatten();
    match own {
        Some(b) => connect.raw_to(&b.addr),
        None => connect.raw(),
    }
}

fn kind_name(kind: i8) -> &'static str {
    if kind == BROKER {
        "broker"
    } else {
        "topic"
    }
}

/// Applies `changes`, one IncrementalAlterConfigs per resource.
pub fn alter_configs(
    connect: &ConnectArgs,
    changes: &[ConfigChange],
    brokers: &Brokers,
) -> anyhow::Result<()> {
    let mut by_resource: BTreeMap<(i8, &str), Vec<AlterableConfig>> = BTreeMap::new();
    for c in changes {
        by_resource.entry((c.kind, &c.resource)).or_default().push(
            AlterableConfig::default()
                .with_name(str_bytes(c.key))
                .with_config_operation(if c.value.is_some() { SET } else { DELETE })
                .with_value(c.value.as_deref().map(str_bytes)),
        );
    }
    for ((kind, res), configs) in by_resource {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(res))
                .with_configs(configs),
        ]);
        let resp = connect_for(connect, kind, res, brokers)?
            .send(&req, 0)
            .map_err(|e| connect.unreachable(format!("IncrementalAlterConfigs: {e:#}")))?;
        if let Some(r) = resp.responses.iter().find(|r| r.error_code != 0) {
            bail!(
                "changing throttles on {} {}: {}",
                kind_name(kind),
                r.resource_name.as_str(),
                error_text(r.error_code, r.error_message.as_ref())
            );
        }
    }
    Ok(())
}

/// The throttle keys set on one resource itself.
fn set_throttles(
    connect: &ConnectArgs,
    kind: i8,
    res: &str,
    brokers: &Brokers,
) -> anyhow::Result<Vec<&'static str>> {
    let keys = if kind == BROKER {
        [LEADER_RATE, FOLLOWER_RATE]
    } else {
        [LEADER_REPLICAS, FOLLOWER_REPLICAS]
    };
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(res))
            .with_configuration_keys(Some(keys.iter().map(|k| str_bytes(k)).collect()))]);
    let resp = connect_for(connect, kind, res, brokers)?
        .send(&req, 1)
        .map_err(|e| connect.unreachable(format!("DescribeConfigs: {e:#}")))?;
    let mut out = Vec::new();
    for r in resp.results.iter().filter(|r| r.error_code == 0) {
        for c in &r.configs {
            let own = matches!(
                c.config_source,
                DYNAMIC_TOPIC_CONFIG | DYNAMIC_BROKER_CONFIG
            );
            if let Some(&key) = keys.iter().find(|k| **k == c.name.as_str()) {
                if own && c.value.is_some() {
                    out.push(key);
                }
            }
        }
    }
    Ok(out)
}

/// Deletes the throttle configs set on `topics` and on every broker of
/// `brokers`; prints what it removed.
pub fn clear(
    connect: &ConnectArgs,
    topics: &BTreeSet<String>,
    brokers: &Brokers,
) -> anyhow::Result<()> {
    let resources = topics
        .iter()
        .map(|t| (TOPIC, t.clone()))
        .chain(brokers.keys().map(|b| (BROKER, b.to_string())));
    let mut changes = Vec::new();
    for (kind, resource) in resources {
        for key in set_throttles(connect, kind, &resource, brokers)? {
            changes.push(ConfigChange {
                kind,
                resource: resource.clone(),
                key,
                value: None,
            });
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    alter_configs(connect, &changes, brokers)?;
    let cleared: BTreeSet<String> = changes
        .iter()
        .map(|c| format!("{} {}", kind_name(c.kind), c.resource))
        .collect();
    println!(
        "Throttles removed from {}",
        cleared.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Reassignment;
    use super::*;

    fn key(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    fn set(kind: i8, resource: &str, key: &'static str, value: &str) -> ConfigChange {
        ConfigChange {
            kind,
            resource: resource.into(),
            key,
            value: Some(value.into()),
        }
    }

    #[test]
    fn throttles_cover_moving_partitions_as_kafka_sets_them() {
        let current = Targets::from([
            (key("a", 0), vec![1, 2]),
            (key("a", 1), vec![2, 3]),
            (key("b", 0), vec![1, 2]),
        ]);
        let proposed = Targets::from([(key("a", 0), vec![3, 2]), (key("a", 1), vec![2, 3])]);
        let m = moves(&Ongoing::new(), &proposed, &current);
        let got = throttle_changes(&m, 1000);
        assert_eq!(
            got,
            vec![
                set(TOPIC, "a", LEADER_REPLICAS, "0:1,0:2,1:2,1:3"),
                set(TOPIC, "a", FOLLOWER_REPLICAS, "0:3"),
                set(BROKER, "1", LEADER_RATE, "1000"),
                set(BROKER, "1", FOLLOWER_RATE, "1000"),
                set(BROKER, "2", LEADER_RATE, "1000"),
                set(BROKER, "2", FOLLOWER_RATE, "1000"),
                set(BROKER, "3", LEADER_RATE, "1000"),
                set(BROKER, "3", FOLLOWER_RATE, "1000"),
            ]
        );
        assert_eq!(throttled_brokers(&got), ["1", "2", "3"]);
        // Nothing added: the follower list is deleted, as Kafka empties it.
        let same = Targets::from([(key("b", 0), vec![2, 1])]);
        let got = throttle_changes(&moves(&Ongoing::new(), &same, &current), 5);
        assert_eq!(got[1].key, FOLLOWER_REPLICAS);
        assert_eq!(got[1].value, None);
    }

    #[test]
    fn a_reassignment_in_progress_keeps_its_sources_and_throttles() {
        // b-0 moves 1,2 -> 2,4: in progress, replicas 1,2,4, adding 4, removing 1.
        let ongoing = Ongoing::from([(
            key("b", 0),
            Reassignment {
                replicas: vec![1, 2, 4],
                adding: vec![4],
                removing: vec![1],
            },
        )]);
        let current = Targets::from([(key("b", 0), vec![1, 2, 4]), (key("b", 1), vec![2, 3])]);
        // --additional: b-0 now to 5,2 and b-1 to 3,5.
        let proposed = Targets::from([(key("b", 0), vec![5, 2]), (key("b", 1), vec![3, 5])]);
        let m = moves(&ongoing, &proposed, &current);
        let b = &m["b"];
        assert_eq!(b[&0].sources, BTreeSet::from([1, 2]));
        assert_eq!(b[&0].destinations, BTreeSet::from([5]));
        assert_eq!(b[&1].sources, BTreeSet::from([2, 3]));
        assert_eq!(b[&1].destinations, BTreeSet::from([5]));
        // A reassignment in progress that the plan does not name still counts.
        let only_new = Targets::from([(key("b", 1), vec![3, 5])]);
        let m = moves(&ongoing, &only_new, &current);
        assert_eq!(m["b"][&0].destinations, BTreeSet::from([4]));
        let got = throttle_changes(&m, 7);
        assert_eq!(got[0], set(TOPIC, "b", LEADER_REPLICAS, "0:1,0:2,1:2,1:3"));
        assert_eq!(got[1], set(TOPIC, "b", FOLLOWER_REPLICAS, "0:4,1:5"));
        assert_eq!(throttled_brokers(&got), ["1", "2", "3", "4", "5"]);
    }
}
