//! The [`AlterPartitionSender`] on the controller seam:
//! `ControllerClient::alter_partition`, with each answer classified as
//! Kafka's `Partition.handleAlterPartitionError` does.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sluice_controller::{
    AlterPartitionItem, AlterPartitionRequest, ControllerError, PartitionState,
};
use sluice_metadata::{BrokerEpoch, BrokerId, LeaderRecoveryState};

use super::alter::{AlterItem, AlterPartitionSender};
use super::isr::AlterAnswer;
use crate::metadata::ControllerClient;

/// AlterPartition through the broker's controller client.
pub struct ControllerIsrSender {
    client: Arc<dyn ControllerClient>,
    broker: BrokerId,
    /// This broker's registration epoch (-1 until registered).
    broker_epoch: Arc<AtomicI64>,
}

impl ControllerIsrSender {
    pub fn new(
        client: Arc<dyn ControllerClient>,
        broker: BrokerId,
        broker_epoch: Arc<AtomicI64>,
    ) -> Self {
        ControllerIsrSender {
            client,
            broker,
            broker_epoch,
        }
    }
}

impl AlterPartitionSender for ControllerIsrSender {
    fn alter_partition(
        &self,
        items: Vec<AlterItem>,
    ) -> Pin<Box<dyn Future<Output = Vec<AlterAnswer>> + Send + '_>> {
        Box::pin(async move {
            let n = items.len();
            let req = AlterPartitionRequest {
                broker_id: self.broker,
                broker_epoch: BrokerEpoch(self.broker_epoch.load(Ordering::Acquire)),
                partitions: items
                    .into_iter()
                    .map(|i| AlterPartitionItem {
                        topic_id: i.topic_id,
                        partition: i.partition,
                        leader_epoch: i.proposal.leader_epoch,
                        partition_epoch: i.proposal.partition_epoch,
                        new_isr: i.proposal.new_isr,
                        leader_recovery_state: LeaderRecoveryState::Recovered,
                    })
                    .collect(),
            };
            match self.client.alter_partition(req).await {
                Ok(answer) => {
                    let mut out: Vec<AlterAnswer> = answer
                        .value
                        .partitions
                        .into_iter()
                        .map(|r| classify(r.result))
                        .collect();
                    // A short answer: the missing ones are tried again.
                    out.resize(n, AlterAnswer::Retry);
                    out
                }
                Err(e) => {
                    // The whole request failed (no controller, a stale
                    // broker epoch while re-registering): Kafka's
                    // AlterPartitionManager sends it again.
                    tracing::debug!(error = %e, "AlterPartition failed; retrying");
                    vec![AlterAnswer::Retry; n]
                }
            }
        })
    }
}

/// Kafka's `handleAlterPartitionError` groups.
fn classify(result: Result<PartitionState, ControllerError>) -> AlterAnswer {
    use ControllerError as E;
    match result {
        Ok(s) => AlterAnswer::Committed {
            leader: s.leader,
            leader_epoch: s.leader_epoch,
            isr: s.isr,
            partition_epoch: s.partition_epoch,
        },
        // Back to the committed ISR; a later check proposes again. (Kafka
        // retries an INVALID_REQUEST; it cannot succeed unchanged, so it is
        // dropped here rather than sent in a loop.)
        Err(E::IneligibleReplica(m) | E::InvalidRequest(m)) => {
            tracing::info!(reason = %m, "ISR change refused by the controller");
            AlterAnswer::Rejected
        }
        // The image will bring the partition's new state.
        Err(
            E::UnknownTopicOrPartition(_)
            | E::UnknownTopicId(_)
            | E::FencedLeaderEpoch(_)
            | E::InvalidUpdateVersion(_)
            | E::NewLeaderElected(_),
        ) => AlterAnswer::AwaitMetadata,
        Err(e) => {
            tracing::debug!(error = %e, "ISR change failed; retrying");
            AlterAnswer::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_metadata::PartitionEpoch;
    use sluice_record::LeaderEpoch;

    use super::*;

    #[test]
    fn controller_answers_are_classified_as_kafka_does() {
        let ok = PartitionState {
            leader: BrokerId(1),
            leader_epoch: LeaderEpoch(2),
            isr: vec![BrokerId(1)],
            partition_epoch: PartitionEpoch(5),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        };
        assert!(matches!(
            classify(Ok(ok)),
            AlterAnswer::Committed {
                partition_epoch: PartitionEpoch(5),
                ..
            }
        ));
        assert_eq!(
            classify(Err(ControllerError::IneligibleReplica("x".into()))),
            AlterAnswer::Rejected
        );
        assert_eq!(
            classify(Err(ControllerError::InvalidUpdateVersion("x".into()))),
            AlterAnswer::AwaitMetadata
        );
        assert_eq!(
            classify(Err(ControllerError::FencedLeaderEpoch("x".into()))),
            AlterAnswer::AwaitMetadata
        );
        assert_eq!(
            classify(Err(ControllerError::Internal("x".into()))),
            AlterAnswer::Retry
        );
    }
}
