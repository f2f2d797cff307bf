//! The controller mutation quota (KIP-599, Kafka's
//! `ControllerMutationQuotaManager`): `controller_mutation_rate` limits the
//! partitions a user / client id creates (CreateTopics, CreatePartitions)
//! or deletes (DeleteTopics) per second. Each quota group has a token
//! bucket (Kafka's `TokenBucket` stat): it holds at most a burst of
//! `controller.quota.window.num` × `controller.quota.window.size.seconds`
//! × the quota, refills at the quota, and a mutation takes one token per
//! partition. The bucket may go below zero; the debt gives the throttle
//! time (`-tokens / quota`).
//!
//! How a request uses it ([`MutationQuota`]) depends on its version, as in
//! Kafka: a *strict* quota (new enough versions) refuses a topic while the
//! bucket is in debt (THROTTLING_QUOTA_EXCEEDED for that topic; a topic
//! that starts within the bucket passes even if it takes it into debt); a
//! *permissive* one (older versions) lets everything through and only
//! throttles the response.
//!
//! Kafka applies it in its active controller, and so does Sluice: the
//! buckets live in the [`QuorumController`](crate::QuorumController), one
//! per quota group for the whole cluster (until the controller changes);
//! brokers forward each request with its client's principal name, client
//! id and request version ([`MutationRequester`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use parking_lot::Mutex;
use sluice_metadata::image::ClientQuotas;

use super::resolve::{resolve, QuotaGroup};
use super::{QuotaWindows, INACTIVE_SENSOR_EXPIRATION_MS, MAX_SENSORS};

/// The quota key (Kafka's `QuotaConfig.CONTROLLER_MUTATION_RATE_OVERRIDE_CONFIG`).
pub const KEY: &str = "controller_mutation_rate";
/// How often idle buckets are looked for.
const SWEEP_INTERVAL_MS: i64 = 30_000;

/// First strict versions (Kafka's `ControllerApis` `strictSinceVersion`).
pub const CREATE_TOPICS_STRICT_SINCE: i16 = 6;
pub const CREATE_PARTITIONS_STRICT_SINCE: i16 = 3;
pub const DELETE_TOPICS_STRICT_SINCE: i16 = 5;

/// Whom a mutation is charged to: what Kafka's broker forwards in the
/// envelope around a client's CreateTopics, CreatePartitions or
/// DeleteTopics (the principal, and the request header with the client id
/// and the version), and what its controller's quota is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutationRequester {
    /// The principal's name (the quota's `user`).
    pub user: String,
    pub client_id: String,
    /// The version the client sent: the quota is strict from the API's
    /// `*_STRICT_SINCE` on.
    pub api_version: i16,
}

/// An answer and the throttle time the controller's mutation quota gives
/// its client (0 when none; the broker mutes the client's connection for
/// it, as Kafka's `sendForwardedResponse`).
#[derive(Clone, Debug, PartialEq)]
pub struct Throttled<T> {
    pub value: T,
    pub throttle_ms: i32,
}

impl<T> Throttled<T> {
    /// `value`, unthrottled.
    pub fn none(value: T) -> Throttled<T> {
        Throttled {
            value,
            throttle_ms: 0,
        }
    }
}

/// What a request's quota owes once it is answered: Kafka's
/// `throttleTime` needs only the last throttle and when it was taken.
#[derive(Clone, Debug)]
pub struct PendingThrottle {
    pub group: QuotaGroup,
    last_throttle_ms: i64,
    last_recorded_ms: i64,
}

impl PendingThrottle {
    /// The throttle at `now_ms`, counted in the group's metrics when > 0.
    pub fn settle(&self, quotas: &ControllerMutationQuotas, now_ms: i64) -> i32 {
        let ms = (self.last_throttle_ms - (now_ms - self.last_recorded_ms)).max(0);
        if ms > 0 {
            quotas.throttled(&self.group, ms);
        }
        ms.min(i64::from(i32::MAX)) as i32
    }
}

/// Kafka's `TokenBucket`: `tokens` refill at the quota per second up to
/// the burst.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: i64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(burst: f64, now_ms: i64) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, quota: f64, burst: f64, now_ms: i64) {
        let elapsed_s = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = burst.min(self.tokens + quota * elapsed_s);
        self.last_ms = now_ms.max(self.last_ms);
    }

    /// The tokens left now (negative: in debt).
    pub fn measure(&mut self, quota: f64, burst: f64, now_ms: i64) -> f64 {
        self.refill(quota, burst, now_ms);
        self.tokens
    }

    /// Takes `value` tokens.
    pub fn record(&mut self, value: f64, quota: f64, burst: f64, now_ms: i64) {
        self.refill(quota, burst, now_ms);
        self.tokens = burst.min(self.tokens - value);
    }
}

/// Kafka's `ControllerMutationQuotaManager.throttleTimeMs`.
fn throttle_ms(tokens: f64, quota: f64) -> i64 {
    if tokens >= 0.0 || quota <= 0.0 {
        return 0;
    }
    (-tokens / quota * 1000.0).round() as i64
}

