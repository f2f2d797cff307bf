//! `sluice topic create|list|describe|alter-config|delete`.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::messages::DescribeLogDirsRequest;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use super::raw::RawConnection;
use super::{human_bytes, parse_kv, print_table, runtime, ConnectArgs};

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create topics.
    Create {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partition count (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i32>,
        /// Topic config (repeatable): --config retention.ms=60000
        #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = parse_kv)]
        config: Vec<(String, String)>,
    },
    /// List topics with their partition counts.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Also list internal topics (names starting with "__").
        #[arg(long)]
        internal: bool,
    },
    /// Show partitions, leaders, offsets, sizes and configs of topics.
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(required = true)]
        topics: Vec<String>,
        /// Show every config, not only those set on the topic.
        #[arg(long)]
        all_configs: bool,
    },
    /// Set or remove topic configs (other topic overrides are kept).
    AlterConfig {
        #[command(flatten)]
        connect: ConnectArgs,
        topic: String,
        /// Config to set (repeatable).
        #[arg(long, short = 'c', value_name = "KEY=VALUE", value_parser = parse_kv)]
        config: Vec<(String, String)>,
        /// Config override to remove, back to the broker default (repeatable).
        #[arg(long, value_name = "KEY")]
        delete_config: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(required = true)]
        topics: Vec<String>,
    },
}

pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    match args.command {
        TopicCommand::Create {
            connect,
            topics,
            partitions,
            replication_factor,
            config,
        } => create(
            &connect,
            &topics,
            partitions.unwrap_or(-1),
            replication_factor.unwrap_or(-1),
            &config,
        ),
        TopicCommand::List { connect, internal } => list(&connect, internal),
        TopicCommand::Describe {
            connect,
            topics,
            all_configs,
        } => describe(&connect, &topics, all_configs),
        TopicCommand::AlterConfig {
            connect,
            topic,
            config,
            delete_config,
        } => alter_config(&connect, &topic, &config, &delete_config),
        TopicCommand::Delete { connect, topics } => delete(&connect, &topics),
    }
}

pub(crate) fn admin(connect: &ConnectArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    connect
        .client_config()
        .create()
        .context("cannot create the admin client")
}

fn admin_options(connect: &ConnectArgs) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(connect.timeout()))
        .operation_timeout(Some(connect.timeout()))
}

/// Fetches cluster metadata (one topic or all), failing with exit code 3 when
/// the cluster does not answer.
pub(crate) fn metadata(connect: &ConnectArgs, topic: Option<&str>) -> anyhow::Result<Metadata> {
    let consumer: BaseConsumer = connect
        .client_config()
        .set("allow.auto.create.topics", "false")
        .create()
        .context("cannot create a client")?;
    consumer
        .fetch_metadata(topic, connect.timeout())
        .map_err(|e| connect.map_err("fetching metadata", e))
}

