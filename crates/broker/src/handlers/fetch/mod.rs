//! Fetch (v4+), with incremental fetch sessions (KIP-227) from v7.
//!
//! The handler decides *what* to send: for each partition an error, the
//! offsets (high watermark, last stable offset, log start offset) and a
//! [`FileSlice`](sluice_storage::FileSlice) of whole batches. It does not
//! read record bytes; the network layer writes them from the segment file
//! with `sendfile` (see [`FetchPlan`]).
//!
//! The reads of one round are in `read.rs`.
//!
//! Isolation (KIP-98): a consumer in read_committed (`isolation_level` 1)
//! reads below the partition's last stable offset instead of its high
//! watermark (still zero copy), and is told the aborted transactions that
//! overlap what it gets, from the segments' transaction indexes
//! (`Log::collect_aborted_transactions`, no record is read); every answer
//! carries the last stable offset, as Kafka's does.
//!
//! Long poll: when fewer than `min_bytes` are available the handler waits
//! until an append moves a fetched partition's high watermark, or
//! `max_wait_ms` passes, or the broker shuts down, then reads again.
//!
//! Followers (a ReplicaId >= 0 before v15, ReplicaState from v15): only a
//! broker of the partition's replica set is served (else
//! NOT_LEADER_OR_FOLLOWER, as Kafka's `followerReplicaOrThrow`); its
//! CurrentLeaderEpoch is checked (FENCED_LEADER_EPOCH /
//! UNKNOWN_LEADER_EPOCH); a LastFetchedEpoch whose end in this log is below
//! the fetch offset, or an epoch this log does not have, is answered with
//! DivergingEpoch (KIP-279) and no records. Otherwise the fetch records the
//! follower's progress (it has everything below its fetch offset), which
//! may move the high watermark and wake `acks=all` answers, and is read up
//! to the log end offset (not the high watermark) through the same
//! zero-copy path. A follower's long poll waits for appends (the log end),
//! a consumer's for the high watermark.
//!
//! Consumers (KIP-392): a Fetch v11+ without ReplicaId may read a
//! partition this broker follows, up to the follower's own high watermark
//! (an offset above it but within the local log gets an empty answer, one
//! beyond the local log OFFSET_OUT_OF_RANGE, a broker that is not a replica
//! NOT_LEADER_OR_FOLLOWER); older versions read only from the leader. With
//! `replica.selector.class` set, the leader answers a consumer that the
//! selector sends elsewhere with that follower's id in
//! PreferredReadReplica, no records and its own offsets, at once (see
//! [`crate::replica::selector`]).
//! Replication throttles (`leader.replication.throttled.rate` on the
//! partitions `leader.replication.throttled.replicas` names here, see
//! [`crate::replica::quota`]): the bytes served to followers of throttled
//! partitions are counted; while they exceed the rate, a follower outside
//! the ISR gets no records for them (and they do not count toward its
//! `min_bytes`, so its long poll waits), as Kafka's
//! `shouldLeaderThrottle`.
//!
//! Sessions (KIP-227, see [`super::fetch_session`]): epoch -1 is a
//! sessionless full fetch (answered with session id 0), epoch 0 a full fetch
//! that opens a session (id 0 in the answer when the cache is full), epoch
//! 1, 2, ... an incremental fetch that updates the session's partitions and
//! is answered with only the partitions that have news. Unknown sessions get
//! FETCH_SESSION_ID_NOT_FOUND, repeated or skipped epochs
//! INVALID_FETCH_SESSION_EPOCH, as from Kafka.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader, TopicName};
use sluice_record::Offset;
use tokio::sync::watch;
use uuid::Uuid;

mod plan;
mod read;

pub use plan::{FetchPlan, FileRecords};

use read::{read_all, Round};

use super::fetch_session::{
    CachedPartition, FetchSession, FetchSessionCache, SessionError, SessionKey,
};
use super::leadership::{check_leader_epoch, leader_partition, replica_partition, NotServed};
use crate::context::BrokerContext;
use crate::partition::Partition;
use crate::replica::selector::{ReplicaSelector, ReplicaView};

