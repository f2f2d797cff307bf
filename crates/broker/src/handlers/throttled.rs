//! Produce and Fetch under client quotas (`crate::quota`): the bytes and
//! the thread time (`quota::thread_time`; not for acks=0 produces, as in
//! Kafka) of a request are recorded against its quota group after the
//! request is handled; over a quota, the response carries Kafka's
//! throttle time and the connection is muted for it after the response
//! is sent (KIP-219). A throttled fetch is answered empty and its bytes
//! taken back, as Kafka's `getThrottledResponse`; a consumer's fetch size
//! is bounded by what its quota allows in the quota windows
//! (`getMaxValueInQuotaWindow`); follower fetches are never counted.

use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ProduceRequest, RequestHeader, ResponseKind,
};

use super::fetch::{self, FetchPlan};
use super::{produce, Response};
use crate::context::BrokerContext;
use crate::quota::manager::Recorded;
use crate::quota::thread_time::{as_percentage, ThreadTimed};
use crate::quota::QuotaType;
use crate::request::RequestContext;

/// Kafka's `FetchMetadata.INVALID_SESSION_ID`.
const INVALID_SESSION_ID: i32 = 0;

fn client_id(header: &RequestHeader) -> &str {
    header.client_id.as_deref().unwrap_or("")
}

/// Byte and request throttles of one request, recorded; the larger wins
/// and is counted against its group, as Kafka's `KafkaApis` does.
struct Throttles {
    bytes: Option<Recorded>,
    request: Option<Recorded>,
}

impl Throttles {
    fn ms(&self) -> i64 {
        let b = self.bytes.as_ref().map_or(0, |r| r.throttle_ms);
        let r = self.request.as_ref().map_or(0, |r| r.throttle_ms);
        b.max(r)
    }

    /// Counts the throttle and mutes the connection after the response.
    fn impose(&self, ctx: &BrokerContext, request: &RequestContext, byte_kind: QuotaType) {
        let b = self.bytes.as_ref().map_or(0, |r| r.throttle_ms);
        let r = self.request.as_ref().map_or(0, |r| r.throttle_ms);
        let (kind, recorded) = if b > r {
            (byte_kind, self.bytes.as_ref())
        } else {
            (QuotaType::Request, self.request.as_ref())
        };
        if let Some(rec) = recorded.filter(|rec| rec.throttle_ms > 0) {
            ctx.quotas.throttled(kind, &rec.group, rec.throttle_ms);
            request.throttle.mute_after_response(rec.throttle_ms);
        }
    }
}

/// Produce, under the produce byte-rate and request quotas.
pub async fn produce(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    req: ProduceRequest,
) -> Response {
    if !ctx.image.has_client_quotas() {
        return produce::handle(ctx, header, req).await;
    }
    let bytes: usize = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let acks = req.acks;
    let (mut response, spent) =
        ThreadTimed::new(std::pin::pin!(produce::handle(ctx, header, req))).await;
    let image = ctx.image.image();
    let (user, client) = (request.principal.name(), client_id(header));
    let now = ctx.clock.now_ms();
    let q = image.client_quotas();
    let throttles = Throttles {
        bytes: ctx
            .quotas
            .record(q, QuotaType::Produce, user, client, bytes as f64, now),
        // Kafka does not apply the request quota to acks=0 produces.
        request: (acks != 0)
            .then(|| {
                let used = as_percentage(spent + request.throttle.take_network_time());
                ctx.quotas
                    .record(q, QuotaType::Request, user, client, used, now)
            })
            .flatten(),
    };
    let ms = throttles.ms();
    if ms > 0 {
        if let Response::Message(ResponseKind::Produce(r)) = &mut response {
            r.throttle_time_ms = ms.min(i64::from(i32::MAX)) as i32;
        }
        throttles.impose(ctx, request, QuotaType::Produce);
    }
    response
}

/// Fetch, under the consumer byte-rate and request quotas (consumers only;
/// follower fetches are exempt from both, as in Kafka).
pub async fn fetch(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    mut req: FetchRequest,
) -> Response {
    let from_follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
    if from_follower || !ctx.image.has_client_quotas() {
        return Response::Fetch(fetch::handle(ctx, header, req).await);
    }
    let asked_session = (req.session_id, req.session_epoch);
    let (user, client) = (request.principal.name(), client_id(header));
    // Kafka's fetch size bound: no more than the quota allows in the
    // (num - 1) windows a rate counts at least.
    if let Some(max) = ctx.quotas.max_value_in_window(
        ctx.image.image().client_quotas(),
        QuotaType::Fetch,
        user,
        client,
    ) {
        req.max_bytes = req
            .max_bytes
            .min(max.clamp(1.0, f64::from(i32::MAX)) as i32);
    }
    let (plan, spent) = ThreadTimed::new(std::pin::pin!(fetch::handle(ctx, header, req))).await;
    let spent = spent + request.throttle.take_network_time();
    let bytes = plan.file_bytes() + inline_bytes(&plan.response);
    let image = ctx.image.image();
    let now = ctx.clock.now_ms();
    let q = image.client_quotas();
    let throttles = Throttles {
        // The long poll (max_wait_ms) is not polling, so not counted.
        request: ctx.quotas.record(
            q,
            QuotaType::Request,
            user,
            client,
            as_percentage(spent),
            now,
        ),
        bytes: ctx
            .quotas
            .record(q, QuotaType::Fetch, user, client, bytes as f64, now),
    };
    let ms = throttles.ms();
    if ms <= 0 {
        return Response::Fetch(plan);
    }
    // Kafka takes the bytes back and answers empty (`getThrottledResponse`).
    if let Some(r) = &throttles.bytes {
        ctx.quotas
            .unrecord(QuotaType::Fetch, &r.group, bytes as f64, now);
    }
    throttles.impose(ctx, request, QuotaType::Fetch);
    Response::Fetch(throttled(ctx, plan, asked_session, ms))
}

/// Record bytes a fetch response carries in memory (not from files).
fn inline_bytes(r: &FetchResponse) -> u64 {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |b| b.len() as u64))
        .sum()
}

/// The empty answer of a throttled fetch: an incremental session keeps its
/// id (the client's next epoch is still valid); a full fetch gets no
/// session (a new one is dropped), since an empty full answer cannot
/// establish one.
fn throttled(ctx: &BrokerContext, plan: FetchPlan, asked: (i32, i32), ms: i64) -> FetchPlan {
    let incremental = asked.0 != INVALID_SESSION_ID && asked.1 > 0;
    let session_id = plan.response.session_id;
    if !incremental && session_id != INVALID_SESSION_ID {
        ctx.replicas.fetch_sessions().remove(session_id);
    }
    FetchPlan::message(
        FetchResponse::default()
            .with_throttle_time_ms(ms.min(i64::from(i32::MAX)) as i32)
            .with_error_code(plan.response.error_code)
            .with_session_id(if incremental {
                session_id
            } else {
                INVALID_SESSION_ID
            }),
    )
}
