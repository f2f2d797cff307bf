//! ElectLeaders and AllocateProducerIds.
//!
//! Elections never pick a replica outside the ISR: until replication
//! exists the ISR is the leader alone, so a partition whose leader is
//! fenced stays offline (leader -1, ISR its last leader) until that broker
//! is usable again, and "unclean" elections also choose only from the ISR.

use sluice_metadata::record::{PartitionChangeRecord, ProducerIdsRecord};
use sluice_metadata::{
    BrokerEpoch, BrokerId, MetadataImage, MetadataRecord, PartitionRegistration,
};
use sluice_record::ProducerId;
use uuid::Uuid;

use super::{check_broker_epoch, ElectionResult, ElectionType, ProducerIdsBlock, QuorumController};
use crate::error::ControllerError;

/// Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

impl QuorumController {
    /// ElectLeaders. `partitions: None` means every partition; then only
    /// partitions where something was done or went wrong are answered
    /// (ELECTION_NOT_NEEDED ones are left out, as Kafka does).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        self.submit(move |ctx| Ok(plan_elections(ctx.image, election, partitions.as_deref())))
            .await
    }

    /// AllocateProducerIds: the next block of 1000 ids for a registered
    /// broker at its current epoch.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<ProducerIdsBlock, ControllerError> {
        self.submit(move |ctx| {
            check_broker_epoch(ctx.image, broker_id, broker_epoch)?;
            let first = ctx.image.next_producer_id();
            let next = first
                .0
                .checked_add(i64::from(PRODUCER_ID_BLOCK_SIZE))
                .ok_or_else(|| ControllerError::Internal("Exhausted all producerIds.".into()))?;
            let record = MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id,
                broker_epoch,
                next_producer_id: ProducerId(next),
            });
            let block = ProducerIdsBlock {
                broker_id,
                broker_epoch,
                first_producer_id: first,
                size: PRODUCER_ID_BLOCK_SIZE,
            };
            Ok((vec![record], block))
        })
        .await
    }
}

fn plan_elections(
    image: &MetadataImage,
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut one = |topic: &str, id: Uuid, partition: i32, reg: Option<&PartitionRegistration>| {
        let result = match reg {
            None => Err(ControllerError::UnknownTopicOrPartition(format!(
                "The partition {topic}-{partition} does not exist."
            ))),
            Some(reg) => elect(image, election, reg, topic, partition).map(|leader| {
                let mut change = PartitionChangeRecord::new(id, partition);
                change.leader = leader;
                records.push(MetadataRecord::PartitionChange(change));
            }),
        };
        ElectionResult {
            topic: topic.to_owned(),
            partition,
            result,
        }
    };
    match partitions {
        Some(list) => {
            for (topic, p) in list {
                let t = image.topic(topic);
                let reg = t.and_then(|t| t.partition(*p));
                let id = t.map_or(Uuid::nil(), |t| t.id());
                results.push(one(topic, id, *p, reg));
            }
        }
        None => {
            for (name, &id) in image.topic_names() {
                let Some(t) = image.topic_by_id(id) else {
                    continue;
                };
                for (&p, reg) in t.partitions() {
                    let r = one(name, id, p, Some(reg));
                    if !matches!(r.result, Err(ControllerError::ElectionNotNeeded)) {
                        results.push(r);
                    }
                }
            }
        }
    }
    (records, results)
}

/// The new leader of one partition under `election`.
fn elect(
    image: &MetadataImage,
    election: ElectionType,
    reg: &PartitionRegistration,
    topic: &str,
    partition: i32,
) -> Result<BrokerId, ControllerError> {
    let usable = |b: BrokerId| image.broker(b).is_some_and(|r| r.is_usable());
    match election {
        ElectionType::Preferred => {
            let preferred = reg.replicas[0];
            if reg.leader == preferred {
                return Err(ControllerError::ElectionNotNeeded);
            }
            if reg.isr.contains(&preferred) && usable(preferred) {
                return Ok(preferred);
            }
            Err(ControllerError::PreferredLeaderNotAvailable(format!(
                "Failed to elect leader for partition {topic}-{partition} under strategy PreferredReplicaPartitionLeaderElectionStrategy"
            )))
        }
        ElectionType::Unclean => {
            if reg.has_leader() {
                return Err(ControllerError::ElectionNotNeeded);
            }
            reg.isr.iter().copied().find(|&b| usable(b)).ok_or_else(|| {
                ControllerError::EligibleLeadersNotAvailable(format!(
                    "Failed to elect leader for partition {topic}-{partition}: no usable in-sync replica"
                ))
            })
        }
    }
}