fn create(
    connect: &ConnectArgs,
    topics: &[String],
    partitions: i32,
    replication: i32,
    config: &[(String, String)],
) -> anyhow::Result<()> {
    let admin = admin(connect)?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            let mut n = NewTopic::new(t, partitions, TopicReplication::Fixed(replication));
            for (k, v) in config {
                n = n.set(k, v);
            }
            n
        })
        .collect();
    let results = runtime()?
        .block_on(admin.create_topics(&new, &admin_options(connect)))
        .map_err(|e| connect.map_err("creating topics", e))?;
    let mut failed = 0;
    for r in results {
        match r {
            Ok(name) => println!("created topic {name}"),
            Err((name, code)) => {
                let hint = if code == rdkafka::types::RDKafkaErrorCode::InvalidTopic {
                    " (a topic name is 1 to 249 of the characters [a-zA-Z0-9._-], and not \".\" or \"..\")"
                } else {
                    ""
                };
                eprintln!("error: cannot create topic {name:?}: {code}{hint}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} topics not created", topics.len());
    }
    Ok(())
}

fn list(connect: &ConnectArgs, internal: bool) -> anyhow::Result<()> {
    let md = metadata(connect, None)?;
    let mut rows = vec![vec![
        "TOPIC".to_string(),
        "PARTITIONS".into(),
        "REPLICAS".into(),
    ]];
    let mut topics: Vec<_> = md
        .topics()
        .iter()
        .filter(|t| internal || !t.name().starts_with("__"))
        .collect();
    topics.sort_by(|a, b| a.name().cmp(b.name()));
    for t in topics {
        let replicas = t.partitions().first().map_or(0, |p| p.replicas().len());
        rows.push(vec![
            t.name().to_string(),
            t.partitions().len().to_string(),
            replicas.to_string(),
        ]);
    }
    print_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}

/// Bytes on disk per (topic, partition), from DescribeLogDirs (best effort:
/// `None` when the broker does not answer it).
pub(crate) fn partition_sizes(connect: &ConnectArgs) -> Option<BTreeMap<(String, i32), u64>> {
    let security = connect.security().ok()?;
    let mut conn =
        RawConnection::connect_with(&connect.brokers, connect.timeout(), &security.raw()).ok()?;
    let resp = conn
        .send(&DescribeLogDirsRequest::default().with_topics(None), 1)
        .ok()?;
    let mut sizes = BTreeMap::new();
    for dir in resp.results {
        if dir.error_code != 0 {
            continue;
        }
        for t in dir.topics {
            for p in t.partitions {
                *sizes
                    .entry((t.name.0.to_string(), p.partition_index))
                    .or_insert(0u64) += p.partition_size.max(0) as u64;
            }
        }
    }
    Some(sizes)
}

fn describe(connect: &ConnectArgs, topics: &[String], all_configs: bool) -> anyhow::Result<()> {
    let consumer: BaseConsumer = connect
        .client_config()
        .set("allow.auto.create.topics", "false")
        .create()
        .context("cannot create a client")?;
    let admin = admin(connect)?;
    let rt = runtime()?;
    let sizes = partition_sizes(connect);
    let mut out = std::io::stdout().lock();
    let mut missing = Vec::new();
    for (i, name) in topics.iter().enumerate() {
        let md = consumer
            .fetch_metadata(Some(name), connect.timeout())
            .map_err(|e| connect.map_err("fetching metadata", e))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == name) else {
            missing.push(name.clone());
            continue;
        };
        if let Some(err) = t.error() {
            eprintln!(
                "error: topic {name:?}: {:?}",
                rdkafka::types::RDKafkaErrorCode::from(err)
            );
            missing.push(name.clone());
            continue;
        }
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "TOPIC       {name}")?;
        writeln!(out, "PARTITIONS  {}", t.partitions().len())?;
        let mut total_records = 0i64;
        let mut total_bytes = 0u64;
        let mut rows = vec![vec![
            "PARTITION".to_string(),
            "LEADER".into(),
            "REPLICAS".into(),
            "ISR".into(),
            "LOG-START-OFFSET".into(),
            "HIGH-WATERMARK".into(),
            "SIZE".into(),
        ]];
        let mut parts: Vec<_> = t.partitions().iter().collect();
        parts.sort_by_key(|p| p.id());
        for p in parts {
            let (low, high) = consumer
                .fetch_watermarks(name, p.id(), connect.timeout())
                .map_err(|e| connect.map_err("fetching offsets", e))?;
            total_records += high - low;
            let size = sizes
                .as_ref()
                .and_then(|s| s.get(&(name.clone(), p.id())).copied());
            total_bytes += size.unwrap_or(0);
            rows.push(vec![
                p.id().to_string(),
                p.leader().to_string(),
                format!("{:?}", p.replicas()),
                format!("{:?}", p.isr()),
                low.to_string(),
                high.to_string(),
                size.map_or("-".into(), |s| s.to_string()),
            ]);
        }
        writeln!(
            out,
            "RECORDS     {total_records}{}",
            if sizes.is_some() {
                format!(" ({} on disk)", human_bytes(total_bytes))
            } else {
                String::new()
            }
        )?;
        writeln!(out)?;
        print_table(&mut out, &rows)?;
        // Configs.
        let res = rt
            .block_on(
                admin.describe_configs(&[ResourceSpecifier::Topic(name)], &admin_options(connect)),
            )
            .map_err(|e| connect.map_err("describing configs", e))?;
        writeln!(out)?;
        writeln!(out, "CONFIGS")?;
        for r in res {
            let r = r.map_err(|e| anyhow!("describing configs of {name:?}: {e}"))?;
            let mut rows = Vec::new();
            for e in &r.entries {
                if !all_configs && e.source != ConfigSource::DynamicTopic {
                    continue;
                }
                let value = if e.is_sensitive {
                    "(sensitive)".into()
                } else {
                    e.value.clone().unwrap_or_else(|| "null".into())
                };
                rows.push(vec![
                    format!("  {}={value}", e.name),
                    source_name(&e.source).to_string(),
                ]);
            }
            if rows.is_empty() {
                writeln!(
                    out,
                    "  (none set on the topic; --all-configs shows defaults)"
                )?;
            }
            print_table(&mut out, &rows)?;
        }
    }
    if !missing.is_empty() {
        bail!("unknown topic(s): {}", missing.join(", "));
    }
    Ok(())
}

