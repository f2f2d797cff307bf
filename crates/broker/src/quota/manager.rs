//! The per-group sensors of client quotas (Kafka's `ClientQuotaManager`
//! sensors): one [`SampledRate`] per (quota type, quota group), created on
//! a group's first request under a quota and expired after an hour without
//! one (Kafka's `InactiveSensorExpirationTimeSeconds`), swept at most every
//! 30 s as Kafka's `ExpireSensorTask`. The map is also bounded: at
//! [`MAX_SENSORS`] the least recently used sensor makes room.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_metadata::image::ClientQuotas;

use super::connections::{ConnectionQuotas, CreationRateLimits, PerIpLimits};
use super::mutation::ControllerMutationQuotas;
use super::rate::SampledRate;
use super::resolve::{resolve, QuotaGroup};
pub use sluice_controller::quota::{
    escape, QuotaWindows, INACTIVE_SENSOR_EXPIRATION_MS, MAX_SENSORS,
};

/// How often idle sensors are looked for (Kafka's `ExpireSensorTask` period).
const SWEEP_INTERVAL_MS: i64 = 30_000;

/// What a quota measures, and the key that limits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaType {
    /// Bytes of produce requests per second (`producer_byte_rate`).
    Produce,
    /// Bytes of fetch responses to consumers per second (`consumer_byte_rate`).
    Fetch,
    /// Percent of one thread's time spent handling requests (`request_percentage`).
    Request,
}

impl QuotaType {
    pub fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => "producer_byte_rate",
            QuotaType::Fetch => "consumer_byte_rate",
            QuotaType::Request => "request_percentage",
        }
    }
    /// Kafka's `QuotaType` name (its metric group).
    pub fn name(self) -> &'static str {
        match self {
            QuotaType::Produce => "Produce",
            QuotaType::Fetch => "Fetch",
            QuotaType::Request => "Request",
        }
    }
}

struct Sensor {
    rate: SampledRate,
    last_ms: i64,
    /// Limit in force at the last record (for the metrics).
    limit: f64,
    throttle_ms_total: u64,
    throttles: u64,
}

/// A recorded value's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub group: QuotaGroup,
    /// 0 when within the quota.
    pub throttle_ms: i64,
}

/// Every quota sensor of one broker.
pub struct ClientQuotaManager {
    windows: QuotaWindows,
    state: Mutex<State>,
    /// `controller_mutation_rate` buckets (their own windows), kept by
    /// this node's in-process controller when it has one (single-node
    /// mode) and rendered with this broker's metrics; a controller of a
    /// quorum keeps its own.
    pub mutations: Arc<ControllerMutationQuotas>,
    /// Connections per client IP (`max.connections.per.ip`, `ip` quotas).
    pub connections: std::sync::Arc<ConnectionQuotas>,
}

#[derive(Default)]
struct State {
    sensors: HashMap<(QuotaType, QuotaGroup), Sensor>,
    last_sweep_ms: i64,
}

impl ClientQuotaManager {
    pub fn new(windows: QuotaWindows) -> ClientQuotaManager {
        ClientQuotaManager::with_settings(
            windows,
            QuotaWindows::default(),
            PerIpLimits::default(),
            CreationRateLimits::default(),
        )
    }

    /// With `controller.quota.window.*` for the controller mutation quota
    /// and the per-IP connection limits.
    pub fn with_settings(
        windows: QuotaWindows,
        controller: QuotaWindows,
        per_ip: PerIpLimits,
        creation: CreationRateLimits,
    ) -> ClientQuotaManager {
        ClientQuotaManager {
            windows,
            state: Mutex::new(State::default()),
            mutations: Arc::new(ControllerMutationQuotas::new(controller)),
            connections: std::sync::Arc::new(ConnectionQuotas::new(per_ip, creation, windows)),
        }
    }

