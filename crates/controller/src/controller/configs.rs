//! IncrementalAlterConfigs and the legacy AlterConfigs on TOPIC, BROKER
//! (a node id, or "" for the cluster-wide default) and GROUP resources,
//! as `ConfigRecord`s (a `None` value deletes a key).
//!
//! Each resource's new overrides are computed in full, checked by the
//! broker's [`ConfigValidator`](super::ConfigValidator), and only the keys
//! that change are written. Resource checks are Kafka's
//! `ConfigResourceExistenceChecker`: a topic must exist, a broker name must
//! be "" or an integer naming a registered broker (or this controller).
//! A resource named twice in one request fails both times (INVALID_REQUEST).

use std::collections::{BTreeMap, BTreeSet};

use sluice_metadata::record::ConfigRecord;
use sluice_metadata::{BrokerId, ConfigResource, ConfigResourceType, MetadataRecord};

use super::{
    AlterConfigOp, ConfigAlteration, ConfigKeys, ConfigValidator, OpContext, QuorumController,
};
use crate::error::ControllerError;

type ItemResults = Vec<Result<(), ControllerError>>;

/// What to do to one resource.
enum Change<'a> {
    Incremental(&'a [ConfigAlteration]),
    /// The legacy AlterConfigs: these keys become the whole set.
    Replace(&'a [(String, Option<String>)]),
}

impl QuorumController {
    /// IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT). One result
    /// per resource, in order.
    pub async fn incremental_alter_configs(
        &self,
        resources: Vec<(ConfigResource, Vec<ConfigAlteration>)>,
        validate_only: bool,
    ) -> Result<ItemResults, ControllerError> {
        self.submit(move |ctx| {
            let items: Vec<_> = resources
                .iter()
                .map(|(r, ops)| (r, Change::Incremental(ops)))
                .collect();
            let (records, results) = plan_alter(ctx, &items);
            Ok((if validate_only { Vec::new() } else { records }, results))
        })
        .await
    }

    /// The legacy AlterConfigs: each resource's overrides are replaced by
    /// the given keys (keys not named are deleted). One result per
    /// resource, in order.
    pub async fn alter_configs(
        &self,
        resources: Vec<(ConfigResource, ConfigKeys)>,
        validate_only: bool,
    ) -> Result<ItemResults, ControllerError> {
        self.submit(move |ctx| {
            let items: Vec<_> = resources
                .iter()
                .map(|(r, keys)| (r, Change::Replace(keys)))
                .collect();
            let (records, results) = plan_alter(ctx, &items);
            Ok((if validate_only { Vec::new() } else { records }, results))
        })
        .await
    }
}

fn plan_alter(
    ctx: &OpContext<'_>,
    items: &[(&ConfigResource, Change<'_>)],
) -> (Vec<MetadataRecord>, ItemResults) {
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<&ConfigResource> = items
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| !seen.insert(*r))
        .collect();
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    for (resource, change) in items {
        if dups.contains(resource) {
            results.push(Err(ControllerError::InvalidRequest(format!(
                "Duplicate resource {:?} '{}' in the request",
                resource.resource_type, resource.name
            ))));
            continue;
        }
        let planned = check_resource(ctx, resource).and_then(|()| {
            let current = ctx.image.config(resource);
            let next = match change {
                Change::Incremental(ops) => incremental(ctx.validator, resource, current, ops)?,
                Change::Replace(keys) => replace(keys)?,
            };
            ctx.validator.validate(resource, &next)?;
            Ok(diff(resource, current, &next))
        });
        match planned {
            Ok(recs) => {
                records.extend(recs);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (records, results)
}

/// Kafka's `ConfigResourceExistenceChecker`.
fn check_resource(ctx: &OpContext<'_>, resource: &ConfigResource) -> Result<(), ControllerError> {
    match resource.resource_type {
        ConfigResourceType::Topic => {
            if ctx.image.topic(&resource.name).is_none() {
                return Err(ControllerError::UnknownTopicOrPartition(format!(
                    "The topic '{}' does not exist.",
                    resource.name
                )));
            }
            Ok(())
        }
        ConfigResourceType::Broker => {
            if resource.name.is_empty() {
                return Ok(());
            }
            let id: i32 = resource.name.parse().map_err(|_| {
                ControllerError::InvalidRequest(format!("Invalid broker name {}", resource.name))
            })?;
            let id = BrokerId(id);
            if ctx.image.broker(id).is_none() && id != ctx.node_id {
                return Err(ControllerError::BrokerIdNotRegistered(id));
            }
            Ok(())
        }
        ConfigResourceType::Group => {
            if resource.name.is_empty() {
                return Err(ControllerError::InvalidRequest(
                    "Group resource name must not be empty".into(),
                ));
            }
            Ok(())
        }
        other => Err(ControllerError::InvalidRequest(format!(
            "Unsupported resource type {other:?} for altering configs in the metadata log"
        ))),
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The overrides after IncrementalAlterConfigs' operations, in order.
fn incremental(
    validator: &dyn ConfigValidator,
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    ops: &[ConfigAlteration],
) -> Result<BTreeMap<String, String>, ControllerError> {
    let mut names = BTreeSet::new();
    if let Some(dup) = ops.iter().find(|o| !names.insert(o.name.as_str())) {
        return Err(ControllerError::InvalidRequest(format!(
            "Error due to duplicate config keys: {}",
            dup.name
        )));
    }
    let mut next = current.clone();
    for op in ops {
        match op.op {
            AlterConfigOp::Set => {
                let value = op.value.clone().ok_or_else(|| {
                    ControllerError::InvalidRequest(format!(
                        "Null value not supported for : {}",
                        op.name
                    ))
                })?;
                next.insert(op.name.clone(), value);
            }
            AlterConfigOp::Delete => {
                next.remove(&op.name);
            }
            AlterConfigOp::Append | AlterConfigOp::Subtract => {
                let default = validator
                    .list_default(resource.resource_type, &op.name)
                    .ok_or_else(|| {
                        ControllerError::InvalidConfig(format!(
                            "Config value append is not allowed for config key: {}",
                            op.name
                        ))
                    })?;
                let mut list = next.get(&op.name).map_or(default, |v| split_list(v));
                let given = split_list(op.value.as_deref().unwrap_or(""));
                if op.op == AlterConfigOp::Append {
                    for v in given {
                        if !list.contains(&v) {
                            list.push(v);
                        }
                    }
                } else {
                    list.retain(|v| !given.contains(v));
                }
                next.insert(op.name.clone(), list.join(","));
            }
        }
    }
    Ok(next)
}

/// The overrides the legacy AlterConfigs sets: exactly the given keys.
fn replace(keys: &[(String, Option<String>)]) -> Result<BTreeMap<String, String>, ControllerError> {
    let mut next = BTreeMap::new();
    for (k, v) in keys {
        let v = v.clone().ok_or_else(|| {
            ControllerError::InvalidRequest(format!("Null value not supported for : {k}"))
        })?;
        if next.insert(k.clone(), v).is_some() {
            return Err(ControllerError::InvalidRequest(format!(
                "Error due to duplicate config keys: {k}"
            )));
        }
    }
    Ok(next)
}

/// ConfigRecords turning `current` into `next`, by key.
fn diff(
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &String, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: resource.resource_type.id(),
            resource_name: resource.name.clone(),
            name: name.clone(),
            value: value.cloned(),
        })
    };
    let mut keys: BTreeSet<&String> = current.keys().collect();
    keys.extend(next.keys());
    keys.into_iter()
        .filter(|k| current.get(*k) != next.get(*k))
        .map(|k| record(k, next.get(k)))
        .collect()
}
