//! `sluice cluster info`: brokers (rack, fenced), the active controller,
//! cluster id and the metadata quorum (voters, leader, epoch, high
//! watermark, each replica's end offset and lag, observers) from
//! DescribeCluster and DescribeQuorum, as `kafka-metadata-quorum` shows them;
//! API versions and features. Works against any Kafka-compatible cluster.
//! `sluice cluster start`: a local cluster in one command ([`super::cluster_start`]).

use std::io::Write as _;

use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeQuorumRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::raw::{error_text, RawConnection};
use super::{print_table, ConnectArgs};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Brokers, controller, cluster id, the metadata quorum, supported API versions and features.
    Info {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Also list every API with its version range.
        #[arg(long, short = 'v')]
        versions: bool,
    },
    /// Run N nodes of this binary on loopback ports (combined roles, one formatted cluster) until Ctrl-C.
    Start(super::cluster_start::StartArgs),
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Info { connect, versions } => info(&connect, versions),
        ClusterCommand::Start(args) => super::cluster_start::run(args),
    }
}

/// One broker as DescribeCluster (or Metadata) lists it.
pub(crate) struct BrokerRow {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// `None` when the answer cannot say (DescribeCluster before v2, Metadata).
    pub fenced: Option<bool>,
}

/// The cluster as the broker describes it.
pub(crate) struct ClusterView {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerRow>,
}

/// DescribeCluster (v2 lists fenced brokers too), else Metadata.
pub(crate) fn describe_cluster(raw: &mut RawConnection) -> anyhow::Result<ClusterView> {
    if let Some(v) = raw.version_for::<DescribeClusterRequest>(0) {
        let req = DescribeClusterRequest::default().with_include_fenced_brokers(v >= 2);
        let resp = raw.send_at(v, &req)?;
        if resp.error_code != 0 {
            anyhow::bail!(
                "DescribeCluster failed: {}",
                error_text(resp.error_code, resp.error_message.as_ref())
            );
        }
        return Ok(ClusterView {
            cluster_id: Some(resp.cluster_id.to_string()),
            controller_id: resp.controller_id.0,
            brokers: resp
                .brokers
                .iter()
                .map(|b| BrokerRow {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: (v >= 2).then_some(b.is_fenced),
                })
                .collect(),
        });
    }
    let m = raw.send(&MetadataRequest::default().with_topics(Some(Vec::new())), 1)?;
    Ok(ClusterView {
        cluster_id: m.cluster_id.as_ref().map(|c| c.to_string()),
        controller_id: m.controller_id.0,
        brokers: m
            .brokers
            .iter()
            .map(|b| BrokerRow {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: None,
            })
            .collect(),
    })
}

/// The metadata quorum as DescribeQuorum reports it (`__cluster_metadata-0`).
struct QuorumView {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: Vec<ReplicaState>,
    observers: Vec<ReplicaState>,
}

fn describe_quorum(raw: &mut RawConnection) -> anyhow::Result<QuorumView> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = raw.send(&req, 0)?;
    if resp.error_code != 0 {
        anyhow::bail!(
            "DescribeQuorum failed: {}",
            error_text(resp.error_code, None)
        );
    }
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow::anyhow!("DescribeQuorum answered without a partition"))?;
    if p.error_code != 0 {
        anyhow::bail!(
            "DescribeQuorum failed: {}",
            error_text(p.error_code, p.error_message.as_ref())
        );
    }
    Ok(QuorumView {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters: p.current_voters.clone(),
        observers: p.observers.clone(),
    })
}

fn ago(now_ms: i64, ts: i64) -> String {
    if ts < 0 {
        "-".into()
    } else {
        format!("{} ms ago", (now_ms - ts).max(0))
    }
}

/// The quorum as `kafka-metadata-quorum describe --status/--replication`
/// shows it: lag is the leader's log end offset minus the replica's.
fn quorum_rows(q: &QuorumView, now_ms: i64) -> Vec<Vec<String>> {
    let leader_end = q
        .voters
        .iter()
        .find(|v| v.replica_id.0 == q.leader_id)
        .map(|v| v.log_end_offset);
    let mut rows = vec![vec![
        "NODE".to_string(),
        "STATUS".into(),
        "LOG-END-OFFSET".into(),
        "LAG".into(),
        "LAST-FETCH".into(),
        "LAST-CAUGHT-UP".into(),
    ]];
    let voters = q.voters.iter().map(|r| (r, true));
    let observers = q.observers.iter().map(|r| (r, false));
    for (r, voter) in voters.chain(observers) {
        let status = match (voter, r.replica_id.0 == q.leader_id) {
            (true, true) => "Leader",
            (true, false) => "Follower",
            _ => "Observer",
        };
        rows.push(vec![
            r.replica_id.0.to_string(),
            status.to_string(),
            r.log_end_offset.to_string(),
            leader_end.map_or("-".into(), |l| (l - r.log_end_offset).max(0).to_string()),
            ago(now_ms, r.last_fetch_timestamp),
            ago(now_ms, r.last_caught_up_timestamp),
        ]);
    }
    rows
}

