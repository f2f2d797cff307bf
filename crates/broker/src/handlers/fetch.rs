//! Fetch (v4+), sessionless.
//!
//! The handler decides *what* to send: for each partition an error, the
//! offsets (high watermark, last stable offset, log start offset) and a
//! [`FileSlice`] of whole batches. It does not read record bytes; the
//! network layer writes them from the segment file with `sendfile` (see
//! [`FetchPlan`]).
//!
//! Long poll: when fewer than `min_bytes` are available the handler waits
//! until an append moves a fetched partition's high watermark, or
//! `max_wait_ms` passes, or the broker shuts down, then reads again.
//!
//! Sessions (KIP-227): every request is answered as a full, sessionless
//! fetch with session id 0, which is what Kafka answers when it does not
//! create a session; clients then keep sending full fetches. A request for
//! an incremental fetch in a session this broker never created gets
//! FETCH_SESSION_ID_NOT_FOUND, as from Kafka after a session was evicted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader};
use sluice_record::Offset;
use sluice_storage::{FileSlice, StorageError, TopicPartition};
use tokio::sync::watch;

use crate::context::BrokerContext;
use crate::error::storage_error_code;
use crate::partition::Partition;

/// Kafka's `FetchMetadata.INVALID_SESSION_ID`.
const INVALID_SESSION_ID: i32 = 0;
/// Kafka's `FetchMetadata.INITIAL_EPOCH` and `FINAL_EPOCH`.
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;
/// The leader epoch of every partition on this single-node broker.
pub const LEADER_EPOCH: i32 = 0;

/// A Fetch response whose record bytes still live in segment files.
///
/// `response` is complete except that every partition listed in `files`
/// has empty `records`; the bytes of `files[i].slice` go there. The writer
/// sends the encoded fields, then the file bytes (zero copy), then the rest.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    pub response: FetchResponse,
    pub files: Vec<FileRecords>,
}

/// Records of one response partition, as a slice of a segment file.
#[derive(Clone)]
pub struct FileRecords {
    /// Index into `response.responses`.
    pub topic: usize,
    /// Index into that topic's `partitions`.
    pub partition: usize,
    pub slice: FileSlice,
}

impl std::fmt::Debug for FileRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRecords")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("position", &self.slice.position)
            .field("len", &self.slice.len)
            .finish()
    }
}

impl FetchPlan {
    /// A plan without file records (error answers, empty fetches).
    pub fn message(response: FetchResponse) -> Self {
        FetchPlan {
            response,
            files: Vec::new(),
        }
    }

    /// Total record bytes that come from files.
    pub fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| u64::from(f.slice.len)).sum()
    }

    /// The same response with the record bytes read into memory: what a
    /// copying broker would encode. Used when a file has no descriptor to
    /// `sendfile` from, and by tests that compare both paths.
    pub fn into_materialized(mut self) -> Result<FetchResponse, StorageError> {
        for f in &self.files {
            let bytes = f.slice.read_to_vec()?;
            if let Some(p) = self
                .response
                .responses
                .get_mut(f.topic)
                .and_then(|t| t.partitions.get_mut(f.partition))
            {
                p.records = Some(Bytes::from(bytes));
            }
        }
        Ok(self.response)
    }
}

/// One requested partition.
struct Wanted {
    topic: usize,
    partition: usize,
    partition_id: i32,
    target: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
}

