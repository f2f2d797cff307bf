//! [`BrokerLifecycleManager`] (Kafka's name): a broker's side of the KRaft
//! broker lifecycle, over a [`ControllerChannel`].
//!
//! - Registers with its node id, a per-process incarnation id, listeners,
//!   rack, cluster id and features; the controller answers a broker epoch.
//!   A broker starts fenced ([`BrokerState::Recovery`]).
//! - Heartbeats every `broker.heartbeat.interval.ms` with the metadata
//!   offset the broker has applied (from the broker's loader). The
//!   controller unfences it once that offset reaches its registration; the
//!   status follows the controller's answer (fenced, caught up).
//! - Controlled shutdown: heartbeats carry WantShutDown until the
//!   controller answers ShouldShutDown (leaderships moved off); then the
//!   manager stops ([`BrokerState::ShuttingDown`]).
//! - STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED (the controller lost or
//!   replaced the registration) makes it register again; DUPLICATE_BROKER_
//!   REGISTRATION is retried (the old session expires);
//!   INCONSISTENT_CLUSTER_ID stops it (this node belongs to another
//!   cluster).
//!
//! Timestamps come from the [`Clock`] seam; the pacing between heartbeats
//! is a tokio timer (tests pause tokio time or call the one-step methods
//! [`BrokerLifecycleManager::register`] and
//! [`BrokerLifecycleManager::heartbeat`] themselves).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerRegistrationRequest};
use parking_lot::Mutex;
use sluice_metadata::record::{BrokerEndpoint, BrokerFeature};
use sluice_protocol::kafka_protocol;
use sluice_storage::Clock;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::channel::ControllerChannel;
use crate::codes::{BROKER_ID_NOT_REGISTERED, INCONSISTENT_CLUSTER_ID, STALE_BROKER_EPOCH};
use crate::error::TransportError;
use crate::server::str_bytes;

/// What the lifecycle manager needs to know about its broker.
#[derive(Clone, Debug)]
pub struct LifecycleConfig {
    /// `node.id`.
    pub node_id: i32,
    /// The cluster id of `meta.properties`.
    pub cluster_id: String,
    /// New and random for every process start ([`Uuid::new_v4`]).
    pub incarnation_id: Uuid,
    /// The broker's listeners as advertised.
    pub listeners: Vec<BrokerEndpoint>,
    /// The feature ranges the broker supports.
    pub features: Vec<BrokerFeature>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Directory ids of the online log dirs.
    pub log_dirs: Vec<Uuid>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
}

/// Kafka's `BrokerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerState {
    NotRunning,
    /// Not registered yet.
    Starting,
    /// Registered and fenced, catching up with the metadata log.
    Recovery,
    /// Unfenced.
    Running,
    /// Asking the controller for a controlled shutdown.
    PendingControlledShutdown,
    /// The controller allowed the shutdown.
    ShuttingDown,
}

/// What the broker sees of its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleStatus {
    pub state: BrokerState,
    /// The epoch of the current registration.
    pub broker_epoch: Option<i64>,
    pub fenced: bool,
    pub caught_up: bool,
    /// The controller's clock-free answer: shut down now.
    pub should_shutdown: bool,
    /// When the last heartbeat was answered ([`Clock`] milliseconds).
    pub last_heartbeat_ms: Option<i64>,
    /// The last error the controller answered (code, what was refused).
    pub last_error: Option<(i16, String)>,
}

/// The source of the broker's applied metadata offset (its loader's).
pub type MetadataOffsetFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The broker lifecycle manager (see the module docs).
pub struct BrokerLifecycleManager {
    config: LifecycleConfig,
    channel: Arc<ControllerChannel>,
    clock: Arc<dyn Clock>,
    metadata_offset: MetadataOffsetFn,
    status: watch::Sender<LifecycleStatus>,
    want_shutdown: AtomicBool,
    wake: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl BrokerLifecycleManager {
    pub fn new(
        config: LifecycleConfig,
        channel: Arc<ControllerChannel>,
        clock: Arc<dyn Clock>,
        metadata_offset: MetadataOffsetFn,
    ) -> Arc<BrokerLifecycleManager> {
        let status = watch::channel(LifecycleStatus {
            state: BrokerState::Starting,
            broker_epoch: None,
            fenced: true,
            caught_up: false,
            should_shutdown: false,
            last_heartbeat_ms: None,
            last_error: None,
        })
        .0;
        Arc::new(BrokerLifecycleManager {
            config,
            channel,
            clock,
            metadata_offset,
            status,
            want_shutdown: AtomicBool::new(false),
            wake: Notify::new(),
            task: Mutex::new(None),
        })
    }

    pub fn status(&self) -> LifecycleStatus {
        self.status.borrow().clone()
    }

    /// Follows every status change.
    pub fn subscribe(&self) -> watch::Receiver<LifecycleStatus> {
        self.status.subscribe()
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.config.heartbeat_interval_ms.max(1))
    }

