//! `sluice transactions list|describe` (Kafka's `kafka-transactions`
//! list and describe), against any Kafka-compatible cluster: ListTransactions
//! goes to every broker (each lists the ids it coordinates),
//! DescribeTransactions to the id's coordinator.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, FindCoordinatorRequest, ListTransactionsRequest, MetadataRequest,
    ProducerId,
};

use super::raw::{error_text, str_bytes};
use super::{print_table, ConnectArgs};

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
    }
}

fn list(
    connect: &ConnectArgs,
    states: Vec<String>,
    producer_ids: Vec<i64>,
    duration_ms: Option<i64>,
) -> anyhow::Result<()> {
    let mut raw = connect.raw()?;
    let m = raw.send(&MetadataRequest::default().with_topics(Some(Vec::new())), 1)?;
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
    for b in &m.brokers {
        let mut conn = connect.raw_to(&format!("{}:{}", b.host, b.port))?;
        let lowest = if duration_ms.is_some() { 1 } else { 0 };
        let r = conn.send(&req, lowest)?;
        if r.error_code != 0 {
            bail!("broker {}: {}", b.node_id.0, error_text(r.error_code, None));
        }
        for t in r.transaction_states {
            rows.push(vec![
                t.transactional_id.to_string(),
                b.node_id.0.to_string(),
                t.producer_id.0.to_string(),
                t.transaction_state.to_string(),
            ]);
        }
    }
    rows[1..].sort();
    print_table(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}

fn describe(connect: &ConnectArgs, id: &str) -> anyhow::Result<()> {
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
    if code != 0 {
        bail!(
            "finding the coordinator of {id}: {}",
            error_text(code, None)
        );
    }
    let mut conn = connect.raw_to(&format!("{host}:{port}"))?;
    let r = conn.send(
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![str_bytes(id).into()]),
        0,
    )?;
    let t = r
        .transaction_states
        .first()
        .ok_or_else(|| anyhow!("no answer for {id}"))?;
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
