//! Starting and stopping a broker: storage, metadata, partitions, listeners
//! and the periodic storage work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_storage::{Clock, Fs, LogManager};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::context::BrokerContext;
use crate::error::BrokerError;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metadata::{MetadataServices, QuorumMode};
use crate::network::{self, ConnectionConfig, Listener, ListenerTransport, MemoryPool};
use crate::partition::ReplicaManager;
use crate::txn::state_manager::TransactionStateManager;
use crate::txn::TransactionConfig;

/// Shortest period of the background storage timers, whatever the config
/// says (Kafka's defaults for some of them are "never").
const MIN_TIMER_MS: i64 = 100;
/// Longest period (Kafka's `Long.MAX_VALUE` "never" becomes once a day).
const MAX_TIMER_MS: i64 = 86_400_000;

/// A running broker.
pub struct Broker {
    ctx: BrokerContext,
    services: MetadataServices,
    bound: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    timers: Vec<JoinHandle<()>>,
}

impl Broker {
    /// Opens storage (recovering after an unclean shutdown), loads the
    /// topics and their logs, binds every listener and starts serving.
    ///
    /// A listener with port 0 binds an ephemeral port; the advertised
    /// listener of the same name then advertises the bound port.
    ///
    /// One node that is its own controller ([`QuorumMode::SingleNode`]).
    pub async fn start(
        config: BrokerConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
    ) -> Result<Broker, BrokerError> {
        Self::start_in(config, fs, clock, QuorumMode::SingleNode).await
    }

