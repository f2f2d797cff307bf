//! `sluice elect-leaders`: Kafka's ElectLeaders, with the options of
//! `kafka-leader-election`: `--election-type preferred|unclean`, and the
//! partitions as `--all-topic-partitions`, `--topic` with `--partition`, or
//! `--path-to-json-file` in Kafka's format
//! (`{"partitions":[{"topic":"foo","partition":1}]}`). Sluice also takes
//! `TOPIC:PARTITION` arguments and `--topic` alone for every partition of a
//! topic. It is a raw request (librdkafka does not expose it), answered by
//! any broker of any Kafka-compatible cluster, which forwards it to the
//! controller.
//!
//! Output: one row per partition with what happened (`elected`, `not
//! needed`, or Kafka's error name and message). A request for every
//! partition lists only partitions where something was done or failed, as
//! Kafka answers it. Exit 1 when any partition failed, as the Kafka tool.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use serde::Deserialize;

use super::raw::{error_text, str_bytes};
use super::{print_table, ConnectArgs};

#[derive(Args, Debug)]
pub struct ElectArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// preferred: move leadership to the first replica when it is in sync;
    /// unclean: give a leaderless partition a leader, even out of sync (may lose records).
    #[arg(
        long = "election-type",
        visible_alias = "type",
        value_enum,
        ignore_case = true,
        default_value_t = ElectionKind::Preferred
    )]
    kind: ElectionKind,
    /// Every partition of the cluster that the election type applies to.
    #[arg(
        long = "all-topic-partitions",
        visible_alias = "all",
        conflicts_with_all = ["topic", "partitions", "path_to_json_file"]
    )]
    all: bool,
    /// A topic: with --partition that partition, alone every partition of it (repeatable).
    #[arg(long, short = 't', value_name = "TOPIC")]
    topic: Vec<String>,
    /// The partition of --topic (one --topic then).
    #[arg(long, short = 'p', requires = "topic")]
    partition: Option<i32>,
    /// Partitions in Kafka's election JSON: {"partitions":[{"topic":"foo","partition":1}]}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["topic", "partitions"])]
    path_to_json_file: Option<PathBuf>,
    /// Partitions as TOPIC:PARTITION.
    #[arg(value_name = "TOPIC:PARTITION", value_parser = parse_topic_partition)]
    partitions: Vec<(String, i32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ElectionKind {
    Preferred,
    Unclean,
}

/// Parses `topic:partition` (the topic may itself contain ':').
pub fn parse_topic_partition(s: &str) -> Result<(String, i32), String> {
    let (t, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected TOPIC:PARTITION, got {s:?}"))?;
    let p: i32 = p
        .parse()
        .map_err(|_| format!("{p:?} is not a partition number"))?;
    if t.is_empty() || p < 0 {
        return Err(format!("expected TOPIC:PARTITION, got {s:?}"));
    }
    Ok((t.to_string(), p))
}

/// Kafka's election JSON (`--path-to-json-file`).
#[derive(Debug, Deserialize)]
struct ElectionFile {
    partitions: Vec<ElectionPartition>,
}

#[derive(Debug, Deserialize)]
struct ElectionPartition {
    topic: String,
    partition: i32,
}

/// The partitions of an election file; a partition listed twice is
/// refused, as Kafka's tool refuses it.
fn parse_election_file(text: &str) -> anyhow::Result<Vec<(String, i32)>> {
    let file: ElectionFile = serde_json::from_str(text).context(
        r#"not an election file (Kafka's format: {"partitions":[{"topic":"foo","partition":1}]})"#,
    )?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in file.partitions {
        if !seen.insert((p.topic.clone(), p.partition)) {
            bail!(
                "the election file lists partition {}-{} twice",
                p.topic,
                p.partition
            );
        }
        out.push((p.topic, p.partition));
    }
    if out.is_empty() {
        bail!("the election file lists no partition");
    }
    Ok(out)
}

fn read_election_file(path: &Path) -> anyhow::Result<Vec<(String, i32)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_election_file(&text).with_context(|| path.display().to_string())
}

/// The partitions to elect, by topic; `None` = every partition.
fn wanted(args: &ElectArgs) -> anyhow::Result<Option<BTreeMap<String, BTreeSet<i32>>>> {
    if args.all {
        return Ok(None);
    }
    let mut wanted: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut named = args.partitions.clone();
    if let Some(path) = &args.path_to_json_file {
        named.extend(read_election_file(path)?);
    }
    if let Some(p) = args.partition {
        let [t] = args.topic.as_slice() else {
            bail!("--partition goes with exactly one --topic");
        };
        named.push((t.clone(), p));
    } else {
        for t in &args.topic {
            let md = super::topic::metadata(&args.connect, Some(t))?;
            let topic = md.topics().iter().find(|m| m.name() == t);
            let Some(topic) = topic.filter(|m| m.error().is_none()) else {
                bail!("topic {t} does not exist");
            };
            named.extend(topic.partitions().iter().map(|p| (t.clone(), p.id())));
        }
    }
    for (t, p) in named {
        wanted.entry(t).or_default().insert(p);
    }
    if wanted.is_empty() {
        bail!(
            "name the partitions: --all-topic-partitions, --topic [--partition], \
             --path-to-json-file or TOPIC:PARTITION"
        );
    }
    Ok(Some(wanted))
}

fn elect(
    connect: &ConnectArgs,
    kind: ElectionKind,
    wanted: Option<&BTreeMap<String, BTreeSet<i32>>>,
) -> anyhow::Result<ElectLeadersResponse> {
    let topic_partitions = wanted.map(|w| {
        w.iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic(TopicName(str_bytes(t)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect()
    });
    let req = ElectLeadersRequest::default()
        .with_election_type(match kind {
            ElectionKind::Preferred => 0,
            ElectionKind::Unclean => 1,
        })
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(connect.timeout_ms());
    // v1 is the first with per-partition error codes and the election type.
    let resp = connect
        .raw()?
        .send(&req, 1)
        .map_err(|e| connect.unreachable(format!("ElectLeaders: {e:#}")))?;
    if resp.error_code != 0 {
        bail!("ElectLeaders failed: {}", error_text(resp.error_code, None));
    }
    Ok(resp)
}

/// One row per partition (sorted); how many failed.
fn result_rows(resp: &ElectLeadersResponse) -> (Vec<Vec<String>>, usize) {
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let mut results: Vec<(String, i32, String)> = Vec::new();
    let mut failed = 0;
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let text = match p.error_code {
                0 => "elected".to_string(),
                c if c == not_needed => "not needed (a valid leader is already elected)".into(),
                c => {
                    failed += 1;
                    error_text(c, p.error_message.as_ref())
                }
            };
            results.push((t.topic.0.to_string(), p.partition_id, text));
        }
    }
    results.sort();
    let rows = results
        .into_iter()
        .map(|(t, p, text)| vec![t, p.to_string(), text])
        .collect();
    (rows, failed)
}

pub fn run(args: ElectArgs) -> anyhow::Result<()> {
    let wanted = wanted(&args)?;
    let resp = elect(&args.connect, args.kind, wanted.as_ref())?;
    let (rows, failed) = result_rows(&resp);
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "no partition needed an election")?;
    } else {
        let header = ["TOPIC", "PARTITION", "RESULT"].map(String::from).to_vec();
        print_table(&mut out, &[vec![header], rows].concat())?;
    }
    if failed > 0 {
        bail!("{failed} partition(s) could not be elected");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::elect_leaders_response::{
        PartitionResult, ReplicaElectionResult,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    #[test]
    fn topic_partitions_parse() {
        assert_eq!(parse_topic_partition("a:1"), Ok(("a".into(), 1)));
        assert_eq!(parse_topic_partition("a:b:2"), Ok(("a:b".into(), 2)));
        assert!(parse_topic_partition("a").is_err());
        assert!(parse_topic_partition(":1").is_err());
        assert!(parse_topic_partition("a:-1").is_err());
        assert!(parse_topic_partition("a:x").is_err());
    }

    #[test]
    fn kafkas_election_file_parses() {
        let got = parse_election_file(
            r#"{"partitions":[{"topic":"foo","partition":1},{"topic":"bar","partition":0}]}"#,
        )
        .unwrap();
        assert_eq!(got, vec![("foo".into(), 1), ("bar".into(), 0)]);
        for (text, why) in [
            (
                r#"{"partitions":[{"topic":"foo","partition":1},{"topic":"foo","partition":1}]}"#,
                "twice",
            ),
            (r#"{"partitions":[]}"#, "no partition"),
            (r#"{"topics":[]}"#, "not an election file"),
            (
                r#"{"partitions":[{"topic":"foo"}]}"#,
                "not an election file",
            ),
        ] {
            let e = format!("{:#}", parse_election_file(text).unwrap_err());
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn results_count_only_real_failures() {
        let part = |id, code| {
            PartitionResult::default()
                .with_partition_id(id)
                .with_error_code(code)
                .with_error_message((code == 80).then(|| StrBytes::from_static_str("down")))
        };
        let resp = ElectLeadersResponse::default().with_replica_election_results(vec![
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partition_result(vec![part(2, 80), part(0, 0), part(1, 84)]),
        ]);
        let (rows, failed) = result_rows(&resp);
        assert_eq!(failed, 1);
        let cells: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            cells,
            [
                vec!["t", "0", "elected"],
                vec!["t", "1", "not needed (a valid leader is already elected)"],
                vec!["t", "2", "PreferredLeaderNotAvailable: down"],
            ]
        );
    }
}
