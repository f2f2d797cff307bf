//! ListPartitionReassignments: a one-node cluster completes every valid
//! reassignment at once (see `alter_partition_reassignments`), so none is
//! ever ongoing; like Kafka, unknown topics are simply not listed.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader,
};

use crate::context::BrokerContext;

pub async fn handle(
    _ctx: &BrokerContext,
    _header: &RequestHeader,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_error_message(None)
        .with_topics(Vec::new())
}
