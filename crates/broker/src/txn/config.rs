//! The `transaction.*` broker settings the coordinator runs with, read
//! from the broker config with Kafka's defaults.

use crate::config::BrokerConfig;

/// The transaction coordinator's settings (Kafka's keys and defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionConfig {
    /// `transaction.state.log.num.partitions`.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (capped by the number
    /// of brokers when the topic is created; 1 on a single node).
    pub state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr` (capped by the replication factor,
    /// so a single node can commit: Kafka's default of 2 would refuse
    /// every write there).
    pub state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_log_segment_bytes: i64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms`
    /// a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: i64,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `request.timeout.ms`: how long a write to `__transaction_state`
    /// or a marker write waits for the ISR.
    pub request_timeout_ms: i64,
    /// Pause between two rounds of marker retries (Kafka's
    /// `retry.backoff.ms` of the marker channel).
    pub marker_retry_backoff_ms: u64,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            state_log_num_partitions: 50,
            state_log_replication_factor: 3,
            state_log_min_isr: 2,
            state_log_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            id_expiration_ms: 604_800_000,
            request_timeout_ms: 30_000,
            marker_retry_backoff_ms: 100,
        }
    }
}

impl TransactionConfig {
    /// Reads the keys from the broker config (explicit value, else the
    /// table default, else Kafka's).
    pub fn from_broker(config: &BrokerConfig) -> Self {
        let get = |name: &str, fallback: i64| config.long_setting(name, fallback);
        let d = TransactionConfig::default();
        let int = |v: i64| v.clamp(1, i64::from(i32::MAX)) as i32;
        TransactionConfig {
            state_log_num_partitions: int(get(
                "transaction.state.log.num.partitions",
                i64::from(d.state_log_num_partitions),
            )),
            state_log_replication_factor: get(
                "transaction.state.log.replication.factor",
                i64::from(d.state_log_replication_factor),
            )
            .clamp(1, i64::from(i16::MAX)) as i16,
            state_log_min_isr: int(get(
                "transaction.state.log.min.isr",
                i64::from(d.state_log_min_isr),
            )),
            state_log_segment_bytes: get(
                "transaction.state.log.segment.bytes",
                d.state_log_segment_bytes,
            )
            .max(1),
            max_timeout_ms: int(get(
                "transaction.max.timeout.ms",
                i64::from(d.max_timeout_ms),
            )),
            abort_timed_out_interval_ms: get(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                d.abort_timed_out_interval_ms,
            )
            .max(1),
            remove_expired_interval_ms: get(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                d.remove_expired_interval_ms,
            )
            .max(1),
            id_expiration_ms: get("transactional.id.expiration.ms", d.id_expiration_ms).max(1),
            request_timeout_ms: get("request.timeout.ms", d.request_timeout_ms).max(1),
            marker_retry_backoff_ms: d.marker_retry_backoff_ms,
        }
    }
}
