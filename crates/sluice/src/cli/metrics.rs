//! Starts the broker's metrics endpoint (`sluice.metrics.listener`) for
//! `sluice serve` and prints its address.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::anyhow;
use sluice_broker::config::{lookup, Scope};
use sluice_broker::metrics::{serve_http, HttpState};
use sluice_broker::BrokerConfig;

pub const KEY: &str = "sluice.metrics.listener";

/// The configured address; `None` when the key is empty (disabled). A bare
/// port (`0` for an ephemeral one) means that port on 127.0.0.1.
pub fn listener_addr(config: &BrokerConfig) -> anyhow::Result<Option<SocketAddr>> {
    address_of(config, KEY)
}

/// The address a listener key (`KEY`, `sluice.console.listener`) names,
/// by the rules of [`listener_addr`].
pub fn address_of(config: &BrokerConfig, key: &str) -> anyhow::Result<Option<SocketAddr>> {
    let raw = config
        .explicit
        .get(key)
        .map(String::as_str)
        .or_else(|| lookup(Scope::Broker, key).and_then(|k| k.default))
        .unwrap_or("")
        .trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(port) = raw.parse::<u16>() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    let addr = raw
        .parse::<SocketAddr>()
        .map_err(|e| anyhow!("invalid configuration; the broker was not started: {key}={raw:?} is not host:port or a port ({e})"))?;
    Ok(Some(addr))
}

/// Binds and spawns the endpoint; prints `metrics on http://ADDR/metrics`.
/// A bind failure is logged and the broker runs without metrics.
pub async fn start(config: &BrokerConfig) -> anyhow::Result<Option<Arc<HttpState>>> {
    let Some(addr) = listener_addr(config)? else {
        return Ok(None);
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot bind {KEY}; running without metrics");
            return Ok(None);
        }
    };
    let bound = listener.local_addr()?;
    let state = HttpState::new();
    tokio::spawn(serve_http(listener, state.clone()));
    let mut out = std::io::stdout().lock();
    writeln!(out, "metrics on http://{bound}/metrics")?;
    out.flush()?;
    Ok(Some(state))
}

/// One log line once the broker serves: listeners, data dirs, partitions
/// loaded, how many of them were recovered after an unclean shutdown (logs
/// with data in a dir without the clean-shutdown marker: their segments from
/// the recovery point on were re-validated), and the time start-up (recovery
/// included) took.
pub fn startup_summary(
    broker: &sluice_broker::Broker,
    log_dirs: &[std::path::PathBuf],
    took: std::time::Duration,
    metrics: bool,
) {
    let ctx = broker.context();
    let partitions = ctx.replicas.partitions();
    let topics = ctx.image.topics().len();
    let listeners: Vec<String> = broker.bound_addrs().iter().map(|a| a.to_string()).collect();
    let dirs: Vec<String> = log_dirs.iter().map(|d| d.display().to_string()).collect();
    let unclean: Vec<&std::path::PathBuf> = log_dirs
        .iter()
        .filter(|d| !ctx.logs.had_clean_shutdown(d))
        .collect();
    let recovered = partitions
        .iter()
        .filter(|p| {
            let log = p.log();
            log.size_in_bytes() > 0
                && log
                    .dir()
                    .parent()
                    .is_some_and(|parent| unclean.iter().any(|d| d.as_path() == parent))
        })
        .count();
    tracing::info!(
        listeners = %listeners.join(","),
        log_dirs = %dirs.join(","),
        topics,
        partitions = partitions.len(),
        recovered_partitions = recovered,
        took_ms = took.as_millis() as u64,
        metrics,
        "sluice started: {} partition(s) of {topics} topic(s) loaded, {recovered} recovered after an unclean shutdown, in {:.2} s",
        partitions.len(),
        took.as_secs_f64()
    );
}
