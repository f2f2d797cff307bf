//! Produce (v3+): appends each partition's RecordBatch bytes to its log.
//!
//! The batches arrive as a slice of the request frame and are written from
//! there (`Log::append_as_leader_shared`: only each batch's first 16 bytes,
//! base offset and leader epoch, are patched copies). Requests of up to
//! 64 KiB of records are appended on the network thread (a pwrite into the
//! page cache costs less than the hand-off to another thread) when the
//! log's lock is free and nothing needs converting or decompressing
//! (`Log::try_append_as_leader_shared`, which never waits); everything else
//! runs on tokio's blocking pool, and so does every fsync, so a slow disk or
//! a segment roll never stalls the network threads. For `flush.messages=1`
//! topics the answer waits for the
//! group-commit fsync (`Log::flush_until`), and only then does the high
//! watermark move, so consumers never see unflushed data there.
//!
//! Before any append, a transactional producer's first batch on a
//! partition is verified with its transaction coordinator (KIP-890 part 1,
//! [`verify`]).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};
use sluice_metadata::MetadataImage;
use sluice_record::RecordError;
use sluice_storage::producer_state::Verification;
use sluice_storage::{AppendInfo, RecordRejection, RejectedRecord, StorageError, TopicPartition};

use super::leadership::{leader_partition, NotServed};
use super::Response;
use crate::context::BrokerContext;
use crate::error::storage_error_code;
use crate::metadata::is_internal_topic;
use crate::partition::Partition;

mod response;
mod verify;

/// Requests whose record bytes add up to at most this are appended on the
/// network thread (a pwrite into the page cache); bigger ones go to the
/// blocking pool so a long copy never holds up other connections.
const INLINE_APPEND_BYTES: usize = 64 * 1024;

/// The outcome of one partition's append.
struct PartitionResult {
    error_code: i16,
    error_message: Option<String>,
    /// `(batch index, message)` of each refused record (Produce v8+).
    record_errors: Vec<(i32, String)>,
    info: Option<AppendInfo>,
    /// The partition's current leader and epoch when this broker does not
    /// lead it (Produce v10+ CurrentLeader, KIP-951).
    leader: Option<(i32, i32)>,
}

impl PartitionResult {
    fn appended(info: Option<AppendInfo>) -> Self {
        PartitionResult {
            error_code: 0,
            error_message: None,
            record_errors: Vec::new(),
            info,
            leader: None,
        }
    }

    fn not_served(ns: NotServed) -> Self {
        PartitionResult {
            leader: ns.leader,
            ..PartitionResult::error(ns.code, None)
        }
    }

    fn error(code: i16, message: Option<String>) -> Self {
        PartitionResult {
            error_code: code,
            error_message: message,
            record_errors: Vec::new(),
            info: None,
            leader: None,
        }
    }
}

/// One partition's append job, run on the blocking pool.
struct Job {
    slot: usize,
    partition: Arc<Partition>,
    records: Bytes,
    /// KIP-890 part 1 ([`verify`]).
    verification: Verification,
}

