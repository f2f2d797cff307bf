//! `sluice transactions` (Kafka's `kafka-transactions`), against any
//! Kafka-compatible cluster:
//! - `list` and `describe`: ListTransactions goes to every broker (each
//!   lists the ids it coordinates), DescribeTransactions to the id's
//!   coordinator;
//! - `describe-producers` and `abort` ([`producers`]): a partition's
//!   producers (DescribeProducers), and the ABORT marker of a hanging
//!   transaction written at the partition's leader (WriteTxnMarkers, as
//!   `Admin.abortTransaction` sends it);
//! - `find-hanging` ([`hanging`]): Kafka's search for open transactions no
//!   coordinator will end.
//!
//! The new commands print Kafka's tables (its headers, tab-separated
//! padded cells), so scripts written for `kafka-transactions` read them.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::list_transactions_response::TransactionState as Listing;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, FindCoordinatorRequest, ListTransactionsRequest, MetadataRequest,
    ProducerId,
};

use super::raw::{error_text, str_bytes};
use super::{print_table, ConnectArgs};

mod hanging;
mod producers;

/// TRANSACTIONAL_ID_NOT_FOUND: DescribeTransactions of an id without state.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

#[derive(Args, Debug)]
pub struct TxnArgs {
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(Subcommand, Debug)]
enum TxnCommand {
    /// List transactional ids with their producer id and state, from every broker.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Only ids in these states (Empty, Ongoing, PrepareCommit, ...; repeatable).
        #[arg(long = "state")]
        states: Vec<String>,
        /// Only ids of these producer ids (repeatable).
        #[arg(long = "producer-id")]
        producer_ids: Vec<i64>,
        /// Only transactions running longer than this many milliseconds.
        #[arg(long)]
        duration_ms: Option<i64>,
    },
    /// Show one transactional id's state, producer, timeout and partitions.
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
        transactional_id: String,
    },
    /// Describe the states of active producers for a topic partition.
    DescribeProducers {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partition number.
        #[arg(long)]
        partition: i32,
        /// Ask this broker's replica instead of the partition's leader.
        #[arg(long)]
        broker_id: Option<i32>,
    },
    /// Find hanging transactions: open on a partition, older than the
    /// maximum transaction timeout, and not ended by any coordinator.
    FindHanging {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Search the partitions with a replica on this broker, asking it.
        #[arg(long)]
        broker_id: Option<i32>,
        /// Maximum transaction timeout in minutes: only transactions older
        /// than this are candidates.
        #[arg(long, value_name = "MINUTES", default_value_t = 15)]
        max_transaction_timeout: i32,
        /// Limit the search to this topic (required with --partition).
        #[arg(long)]
        topic: Option<String>,
        /// Limit the search to this partition of --topic.
        #[arg(long)]
        partition: Option<i32>,
    },
    /// Abort a hanging transaction: write its ABORT marker at the
    /// partition's leader (needs administrative rights on a secured cluster).
    Abort {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partition number.
        #[arg(long)]
        partition: i32,
        /// Start offset of the transaction to abort (its producer and
        /// epochs are looked up with DescribeProducers).
        #[arg(long)]
        start_offset: Option<i64>,
        /// Producer id (with --producer-epoch and --coordinator-epoch,
        /// instead of --start-offset).
        #[arg(long)]
        producer_id: Option<i64>,
        /// Producer epoch.
        #[arg(long)]
        producer_epoch: Option<i16>,
        /// Coordinator epoch (a negative one is sent as 0).
        #[arg(long, allow_negative_numbers = true)]
        coordinator_epoch: Option<i32>,
    },
}

pub fn run(args: TxnArgs) -> anyhow::Result<()> {
    match args.command {
        TxnCommand::List {
            connect,
            states,
            producer_ids,
            duration_ms,
        } => list(&connect, states, producer_ids, duration_ms),
        TxnCommand::Describe {
            connect,
            transactional_id,
        } => describe(&connect, &transactional_id),
        TxnCommand::DescribeProducers {
            connect,
            topic,
            partition,
            broker_id,
        } => producers::describe_producers_cmd(&connect, &topic, partition, broker_id),
        TxnCommand::FindHanging {
            connect,
            broker_id,
            max_transaction_timeout,
            topic,
            partition,
        } => hanging::find_hanging(
            &connect,
            &hanging::Scope {
                broker_id,
                topic,
                partition,
                max_transaction_timeout,
            },
        ),
        TxnCommand::Abort {
            connect,
            topic,
            partition,
            start_offset,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => producers::abort_cmd(
            &connect,
            &topic,
            partition,
            producers::AbortArgs {
                start_offset,
                producer_id,
                producer_epoch,
                coordinator_epoch,
            },
        ),
    }
}

fn list(
    connect: &ConnectArgs,
    states: Vec<String>,
    producer_ids: Vec<i64>,
    duration_ms: Option<i64>,
) -> anyhow::Result<()> {
    let mut rows = vec![vec![
        "TRANSACTIONAL ID".to_string(),
        "COORDINATOR".to_string(),
        "PRODUCER ID".to_string(),
        "STATE".to_string(),
    ]];
    let req = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|s| str_bytes(s)).collect())
        .with_producer_id_filters(producer_ids.into_iter().map(ProducerId).collect())
        .with_duration_filter(duration_ms.unwrap_or(-1));
    let lowest = if duration_ms.is_some() { 1 } else { 0 };
    for (broker, t) in list_transactions(connect, &req, lowest)? {
        rows.push(vec![
            t.transactional_id.to_string(),
            broker.to_string(),
            t.producer_id.0.to_string(),
            t.transaction_state.to_string(),
        ]);
    }
    rows[1..].sort();
    print_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}

