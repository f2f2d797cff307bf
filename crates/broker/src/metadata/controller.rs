//! `ControllerChannel`: the one way handlers change cluster metadata.
//!
//! Each operation goes to the controller side (today the local
//! [`MetadataStore`], which validates, persists and appends the records;
//! later the quorum controller, on this node or forwarded to the active
//! one) and returns only once the loader has *published* the committed
//! change, so a CreateTopics answer is followed by Metadata that shows the
//! topic and by produce requests that find its partitions online.
//!
//! Blocking: call it on the blocking pool (handlers use `spawn_blocking`).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_record::Offset;

use super::image_cache::ImageCache;
use super::names::validate_topic_name;
use super::publishers::PartitionsPublisher;
use super::{MetadataError, MetadataStore, TopicMetadata};
use crate::config::BrokerConfig;

/// Metadata changes, answered after they are committed and published.
pub struct ControllerChannel {
    config: Arc<BrokerConfig>,
    store: Arc<MetadataStore>,
    cache: Arc<ImageCache>,
    partitions: Arc<PartitionsPublisher>,
}

impl std::fmt::Debug for ControllerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerChannel")
            .field("store", &self.store)
            .finish()
    }
}

impl ControllerChannel {
    pub fn new(
        config: Arc<BrokerConfig>,
        store: Arc<MetadataStore>,
        cache: Arc<ImageCache>,
        partitions: Arc<PartitionsPublisher>,
    ) -> Self {
        ControllerChannel {
            config,
            store,
            cache,
            partitions,
        }
    }

    /// Waits until the change at `offset` is published.
    fn published(&self, offset: Offset) -> Result<(), MetadataError> {
        self.cache
            .wait_for_blocking(offset)
            .map(|_| ())
            .map_err(|e| MetadataError::LoaderStopped(e.to_string()))
    }

    /// The first partition of `topic` whose log could not be created.
    fn log_failure(&self, topic: &TopicMetadata) -> Option<MetadataError> {
        topic.topic_partitions().find_map(|tp| {
            self.partitions
                .failure(&tp)
                .map(|f| MetadataError::LogUnavailable {
                    partition: tp,
                    message: f.message,
                    no_space: f.no_space,
                })
        })
    }

    /// Checks a CreateTopics request without changing anything; returns
    /// the partition count that would be used.
    pub fn validate_create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<i32, MetadataError> {
        self.store
            .validate_create(&self.config, name, partitions, replication_factor, configs)
    }

    /// Creates a topic (`partitions` -1 = `num.partitions`). A topic whose
    /// logs cannot be created on a full disk is taken back rather than
    /// published half made; on other log errors it stays (the next start
    /// retries its logs) and the error is returned.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        let (topic, offset) =
            self.store
                .create_topic(&self.config, name, partitions, replication_factor, configs)?;
        self.published(offset)?;
        match self.log_failure(&topic) {
            None => Ok(topic),
            Some(e) if e.is_no_space() => {
                match self.store.delete_topic(&topic.name) {
                    Ok((_, offset)) => {
                        self.published(offset)?;
                        tracing::warn!(topic = %topic.name, error = %e, "disk full: topic not created");
                    }
                    Err(undo) => {
                        tracing::warn!(topic = %topic.name, error = %undo, "cannot take back a partly created topic");
                    }
                }
                Err(e)
            }
            Some(e) => Err(e),
        }
    }

    /// Creates `name` with the broker defaults if it does not exist yet
    /// (auto-creation); returns the existing topic otherwise.
    pub fn auto_create_topic(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        validate_topic_name(name)?;
        if let Some(t) = self.cache.topic(name) {
            return Ok(t);
        }
        match self.create_topic(name, -1, -1, BTreeMap::new()) {
            Err(MetadataError::TopicAlreadyExists(_)) => self
                .cache
                .topic(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.into())),
            other => other,
        }
    }

    /// Deletes a topic; its logs and committed offsets go when the change
    /// is published.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        if !self.config.delete_topic_enable {
            return Err(MetadataError::DeletionDisabled);
        }
        let (topic, offset) = self.store.delete_topic(name)?;
        self.published(offset)?;
        Ok(topic)
    }

    /// Checks a CreatePartitions request without changing anything.
    pub fn validate_create_partitions(
        &self,
        name: &str,
        new_total: i32,
    ) -> Result<TopicMetadata, MetadataError> {
        self.store.validate_create_partitions(name, new_total)
    }

    /// Grows a topic to `new_total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        new_total: i32,
    ) -> Result<TopicMetadata, MetadataError> {
        let (topic, offset) = self.store.create_partitions(name, new_total)?;
        self.published(offset)?;
        match self.log_failure(&topic) {
            Some(e) => Err(e),
            None => Ok(topic),
        }
    }

    /// Replaces a topic's config overrides.
    pub fn alter_topic_config(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMetadata, MetadataError> {
        self.update_topic_config(name, false, |_| Ok(configs))
    }

    /// Read-modify-write of a topic's overrides (see
    /// [`MetadataStore::update_topic_config`]).
    pub fn update_topic_config(
        &self,
        name: &str,
        validate_only: bool,
        f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
    ) -> Result<TopicMetadata, MetadataError> {
        let (topic, offset) =
            self.store
                .update_topic_config(&self.config, name, validate_only, f)?;
        self.published(offset)?;
        Ok(topic)
    }

    /// Read-modify-write of a group's overrides (see
    /// [`MetadataStore::update_group_config`]); the group coordinator gets
    /// them from the group-config publisher.
    pub fn update_group_config(
        &self,
        group_id: &str,
        validate_only: bool,
        f: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, MetadataError>,
        validate: impl FnOnce(&BTreeMap<String, String>) -> Result<(), MetadataError>,
    ) -> Result<BTreeMap<String, String>, MetadataError> {
        let (configs, offset) =
            self.store
                .update_group_config(group_id, validate_only, f, validate)?;
        self.published(offset)?;
        Ok(configs)
    }
}