/// Kafka's `FetchMetadata.INVALID_SESSION_ID`.
const INVALID_SESSION_ID: i32 = 0;
/// Kafka's `FetchMetadata.INITIAL_EPOCH` and `FINAL_EPOCH`.
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;
/// Kafka's `fetch.max.bytes` default: the most one Fetch answer carries
/// (still at least one batch, KIP-74).
const FETCH_MAX_BYTES: usize = 57_671_680;

/// One partition to read, from the request or from the fetch session.
struct Wanted {
    key: SessionKey,
    /// The topic name as the client sent it (answers before v13 echo it).
    topic_name: TopicName,
    target: Result<Arc<Partition>, NotServed>,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
    /// The partition's leader in the image (this broker, unless a
    /// consumer reads a partition this broker follows).
    leader: i32,
    /// KIP-392: the follower the leader sends this consumer to.
    preferred: Option<i32>,
    /// Set for a follower's fetch: its progress and what it last fetched.
    follower: Option<FollowerFetch>,
    /// KIP-279: the epoch and end offset where the follower's log diverges
    /// from this one.
    diverging: Option<(i32, i64)>,
    /// How the leader's replication throttle applies to this read.
    throttle: Throttle,
}

/// The leader-side replication throttle of one follower read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Throttle {
    /// Not a throttled partition (or not a follower's read).
    No,
    /// A throttled partition read by an in-sync follower: counted, never held.
    Counted,
    /// A throttled partition read by a follower outside the ISR: counted,
    /// and given no records while the quota is exceeded.
    Limited,
}

/// The follower side of one wanted partition.
#[derive(Clone, Copy, Debug)]
struct FollowerFetch {
    replica: sluice_metadata::BrokerId,
    broker_epoch: i64,
    log_start_offset: i64,
    last_fetched_epoch: i32,
}

/// How this request relates to fetch sessions.
enum Mode {
    /// A full fetch outside any session (answered with session id 0).
    Sessionless,
    /// A full fetch that asks for a new session (epoch 0).
    NewSession,
    /// An incremental fetch in an existing session.
    Incremental(Arc<parking_lot::Mutex<FetchSession>>),
}

fn error_plan(code: i16) -> FetchPlan {
    FetchPlan::message(
        FetchResponse::default()
            .with_error_code(code)
            .with_session_id(INVALID_SESSION_ID),
    )
}

