//! `sluice group list|describe|reset-offsets|delete` (classic consumer groups).

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::topic::{admin, metadata};
use super::{print_table, runtime, ConnectArgs};

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List consumer groups with their state and member count.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Show a group's state, members, and committed offsets with the lag per partition.
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
        group: String,
    },
    /// Set a group's committed offsets (the group must have no active members).
    ResetOffsets {
        #[command(flatten)]
        connect: ConnectArgs,
        group: String,
        /// Topic whose offsets to reset.
        #[arg(long, short = 't')]
        topic: String,
        /// Only this partition (default: all).
        #[arg(long, short = 'p')]
        partition: Option<i32>,
        /// Reset to the log start offset.
        #[arg(long, group = "target")]
        to_earliest: bool,
        /// Reset to the log end offset (high watermark).
        #[arg(long, group = "target")]
        to_latest: bool,
        /// Reset to this offset.
        #[arg(long, group = "target", value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups (they must have no active members).
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    match args.command {
        GroupCommand::List { connect } => list(&connect),
        GroupCommand::Describe { connect, group } => describe(&connect, &group),
        GroupCommand::ResetOffsets {
            connect,
            group,
            topic,
            partition,
            to_earliest,
            to_latest,
            to_offset,
            dry_run,
        } => {
            let target = match (to_earliest, to_latest, to_offset) {
                (true, _, _) => Target::Earliest,
                (_, true, _) => Target::Latest,
                (_, _, Some(o)) if o >= 0 => Target::Offset(o),
                (_, _, Some(o)) => bail!("--to-offset must be >= 0, not {o}"),
                _ => bail!("give one of --to-earliest, --to-latest, --to-offset N"),
            };
            reset(&connect, &group, &topic, partition, target, dry_run)
        }
        GroupCommand::Delete { connect, groups } => delete(&connect, &groups),
    }
}

fn group_consumer(connect: &ConnectArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    connect
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .context("cannot create a client")
}

fn list(connect: &ConnectArgs) -> anyhow::Result<()> {
    let consumer = group_consumer(connect, "sluice-cli-unused")?;
    let groups = consumer
        .fetch_group_list(None, connect.timeout())
        .map_err(|e| connect.map_err("listing groups", e))?;
    let mut rows = vec![vec![
        "GROUP".to_string(),
        "STATE".into(),
        "PROTOCOL-TYPE".into(),
        "MEMBERS".into(),
    ]];
    let mut gs: Vec<_> = groups.groups().iter().collect();
    gs.sort_by(|a, b| a.name().cmp(b.name()));
    for g in gs {
        rows.push(vec![
            g.name().to_string(),
            g.state().to_string(),
            g.protocol_type().to_string(),
            g.members().len().to_string(),
        ]);
    }
    print_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}

/// Committed offsets of `group` for every partition of every non-internal
/// topic (or of `only_topic`); partitions with no commit are left out.
fn committed(
    connect: &ConnectArgs,
    consumer: &BaseConsumer,
    only_topic: Option<&str>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let md = metadata(connect, only_topic)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if t.error().is_some() || (only_topic.is_none() && t.name().starts_with("__")) {
            continue;
        }
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let mut out = BTreeMap::new();
    if tpl.count() == 0 {
        return Ok(out);
    }
    let tpl = consumer
        .committed_offsets(tpl, connect.timeout())
        .map_err(|e| connect.map_err("fetching committed offsets", e))?;
    for e in tpl.elements() {
        if let Offset::Offset(o) = e.offset() {
            out.insert((e.topic().to_string(), e.partition()), o);
        }
    }
    Ok(out)
}

