//! DeleteRecords: advances a partition's log start offset. Offset -1 means
//! "up to the high watermark"; offsets past the high watermark (or other
//! negatives) are OFFSET_OUT_OF_RANGE, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};
use sluice_record::Offset;
use sluice_storage::TopicPartition;

use crate::context::BrokerContext;
use crate::error::storage_error_code;

async fn delete_one(ctx: &BrokerContext, tp: TopicPartition, offset: i64) -> Result<i64, i16> {
    let partition = ctx
        .replicas
        .get_partition(&tp)
        .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    let hw = partition.high_watermark();
    let target = match offset {
        -1 => hw,
        o if o < 0 || o > hw.0 => return Err(ResponseError::OffsetOutOfRange.code()),
        o => Offset(o),
    };
    let log = partition.log().clone();
    match sluice_runtime::spawn_blocking(move || log.delete_records_before(target)).await {
        Ok(Ok(start)) => Ok(start.0),
        Ok(Err(e)) => {
            tracing::warn!(partition = %tp, error = %e, "delete records failed");
            Err(storage_error_code(&e))
        }
        Err(_) => Err(ResponseError::UnknownServerError.code()),
    }
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
            let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            partitions.push(match delete_one(ctx, tp, p.offset).await {
                Ok(low) => r.with_low_watermark(low).with_error_code(0),
                Err(code) => r.with_low_watermark(-1).with_error_code(code),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
