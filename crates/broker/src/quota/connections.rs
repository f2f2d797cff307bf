//! Connection limits per client IP (Kafka's `ConnectionQuotas`, KIP-612):
//! - `max.connections.per.ip`, with `max.connections.per.ip.overrides`
//!   (`host:count,...`): a connection from an IP that already has that many
//!   is closed as soon as it is accepted;
//! - the `connection_creation_rate` quota of an `ip` entity (or the default
//!   `ip` entity) in the metadata image: a connection over the rate is not
//!   served and is closed after the throttle time (at most one quota
//!   window), as Kafka's acceptor delays closing it; it is not counted in
//!   the rate.
//!
//! - `max.connection.creation.rate` (broker-wide, not on the inter-broker
//!   listener when there are others) and
//!   `listener.name.<l>.max.connection.creation.rate` (KIP-612; the
//!   broker-wide value when a listener has none of its own): over the
//!   rate, the listener stops accepting for the throttle time (at most one
//!   quota window), and the connection waiting is then served, as Kafka's
//!   acceptor waits in `waitForConnectionSlot`. A connection then refused
//!   for its IP's rate is taken back from these rates.
//! - `max.connections` and `listener.name.<l>.max.connections`: [`ConnectionSlots`].
//!
//! The per-IP counts are of live connections across every listener; each
//! admitted connection holds a [`ConnectionPermit`] that gives its count
//! back when dropped. The rate sensors use the client quota windows and
//! expire as the client quota sensors do.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_metadata::image::{ClientQuotaEntity, ClientQuotas, EntityName};

use super::manager::{QuotaWindows, INACTIVE_SENSOR_EXPIRATION_MS, MAX_SENSORS};
use super::rate::SampledRate;
use super::slots::{ConnectionLimits, ConnectionSlots};

/// The quota key of `ip` entities (Kafka's `QuotaConfig.IP_CONNECTION_RATE_OVERRIDE_CONFIG`).
pub const IP_CONNECTION_RATE: &str = "connection_creation_rate";
/// How often idle rate sensors are looked for.
const SWEEP_INTERVAL_MS: i64 = 30_000;

/// `max.connections.per.ip` and its overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerIpLimits {
    pub default: usize,
    pub overrides: HashMap<IpAddr, usize>,
}

impl Default for PerIpLimits {
    fn default() -> Self {
        PerIpLimits {
            default: i32::MAX as usize,
            overrides: HashMap::new(),
        }
    }
}

impl PerIpLimits {
    /// Parses `max.connections.per.ip.overrides` as Kafka does
    /// (`host:count` pairs, comma-separated; a host name is resolved once
    /// here, as Kafka's `InetAddress.getByName`).
    pub fn parse_overrides(raw: &str) -> Result<HashMap<IpAddr, usize>, String> {
        let mut out = HashMap::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (host, count) = item
                .rsplit_once(':')
                .ok_or_else(|| format!("'{item}' is not host:count"))?;
            let count: usize = count
                .trim()
                .parse()
                .map_err(|_| format!("'{count}' in '{item}' is not a connection count"))?;
            let host = host.trim().trim_start_matches('[').trim_end_matches(']');
            let ip = match host.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => (host, 0)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip())
                    .ok_or_else(|| format!("host '{host}' does not resolve"))?,
            };
            out.insert(ip, count);
        }
        Ok(out)
    }

    fn limit(&self, ip: &IpAddr) -> usize {
        self.overrides.get(ip).copied().unwrap_or(self.default)
    }
}

/// `max.connection.creation.rate` and its per-listener overrides
/// (`None`/absent: unlimited, Kafka's `Int.MaxValue`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreationRateLimits {
    pub broker: Option<f64>,
    /// (listener name, rate); names match without regard to case.
    pub listeners: Vec<(String, f64)>,
}

/// Why a new connection is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The IP already has `limit` connections (Kafka's
    /// `TooManyConnectionsException`): close now.
    TooMany { limit: usize },
    /// Over the IP's connection creation rate (Kafka's
    /// `ConnectionThrottledException`): close after `ms`.
    Throttled { ms: i64 },
}

struct RateSensor {
    rate: SampledRate,
    last_ms: i64,
}

#[derive(Default)]
struct State {
    counts: HashMap<IpAddr, usize>,
    rates: HashMap<IpAddr, RateSensor>,
    last_sweep_ms: i64,
    /// `max.connection.creation.rate` and its listener overrides now
    /// (replaced by [`ConnectionQuotas::set_creation_rates`]).
    creation: CreationRateLimits,
    /// The broker-wide creation rate, then one per limited listener.
    broker_rate: Option<SampledRate>,
    listener_rates: HashMap<String, SampledRate>,
}