fn describe(connect: &ConnectArgs, group: &str) -> anyhow::Result<()> {
    let consumer = group_consumer(connect, group)?;
    let groups = consumer
        .fetch_group_list(Some(group), connect.timeout())
        .map_err(|e| connect.map_err("describing the group", e))?;
    let info = groups.groups().iter().find(|g| g.name() == group);
    let state = info.map_or("Dead", |g| g.state());
    let offsets = committed(connect, &consumer, None)?;
    if (state == "Dead" || state.is_empty()) && offsets.is_empty() {
        bail!("unknown group {group:?} (no members and no committed offsets)");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "GROUP     {group}")?;
    writeln!(out, "STATE     {state}")?;
    if let Some(g) = info {
        let protocol = format!("{} {}", g.protocol_type(), g.protocol());
        writeln!(out, "PROTOCOL  {}", protocol.trim())?;
        writeln!(out, "MEMBERS   {}", g.members().len())?;
        for m in g.members() {
            writeln!(
                out,
                "  {} client-id={} host={}",
                m.id(),
                m.client_id(),
                m.client_host()
            )?;
        }
    }
    writeln!(out)?;
    let mut rows = vec![vec![
        "TOPIC".to_string(),
        "PARTITION".into(),
        "CURRENT-OFFSET".into(),
        "LOG-END-OFFSET".into(),
        "LAG".into(),
    ]];
    let mut total_lag = 0i64;
    for ((topic, partition), current) in &offsets {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, connect.timeout())
            .map_err(|e| connect.map_err("fetching offsets", e))?;
        let lag = (high - current).max(0);
        total_lag += lag;
        rows.push(vec![
            topic.clone(),
            partition.to_string(),
            current.to_string(),
            high.to_string(),
            lag.to_string(),
        ]);
    }
    print_table(&mut out, &rows)?;
    writeln!(out)?;
    writeln!(out, "TOTAL-LAG {total_lag}")?;
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
}

fn reset(
    connect: &ConnectArgs,
    group: &str,
    topic: &str,
    partition: Option<i32>,
    target: Target,
    dry_run: bool,
) -> anyhow::Result<()> {
    let consumer = group_consumer(connect, group)?;
    let groups = consumer
        .fetch_group_list(Some(group), connect.timeout())
        .map_err(|e| connect.map_err("describing the group", e))?;
    if let Some(g) = groups.groups().iter().find(|g| g.name() == group) {
        if !g.members().is_empty() {
            bail!(
                "group {group:?} has {} active member(s) (state {}); stop its consumers before resetting offsets",
                g.members().len(),
                g.state()
            );
        }
    }
    let md = metadata(connect, Some(topic))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .ok_or_else(|| anyhow!("unknown topic {topic:?}"))?;
    let partitions: Vec<i32> = match partition {
        Some(p) if t.partitions().iter().any(|x| x.id() == p) => vec![p],
        Some(p) => bail!("topic {topic:?} has no partition {p}"),
        None => t.partitions().iter().map(|p| p.id()).collect(),
    };
    let before = committed(connect, &consumer, Some(topic))?;
    let mut tpl = TopicPartitionList::new();
    let mut rows = vec![vec![
        "TOPIC".to_string(),
        "PARTITION".into(),
        "OLD-OFFSET".into(),
        "NEW-OFFSET".into(),
    ]];
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, connect.timeout())
            .map_err(|e| connect.map_err("fetching offsets", e))?;
        let new = match target {
            Target::Earliest => low,
            Target::Latest => high,
            // As Kafka's tool: clamp into [log start, log end].
            Target::Offset(o) => o.clamp(low, high),
        };
        tpl.add_partition_offset(topic, p, Offset::Offset(new))?;
        rows.push(vec![
            topic.to_string(),
            p.to_string(),
            before
                .get(&(topic.to_string(), p))
                .map_or("-".into(), |o| o.to_string()),
            new.to_string(),
        ]);
    }
    if !dry_run {
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| connect.map_err(&format!("committing offsets of group {group:?}"), e))?;
    }
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &rows)?;
    if dry_run {
        writeln!(out, "(dry run: nothing committed)")?;
    }
    Ok(())
}

fn delete(connect: &ConnectArgs, groups: &[String]) -> anyhow::Result<()> {
    let admin = admin(connect)?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let opts = rdkafka::admin::AdminOptions::new()
        .request_timeout(Some(connect.timeout()))
        .operation_timeout(Some(connect.timeout()));
    let results = runtime()?
        .block_on(admin.delete_groups(&names, &opts))
        .map_err(|e| connect.map_err("deleting groups", e))?;
    let mut failed = 0;
    for r in results {
        match r {
            Ok(name) => println!("deleted group {name}"),
            Err((name, code)) => {
                eprintln!("error: cannot delete group {name:?}: {code}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} groups not deleted", groups.len());
    }
    Ok(())
}
