//! The console's destructive and altering writes, each planned before it
//! is made: a topic's configs (IncrementalAlterConfigs, validated by the
//! cluster first with `validate_only`) and partition count
//! (CreatePartitions), deleting a topic (DeleteTopics), a consumer group
//! (DeleteGroups) or a group's committed offsets on one topic
//! (OffsetDelete). The pages show a plan and make the change only when it
//! is confirmed.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, DeleteGroupsRequest, DeleteTopicsRequest,
    IncrementalAlterConfigsRequest, OffsetDeleteRequest,
};
use sluice_client::str_bytes;

use super::groups::{committed, coordinator};
use super::model::ConfigEntry;
use super::{kafka_error, Session};
use crate::ConsoleError;

const INCREMENTAL_ALTER_CONFIGS_VERSIONS: (i16, i16) = (0, 1);
const CREATE_PARTITIONS_VERSIONS: (i16, i16) = (0, 3);
/// DeleteTopics v1 (v0 is not advertised by Sluice) to v5 (v6 adds topic ids).
const DELETE_TOPICS_VERSIONS: (i16, i16) = (1, 5);
const DELETE_GROUPS_VERSIONS: (i16, i16) = (0, 2);
const OFFSET_DELETE_VERSIONS: (i16, i16) = (0, 0);
/// IncrementalAlterConfigs' resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// IncrementalAlterConfigs' operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// The config source of a value set on the topic itself.
const TOPIC_OVERRIDE: &str = "DYNAMIC_TOPIC_CONFIG";

/// One config change of a topic: `to` is `None` when the topic's own value
/// is removed (the broker's or the default value applies again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    /// The value in effect now, and whether the topic sets it itself.
    pub from: Option<String>,
    pub from_override: bool,
    pub to: Option<String>,
}

/// What a topic edit asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicEdit {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
    /// The new partition count, if it changes.
    pub partitions: Option<i32>,
}

/// The plan of a topic edit: the config changes (only those that change
/// something) and the partition count before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditPlan {
    pub changes: Vec<ConfigChange>,
    pub partitions: (usize, Option<i32>),
}

/// The changes `edit` makes to `current` (pure): a set to the value already
/// set on the topic and a removal of a value the topic does not set change
/// nothing and are left out.
pub fn plan_configs(current: &[ConfigEntry], edit: &TopicEdit) -> Vec<ConfigChange> {
    let now = |name: &str| current.iter().find(|c| c.name == name);
    let mut out = Vec::new();
    for (name, value) in &edit.set {
        let c = now(name);
        let from_override = c.is_some_and(|c| c.source == TOPIC_OVERRIDE);
        if from_override && c.and_then(|c| c.value.as_deref()) == Some(value.as_str()) {
            continue;
        }
        out.push(ConfigChange {
            name: name.clone(),
            from: c.and_then(|c| c.value.clone()),
            from_override,
            to: Some(value.clone()),
        });
    }
    for name in &edit.remove {
        let Some(c) = now(name).filter(|c| c.source == TOPIC_OVERRIDE) else {
            continue;
        };
        out.push(ConfigChange {
            name: name.clone(),
            from: c.value.clone(),
            from_override: true,
            to: None,
        });
    }
    out
}

/// Plans `edit` of `topic`: reads its configs and partitions and has the
/// cluster validate the changes without making them.
pub fn plan_topic_edit(
    session: &mut Session,
    topic: &str,
    edit: &TopicEdit,
) -> Result<EditPlan, ConsoleError> {
    let detail = super::topics::detail(session, topic)?;
    let changes = plan_configs(&detail.configs, edit);
    let count = detail.partitions.len();
    if let Some(n) = edit.partitions {
        if n as i64 <= count as i64 {
            return Err(ConsoleError::BadRequest(format!(
                "topic {topic:?} has {count} partitions; partitions can only be added (ask for more than {count})"
            )));
        }
    }
    if !changes.is_empty() {
        alter_configs(session, topic, &changes, true)?;
    }
    if let Some(n) = edit.partitions {
        add_partitions(session, topic, n, true)?;
    }
    Ok(EditPlan {
        changes,
        partitions: (count, edit.partitions),
    })
}

/// Makes a planned edit.
pub fn apply_topic_edit(
    session: &mut Session,
    topic: &str,
    plan: &EditPlan,
) -> Result<(), ConsoleError> {
    if !plan.changes.is_empty() {
        alter_configs(session, topic, &plan.changes, false)?;
    }
    if let Some(n) = plan.partitions.1 {
        add_partitions(session, topic, n, false)?;
    }
    Ok(())
}