    /// One registration (retried on other voters for up to a heartbeat
    /// interval). Returns the new broker epoch.
    pub async fn register(&self) -> Result<i64, TransportError> {
        let c = &self.config;
        let req = BrokerRegistrationRequest::default()
            .with_broker_id(c.node_id.into())
            .with_cluster_id(str_bytes(c.cluster_id.clone()))
            .with_incarnation_id(c.incarnation_id)
            .with_listeners(c.listeners.iter().map(listener).collect())
            .with_features(c.features.iter().map(feature).collect())
            .with_rack(c.rack.clone().map(str_bytes))
            .with_log_dirs(c.log_dirs.clone())
            .with_previous_broker_epoch(self.status().broker_epoch.unwrap_or(-1));
        let resp = self
            .channel
            .send(&req, self.interval().max(Duration::from_secs(1)))
            .await?;
        if resp.error_code != 0 {
            let message = format!("broker registration of node {} refused", c.node_id);
            tracing::warn!(node = c.node_id, code = resp.error_code, "{message}");
            self.status
                .send_modify(|s| s.last_error = Some((resp.error_code, message.clone())));
            return Err(TransportError::Rejected {
                code: resp.error_code,
                message,
            });
        }
        tracing::info!(
            node = c.node_id,
            epoch = resp.broker_epoch,
            "registered with the controller"
        );
        self.status.send_modify(|s| {
            s.broker_epoch = Some(resp.broker_epoch);
            s.state = BrokerState::Recovery;
            s.fenced = true;
            s.caught_up = false;
            s.last_error = None;
        });
        Ok(resp.broker_epoch)
    }

    /// One heartbeat with the current metadata offset (and WantShutDown
    /// once a controlled shutdown was asked for). Updates the status from
    /// the answer; STALE_BROKER_EPOCH and BROKER_ID_NOT_REGISTERED forget
    /// the registration so the next step registers again.
    pub async fn heartbeat(&self) -> Result<LifecycleStatus, TransportError> {
        let Some(epoch) = self.status().broker_epoch else {
            return Err(TransportError::Rejected {
                code: BROKER_ID_NOT_REGISTERED,
                message: "not registered".into(),
            });
        };
        let want_shutdown = self.want_shutdown.load(Ordering::SeqCst);
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(self.config.node_id.into())
            .with_broker_epoch(epoch)
            .with_current_metadata_offset((self.metadata_offset)())
            .with_want_fence(false)
            .with_want_shut_down(want_shutdown);
        let resp = self
            .channel
            .send(&req, self.interval().max(Duration::from_secs(1)))
            .await?;
        if resp.error_code != 0 {
            let message = format!(
                "heartbeat of node {} at epoch {epoch} refused",
                self.config.node_id
            );
            let forget = matches!(
                resp.error_code,
                STALE_BROKER_EPOCH | BROKER_ID_NOT_REGISTERED
            );
            tracing::warn!(
                node = self.config.node_id,
                code = resp.error_code,
                reregister = forget,
                "{message}"
            );
            self.status.send_modify(|s| {
                if forget {
                    s.broker_epoch = None;
                    s.state = BrokerState::Starting;
                    s.fenced = true;
                }
                s.last_error = Some((resp.error_code, message.clone()));
            });
            return Err(TransportError::Rejected {
                code: resp.error_code,
                message,
            });
        }
        let now = self.clock.now_ms();
        self.status.send_modify(|s| {
            s.fenced = resp.is_fenced;
            s.caught_up = resp.is_caught_up;
            s.should_shutdown = resp.should_shut_down;
            s.last_heartbeat_ms = Some(now);
            s.last_error = None;
            s.state = if resp.should_shut_down {
                BrokerState::ShuttingDown
            } else if want_shutdown {
                BrokerState::PendingControlledShutdown
            } else if resp.is_fenced {
                BrokerState::Recovery
            } else {
                BrokerState::Running
            };
        });
        Ok(self.status())
    }

    /// Starts registering and heartbeating in the background.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        *self.task.lock() = Some(tokio::spawn(async move { me.run().await }));
    }

    async fn run(&self) {
        loop {
            let registered = self.status().broker_epoch.is_some();
            let step = if registered {
                self.heartbeat().await.map(|_| ())
            } else {
                self.register().await.map(|_| ())
            };
            match step {
                Err(TransportError::Rejected {
                    code: INCONSISTENT_CLUSTER_ID,
                    ..
                }) => {
                    tracing::error!(node = self.config.node_id, cluster = %self.config.cluster_id, "the controller belongs to another cluster: stopping");
                    self.status
                        .send_modify(|s| s.state = BrokerState::NotRunning);
                    return;
                }
                Err(e) => {
                    tracing::debug!(node = self.config.node_id, error = %e, "lifecycle step failed")
                }
                Ok(()) if self.status().should_shutdown => return,
                // Just registered: heartbeat at once.
                Ok(()) if !registered => continue,
                Ok(()) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval()) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Asks for a controlled shutdown: the next heartbeats carry
    /// WantShutDown. Wait with [`Self::wait_for_shutdown`].
    pub fn begin_controlled_shutdown(&self) {
        self.want_shutdown.store(true, Ordering::SeqCst);
        self.status.send_modify(|s| {
            if s.state != BrokerState::ShuttingDown {
                s.state = BrokerState::PendingControlledShutdown;
            }
        });
        self.wake.notify_one();
    }

    /// Waits until the controller answered ShouldShutDown.
    pub async fn wait_for_shutdown(&self) {
        let mut rx = self.subscribe();
        let _ = rx.wait_for(|s| s.should_shutdown).await;
    }

    /// Stops the background task (without a controlled shutdown).
    pub async fn stop(&self) {
        let task = self.task.lock().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        self.status
            .send_modify(|s| s.state = BrokerState::NotRunning);
    }
}

fn listener(e: &BrokerEndpoint) -> Listener {
    Listener::default()
        .with_name(str_bytes(e.name.clone()))
        .with_host(str_bytes(e.host.clone()))
        .with_port(e.port)
        .with_security_protocol(e.security_protocol)
}

fn feature(f: &BrokerFeature) -> Feature {
    Feature::default()
        .with_name(str_bytes(f.name.clone()))
        .with_min_supported_version(f.min_supported_version)
        .with_max_supported_version(f.max_supported_version)
}
