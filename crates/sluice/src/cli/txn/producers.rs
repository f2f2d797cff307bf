//! `sluice transactions describe-producers` and `abort` (Kafka's
//! `kafka-transactions` commands of the same names), and what
//! `find-hanging` shares with them: the cluster's brokers and partitions
//! from Metadata, DescribeProducers sent to each partition's leader (or to
//! one named broker), and Kafka's table layout. They speak only the Kafka
//! protocol, so they work against any Kafka-compatible cluster.
//!
//! Invariants: a partition's producers come from the broker asked for (its
//! leader unless a broker id is given), never from another replica; errors
//! a leader change or propagating metadata explains (NOT_LEADER_OR_FOLLOWER
//! when asking leaders, UNKNOWN_TOPIC_OR_PARTITION) are retried with fresh
//! metadata until the command's `--timeout`, as Kafka's admin client
//! retries them; any other error ends the command. An abort sends exactly
//! one ABORT marker (WriteTxnMarkers, as `Admin.abortTransaction` does) to
//! the partition's leader, for the producer and epochs given or found.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, MetadataRequest, ProducerId, TopicName, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};

use super::super::raw::{error_text, str_bytes};
use super::super::ConnectArgs;

/// A topic partition: (topic, partition).
pub(super) type Tp = (String, i32);

/// Partitions per DescribeProducers request (Kafka's tool batches by 500).
const MAX_BATCH: usize = 500;

/// Pause between two rounds of retries.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Kafka's `TopicPartition.toString`: `topic-partition`.
pub(super) fn show(tp: &Tp) -> String {
    format!("{}-{}", tp.0, tp.1)
}

/// Milliseconds since the epoch on this machine.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One partition in Metadata.
pub(super) struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
}

/// What Metadata says about the brokers and some topics.
pub(super) struct ClusterView {
    /// Broker id -> `host:port`.
    pub brokers: BTreeMap<i32, String>,
    pub partitions: BTreeMap<Tp, PartitionView>,
    /// Topics Metadata answered with an error, and the error.
    pub topic_errors: BTreeMap<String, i16>,
}

/// Metadata for `topics` (`None`: every topic, internal ones included).
pub(super) fn cluster_view(
    connect: &ConnectArgs,
    topics: Option<&[String]>,
) -> anyhow::Result<ClusterView> {
    let mut raw = connect.raw()?;
    let req = MetadataRequest::default().with_topics(topics.map(|ts| {
        ts.iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(str_bytes(t)))))
            .collect()
    }));
    let m = raw.send(&req, 1)?;
    let mut view = ClusterView {
        brokers: m
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect(),
        partitions: BTreeMap::new(),
        topic_errors: BTreeMap::new(),
    };
    for t in &m.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        if t.error_code != 0 {
            view.topic_errors.insert(name, t.error_code);
            continue;
        }
        for p in &t.partitions {
            view.partitions.insert(
                (name.clone(), p.partition_index),
                PartitionView {
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                },
            );
        }
    }
    Ok(view)
}

impl ClusterView {
    /// The address of `tp`'s leader, or why there is none (retriable).
    fn leader_addr(&self, tp: &Tp) -> Result<&str, String> {
        if let Some(code) = self.topic_errors.get(&tp.0) {
            return Err(error_text(*code, None));
        }
        let p = self
            .partitions
            .get(tp)
            .ok_or_else(|| error_text(ResponseError::UnknownTopicOrPartition.code(), None))?;
        self.brokers
            .get(&p.leader)
            .map(String::as_str)
            .ok_or_else(|| format!("no leader known for {}", show(tp)))
    }
}

/// Where DescribeProducers goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    /// Each partition's leader.
    Leader,
    /// One broker, whatever its role (Kafka's `--broker-id`).
    Broker(i32),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Leader => f.write_str("leader"),
            Target::Broker(b) => write!(f, "broker {b}"),
        }
    }
}

/// The producers of each of `partitions`, from `target`. See the module
/// docs for what is retried.
pub(super) fn describe_producers(
    connect: &ConnectArgs,
    partitions: &[Tp],
    target: Target,
) -> anyhow::Result<BTreeMap<Tp, Vec<ProducerState>>> {
    let deadline = Instant::now() + connect.timeout();
    let mut pending: BTreeSet<Tp> = partitions.iter().cloned().collect();
    let mut done = BTreeMap::new();
    loop {
        let why = describe_round(connect, &mut pending, &mut done, target)?;
        if pending.is_empty() {
            return Ok(done);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {} s: {why}", connect.timeout().as_secs());
        }
        std::thread::sleep(RETRY_BACKOFF);
    }
}