struct Bucket {
    bucket: TokenBucket,
    last_ms: i64,
    limit: f64,
    throttles: u64,
    throttle_ms_total: u64,
}

/// The token buckets of every quota group on this controller.
pub struct ControllerMutationQuotas {
    windows: QuotaWindows,
    state: Mutex<State>,
}

impl std::fmt::Debug for ControllerMutationQuotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerMutationQuotas")
            .field("windows", &self.windows)
            .field("buckets", &self.bucket_count())
            .finish()
    }
}

#[derive(Default)]
struct State {
    buckets: HashMap<QuotaGroup, Bucket>,
    last_sweep_ms: i64,
}

impl ControllerMutationQuotas {
    pub fn new(windows: QuotaWindows) -> ControllerMutationQuotas {
        ControllerMutationQuotas {
            windows,
            state: Mutex::new(State::default()),
        }
    }

    fn burst(&self, quota: f64) -> f64 {
        self.windows.samples as f64 * self.windows.window_ms as f64 / 1000.0 * quota
    }

    /// The quota of `requester`'s request to an API strict from
    /// `strict_since` (`None`: unbounded).
    pub fn for_requester(
        &self,
        quotas: &ClientQuotas,
        requester: &MutationRequester,
        strict_since: i16,
    ) -> Option<MutationQuota<'_>> {
        self.for_request(
            quotas,
            &requester.user,
            &requester.client_id,
            requester.api_version >= strict_since,
        )
    }

    /// Kafka's `newQuotaFor`: the quota of one request (`None` when no
    /// `controller_mutation_rate` applies: unbounded).
    pub fn for_request(
        &self,
        quotas: &ClientQuotas,
        user: &str,
        client_id: &str,
        strict: bool,
    ) -> Option<MutationQuota<'_>> {
        let resolved = resolve(quotas, KEY, user, client_id)?;
        Some(MutationQuota {
            quotas: self,
            group: resolved.group,
            limit: resolved.limit,
            strict,
            last_throttle_ms: 0,
            last_recorded_ms: 0,
        })
    }

    /// Runs `f` on the group's bucket (created full), sweeping idle ones
    /// and keeping at most [`MAX_SENSORS`].
    fn with_bucket<T>(
        &self,
        group: &QuotaGroup,
        limit: f64,
        now_ms: i64,
        f: impl FnOnce(&mut TokenBucket, f64) -> T,
    ) -> T {
        let burst = self.burst(limit);
        let mut state = self.state.lock();
        if now_ms - state.last_sweep_ms >= SWEEP_INTERVAL_MS {
            state.last_sweep_ms = now_ms;
            state
                .buckets
                .retain(|_, b| now_ms - b.last_ms < INACTIVE_SENSOR_EXPIRATION_MS);
        }
        if !state.buckets.contains_key(group) && state.buckets.len() >= MAX_SENSORS {
            if let Some(oldest) = state
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last_ms)
                .map(|(g, _)| g.clone())
            {
                state.buckets.remove(&oldest);
            }
        }
        let b = state
            .buckets
            .entry(group.clone())
            .or_insert_with(|| Bucket {
                bucket: TokenBucket::full(burst, now_ms),
                last_ms: now_ms,
                limit,
                throttles: 0,
                throttle_ms_total: 0,
            });
        b.last_ms = now_ms;
        b.limit = limit;
        f(&mut b.bucket, burst)
    }

    /// How many buckets exist.
    pub fn bucket_count(&self) -> usize {
        self.state.lock().buckets.len()
    }

    /// Counts a throttle of `ms` answered to `group`.
    pub fn throttled(&self, group: &QuotaGroup, ms: i64) {
        if let Some(b) = self.state.lock().buckets.get_mut(group) {
            b.throttles += 1;
            b.throttle_ms_total += ms.max(0) as u64;
        }
    }

    /// Prometheus lines per group: tokens left (Kafka's `tokens` metric of
    /// the `ControllerMutation` group) and the throttles answered.
    pub fn render(&self, now_ms: i64, out: &mut String) {
        let mut state = self.state.lock();
        if state.buckets.is_empty() {
            return;
        }
        let burst = |limit: f64| self.burst(limit);
        let mut rows: Vec<_> = state.buckets.iter_mut().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let (mut tokens, mut count, mut total) = (String::new(), String::new(), String::new());
        for (g, b) in rows {
            let l = format!(
                "user=\"{}\",client_id=\"{}\"",
                super::escape(&g.user),
                super::escape(&g.client_id)
            );
            let left = b.bucket.measure(b.limit, burst(b.limit), now_ms);
            let _ = writeln!(tokens, "sluice_controller_mutation_tokens{{{l}}} {left}");
            let _ = writeln!(
                count,
                "sluice_controller_mutation_throttles_total{{{l}}} {}",
                b.throttles
            );
            let _ = writeln!(
                total,
                "sluice_controller_mutation_throttle_time_ms_total{{{l}}} {}",
                b.throttle_ms_total
            );
        }
        let _ = write!(
            out,
            "# HELP sluice_controller_mutation_tokens Tokens left in a controller_mutation_rate bucket (negative: in debt).\n# TYPE sluice_controller_mutation_tokens gauge\n{tokens}# TYPE sluice_controller_mutation_throttles_total counter\n{count}# TYPE sluice_controller_mutation_throttle_time_ms_total counter\n{total}"
        );
    }
}