/// ListTransactions `req` (at version `lowest` or newer) at every broker:
/// each listing with the broker (its coordinator) that answered it.
fn list_transactions(
    connect: &ConnectArgs,
    req: &ListTransactionsRequest,
    lowest: i16,
) -> anyhow::Result<Vec<(i32, Listing)>> {
    let mut raw = connect.raw()?;
    let m = raw.send(&MetadataRequest::default().with_topics(Some(Vec::new())), 1)?;
    let mut out = Vec::new();
    for b in &m.brokers {
        let mut conn = connect.raw_to(&format!("{}:{}", b.host, b.port))?;
        let r = conn.send(req, lowest)?;
        if r.error_code != 0 {
            bail!("broker {}: {}", b.node_id.0, error_text(r.error_code, None));
        }
        out.extend(r.transaction_states.into_iter().map(|t| (b.node_id.0, t)));
    }
    Ok(out)
}

fn describe(connect: &ConnectArgs, id: &str) -> anyhow::Result<()> {
    let t = describe_state(connect, id)?;
    if t.error_code != 0 {
        bail!("{id}: {}", error_text(t.error_code, None));
    }
    let partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.as_str()))
        })
        .collect();
    let rows = vec![
        vec![
            "TRANSACTIONAL ID".into(),
            "PRODUCER ID".into(),
            "EPOCH".into(),
            "STATE".into(),
            "TIMEOUT MS".into(),
            "START MS".into(),
            "PARTITIONS".into(),
        ],
        vec![
            id.to_string(),
            t.producer_id.0.to_string(),
            t.producer_epoch.to_string(),
            t.transaction_state.to_string(),
            t.transaction_timeout_ms.to_string(),
            t.transaction_start_time_ms.to_string(),
            partitions.join(","),
        ],
    ];
    print_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}

/// DescribeTransactions of `id` at its coordinator: the answer's state
/// (its error code is the caller's to judge). A coordinator that is
/// loading, moving or not yet available is asked again until the
/// command's timeout.
fn describe_state(connect: &ConnectArgs, id: &str) -> anyhow::Result<TransactionState> {
    // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
    const RETRIABLE: [i16; 3] = [14, 15, 16];
    let deadline = Instant::now() + connect.timeout();
    loop {
        let code = match coordinator_of(connect, id)? {
            Err(code) => code,
            Ok(addr) => {
                let mut conn = connect.raw_to(&addr)?;
                let r = conn.send(
                    &DescribeTransactionsRequest::default()
                        .with_transactional_ids(vec![str_bytes(id).into()]),
                    0,
                )?;
                let t = r
                    .transaction_states
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("no answer for {id}"))?;
                if !RETRIABLE.contains(&t.error_code) {
                    return Ok(t);
                }
                t.error_code
            }
        };
        if !RETRIABLE.contains(&code) || Instant::now() >= deadline {
            bail!("transactional id {id}: {}", error_text(code, None));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The address of `id`'s transaction coordinator, or FindCoordinator's
/// error code.
fn coordinator_of(connect: &ConnectArgs, id: &str) -> anyhow::Result<Result<String, i16>> {
    let mut raw = connect.raw()?;
    let version = raw
        .version_for::<FindCoordinatorRequest>(1)
        .ok_or_else(|| anyhow!("the broker does not speak FindCoordinator v1+"))?;
    let req = FindCoordinatorRequest::default().with_key_type(1);
    let req = if version >= 4 {
        req.with_coordinator_keys(vec![str_bytes(id)])
    } else {
        req.with_key(str_bytes(id))
    };
    let f = raw.send_at(version, &req)?;
    let (code, host, port) = match f.coordinators.first() {
        Some(c) => (c.error_code, c.host.to_string(), c.port),
        None => (f.error_code, f.host.to_string(), f.port),
    };
    Ok(if code == 0 {
        Ok(format!("{host}:{port}"))
    } else {
        Err(code)
    })
}