pub async fn handle(ctx: &BrokerContext, header: &RequestHeader, req: FetchRequest) -> FetchPlan {
    let version = header.request_api_version;

    if version >= 7 {
        if let Some(code) = session_error(req.session_id, req.session_epoch) {
            return FetchPlan::message(
                FetchResponse::default()
                    .with_error_code(code)
                    .with_session_id(INVALID_SESSION_ID),
            );
        }
    }

    // Response skeleton in request order, and what to read for each slot.
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let (name, unknown_code) = if version >= 13 {
            match ctx.metadata.topic_by_id(t.topic_id) {
                Some(meta) => (
                    Some(meta.name),
                    ResponseError::UnknownTopicOrPartition.code(),
                ),
                None => (None, ResponseError::UnknownTopicId.code()),
            }
        } else {
            (
                Some(t.topic.0.as_str().to_string()),
                ResponseError::UnknownTopicOrPartition.code(),
            )
        };
        let mut resp = FetchableTopicResponse::default();
        if version >= 13 {
            resp = resp.with_topic_id(t.topic_id);
        } else {
            resp = resp.with_topic(t.topic.clone());
        }
        topics.push(resp);
        for (pi, p) in t.partitions.iter().enumerate() {
            let target = name
                .as_ref()
                .and_then(|n| {
                    ctx.replicas
                        .get_partition(&TopicPartition::new(n.clone(), p.partition))
                })
                .ok_or(unknown_code);
            wanted.push(Wanted {
                topic: ti,
                partition: pi,
                partition_id: p.partition,
                target,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: if version >= 9 {
                    p.current_leader_epoch
                } else {
                    -1
                },
            });
        }
    }

    let read_committed = req.isolation_level == 1;
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as u64;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.replicas.shutdown_signal();

    loop {
        // Subscribe before reading, so an append between the read and the
        // wait still wakes us.
        let mut receivers: Vec<watch::Receiver<Offset>> = wanted
            .iter()
            .filter_map(|w| w.target.as_ref().ok().map(|p| p.subscribe()))
            .collect();
        let round = read_all(&wanted, max_bytes, read_committed);
        let done = round.bytes >= min_bytes
            || round.has_error
            || wanted.is_empty()
            || req.max_wait_ms <= 0
            || *shutdown.borrow()
            || tokio::time::Instant::now() >= deadline;
        if done {
            let mut response_topics = topics;
            for (w, data) in wanted.iter().zip(round.partitions) {
                response_topics[w.topic].partitions.push(data);
            }
            debug_assert!(response_topics
                .iter()
                .zip(&req.topics)
                .all(|(r, q)| r.partitions.len() == q.partitions.len()));
            return FetchPlan {
                response: FetchResponse::default()
                    .with_throttle_time_ms(0)
                    .with_error_code(0)
                    .with_session_id(INVALID_SESSION_ID)
                    .with_responses(response_topics),
                files: round.files,
            };
        }
        drop(round);
        tokio::select! {
            _ = wait_any(&mut receivers) => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// KIP-227 session checks for a broker that never creates sessions.
fn session_error(session_id: i32, epoch: i32) -> Option<i16> {
    if session_id == INVALID_SESSION_ID {
        // Full fetch, with (INITIAL) or without (FINAL) asking for a session;
        // answering session id 0 means "no session was created".
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            None
        } else {
            Some(ResponseError::InvalidFetchSessionEpoch.code())
        }
    } else if epoch == FINAL_EPOCH {
        // Closing a session (that we never had) with a full fetch.
        None
    } else {
        Some(ResponseError::FetchSessionIdNotFound.code())
    }
}

struct Round {
    partitions: Vec<PartitionData>,
    files: Vec<FileRecords>,
    bytes: u64,
    has_error: bool,
}

/// Reads every wanted partition once, honouring `max_bytes` across the
/// response and `partition_max_bytes` per partition; the first batch of the
/// first non-empty partition is returned whole even if bigger (KIP-74).
fn read_all(wanted: &[Wanted], max_bytes: usize, read_committed: bool) -> Round {
    let mut round = Round {
        partitions: Vec::with_capacity(wanted.len()),
        files: Vec::new(),
        bytes: 0,
        has_error: false,
    };
    let mut limit = max_bytes;
    let mut min_one = true;
    for w in wanted {
        let data = PartitionData::default()
            .with_partition_index(w.partition_id)
            .with_aborted_transactions(if read_committed {
                Some(Vec::new())
            } else {
                None
            });
        let data = match read_one(w, limit, min_one) {
            Ok((hw, log_start, slice)) => {
                if let Some(slice) = slice {
                    let len = slice.len as usize;
                    limit = limit.saturating_sub(len);
                    min_one = false;
                    round.bytes += len as u64;
                    round.files.push(FileRecords {
                        topic: w.topic,
                        partition: w.partition,
                        slice,
                    });
                }
                data.with_high_watermark(hw.value())
                    .with_last_stable_offset(hw.value())
                    .with_log_start_offset(log_start.value())
                    .with_records(Some(Bytes::new()))
            }
            Err(code) => {
                round.has_error = true;
                data.with_error_code(code)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1)
                    .with_records(Some(Bytes::new()))
            }
        };
        round.partitions.push(data);
    }
    round
}

/// (high watermark, log start offset, records) or a Kafka error code.
fn read_one(
    w: &Wanted,
    limit: usize,
    min_one: bool,
) -> Result<(Offset, Offset, Option<FileSlice>), i16> {
    let partition = w.target.as_ref().map_err(|code| *code)?;
    check_leader_epoch(w.current_leader_epoch)?;
    let log = partition.log();
    let hw = partition.high_watermark();
    let log_start = log.log_start_offset();
    let log_end = log.log_end_offset();
    let offset = Offset(w.fetch_offset);
    if offset < log_start || offset > log_end {
        return Err(ResponseError::OffsetOutOfRange.code());
    }
    if offset >= hw {
        return Ok((hw, log_start, None));
    }
    let max = limit.min(w.partition_max_bytes.max(0) as usize);
    match log.read(offset, max, Some(hw), min_one) {
        Ok(slice) => Ok((hw, log_start, slice.filter(|s| s.len > 0))),
        Err(e) => {
            if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                tracing::warn!(partition = %partition.topic_partition(), error = %e, "fetch read failed");
            }
            Err(storage_error_code(&e))
        }
    }
}

/// Kafka's leader-epoch fencing for a single, never-changing epoch.
pub(crate) fn check_leader_epoch(current_leader_epoch: i32) -> Result<(), i16> {
    if current_leader_epoch < 0 || current_leader_epoch == LEADER_EPOCH {
        Ok(())
    } else if current_leader_epoch < LEADER_EPOCH {
        Err(ResponseError::FencedLeaderEpoch.code())
    } else {
        Err(ResponseError::UnknownLeaderEpoch.code())
    }
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
    fn sessionless_full_fetches_are_accepted_and_unknown_sessions_are_not() {
        assert_eq!(session_error(0, -1), None);
        assert_eq!(session_error(0, 0), None);
        assert_eq!(session_error(0, 3), Some(71));
        assert_eq!(session_error(42, 5), Some(70));
        assert_eq!(session_error(42, 0), Some(70));
        assert_eq!(session_error(42, -1), None);
    }

    #[test]
    fn leader_epoch_fencing_matches_kafka() {
        assert_eq!(check_leader_epoch(-1), Ok(()));
        assert_eq!(check_leader_epoch(0), Ok(()));
        assert_eq!(check_leader_epoch(1), Err(75));
    }
}