fn source_name(s: &ConfigSource) -> &'static str {
    match s {
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "dynamic broker",
        ConfigSource::DynamicDefaultBroker => "dynamic default broker",
        ConfigSource::StaticBroker => "static broker",
        ConfigSource::Default => "default",
        ConfigSource::Unknown => "unknown",
    }
}

fn alter_config(
    connect: &ConnectArgs,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --config KEY=VALUE and/or --delete-config KEY");
    }
    let admin = admin(connect)?;
    let rt = runtime()?;
    // AlterConfigs (non-incremental) replaces the whole override set, so
    // start from the current overrides.
    let res = rt
        .block_on(
            admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_options(connect)),
        )
        .map_err(|e| connect.map_err("describing configs", e))?;
    let mut current = BTreeMap::new();
    for r in res {
        let r = r.map_err(|e| anyhow!("cannot read the configs of topic {topic:?}: {e}"))?;
        for e in r.entries {
            if e.source == ConfigSource::DynamicTopic {
                if let Some(v) = e.value {
                    current.insert(e.name, v);
                }
            }
        }
    }
    for k in delete {
        if current.remove(k).is_none() {
            eprintln!("warning: {k} is not set on topic {topic}");
        }
    }
    for (k, v) in set {
        current.insert(k.clone(), v.clone());
    }
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in &current {
        alter = alter.set(k, v);
    }
    let results = rt
        .block_on(admin.alter_configs(&[alter], &admin_options(connect)))
        .map_err(|e| connect.map_err("altering configs", e))?;
    for r in results {
        r.map_err(|(_, code)| anyhow!("cannot alter the configs of topic {topic:?}: {code}"))?;
    }
    println!("altered configs of topic {topic}");
    for (k, v) in set {
        println!("  {k}={v}");
    }
    for k in delete {
        println!("  {k} (removed)");
    }
    Ok(())
}

fn delete(connect: &ConnectArgs, topics: &[String]) -> anyhow::Result<()> {
    let admin = admin(connect)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let results = runtime()?
        .block_on(admin.delete_topics(&names, &admin_options(connect)))
        .map_err(|e| connect.map_err("deleting topics", e))?;
    let mut failed = 0;
    for r in results {
        match r {
            Ok(name) => println!("deleted topic {name}"),
            Err((name, code)) => {
                eprintln!("error: cannot delete topic {name:?}: {code}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} topics not deleted", topics.len());
    }
    Ok(())
}
