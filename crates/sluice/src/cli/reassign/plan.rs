//! Kafka's JSON files of `kafka-reassign-partitions`: the reassignment
//! (`--reassignment-json-file`:
//! `{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..],"log_dirs":[..]}]}`)
//! and the topics to move (`--topics-to-move-json-file`:
//! `{"version":1,"topics":[{"topic":..}]}`), checked as Kafka's tool checks
//! them. Log dirs may only be `"any"`: moving a replica between the log
//! dirs of one broker (AlterReplicaLogDirs) is not something this tool does.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// (topic, partition) → replicas (planned, or current).
pub type Targets = BTreeMap<(String, i32), Vec<i32>>;

/// `version` when a file has none, as in Kafka.
fn one() -> i32 {
    1
}

#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    #[serde(default = "one")]
    version: i32,
    #[serde(default)]
    partitions: Vec<PlanPartition>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PlanPartition {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_dirs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct TopicsToMove {
    #[serde(default = "one")]
    version: i32,
    #[serde(default)]
    topics: Vec<TopicToMove>,
}

#[derive(Debug, Deserialize)]
struct TopicToMove {
    topic: String,
}

fn check_partition(p: &PlanPartition) -> anyhow::Result<()> {
    let (t, n) = (&p.topic, p.partition);
    if p.replicas.is_empty() {
        bail!("{t}-{n}: the replica list cannot be empty");
    }
    let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
    if distinct.len() != p.replicas.len() {
        bail!("{t}-{n}: duplicate replicas in {:?}", p.replicas);
    }
    if let Some(dirs) = &p.log_dirs {
        if dirs.len() != p.replicas.len() {
            bail!(
                "{t}-{n}: the replica list {:?} and the log dir list {dirs:?} differ in size",
                p.replicas
            );
        }
        if dirs.iter().any(|d| d != "any") {
            bail!("{t}-{n}: moving replicas to a named log dir is not supported; use \"any\"");
        }
    }
    Ok(())
}

/// Parses a reassignment file: at least one partition, none twice, no
/// empty or duplicated replica list.
pub fn parse_plan(text: &str) -> anyhow::Result<Targets> {
    let plan: Plan = serde_json::from_str(text).context("not a reassignment JSON file")?;
    if plan.version != 1 {
        bail!("unsupported version {} (Kafka's is 1)", plan.version);
    }
    let mut out = Targets::new();
    for p in plan.partitions {
        check_partition(&p)?;
        if out
            .insert((p.topic.clone(), p.partition), p.replicas)
            .is_some()
        {
            bail!("{}-{} appears twice", p.topic, p.partition);
        }
    }
    if out.is_empty() {
        bail!("the reassignment lists no partition");
    }
    Ok(out)
}

/// An assignment in Kafka's reassignment format, as Kafka's tool prints it
/// (sorted by topic and partition, `log_dirs` all `"any"`).
pub fn render_plan(assignment: &Targets) -> String {
    let plan = Plan {
        version: 1,
        partitions: assignment
            .iter()
            .map(|((t, p), r)| PlanPartition {
                topic: t.clone(),
                partition: *p,
                replicas: r.clone(),
                log_dirs: Some(vec!["any".into(); r.len()]),
            })
            .collect(),
    };
    serde_json::to_string(&plan).expect("a plan serializes")
}

/// Parses a topics-to-move file: at least one topic, none twice.
pub fn parse_topics_to_move(text: &str) -> anyhow::Result<Vec<String>> {
    let file: TopicsToMove =
        serde_json::from_str(text).context("not a topics-to-move JSON file")?;
    if file.version != 1 {
        bail!("unsupported version {} (Kafka's is 1)", file.version);
    }
    let mut seen = BTreeSet::new();
    for t in &file.topics {
        if !seen.insert(&t.topic) {
            bail!("topic {} is listed twice", t.topic);
        }
    }
    if seen.is_empty() {
        bail!("the file lists no topic");
    }
    Ok(file.topics.into_iter().map(|t| t.topic).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_plan_format_round_trips() {
        let text = r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[2,1],"log_dirs":["any","any"]},{"topic":"b","partition":3,"replicas":[1]}]}"#;
        let t = parse_plan(text).unwrap();
        assert_eq!(t[&("a".to_string(), 0)], vec![2, 1]);
        assert_eq!(t[&("b".to_string(), 3)], vec![1]);
        let rendered = render_plan(&t);
        assert_eq!(
            rendered,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[2,1],"log_dirs":["any","any"]},{"topic":"b","partition":3,"replicas":[1],"log_dirs":["any"]}]}"#
        );
        assert_eq!(parse_plan(&rendered).unwrap(), t);
        // No version: Kafka's default, 1.
        assert!(
            parse_plan(r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1]}]}"#).is_ok()
        );
    }

    #[test]
    fn bad_plans_are_refused() {
        for (text, why) in [
            (r#"{"version":2,"partitions":[]}"#, "version"),
            (r#"{"version":1,"partitions":[]}"#, "no partition"),
            (r#"{"version":1}"#, "no partition"),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[]}]}"#,
                "cannot be empty",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#,
                "duplicate",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any"]}]}"#,
                "differ in size",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#,
                "log dir",
            ),
            (
                r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#,
                "twice",
            ),
            ("nonsense", "not a reassignment JSON file"),
        ] {
            let e = format!("{:#}", parse_plan(text).unwrap_err());
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn topics_to_move_parse_as_kafka_writes_them() {
        assert_eq!(
            parse_topics_to_move(r#"{"topics":[{"topic":"foo"},{"topic":"bar"}],"version":1}"#)
                .unwrap(),
            ["foo", "bar"]
        );
        for (text, why) in [
            (r#"{"topics":[{"topic":"a"},{"topic":"a"}]}"#, "twice"),
            (r#"{"topics":[]}"#, "no topic"),
            (r#"{"version":2,"topics":[{"topic":"a"}]}"#, "version"),
            (r#"{"topics":[{"name":"a"}]}"#, "not a topics-to-move"),
        ] {
            let e = format!("{:#}", parse_topics_to_move(text).unwrap_err());
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
