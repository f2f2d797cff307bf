//! TxnOffsetCommit (v0–v4): a transactional producer commits a consumer
//! group's offsets as part of its transaction (KIP-98; v3 adds the member's
//! generation, id and instance id for KIP-447 fencing). Per partition:
//! unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION, metadata
//! longer than `offset.metadata.max.bytes` OFFSET_METADATA_TOO_LARGE; the
//! rest goes to the group coordinator, which checks the committer against
//! the group and writes the offsets as a transactional batch of the
//! producer. They are pending (invisible to OffsetFetch) until the
//! transaction's marker.
//!
//! v5 is transaction version 2 (KIP-890 part 2): the client sends no
//! AddOffsetsToTxn, so the group coordinator adds the group's offsets
//! partition to the transaction itself before it writes, as a partition
//! leader does for a Produce (`TransactionCoordinator::ask_for_produce`).
//! Before v5 (KIP-890 part 1), with `transaction.partition.verification.enable`,
//! it first verifies that AddOffsetsToTxn put the partition in the
//! transaction, and writes nothing if not. Either question is skipped when
//! the producer's transaction is open in the offsets partition's log
//! already (an earlier commit of the same transaction), as Kafka skips it.
//! The write carries the guard taken before the question, so a marker
//! written while it was out (the transaction ended meanwhile) makes the
//! write fail with INVALID_TXN_STATE instead of opening a transaction no
//! coordinator knows of.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{RequestHeader, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use sluice_record::{ProducerEpoch, ProducerId};
use sluice_storage::producer_state::Verification;

use crate::context::BrokerContext;
use crate::group::{CommitRequest, GroupError, TxnCommitter, OFFSETS_TOPIC};
use crate::txn::{LeaderAsk, TxnError};

/// The first TxnOffsetCommit version of transaction version 2.
const V2_SINCE: i16 = 5;

/// Kafka's TRANSACTION_ABORTABLE (KIP-890).
const TRANSACTION_ABORTABLE: i16 = 120;

/// What the handler decided for one partition before the coordinator.
#[derive(Clone, Copy)]
enum Checked {
    /// Goes to the coordinator; gets its answer.
    Valid,
    /// Refused here (unknown topic or partition).
    Refused(GroupError),
    /// Metadata too long: OFFSET_METADATA_TOO_LARGE unless the coordinator
    /// refuses the whole request (Kafka checks the group first).
    TooLarge,
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    let max_metadata = ctx.groups.config().offset_metadata_max_bytes;
    let mut checked: Vec<Vec<Checked>> = Vec::with_capacity(req.topics.len());
    let mut commits = Vec::new();
    let mut to_coordinator = false;
    for t in &req.topics {
        let topic = ctx.image.topic(&t.name.0);
        let mut row = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            let c = match &topic {
                Some(tm) if p.partition_index >= 0 && p.partition_index < tm.partitions => {
                    to_coordinator = true;
                    if metadata.len() > max_metadata {
                        Checked::TooLarge
                    } else {
                        commits.push(CommitRequest {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: if version >= 2 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: metadata.to_string(),
                        });
                        Checked::Valid
                    }
                }
                _ => Checked::Refused(GroupError::UnknownTopicOrPartition),
            };
            row.push(c);
        }
        checked.push(row);
    }
    let group_err = if !to_coordinator {
        None
    } else if req.group_id.0.is_empty() {
        Some(GroupError::InvalidGroupId)
    } else {
        let committer = TxnCommitter {
            transactional_id: req.transactional_id.0.to_string(),
            producer_id: ProducerId(req.producer_id.0),
            producer_epoch: ProducerEpoch(req.producer_epoch),
            generation_id: if version >= 3 { req.generation_id } else { -1 },
            member_id: if version >= 3 {
                req.member_id.to_string()
            } else {
                String::new()
            },
            group_instance_id: if version >= 3 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
        };
        match ctx.groups.ensure_offsets_topic(ctx).await {
            Err(e) => Some(e),
            Ok(_) => match verified(ctx, version, &req).await {
                Err(code) => return refused_all(req, &checked, code),
                Ok(Err(e)) => Some(e),
                Ok(Ok(verification)) => ctx
                    .groups
                    .commit_verified_offsets(&req.group_id.0, &committer, commits, verification)
                    .await
                    .err(),
            },
        }
    };
    // Clients before 2.0 (v0–v1) do not retry COORDINATOR_LOAD_IN_PROGRESS
    // (KAFKA-7296); Kafka answers them COORDINATOR_NOT_AVAILABLE.
    let group_err = match group_err {
        Some(GroupError::CoordinatorLoadInProgress) if version < 2 => {
            Some(GroupError::CoordinatorNotAvailable)
        }
        e => e,
    };
    respond(req, &checked, |c| {
        let e = match c {
            Checked::Valid => group_err,
            Checked::Refused(e) => Some(e),
            Checked::TooLarge => group_err.or(Some(GroupError::OffsetMetadataTooLarge)),
        };
        e.map_or(0, GroupError::code)
    })
}