pub async fn handle(ctx: &BrokerContext, header: &RequestHeader, req: ProduceRequest) -> Response {
    if req.transactional_id.is_none() && verify::has_transactional_records(&req) {
        // Kafka's check before anything else: transactional batches need
        // a transactional id (the one the authorizer would check).
        return every_partition_refused(&req, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    let version = header.request_api_version;
    let image = ctx.image.image();
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut plan = Plan::resolve(ctx, &image, version, &req);
    let transactional_id = req.transactional_id.as_ref().map(|id| id.0.as_str());
    verify::verify(
        ctx,
        version,
        transactional_id,
        &mut plan.jobs,
        &mut plan.results,
    )
    .await;
    let Plan {
        mut results,
        layout,
        jobs,
        replicated,
    } = plan;
    let pool_jobs = if appends_inline(&jobs) {
        append_inline(jobs, &mut results).await
    } else {
        jobs
    };
    append_on_pool(pool_jobs, &mut results).await;
    await_replicated(&mut results, replicated, deadline).await;
    if req.acks == 0 {
        // Kafka closes the connection of an acks=0 producer whose request
        // failed: it is the only signal such a producer gets.
        let any_error = results
            .iter()
            .any(|r| r.as_ref().is_none_or(|r| r.error_code != 0));
        return if any_error {
            Response::Close("produce with acks=0 failed".into())
        } else {
            Response::NoResponse
        };
    }
    response::build(ctx, &image, version, &req, &layout, results)
}

/// A request's partitions resolved: each either answered at once (its
/// slot filled) or an append job; slots are in request order.
struct Plan {
    results: Vec<Option<PartitionResult>>,
    /// `(topic index, first slot)` of each topic.
    layout: Vec<(usize, usize)>,
    jobs: Vec<Job>,
    /// acks=all slots: answered once the high watermark covers them.
    replicated: Vec<(usize, Arc<Partition>)>,
}

impl Plan {
    fn resolve(
        ctx: &BrokerContext,
        image: &MetadataImage,
        version: i16,
        req: &ProduceRequest,
    ) -> Plan {
        let mut plan = Plan {
            results: Vec::new(),
            layout: Vec::new(),
            jobs: Vec::new(),
            replicated: Vec::new(),
        };
        for (ti, topic) in req.topic_data.iter().enumerate() {
            plan.layout.push((ti, plan.results.len()));
            let (name, unknown_code) = if version >= 13 {
                match ctx.image.topic_by_id(topic.topic_id) {
                    Some(t) => (Some(t.name), ResponseError::UnknownTopicOrPartition.code()),
                    None => (None, ResponseError::UnknownTopicId.code()),
                }
            } else {
                (
                    Some(topic.name.0.as_str().to_string()),
                    ResponseError::UnknownTopicOrPartition.code(),
                )
            };
            for pd in &topic.partition_data {
                let slot = plan.results.len();
                let topic = (name.as_deref(), unknown_code);
                match check_partition(ctx, image, (version, req.acks), topic, pd) {
                    Err(answer) => plan.results.push(Some(answer)),
                    Ok((partition, records)) => {
                        if req.acks == -1 {
                            plan.replicated.push((slot, partition.clone()));
                        }
                        plan.results.push(None);
                        plan.jobs.push(Job {
                            slot,
                            partition,
                            records,
                            verification: Verification::NotRequired,
                        });
                    }
                }
            }
        }
        plan
    }
}

/// One partition's checks before its append, in Kafka's order: the acks,
/// an internal topic, the topic (`name`, or `unknown_code` when its id is
/// unknown) and leadership, null records, zstd before v7, and for
/// acks=all an ISR below `min.insync.replicas`. The partition and its
/// records, or the answer.
fn check_partition(
    ctx: &BrokerContext,
    image: &MetadataImage,
    (version, acks): (i16, i16),
    (name, unknown_code): (Option<&str>, i16),
    pd: &PartitionProduceData,
) -> Result<(Arc<Partition>, Bytes), PartitionResult> {
    if !(-1..=1).contains(&acks) {
        return Err(PartitionResult::error(
            ResponseError::InvalidRequiredAcks.code(),
            None,
        ));
    }
    if name.is_some_and(is_internal_topic) {
        // Only the broker itself writes Kafka's internal topics.
        return Err(PartitionResult::error(
            ResponseError::InvalidTopicException.code(),
            Some("cannot append to an internal topic".into()),
        ));
    }
    let partition = match name {
        Some(n) => leader_partition(image, &ctx.replicas, ctx.image.node(), n, pd.index),
        None => Err(NotServed::code(unknown_code)),
    }
    .map_err(PartitionResult::not_served)?;
    let Some(records) = &pd.records else {
        return Err(PartitionResult::error(
            ResponseError::CorruptMessage.code(),
            Some("null records".into()),
        ));
    };
    if version < ZSTD_MIN_VERSION && has_zstd(records) {
        return Err(PartitionResult::error(
            ResponseError::UnsupportedCompressionType.code(),
            None,
        ));
    }
    if acks == -1 && partition.check_enough_replicas().is_err() {
        // Kafka refuses before appending (Partition.appendRecordsToLeader).
        return Err(PartitionResult::error(
            ResponseError::NotEnoughReplicas.code(),
            Some(format!(
                "The size of the current ISR of {} is insufficient to satisfy the min.isr requirement",
                partition.topic_partition()
            )),
        ));
    }
    Ok((partition, records.clone()))
}

/// Whether the jobs are appended on the network thread: small requests
/// only, and never a compacted log (its records are decoded to check keys,
/// CPU work that belongs on the pool).
fn appends_inline(jobs: &[Job]) -> bool {
    jobs.iter().map(|j| j.records.len()).sum::<usize>() <= INLINE_APPEND_BYTES
        && jobs.iter().all(|j| {
            !j.partition
                .log()
                .config()
                .compaction
                .cleanup_policy
                .compact()
        })
}

/// Small appends are a pwrite of a few pages into the page cache: cheaper
/// than the two thread hand-offs of the blocking pool, which on a busy
/// 2-core machine are where the latency tail came from. A log whose lock
/// is held (a roll, a retention deletion, another append) or whose batches
/// need converting is returned for the pool instead, so a network thread
/// never waits; so does every group-commit fsync.
async fn append_inline(jobs: Vec<Job>, results: &mut [Option<PartitionResult>]) -> Vec<Job> {
    let mut pool_jobs = Vec::new();
    let mut to_flush = Vec::new();
    for job in jobs {
        match try_append_inline(&job.partition, &job.records, job.verification) {
            None => pool_jobs.push(job),
            Some(Ok(Some(info))) if info.needs_flush => {
                to_flush.push((job.slot, job.partition, info))
            }
            Some(Ok(info)) => {
                if let Some(info) = &info {
                    job.partition.publish_append(info.last_offset.plus(1));
                }
                results[job.slot] = Some(PartitionResult::appended(info));
            }
            Some(Err(failed)) => results[job.slot] = Some(failed),
        }
    }
    if !to_flush.is_empty() {
        let slots: Vec<usize> = to_flush.iter().map(|(slot, _, _)| *slot).collect();
        let flushed = sluice_runtime::spawn_blocking(move || {
            to_flush
                .into_iter()
                .map(|(slot, partition, info)| (slot, flush_and_publish(&partition, info)))
                .collect::<Vec<_>>()
        })
        .await;
        fill(results, slots, flushed, "produce flush task failed");
    }
    pool_jobs
}

/// The jobs appended (and flushed where the topic asks) on the blocking
/// pool.
async fn append_on_pool(jobs: Vec<Job>, results: &mut [Option<PartitionResult>]) {
    if jobs.is_empty() {
        return;
    }
    let slots: Vec<usize> = jobs.iter().map(|j| j.slot).collect();
    let outcome = sluice_runtime::spawn_blocking(move || {
        jobs.into_iter()
            .map(|job| {
                let r = append(&job.partition, &job.records, job.verification);
                (job.slot, r)
            })
            .collect::<Vec<_>>()
    })
    .await;
    fill(results, slots, outcome, "produce append task failed");
}

/// The blocking pool's answers in their slots; if its task failed,
/// KAFKA_STORAGE_ERROR in every slot it had.
fn fill<E: std::fmt::Display>(
    results: &mut [Option<PartitionResult>],
    slots: Vec<usize>,
    outcome: Result<Vec<(usize, PartitionResult)>, E>,
    what: &str,
) {
    match outcome {
        Ok(done) => {
            for (slot, r) in done {
                results[slot] = Some(r);
            }
        }
        Err(join_error) => {
            tracing::error!(error = %join_error, "{what}");
            for slot in slots {
                results[slot] = Some(PartitionResult::error(
                    ResponseError::KafkaStorageError.code(),
                    None,
                ));
            }
        }
    }
}

/// Kafka's TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

/// The answer to a request refused as a whole: `code` for every
/// partition (Kafka's `ProduceRequest.getErrorResponse`).
fn every_partition_refused(req: &ProduceRequest, code: i16) -> Response {
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code)
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    Response::Message(kafka_protocol::messages::ResponseKind::Produce(
        ProduceResponse::default().with_responses(responses),
    ))
}

/// Waits (in the partitions' purgatories) until the high watermark covers
/// each appended `acks=all` batch, and puts Kafka's error in its slot when
/// that fails (NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER,
/// REQUEST_TIMED_OUT at the request's timeout).
async fn await_replicated(
    results: &mut [Option<PartitionResult>],
    replicated: Vec<(usize, Arc<Partition>)>,
    deadline: tokio::time::Instant,
) {
    for (slot, partition) in replicated {
        let required = match &results[slot] {
            Some(r) if r.error_code == 0 => match &r.info {
                Some(info) => info.last_offset.plus(1),
                None => continue,
            },
            _ => continue,
        };
        if let Err(code) = partition.await_replicated(required, deadline).await {
            results[slot] = Some(PartitionResult::error(code, None));
        }
    }
}

/// The first Produce version that may carry zstd batches (KIP-110). Kafka
/// answers an older request holding one with UNSUPPORTED_COMPRESSION_TYPE
/// for that partition (`ProduceRequest.validateRecords`), because a client
/// that speaks only older versions could not read the batches back.
const ZSTD_MIN_VERSION: i16 = 7;

/// Whether any batch of `records` is zstd-compressed (headers only; framing
/// errors are left to the append's validation).
fn has_zstd(records: &[u8]) -> bool {
    sluice_record::Batches::without_crc(records)
        .map_while(Result::ok)
        .any(|(_, h)| h.compression() == sluice_record::CompressionType::Zstd)
}

/// Appends one partition's batches (on a blocking thread), waits for the
/// fsync where the topic asks for it, then moves the high watermark.
fn append(partition: &Partition, records: &[u8], verification: Verification) -> PartitionResult {
    match append_only(partition, records, verification) {
        Ok(Some(info)) => flush_and_publish(partition, info),
        Ok(None) => PartitionResult::appended(None),
        Err(failed) => failed,
    }
}

/// Appends one partition's batches; `None` for an empty record set.
fn append_only(
    partition: &Partition,
    records: &[u8],
    verification: Verification,
) -> Result<Option<AppendInfo>, PartitionResult> {
    if records.is_empty() {
        // Kafka appends nothing and answers base offset -1.
        return Ok(None);
    }
    match partition.append_produce(records, verification) {
        Ok(Some(info)) => {
            partition.note_append(info.first_offset, info.bytes);
            partition.storage_refusals.note_appended(records);
            Ok(Some(info))
        }
        // Leadership moved since the handler's check.
        Ok(None) => Err(PartitionResult::error(
            ResponseError::NotLeaderOrFollower.code(),
            None,
        )),
        Err(e) => Err(append_failure(partition, records, e)),
    }
}

/// Appends one partition's batches on a network thread if that needs no
/// waiting: `None` when the log's lock is held or the batches need
/// converting (the caller then appends on the blocking pool).
fn try_append_inline(
    partition: &Partition,
    records: &[u8],
    verification: Verification,
) -> Option<Result<Option<AppendInfo>, PartitionResult>> {
    if records.is_empty() {
        return Some(Ok(None));
    }
    match partition.try_append_produce(records, verification) {
        Ok(Some(info)) => {
            partition.note_append(info.first_offset, info.bytes);
            partition.storage_refusals.note_appended(records);
            Some(Ok(Some(info)))
        }
        Ok(None) => None,
        Err(e) => Some(Err(append_failure(partition, records, e))),
    }
}

/// Waits for the fsync where the topic asks for it (may block), then moves
/// the high watermark.
fn flush_and_publish(partition: &Partition, info: AppendInfo) -> PartitionResult {
    if info.needs_flush {
        if let Err(e) = partition.log().flush_until(info.last_offset) {
            return storage_failure(partition, e);
        }
    }
    partition.publish_append(info.last_offset.plus(1));
    PartitionResult::appended(Some(info))
}

/// An append of `records` failed: Kafka's answer, with the gap that an
/// earlier storage refusal left in a producer's sequence answered as that
/// storage failure (see `replica::refusals` for why).
fn append_failure(partition: &Partition, records: &[u8], e: StorageError) -> PartitionResult {
    if let StorageError::OutOfOrderSequence {
        producer_id,
        expected,
        ..
    } = &e
    {
        if partition
            .storage_refusals
            .explains_gap(*producer_id, *expected)
        {
            tracing::debug!(partition = %partition.topic_partition(), producer_id = producer_id.0, expected, "batch behind one refused by storage: refused the same way");
            return PartitionResult::error(
                ResponseError::KafkaStorageError.code(),
                Some(format!(
                    "an earlier batch of producer {} (sequence {expected}) was refused by a storage failure",
                    producer_id.0
                )),
            );
        }
    }
    let result = storage_failure(partition, e);
    if result.error_code == ResponseError::KafkaStorageError.code() {
        partition.storage_refusals.note_refused(records);
    }
    result
}

fn storage_failure(partition: &Partition, e: StorageError) -> PartitionResult {
    let code = match &e {
        // Produce v3+ only accepts magic v2; Kafka calls older batches
        // invalid rather than corrupt.
        StorageError::CorruptRecord(RecordError::UnsupportedMagic(_)) => {
            ResponseError::InvalidRecord.code()
        }
        other => storage_error_code(other),
    };
    if code == ResponseError::KafkaStorageError.code() {
        tracing::error!(partition = %partition.topic_partition(), error = %e, "append failed");
    } else {
        tracing::debug!(partition = %partition.topic_partition(), error = %e, "append rejected");
    }
    if let StorageError::RejectedRecords(rejected) = &e {
        return rejected_records(code, partition.topic_partition(), rejected);
    }
    PartitionResult::error(code, Some(e.to_string()))
}

/// The answer for a batch refused because of specific records, in Kafka's
/// words (LogValidator): each record's index and reason, and a summary.
fn rejected_records(
    code: i16,
    tp: &TopicPartition,
    rejected: &[RejectedRecord],
) -> PartitionResult {
    let record_errors: Vec<(i32, String)> = rejected
        .iter()
        .map(|r| {
            let message = match &r.reason {
                RecordRejection::MissingKey => format!(
                    "Compacted topic cannot accept message without key in topic partition {tp}"
                ),
                RecordRejection::TimestampOutOfRange {
                    timestamp,
                    offset,
                    now,
                    before_max_ms,
                    after_max_ms,
                } => format!(
                    "Timestamp {} of message with offset {} is out of range. \
                     The timestamp should be within [{}, {}]",
                    timestamp.0,
                    offset.value(),
                    now.0.wrapping_sub(*before_max_ms),
                    now.0.wrapping_add(*after_max_ms),
                ),
            };
            (i32::try_from(r.batch_index).unwrap_or(i32::MAX), message)
        })
        .collect();
    let message = if code == ResponseError::InvalidTimestamp.code() {
        "One or more records have been rejected due to invalid timestamp".to_string()
    } else {
        let first: Vec<String> = record_errors
            .iter()
            .take(3)
            .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, \
             and only showing the first three errors at most: [{}]",
            record_errors.len(),
            first.join(", ")
        )
    };
    PartitionResult {
        error_code: code,
        error_message: Some(message),
        record_errors,
        info: None,
        leader: None,
    }
}