pub async fn handle(ctx: &BrokerContext, header: &RequestHeader, req: FetchRequest) -> FetchPlan {
    let version = header.request_api_version;
    let uses_topic_ids = version >= 13;
    let sessions = ctx.replicas.fetch_sessions();
    let mode = match session_mode(sessions, &req, version, uses_topic_ids) {
        Ok(mode) => mode,
        Err(code) => return error_plan(code),
    };
    let requested = requested_partitions(&req, version, uses_topic_ids);
    let to_read = partitions_to_read(&mode, requested, &req, uses_topic_ids);
    let image = ctx.image.image();
    let me = ctx.image.node();
    let (replica_id, replica_epoch) = if version >= 15 {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let from_follower = replica_id >= 0;
    // KIP-392: Fetch v11+ carries the consumer's rack; such a consumer may
    // read from a follower (Kafka's `fetchOnlyFromLeader` is false for it).
    let follower_reads = version >= 11 && !from_follower;
    let follower = from_follower.then_some((replica_id, replica_epoch));
    let mut wanted: Vec<Wanted> = to_read
        .into_iter()
        .map(|c| resolve(ctx, &image, me, c, uses_topic_ids, follower_reads, follower))
        .collect();
    if from_follower {
        let eligible = image
            .broker(sluice_metadata::BrokerId(replica_id))
            .is_some_and(|b| {
                !b.fenced
                    && !b.in_controlled_shutdown
                    && (replica_epoch < 0 || replica_epoch == b.epoch.0)
            });
        let quota = &ctx.replicas.quotas().leader;
        for w in &mut wanted {
            follower_progress(w, eligible);
            w.throttle = leader_throttle(w, quota);
        }
    } else if follower_reads {
        choose_read_replicas(ctx, &image, me, req.rack_id.as_str(), &mut wanted);
    }
    let (wanted, round) = match read_until_ready(ctx, wanted, &req).await {
        Ok(read) => read,
        Err(plan) => return plan,
    };
    let (session_id, include) =
        answered_partitions(&mode, sessions, &wanted, &round, uses_topic_ids);
    assemble(wanted, round, &include, uses_topic_ids, session_id)
}

/// How the request relates to fetch sessions (KIP-227), or the error code
/// of an answer that reads nothing.
fn session_mode(
    sessions: &FetchSessionCache,
    req: &FetchRequest,
    version: i16,
    uses_topic_ids: bool,
) -> Result<Mode, i16> {
    if version < 7 {
        return Ok(Mode::Sessionless);
    }
    match (req.session_id, req.session_epoch) {
        (INVALID_SESSION_ID, FINAL_EPOCH) => Ok(Mode::Sessionless),
        (id, FINAL_EPOCH) => {
            sessions.remove(id);
            Ok(Mode::Sessionless)
        }
        (id, INITIAL_EPOCH) => {
            if id != INVALID_SESSION_ID {
                sessions.remove(id);
            }
            Ok(Mode::NewSession)
        }
        (INVALID_SESSION_ID, _) => Err(ResponseError::InvalidFetchSessionEpoch.code()),
        (id, epoch) => match sessions.begin_incremental(id, epoch, uses_topic_ids) {
            Ok(session) => Ok(Mode::Incremental(session)),
            Err(SessionError::NotFound) => Err(ResponseError::FetchSessionIdNotFound.code()),
            Err(SessionError::InvalidEpoch) => Err(ResponseError::InvalidFetchSessionEpoch.code()),
            Err(SessionError::TopicIdUsage) => Err(ResponseError::FetchSessionTopicIdError.code()),
        },
    }
}

/// A partition's session key: by topic id from v13, else by name.
fn session_key(
    uses_topic_ids: bool,
    topic_id: Uuid,
    topic: &TopicName,
    partition: i32,
) -> SessionKey {
    SessionKey {
        topic_id: if uses_topic_ids {
            topic_id
        } else {
            Uuid::nil()
        },
        topic: if uses_topic_ids {
            String::new()
        } else {
            topic.0.as_str().to_string()
        },
        partition,
    }
}

/// The partitions this request names, in request order, with the fields
/// its version carries (older versions: Kafka's defaults).
fn requested_partitions(
    req: &FetchRequest,
    version: i16,
    uses_topic_ids: bool,
) -> Vec<CachedPartition> {
    let mut requested = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            requested.push(
                CachedPartition::new(
                    session_key(uses_topic_ids, t.topic_id, &t.topic, p.partition),
                    t.topic.clone(),
                    p.fetch_offset,
                    p.partition_max_bytes,
                    if version >= 9 {
                        p.current_leader_epoch
                    } else {
                        -1
                    },
                )
                .with_fetcher(
                    if version >= 5 { p.log_start_offset } else { -1 },
                    if version >= 12 {
                        p.last_fetched_epoch
                    } else {
                        -1
                    },
                ),
            );
        }
    }
    requested
}

/// What to read: the request's partitions, or, for an incremental fetch,
/// the session's partitions after the request's updates and forgets.
fn partitions_to_read(
    mode: &Mode,
    requested: Vec<CachedPartition>,
    req: &FetchRequest,
    uses_topic_ids: bool,
) -> Vec<CachedPartition> {
    let Mode::Incremental(session) = mode else {
        return requested;
    };
    let mut s = session.lock();
    for part in requested {
        s.upsert(part);
    }
    for f in &req.forgotten_topics_data {
        for p in &f.partitions {
            s.forget(&session_key(uses_topic_ids, f.topic_id, &f.topic, *p));
        }
    }
    s.partitions.clone()
}

