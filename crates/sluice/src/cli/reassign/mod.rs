//! `sluice reassign generate|execute|verify|cancel|list`: partition
//! reassignment as `kafka-reassign-partitions` does it (`--generate`,
//! `--execute`, `--verify`, `--cancel`, `--list`, with its JSON files and
//! throttles), through Kafka's Admin APIs, so it works against any
//! Kafka-compatible cluster: AlterPartitionReassignments,
//! ListPartitionReassignments, DescribeCluster, and DescribeConfigs /
//! IncrementalAlterConfigs for the throttles ([`throttle`]).
//!
//! - **generate** proposes an assignment of whole topics over `--broker-list`
//!   ([`generate`]) and prints it with the current one; it changes nothing.
//! - **execute** starts the reassignments of a plan (or of one partition
//!   from flags) after Kafka's checks: no reassignment in progress unless
//!   `--additional`, every broker known to the cluster, every partition
//!   existing. It prints the current assignment of those partitions (to
//!   roll back with), and with `--throttle RATE` first sets Kafka's
//!   throttles.
//! - **verify** says per planned partition whether its reassignment is
//!   in progress, complete, or ended with other replicas (exit 1); once no
//!   reassignment is in progress in the cluster it removes the throttles
//!   (unless `--preserve-throttles`), as Kafka's tool does.
//! - **cancel** cancels those of the planned partitions that are in
//!   progress (the replicas go back to the old set) and removes the
//!   throttles.
//! - **list** shows the reassignments in progress (replicas, adding, removing).

mod generate;
mod plan;
mod throttle;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};

use super::raw::{error_text, str_bytes};
use super::{print_table, ConnectArgs};
use plan::{parse_plan, render_plan, Targets};

#[derive(Args, Debug)]
pub struct ReassignArgs {
    #[command(subcommand)]
    command: ReassignCommand,
}

/// The partitions a command acts on: a reassignment JSON file or one partition.
#[derive(Args, Debug)]
struct Target {
    /// The reassignment in Kafka's JSON format
    /// ({"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]}]}).
    #[arg(
        long = "reassignment-json-file",
        visible_alias = "plan",
        value_name = "FILE",
        conflicts_with_all = ["topic", "partition"]
    )]
    plan: Option<PathBuf>,
    /// One partition's topic (with --partition).
    #[arg(long, short = 't', requires = "partition")]
    topic: Option<String>,
    /// One partition (with --topic).
    #[arg(long, short = 'p', requires = "topic")]
    partition: Option<i32>,
}

#[derive(Subcommand, Debug)]
enum ReassignCommand {
    /// Propose an assignment of whole topics over a list of brokers (changes nothing).
    Generate {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Topics in Kafka's JSON format ({"version":1,"topics":[{"topic":"t"}]}).
        #[arg(long, value_name = "FILE", required_unless_present = "topic")]
        topics_to_move_json_file: Option<PathBuf>,
        /// A topic to move (repeatable), instead of the JSON file.
        #[arg(long, short = 't', conflicts_with = "topics_to_move_json_file")]
        topic: Vec<String>,
        /// The brokers to place the replicas on, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',', value_name = "ID,..", required = true)]
        broker_list: Vec<i32>,
        /// Ignore the brokers' racks.
        #[arg(long)]
        disable_rack_aware: bool,
    },
    /// Start reassignments: from a JSON file, or one partition with --replicas.
    Execute {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        target: Target,
        /// The new replica list of --topic/--partition, e.g. 2,3,4 (the first is preferred).
        #[arg(long, value_delimiter = ',', value_name = "ID,..")]
        replicas: Vec<i32>,
        /// Replication throttle in bytes/s for the brokers of moving partitions.
        #[arg(long, value_name = "BYTES_PER_SEC")]
        throttle: Option<u64>,
        /// Start even though reassignments are in progress (also to change their throttle).
        #[arg(long)]
        additional: bool,
    },
    /// Show whether each reassignment is in progress or complete; remove throttles when done.
    Verify {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        target: Target,
        /// Keep the throttle configs.
        #[arg(long)]
        preserve_throttles: bool,
    },
    /// Cancel reassignments in progress (the replicas go back to the old set).
    Cancel {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        target: Target,
        /// Keep the throttle configs.
        #[arg(long)]
        preserve_throttles: bool,
    },
    /// List the reassignments in progress.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Only this topic's.
        #[arg(long, short = 't')]
        topic: Option<String>,
    },
}