    /// Kafka's `maybeRecordAndGetThrottleTimeMs`: records `value` for the
    /// group the request belongs to and returns how long it is throttled;
    /// `None` when no quota applies (nothing is recorded).
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: i64,
    ) -> Option<Recorded> {
        let resolved = resolve(quotas, kind.key(), user, client_id)?;
        let mut state = self.state.lock();
        state.sweep(now_ms);
        let sensor = state.sensor(kind, &resolved.group, self.windows, now_ms);
        sensor.last_ms = now_ms;
        sensor.limit = resolved.limit;
        sensor.rate.record(value, now_ms);
        let mut throttle_ms = sensor.rate.throttle_time_ms(resolved.limit, now_ms);
        if kind == QuotaType::Request {
            // Kafka's ClientRequestQuotaManager bounds it by one window.
            throttle_ms = throttle_ms.min(self.windows.window_ms);
        }
        Some(Recorded {
            group: resolved.group,
            throttle_ms,
        })
    }

    /// Kafka's `getMaxValueInQuotaWindow`: the most a request of `kind`
    /// may carry without being throttled for sure (`None`: no quota).
    pub fn max_value_in_window(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaType,
        user: &str,
        client_id: &str,
    ) -> Option<f64> {
        let r = resolve(quotas, kind.key(), user, client_id)?;
        let windows = self.windows.samples.saturating_sub(1) as f64;
        Some(r.limit * windows * self.windows.window_ms as f64 / 1000.0)
    }

    /// Kafka's `unrecordQuotaSensor`: takes back `value` (a throttled
    /// fetch is answered empty, so its bytes were never sent).
    pub fn unrecord(&self, kind: QuotaType, group: &QuotaGroup, value: f64, now_ms: i64) {
        if let Some(s) = self.state.lock().sensors.get_mut(&(kind, group.clone())) {
            s.rate.record(-value, now_ms);
        }
    }

    /// Counts a throttle of `ms` imposed on `group` (Kafka's throttle-time sensor).
    pub fn throttled(&self, kind: QuotaType, group: &QuotaGroup, ms: i64) {
        if let Some(s) = self.state.lock().sensors.get_mut(&(kind, group.clone())) {
            s.throttles += 1;
            s.throttle_ms_total += ms.max(0) as u64;
        }
    }

    /// How many sensors exist.
    pub fn sensor_count(&self) -> usize {
        self.state.lock().sensors.len()
    }

    /// Prometheus lines per quota group: the measured rate, the limit, and
    /// the throttle time imposed.
    pub fn render(&self, now_ms: i64, out: &mut String) {
        self.mutations.render(now_ms, out);
        let mut state = self.state.lock();
        if state.sensors.is_empty() {
            return;
        }
        let mut rows: Vec<_> = state.sensors.iter_mut().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let _ = writeln!(out, "# HELP sluice_client_quota_rate Measured rate of a client quota group (bytes/s; percent for Request), Kafka's byte-rate/request-time metrics.\n# TYPE sluice_client_quota_rate gauge");
        let label = |(kind, g): &(QuotaType, QuotaGroup)| {
            format!(
                "quota_type=\"{}\",user=\"{}\",client_id=\"{}\"",
                kind.name(),
                escape(&g.user),
                escape(&g.client_id)
            )
        };
        let mut limits = String::new();
        let mut throttle = String::new();
        let mut count = String::new();
        for (key, s) in rows {
            let l = label(key);
            let _ = writeln!(
                out,
                "sluice_client_quota_rate{{{l}}} {}",
                s.rate.rate(now_ms)
            );
            let _ = writeln!(limits, "sluice_client_quota_limit{{{l}}} {}", s.limit);
            let _ = writeln!(
                throttle,
                "sluice_client_quota_throttle_time_ms_total{{{l}}} {}",
                s.throttle_ms_total
            );
            let _ = writeln!(
                count,
                "sluice_client_quota_throttles_total{{{l}}} {}",
                s.throttles
            );
        }
        let _ = writeln!(out, "# TYPE sluice_client_quota_limit gauge\n{limits}# TYPE sluice_client_quota_throttle_time_ms_total counter\n{throttle}# TYPE sluice_client_quota_throttles_total counter\n{count}");
    }
}

impl State {
    fn sweep(&mut self, now_ms: i64) {
        if now_ms - self.last_sweep_ms < SWEEP_INTERVAL_MS {
            return;
        }
        self.last_sweep_ms = now_ms;
        self.sensors
            .retain(|_, s| now_ms - s.last_ms < INACTIVE_SENSOR_EXPIRATION_MS);
    }

