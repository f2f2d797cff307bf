//! Assembles a node of a multi-node Sluice cluster from its roles
//! (`process.roles`, issue 16): [`controller`] (a voter of the metadata
//! quorum) and [`broker`] (serves clients; follows the metadata log and
//! writes through the active controller), alone or both in one process.
//!
//! ```text
//!            combined node                          broker-only node
//!  ┌──────────────────────────────────┐   ┌──────────────────────────────┐
//!  │ ControllerNode (voter address)   │   │ RaftMetadataLog (observer,   │
//!  │  RaftMetadataLog ◄── raft RPC ───┼───┼─► learner; the leader pushes)│
//!  │  QuorumController, ControllerSrv │   │                              │
//!  │        ▲ its log                 │   │        ▲ its log             │
//!  │ Broker ┘ + RemoteController ─────┼───┼─ Broker + RemoteController ──┼─► active
//!  └──────────────────────────────────┘   └──────────────────────────────┘   controller
//! ```
//!
//! Start order: the controller role first (a broker's registration needs a
//! quorum), then the broker role, which registers and waits until the
//! active controller unfences it. Stop order is the reverse: the broker
//! asks for a controlled shutdown (its leaderships move off while the
//! quorum still has this node's vote), then the controller stops.
//!
//! A fatal metadata-log error (storage failure, a committed record that
//! does not replay) halts the process at once with exit [`FATAL_EXIT`] and
//! an `error` line, rather than serve a state it cannot trust.
//!
//! Why a module of the binary and not a crate: `sluice serve` is its only
//! user, it may use `anyhow`, and it owns the process (signals, exit
//! codes).

pub mod broker;
pub mod controller;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sluice_broker::config::roles::KraftConfig;
use sluice_broker::BrokerConfig;

pub use broker::BrokerNode;
pub use controller::ControllerNode;

/// Exit code of a node halted by a fatal metadata-log error.
pub const FATAL_EXIT: u8 = 70;

/// Where a node keeps its replica of the metadata log: Kafka's
/// `<metadata.log.dir>/__cluster_metadata-0` (the broker's log manager
/// never lists it as a partition).
pub fn metadata_log_path(kraft: &KraftConfig) -> PathBuf {
    kraft
        .metadata_log_dir
        .join(format!("{}-0", sluice_storage::METADATA_TOPIC))
}

fn announce(lines: &[String]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    out.flush()
}

/// The connections a node opens on one path (to the controllers, or to
/// the other brokers), secured as its config says: for Kafka's protocol
/// and for the metadata quorum's RPC. PLAINTEXT paths use plain TCP.
pub struct Secured {
    pub connector: std::sync::Arc<dyn sluice_transport::Connector>,
    pub raft: std::sync::Arc<dyn sluice_controller::raft::Transport>,
    /// The TLS client of this path, which a keystore reload replaces.
    pub tls: Option<sluice_transport::security::ClientTls>,
}

pub fn secured(
    c: &sluice_broker::config::node_security::NodeClientConfig,
) -> anyhow::Result<Secured> {
    use std::sync::Arc;
    let security = sluice_broker::network::node_security::client_security(c)?;
    if security.is_plaintext() {
        return Ok(Secured {
            connector: Arc::new(sluice_transport::TcpConnector),
            raft: Arc::new(sluice_controller::raft::TcpTransport),
            tls: None,
        });
    }
    tracing::info!(listener = %c.listener, protocol = %c.protocol, sasl = ?security.sasl, "connections to peers on this listener are secured");
    let tls = security.tls.clone();
    let secure = Arc::new(sluice_transport::security::SecureConnector::new(security));
    Ok(Secured {
        connector: secure.clone(),
        raft: secure,
        tls,
    })
}

/// `sluice serve` with `process.roles`: runs this node's roles until a
/// signal or a fatal metadata-log error.
pub async fn run(config: BrokerConfig, cluster_id: String) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let kraft = config
        .kraft
        .clone()
        .context("a cluster node needs process.roles")?;
    // Installed before the addresses are announced, so a test that sends
    // SIGTERM right after reading them gets a clean shutdown.
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let controller = if kraft.roles.controller {
        Some(ControllerNode::start(&config, &cluster_id).await?)
    } else {
        None
    };
    if let Some(c) = &controller {
        // Announced at once: the broker role below waits for a quorum,
        // which needs the other voters to reach this one.
        announce(&[format!(
            "listening on {}://{}",
            kraft.controller_listener_names[0],
            c.local_addr()
        )])?;
    }
    let broker = if kraft.roles.broker {
        let voter_log = controller.as_ref().map(ControllerNode::log);
        let b = BrokerNode::start(config, &cluster_id, voter_log).await?;
        announce(&b.listening_lines())?;
        Some(b)
    } else {
        None
    };
    let fatal = async {
        let c = async {
            match &controller {
                Some(c) => c.fatal().await,
                None => std::future::pending().await,
            }
        };
        let b = async {
            match &broker {
                Some(b) => b.fatal().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            why = c => why,
            why = b => why,
        }
    };
    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        why = fatal => {
            tracing::error!(reason = %why, "FATAL: the metadata log failed; halting this node (exit {FATAL_EXIT}) rather than serve a state it cannot trust");
            eprintln!("error: fatal metadata log error: {why}");
            std::process::exit(i32::from(FATAL_EXIT));
        }
    };
    tracing::info!(signal = which, roles = %kraft.roles, "shutting down");
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {},
            _ = sigint.recv() => {},
        }
        tracing::warn!("second signal: exiting without a clean shutdown");
        std::process::exit(130);
    });
    // A quorum without a majority can hold a shutdown; bound each role's.
    if let Some(b) = broker {
        match tokio::time::timeout(Duration::from_secs(60), b.shutdown()).await {
            Ok(r) => r.context("the broker's clean shutdown failed")?,
            Err(_) => bail!("the broker did not shut down within 60 s"),
        }
    }
    if let Some(c) = controller {
        if tokio::time::timeout(Duration::from_secs(30), c.shutdown())
            .await
            .is_err()
        {
            bail!("the controller did not shut down within 30 s");
        }
    }
    Ok(())
}
