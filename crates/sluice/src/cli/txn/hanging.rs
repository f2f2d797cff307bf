//! `sluice transactions find-hanging` (Kafka's `kafka-transactions
//! find-hanging`, `TransactionsCommand.FindHangingTransactionsCommand`):
//! transactions a partition holds open that no coordinator will end.
//!
//! The search, as Kafka's tool makes it:
//! 1. the partitions: the one named, or those of the topic named (or of
//!    every topic, internal ones included) with a replica on `--broker-id`;
//! 2. their producers (DescribeProducers: at `--broker-id`, else at each
//!    leader); a candidate is a producer with an open transaction whose last
//!    timestamp is more than `--max-transaction-timeout` minutes old (no
//!    transaction may legally run longer than the coordinator's maximum
//!    timeout, 15 minutes by default);
//! 3. the candidates' transactional ids (ListTransactions filtered by
//!    producer id, at every broker) and their coordinators' view
//!    (DescribeTransactions);
//! 4. hanging: a candidate whose producer id no coordinator lists, whose
//!    transactional id no longer exists, or whose coordinator does not
//!    count the partition in the transaction (it will never write that
//!    partition's marker).
//!
//! Invariant: a partition the coordinator still counts in the
//! transaction is never reported, however old its transaction is.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::{ListTransactionsRequest, ProducerId};

use super::super::ConnectArgs;
use super::producers::{cluster_view, describe_producers, kafka_table, now_ms, show, Target, Tp};
use super::{describe_state, list_transactions, TRANSACTIONAL_ID_NOT_FOUND};

/// Kafka's `find-hanging` columns.
const HEADERS: [&str; 8] = [
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
];

/// Where to search.
#[derive(Clone, Debug)]
pub(super) struct Scope {
    pub broker_id: Option<i32>,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    /// `--max-transaction-timeout`, in minutes.
    pub max_transaction_timeout: i32,
}

/// An open transaction of one producer on one partition.
type Open = (Tp, ProducerState);

/// `sluice transactions find-hanging`.
pub(super) fn find_hanging(connect: &ConnectArgs, scope: &Scope) -> anyhow::Result<()> {
    if scope.topic.is_none() && scope.broker_id.is_none() {
        bail!(
            "The `find-hanging` command requires either --topic or --broker-id \
             to limit the scope of the search"
        );
    }
    if scope.partition.is_some() && scope.topic.is_none() {
        bail!("The --partition argument requires --topic to be provided");
    }
    let partitions = partitions_to_search(connect, scope)?;
    let target = scope.broker_id.map_or(Target::Leader, Target::Broker);
    let producers = describe_producers(connect, &partitions, target).with_context(|| {
        format!(
            "Failed to describe producers for {} partitions on {target}",
            partitions.len()
        )
    })?;
    let max_ms = i64::from(scope.max_transaction_timeout).saturating_mul(60_000);
    let now = now_ms();
    let candidates: Vec<Open> = producers
        .into_iter()
        .flat_map(|(tp, ps)| ps.into_iter().map(move |p| (tp.clone(), p)))
        .filter(|(_, p)| p.current_txn_start_offset >= 0 && now - p.last_timestamp > max_ms)
        .collect();
    let mut hanging = if candidates.is_empty() {
        Vec::new()
    } else {
        filter_hanging(connect, candidates)?
    };
    hanging.sort_by_key(|(tp, p)| (tp.clone(), p.producer_id.0));
    let rows: Vec<Vec<String>> = hanging
        .iter()
        .map(|(tp, p)| {
            vec![
                tp.0.clone(),
                tp.1.to_string(),
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.max(-1).to_string(),
                p.current_txn_start_offset.to_string(),
                p.last_timestamp.to_string(),
                ((now - p.last_timestamp) / 60_000).to_string(),
            ]
        })
        .collect();
    kafka_table(&mut std::io::stdout().lock(), &HEADERS, &rows)?;
    Ok(())
}

/// Step 1 of the search (module docs).
fn partitions_to_search(connect: &ConnectArgs, scope: &Scope) -> anyhow::Result<Vec<Tp>> {
    if let (Some(t), Some(p)) = (&scope.topic, scope.partition) {
        return Ok(vec![(t.clone(), p)]);
    }
    let topics = scope.topic.as_ref().map(|t| vec![t.clone()]);
    let view = cluster_view(connect, topics.as_deref())?;
    if let Some((topic, code)) = view.topic_errors.iter().next() {
        bail!(
            "Failed to describe topic {topic}: {}",
            super::super::raw::error_text(*code, None)
        );
    }
    Ok(view
        .partitions
        .into_iter()
        .filter(|(_, p)| scope.broker_id.is_none_or(|b| p.replicas.contains(&b)))
        .map(|(tp, _)| tp)
        .collect())
}

/// Steps 3 and 4 of the search (module docs).
fn filter_hanging(connect: &ConnectArgs, candidates: Vec<Open>) -> anyhow::Result<Vec<Open>> {
    let pids: BTreeSet<i64> = candidates.iter().map(|(_, p)| p.producer_id.0).collect();
    let req = ListTransactionsRequest::default()
        .with_producer_id_filters(pids.iter().copied().map(ProducerId).collect());
    let listed = list_transactions(connect, &req, 0)
        .with_context(|| format!("Failed to list transactions for {} producers", pids.len()))?;
    let ids: BTreeMap<i64, String> = listed
        .into_iter()
        .filter(|(_, t)| pids.contains(&t.producer_id.0))
        .map(|(_, t)| (t.producer_id.0, t.transactional_id.to_string()))
        .collect();
    // Per transactional id: the partitions its coordinator counts in the
    // transaction, or `None` when the id no longer exists.
    let mut counted: BTreeMap<&str, Option<BTreeSet<Tp>>> = BTreeMap::new();
    for id in ids.values() {
        let state = describe_state(connect, id)
            .with_context(|| format!("Failed to describe {} transactions", ids.len()))?;
        let partitions = match state.error_code {
            0 => Some(
                state
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(move |p| (t.topic.0.to_string(), *p))
                    })
                    .collect(),
            ),
            TRANSACTIONAL_ID_NOT_FOUND => None,
            code => bail!(
                "Failed to describe {} transactions: {id}: {}",
                ids.len(),
                super::super::raw::error_text(code, None)
            ),
        };
        counted.insert(id, partitions);
    }
    Ok(candidates
        .into_iter()
        .filter(|(tp, p)| {
            match ids
                .get(&p.producer_id.0)
                .and_then(|id| counted.get(id.as_str()))
            {
                Some(Some(partitions)) => !partitions.contains(tp),
                // No id for the producer, or the id is gone: nothing will
                // ever end this transaction.
                Some(None) | None => true,
            }
        })
        .inspect(|(tp, p)| {
            tracing::debug!(partition = %show(tp), producer_id = p.producer_id.0, "hanging");
        })
        .collect())
}
