//! `sluice console`: serves the web console (`sluice-console`) for any
//! Kafka-compatible cluster, read-only unless `--allow-writes`.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args;
use sluice_console::{Console, ConsoleConfig};

use super::ConnectArgs;

#[derive(Args, Debug)]
pub struct ConsoleArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Address to serve the console on (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Let the console change the cluster (create, edit and delete topics, produce,
    /// reset or delete offsets, delete groups), each after a confirmation.
    #[arg(long)]
    allow_writes: bool,
}

pub fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let security = args.connect.security()?.raw();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let console = Console::bind(ConsoleConfig {
            brokers: args.connect.brokers.clone(),
            listen: args.listen,
            allow_writes: args.allow_writes,
            timeout: args.connect.timeout(),
            security,
        })
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = console.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!("warning: the console listens on {addr}, reachable from other machines; it has no authentication");
        }
        println!(
            "console on http://{addr}/ for the cluster at {} ({})",
            args.connect.brokers,
            if args.allow_writes { "writes enabled" } else { "read-only" }
        );
        let _ = std::io::stdout().flush();
        console
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving the console")
    })
}

/// The broker's own console: `sluice.console.listener`.
pub const LISTENER_KEY: &str = "sluice.console.listener";
/// Whether the broker's own console may change the cluster.
pub const WRITES_KEY: &str = "sluice.console.allow.writes";

/// What the broker's built-in console needs, read from the config before
/// the broker takes it.
#[derive(Clone, Debug)]
pub struct Embedded {
    listen: SocketAddr,
    allow_writes: bool,
    /// Which of the broker's listeners it talks to (the first PLAINTEXT one).
    listener: usize,
}

/// `None` when the console is off, or when no listener speaks PLAINTEXT
/// (the console has no credentials; logged).
pub fn embedded(config: &sluice_broker::BrokerConfig) -> anyhow::Result<Option<Embedded>> {
    let Some(listen) = super::metrics::address_of(config, LISTENER_KEY)? else {
        return Ok(None);
    };
    let allow_writes = config
        .explicit
        .get(WRITES_KEY)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let plaintext = config.listeners.iter().position(|l| {
        config.listener_security(&l.name).protocol == sluice_auth::SecurityProtocol::Plaintext
    });
    let Some(listener) = plaintext else {
        tracing::error!(
            "{LISTENER_KEY} needs a PLAINTEXT listener to talk to; running without the console"
        );
        return Ok(None);
    };
    Ok(Some(Embedded {
        listen,
        allow_writes,
        listener,
    }))
}

/// Binds and spawns the broker's console once its listeners are bound;
/// prints `console on http://ADDR/`. A bind failure is logged and the
/// broker runs without it.
pub async fn start_embedded(e: Embedded, bound: &[SocketAddr]) -> anyhow::Result<()> {
    let Some(mut kafka) = bound.get(e.listener).copied() else {
        return Ok(());
    };
    if kafka.ip().is_unspecified() {
        kafka.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let config = ConsoleConfig {
        brokers: kafka.to_string(),
        listen: e.listen,
        allow_writes: e.allow_writes,
        timeout: std::time::Duration::from_secs(10),
        security: Default::default(),
    };
    let console = match Console::bind(config).await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(addr = %e.listen, error = %err, "cannot bind {LISTENER_KEY}; running without the console");
            return Ok(());
        }
    };
    let addr = console.local_addr()?;
    tokio::spawn(async move {
        if let Err(err) = console.run(std::future::pending()).await {
            tracing::error!(error = %err, "the web console stopped");
        }
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "console on http://{addr}/")?;
    out.flush()?;
    Ok(())
}
