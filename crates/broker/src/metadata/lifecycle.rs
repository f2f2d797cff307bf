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
use sluice_metadata::{BrokerEpoch, BrokerId};
use sluice_record::Offset;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::client::ControllerClient;
use super::image_cache::ImageCache;
use super::records;
use super::MetadataError;
use crate::config::BrokerConfig;

pub use sluice_metadata::features::{METADATA_VERSION_LEVEL, MIN_METADATA_VERSION_LEVEL};

/// The next heartbeat while fenced (or just re-registered).
const FENCED_RETRY: Duration = Duration::from_millis(50);

/// The pause between two registration attempts at start.
const REGISTER_RETRY: Duration = Duration::from_millis(200);

/// How long start-up waits to be unfenced before it gives up.
const UNFENCE_PATIENCE: Duration = Duration::from_secs(120);

/// Whether a failed registration may pass when tried again: no active
/// controller yet (or none reachable: the forwarding client's timeouts),
/// leadership moving, the previous incarnation's session not expired yet
/// (DUPLICATE_BROKER_REGISTRATION until the controller fences it), or a
/// controller failing as it answered (UNKNOWN_SERVER_ERROR: its metadata
/// log halted on a full disk, found by the cluster simulation, seed 9 of
/// the slow-node faults; Kafka's `BrokerLifecycleManager` retries every
/// error).
fn registration_can_pass(e: &ControllerError) -> bool {
    use sluice_controller::LogError;
    matches!(
        e,
        ControllerError::NotController(_)
            | ControllerError::DuplicateBrokerRegistration(_)
            | ControllerError::Internal(_)
            | ControllerError::Log(
                LogError::NotLeader(_) | LogError::Uncertain | LogError::Fatal(_)
            )
    )
}

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
    /// How long a controlled shutdown waits for the controller's answer:
    /// `broker.session.timeout.ms`, after which the controller fences a
    /// silent broker anyway (Kafka waits up to 5 minutes).
    shutdown_patience: Duration,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl BrokerLifecycle {
    /// Registers this broker, waits until its loader caught up and the
    /// controller unfenced it (its partitions have leaders again), and
    /// starts heartbeating.
    /// `previous_broker_epoch`: the epoch of this node's last clean
    /// shutdown (KIP-966; `None` after a crash).
    pub async fn start(
        config: &BrokerConfig,
        directory_id: Uuid,
        previous_broker_epoch: Option<i64>,
        client: Arc<dyn ControllerClient>,
        cache: Arc<ImageCache>,
        epoch: Arc<AtomicI64>,
    ) -> Result<Arc<BrokerLifecycle>, MetadataError> {
        let registration = BrokerRegistrationRequest {
            broker_id: BrokerId(config.node_id),
            incarnation_id: sluice_runtime::random_uuid(),
            listeners: records::advertised_endpoints(config),
            features: records::supported_features(),
            rack: records::rack(config),
            log_dirs: records::log_dir_ids(directory_id),
            previous_broker_epoch: previous_broker_epoch.map(sluice_metadata::BrokerEpoch),
        };
        let me = Arc::new(BrokerLifecycle {
            node: BrokerId(config.node_id),
            client,
            cache,
            registration,
            epoch,
            interval: Duration::from_millis(config.broker_heartbeat_interval_ms.max(1) as u64),
            shutdown_patience: Duration::from_millis(config.broker_session_timeout_ms.max(1) as u64),
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        });
        let deadline = tokio::time::Instant::now() + UNFENCE_PATIENCE;
        // A cluster's controllers may not have a leader yet (they start
        // together with the brokers): retry what can pass.
        loop {
            match me.register().await {
                Ok(()) => break,
                Err(MetadataError::Controller(e))
                    if registration_can_pass(&e) && tokio::time::Instant::now() < deadline =>
                {
                    tracing::info!(error = %e, "broker registration: the controller is not ready; retrying");
                    tokio::time::sleep(REGISTER_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
        let unfenced_at = loop {
            // A heartbeat the quorum could not settle (an election under
            // way) is retried like the registration: only the deadline
            // ends the wait (found by the cluster simulation, seed 370).
            match me.heartbeat(false).await {
                Ok((false, offset)) => break offset,
                // Still fenced: the next heartbeat reports what the answer
                // published (the controller unfences a caught-up broker).
                Ok((true, offset)) => me.published(offset).await?,
                Err(MetadataError::Controller(e)) if registration_can_pass(&e) => {
                    tracing::info!(error = %e, "broker heartbeat: the controller is not ready; retrying");
                }
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() > deadline {
                return Err(MetadataError::Controller(ControllerError::Internal(
                    "the controller did not unfence this broker".into(),
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Heartbeats go on while the unfence is published here.
        let task = tokio::spawn(me.clone().run(me.stop.subscribe()));
        *me.task.lock() = Some(task);
        if let Err(e) = me.published(unfenced_at).await {
            me.stop().await;
            return Err(e);
        }
        tracing::info!(
            broker = me.node.0,
            epoch = me.epoch(),
            "broker registered and unfenced"
        );
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

    /// One heartbeat: whether the broker is still fenced, and the metadata
    /// offset that holds the answer's records ([`Self::published`] waits
    /// for it).
    ///
    /// The next heartbeat never waits for that: publishing may write to
    /// disk (a new partition's log, checkpoints), and a broker whose next
    /// heartbeat waited for its own slow disk lost its session although
    /// it and the controller were up (cluster simulation, seed 8009: 1.4 s
    /// fsyncs while it created a new topic's log). Kafka's
    /// `BrokerLifecycleManager` schedules the next heartbeat after the
    /// answer, never after the broker's metadata publishing.
    async fn heartbeat(&self, want_shutdown: bool) -> Result<(bool, Offset), MetadataError> {
        let hb = BrokerHeartbeat {
            broker_id: self.node,
            broker_epoch: BrokerEpoch(self.epoch()),
            current_metadata_offset: self.cache.image().provenance().last_offset,
            want_fence: false,
            want_shutdown,
        };
        let answer = self.client.heartbeat(hb).await?;
        Ok((answer.value.is_fenced, answer.offset))
    }

    /// Waits until this broker's image holds `offset`.
    async fn published(&self, offset: Offset) -> Result<(), MetadataError> {
        self.cache
            .wait_for(offset)
            .await
            .map_err(|e| MetadataError::LoaderStopped(e.to_string()))?;
        Ok(())
    }

    /// Heartbeats every `broker.heartbeat.interval.ms`; while fenced (e.g.
    /// the controller fenced this broker after the process was paused past
    /// `broker.session.timeout.ms`), again after [`FENCED_RETRY`], so its
    /// partitions get their leader back at once.
    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut wait = self.interval;
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = self.interval;
            match self.heartbeat(false).await {
                Ok((fenced, _)) => {
                    if fenced {
                        tracing::info!("broker is fenced; heartbeating until unfenced");
                        wait = FENCED_RETRY;
                    }
                }
                Err(MetadataError::Controller(
                    e @ (ControllerError::StaleBrokerEpoch { .. }
                    | ControllerError::BrokerIdNotRegistered(_)),
                )) => {
                    tracing::warn!(error = %e, "controller lost this broker's registration; registering again");
                    match self.register().await {
                        Ok(()) => wait = FENCED_RETRY,
                        Err(e) => tracing::warn!(error = %e, "broker registration failed"),
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
    /// change is published before this returns. Only the first call asks
    /// (the broker asks while it still serves, then again on its way out).
    pub async fn controlled_shutdown(&self) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let asked = async {
            let (_, offset) = self.heartbeat(true).await?;
            self.published(offset).await
        };
        match tokio::time::timeout(self.shutdown_patience, asked).await {
            Ok(Ok(())) => tracing::info!("controlled shutdown: leaderships moved off this broker"),
            Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown request failed"),
            Err(_) => tracing::warn!(
                waited_ms = self.shutdown_patience.as_millis() as u64,
                "controlled shutdown: no answer from the controller; stopping anyway (the controller fences this broker when its session expires)"
            ),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use sluice_storage::{ManualClock, SimFs};

    use super::*;
    use crate::metadata::testing::open_node_with_clock;

    /// Runs the controller's clock `speedup` times faster than real time
    /// for `real`, then returns.
    fn run_clock(clock: &ManualClock, speedup: i64, real: Duration) {
        let end = Instant::now() + real;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
            clock.advance(10 * speedup);
        }
    }

    fn node(heartbeat_ms: &str, clock: &Arc<ManualClock>) -> crate::metadata::testing::Node {
        let config = BrokerConfig::with_overrides(&[
            ("log.dirs", "/sim/data"),
            ("broker.heartbeat.interval.ms", heartbeat_ms),
            ("broker.session.timeout.ms", "9000"),
        ])
        .unwrap();
        let node = open_node_with_clock(config, &Arc::new(SimFs::new()), clock.clone()).unwrap();
        node.block_on(node.controller.create_topic("t", 1, 1, BTreeMap::new()))
            .unwrap();
        node
    }

    #[test]
    fn heartbeats_keep_the_broker_unfenced() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        // 100 ms of real time between heartbeats is 1 s on the controller's
        // clock; 3 s of real time is 30 s there, past the 9 s session.
        let node = node("100", &clock);
        run_clock(&clock, 10, Duration::from_secs(3));
        let image = node.image.image();
        assert!(!image.broker(BrokerId(1)).unwrap().fenced);
        let p = node.image.partition("t", 0).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch.0),
            (BrokerId(1), 0),
            "never moved"
        );
    }

    #[test]
    fn a_fenced_broker_gets_unfenced_by_its_next_heartbeat() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        // Heartbeats every 2 s of real time are 20 s on the controller's
        // clock: the session (9 s) expires between two of them.
        let node = node("2000", &clock);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut fenced_seen = false;
        while Instant::now() < deadline {
            run_clock(&clock, 10, Duration::from_millis(100));
            let image = node.image.image();
            let fenced = image.broker(BrokerId(1)).unwrap().fenced;
            let p = node.image.partition("t", 0).unwrap();
            if fenced {
                fenced_seen = true;
                assert!(!p.has_leader(), "a fenced broker is never a leader");
            } else if fenced_seen && p.has_leader() {
                // Unfenced again and leader again, in a new epoch.
                assert_eq!(p.leader, BrokerId(1));
                assert!(p.leader_epoch.0 >= 2, "{p:?}");
                return;
            }
        }
        panic!("the broker was not fenced and unfenced again (fenced seen: {fenced_seen})");
    }
}
