//! The `request_percentage` quota on every API (Kafka's
//! `ClientRequestQuotaManager` through `RequestHandlerHelper`): the thread
//! time of a request (`quota::thread_time`) is recorded against its quota
//! group after it is handled; over the quota, the response carries the
//! throttle time (bounded by one quota window) and the connection is muted
//! for it after the response is sent. The connection's network time
//! (`network/net_time.rs`) is charged with the handler time: what it spent
//! since the last measured request, so a request's response write counts
//! with the connection's next one (Kafka records it right after the write;
//! the sum over the quota window is the same, and it costs no second
//! lookup of the quota group).
//!
//! As in Kafka, these are exempt (`sendResponseExemptThrottle`): follower
//! fetches and WriteTxnMarkers (inter-broker traffic); acks=0 produces are
//! not measured. Produce and Fetch record their own request time with
//! their byte quotas and take the larger throttle (`throttled.rs`).

use std::future::Future;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use super::Response;
use crate::context::BrokerContext;
use crate::quota::thread_time::{as_percentage, ThreadTimed};
use crate::quota::QuotaType;
use crate::request::RequestContext;

/// Whether this module measures `body` (the others are exempt or measure
/// themselves).
pub fn measured_here(body: &RequestKind) -> bool {
    !matches!(
        body,
        RequestKind::Produce(_) | RequestKind::Fetch(_) | RequestKind::WriteTxnMarkers(_)
    )
}

/// Runs `handling` and applies the request quota to its response.
pub async fn apply(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    handling: impl Future<Output = Response>,
) -> Response {
    let (mut response, spent) = ThreadTimed::new(std::pin::pin!(handling)).await;
    // The network time of this connection's earlier requests and of
    // reading this one (Kafka's `recordNetworkThreadTimeCallback`).
    let spent = spent + request.throttle.take_network_time();
    let image = ctx.image.image();
    let client = header.client_id.as_deref().unwrap_or("");
    let Some(recorded) = ctx.quotas.record(
        image.client_quotas(),
        QuotaType::Request,
        request.principal.name(),
        client,
        as_percentage(spent),
        ctx.clock.now_ms(),
    ) else {
        return response;
    };
    let ms = recorded.throttle_ms;
    if ms <= 0 {
        return response;
    }
    if let Response::Message(kind) = &mut response {
        // A throttle from the handler itself (a controller mutation quota)
        // may be longer; the larger one is answered and muted for.
        let own = throttle_time_ms(kind).unwrap_or(0);
        if i64::from(own) >= ms {
            return response;
        }
        set_throttle_time_ms(kind, ms.min(i64::from(i32::MAX)) as i32);
    }
    ctx.quotas
        .throttled(QuotaType::Request, &recorded.group, ms);
    request.throttle.mute_after_response(ms);
    response
}

macro_rules! with_throttle_field {
    ($kind:expr, $r:ident => $body:expr, $otherwise:expr) => {
        match $kind {
            ResponseKind::ApiVersions($r) => $body,
            ResponseKind::Metadata($r) => $body,
            ResponseKind::Produce($r) => $body,
            ResponseKind::Fetch($r) => $body,
            ResponseKind::ListOffsets($r) => $body,
            ResponseKind::OffsetForLeaderEpoch($r) => $body,
            ResponseKind::CreateTopics($r) => $body,
            ResponseKind::DeleteTopics($r) => $body,
            ResponseKind::CreatePartitions($r) => $body,
            ResponseKind::DescribeConfigs($r) => $body,
            ResponseKind::AlterConfigs($r) => $body,
            ResponseKind::IncrementalAlterConfigs($r) => $body,
            ResponseKind::DeleteRecords($r) => $body,
            ResponseKind::DescribeCluster($r) => $body,
            ResponseKind::DescribeLogDirs($r) => $body,
            ResponseKind::UpdateFeatures($r) => $body,
            ResponseKind::ElectLeaders($r) => $body,
            ResponseKind::AlterPartitionReassignments($r) => $body,
            ResponseKind::ListPartitionReassignments($r) => $body,
            ResponseKind::AlterReplicaLogDirs($r) => $body,
            ResponseKind::ListConfigResources($r) => $body,
            ResponseKind::DescribeTopicPartitions($r) => $body,
            ResponseKind::FindCoordinator($r) => $body,
            ResponseKind::JoinGroup($r) => $body,
            ResponseKind::ConsumerGroupHeartbeat($r) => $body,
            ResponseKind::ConsumerGroupDescribe($r) => $body,
            ResponseKind::SyncGroup($r) => $body,
            ResponseKind::Heartbeat($r) => $body,
            ResponseKind::LeaveGroup($r) => $body,
            ResponseKind::OffsetCommit($r) => $body,
            ResponseKind::OffsetFetch($r) => $body,
            ResponseKind::TxnOffsetCommit($r) => $body,
            ResponseKind::OffsetDelete($r) => $body,
            ResponseKind::ListGroups($r) => $body,
            ResponseKind::DescribeGroups($r) => $body,
            ResponseKind::DeleteGroups($r) => $body,
            ResponseKind::InitProducerId($r) => $body,
            ResponseKind::AddPartitionsToTxn($r) => $body,
            ResponseKind::AddOffsetsToTxn($r) => $body,
            ResponseKind::DescribeTransactions($r) => $body,
            ResponseKind::ListTransactions($r) => $body,
            ResponseKind::EndTxn($r) => $body,
            ResponseKind::DescribeClientQuotas($r) => $body,
            ResponseKind::AlterClientQuotas($r) => $body,
            ResponseKind::DescribeUserScramCredentials($r) => $body,
            ResponseKind::AlterUserScramCredentials($r) => $body,
            ResponseKind::DescribeProducers($r) => $body,
            ResponseKind::CreateAcls($r) => $body,
            ResponseKind::DescribeAcls($r) => $body,
            ResponseKind::DeleteAcls($r) => $body,
            // DescribeQuorum, WriteTxnMarkers and the SASL responses have
            // no throttle field; their connection is still muted.
            _ => $otherwise,
        }
    };
}

/// The response's `throttle_time_ms`, if its API has one.
pub fn throttle_time_ms(kind: &ResponseKind) -> Option<i32> {
    with_throttle_field!(kind, r => Some(r.throttle_time_ms), None)
}

/// Kafka's `maybeSetThrottleTimeMs`: sets `throttle_time_ms` where the
/// API has one (older versions do not write it; the mute still applies).
pub fn set_throttle_time_ms(kind: &mut ResponseKind, ms: i32) {
    with_throttle_field!(kind, r => r.throttle_time_ms = ms, ())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{DescribeQuorumResponse, MetadataResponse};

    use super::*;

    #[test]
    fn the_throttle_field_is_set_where_an_api_has_one() {
        let mut m = ResponseKind::Metadata(MetadataResponse::default());
        set_throttle_time_ms(&mut m, 42);
        assert_eq!(throttle_time_ms(&m), Some(42));
        let mut q = ResponseKind::DescribeQuorum(DescribeQuorumResponse::default());
        set_throttle_time_ms(&mut q, 42);
        assert_eq!(throttle_time_ms(&q), None);
    }
}
