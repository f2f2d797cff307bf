//! Replication throttles (Kafka's `ReplicationQuotaManager`): a byte-rate
//! bound on replication traffic of throttled replicas, used by
//! `kafka-reassign-partitions --throttle` so a reassignment does not
//! starve producers and consumers.
//!
//! The rate is measured as Kafka's `Rate` over `replication.quota.window.num`
//! samples of `replication.quota.window.size.seconds` each: the bytes of the
//! samples not yet expired, divided by the time since the oldest sample
//! started, counted as at least `num - 1` whole windows (so a quiet start
//! does not let one burst look slow). The quota is exceeded while that rate
//! is above the bound (`*.replication.throttled.rate`, a dynamic broker
//! config; `i64::MAX`, the default, means no throttle).
//!
//! Which replicas are throttled is a topic's
//! `leader.replication.throttled.replicas` (the leader side) /
//! `follower.replication.throttled.replicas`: `*`, or `partition:broker`
//! pairs; a broker keeps the partitions whose pair names itself
//! ([`parse_throttled`], Kafka's `TopicConfigHandler`). As in Kafka:
//!
//! - the leader counts the bytes it serves followers for throttled
//!   partitions, in-sync followers included (so the total stays bounded),
//!   but while the quota is exceeded it gives no bytes only to followers
//!   outside the ISR (`ReplicaManager.shouldLeaderThrottle`);
//! - the follower counts the bytes it fetches for throttled partitions and,
//!   while the quota is exceeded, leaves out of its fetch requests those
//!   it has not caught up on (`ReplicaFetcherThread.shouldFollowerThrottle`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

/// No bound (the config default, `Long.MAX_VALUE`).
pub const UNLIMITED: i64 = i64::MAX;

/// One direction's quota (the leader's bytes served to throttled followers,
/// or the follower's bytes fetched for throttled partitions).
#[derive(Debug)]
pub struct ReplicationQuota {
    /// Bytes per second; [`UNLIMITED`] = off.
    bound: AtomicI64,
    window_ms: AtomicI64,
    windows: AtomicI64,
    /// (sample start ms, bytes), oldest first.
    samples: Mutex<VecDeque<(i64, u64)>>,
    /// The throttled partitions of each topic on this broker's side.
    throttled: RwLock<HashMap<String, Throttled>>,
}

/// The partitions of one topic a side throttles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Throttled {
    /// `*`: every partition.
    All,
    Partitions(BTreeSet<i32>),
}

impl Default for ReplicationQuota {
    fn default() -> Self {
        ReplicationQuota {
            bound: AtomicI64::new(UNLIMITED),
            window_ms: AtomicI64::new(1_000),
            windows: AtomicI64::new(11),
            samples: Mutex::new(VecDeque::new()),
            throttled: RwLock::new(HashMap::new()),
        }
    }
}

impl ReplicationQuota {
    /// Sets the bound (bytes/s; negative or [`UNLIMITED`] = off).
    pub fn set_bound(&self, bytes_per_s: i64) {
        let b = if bytes_per_s < 0 {
            UNLIMITED
        } else {
            bytes_per_s
        };
        self.bound.store(b, Ordering::Release);
    }

    /// `replication.quota.window.num` and `.window.size.seconds`.
    pub fn set_windows(&self, windows: i64, window_ms: i64) {
        self.windows.store(windows.max(1), Ordering::Release);
        self.window_ms.store(window_ms.max(1), Ordering::Release);
    }

    pub fn bound(&self) -> i64 {
        self.bound.load(Ordering::Acquire)
    }

    /// Whether a bound is set.
    pub fn is_enabled(&self) -> bool {
        self.bound() != UNLIMITED
    }

    fn purge(&self, samples: &mut VecDeque<(i64, u64)>, now_ms: i64) {
        let horizon = self.windows.load(Ordering::Acquire) * self.window_ms.load(Ordering::Acquire);
        while samples
            .front()
            .is_some_and(|&(start, _)| start + horizon <= now_ms)
        {
            samples.pop_front();
        }
    }

