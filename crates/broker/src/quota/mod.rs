//! Client quotas (issue 21), enforced as Kafka's `ClientQuotaManager`
//! and KIP-219 do: a quota in the metadata image (`ClientQuotaRecord`s,
//! set with AlterClientQuotas) limits the produce bytes, consumer fetch
//! bytes or request-handling time of a user, client id or both
//! ([`resolve`], Kafka's precedence); the traffic of each quota group is
//! measured with Kafka's sampled rate ([`rate`]) over `quota.window.num`
//! windows of `quota.window.size.seconds`; a group above its quota gets
//! Kafka's throttle time in `throttle_time_ms`, and its connection is muted
//! for that long after the response is sent (the connection reads and
//! handles nothing more; `network/connection.rs`). The Produce and Fetch
//! handlers apply them (`handlers/throttled.rs`); this module is the
//! measurement and resolution, free of handler and context types.
//!
//! - Produce: the request's record bytes are recorded after the append.
//! - Fetch: the response's record bytes are recorded; a throttled fetch is
//!   answered empty and its bytes taken back, as Kafka answers it.
//!   Follower (replication) fetches are never counted.
//! - Request (`request_percentage`): the time spent handling any request
//!   (the time its handler future is polled, [`thread_time`]; Kafka's
//!   request thread time) plus its connection's network time (reading,
//!   decoding, encoding, writing, TLS: `network/net_time.rs`, Kafka's
//!   network thread time), as a percentage of one thread, throttled by at
//!   most one window (`handlers/request_quota.rs`); inter-broker requests
//!   are exempt, as in Kafka.
//! - Controller mutations (`controller_mutation_rate`, KIP-599): partitions
//!   created or deleted per second, a token bucket per group ([`mutation`]),
//!   applied by the active controller to the CreateTopics, CreatePartitions
//!   and DeleteTopics every broker forwards with its client's principal and
//!   client id (`sluice_controller::quota`, as Kafka's `ControllerApis`).
//! - Connections: `max.connections.per.ip` (and overrides) and the `ip`
//!   entities' `connection_creation_rate` ([`connections`]), applied by the
//!   network layer's accept loop; `max.connections` and
//!   `listener.name.<l>.max.connections` ([`slots`]), dynamic.
//!
//! While the image holds no client quota at all, the hot paths check one
//! atomic flag (`ImageCache::has_client_quotas`) and do nothing else.

pub mod connections;
pub mod manager;
pub mod rate;
pub use sluice_controller::quota::{mutation, resolve};
pub mod slots;
pub mod thread_time;

pub use manager::{ClientQuotaManager, QuotaType, QuotaWindows};