fn info(connect: &ConnectArgs, versions: bool) -> anyhow::Result<()> {
    let mut raw = connect.raw()?;
    let cluster = describe_cluster(&mut raw)?;
    let quorum = describe_quorum(&mut raw);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "CLUSTER-ID  {}",
        cluster.cluster_id.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "CONTROLLER  {} (as DescribeCluster names it)",
        cluster.controller_id
    )?;
    if let Ok(q) = &quorum {
        writeln!(
            out,
            "ACTIVE-CONTROLLER  {} (metadata quorum leader)",
            q.leader_id
        )?;
    }
    writeln!(out)?;
    let mut rows = vec![vec![
        "BROKER".to_string(),
        "HOST".into(),
        "PORT".into(),
        "RACK".into(),
        "FENCED".into(),
    ]];
    let mut brokers = cluster.brokers;
    brokers.sort_by_key(|b| b.id);
    for b in brokers {
        rows.push(vec![
            b.id.to_string(),
            b.host,
            b.port.to_string(),
            b.rack.unwrap_or_else(|| "-".into()),
            b.fenced
                .map_or("-", |f| if f { "yes" } else { "no" })
                .to_string(),
        ]);
    }
    print_table(&mut out, &rows)?;
    writeln!(out)?;
    match &quorum {
        Ok(q) => {
            let voters: Vec<String> = q
                .voters
                .iter()
                .map(|v| v.replica_id.0.to_string())
                .collect();
            let observers: Vec<String> = q
                .observers
                .iter()
                .map(|v| v.replica_id.0.to_string())
                .collect();
            writeln!(
                out,
                "QUORUM      leader {}, epoch {}, high watermark {}, voters [{}], observers [{}]",
                q.leader_id,
                q.leader_epoch,
                q.high_watermark,
                voters.join(","),
                observers.join(",")
            )?;
            writeln!(out)?;
            print_table(&mut out, &quorum_rows(q, now_ms))?;
        }
        Err(e) => writeln!(out, "QUORUM      not available: {e:#}")?,
    }
    let av = &raw.api_versions;
    writeln!(out)?;
    writeln!(
        out,
        "APIS        {} supported (--versions lists them)",
        av.api_keys.len()
    )?;
    if !av.finalized_features.is_empty() || !av.supported_features.is_empty() {
        writeln!(out)?;
        let mut rows = vec![vec![
            "FEATURE".to_string(),
            "SUPPORTED".into(),
            "FINALIZED".into(),
        ]];
        for f in &av.supported_features {
            let fin = av
                .finalized_features
                .iter()
                .find(|x| x.name == f.name)
                .map_or("-".to_string(), |x| x.max_version_level.to_string());
            rows.push(vec![
                f.name.to_string(),
                format!("{}-{}", f.min_version, f.max_version),
                fin,
            ]);
        }
        print_table(&mut out, &rows)?;
    }
    if versions {
        writeln!(out)?;
        let mut rows = vec![vec!["API".to_string(), "KEY".into(), "VERSIONS".into()]];
        for k in &av.api_keys {
            let name =
                ApiKey::try_from(k.api_key).map_or_else(|_| "?".to_string(), |a| format!("{a:?}"));
            rows.push(vec![
                name,
                k.api_key.to_string(),
                format!("{}-{}", k.min_version, k.max_version),
            ]);
        }
        print_table(&mut out, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::BrokerId;

    use super::*;

    fn replica(id: i32, end: i64, fetched: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(end)
            .with_last_fetch_timestamp(fetched)
            .with_last_caught_up_timestamp(fetched)
    }

    #[test]
    fn quorum_rows_show_status_and_lag_behind_the_leaders_end_offset() {
        let q = QuorumView {
            leader_id: 2,
            leader_epoch: 7,
            high_watermark: 95,
            voters: vec![
                replica(1, 90, 1_000),
                replica(2, 100, 1_500),
                replica(3, 100, -1),
            ],
            observers: vec![replica(4, 40, 1_900)],
        };
        let rows = quorum_rows(&q, 2_000);
        let cells: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(cells[0][..4], ["NODE", "STATUS", "LOG-END-OFFSET", "LAG"]);
        assert_eq!(
            cells[1],
            ["1", "Follower", "90", "10", "1000 ms ago", "1000 ms ago"]
        );
        assert_eq!(
            cells[2],
            ["2", "Leader", "100", "0", "500 ms ago", "500 ms ago"]
        );
        assert_eq!(cells[3], ["3", "Follower", "100", "0", "-", "-"]);
        assert_eq!(
            cells[4],
            ["4", "Observer", "40", "60", "100 ms ago", "100 ms ago"]
        );
        // Without the leader among the voters (an election in progress) lag is unknown.
        let q = QuorumView { leader_id: -1, ..q };
        assert!(quorum_rows(&q, 2_000)[1..].iter().all(|r| r[3] == "-"));
    }
}