    fn sensor(
        &mut self,
        kind: QuotaType,
        group: &QuotaGroup,
        windows: QuotaWindows,
        now_ms: i64,
    ) -> &mut Sensor {
        let key = (kind, group.clone());
        if !self.sensors.contains_key(&key) && self.sensors.len() >= MAX_SENSORS {
            // Rare (100k groups active within an hour): a linear scan.
            if let Some(oldest) = self
                .sensors
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(k, _)| k.clone())
            {
                self.sensors.remove(&oldest);
            }
        }
        self.sensors.entry(key).or_insert_with(|| Sensor {
            rate: SampledRate::new(windows.samples, windows.window_ms),
            last_ms: now_ms,
            limit: 0.0,
            throttle_ms_total: 0,
            throttles: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use sluice_metadata::delta::MetadataDelta;
    use sluice_metadata::record::{ClientQuotaRecord, EntityData};
    use sluice_metadata::{MetadataImage, MetadataRecord};

    use super::*;

    fn quotas(pairs: &[(&str, Option<&str>)], key: &str, value: f64) -> MetadataImage {
        let mut d = MetadataDelta::new(MetadataImage::empty());
        d.replay_record(&MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: pairs
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: (*t).into(),
                    entity_name: n.map(Into::into),
                })
                .collect(),
            key: key.into(),
            value,
            remove: false,
        }))
        .unwrap();
        d.apply().0
    }

    #[test]
    fn a_group_over_its_quota_is_throttled_and_others_are_not() {
        let img = quotas(&[("client-id", Some("slow"))], "producer_byte_rate", 1000.0);
        let m = ClientQuotaManager::new(QuotaWindows::default());
        let q = img.client_quotas();
        // 10 windows' worth at 1000 B/s is fine; more is throttled.
        let r = m
            .record(q, QuotaType::Produce, "ANONYMOUS", "slow", 10_000.0, 0)
            .unwrap();
        assert_eq!(r.throttle_ms, 0);
        let r = m
            .record(q, QuotaType::Produce, "ANONYMOUS", "slow", 1_000.0, 0)
            .unwrap();
        // (11000/10 - 1000) / 1000 * 10 s = 1 s.
        assert_eq!(r.throttle_ms, 1000);
        // No quota for fetches or for other clients: nothing recorded.
        assert!(m
            .record(q, QuotaType::Fetch, "ANONYMOUS", "slow", 1e9, 10)
            .is_none());
        assert!(m
            .record(q, QuotaType::Produce, "ANONYMOUS", "fast", 1e9, 10)
            .is_none());
        assert_eq!(m.sensor_count(), 1);
        m.throttled(QuotaType::Produce, &r.group, r.throttle_ms);
        let mut out = String::new();
        m.render(0, &mut out);
        assert!(out.contains("sluice_client_quota_throttle_time_ms_total{quota_type=\"Produce\",user=\"\",client_id=\"slow\"} 1000"), "{out}");
        // Taking bytes back lowers the rate.
        m.unrecord(QuotaType::Produce, &r.group, 1_000.0, 0);
        let r = m
            .record(q, QuotaType::Produce, "ANONYMOUS", "slow", 0.0, 0)
            .unwrap();
        assert_eq!(r.throttle_ms, 0);
    }

    #[test]
    fn idle_sensors_expire_and_the_map_is_bounded() {
        let img = quotas(&[("client-id", None)], "consumer_byte_rate", 1e12);
        let m = ClientQuotaManager::new(QuotaWindows::default());
        let q = img.client_quotas();
        m.record(q, QuotaType::Fetch, "u", "a", 1.0, 0).unwrap();
        m.record(
            q,
            QuotaType::Fetch,
            "u",
            "b",
            1.0,
            INACTIVE_SENSOR_EXPIRATION_MS - 1,
        )
        .unwrap();
        assert_eq!(m.sensor_count(), 2);
        m.record(
            q,
            QuotaType::Fetch,
            "u",
            "b",
            1.0,
            INACTIVE_SENSOR_EXPIRATION_MS + 40_000,
        )
        .unwrap();
        assert_eq!(m.sensor_count(), 1);
        let mut s = m.state.lock();
        for i in 0..MAX_SENSORS + 10 {
            let g = QuotaGroup {
                user: String::new(),
                client_id: i.to_string(),
            };
            s.sensor(QuotaType::Fetch, &g, QuotaWindows::default(), i as i64);
        }
        assert_eq!(s.sensors.len(), MAX_SENSORS);
    }
}
