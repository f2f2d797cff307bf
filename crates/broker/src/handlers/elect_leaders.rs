//! ElectLeaders on a one-node cluster: this broker leads every partition and
//! is its only replica, so no election is ever needed. Like Kafka 4.1.2 on a
//! single node, each named partition answers ELECTION_NOT_NEEDED (for
//! preferred and unclean elections alike), unknown topics and partitions
//! UNKNOWN_TOPIC_OR_PARTITION, and a request for "all partitions" (null)
//! lists none, because none needs an election.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let topic = ctx.image.topic(&name);
            let partition_result = t
                .partitions
                .iter()
                .map(|&p| {
                    let (code, message) = match &topic {
                        None => (
                            ResponseError::UnknownTopicOrPartition,
                            format!("No such topic as {name}"),
                        ),
                        Some(m) if p < 0 || p >= m.partitions => (
                            ResponseError::UnknownTopicOrPartition,
                            format!("No such partition as {name}-{p}"),
                        ),
                        Some(_) => (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition.".to_string(),
                        ),
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_replica_election_results(results)
}