/// What the group coordinator asks the transaction coordinator before it
/// writes (Kafka's `CoordinatorRuntime.scheduleTransactionalWriteOperation`):
/// v5 adds the offsets partition; v0–v4 verify that AddOffsetsToTxn added
/// it (KIP-890 part 1), when `transaction.partition.verification.enable`
/// is on, as for a Produce.
fn ask_coordinator(ctx: &BrokerContext, version: i16) -> Option<LeaderAsk> {
    if version >= V2_SINCE {
        Some(LeaderAsk::Add)
    } else if ctx.config.transaction_partition_verification() {
        Some(LeaderAsk::Verify)
    } else {
        None
    }
}

/// KIP-890 for the group's offsets partition, in Kafka's order: the
/// verification's guard is taken from the partition's log first, then the
/// transaction coordinator is asked (skipped when the producer's
/// transaction is open there already), and the write must bring the guard
/// (a marker written meanwhile voids it). `Err(code)`: the coordinator
/// refused, for every partition; `Ok(Err(_))`: the offsets partition is not
/// served here (the write would fail the same way).
async fn verified(
    ctx: &BrokerContext,
    version: i16,
    req: &TxnOffsetCommitRequest,
) -> Result<Result<Verification, GroupError>, i16> {
    let Some(ask) = ask_coordinator(ctx, version) else {
        return Ok(Ok(Verification::NotRequired));
    };
    let pid = ProducerId(req.producer_id.0);
    let epoch = ProducerEpoch(req.producer_epoch);
    let guard = match ctx
        .groups
        .start_offsets_verification(&req.group_id.0, pid, epoch)
    {
        Err(e) => return Ok(Err(e)),
        Ok(None) => {
            ctx.txns.note_verification_skipped();
            return Ok(Ok(Verification::Required(None)));
        }
        Ok(Some(guard)) => guard,
    };
    offsets_partition_in_txn(ctx, (ask, version), req).await?;
    Ok(Ok(Verification::Required(Some(guard))))
}

/// Adds (transaction version 2) or verifies (version 1) the group's
/// `__consumer_offsets` partition in the producer's transaction; the error
/// code for every partition if that fails (retriable coordinator troubles
/// as COORDINATOR_NOT_AVAILABLE, as Kafka's group coordinator normalizes
/// them).
async fn offsets_partition_in_txn(
    ctx: &BrokerContext,
    (ask, version): (LeaderAsk, i16),
    req: &TxnOffsetCommitRequest,
) -> Result<(), i16> {
    let partition = ctx.groups.partition_for(req.group_id.as_str());
    let verdict = ctx
        .txns
        .ask_for_produce(
            ask,
            req.transactional_id.as_str(),
            (
                ProducerId(req.producer_id.0),
                ProducerEpoch(req.producer_epoch),
            ),
            &[(OFFSETS_TOPIC.to_string(), partition)],
        )
        .await;
    match verdict.into_iter().next().unwrap_or(Ok(())) {
        Ok(()) => Ok(()),
        // Not in the transaction: Kafka's coordinator says
        // TRANSACTION_ABORTABLE, which its AddPartitionsToTxnManager leaves
        // to v4 (`genericErrorSupported`) and turns into INVALID_TXN_STATE
        // for v0–v3, whose clients do not know it.
        Err(TxnError::InvalidTxnState) if ask == LeaderAsk::Verify && version >= 4 => {
            Err(TRANSACTION_ABORTABLE)
        }
        Err(e @ (TxnError::InvalidTxnState | TxnError::InvalidProducerIdMapping)) => Err(e.code()),
        Err(TxnError::ProducerFenced) => Err(GroupError::InvalidProducerEpoch.code()),
        Err(_) => Err(GroupError::CoordinatorNotAvailable.code()),
    }
}

/// The answer when nothing was written: `code` for each partition that
/// went to the coordinator, its own refusal for the others.
fn refused_all(
    req: TxnOffsetCommitRequest,
    checked: &[Vec<Checked>],
    code: i16,
) -> TxnOffsetCommitResponse {
    respond(req, checked, |c| match c {
        Checked::Refused(e) => e.code(),
        Checked::Valid | Checked::TooLarge => code,
    })
}

/// The response: `code_of` each partition's check, in request order.
fn respond(
    req: TxnOffsetCommitRequest,
    checked: &[Vec<Checked>],
    code_of: impl Fn(Checked) -> i16,
) -> TxnOffsetCommitResponse {
    let topics = req
        .topics
        .into_iter()
        .zip(checked)
        .map(|(t, row)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(row)
                        .map(|(p, &c)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code_of(c))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
