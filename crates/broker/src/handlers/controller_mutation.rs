//! The controller mutation quota of CreateTopics, CreatePartitions and
//! DeleteTopics (KIP-599; `quota::mutation`): each topic's partitions are
//! recorded before it goes to the controller; a strict quota refuses a
//! topic while its group is in debt (THROTTLING_QUOTA_EXCEEDED), and the
//! response carries the throttle time, for which the connection is then
//! muted. Versions from which the quota is strict are Kafka's.

use kafka_protocol::messages::RequestHeader;

use crate::context::BrokerContext;
use crate::quota::mutation::MutationQuota;
use crate::request::RequestContext;

/// First strict versions (Kafka's `ControllerApis`/`KafkaApis` `strictSinceVersion`).
pub const CREATE_TOPICS_STRICT_SINCE: i16 = 6;
pub const CREATE_PARTITIONS_STRICT_SINCE: i16 = 3;
pub const DELETE_TOPICS_STRICT_SINCE: i16 = 5;

/// Kafka's `Errors.THROTTLING_QUOTA_EXCEEDED`.
pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
pub const THROTTLING_QUOTA_EXCEEDED_MESSAGE: &str = "The throttling quota has been exceeded.";

/// The quota of one request, strict from `strict_since` (`None`: unbounded).
pub fn quota_for<'a>(
    ctx: &'a BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    strict_since: i16,
) -> Option<MutationQuota<'a>> {
    quota_of(
        ctx,
        request.principal.name(),
        header.client_id.as_deref().unwrap_or(""),
        header.request_api_version >= strict_since,
    )
}

/// The quota of `user` and `client_id`, strict or not (`None`: unbounded).
pub fn quota_of<'a>(
    ctx: &'a BrokerContext,
    user: &str,
    client_id: &str,
    strict: bool,
) -> Option<MutationQuota<'a>> {
    if !ctx.image.has_client_quotas() {
        return None;
    }
    let image = ctx.image.image();
    ctx.quotas
        .mutations
        .for_request(image.client_quotas(), user, client_id, strict)
}

/// The quota of a topic auto-created for a client (Metadata). Kafka 4.1's
/// broker forwards the creation to the controller as the newest
/// CreateTopics in an envelope carrying the client's principal and client
/// id, so it is counted against that client's quota, strictly.
pub fn auto_creation_quota<'a>(
    ctx: &'a BrokerContext,
    user: &str,
    header: &RequestHeader,
) -> Option<MutationQuota<'a>> {
    quota_of(ctx, user, header.client_id.as_deref().unwrap_or(""), true)
}

/// Records `partitions` mutations; `false` when a strict quota refuses them.
pub fn admit(ctx: &BrokerContext, quota: &mut Option<MutationQuota<'_>>, partitions: i32) -> bool {
    match quota {
        Some(q) => q
            .record(f64::from(partitions.max(0)), ctx.clock.now_ms())
            .is_ok(),
        None => true,
    }
}

/// Kafka's `sendResponseMaybeThrottleWithControllerQuota` (its mutation
/// half): the throttle time to answer, with the connection muted for it.
pub fn throttle(
    ctx: &BrokerContext,
    request: &RequestContext,
    quota: &Option<MutationQuota<'_>>,
) -> i32 {
    let Some(q) = quota else { return 0 };
    let ms = q.throttle_time_ms(ctx.clock.now_ms());
    if ms > 0 {
        ctx.quotas.mutations.throttled(&q.group, ms);
        request.throttle.mute_after_response(ms);
    }
    ms.min(i64::from(i32::MAX)) as i32
}