fn alter_configs(
    session: &mut Session,
    topic: &str,
    changes: &[ConfigChange],
    validate_only: bool,
) -> Result<(), ConsoleError> {
    let configs = changes
        .iter()
        .map(|c| {
            AlterableConfig::default()
                .with_name(str_bytes(&c.name))
                .with_config_operation(if c.to.is_some() { OP_SET } else { OP_DELETE })
                .with_value(c.to.as_deref().map(str_bytes))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(str_bytes(topic))
            .with_configs(configs)]);
    let (_, resp) = session.send(&req, INCREMENTAL_ALTER_CONFIGS_VERSIONS)?;
    for r in resp.responses {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("altering the configs of topic {topic:?}"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

fn add_partitions(
    session: &mut Session,
    topic: &str,
    count: i32,
    validate_only: bool,
) -> Result<(), ConsoleError> {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(session.timeout_ms())
        .with_validate_only(validate_only)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(str_bytes(topic).into())
            .with_count(count)
            .with_assignments(None)]);
    let (_, resp) = session.send(&req, CREATE_PARTITIONS_VERSIONS)?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("adding partitions to topic {topic:?}"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

/// Deletes `topic`.
pub fn delete_topic(session: &mut Session, topic: &str) -> Result<(), ConsoleError> {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(session.timeout_ms())
        .with_topic_names(vec![str_bytes(topic).into()]);
    let (_, resp) = session.send(&req, DELETE_TOPICS_VERSIONS)?;
    for r in resp.responses {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("deleting topic {topic:?}"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

/// Deletes `group` (it must have no members), with its committed offsets.
pub fn delete_group(session: &mut Session, group: &str) -> Result<(), ConsoleError> {
    let c = coordinator(session, group)?;
    session.metadata(Some(&[]))?;
    let req = DeleteGroupsRequest::default().with_groups_names(vec![str_bytes(group).into()]);
    let (_, resp) = session.send_to(c, &req, DELETE_GROUPS_VERSIONS)?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("deleting group {group:?}"),
                r.error_code,
                None,
            ));
        }
    }
    Ok(())
}

/// The committed offsets of `group` on `topic`, by partition: what
/// [`delete_offsets`] would delete.
pub fn offsets_on(
    session: &mut Session,
    group: &str,
    topic: &str,
) -> Result<Vec<(i32, i64)>, ConsoleError> {
    let c = coordinator(session, group)?;
    session.metadata(Some(&[]))?;
    Ok(committed(session, c, group)?
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, p), o)| (p, o))
        .collect())
}

/// Deletes the committed offsets of `group` on `partitions` of `topic`
/// (Kafka refuses while the group's members consume the topic).
pub fn delete_offsets(
    session: &mut Session,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<(), ConsoleError> {
    let c = coordinator(session, group)?;
    session.metadata(Some(&[]))?;
    let req = OffsetDeleteRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(str_bytes(topic).into())
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| OffsetDeleteRequestPartition::default().with_partition_index(p))
                    .collect(),
            )]);
    let (_, resp) = session.send_to(c, &req, OFFSET_DELETE_VERSIONS)?;
    let what = || format!("deleting the offsets of group {group:?} on topic {topic:?}");
    if resp.error_code != 0 {
        return Err(kafka_error(what(), resp.error_code, None));
    }
    for p in resp.topics.iter().flat_map(|t| t.partitions.iter()) {
        if p.error_code != 0 {
            return Err(kafka_error(
                format!("{} (partition {})", what(), p.partition_index),
                p.error_code,
                None,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: &'static str) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source,
            read_only: false,
            sensitive: false,
        }
    }

    #[test]
    fn plans_only_what_changes() {
        let current = vec![
            entry("retention.ms", "86400000", TOPIC_OVERRIDE),
            entry("cleanup.policy", "delete", "DEFAULT_CONFIG"),
            entry("segment.bytes", "1024", TOPIC_OVERRIDE),
        ];
        let edit = TopicEdit {
            set: vec![
                ("retention.ms".into(), "3600000".into()),
                ("cleanup.policy".into(), "compact".into()),
                ("segment.bytes".into(), "1024".into()),
            ],
            remove: vec!["segment.bytes".into(), "min.insync.replicas".into()],
            partitions: None,
        };
        let plan = plan_configs(&current, &edit);
        let shown: Vec<_> = plan
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.from.as_deref(),
                    c.from_override,
                    c.to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("retention.ms", Some("86400000"), true, Some("3600000")),
                ("cleanup.policy", Some("delete"), false, Some("compact")),
                ("segment.bytes", Some("1024"), true, None),
            ]
        );
    }
}
