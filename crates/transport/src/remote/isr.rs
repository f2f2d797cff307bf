//! AlterPartition for [`RemoteController`](super::RemoteController): the
//! domain request as Kafka's v3 (the channel rewrites it for v2) and the
//! answer back, one result per item in request order.
//!
//! Items of one topic id that follow each other become one wire topic
//! (Kafka's brokers send each topic once); the answer must name the same
//! topics and partitions in the same order, else it is refused as a
//! controller bug ([`ControllerError::Internal`]).

use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse};
use sluice_controller::{
    AlterPartitionReply, AlterPartitionRequest as Request, AlterPartitionResult, ControllerError,
    PartitionState,
};
use sluice_metadata::{BrokerId, LeaderRecoveryState, PartitionEpoch};
use sluice_protocol::kafka_protocol;
use sluice_record::LeaderEpoch;

use crate::codes::{controller_error_from_code, ErrorContext};

pub(super) fn request(req: &Request) -> AlterPartitionRequest {
    let mut topics: Vec<TopicData> = Vec::new();
    for it in &req.partitions {
        let data = PartitionData::default()
            .with_partition_index(it.partition)
            .with_leader_epoch(it.leader_epoch.0)
            .with_partition_epoch(it.partition_epoch.0)
            .with_leader_recovery_state(it.leader_recovery_state.value())
            .with_new_isr_with_epochs(
                it.new_isr
                    .iter()
                    .map(|&(b, epoch)| {
                        BrokerState::default()
                            .with_broker_id(b.0.into())
                            .with_broker_epoch(epoch)
                    })
                    .collect(),
            );
        match topics.last_mut() {
            Some(t) if t.topic_id == it.topic_id => t.partitions.push(data),
            _ => topics.push(
                TopicData::default()
                    .with_topic_id(it.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    AlterPartitionRequest::default()
        .with_broker_id(req.broker_id.0.into())
        .with_broker_epoch(req.broker_epoch.0)
        .with_topics(topics)
}

fn bad(why: String) -> ControllerError {
    ControllerError::Internal(format!("AlterPartition: {why}"))
}

pub(super) fn reply(
    req: &Request,
    resp: AlterPartitionResponse,
) -> Result<AlterPartitionReply, ControllerError> {
    let whole = ErrorContext {
        broker: Some(req.broker_id),
        broker_epoch: Some(req.broker_epoch.0),
        ..ErrorContext::default()
    };
    if let Some(e) = controller_error_from_code(resp.error_code, None, &whole) {
        return Err(e);
    }
    let answered: Vec<_> = resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let id = t.topic_id;
            t.partitions.into_iter().map(move |p| (id, p))
        })
        .collect();
    if answered.len() != req.partitions.len() {
        return Err(bad(format!(
            "the controller answered {} partitions for {}",
            answered.len(),
            req.partitions.len()
        )));
    }
    let mut partitions = Vec::with_capacity(answered.len());
    for (asked, (topic_id, p)) in req.partitions.iter().zip(answered) {
        if (topic_id, p.partition_index) != (asked.topic_id, asked.partition) {
            return Err(bad(format!(
                "the controller answered {topic_id}-{} where {}-{} was asked",
                p.partition_index, asked.topic_id, asked.partition
            )));
        }
        let ctx = ErrorContext {
            topic_id: Some(topic_id),
            ..ErrorContext::default()
        };
        let result = match controller_error_from_code(p.error_code, None, &ctx) {
            Some(e) => Err(e),
            None => Ok(PartitionState {
                leader: BrokerId(p.leader_id.0),
                leader_epoch: LeaderEpoch(p.leader_epoch),
                isr: p.isr.iter().map(|b| BrokerId(b.0)).collect(),
                partition_epoch: PartitionEpoch(p.partition_epoch),
                leader_recovery_state: LeaderRecoveryState::from_value(p.leader_recovery_state)
                    .ok_or_else(|| {
                        bad(format!(
                            "unknown leader recovery state {}",
                            p.leader_recovery_state
                        ))
                    })?,
            }),
        };
        partitions.push(AlterPartitionResult {
            topic_id,
            partition: p.partition_index,
            result,
        });
    }
    Ok(AlterPartitionReply { partitions })
}