    /// Counts `bytes` of throttled replication at `now_ms`.
    pub fn record(&self, bytes: u64, now_ms: i64) {
        if bytes == 0 || !self.is_enabled() {
            return;
        }
        let window = self.window_ms.load(Ordering::Acquire);
        let mut samples = self.samples.lock();
        self.purge(&mut samples, now_ms);
        match samples.back_mut() {
            Some((start, b)) if now_ms - *start < window => *b += bytes,
            _ => samples.push_back((now_ms, bytes)),
        }
    }

    /// The measured rate in bytes per second.
    pub fn rate(&self, now_ms: i64) -> f64 {
        let window = self.window_ms.load(Ordering::Acquire);
        let windows = self.windows.load(Ordering::Acquire);
        let mut samples = self.samples.lock();
        self.purge(&mut samples, now_ms);
        let Some(&(oldest, _)) = samples.front() else {
            return 0.0;
        };
        let total: u64 = samples.iter().map(|&(_, b)| b).sum();
        let mut elapsed = (now_ms - oldest).max(0);
        let full = elapsed / window;
        if full < windows - 1 {
            elapsed += (windows - 1 - full) * window;
        }
        total as f64 * 1_000.0 / elapsed.max(1) as f64
    }

    /// Kafka's `isQuotaExceeded`: a bound is set and the rate is above it.
    pub fn is_exceeded(&self, now_ms: i64) -> bool {
        self.is_enabled() && self.rate(now_ms) > self.bound() as f64
    }

    /// The throttled partitions of `topic` (`None`: none).
    pub fn set_throttled(&self, topic: &str, throttled: Option<Throttled>) {
        let mut map = self.throttled.write();
        match throttled {
            Some(t) => {
                map.insert(topic.to_string(), t);
            }
            None => {
                map.remove(topic);
            }
        }
    }

    /// Kafka's `isThrottled`: the topic's list names this partition on this
    /// broker's side.
    pub fn is_throttled(&self, topic: &str, partition: i32) -> bool {
        match self.throttled.read().get(topic) {
            Some(Throttled::All) => true,
            Some(Throttled::Partitions(set)) => set.contains(&partition),
            None => false,
        }
    }
}

/// The leader's and the follower's quotas of one broker.
#[derive(Debug, Default)]
pub struct ReplicationQuotas {
    pub leader: Arc<ReplicationQuota>,
    pub follower: Arc<ReplicationQuota>,
}

/// The quota settings in effect (broker configs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaSettings {
    /// `leader.replication.throttled.rate`.
    pub leader_rate: i64,
    /// `follower.replication.throttled.rate`.
    pub follower_rate: i64,
    /// `replication.quota.window.num`.
    pub windows: i64,
    /// `replication.quota.window.size.seconds`, in ms.
    pub window_ms: i64,
}

impl QuotaSettings {
    /// The settings in effect in `config`: the rates are dynamic-only keys,
    /// the window keys static ones, as in Kafka.
    pub fn from_config(config: &crate::config::BrokerConfig) -> QuotaSettings {
        use crate::config::dynamic::dynamic_key_def;
        use crate::config::{parse_value, Value};
        let effective = config.effective_broker_values();
        let long = |name: &str, fallback: i64| -> i64 {
            let Some(def) = dynamic_key_def(name) else {
                return fallback;
            };
            let raw = effective.get(name).map(|(v, _)| v.as_str()).or(def.default);
            match raw.and_then(|r| parse_value(def, r).ok()) {
                Some(Value::Long(v)) => v,
                _ => fallback,
            }
        };
        QuotaSettings {
            leader_rate: long("leader.replication.throttled.rate", UNLIMITED),
            follower_rate: long("follower.replication.throttled.rate", UNLIMITED),
            windows: long("replication.quota.window.num", 11),
            window_ms: long("replication.quota.window.size.seconds", 1).saturating_mul(1_000),
        }
    }
}

impl ReplicationQuotas {
    /// Applies the broker's current settings to both sides.
    pub fn configure(&self, s: QuotaSettings) {
        for (q, rate) in [
            (&self.leader, s.leader_rate),
            (&self.follower, s.follower_rate),
        ] {
            q.set_windows(s.windows, s.window_ms);
            q.set_bound(rate);
        }
    }