/// Live connections and creation rates per client IP.
pub struct ConnectionQuotas {
    /// `max.connections` and its listener overrides.
    pub slots: Arc<ConnectionSlots>,
    /// Replaced when the dynamic broker configs change ([`Self::set_per_ip_limits`]).
    limits: parking_lot::RwLock<PerIpLimits>,
    windows: QuotaWindows,
    state: Mutex<State>,
}

impl ConnectionQuotas {
    pub fn new(
        limits: PerIpLimits,
        creation: CreationRateLimits,
        windows: QuotaWindows,
    ) -> ConnectionQuotas {
        let mut state = State::default();
        state.set_creation(creation, windows);
        ConnectionQuotas {
            slots: Arc::new(ConnectionSlots::new(ConnectionLimits::broker(
                i32::MAX as usize,
            ))),
            limits: parking_lot::RwLock::new(limits),
            windows,
            state: Mutex::new(state),
        }
    }

    /// New `max.connection.creation.rate` and listener overrides (dynamic
    /// broker configs): a rate that stays keeps its measurements, a new one
    /// starts empty, a removed one is dropped. A connection already waiting
    /// keeps its delay, as in Kafka.
    pub fn set_creation_rates(&self, creation: CreationRateLimits) {
        let mut state = self.state.lock();
        if state.creation != creation {
            tracing::info!(
                broker = ?creation.broker,
                listeners = ?creation.listeners,
                "max.connection.creation.rate changed"
            );
            state.set_creation(creation, self.windows);
        }
    }

    /// Kafka's `recordConnectionAndGetThrottleTimeMs`: records a connection
    /// accepted on `listener` and returns how long the listener waits
    /// before serving it (0: at once). `protected`: the inter-broker
    /// listener of a broker with several, which the broker-wide rate
    /// leaves out. A listener without its own rate has the broker-wide one
    /// as its own (Kafka reads listener keys with the broker key as
    /// fallback), which matters only to the protected listener.
    pub fn accept_delay_ms(&self, listener: &str, protected: bool, now_ms: i64) -> i64 {
        let bound = self.windows.window_ms;
        let windows = self.windows;
        let mut state = self.state.lock();
        let broker_limit = state.creation.broker;
        let mut ms = 0;
        if let (false, Some(limit), Some(rate)) =
            (protected, broker_limit, state.broker_rate.as_mut())
        {
            rate.record(1.0, now_ms);
            ms = rate.throttle_time_ms(limit, now_ms).min(bound);
        }
        if let Some((limit, rate)) = state.listener_rate(listener, windows) {
            rate.record(1.0, now_ms);
            ms = ms.max(rate.throttle_time_ms(limit, now_ms).min(bound));
        }
        ms
    }

    /// Takes back what [`Self::accept_delay_ms`] recorded for a connection
    /// then refused for its IP's rate (Kafka's `updateListenerMetrics`), so
    /// refused connections do not slow the listener down.
    pub fn unrecord_accept(&self, listener: &str, protected: bool, now_ms: i64) {
        let windows = self.windows;
        let mut state = self.state.lock();
        if let (false, Some(rate)) = (protected, state.broker_rate.as_mut()) {
            rate.record(-1.0, now_ms);
        }
        if let Some((_, rate)) = state.listener_rate(listener, windows) {
            rate.record(-1.0, now_ms);
        }
    }

    /// Kafka's `ConnectionQuotas.inc` for a connection from `ip`: the rate
    /// quota first (`quotas`: the image's client quotas, when it has any),
    /// then the count.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        quotas: Option<&ClientQuotas>,
        now_ms: i64,
    ) -> Result<ConnectionPermit, Refusal> {
        let rate_limit = quotas.and_then(|q| ip_rate_quota(q, &ip));
        let mut state = self.state.lock();
        if let Some(limit) = rate_limit {
            let ms = state.record_rate(ip, limit, self.windows, now_ms);
            if ms > 0 {
                return Err(Refusal::Throttled { ms });
            }
        }
        let limit = self.limits.read().limit(&ip);
        let count = state.counts.entry(ip).or_default();
        if *count >= limit {
            if *count == 0 {
                state.counts.remove(&ip);
            }
            return Err(Refusal::TooMany { limit });
        }
        *count += 1;
        Ok(ConnectionPermit {
            quotas: self.clone(),
            ip,
        })
    }

    /// New `max.connections.per.ip` and overrides (dynamic broker configs):
    /// they apply to connections accepted from now on; as in Kafka, live
    /// connections over a lowered limit are not closed.
    pub fn set_per_ip_limits(&self, limits: PerIpLimits) {
        let mut current = self.limits.write();
        if *current != limits {
            tracing::info!(
                default = limits.default,
                overrides = limits.overrides.len(),
                "max.connections.per.ip changed"
            );
            *current = limits;
        }
    }

    /// Live connections from `ip`.
    pub fn count(&self, ip: &IpAddr) -> usize {
        self.state.lock().counts.get(ip).copied().unwrap_or(0)
    }

    fn release(&self, ip: &IpAddr) {
        let mut state = self.state.lock();
        if let Some(c) = state.counts.get_mut(ip) {
            *c -= 1;
            if *c == 0 {
                state.counts.remove(ip);
            }
        }
    }
}

