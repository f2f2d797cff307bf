//! ElectLeaders and AllocateProducerIds.
//!
//! A preferred election moves leadership to the first replica when it is
//! in the ISR and usable. An unclean one (for a leaderless partition)
//! elects as [`ChangeBuilder`] with an unclean election does: the ISR, the
//! ELR, then any usable replica, which becomes the ISR alone and marks the
//! partition RECOVERING (KIP-704).

use sluice_metadata::record::{PartitionChangeRecord, ProducerIdsRecord};
use sluice_metadata::{BrokerEpoch, BrokerId, MetadataRecord, PartitionRegistration};
use sluice_record::ProducerId;
use uuid::Uuid;

use super::change::{rules_for, ChangeBuilder, Election};
use super::{
    check_broker_epoch, ElectionResult, ElectionType, OpContext, ProducerIdsBlock, QuorumController,
};
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
        self.submit(move |ctx| Ok(plan_elections(ctx, election, partitions.as_deref())))
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
    ctx: &OpContext<'_>,
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<ElectionResult>) {
    let image = ctx.image;
    let mut records = Vec::new();
    let mut results = Vec::new();
    let mut one = |topic: &str, id: Uuid, partition: i32, reg: Option<&PartitionRegistration>| {
        let result = match reg {
            None => Err(ControllerError::UnknownTopicOrPartition(format!(
                "The partition {topic}-{partition} does not exist."
            ))),
            Some(reg) => elect(ctx, election, reg, (topic, id, partition)).map(|change| {
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

/// The change that elects a new leader of one partition under `election`.
fn elect(
    ctx: &OpContext<'_>,
    election: ElectionType,
    reg: &PartitionRegistration,
    (topic, id, partition): (&str, Uuid, i32),
) -> Result<PartitionChangeRecord, ControllerError> {
    let image = ctx.image;
    match election {
        ElectionType::Preferred => {
            super::rebalance::preferred_change(image, reg, (topic, id, partition))
        }
        ElectionType::Unclean => {
            if reg.has_leader() {
                return Err(ControllerError::ElectionNotNeeded);
            }
            let mut rules = rules_for(image, ctx.config, topic, reg.replicas.len());
            rules.election = Election::Unclean;
            ChangeBuilder::new(image, reg, id, partition, rules)
                .build()
                .filter(|c| c.leader.0 >= 0)
                .ok_or_else(|| {
                    // Kafka answers with the error's own message.
                    ControllerError::EligibleLeadersNotAvailable(
                        "Eligible topic partition leaders are not available.".to_owned(),
                    )
                })
        }
    }
}

/// Most unclean elections one periodic check commits (Kafka's
/// `maxElectionsPerImbalance`); the next check takes the rest.
const MAX_UNCLEAN_ELECTIONS: usize = 1000;

/// The periodic unclean election (Kafka's `maybeElectUncleanLeaders`, every
/// `unclean.leader.election.interval.ms`): leaderless partitions of topics
/// with `unclean.leader.election.enable` get a leader as an unclean
/// ElectLeaders would give them. Nobody awaits its answer.
pub(super) fn elect_unclean_op() -> super::Op {
    Box::new(|ctx| {
        let records = match ctx {
            Ok(ctx) => plan_unclean_elections(ctx),
            Err(_) => Vec::new(),
        };
        let n = records.len();
        super::Planned {
            records,
            finish: Box::new(move |res| match res {
                Ok(()) if n > 0 => tracing::warn!(
                    partitions = n,
                    "unclean leader elections for offline partitions"
                ),
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "unclean leader elections failed"),
            }),
            // Independent partition changes: more than a batch commit in several.
            atomic: false,
        }
    })
}

pub(super) fn plan_unclean_elections(ctx: &OpContext<'_>) -> Vec<MetadataRecord> {
    let image = ctx.image;
    let default = ctx.config.unclean_leader_election_enable;
    let mut records = Vec::new();
    for t in image.topics() {
        if !super::change::unclean_enabled(image, t.name(), default) {
            continue;
        }
        for (&p, reg) in t.partitions() {
            if reg.has_leader() {
                continue;
            }
            if records.len() >= MAX_UNCLEAN_ELECTIONS {
                return records;
            }
            let rules = rules_for(image, ctx.config, t.name(), reg.replicas.len());
            if let Some(change) = ChangeBuilder::new(image, reg, t.id(), p, rules)
                .build()
                .filter(|c| c.leader.0 >= 0)
            {
                records.push(MetadataRecord::PartitionChange(change));
            }
        }
    }
    records
}
