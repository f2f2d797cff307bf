//! The topics list and one topic's partitions, offsets and configs.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeLogDirsRequest};
use sluice_client::str_bytes;

use super::cluster::partitions;
use super::model::{ConfigEntry, TopicDetail, TopicSummary};
use super::offsets::{self, Led};
use super::{kafka_error, Session};
use crate::ConsoleError;

/// UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC: i16 = 3;
/// DescribeConfigs' resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs v1 (config sources) and later.
const DESCRIBE_CONFIGS_VERSIONS: (i16, i16) = (1, 4);
const DESCRIBE_LOG_DIRS_VERSIONS: (i16, i16) = (1, 4);

/// Every topic whose name contains `search` (case-insensitive), by name,
/// with message counts (one ListOffsets pair per leader).
pub fn list(session: &mut Session, search: &str) -> Result<Vec<TopicSummary>, ConsoleError> {
    let md = session.metadata(None)?;
    let needle = search.trim().to_lowercase();
    let mut topics = Vec::new();
    let mut led: Vec<Led> = Vec::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
            continue;
        };
        if t.error_code == UNKNOWN_TOPIC || !name.to_lowercase().contains(&needle) {
            continue;
        }
        let ps = partitions(t);
        led.extend(ps.iter().map(|p| ((name.clone(), p.partition), p.leader)));
        topics.push(TopicSummary {
            internal: t.is_internal,
            partitions: ps.len(),
            replication_factor: ps.first().map_or(0, |p| p.replicas.len()),
            under_replicated: ps.iter().filter(|p| p.is_under_replicated()).count(),
            offline: ps.iter().filter(|p| p.is_offline()).count(),
            messages: None,
            error: (t.error_code != 0).then(|| sluice_client::error_text(t.error_code, None)),
            name,
        });
    }
    let ranges = offsets::ranges(session, &led)?;
    for t in &mut topics {
        let mut sum = 0i64;
        for ((topic, _), r) in ranges.range((t.name.clone(), i32::MIN)..=(t.name.clone(), i32::MAX))
        {
            debug_assert_eq!(topic, &t.name);
            sum = sum.saturating_add(r.messages());
        }
        t.messages = Some(sum);
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// One topic's partitions with their offsets, and its configs.
pub fn detail(session: &mut Session, name: &str) -> Result<TopicDetail, ConsoleError> {
    let md = session.metadata(Some(&[name]))?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name))
        .ok_or_else(|| ConsoleError::NotFound(format!("unknown topic {name:?}")))?;
    if t.error_code == UNKNOWN_TOPIC {
        return Err(ConsoleError::NotFound(format!("unknown topic {name:?}")));
    }
    if t.error_code != 0 {
        return Err(kafka_error(format!("topic {name:?}"), t.error_code, None));
    }
    let ps = partitions(t);
    let led: Vec<Led> = ps
        .iter()
        .map(|p| ((name.to_string(), p.partition), p.leader))
        .collect();
    let ranges = offsets::ranges(session, &led)?;
    let leaders: Vec<(i32, i32)> = ps.iter().map(|p| (p.partition, p.leader)).collect();
    // Sizes are best effort: a cluster may refuse DescribeLogDirs (ACLs).
    let sizes = sizes(session, name, &leaders).unwrap_or_default();
    let (configs, configs_error) = match configs(session, name) {
        Ok(c) => (c, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Ok(TopicDetail {
        name: name.to_string(),
        internal: t.is_internal,
        topic_id: t.topic_id.to_string(),
        partitions: ps
            .into_iter()
            .map(|p| {
                let r = ranges.get(&(name.to_string(), p.partition)).copied();
                (p, r)
            })
            .collect(),
        sizes,
        configs,
        configs_error,
    })
}

/// Bytes on disk of each partition's leader replica: one DescribeLogDirs
/// for this topic on each leader.
pub fn sizes(
    session: &mut Session,
    name: &str,
    leaders: &[(i32, i32)],
) -> Result<BTreeMap<i32, i64>, ConsoleError> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &(p, leader) in leaders.iter().filter(|(_, l)| *l >= 0) {
        by_leader.entry(leader).or_default().push(p);
    }
    let mut out = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(str_bytes(name).into())
                .with_partitions(partitions.clone()),
        ]));
        let (_, resp) = session.send_to(leader, &req, DESCRIBE_LOG_DIRS_VERSIONS)?;
        for dir in resp.results.iter().filter(|d| d.error_code == 0) {
            for p in dir.topics.iter().flat_map(|t| t.partitions.iter()) {
                if partitions.contains(&p.partition_index) && !p.is_future_key {
                    *out.entry(p.partition_index).or_insert(0) += p.partition_size.max(0);
                }
            }
        }
    }
    Ok(out)
}

/// A topic's configs, by name.
pub fn configs(session: &mut Session, name: &str) -> Result<Vec<ConfigEntry>, ConsoleError> {
    describe_configs(session, None, TOPIC_RESOURCE, name)
}

/// The configs of a resource (`resource_type` as DescribeConfigs numbers
/// them), asked of node `node` or of the bootstrap broker.
pub fn describe_configs(
    session: &mut Session,
    node: Option<i32>,
    resource_type: i8,
    name: &str,
) -> Result<Vec<ConfigEntry>, ConsoleError> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None)]);
    let (_, resp) = match node {
        Some(id) => session.send_to(id, &req, DESCRIBE_CONFIGS_VERSIONS)?,
        None => session.send(&req, DESCRIBE_CONFIGS_VERSIONS)?,
    };
    let mut out = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("configs of {name:?}"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        for c in r.configs {
            out.push(ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Kafka's `ConfigSource` ids as the names its tools print.
pub fn source_name(id: i8) -> &'static str {
    match id {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}
