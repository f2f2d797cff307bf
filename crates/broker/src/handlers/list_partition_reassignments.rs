//! ListPartitionReassignments through the controller: the reassignments
//! in progress (replicas, adding, removing) of every partition, or of the
//! partitions named; like Kafka, unknown topics and partitions and those
//! not being reassigned are simply not listed. A failure of the whole call
//! is the top-level error.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

fn ids(v: &[sluice_metadata::BrokerId]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(b.0)).collect()
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let resp = ListPartitionReassignmentsResponse::default().with_throttle_time_ms(0);
    let ongoing = match ctx.controller.list_partition_reassignments(topics).await {
        Ok(o) => o,
        Err(e) => {
            return resp
                .with_error_code(e.kafka_error_code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
        }
    };
    let mut out: Vec<OngoingTopicReassignment> = Vec::new();
    for o in ongoing {
        let p = OngoingPartitionReassignment::default()
            .with_partition_index(o.partition)
            .with_replicas(ids(&o.replicas))
            .with_adding_replicas(ids(&o.adding))
            .with_removing_replicas(ids(&o.removing));
        match out.last_mut() {
            Some(t) if *t.name.0 == *o.topic => t.partitions.push(p),
            _ => out.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(o.topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    resp.with_error_code(0)
        .with_error_message(None)
        .with_topics(out)
}