/// One round of [`describe_producers`]: asks for every pending partition
/// once; returns why some are still pending.
fn describe_round(
    connect: &ConnectArgs,
    pending: &mut BTreeSet<Tp>,
    done: &mut BTreeMap<Tp, Vec<ProducerState>>,
    target: Target,
) -> anyhow::Result<String> {
    let topics: BTreeSet<String> = pending.iter().map(|(t, _)| t.clone()).collect();
    let topics: Vec<String> = topics.into_iter().collect();
    let view = cluster_view(connect, Some(&topics))?;
    let mut why = String::new();
    let mut by_addr: BTreeMap<&str, Vec<Tp>> = BTreeMap::new();
    for tp in pending.iter() {
        let addr = match target {
            Target::Leader => view.leader_addr(tp),
            Target::Broker(b) => view
                .brokers
                .get(&b)
                .map(String::as_str)
                .ok_or_else(|| format!("broker {b} is not in the cluster's metadata")),
        };
        match addr {
            Ok(a) => by_addr.entry(a).or_default().push(tp.clone()),
            Err(e) => why = format!("{}: {e}", show(tp)),
        }
    }
    for (addr, tps) in by_addr {
        let mut conn = connect.raw_to(addr)?;
        for chunk in tps.chunks(MAX_BATCH) {
            let resp = conn.send(&describe_request(chunk), 0)?;
            for t in resp.topics {
                for p in t.partitions {
                    let tp = (t.name.0.to_string(), p.partition_index);
                    let retriable = p.error_code == ResponseError::UnknownTopicOrPartition.code()
                        || (p.error_code == ResponseError::NotLeaderOrFollower.code()
                            && matches!(target, Target::Leader));
                    if p.error_code == 0 {
                        done.insert(tp, p.active_producers);
                    } else if retriable {
                        why = format!("{}: {}", show(&tp), error_text(p.error_code, None));
                    } else {
                        bail!(
                            "{}: {}",
                            show(&tp),
                            error_text(p.error_code, p.error_message.as_ref())
                        );
                    }
                }
            }
        }
    }
    pending.retain(|tp| !done.contains_key(tp));
    Ok(why)
}

fn describe_request(partitions: &[Tp]) -> DescribeProducersRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    DescribeProducersRequest::default().with_topics(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                TopicRequest::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partition_indexes(ps)
            })
            .collect(),
    )
}

/// Kafka's `ToolsUtils.prettyPrintTable`: every cell padded to its
/// column's width and followed by a tab, the header row first.
pub(super) fn kafka_table(
    out: &mut impl std::io::Write,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            line.push('\t');
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Kafka's `describe-producers` columns.
const PRODUCER_HEADERS: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];

/// `sluice transactions describe-producers`.
pub(super) fn describe_producers_cmd(
    connect: &ConnectArgs,
    topic: &str,
    partition: i32,
    broker_id: Option<i32>,
) -> anyhow::Result<()> {
    let tp = (topic.to_string(), partition);
    let target = broker_id.map_or(Target::Leader, Target::Broker);
    let mut all =
        describe_producers(connect, std::slice::from_ref(&tp), target).with_context(|| {
            format!(
                "Failed to describe producers for partition {} on {target}",
                show(&tp)
            )
        })?;
    let producers = all.remove(&tp).unwrap_or_default();
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|p| {
            vec![
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.max(-1).to_string(),
                p.last_sequence.to_string(),
                p.last_timestamp.to_string(),
                if p.current_txn_start_offset < 0 {
                    "None".to_string()
                } else {
                    p.current_txn_start_offset.to_string()
                },
            ]
        })
        .collect();
    kafka_table(&mut std::io::stdout().lock(), &PRODUCER_HEADERS, &rows)?;
    Ok(())
}

/// The transaction to abort on one partition (Kafka's
/// `AbortTransactionSpec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AbortSpec {
    pub tp: Tp,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

impl std::fmt::Display for AbortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AbortTransactionSpec(topicPartition={}, producerId={}, producerEpoch={}, coordinatorEpoch={})",
            show(&self.tp),
            self.producer_id,
            self.producer_epoch,
            self.coordinator_epoch
        )
    }
}

/// How `abort` names the transaction.
#[derive(Clone, Copy, Debug)]
pub(super) struct AbortArgs {
    pub start_offset: Option<i64>,
    pub producer_id: Option<i64>,
    pub producer_epoch: Option<i16>,
    pub coordinator_epoch: Option<i32>,
}

