//! Client quota pieces the active controller needs (issue 21): which
//! quota applies to a user and client id ([`resolve`], Kafka's
//! precedence, shared with the broker's quota managers) and the controller
//! mutation quota's token buckets ([`mutation`], KIP-599), which Kafka
//! keeps on the active controller: one bucket per quota group for the
//! whole cluster, charged with the partitions of the CreateTopics,
//! CreatePartitions and DeleteTopics every broker forwards.

pub mod mutation;
pub mod resolve;

/// Kafka's `ClientQuotaManager.InactiveSensorExpirationTimeSeconds`.
pub const INACTIVE_SENSOR_EXPIRATION_MS: i64 = 3_600_000;
/// Most sensors (or buckets) kept at once.
pub const MAX_SENSORS: usize = 100_000;

/// `quota.window.num` windows of `quota.window.size.seconds` (or the
/// `controller.` ones of the mutation quota).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaWindows {
    pub samples: usize,
    pub window_ms: i64,
}

impl Default for QuotaWindows {
    fn default() -> Self {
        QuotaWindows {
            samples: 11,
            window_ms: 1000,
        }
    }
}

/// Prometheus label value escaping.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
