//! ListOffsets (v1+): earliest (-2), latest (-1), max timestamp (-3),
//! earliest local (-4, the same as earliest without tiered storage), and
//! the first offset at or after a timestamp (through the time index).
//! A consumer in read_committed (`isolation_level` 1, v2+) sees up to the
//! last stable offset instead of the high watermark: LATEST is the last
//! stable offset, and lookups find nothing at or past it (Kafka's
//! `lastFetchableOffset`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use sluice_record::{records, BatchHeader, Offset, Timestamp};

use super::leadership::{check_leader_epoch, leader_partition};
use crate::context::BrokerContext;
use crate::error::storage_error_code;
use crate::partition::Partition;

/// Kafka's `ListOffsetsRequest` special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const EARLIEST_PENDING_UPLOAD_TIMESTAMP: i64 = -5;
pub const LATEST_TIERED_TIMESTAMP: i64 = -6;

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = header.request_api_version;
    // A follower (Kafka: a replica id >= 0) asking for the latest offset gets
    // the log end offset, not the high watermark: it decides how far an
    // out-of-range follower truncates.
    let from_replica = req.replica_id.0 >= 0;
    let read_committed = version >= 2 && req.isolation_level == 1;
    // Resolve partitions here; do the lookups (index reads, and for
    // timestamps a batch read and decompression) on the blocking pool.
    let mut queries = Vec::new();
    let image = ctx.image.image();
    let me = ctx.image.node();
    for t in &req.topics {
        for p in &t.partitions {
            let partition = leader_partition(
                &image,
                &ctx.replicas,
                me,
                t.name.0.as_str(),
                p.partition_index,
            )
            .map_err(|ns| ns.code);
            let epoch = if version >= 4 {
                p.current_leader_epoch
            } else {
                -1
            };
            queries.push((partition, epoch, p.timestamp));
        }
    }
    let answer = move |(partition, epoch, timestamp): Query| {
        let partition = partition?;
        let leader_epoch = partition.leader_epoch().0;
        check_leader_epoch(leader_epoch, epoch)?;
        Ok(lookup(&partition, timestamp, from_replica, read_committed)?
            .map(|(o, ts)| (o, ts, leader_epoch)))
    };
    // The offsets kept in memory (latest, earliest: what consumers and
    // lag monitors ask most) are answered here; a hand-off to the blocking
    // pool would cost more than the lookup.
    let answers: Vec<_> = if queries.iter().all(|q| in_memory(q.2)) {
        queries.into_iter().map(answer).collect()
    } else {
        sluice_runtime::spawn_blocking(move || queries.into_iter().map(answer).collect())
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "list offsets task failed");
                Vec::new()
            })
    };
    let mut answers = answers.into_iter();

    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let answer = answers
                .next()
                .unwrap_or(Err(ResponseError::KafkaStorageError.code()));
            let resp =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match answer {
                Ok(Some((offset, ts, leader_epoch))) => resp
                    .with_offset(offset.value())
                    .with_timestamp(ts.millis())
                    // The field exists from v4; below it must keep its default.
                    .with_leader_epoch(if version >= 4 { leader_epoch } else { -1 }),
                Ok(None) => resp
                    .with_offset(-1)
                    .with_timestamp(-1)
                    .with_leader_epoch(-1),
                Err(code) => resp
                    .with_error_code(code)
                    .with_offset(-1)
                    .with_timestamp(-1)
                    .with_leader_epoch(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}

/// One partition's query: the partition (or the error code it is
/// answered with), the client's current leader epoch, the timestamp.
type Query = (Result<std::sync::Arc<Partition>, i16>, i32, i64);

/// Whether [`lookup`] answers `timestamp` from memory (no index or batch
/// read).
fn in_memory(timestamp: i64) -> bool {
    matches!(
        timestamp,
        LATEST_TIMESTAMP
            | EARLIEST_TIMESTAMP
            | EARLIEST_LOCAL_TIMESTAMP
            | EARLIEST_PENDING_UPLOAD_TIMESTAMP
            | LATEST_TIERED_TIMESTAMP
    )
}

/// The offset (and its timestamp) a ListOffsets query resolves to, `None`
/// when there is no such offset.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    from_replica: bool,
    read_committed: bool,
) -> Result<Option<(Offset, Timestamp)>, i16> {
    let log = partition.log();
    // Consumers never see past the high watermark, nor in read_committed
    // past the last stable offset.
    let hw = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    match timestamp {
        LATEST_TIMESTAMP if from_replica => Ok(Some((log.log_end_offset(), Timestamp::NONE))),
        LATEST_TIMESTAMP => Ok(Some((hw, Timestamp::NONE))),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            Ok(Some((log.log_start_offset(), Timestamp::NONE)))
        }
        MAX_TIMESTAMP => Ok(log
            .max_timestamp_and_offset()
            .filter(|(_, offset)| *offset < hw)
            .map(|(ts, offset)| (offset, ts))),
        EARLIEST_PENDING_UPLOAD_TIMESTAMP | LATEST_TIERED_TIMESTAMP => Ok(None),
        ts => match log.offset_for_timestamp(Timestamp(ts)) {
            Ok(found) => Ok(found
                .map(|(offset, batch_ts)| {
                    exact_record(partition, offset, Timestamp(ts), hw).unwrap_or((offset, batch_ts))
                })
                .filter(|(offset, _)| *offset < hw)),
            Err(e) => Err(storage_error_code(&e)),
        },
    }
}

/// Largest decompressed batch this lookup is willing to expand.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// The first record at or after `from` whose timestamp is `>= ts`, looked up
/// inside the batch that holds `from` (the time index only finds batches;
/// Kafka answers with the record, as consumers' `offsetsForTimes` expect).
fn exact_record(
    partition: &Partition,
    from: Offset,
    ts: Timestamp,
    hw: Offset,
) -> Option<(Offset, Timestamp)> {
    let slice = partition.log().read(from, 1, Some(hw), true).ok()??;
    let bytes = slice.read_to_vec().ok()?;
    let size = BatchHeader::peek_size(&bytes).ok()?;
    let reader = records(bytes.get(..size)?, MAX_DECOMPRESSED).ok()?;
    reader
        .records()
        .filter_map(Result::ok)
        .find(|r| r.offset >= from && r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp))
}