    /// [`Broker::start`] as a node of `quorum` (a cluster's broker role:
    /// its metadata log replica and its way to the active controller).
    pub async fn start_in(
        config: BrokerConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
        quorum: QuorumMode,
    ) -> Result<Broker, BrokerError> {
        if config.listeners.is_empty() {
            return Err(BrokerError::InvalidListener(
                "listeners is empty: nothing to serve on".into(),
            ));
        }
        // Bind first: a broker that cannot listen should not touch its data.
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let listener =
                TcpListener::bind(l.bind_addr())
                    .await
                    .map_err(|source| BrokerError::Bind {
                        listener: l.to_string(),
                        source,
                    })?;
            listeners.push(Listener::Tcp(listener));
        }
        Self::start_on(config, fs, clock, quorum, listeners).await
    }

    /// [`Broker::start_in`] on listeners bound by the caller, one per
    /// `listeners` entry and in its order (the simulation's network).
    pub async fn start_on(
        config: BrokerConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
        quorum: QuorumMode,
        listeners: Vec<Listener>,
    ) -> Result<Broker, BrokerError> {
        let mut config = config;
        // TLS material is read first: a bad keystore fails the start,
        // naming its key, before the data is touched.
        let mut transports = Vec::new();
        for l in &config.listeners {
            transports.push(Arc::new(ListenerTransport::new(
                &l.name,
                &config.listener_security(&l.name),
                config.request_stall_timeout,
            )?));
        }
        if listeners.len() != config.listeners.len() || listeners.is_empty() {
            return Err(BrokerError::InvalidListener(format!(
                "{} bound listeners for {} configured",
                listeners.len(),
                config.listeners.len()
            )));
        }
        let bound = advertise_bound_ports(&mut config, &listeners)?;

        let logs = {
            let config = config.clone();
            let fs = fs.clone();
            let clock = clock.clone();
            sluice_runtime::spawn_blocking(move || -> Result<_, BrokerError> {
                let logs = LogManager::open(config.log_manager_config(), fs, clock)?;
                logs.set_producer_id_expiration_ms(config.producer_id_expiration_ms());
                Ok(logs)
            })
            .await
            .map_err(|e| BrokerError::Io {
                op: "startup",
                source: std::io::Error::other(e.to_string()),
            })??
        };

        let tls = Arc::new(crate::network::tls_reload::TlsListeners::new(
            config
                .listeners
                .iter()
                .zip(&transports)
                .filter_map(|(l, t)| Some((l.name.clone(), t.protocol, t.tls_server()?)))
                .collect(),
        ));
        let group_config = GroupConfig::from_broker(&config);
        let config = Arc::new(config);
        let logs = Arc::new(logs);
        let replicas = Arc::new(ReplicaManager::with_clock(clock.clone()));
        let groups = Arc::new(GroupCoordinator::new(group_config, clock.clone()));
        let txn_state = Arc::new(TransactionStateManager::new(
            TransactionConfig::from_broker(&config),
            clock.clone(),
        ));
        // Built before the metadata publishers: the broker-config publisher
        // changes the per-IP connection limits.
        let quotas = Arc::new(crate::quota::ClientQuotaManager::with_settings(
            config.quota_windows,
            config.controller_quota_windows,
            config.per_ip_limits.clone(),
            config.connection_creation_rates.clone(),
        ));
        quotas
            .connections
            .slots
            .set_limits(config.connection_limits_now());
        // Opens the metadata log (bootstrapped once from the single-node
        // files on upgrade), starts the controller and publishes the
        // metadata: dynamic broker configs first, then every hosted
        // partition's log, __consumer_offsets loading in the background,
        // group configs; then registers this broker and waits until it
        // is unfenced.
        let services = MetadataServices::start(
            config.clone(),
            logs.clone(),
            replicas.clone(),
            crate::metadata::Coordinators {
                groups: groups.clone(),
                txn_state: txn_state.clone(),
                connections: quotas.connections.clone(),
                mutations: quotas.mutations.clone(),
                tls: tls.clone(),
            },
            fs.clone(),
            clock.clone(),
            quorum,
        )
        .await?;
        let txns = crate::txn::build(
            &config,
            txn_state,
            &services,
            replicas.clone(),
            groups.clone(),
        );
        logs.set_producer_id_expiration_ms(config.producer_id_expiration_ms());
        let ctx = BrokerContext {
            config,
            metadata: services.quorum.clone(),
            image: services.cache.clone(),
            controller: services.controller.clone(),
            replicas,
            logs,
            fs,
            groups,
            txns,
            clock,
            fetchers: services.fetchers.clone(),
            quotas,
            tls,
        };
        ctx.groups.start().await?;
        ctx.txns.start();

        let (shutdown, shutdown_rx) = watch::channel(false);
        let listener_tasks = spawn_listeners(&ctx, listeners, transports, &shutdown_rx)?;
        let timers = spawn_timers(&ctx, &services, shutdown_rx);
        for (l, addr) in ctx.config.listeners.iter().zip(&bound) {
            tracing::info!(listener = %l, %addr, "listening");
        }
        Ok(Broker {
            ctx,
            services,
            bound,
            shutdown,
            listeners: listener_tasks,
            timers,
        })
    }

    /// The address of the first listener as bound (the real port for port 0).
    pub fn bound_addr(&self) -> SocketAddr {
        self.bound[0]
    }

    /// Every bound listener address, in `listeners` order.
    pub fn bound_addrs(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// The shared state handlers see (for tests and admin tooling).
    pub fn context(&self) -> &BrokerContext {
        &self.ctx
    }

    /// Resolves with the reason once a failed log directory must halt the
    /// broker (the metadata log's, or the last one online; see
    /// [`crate::log_dir_failure`]); never otherwise.
    pub async fn log_dir_failure(&self) -> String {
        crate::log_dir_failure::fatal(&self.ctx).await
    }

    /// A controlled shutdown while still serving (Kafka's order: the
    /// leaderships move off first, so followers fetch the last records and
    /// waiting `acks=all` requests end with NOT_LEADER_OR_FOLLOWER), then
    /// stops accepting, answers the requests already read (long-polling
    /// fetches answer at once), then flushes every log and writes the
    /// clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        self.services.controlled_shutdown().await;
        self.shutdown.send_replace(true);
        self.ctx.replicas.begin_shutdown();
        self.ctx.groups.shutdown();
        self.ctx.txns.shutdown();
        for l in self.listeners {
            let _ = l.await;
        }
        for t in self.timers {
            let _ = t.await;
        }
        // Lingered group writes of requests whose connection went away.
        self.ctx.groups.flush_writes();
        // The fetchers, then the metadata log before the controller (the
        // controlled shutdown ran first).
        let mut services = self.services;
        services.shutdown(true).await;
        let logs = self.ctx.logs.clone();
        let replicas = self.ctx.replicas.clone();
        // The markers name the epoch this broker stops at (KIP-966): its
        // next registration proves it shut down cleanly.
        let epoch = services
            .broker_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        sluice_runtime::spawn_blocking(move || {
            // The last high watermarks, so a restart exposes nothing less.
            if let Err(e) = logs.write_high_watermarks(&replicas.high_watermarks()) {
                tracing::error!(error = %e, "cannot write the high-watermark checkpoint");
            }
            logs.shutdown_at_epoch((epoch >= 0).then_some(epoch))
        })
        .await
        .map_err(|e| BrokerError::Io {
            op: "shutdown",
            source: std::io::Error::other(e.to_string()),
        })??;
        tracing::info!("broker stopped");
        Ok(())
    }
}