/// Kafka's `StrictControllerMutationQuota` / `PermissiveControllerMutationQuota`
/// for one request.
pub struct MutationQuota<'a> {
    quotas: &'a ControllerMutationQuotas,
    pub group: QuotaGroup,
    limit: f64,
    strict: bool,
    last_throttle_ms: i64,
    last_recorded_ms: i64,
}

/// A strict quota refused a mutation: throttle for this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub throttle_ms: i64,
}

impl MutationQuota<'_> {
    /// Kafka's `record(permits)`: strict, a group in debt is refused (and
    /// nothing is taken); permissive, the tokens are always taken and the
    /// debt only sets the throttle time.
    pub fn record(&mut self, permits: f64, now_ms: i64) -> Result<(), QuotaExceeded> {
        let (limit, strict) = (self.limit, self.strict);
        let debt = self
            .quotas
            .with_bucket(&self.group, limit, now_ms, |bucket, burst| {
                if strict {
                    let tokens = bucket.measure(limit, burst, now_ms);
                    if tokens < 0.0 {
                        return Some(tokens);
                    }
                    bucket.record(permits, limit, burst, now_ms);
                    None
                } else {
                    bucket.record(permits, limit, burst, now_ms);
                    Some(bucket.measure(limit, burst, now_ms)).filter(|t| *t < 0.0)
                }
            });
        let Some(tokens) = debt else {
            return Ok(());
        };
        self.last_throttle_ms = throttle_ms(tokens, limit);
        self.last_recorded_ms = now_ms;
        if strict {
            Err(QuotaExceeded {
                throttle_ms: self.last_throttle_ms,
            })
        } else {
            Ok(())
        }
    }

    /// Kafka's `throttleTime`: the last throttle, less the time since.
    pub fn throttle_time_ms(&self, now_ms: i64) -> i64 {
        (self.last_throttle_ms - (now_ms - self.last_recorded_ms)).max(0)
    }

    /// The throttle still to settle once the request is answered.
    pub fn pending(&self) -> PendingThrottle {
        PendingThrottle {
            group: self.group.clone(),
            last_throttle_ms: self.last_throttle_ms,
            last_recorded_ms: self.last_recorded_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_metadata::delta::MetadataDelta;
    use sluice_metadata::record::{ClientQuotaRecord, EntityData};
    use sluice_metadata::{MetadataImage, MetadataRecord};

    use super::*;

    fn image(rate: f64) -> MetadataImage {
        let mut d = MetadataDelta::new(MetadataImage::empty());
        d.replay_record(&MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: vec![EntityData {
                entity_type: "client-id".into(),
                entity_name: Some("admin".into()),
            }],
            key: KEY.into(),
            value: rate,
            remove: false,
        }))
        .unwrap();
        d.apply().0
    }

    fn windows() -> QuotaWindows {
        QuotaWindows {
            samples: 2,
            window_ms: 1000,
        }
    }

    #[test]
    fn strict_refuses_while_in_debt_and_permissive_only_throttles() {
        let img = image(2.0);
        let q = ControllerMutationQuotas::new(windows());
        // Burst: 2 windows × 1 s × 2/s = 4 tokens.
        let mut strict = q
            .for_request(img.client_quotas(), "u", "admin", true)
            .unwrap();
        // 10 partitions start within the bucket: accepted, 6 in debt.
        assert_eq!(strict.record(10.0, 0), Ok(()));
        // In debt: refused, throttled 6 / 2 = 3 s.
        assert_eq!(
            strict.record(1.0, 0),
            Err(QuotaExceeded { throttle_ms: 3000 })
        );
        assert_eq!(strict.throttle_time_ms(1000), 2000);
        // Refused mutations take nothing: 3 s later the debt is paid.
        assert_eq!(strict.record(1.0, 3000), Ok(()));

        let mut permissive = q
            .for_request(img.client_quotas(), "u", "admin", false)
            .unwrap();
        // At -1 after the last one; 4 more: -5, throttled 2.5 s, not refused.
        assert_eq!(permissive.record(4.0, 3000), Ok(()));
        assert_eq!(permissive.throttle_time_ms(3000), 2500);
        // Other clients have no quota.
        assert!(q
            .for_request(img.client_quotas(), "u", "other", true)
            .is_none());
        assert_eq!(q.bucket_count(), 1);
    }

    #[test]
    fn the_bucket_refills_at_the_quota_up_to_the_burst() {
        let mut b = TokenBucket::full(4.0, 0);
        b.record(6.0, 2.0, 4.0, 0);
        assert_eq!(b.measure(2.0, 4.0, 0), -2.0);
        assert_eq!(b.measure(2.0, 4.0, 500), -1.0);
        assert_eq!(b.measure(2.0, 4.0, 100_000), 4.0);
        assert_eq!(throttle_ms(-1.0, 2.0), 500);
        assert_eq!(throttle_ms(1.0, 2.0), 0);
    }
}