/// One partition to read, resolved against the image: the local partition
/// that serves it (the leader's, or a follower's for a KIP-392 consumer),
/// or why it is not served. `follower`: the fetching replica's id and
/// broker epoch, for a follower's fetch.
fn resolve(
    ctx: &BrokerContext,
    image: &sluice_metadata::MetadataImage,
    me: sluice_metadata::BrokerId,
    c: CachedPartition,
    uses_topic_ids: bool,
    follower_reads: bool,
    follower: Option<(i32, i64)>,
) -> Wanted {
    let (name, unknown_code) = if uses_topic_ids {
        match ctx.image.topic_by_id(c.key.topic_id) {
            Some(meta) => (
                Some(meta.name),
                ResponseError::UnknownTopicOrPartition.code(),
            ),
            None => (None, ResponseError::UnknownTopicId.code()),
        }
    } else {
        (
            Some(c.key.topic.clone()),
            ResponseError::UnknownTopicOrPartition.code(),
        )
    };
    let target = match name {
        Some(n) if follower_reads => {
            replica_partition(image, &ctx.replicas, me, &n, c.key.partition)
                .map_err(|ns| behind_requester(ns, c.current_leader_epoch))
        }
        Some(n) => leader_partition(image, &ctx.replicas, me, &n, c.key.partition)
            .map(|p| (p, me))
            .map_err(|ns| behind_requester(ns, c.current_leader_epoch)),
        None => Err(NotServed::code(unknown_code)),
    };
    let (target, leader) = match target {
        Ok((p, leader)) => (Ok(p), leader.0),
        Err(ns) => (Err(ns), me.0),
    };
    Wanted {
        key: c.key,
        topic_name: c.topic_name,
        target,
        fetch_offset: c.fetch_offset,
        partition_max_bytes: c.partition_max_bytes,
        current_leader_epoch: c.current_leader_epoch,
        leader,
        preferred: None,
        follower: follower.map(|(replica_id, broker_epoch)| FollowerFetch {
            replica: sluice_metadata::BrokerId(replica_id),
            broker_epoch,
            log_start_offset: c.fetcher_log_start_offset,
            last_fetched_epoch: c.last_fetched_epoch,
        }),
        diverging: None,
        throttle: Throttle::No,
    }
}

