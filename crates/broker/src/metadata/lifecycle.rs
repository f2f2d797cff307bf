//! The broker's lifecycle with its controller, as a KRaft broker's
//! `BrokerLifecycleManager`: it registers (a new incarnation id every
//! process start, its advertised listeners and log dir), heartbeats every
//! `broker.heartbeat.interval.ms` with the metadata offset its loader has
//! published (so the controller unfences it once it caught up, and never
//! fences it for silence), re-registers if the controller forgot it, and
//! on shutdown asks for a controlled shutdown (its leaderships move off
//! before it exits).
//!
//! On one node the controller is in the same process; the calls go
//! through the same [`ControllerClient`] seam a remote controller uses.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_controller::{BrokerHeartbeat, BrokerRegistrationRequest, ControllerError};
use sluice_metadata::record::{BrokerEndpoint, BrokerFeature};
use sluice_metadata::{BrokerEpoch, BrokerId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::client::ControllerClient;
use super::image_cache::ImageCache;
use super::MetadataError;
use crate::config::BrokerConfig;

/// Kafka's `SecurityProtocol.PLAINTEXT` id (the only one Sluice serves).
const PLAINTEXT: i16 = 0;

/// The `metadata.version` this broker writes and supports (Kafka 4.1-IV1).
pub const METADATA_VERSION_LEVEL: i16 = 27;

/// Lowest `metadata.version` this broker reads (Kafka 3.3-IV3, the first
/// KRaft-only level).
pub const MIN_METADATA_VERSION_LEVEL: i16 = 7;

/// How long start-up waits to be unfenced before it gives up.
const UNFENCE_PATIENCE: Duration = Duration::from_secs(120);

/// Registration, heartbeats and controlled shutdown of this broker.
pub struct BrokerLifecycle {
    node: BrokerId,
    client: Arc<dyn ControllerClient>,
    cache: Arc<ImageCache>,
    registration: BrokerRegistrationRequest,
    /// The broker epoch of the current registration (shared with the
    /// producer-id blocks, which the controller hands out per epoch).
    epoch: Arc<AtomicI64>,
    interval: Duration,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl BrokerLifecycle {
    /// Registers this broker, waits until its loader caught up and the
    /// controller unfenced it (its partitions have leaders again), and
    /// starts heartbeating.
    pub async fn start(
        config: &BrokerConfig,
        directory_id: Uuid,
        client: Arc<dyn ControllerClient>,
        cache: Arc<ImageCache>,
        epoch: Arc<AtomicI64>,
    ) -> Result<Arc<BrokerLifecycle>, MetadataError> {
        let registration = BrokerRegistrationRequest {
            broker_id: BrokerId(config.node_id),
            incarnation_id: Uuid::new_v4(),
            listeners: config
                .advertised_listeners
                .iter()
                .map(|l| BrokerEndpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                    security_protocol: PLAINTEXT,
                })
                .collect(),
            features: vec![BrokerFeature {
                name: "metadata.version".into(),
                min_supported_version: MIN_METADATA_VERSION_LEVEL,
                max_supported_version: METADATA_VERSION_LEVEL,
            }],
            rack: None,
            log_dirs: if directory_id.is_nil() {
                Vec::new()
            } else {
                vec![directory_id]
            },
        };
        let me = Arc::new(BrokerLifecycle {
            node: BrokerId(config.node_id),
            client,
            cache,
            registration,
            epoch,
            interval: Duration::from_millis(config.broker_heartbeat_interval_ms.max(1) as u64),
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        });
        me.register().await?;
        let deadline = tokio::time::Instant::now() + UNFENCE_PATIENCE;
        loop {
            if !me.heartbeat(false).await? {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(MetadataError::Controller(ControllerError::Internal(
                    "the controller did not unfence this broker".into(),
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(
            broker = me.node.0,
            epoch = me.epoch(),
            "broker registered and unfenced"
        );
        let task = tokio::spawn(me.clone().run(me.stop.subscribe()));
        *me.task.lock() = Some(task);
        Ok(me)
    }

    /// The current broker epoch (-1 before registration).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    async fn register(&self) -> Result<(), MetadataError> {
        let answer = self
            .client
            .register_broker(self.registration.clone())
            .await?;
        self.epoch
            .store(answer.value.broker_epoch.0, Ordering::Release);
        self.cache
            .wait_for(answer.offset)
            .await
            .map_err(|e| MetadataError::LoaderStopped(e.to_string()))?;
        Ok(())
    }

    /// One heartbeat; waits until its records are published. Returns
    /// whether the broker is still fenced.
    async fn heartbeat(&self, want_shutdown: bool) -> Result<bool, MetadataError> {
        let hb = BrokerHeartbeat {
            broker_id: self.node,
            broker_epoch: BrokerEpoch(self.epoch()),
            current_metadata_offset: self.cache.image().provenance().last_offset,
            want_fence: false,
            want_shutdown,
        };
        let answer = self.client.heartbeat(hb).await?;
        self.cache
            .wait_for(answer.offset)
            .await
            .map_err(|e| MetadataError::LoaderStopped(e.to_string()))?;
        Ok(answer.value.is_fenced)
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            match self.heartbeat(false).await {
                Ok(_) => {}
                Err(MetadataError::Controller(
                    e @ (ControllerError::StaleBrokerEpoch { .. }
                    | ControllerError::BrokerIdNotRegistered(_)),
                )) => {
                    tracing::warn!(error = %e, "controller lost this broker's registration; registering again");
                    if let Err(e) = self.register().await {
                        tracing::warn!(error = %e, "broker registration failed");
                    }
                }
                Err(e) if self.stopping.load(Ordering::Acquire) => {
                    tracing::debug!(error = %e, "heartbeat during shutdown");
                }
                Err(e) => tracing::warn!(error = %e, "broker heartbeat failed"),
            }
        }
    }

    /// Stops heartbeating and asks for a controlled shutdown: the
    /// controller fences this broker and moves its leaderships off; the
    /// change is published before this returns.
    pub async fn controlled_shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        match self.heartbeat(true).await {
            Ok(_) => tracing::info!("controlled shutdown: leaderships moved off this broker"),
            Err(e) => tracing::warn!(error = %e, "controlled shutdown request failed"),
        }
    }

    /// Stops heartbeating without a controlled shutdown.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}
