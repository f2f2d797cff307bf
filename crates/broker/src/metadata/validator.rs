//! [`BrokerConfigValidator`]: the config checks the controller asks the
//! broker for (the broker knows the config table): topic overrides as
//! `CreateTopics`/`AlterConfigs` accept them, KIP-848 group overrides
//! within the broker's `group.*` bounds, and one level of dynamic broker
//! configs as Kafka's `DynamicBrokerConfig` validates it.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_controller::{ConfigValidator, ControllerError};
use sluice_metadata::{ConfigResource, ConfigResourceType};

use crate::config::dynamic::{self, DynamicLevel};
use crate::config::{lookup, BrokerConfig, ConfigError, ConfigType, Scope};

/// Longest key or value a `ConfigRecord` holds (Kafka's string limit).
pub const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// Validates config overrides with the broker's config table.
pub struct BrokerConfigValidator {
    config: Arc<BrokerConfig>,
}

impl BrokerConfigValidator {
    pub fn new(config: Arc<BrokerConfig>) -> Self {
        BrokerConfigValidator { config }
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The level of dynamic broker configs a BROKER resource names.
pub fn broker_level(resource_name: &str) -> DynamicLevel {
    if resource_name.is_empty() {
        DynamicLevel::ClusterDefault
    } else {
        DynamicLevel::Broker
    }
}

impl ConfigValidator for BrokerConfigValidator {
    fn validate(
        &self,
        resource: &ConfigResource,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        // A ConfigRecord's strings are Kafka strings (at most 32767 bytes).
        if let Some((k, _)) = configs
            .iter()
            .find(|(k, v)| k.len() > MAX_STRING_BYTES || v.len() > MAX_STRING_BYTES)
        {
            let msg = format!(
                "The value of config {k} is longer than the {MAX_STRING_BYTES} bytes a config record holds"
            );
            return Err(match resource.resource_type {
                ConfigResourceType::Broker => ControllerError::InvalidRequest(msg),
                _ => ControllerError::InvalidConfig(msg),
            });
        }
        match resource.resource_type {
            ConfigResourceType::Topic => self
                .config
                .topic_log_config(configs)
                .map(|_| ())
                .map_err(|e| ControllerError::InvalidConfig(e.to_string())),
            ConfigResourceType::Group => {
                self.config
                    .validate_group_configs(configs)
                    .map_err(|e| match e {
                        ConfigError::InvalidValue { reason, .. } => {
                            ControllerError::InvalidConfig(reason)
                        }
                        other => ControllerError::InvalidConfig(other.to_string()),
                    })
            }
            ConfigResourceType::Broker => {
                dynamic::validate(configs, broker_level(&resource.name))
                    .map_err(ControllerError::InvalidRequest)?;
                let bytes: usize = configs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
                if bytes > dynamic::MAX_DYNAMIC_CONFIGS_BYTES {
                    return Err(ControllerError::InvalidRequest(format!(
                        "Dynamic broker configs would take {bytes} bytes, more than the {} Sluice stores",
                        dynamic::MAX_DYNAMIC_CONFIGS_BYTES
                    )));
                }
                Ok(())
            }
            other => Err(ControllerError::InvalidRequest(format!(
                "Unsupported resource type {other:?}"
            ))),
        }
    }

    fn list_default(&self, resource_type: ConfigResourceType, name: &str) -> Option<Vec<String>> {
        match resource_type {
            ConfigResourceType::Topic => {
                let def = lookup(Scope::Topic, name)?;
                if def.ty != ConfigType::List {
                    return None;
                }
                Some(
                    self.config
                        .describe_topic(&BTreeMap::new())
                        .into_iter()
                        .find(|e| e.name == name)
                        .and_then(|e| e.value)
                        .map(|v| split_list(&v))
                        .unwrap_or_default(),
                )
            }
            ConfigResourceType::Broker => {
                let def = dynamic::dynamic_key_def(name)?;
                if def.ty != ConfigType::List {
                    return None;
                }
                Some(
                    self.config
                        .explicit
                        .get(name)
                        .map(String::as_str)
                        .or(def.default)
                        .map(split_list)
                        .unwrap_or_default(),
                )
            }
            _ => None,
        }
    }
}