/// The `connection_creation_rate` of `ip`: its own entity, else the
/// default `ip` entity (Kafka's `connectionRateForIp`).
fn ip_rate_quota(quotas: &ClientQuotas, ip: &IpAddr) -> Option<f64> {
    let entity = |name| ClientQuotaEntity {
        user: None,
        client_id: None,
        ip: Some(name),
    };
    quotas
        .value(
            &entity(EntityName::Name(ip.to_string())),
            IP_CONNECTION_RATE,
        )
        .or_else(|| quotas.value(&entity(EntityName::Default), IP_CONNECTION_RATE))
}

impl State {
    /// Puts `creation` in force, keeping the sensors of rates that stay.
    fn set_creation(&mut self, creation: CreationRateLimits, windows: QuotaWindows) {
        let rate = || SampledRate::new(windows.samples, windows.window_ms);
        self.broker_rate = match creation.broker {
            Some(_) => Some(self.broker_rate.take().unwrap_or_else(rate)),
            None => None,
        };
        let limited = |key: &String| {
            creation.broker.is_some()
                || creation
                    .listeners
                    .iter()
                    .any(|(l, _)| l.eq_ignore_ascii_case(key))
        };
        self.listener_rates.retain(|key, _| limited(key));
        self.creation = creation;
    }

    /// The rate limit of `listener` (its own, else the broker-wide one)
    /// and its sensor, made when first needed.
    fn listener_rate(
        &mut self,
        listener: &str,
        windows: QuotaWindows,
    ) -> Option<(f64, &mut SampledRate)> {
        let limit = self
            .creation
            .listeners
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(listener))
            .map(|(_, r)| *r)
            .or(self.creation.broker)?;
        let sensor = self
            .listener_rates
            .entry(listener.to_ascii_uppercase())
            .or_insert_with(|| SampledRate::new(windows.samples, windows.window_ms));
        Some((limit, sensor))
    }

    /// Records one connection; over the rate it is taken back and the
    /// throttle (bounded by one window, as Kafka's) returned.
    fn record_rate(&mut self, ip: IpAddr, limit: f64, windows: QuotaWindows, now_ms: i64) -> i64 {
        if now_ms - self.last_sweep_ms >= SWEEP_INTERVAL_MS {
            self.last_sweep_ms = now_ms;
            self.rates
                .retain(|_, s| now_ms - s.last_ms < INACTIVE_SENSOR_EXPIRATION_MS);
        }
        if !self.rates.contains_key(&ip) && self.rates.len() >= MAX_SENSORS {
            if let Some(oldest) = self
                .rates
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(ip, _)| *ip)
            {
                self.rates.remove(&oldest);
            }
        }
        let sensor = self.rates.entry(ip).or_insert_with(|| RateSensor {
            rate: SampledRate::new(windows.samples, windows.window_ms),
            last_ms: now_ms,
        });
        sensor.last_ms = now_ms;
        sensor.rate.record(1.0, now_ms);
        let ms = sensor
            .rate
            .throttle_time_ms(limit, now_ms)
            .min(windows.window_ms);
        if ms > 0 {
            sensor.rate.record(-1.0, now_ms);
        }
        ms
    }
}

/// One admitted connection's place in its IP's count.
pub struct ConnectionPermit {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.quotas.release(&self.ip);
    }
}

#[cfg(test)]
mod tests {
    use sluice_metadata::delta::MetadataDelta;
    use sluice_metadata::record::{ClientQuotaRecord, EntityData};
    use sluice_metadata::{MetadataImage, MetadataRecord};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_per_ip_count_and_its_overrides_are_enforced_and_given_back() {
        let limits = PerIpLimits {
            default: 1,
            overrides: PerIpLimits::parse_overrides("127.0.0.1:2, [::1]:0").unwrap(),
        };
        let q = Arc::new(ConnectionQuotas::new(
            limits,
            CreationRateLimits::default(),
            QuotaWindows::default(),
        ));
        let a = q.admit(ip("127.0.0.1"), None, 0).unwrap();
        let _b = q.admit(ip("127.0.0.1"), None, 0).unwrap();
        assert_eq!(
            q.admit(ip("127.0.0.1"), None, 0).err(),
            Some(Refusal::TooMany { limit: 2 })
        );
        let _c = q.admit(ip("10.0.0.1"), None, 0).unwrap();
        assert!(q.admit(ip("10.0.0.1"), None, 0).is_err());
        assert!(q.admit(ip("::1"), None, 0).is_err());
        drop(a);
        assert_eq!(q.count(&ip("127.0.0.1")), 1);
        assert!(q.admit(ip("127.0.0.1"), None, 0).is_ok());
        assert_eq!(q.count(&ip("::1")), 0);
        assert!(PerIpLimits::parse_overrides("nocount").is_err());
        assert!(PerIpLimits::parse_overrides("h:x").is_err());
        assert_eq!(
            PerIpLimits::parse_overrides("localhost:5")
                .unwrap()
                .values()
                .next(),
            Some(&5)
        );
    }

