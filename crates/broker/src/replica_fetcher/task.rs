//! One fetcher task: the partitions this broker follows from one leader
//! (one of `num.replica.fetchers` per source broker), one connection and one
//! incremental fetch session, long-polling as a consumer does. Appends and
//! truncations run on the blocking pool with the partition states locked,
//! so a partition removed by the metadata publisher is never written after
//! its removal returns.
//!
//! Replication throttle (`follower.replication.throttled.rate` on the
//! partitions `follower.replication.throttled.replicas` names here): the
//! bytes fetched for throttled partitions are counted, and while they
//! exceed the rate a throttled partition that has not caught up with the
//! leader is left out of the next requests (Kafka's
//! `shouldFollowerThrottle`); when that leaves nothing to fetch, the task
//! waits `replica.fetch.backoff.ms`, as Kafka's fetcher does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use kafka_protocol::messages::{ApiKey, FetchResponse, ListOffsetsResponse};
use parking_lot::Mutex;
use sluice_metadata::BrokerId;
use sluice_record::{LeaderEpoch, Offset};
use sluice_storage::TopicPartition;
use sluice_transport::net::Connector;
use tokio::sync::{watch, Notify};

use super::apply::{
    apply_fetch_response, resolve_out_of_range, Asked, FetchStatus, OutOfRange, PartitionStates,
    RetryAt,
};
use super::config::ReplicaFetcherConfig;
use super::conn::LeaderConnection;
use super::replica::ReplicaSource;
use super::request::{fetch_request, list_offsets_request, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::session::{
    FetchSession, PartitionRequest, SessionKey, FETCH_SESSION_ID_NOT_FOUND,
    INVALID_FETCH_SESSION_EPOCH,
};
use super::FetcherError;
use crate::replica::quota::ReplicationQuota;

/// Room for a response's framing and partition headers beyond its records.
const FRAME_SLACK: usize = 1 << 20;
/// How often an idle fetcher looks at its partitions even when not woken.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// What the manager and the task share.
pub struct FetcherShared {
    pub leader: BrokerId,
    pub fetcher_id: u32,
    /// The leader's `host:port` on the inter-broker listener.
    pub address: Mutex<String>,
    pub states: Mutex<PartitionStates>,
    /// Woken when partitions are added or the address changes.
    pub wake: Notify,
    pub stop: watch::Sender<bool>,
}

impl FetcherShared {
    pub fn new(leader: BrokerId, fetcher_id: u32, address: String) -> Arc<FetcherShared> {
        Arc::new(FetcherShared {
            leader,
            fetcher_id,
            address: Mutex::new(address),
            states: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            stop: watch::channel(false).0,
        })
    }
}

/// What every fetcher task of the broker uses.
pub struct TaskContext {
    pub config: ReplicaFetcherConfig,
    pub source: Arc<dyn ReplicaSource>,
    pub connector: Arc<dyn Connector>,
    /// This broker's epoch in the image (-1 unknown), for ReplicaState.
    pub broker_epoch: Arc<AtomicI64>,
    /// The follower side's replication throttle.
    pub quota: Arc<ReplicationQuota>,
}

/// Wall-clock milliseconds, the time base of the follower quota.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The next request's partitions: every partition being fetched (a delayed
/// one whose time has come is fetched again), what was asked of each, and
/// the largest batch any of their logs may hold. Also the earliest instant
/// a delayed partition becomes due.
struct Next {
    partitions: BTreeMap<SessionKey, PartitionRequest>,
    asked: BTreeMap<SessionKey, Asked>,
    max_batch: usize,
    wake_at: Option<Instant>,
}

fn next_partitions(shared: &FetcherShared, ctx: &TaskContext) -> Next {
    let now = Instant::now();
    let exceeded = ctx.quota.is_exceeded(now_ms());
    let mut next = Next {
        partitions: BTreeMap::new(),
        asked: BTreeMap::new(),
        max_batch: 0,
        wake_at: None,
    };
    let mut states = shared.states.lock();
    for (tp, s) in states.iter_mut() {
        match s.status {
            FetchStatus::Delayed(at) if at <= now => s.status = FetchStatus::Fetching,
            FetchStatus::Delayed(at) => {
                next.wake_at = Some(next.wake_at.map_or(at, |w| w.min(at)));
                continue;
            }
            FetchStatus::Stopped(_) => continue,
            FetchStatus::Fetching => {}
        }
        if exceeded && !s.is_in_sync() && ctx.quota.is_throttled(&tp.topic, tp.partition) {
            // Held back by the throttle: looked at again after the backoff.
            let at = now + ctx.config.backoff;
            next.wake_at = Some(next.wake_at.map_or(at, |w| w.min(at)));
            continue;
        }
        let Some(replica) = ctx.source.follower(tp) else {
            continue;
        };
        let key = (s.topic_id, tp.partition);
        next.max_batch = next.max_batch.max(replica.max_message_bytes());
        next.partitions.insert(
            key,
            PartitionRequest {
                fetch_offset: s.fetch_offset,
                log_start_offset: replica.log_start_offset(),
                max_bytes: ctx.config.max_bytes,
                current_leader_epoch: s.leader_epoch,
                last_fetched_epoch: s.last_fetched_epoch,
            },
        );
        next.asked.insert(
            key,
            Asked {
                tp: tp.clone(),
                fetch_offset: s.fetch_offset,
                leader_epoch: s.leader_epoch,
            },
        );
    }
    next
}

/// Delays every partition of the fetcher (a failed connection or request).
fn delay_all(shared: &FetcherShared, until: Instant) {
    for s in shared.states.lock().values_mut() {
        if s.status == FetchStatus::Fetching {
            s.status = FetchStatus::Delayed(until);
        }
    }
}

/// Runs until `shared.stop` is set.
pub async fn run(shared: Arc<FetcherShared>, ctx: Arc<TaskContext>) {
    let mut stop = shared.stop.subscribe();
    let mut conn: Option<LeaderConnection> = None;
    let mut session = FetchSession::new();
    let client_id = format!(
        "broker-{}-fetcher-{}",
        ctx.config.replica_id, shared.fetcher_id
    );
    tracing::info!(
        leader = shared.leader.0,
        fetcher = shared.fetcher_id,
        "replica fetcher started"
    );
    while !*stop.borrow() {
        let next = next_partitions(&shared, &ctx);
        if next.partitions.is_empty() {
            let wait = next
                .wake_at
                .map_or(IDLE_RECHECK, |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .min(IDLE_RECHECK);
            tokio::select! {
                _ = stop.changed() => {}
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let address = shared.address.lock().clone();
        if conn.as_ref().is_some_and(|c| c.address() != address) {
            conn = None;
            session.handle_error();
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let opened = tokio::select! {
                    _ = stop.changed() => break,
                    r = LeaderConnection::open(&*ctx.connector, &address, client_id.clone(), ctx.config.socket_timeout) => r,
                };
                match opened {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::warn!(leader = shared.leader.0, %address, error = %e,
                            "replica fetcher cannot reach the leader; retrying after replica.fetch.backoff.ms");
                        delay_all(&shared, Instant::now() + ctx.config.backoff);
                        continue;
                    }
                }
            }
        };
        let data = session.build(next.partitions);
        let req = fetch_request(
            &data,
            c.fetch_version,
            &ctx.config,
            ctx.broker_epoch.load(Ordering::Acquire),
        );
        let max_frame = (ctx.config.response_max_bytes as usize)
            .saturating_add(next.max_batch.max(ctx.config.max_bytes as usize))
            .saturating_add(FRAME_SLACK);
        let version = c.fetch_version;
        let answer: Result<FetchResponse, FetcherError> = tokio::select! {
            _ = stop.changed() => break,
            r = c.call(ApiKey::Fetch, version, &req, max_frame, ctx.config.socket_timeout) => r,
        };
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(leader = shared.leader.0, %address, error = %e,
                    "replica fetch failed; reconnecting after replica.fetch.backoff.ms");
                conn = None;
                session.handle_error();
                delay_all(&shared, Instant::now() + ctx.config.backoff);
                continue;
            }
        };
        let keys = resp.responses.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id, p.partition_index))
        });
        if let Err(problem) = session.handle_response(&data, resp.error_code, resp.session_id, keys)
        {
            tracing::info!(
                leader = shared.leader.0,
                ?problem,
                "fetch session starts over with a full fetch"
            );
            let session_error = matches!(problem,
                super::session::SessionProblem::Error(c) if c == FETCH_SESSION_ID_NOT_FOUND || c == INVALID_FETCH_SESSION_EPOCH);
            if !session_error {
                delay_all(&shared, Instant::now() + ctx.config.backoff);
            }
            continue;
        }
        record_throttled(&ctx.quota, &next.asked, &resp);
        let out_of_range = {
            let (shared, ctx) = (shared.clone(), ctx.clone());
            let retry_at = RetryAt::from(Instant::now(), ctx.config.backoff);
            sluice_runtime::spawn_blocking(move || {
                let mut states = shared.states.lock();
                apply_fetch_response(
                    &mut states,
                    &*ctx.source,
                    &next.asked,
                    &resp.responses,
                    shared.leader,
                    retry_at,
                )
                .out_of_range
            })
            .await
        };
        match out_of_range {
            Ok(list) if !list.is_empty() => {
                if let Some(c) = conn.as_mut() {
                    if let Err(e) = handle_out_of_range(&shared, &ctx, c, list).await {
                        tracing::warn!(leader = shared.leader.0, error = %e, "cannot ask the leader its offsets");
                        conn = None;
                        session.handle_error();
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(leader = shared.leader.0, error = %e, "applying a fetch answer failed");
                delay_all(&shared, Instant::now() + ctx.config.backoff);
            }
        }
    }
    tracing::info!(
        leader = shared.leader.0,
        fetcher = shared.fetcher_id,
        "replica fetcher stopped"
    );
}