/// `sluice transactions abort`: the spec from the arguments (or, with
/// `--start-offset`, from the leader's DescribeProducers), then its ABORT
/// marker. Prints nothing on success, as Kafka's tool.
pub(super) fn abort_cmd(
    connect: &ConnectArgs,
    topic: &str,
    partition: i32,
    args: AbortArgs,
) -> anyhow::Result<()> {
    let tp = (topic.to_string(), partition);
    let spec = match (args.start_offset, args.producer_id) {
        (None, None) => bail!(
            "The transaction to abort must be identified either with --start-offset \
             or with --producer-id, --producer-epoch, and --coordinator-epoch"
        ),
        (Some(offset), _) => spec_from_start_offset(connect, tp, offset)?,
        (None, Some(producer_id)) => AbortSpec {
            tp,
            producer_id,
            producer_epoch: args
                .producer_epoch
                .ok_or_else(|| anyhow!("Missing required argument --producer-epoch"))?,
            // A producer that never had a marker reports -1; 0 is at most
            // any coordinator epoch (Kafka's tool does the same).
            coordinator_epoch: args
                .coordinator_epoch
                .ok_or_else(|| anyhow!("Missing required argument --coordinator-epoch"))?
                .max(0),
        },
    };
    write_abort_marker(connect, &spec)
        .with_context(|| format!("Failed to abort transaction {spec}"))
}

/// The open transaction starting at `offset` on `tp`, per its leader.
fn spec_from_start_offset(connect: &ConnectArgs, tp: Tp, offset: i64) -> anyhow::Result<AbortSpec> {
    let mut all = describe_producers(connect, std::slice::from_ref(&tp), Target::Leader)
        .with_context(|| {
            format!(
                "Failed to validate producer state for partition {}",
                show(&tp)
            )
        })?;
    let found = all
        .remove(&tp)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.current_txn_start_offset >= 0 && p.current_txn_start_offset == offset)
        .ok_or_else(|| {
            anyhow!(
                "Could not find any open transactions starting at offset {offset} on partition {}",
                show(&tp)
            )
        })?;
    Ok(AbortSpec {
        tp,
        producer_id: found.producer_id.0,
        producer_epoch: i16::try_from(found.producer_epoch)
            .map_err(|_| anyhow!("producer epoch {} out of range", found.producer_epoch))?,
        coordinator_epoch: found.coordinator_epoch.max(0),
    })
}

/// Sends the ABORT marker of `spec` to the partition's leader, again after
/// a leader lookup while the answer is one Kafka's admin client retries.
fn write_abort_marker(connect: &ConnectArgs, spec: &AbortSpec) -> anyhow::Result<()> {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(spec.producer_id))
        .with_producer_epoch(spec.producer_epoch)
        .with_transaction_result(false)
        .with_coordinator_epoch(spec.coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(str_bytes(&spec.tp.0)))
            .with_partition_indexes(vec![spec.tp.1])])]);
    let deadline = Instant::now() + connect.timeout();
    loop {
        let view = cluster_view(connect, Some(std::slice::from_ref(&spec.tp.0)))?;
        let why = match view.leader_addr(&spec.tp) {
            Err(why) => why,
            Ok(addr) => {
                let resp = connect.raw_to(addr)?.send(&req, 1)?;
                match marker_code(&resp, spec)? {
                    0 => return Ok(()),
                    // Kafka's AbortTransactionHandler looks the leader up again.
                    code @ (3 | 6 | 8 | 9) => error_text(code, None),
                    code => bail!(error_text(code, None)),
                }
            }
        };
        if Instant::now() >= deadline {
            bail!("timed out after {} s: {why}", connect.timeout().as_secs());
        }
        std::thread::sleep(RETRY_BACKOFF);
    }
}

/// The one partition's code in a WriteTxnMarkers answer, which must name
/// exactly the marker, topic and partition sent.
fn marker_code(resp: &WriteTxnMarkersResponse, spec: &AbortSpec) -> anyhow::Result<i16> {
    let [m] = resp.markers.as_slice() else {
        bail!("the answer has {} markers, not 1", resp.markers.len());
    };
    let [t] = m.topics.as_slice() else {
        bail!("the answer has {} topics, not 1", m.topics.len());
    };
    let [p] = t.partitions.as_slice() else {
        bail!("the answer has {} partitions, not 1", t.partitions.len());
    };
    if m.producer_id.0 != spec.producer_id
        || t.name.0.as_str() != spec.tp.0
        || p.partition_index != spec.tp.1
    {
        bail!("the answer is for another producer or partition: {resp:?}");
    }
    Ok(p.error_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_laid_out_as_kafkas_tools_lay_them_out() {
        let mut out = Vec::new();
        kafka_table(
            &mut out,
            &["A", "Bee"],
            &[
                vec!["long".into(), "1".into()],
                vec!["x".into(), "None".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A   \tBee \t\nlong\t1   \t\nx   \tNone\t\n"
        );
    }

    #[test]
    fn specs_print_as_kafkas_abort_transaction_spec() {
        let spec = AbortSpec {
            tp: ("t".into(), 3),
            producer_id: 9,
            producer_epoch: 1,
            coordinator_epoch: 0,
        };
        assert_eq!(
            spec.to_string(),
            "AbortTransactionSpec(topicPartition=t-3, producerId=9, producerEpoch=1, coordinatorEpoch=0)"
        );
    }
}