    #[test]
    fn an_ip_over_its_creation_rate_is_throttled_and_not_counted() {
        let mut d = MetadataDelta::new(MetadataImage::empty());
        d.replay_record(&MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: vec![EntityData {
                entity_type: "ip".into(),
                entity_name: None,
            }],
            key: IP_CONNECTION_RATE.into(),
            value: 1.0,
            remove: false,
        }))
        .unwrap();
        let img = d.apply().0;
        let windows = QuotaWindows {
            samples: 2,
            window_ms: 1000,
        };
        let q = Arc::new(ConnectionQuotas::new(
            PerIpLimits::default(),
            CreationRateLimits::default(),
            windows,
        ));
        let quotas = Some(img.client_quotas());
        let _first = q.admit(ip("127.0.0.1"), quotas, 0).unwrap();
        match q.admit(ip("127.0.0.1"), quotas, 0) {
            Err(Refusal::Throttled { ms }) => assert!((1..=1000).contains(&ms), "{ms}"),
            other => panic!("{:?}", other.err()),
        }
        assert_eq!(q.count(&ip("127.0.0.1")), 1);
        // Without quotas in the image, only the count applies.
        assert!(q.admit(ip("127.0.0.1"), None, 0).is_ok());
    }

    #[test]
    fn listener_and_broker_creation_rates_delay_accepting() {
        let windows = QuotaWindows {
            samples: 2,
            window_ms: 1000,
        };
        let limits = CreationRateLimits {
            broker: Some(100.0),
            listeners: vec![("client".into(), 1.0)],
        };
        let q = ConnectionQuotas::new(PerIpLimits::default(), limits, windows);
        assert_eq!(q.accept_delay_ms("CLIENT", false, 0), 0);
        let ms = q.accept_delay_ms("CLIENT", false, 0);
        assert!((1..=1000).contains(&ms), "{ms}");
        // Another listener: only the broker-wide rate, far from its limit.
        assert_eq!(q.accept_delay_ms("OTHER", false, 0), 0);
        for _ in 0..300 {
            q.accept_delay_ms("OTHER", false, 10);
        }
        assert!(q.accept_delay_ms("OTHER", false, 10) > 0);
        // The protected inter-broker listener skips the broker-wide rate,
        // but has it as its own listener rate (Kafka's fallback).
        assert_eq!(q.accept_delay_ms("REPLICATION", true, 10), 0);
        for _ in 0..300 {
            q.accept_delay_ms("REPLICATION", true, 10);
        }
        assert!(q.accept_delay_ms("REPLICATION", true, 10) > 0);
        // Taken back when the IP's rate refuses the connection.
        let q = ConnectionQuotas::new(
            PerIpLimits::default(),
            CreationRateLimits {
                broker: None,
                listeners: vec![("client".into(), 1.0)],
            },
            windows,
        );
        for _ in 0..10 {
            assert_eq!(q.accept_delay_ms("CLIENT", false, 0), 0);
            q.unrecord_accept("CLIENT", false, 0);
        }
    }

    #[test]
    fn creation_rates_change_at_runtime() {
        let windows = QuotaWindows {
            samples: 2,
            window_ms: 1000,
        };
        let q = ConnectionQuotas::new(PerIpLimits::default(), Default::default(), windows);
        for _ in 0..50 {
            assert_eq!(q.accept_delay_ms("CLIENT", false, 0), 0, "unlimited");
        }
        q.set_creation_rates(CreationRateLimits {
            broker: None,
            listeners: vec![("client".into(), 1.0)],
        });
        assert_eq!(q.accept_delay_ms("CLIENT", false, 0), 0);
        assert!(q.accept_delay_ms("CLIENT", false, 0) > 0, "1 per second");
        // The same limit again keeps what was measured.
        q.set_creation_rates(CreationRateLimits {
            broker: None,
            listeners: vec![("CLIENT".into(), 1.0)],
        });
        q.set_creation_rates(CreationRateLimits {
            broker: None,
            listeners: vec![("client".into(), 1.0)],
        });
        assert!(q.accept_delay_ms("CLIENT", false, 0) > 0, "kept its sensor");
        q.set_creation_rates(CreationRateLimits::default());
        assert_eq!(q.accept_delay_ms("CLIENT", false, 0), 0, "unlimited again");
    }
}