/// Counts the bytes fetched for throttled partitions (in-sync ones
/// included, as Kafka's fetcher records every throttled partition's bytes).
fn record_throttled(
    quota: &ReplicationQuota,
    asked: &BTreeMap<SessionKey, Asked>,
    resp: &FetchResponse,
) {
    if !quota.is_enabled() {
        return;
    }
    let bytes: u64 = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p)))
        .filter_map(|(id, p)| {
            let tp = &asked.get(&(id, p.partition_index))?.tp;
            let len = p.records.as_ref().map_or(0, |r| r.len() as u64);
            quota.is_throttled(&tp.topic, tp.partition).then_some(len)
        })
        .sum();
    quota.record(bytes, now_ms());
}

/// Asks the leader's log start and end of each partition, then applies
/// Kafka's out-of-range rules. A partition whose offsets the leader does not
/// give is retried after the backoff.
async fn handle_out_of_range(
    shared: &Arc<FetcherShared>,
    ctx: &Arc<TaskContext>,
    conn: &mut LeaderConnection,
    list: Vec<OutOfRange>,
) -> Result<(), FetcherError> {
    for oor in list {
        let epoch = oor.asked.leader_epoch;
        let end = list_offset(ctx, conn, &oor.tp, epoch, LATEST_TIMESTAMP).await?;
        let start = list_offset(ctx, conn, &oor.tp, epoch, EARLIEST_TIMESTAMP).await?;
        let (shared, ctx) = (shared.clone(), ctx.clone());
        sluice_runtime::spawn_blocking(move || {
            let mut states = shared.states.lock();
            match (start, end) {
                (Ok(start), Ok(end)) => {
                    resolve_out_of_range(&mut states, &*ctx.source, &oor, start, end, shared.leader,
                        Instant::now() + ctx.config.backoff)
                }
                (Err(code), _) | (_, Err(code)) => {
                    tracing::info!(partition = %oor.tp, leader = shared.leader.0, error = code,
                        "the leader did not give its offsets; retrying after replica.fetch.backoff.ms");
                    if let Some(s) = states.get_mut(&oor.tp) {
                        if s.status == FetchStatus::Fetching {
                            s.status = FetchStatus::Delayed(Instant::now() + ctx.config.backoff);
                        }
                    }
                }
            }
        })
        .await
        .map_err(|e| FetcherError::Encode(format!("out-of-range task: {e}")))?;
    }
    Ok(())
}

/// One partition's offset for `timestamp`, or the leader's error code.
async fn list_offset(
    ctx: &TaskContext,
    conn: &mut LeaderConnection,
    tp: &TopicPartition,
    epoch: LeaderEpoch,
    timestamp: i64,
) -> Result<Result<Offset, i16>, FetcherError> {
    let req = list_offsets_request(&ctx.config, tp, epoch, timestamp);
    let version = conn.list_offsets_version;
    let resp: ListOffsetsResponse = conn
        .call(
            ApiKey::ListOffsets,
            version,
            &req,
            1 << 20,
            ctx.config.socket_timeout,
        )
        .await?;
    let p = resp
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == tp.topic)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == tp.partition);
    Ok(match p {
        Some(p) if p.error_code != 0 => Err(p.error_code),
        Some(p) if p.offset >= 0 => Ok(Offset(p.offset)),
        // No such partition in the answer, or no offset: unknown.
        _ => Err(-1),
    })
}
