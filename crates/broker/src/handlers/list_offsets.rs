//! ListOffsets (v1+): earliest (-2), latest (-1), max timestamp (-3),
//! earliest local (-4, the same as earliest without tiered storage), and
//! the first offset at or after a timestamp (through the time index).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use sluice_record::{Offset, Timestamp};
use sluice_storage::TopicPartition;

use super::fetch::{check_leader_epoch, LEADER_EPOCH};
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
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
            let epoch = if version >= 4 {
                p.current_leader_epoch
            } else {
                -1
            };
            let answer = match ctx.replicas.get_partition(&tp) {
                None => Err(ResponseError::UnknownTopicOrPartition.code()),
                Some(partition) => {
                    check_leader_epoch(epoch).and_then(|()| lookup(&partition, p.timestamp))
                }
            };
            let resp =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match answer {
                Ok(Some((offset, ts))) => resp
                    .with_offset(offset.value())
                    .with_timestamp(ts.millis())
                    .with_leader_epoch(LEADER_EPOCH),
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

/// The offset (and its timestamp) a ListOffsets query resolves to, `None`
/// when there is no such offset.
fn lookup(partition: &Partition, timestamp: i64) -> Result<Option<(Offset, Timestamp)>, i16> {
    let log = partition.log();
    // Consumers never see past the high watermark (no transactions, so the
    // last stable offset equals it).
    let hw = partition.high_watermark();
    match timestamp {
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
            Ok(found) => Ok(found.filter(|(offset, _)| *offset < hw)),
            Err(e) => Err(storage_error_code(&e)),
        },
    }
}