/// Reads every wanted partition, again after each append that moves one
/// (the long poll), until `min_bytes` are there, an answer cannot wait,
/// `max_wait_ms` passed or the broker shuts down. Err: the answer when a
/// read task failed.
async fn read_until_ready(
    ctx: &BrokerContext,
    mut wanted: Vec<Wanted>,
    req: &FetchRequest,
) -> Result<(Vec<Wanted>, Round), FetchPlan> {
    let quota = ctx.replicas.quotas().leader.clone();
    let clock = ctx.replicas.clock().clone();
    let read_committed = req.isolation_level == 1;
    let max_bytes = (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES);
    let min_bytes = req.min_bytes.max(0) as u64;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.replicas.shutdown_signal();
    loop {
        // Subscribe before reading, so an append between the read and the
        // wait still wakes us.
        let mut receivers: Vec<watch::Receiver<Offset>> = wanted
            .iter()
            .filter_map(|w| {
                w.target.as_ref().ok().map(|p| {
                    if w.follower.is_some() {
                        p.subscribe_log_end()
                    } else {
                        p.subscribe()
                    }
                })
            })
            .collect();
        let hold = quota.is_exceeded(clock.now_ms());
        let round;
        (wanted, round) = read_once(wanted, max_bytes, read_committed, hold).await?;
        let done = round.bytes >= min_bytes
            || round.answer_now
            || wanted.is_empty()
            || req.max_wait_ms <= 0
            || *shutdown.borrow()
            || tokio::time::Instant::now() >= deadline;
        if done {
            record_throttled(&quota, clock.now_ms(), &wanted, &round);
            return Ok((wanted, round));
        }
        drop(round);
        tokio::select! {
            _ = wait_any(&mut receivers) => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One read of every wanted partition. Index lookups and batch-header
/// reads can fault on cold pages: they run on the blocking pool, unless
/// every partition is read where this broker appended just now (tailing
/// consumers), where the hand-off would cost more than the read.
async fn read_once(
    wanted: Vec<Wanted>,
    max_bytes: usize,
    read_committed: bool,
    hold: bool,
) -> Result<(Vec<Wanted>, Round), FetchPlan> {
    let hot = wanted.iter().all(|w| {
        w.target
            .as_ref()
            .map_or(true, |p| p.is_hot(Offset(w.fetch_offset)))
    });
    if hot {
        let round = read_all(&wanted, max_bytes, read_committed, hold);
        return Ok((wanted, round));
    }
    let handed = std::time::Instant::now();
    let read = sluice_runtime::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let round = read_all(&wanted, max_bytes, read_committed, hold);
        tracing::debug!(
            target: crate::network::cold::STAGES,
            hop_us = started.duration_since(handed).as_micros() as u64,
            read_us = started.elapsed().as_micros() as u64,
            "fetch read on the blocking pool"
        );
        (wanted, round)
    })
    .await;
    read.map_err(|e| {
        tracing::error!(error = %e, "fetch read task failed");
        error_plan(ResponseError::UnknownServerError.code())
    })
}

/// Which partitions the answer carries, and under which session id: all
/// of them outside a session and for a new one (created here), only those
/// with news for an incremental fetch.
fn answered_partitions(
    mode: &Mode,
    sessions: &FetchSessionCache,
    wanted: &[Wanted],
    round: &Round,
    uses_topic_ids: bool,
) -> (i32, Vec<bool>) {
    match mode {
        Mode::Sessionless => (INVALID_SESSION_ID, vec![true; wanted.len()]),
        Mode::NewSession => {
            let parts = wanted
                .iter()
                .zip(&round.partitions)
                .map(|(w, (data, slice))| {
                    let mut c = CachedPartition::new(
                        w.key.clone(),
                        w.topic_name.clone(),
                        w.fetch_offset,
                        w.partition_max_bytes,
                        w.current_leader_epoch,
                    );
                    // A follower's LastFetchedEpoch stays with the session:
                    // later incremental fetches that do not name the
                    // partition are checked for divergence against it.
                    if let Some(f) = &w.follower {
                        c = c.with_fetcher(f.log_start_offset, f.last_fetched_epoch);
                    }
                    observe(&mut c, data, slice.is_some());
                    c
                })
                .collect();
            let id = sessions
                .create(uses_topic_ids, parts)
                .unwrap_or(INVALID_SESSION_ID);
            (id, vec![true; wanted.len()])
        }
        Mode::Incremental(session) => {
            let mut s = session.lock();
            let include = wanted
                .iter()
                .zip(&round.partitions)
                .map(|(w, (data, slice))| match s.position(&w.key) {
                    Some(i) => observe(&mut s.partitions[i], data, slice.is_some()),
                    None => true,
                })
                .collect();
            (s.id, include)
        }
    }
}

/// How the leader's throttle applies to a follower's read of `w`
/// (Kafka: throttled = the topic's leader list names this partition here;
/// held only for a follower outside the ISR).
fn leader_throttle(w: &Wanted, quota: &crate::replica::quota::ReplicationQuota) -> Throttle {
    let (Some(f), Ok(partition)) = (w.follower, w.target.as_ref()) else {
        return Throttle::No;
    };
    if !quota.is_enabled() {
        return Throttle::No;
    }
    let tp = partition.topic_partition();
    if !quota.is_throttled(&tp.topic, tp.partition) {
        return Throttle::No;
    }
    let in_sync = partition.isr().is_some_and(|isr| isr.contains(&f.replica));
    if in_sync {
        Throttle::Counted
    } else {
        Throttle::Limited
    }
}

/// Counts the bytes a round serves for throttled partitions (in-sync
/// followers included, as Kafka's `sizeOfThrottledPartitions`).
fn record_throttled(
    quota: &crate::replica::quota::ReplicationQuota,
    now_ms: i64,
    wanted: &[Wanted],
    round: &Round,
) {
    let bytes: u64 = wanted
        .iter()
        .zip(&round.partitions)
        .filter(|(w, _)| w.throttle != Throttle::No)
        .filter_map(|(_, (_, slice))| slice.as_ref().map(|s| s.len as u64))
        .sum();
    quota.record(bytes, now_ms);
}

fn observe(c: &mut CachedPartition, data: &PartitionData, has_records: bool) -> bool {
    c.observe(
        data.error_code,
        has_records || data.diverging_epoch.epoch >= 0 || data.preferred_read_replica.0 >= 0,
        data.high_watermark,
        data.last_stable_offset,
        data.log_start_offset,
    )
}

/// The response: included partitions in order, consecutive partitions of
/// the same topic under one topic entry (as Kafka groups them).
fn assemble(
    wanted: Vec<Wanted>,
    round: Round,
    include: &[bool],
    uses_topic_ids: bool,
    session_id: i32,
) -> FetchPlan {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut files = Vec::new();
    let mut last_key: Option<(Uuid, String)> = None;
    for ((w, (data, slice)), keep) in wanted.into_iter().zip(round.partitions).zip(include) {
        if !keep {
            continue;
        }
        let key = (w.key.topic_id, w.key.topic.clone());
        if last_key.as_ref() != Some(&key) {
            let t = FetchableTopicResponse::default();
            topics.push(if uses_topic_ids {
                t.with_topic_id(w.key.topic_id)
            } else {
                t.with_topic(w.topic_name.clone())
            });
            last_key = Some(key);
        }
        let ti = topics.len() - 1;
        let topic = &mut topics[ti];
        if let Some(slice) = slice {
            files.push(FileRecords {
                topic: ti,
                partition: topic.partitions.len(),
                slice,
            });
        }
        topic.partitions.push(data);
    }
    FetchPlan {
        response: FetchResponse::default()
            .with_throttle_time_ms(0)
            .with_error_code(0)
            .with_session_id(session_id)
            .with_responses(topics),
        files,
    }
}

/// A request naming a leader epoch newer than this broker's image knows
/// gets UNKNOWN_LEADER_EPOCH, not NOT_LEADER_OR_FOLLOWER: the requester's
/// metadata is ahead (as Kafka checks the epoch before leadership). Right
/// after a failover that is the new leader not having applied its
/// election yet, and a follower retries it soon (see
/// `replica_fetcher::apply`).
fn behind_requester(ns: NotServed, current_leader_epoch: i32) -> NotServed {
    match ns.leader {
        Some((_, epoch))
            if ns.code == ResponseError::NotLeaderOrFollower.code()
                && current_leader_epoch > epoch =>
        {
            NotServed {
                code: ResponseError::UnknownLeaderEpoch.code(),
                ..ns
            }
        }
        _ => ns,
    }
}

/// The follower checks of one partition, before any read (Kafka's
/// `Partition.fetchRecords` for a follower): leader epoch, replica set,
/// divergence; then the follower's progress is recorded (which may move
/// the high watermark). A failed check turns `w.target` into the error.
fn follower_progress(w: &mut Wanted, eligible: bool) {
    let (Some(f), Ok(partition)) = (w.follower, w.target.as_ref()) else {
        return;
    };
    let partition = partition.clone();
    let epoch = partition.leader_epoch().0;
    let fail = |code| NotServed {
        code,
        leader: Some((w.leader, epoch)),
    };
    if let Err(code) = check_leader_epoch(epoch, w.current_leader_epoch) {
        w.target = Err(fail(code));
        return;
    }
    if !partition.has_follower(f.replica) {
        tracing::debug!(partition = %partition.topic_partition(), replica = f.replica.0, "fetch from a broker that is not a follower of this partition");
        w.target = Err(fail(ResponseError::NotLeaderOrFollower.code()));
        return;
    }
    let log = partition.log();
    if f.last_fetched_epoch >= 0 {
        match crate::replica::divergence(log, f.last_fetched_epoch, w.fetch_offset) {
            Ok(None) => {}
            Ok(Some(diverging)) => {
                w.diverging = Some(diverging);
                return;
            }
            Err(code) => {
                w.target = Err(NotServed::code(code));
                return;
            }
        }
    }
    let offset = Offset(w.fetch_offset);
    if offset < log.log_start_offset() || offset > log.log_end_offset() {
        // Answered with OFFSET_OUT_OF_RANGE by the read.
        return;
    }
    partition.follower_fetch(
        f.replica,
        offset,
        Offset(f.log_start_offset),
        f.broker_epoch,
        eligible,
    );
}

/// KIP-392 on the leader: sets `preferred` of every wanted partition led
/// here that `replica.selector.class` sends a consumer in `rack` elsewhere.
fn choose_read_replicas(
    ctx: &BrokerContext,
    image: &sluice_metadata::MetadataImage,
    me: sluice_metadata::BrokerId,
    rack: &str,
    wanted: &mut [Wanted],
) {
    let Some(selector) = ctx.config.replica_selector else {
        return;
    };
    if selector.always_leader(rack) {
        return;
    }
    // Clients connect through the listener this broker advertises first
    // (as Metadata answers).
    let listener = ctx
        .config
        .advertised_listeners
        .first()
        .map_or("", |l| l.name.as_str());
    for w in wanted.iter_mut().filter(|w| w.leader == me.0) {
        if let Ok(p) = &w.target {
            w.preferred =
                preferred_read_replica(selector, image, listener, rack, me, p, w.fetch_offset);
        }
    }
}

/// Kafka's `findPreferredReadReplica` for a consumer fetching `partition`
/// (led here) at `fetch_offset`: the follower the selector picks, or `None`
/// for the leader. Followers are candidates while in the ISR holding the
/// offset and registered unfenced with an endpoint on `listener`.
fn preferred_read_replica(
    selector: ReplicaSelector,
    image: &sluice_metadata::MetadataImage,
    listener: &str,
    client_rack: &str,
    me: sluice_metadata::BrokerId,
    partition: &Partition,
    fetch_offset: i64,
) -> Option<i32> {
    let candidates = partition.read_replica_candidates(Offset(fetch_offset));
    if candidates.is_empty() {
        return None;
    }
    let followers: Vec<ReplicaView<'_>> = candidates
        .iter()
        .filter_map(|c| {
            let b = image.broker(c.broker).filter(|b| !b.fenced)?;
            b.listeners
                .iter()
                .any(|l| l.name == listener)
                .then_some(ReplicaView {
                    broker: c.broker,
                    rack: b.rack.as_deref(),
                    log_end_offset: c.log_end_offset,
                    time_since_caught_up_ms: c.time_since_caught_up_ms,
                })
        })
        .collect();
    let leader = ReplicaView {
        broker: me,
        rack: image.broker(me).and_then(|b| b.rack.as_deref()),
        log_end_offset: partition.log().log_end_offset(),
        time_since_caught_up_ms: 0,
    };
    selector
        .preferred_read_replica(client_rack, &leader, &followers)
        .map(|b| b.0)
}

/// Resolves when any receiver sees a change (or its sender is gone).
async fn wait_any(receivers: &mut [watch::Receiver<Offset>]) {
    if receivers.is_empty() {
        return std::future::pending().await;
    }
    let mut futures: Vec<Pin<Box<dyn Future<Output = _> + Send + '_>>> = receivers
        .iter_mut()
        .map(|rx| Box::pin(rx.changed()) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
        .collect();
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_fencing_matches_kafka() {
        assert_eq!(check_leader_epoch(0, -1), Ok(()));
        assert_eq!(check_leader_epoch(0, 0), Ok(()));
        assert_eq!(check_leader_epoch(0, 1), Err(75));
        assert_eq!(check_leader_epoch(3, 3), Ok(()));
        assert_eq!(check_leader_epoch(3, 2), Err(74), "older: fenced");
    }

    #[test]
    fn a_requester_ahead_of_this_broker_is_told_unknown_leader_epoch() {
        let not_leader = |epoch| NotServed {
            code: ResponseError::NotLeaderOrFollower.code(),
            leader: Some((2, epoch)),
        };
        // The image still names the old leader in epoch 4; the follower
        // asks in epoch 5, which elected this broker.
        assert_eq!(behind_requester(not_leader(4), 5).code, 75);
        // Same or older epoch, or no epoch given: really not the leader.
        assert_eq!(behind_requester(not_leader(4), 4).code, 6);
        assert_eq!(behind_requester(not_leader(4), 3).code, 6);
        assert_eq!(behind_requester(not_leader(4), -1).code, 6);
        let unknown = NotServed::code(ResponseError::UnknownTopicOrPartition.code());
        assert_eq!(behind_requester(unknown, 9), unknown);
    }
}
