//! The cluster overview and the partition placement every page starts from.

use kafka_protocol::messages::MetadataResponse;

use super::model::{Broker, BrokerDetail, ClusterOverview, PartitionInfo};
use super::topics::describe_configs;
use super::Session;
use crate::ConsoleError;

/// LEADER_NOT_AVAILABLE: a partition without a leader is offline.
const LEADER_NOT_AVAILABLE: i16 = 5;
/// DescribeConfigs' resource type of a broker.
const BROKER_RESOURCE: i8 = 4;

/// The cluster overview from one Metadata request.
pub fn overview(session: &mut Session) -> Result<ClusterOverview, ConsoleError> {
    let md = session.metadata(None)?;
    Ok(summarize(&md))
}

/// The overview's counts from a Metadata response (pure).
pub fn summarize(md: &MetadataResponse) -> ClusterOverview {
    let mut o = ClusterOverview {
        cluster_id: md.cluster_id.as_ref().map(|c| c.to_string()),
        controller_id: md.controller_id.0,
        brokers: brokers(md),
        load: Default::default(),
        topics: 0,
        internal_topics: 0,
        partitions: 0,
        under_replicated: 0,
        offline: 0,
    };
    for t in &md.topics {
        if t.error_code != 0 {
            continue;
        }
        if t.is_internal {
            o.internal_topics += 1;
        } else {
            o.topics += 1;
        }
        for p in partitions(t) {
            o.partitions += 1;
            o.under_replicated += usize::from(p.is_under_replicated());
            o.offline += usize::from(p.is_offline());
            o.load.entry(p.leader).or_default().leaders += 1;
            for r in &p.replicas {
                o.load.entry(*r).or_default().replicas += 1;
            }
        }
    }
    o
}

/// One broker: where it is, what it holds, and its configs (asked of the
/// broker itself, as Kafka answers a broker's non-default configs only there).
pub fn broker(session: &mut Session, id: i32) -> Result<BrokerDetail, ConsoleError> {
    let md = session.metadata(None)?;
    let o = summarize(&md);
    let broker = o
        .brokers
        .iter()
        .find(|b| b.id == id)
        .cloned()
        .ok_or_else(|| ConsoleError::NotFound(format!("no broker {id} in the cluster")))?;
    let configs = describe_configs(session, Some(id), BROKER_RESOURCE, &id.to_string())?;
    Ok(BrokerDetail {
        broker,
        controller: o.controller_id == id,
        load: o.load.get(&id).copied().unwrap_or_default(),
        configs,
    })
}

/// The brokers of a Metadata response, by id.
pub fn brokers(md: &MetadataResponse) -> Vec<Broker> {
    let mut b: Vec<Broker> = md
        .brokers
        .iter()
        .map(|b| Broker {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
        })
        .collect();
    b.sort_by_key(|b| b.id);
    b
}

/// A topic's partitions, by index.
pub fn partitions(
    t: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> Vec<PartitionInfo> {
    let mut ps: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: if p.error_code == LEADER_NOT_AVAILABLE {
                -1
            } else {
                p.leader_id.0
            },
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
            error: (p.error_code != 0).then(|| sluice_client::error_text(p.error_code, None)),
        })
        .collect();
    ps.sort_by_key(|p| p.partition);
    ps
}
