//! AlterPartition (v2-3, as Kafka 4.1's controller listener): wire types
//! to the controller's domain types and back.
//!
//! v2 carries the new ISR as broker ids (their broker epochs are unknown,
//! -1, not checked), v3 with each member's broker epoch (KIP-903). A
//! whole-request refusal (STALE_BROKER_EPOCH, NOT_CONTROLLER) is the top
//! level error with no topics, as Kafka answers; a partition's refusal is
//! its error code with the other fields at their defaults. An item whose
//! LeaderRecoveryState is neither 0 nor 1 is INVALID_REQUEST without
//! reaching the controller.

use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse};
use sluice_controller::{
    AlterPartitionItem, AlterPartitionRequest as Request, ControllerError, PartitionState,
    QuorumController,
};
use sluice_metadata::{BrokerEpoch, BrokerId, LeaderRecoveryState, PartitionEpoch};
use sluice_protocol::kafka_protocol;
use sluice_record::LeaderEpoch;

use super::{check_active, log_refusal};
use crate::codes::controller_error_code;

/// The domain item of one wire partition, or why it cannot be one.
fn item(
    topic_id: uuid::Uuid,
    p: &kafka_protocol::messages::alter_partition_request::PartitionData,
    version: i16,
) -> Result<AlterPartitionItem, ControllerError> {
    let leader_recovery_state = LeaderRecoveryState::from_value(p.leader_recovery_state)
        .ok_or_else(|| {
            ControllerError::InvalidRequest(format!(
                "Unknown leader recovery state {}",
                p.leader_recovery_state
            ))
        })?;
    let new_isr = if version >= 3 {
        p.new_isr_with_epochs
            .iter()
            .map(|b| (BrokerId(b.broker_id.0), b.broker_epoch))
            .collect()
    } else {
        p.new_isr.iter().map(|b| (BrokerId(b.0), -1)).collect()
    };
    Ok(AlterPartitionItem {
        topic_id,
        partition: p.partition_index,
        leader_epoch: LeaderEpoch(p.leader_epoch),
        partition_epoch: PartitionEpoch(p.partition_epoch),
        new_isr,
        leader_recovery_state,
    })
}

fn answer(partition: i32, r: Result<PartitionState, ControllerError>) -> PartitionData {
    match r {
        Ok(s) => PartitionData::default()
            .with_partition_index(partition)
            .with_leader_id(s.leader.0.into())
            .with_leader_epoch(s.leader_epoch.0)
            .with_isr(s.isr.iter().map(|b| b.0.into()).collect())
            .with_leader_recovery_state(s.leader_recovery_state.value())
            .with_partition_epoch(s.partition_epoch.0),
        Err(e) => PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(controller_error_code(&e)),
    }
}

pub(super) async fn alter_partition(
    c: &QuorumController,
    r: AlterPartitionRequest,
    version: i16,
) -> AlterPartitionResponse {
    // Each wire partition in order: its domain item, or its refusal.
    let items: Vec<Vec<Result<AlterPartitionItem, ControllerError>>> = r
        .topics
        .iter()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| item(t.topic_id, p, version))
                .collect()
        })
        .collect();
    let req = Request {
        broker_id: BrokerId(r.broker_id.0),
        broker_epoch: BrokerEpoch(r.broker_epoch),
        partitions: items
            .iter()
            .flatten()
            .filter_map(|i| i.as_ref().ok().cloned())
            .collect(),
    };
    let result = match check_active(c) {
        Ok(()) => c.alter_partition(req).await,
        Err(e) => Err(e),
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            log_refusal("AlterPartition", &e);
            return AlterPartitionResponse::default().with_error_code(controller_error_code(&e));
        }
    };
    let mut answered = reply.partitions.into_iter();
    let topics = r
        .topics
        .iter()
        .zip(items)
        .map(|(t, items)| {
            let partitions = t
                .partitions
                .iter()
                .zip(items)
                .map(|(p, i)| {
                    let result = match i {
                        Err(e) => Err(e),
                        // One answer per item sent, in order.
                        Ok(_) => answered.next().map(|a| a.result).unwrap_or_else(|| {
                            Err(ControllerError::Internal("no answer for the item".into()))
                        }),
                    };
                    answer(p.partition_index, result)
                })
                .collect();
            TopicData::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionResponse::default().with_topics(topics)
}
