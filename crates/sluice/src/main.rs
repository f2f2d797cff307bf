//! The `sluice` binary: starts a broker (`sluice` or `sluice serve`) from an
//! optional `server.properties` and repeatable `--override key=value`, as
//! `kafka-server-start.sh` does. The client subcommands (topic, produce,
//! consume, group, cluster) and `storage` (kafka-storage) hang off the same
//! command line. `process.roles=controller` runs the controller role
//! ([`node`]).

mod cli;
mod node;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{RealFs, SystemClock};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-compatible streaming log broker",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `sluice` serves: `sluice --override k=v` = `sluice serve --override k=v`.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    log: cli::LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Create, list, describe, reconfigure and delete topics.
    Topic(cli::topic::TopicArgs),
    /// Produce records from stdin lines or a file.
    Produce(cli::produce::ProduceArgs),
    /// Consume records and print them (kcat-like --format).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe (with lag), reset offsets of and delete consumer groups.
    Group(cli::group::GroupArgs),
    /// List and describe transactions, describe a partition's producers, find and abort hanging transactions (any Kafka-compatible cluster).
    Transactions(cli::txn::TxnArgs),
    /// Describe, upgrade and downgrade the cluster's finalized feature levels, as kafka-features (any Kafka-compatible cluster).
    Features(cli::features::FeaturesArgs),
    /// Create, list and delete ACLs, as kafka-acls (any Kafka-compatible cluster with an authorizer).
    Acl(cli::acl::AclArgs),
    /// Describe and alter client quotas, as kafka-configs --entity-type users|clients|ips (any Kafka-compatible cluster).
    Quotas(cli::quotas::QuotasArgs),
    /// Elect partition leaders, as kafka-leader-election: preferred, or unclean for leaderless ones.
    ElectLeaders(cli::election::ElectArgs),
    /// Move partitions between brokers, as kafka-reassign-partitions: generate, execute, verify, cancel, list.
    Reassign(cli::reassign::ReassignArgs),
    /// Serve the web console for a cluster: overview, topics, messages, consumer groups (any Kafka-compatible cluster).
    Console(cli::console::ConsoleArgs),
    /// Cluster-wide information (`info`) and a local cluster in one command (`start`).
    Cluster(cli::cluster::ClusterArgs),
    /// Format a node's storage for a cluster, like kafka-storage (random-uuid, format, info).
    Storage(cli::storage::StorageArgs),
    /// Test certificates for TLS listeners (`init`: a CA, a broker and a client certificate, in PEM).
    Tls(cli::tls::TlsArgs),
    /// Configuration reference (`sluice config docs` prints docs/configuration.md).
    #[command(hide = true)]
    Config(cli::config_docs::ConfigArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// A Kafka-style server.properties file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a config key, overriding the file (repeatable): --override listeners=PLAINTEXT://127.0.0.1:19092
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    // The broker logs at info by default; client subcommands only warn.
    let default_level = if matches!(command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    cli.log.init(default_level);
    let result = match command {
        Command::Serve(args) => serve(args),
        Command::Topic(args) => cli::topic::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Group(args) => cli::group::run(args),
        Command::Transactions(args) => cli::txn::run(args),
        Command::Features(args) => cli::features::run(args),
        Command::Acl(args) => cli::acl::run(args),
        Command::Quotas(args) => cli::quotas::run(args),
        Command::ElectLeaders(args) => cli::election::run(args),
        Command::Reassign(args) => cli::reassign::run(args),
        Command::Console(args) => cli::console::run(args),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Storage(args) => cli::storage::run(args),
        Command::Tls(args) => cli::tls::run(args),
        Command::Config(args) => cli::config_docs::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(cli::exit_code(&e))
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = args
        .overrides
        .iter()
        .map(|o| BrokerConfig::parse_override(o))
        .collect::<Result<Vec<_>, _>>()?;
    let config = BrokerConfig::from_properties(args.config.as_deref(), &overrides)
        .context("invalid configuration; the broker was not started")?;
    let checked = cli::storage::check_before_serve(&config)?;
    if let (Some(cluster_id), Some(k)) = (&checked, &config.kraft) {
        // A node of a multi-node cluster (process.roles).
        if k.roles.broker {
            sluice_broker::network::tune_allocator();
            raise_open_file_limit();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("sluice")
            .build()
            .context("cannot start the async runtime")?;
        return runtime.block_on(node::run(config, cluster_id.clone()));
    }
    sluice_broker::network::tune_allocator();
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

/// Partitions cost a descriptor each: the soft RLIMIT_NOFILE goes up to
/// the hard limit before anything is opened.
fn raise_open_file_limit() {
    match sluice_storage::descriptors::raise_open_file_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(
                before,
                after,
                "raised the open file limit (RLIMIT_NOFILE) to its hard limit"
            );
        }
        Ok((_, limit)) => tracing::info!(limit, "open file limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit (RLIMIT_NOFILE)"),
    }
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Install the handlers before announcing the port, so a test that sends
    // SIGTERM right after reading the line gets a clean shutdown.
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    let names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
    // Metrics and /health come up before recovery, so /health can say "recovering".
    let metrics = cli::metrics::start(&config).await?;
    let console = cli::console::embedded(&config)?;
    let log_dirs = config.log_dirs.clone();
    let started = std::time::Instant::now();
    let fs = Arc::new(sluice_broker::metrics::MeteredFs(Arc::new(RealFs)));
    let broker = Broker::start(config, fs, Arc::new(SystemClock))
        .await
        .context("broker failed to start")?;
    if let Some(state) = &metrics {
        state.set_ready(broker.context().clone());
    }
    cli::metrics::startup_summary(&broker, &log_dirs, started.elapsed(), metrics.is_some());
    {
        use std::io::Write as _;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for (name, addr) in names.iter().zip(broker.bound_addrs()) {
            writeln!(out, "listening on {name}://{addr}")?;
        }
        out.flush()?;
    }
    if let Some(c) = console {
        cli::console::start_embedded(c, broker.bound_addrs()).await?;
    }
    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        why = broker.log_dir_failure() => {
            // As a cluster node halts (node::run): the failed directory
            // holds the metadata log, or none is left online; a restart
            // recovers from what is on disk.
            tracing::error!(reason = %why, "FATAL: a log directory failed; halting (exit {}) rather than serve a state it cannot trust", node::FATAL_EXIT);
            eprintln!("error: log directory failure: {why}");
            std::process::exit(i32::from(node::FATAL_EXIT));
        }
    };
    tracing::info!(signal = which, "shutting down");
    // A second signal while shutting down stops at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {},
            _ = sigint.recv() => {},
        }
        tracing::warn!("second signal: exiting without a clean shutdown");
        std::process::exit(130);
    });
    broker.shutdown().await.context("clean shutdown failed")?;
    Ok(())
}