/// Sets the port of every advertised listener that says port 0 to the port
/// its listener bound; returns the bound addresses, in listener order.
fn advertise_bound_ports(
    config: &mut BrokerConfig,
    listeners: &[Listener],
) -> Result<Vec<SocketAddr>, BrokerError> {
    let mut bound = Vec::new();
    for (l, listener) in config.listeners.clone().iter().zip(listeners) {
        let addr = listener.local_addr().map_err(|source| BrokerError::Io {
            op: "local_addr",
            source,
        })?;
        for a in config
            .advertised_listeners
            .iter_mut()
            .filter(|a| a.name == l.name && a.port == 0)
        {
            a.port = addr.port();
        }
        bound.push(addr);
    }
    Ok(bound)
}

/// One accept loop per listener, with its transport (TLS or not) and its
/// SASL gate.
fn spawn_listeners(
    ctx: &BrokerContext,
    listeners: Vec<Listener>,
    transports: Vec<Arc<ListenerTransport>>,
    shutdown_rx: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, BrokerError> {
    let connection_config = ConnectionConfig {
        max_request_bytes: ctx.config.socket_request_max_bytes,
        pool: MemoryPool::for_connections(
            ctx.config.queued_max_request_bytes,
            ctx.config.max_connections,
        ),
        idle_timeout: ctx.config.connections_max_idle,
        stall_timeout: Some(ctx.config.request_stall_timeout),
        sasl: None,
    };
    let gates = transports
        .iter()
        .map(|t| network::sasl::gate_for(&ctx.config, t.name.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .into_iter()
        .zip(transports)
        .zip(gates)
        .map(|((l, transport), gate)| {
            let mut connection_config = connection_config.clone();
            connection_config.sasl = gate;
            tokio::spawn(network::accept_loop(
                l,
                transport,
                ctx.clone(),
                connection_config,
                shutdown_rx.clone(),
            ))
        })
        .collect())
}

/// The periodic work of a serving broker: flushes, compaction, ISR changes
/// and their checks, the high-watermark checkpoint and retention.
fn spawn_timers(
    ctx: &BrokerContext,
    services: &MetadataServices,
    shutdown_rx: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let flush_every = ctx
        .config
        .log_flush_scheduler_interval_ms
        .min(ctx.config.log_flush_offset_checkpoint_interval_ms);
    let logs = ctx.logs.clone();
    let flush_timer = spawn_timer(
        "flush_dirty_logs",
        flush_every,
        shutdown_rx.clone(),
        move || logs.flush_dirty_logs().map(|_| ()),
    );
    let mut timers = Vec::new();
    if ctx.config.log_cleaner_enable {
        // Log compaction: one dirtiest eligible log per run. The period
        // and settings are read before every run, so dynamic
        // log.cleaner.* broker configs apply from the next one.
        let logs = ctx.logs.clone();
        let cleaner = Arc::new(sluice_storage::LogCleaner::new(
            ctx.config.cleaner_settings().1,
        ));
        let config = ctx.config.clone();
        let period_config = ctx.config.clone();
        timers.push(spawn_varying_timer(
            "log_cleaner",
            move || period_config.cleaner_settings().0,
            shutdown_rx.clone(),
            move || {
                cleaner.reconfigure(config.cleaner_settings().1);
                if let Some((tp, s)) = logs.run_cleaner_once(&cleaner)? {
                    tracing::info!(log = %tp, read = s.bytes_read, written = s.bytes_written,
                        kept = s.filter.records_kept, of = s.filter.records_read,
                        dirty_end = s.dirty_end.0, "log cleaner cleaned a log");
                }
                Ok(())
            },
        ));
    }
    // The leader side of replication: ISR changes to the controller
    // and the periodic shrink check; the high-watermark checkpoint.
    timers.push(tokio::spawn(crate::replica::alter::run_isr_manager(
        ctx.replicas.clone(),
        Arc::new(crate::replica::controller::ControllerIsrSender::new(
            services.client.clone(),
            sluice_metadata::BrokerId(ctx.config.node_id),
            services.broker_epoch.clone(),
        )),
        ctx.config.replica_lag_time_max_ms,
        shutdown_rx.clone(),
    )));
    let (logs, replicas) = (ctx.logs.clone(), ctx.replicas.clone());
    timers.push(spawn_timer(
        "high_watermark_checkpoint",
        ctx.config.replica_high_watermark_checkpoint_interval_ms,
        shutdown_rx.clone(),
        move || logs.write_high_watermarks(&replicas.high_watermarks()),
    ));
    let logs = ctx.logs.clone();
    let retention_timer = spawn_timer(
        "enforce_retention",
        ctx.config.log_retention_check_interval_ms,
        shutdown_rx,
        move || {
            let deleted = logs.enforce_retention()?;
            if deleted > 0 {
                tracing::info!(segments = deleted, "retention deleted segments");
            }
            Ok(())
        },
    );
    timers.extend([flush_timer, retention_timer]);
    timers
}

/// Runs `work` on the blocking pool every `period_ms` until shutdown.
/// Like [`spawn_timer`], with the period asked from `period_ms` at least
/// once a second, so a shortened period (a dynamic broker config) applies
/// without waiting out the old one. `work` runs once the period has passed
/// since its last run ended.
fn spawn_varying_timer<P, F>(
    name: &'static str,
    period_ms: P,
    mut shutdown: watch::Receiver<bool>,
    work: F,
) -> JoinHandle<()>
where
    P: Fn() -> i64 + Send + 'static,
    F: Fn() -> Result<(), sluice_storage::StorageError> + Send + Sync + 'static,
{
    const RECHECK: Duration = Duration::from_secs(1);
    let work = Arc::new(work);
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            let period =
                Duration::from_millis(period_ms().clamp(MIN_TIMER_MS, MAX_TIMER_MS) as u64);
            let now = tokio::time::Instant::now();
            if now < last + period {
                let wait = (last + period - now).min(RECHECK);
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let work = work.clone();
            match sluice_runtime::spawn_blocking(move || work()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(timer = name, error = %e, "background storage work failed")
                }
                Err(e) => tracing::error!(timer = name, error = %e, "background task failed"),
            }
            last = tokio::time::Instant::now();
        }
    })
}

fn spawn_timer<F>(
    name: &'static str,
    period_ms: i64,
    mut shutdown: watch::Receiver<bool>,
    work: F,
) -> JoinHandle<()>
where
    F: Fn() -> Result<(), sluice_storage::StorageError> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let period = Duration::from_millis(period_ms.clamp(MIN_TIMER_MS, MAX_TIMER_MS) as u64);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = ticker.tick() => {}
            }
            let work = work.clone();
            match sluice_runtime::spawn_blocking(move || work()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(timer = name, error = %e, "background storage work failed")
                }
                Err(e) => tracing::error!(timer = name, error = %e, "background task failed"),
            }
        }
    })
}