pub fn run(args: ReassignArgs) -> anyhow::Result<()> {
    match args.command {
        ReassignCommand::Generate {
            connect,
            topics_to_move_json_file,
            topic,
            broker_list,
            disable_rack_aware,
        } => {
            let topics = match topics_to_move_json_file {
                Some(path) => plan::parse_topics_to_move(&read(&path)?)
                    .with_context(|| path.display().to_string())?,
                None => topic,
            };
            generate(&connect, &topics, &broker_list, !disable_rack_aware)
        }
        ReassignCommand::Execute {
            connect,
            target,
            replicas,
            throttle,
            additional,
        } => {
            if target.plan.is_some() && !replicas.is_empty() {
                bail!("--replicas goes with --topic/--partition, not with a JSON file");
            }
            let targets = targets(&target, Some(&replicas))?;
            execute(&connect, &targets, throttle, additional)
        }
        ReassignCommand::Verify {
            connect,
            target,
            preserve_throttles,
        } => verify(&connect, &targets(&target, None)?, preserve_throttles),
        ReassignCommand::Cancel {
            connect,
            target,
            preserve_throttles,
        } => cancel(&connect, &targets(&target, None)?, preserve_throttles),
        ReassignCommand::List { connect, topic } => list(&connect, topic.as_deref()),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The targets of a command: the JSON file's, or one partition with
/// `replicas` (empty for verify and cancel of one partition).
fn targets(target: &Target, replicas: Option<&[i32]>) -> anyhow::Result<Targets> {
    if let Some(path) = &target.plan {
        return parse_plan(&read(path)?).with_context(|| path.display().to_string());
    }
    match (&target.topic, target.partition, replicas) {
        (Some(t), Some(p), Some([])) => bail!("give the new replicas of {t}-{p} with --replicas"),
        (Some(t), Some(p), r) => Ok(Targets::from([(
            (t.clone(), p),
            r.unwrap_or_default().to_vec(),
        )])),
        _ => bail!("give --reassignment-json-file FILE, or --topic and --partition"),
    }
}

/// A broker of the cluster.
#[derive(Clone, Debug)]
pub struct Broker {
    /// `host:port` of its client listener.
    pub addr: String,
    pub rack: Option<String>,
}

/// The brokers of the cluster (unfenced, as Kafka's describeCluster lists them), by id.
pub type Brokers = BTreeMap<i32, Broker>;

fn brokers(connect: &ConnectArgs) -> anyhow::Result<Brokers> {
    let view = super::cluster::describe_cluster(&mut connect.raw()?)?;
    Ok(view
        .brokers
        .into_iter()
        .filter(|b| b.fenced != Some(true))
        .map(|b| {
            let addr = format!("{}:{}", b.host, b.port);
            (b.id, Broker { addr, rack: b.rack })
        })
        .collect())
}

/// The current replicas of the partitions of `topics` (every partition),
/// or of the partitions of `only`; a missing one is an error.
fn current(
    connect: &ConnectArgs,
    topics: &[String],
    only: Option<&Targets>,
) -> anyhow::Result<Targets> {
    let md = super::topic::metadata(connect, None)?;
    let mut out = Targets::new();
    for t in topics {
        let topic = md
            .topics()
            .iter()
            .find(|m| m.name() == t && m.error().is_none())
            .ok_or_else(|| anyhow!("topic {t} does not exist"))?;
        for p in topic.partitions() {
            let key = (t.clone(), p.id());
            if only.is_none_or(|o| o.contains_key(&key)) {
                out.insert(key, p.replicas().to_vec());
            }
        }
    }
    if let Some(missing) = only.and_then(|o| o.keys().find(|k| !out.contains_key(*k))) {
        bail!("partition {}-{} does not exist", missing.0, missing.1);
    }
    Ok(out)
}

fn topics_of(targets: &Targets) -> BTreeSet<String> {
    targets.keys().map(|k| k.0.clone()).collect()
}

/// A reassignment in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassignment {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// The reassignments in progress, by (topic, partition).
pub type Ongoing = BTreeMap<(String, i32), Reassignment>;

/// ListPartitionReassignments: of the partitions of `only`, else of all.
fn ongoing(connect: &ConnectArgs, only: Option<&Targets>) -> anyhow::Result<Ongoing> {
    let topics = only.map(|targets| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in targets.keys() {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(connect.timeout_ms())
        .with_topics(topics);
    let resp = connect
        .raw()?
        .send(&req, 0)
        .map_err(|e| connect.unreachable(format!("ListPartitionReassignments: {e:#}")))?;
    if resp.error_code != 0 {
        bail!(
            "ListPartitionReassignments failed: {}",
            error_text(resp.error_code, resp.error_message.as_ref())
        );
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut out = Ongoing::new();
    for t in resp.topics {
        for p in t.partitions {
            let r = Reassignment {
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            };
            out.insert((t.name.0.to_string(), p.partition_index), r);
        }
    }
    Ok(out)
}

/// Sends AlterPartitionReassignments (`None` replicas: cancel); prints a
/// row per partition with `done` or its error; errors when any failed.
fn alter(
    connect: &ConnectArgs,
    wanted: &BTreeMap<(String, i32), Option<Vec<i32>>>,
    done: &str,
) -> anyhow::Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((t, p), r) in wanted {
        by_topic.entry(t).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*p)
                .with_replicas(r.as_ref().map(|r| r.iter().map(|&b| BrokerId(b)).collect())),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            ReassignableTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(ps)
        })
        .collect();
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(connect.timeout_ms())
        .with_allow_replication_factor_change(true)
        .with_topics(topics);
    let resp = connect
        .raw()?
        .send(&req, 0)
        .map_err(|e| connect.unreachable(format!("AlterPartitionReassignments: {e:#}")))?;
    if resp.error_code != 0 {
        bail!(
            "AlterPartitionReassignments failed: {}",
            error_text(resp.error_code, resp.error_message.as_ref())
        );
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for t in &resp.responses {
        for p in &t.partitions {
            let text = if p.error_code == 0 {
                done.to_string()
            } else {
                failed += 1;
                error_text(p.error_code, p.error_message.as_ref())
            };
            rows.push(vec![
                t.name.0.to_string(),
                p.partition_index.to_string(),
                text,
            ]);
        }
    }
    rows.sort();
    print_rows(&["TOPIC", "PARTITION", "RESULT"], rows)?;
    if failed > 0 {
        bail!("{failed} partition(s) failed");
    }
    Ok(())
}

fn print_rows(header: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let header = header.iter().map(|h| h.to_string()).collect();
    print_table(
        &mut std::io::stdout().lock(),
        &[vec![header], rows].concat(),
    )?;
    Ok(())
}

fn join(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn generate(
    connect: &ConnectArgs,
    topics: &[String],
    broker_list: &[i32],
    rack_aware: bool,
) -> anyhow::Result<()> {
    let current = current(connect, topics, None)?;
    let usable = generate::usable(broker_list, &brokers(connect)?, rack_aware)?;
    let proposed = generate::propose(&current, &usable)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Current partition replica assignment")?;
    writeln!(out, "{}\n", render_plan(&current))?;
    writeln!(out, "Proposed partition reassignment configuration")?;
    writeln!(out, "{}", render_plan(&proposed))?;
    Ok(())
}

fn execute(
    connect: &ConnectArgs,
    targets: &Targets,
    throttle: Option<u64>,
    additional: bool,
) -> anyhow::Result<()> {
    let in_progress = ongoing(connect, None)?;
    if !additional && !in_progress.is_empty() {
        bail!(
            "cannot execute: {} reassignment(s) are in progress; use --additional to start \
             these as well (or to change the throttle by giving the same reassignment again)",
            in_progress.len()
        );
    }
    let cluster = brokers(connect)?;
    let planned: BTreeSet<i32> = targets.values().flatten().copied().collect();
    if let Some(unknown) = planned.iter().find(|b| !cluster.contains_key(b)) {
        bail!("unknown broker id {unknown}: the cluster has no such (unfenced) broker");
    }
    let now = current(connect, &Vec::from_iter(topics_of(targets)), Some(targets))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Current partition replica assignment\n")?;
    writeln!(out, "{}\n", render_plan(&now))?;
    writeln!(
        out,
        "Save this to use as the --reassignment-json-file option during rollback"
    )?;
    if let Some(rate) = throttle {
        let moves = throttle::moves(&in_progress, targets, &now);
        let changes = throttle::throttle_changes(&moves, rate);
        throttle::alter_configs(connect, &changes, &cluster)?;
        writeln!(
            out,
            "Warning: run verify until the reassignment completes, so that the throttle is removed."
        )?;
        writeln!(
            out,
            "The inter-broker throttle limit was set to {rate} B/s on brokers {}",
            throttle::throttled_brokers(&changes).join(",")
        )?;
    }
    drop(out);
    let wanted = targets
        .iter()
        .map(|(k, r)| (k.clone(), Some(r.clone())))
        .collect();
    alter(connect, &wanted, "reassignment started")
}

/// One partition's state after its reassignment; `Err` = it ended elsewhere.
fn status(
    key: &(String, i32),
    want: &[i32],
    in_progress: &Ongoing,
    now: &Targets,
) -> Result<String, String> {
    if in_progress.contains_key(key) {
        return Ok("in progress".into());
    }
    match now.get(key) {
        None => Err("the partition does not exist".into()),
        Some(r) if want.is_empty() || r == want => Ok("complete".into()),
        Some(r) => Err(format!(
            "no reassignment in progress, but the replicas are {} rather than {}",
            join(r),
            join(want)
        )),
    }
}

fn verify(connect: &ConnectArgs, targets: &Targets, preserve: bool) -> anyhow::Result<()> {
    let in_progress = ongoing(connect, None)?;
    let topics = topics_of(targets);
    let md = super::topic::metadata(connect, None)?;
    let mut now = Targets::new();
    for t in md.topics().iter().filter(|t| topics.contains(t.name())) {
        for p in t.partitions() {
            now.insert((t.name().to_string(), p.id()), p.replicas().to_vec());
        }
    }
    let mut rows = Vec::new();
    let mut elsewhere = 0;
    for (key, want) in targets {
        let text = status(key, want, &in_progress, &now).unwrap_or_else(|e| {
            elsewhere += 1;
            e
        });
        rows.push(vec![key.0.clone(), key.1.to_string(), text]);
    }
    print_rows(&["TOPIC", "PARTITION", "STATUS"], rows)?;
    // Kafka's tool clears throttles only when nothing moves anywhere: a
    // broker's rates may serve other reassignments too.
    if in_progress.is_empty() && !preserve {
        throttle::clear(connect, &topics, &brokers(connect)?)?;
    }
    if elsewhere > 0 {
        bail!("{elsewhere} partition(s) did not end with the planned replicas");
    }
    Ok(())
}

fn cancel(connect: &ConnectArgs, targets: &Targets, preserve: bool) -> anyhow::Result<()> {
    let active = ongoing(connect, Some(targets))?;
    let wanted: BTreeMap<_, _> = active
        .keys()
        .filter(|k| targets.contains_key(*k))
        .map(|k| (k.clone(), None))
        .collect();
    let result = if wanted.is_empty() {
        println!("None of the named partitions has a reassignment in progress.");
        Ok(())
    } else {
        alter(connect, &wanted, "cancelled")
    };
    if !preserve {
        throttle::clear(connect, &topics_of(targets), &brokers(connect)?)?;
    }
    result
}

fn list(connect: &ConnectArgs, topic: Option<&str>) -> anyhow::Result<()> {
    let in_progress = ongoing(connect, None)?;
    let rows: Vec<Vec<String>> = in_progress
        .iter()
        .filter(|((t, _), _)| topic.is_none_or(|want| want == t))
        .map(|((t, p), r)| {
            let (replicas, adding) = (join(&r.replicas), join(&r.adding));
            vec![
                t.clone(),
                p.to_string(),
                replicas,
                adding,
                join(&r.removing),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no reassignment in progress");
        return Ok(());
    }
    print_rows(
        &["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_status_tells_in_progress_complete_and_elsewhere_apart() {
        let key = ("t".to_string(), 0);
        let moving = Ongoing::from([(
            key.clone(),
            Reassignment {
                replicas: vec![1, 2, 3],
                adding: vec![3],
                removing: vec![1],
            },
        )]);
        let now = Targets::from([(key.clone(), vec![3, 2])]);
        let s = |want: &[i32], ongoing: &Ongoing| status(&key, want, ongoing, &now);
        assert_eq!(s(&[3, 2], &moving), Ok("in progress".into()));
        assert_eq!(s(&[3, 2], &Ongoing::new()), Ok("complete".into()));
        assert_eq!(s(&[], &Ongoing::new()), Ok("complete".into()));
        let e = s(&[2, 3], &Ongoing::new()).unwrap_err();
        assert!(e.contains("are 3,2 rather than 2,3"), "{e}");
        let gone = status(&("u".into(), 0), &[1], &Ongoing::new(), &now);
        assert!(gone.is_err());
    }
}