    /// A topic's `leader.` / `follower.replication.throttled.replicas`
    /// (absent = empty) as they apply to `broker`.
    pub fn set_topic(&self, topic: &str, leader: &str, follower: &str, broker: i32) {
        self.leader
            .set_throttled(topic, parse_throttled(leader, broker));
        self.follower
            .set_throttled(topic, parse_throttled(follower, broker));
    }
}

/// What a `*.replication.throttled.replicas` value throttles on `broker`'s
/// side: `*` every partition, else the partitions of the `partition:broker`
/// pairs naming `broker` (`None` when none does).
pub fn parse_throttled(value: &str, broker: i32) -> Option<Throttled> {
    let value = value.trim();
    if value == "*" {
        return Some(Throttled::All);
    }
    let set: BTreeSet<i32> = value
        .split(',')
        .filter_map(|item| {
            let (p, b) = item.trim().split_once(':')?;
            let p = p.trim().parse::<i32>().ok()?;
            (b.trim().parse::<i32>() == Ok(broker)).then_some(p)
        })
        .collect();
    (!set.is_empty()).then_some(Throttled::Partitions(set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_at_least_all_but_one_window() {
        let q = ReplicationQuota::default();
        q.set_windows(11, 1_000);
        q.record(1_000_000, 0);
        assert_eq!(q.rate(0), 0.0, "off: nothing recorded");
        q.set_bound(50_000);
        q.record(1_000_000, 0);
        // 1 MB over at least 10 s: 100 kB/s, above 50 kB/s.
        assert_eq!(q.rate(1_000), 100_000.0);
        assert!(q.is_exceeded(1_000));
        assert_eq!(q.rate(20_000), 0.0, "expired after 11 windows");
        q.record(300_000, 21_000);
        q.record(300_000, 25_500);
        assert_eq!(q.rate(26_000), 60_000.0);
        assert!(q.is_exceeded(26_000));
        assert!(!q.is_exceeded(32_000), "the first sample expired");
    }

    #[test]
    fn throttled_replica_lists_keep_this_brokers_pairs() {
        assert_eq!(parse_throttled(" * ", 9), Some(Throttled::All));
        assert_eq!(
            parse_throttled("0:1, 2:3,4:3", 3),
            Some(Throttled::Partitions([2, 4].into()))
        );
        assert_eq!(parse_throttled("0:1,2:3", 2), None);
        assert_eq!(parse_throttled("", 1), None);
        let quotas = ReplicationQuotas::default();
        // kafka-reassign-partitions moving t-0 from [1, 2] to [2, 3]: the
        // leader side names the current replicas, the follower side the new.
        quotas.set_topic("t", "0:1,0:2", "0:3", 3);
        assert!(!quotas.leader.is_throttled("t", 0));
        assert!(quotas.follower.is_throttled("t", 0));
        assert!(!quotas.follower.is_throttled("t", 1));
        assert!(!quotas.follower.is_throttled("u", 0));
        quotas.set_topic("t", "", "", 3);
        assert!(!quotas.follower.is_throttled("t", 0), "cleared");
        quotas.set_topic("t", "*", "", 3);
        assert!(quotas.leader.is_throttled("t", 7));
    }

    #[test]
    fn settings_bound_both_sides() {
        let quotas = ReplicationQuotas::default();
        assert!(!quotas.leader.is_enabled() && !quotas.follower.is_enabled());
        quotas.configure(QuotaSettings {
            leader_rate: 1_000,
            follower_rate: UNLIMITED,
            windows: 2,
            window_ms: 500,
        });
        quotas.leader.record(700, 0);
        quotas.follower.record(700, 0);
        // 700 B over at least one 500 ms window: 1400 B/s.
        assert!(quotas.leader.is_exceeded(100));
        assert!(!quotas.follower.is_exceeded(100), "no follower bound");
        assert!(!quotas.leader.is_exceeded(1_000), "expired after 2 windows");
    }
}
