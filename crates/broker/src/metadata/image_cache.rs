//! `ImageCache`: the broker's current view of cluster metadata, the
//! last [`MetadataImage`] the loader published. Handlers read it (a clone
//! is a few `Arc` increments and never blocks on a change); writers wait
//! on it until their committed change is published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use sluice_metadata::{
    BrokerId, ConfigResource, ConfigResourceType, MetadataImage, PartitionRegistration, TopicImage,
};
use sluice_record::Offset;
use tokio::sync::watch;
use uuid::Uuid;

use super::TopicMetadata;

/// The loader stopped (a record it could not apply, or the log failed):
/// no later change will be published.
#[derive(Clone, Debug, thiserror::Error)]
#[error("metadata loader stopped: {0}")]
pub struct LoaderStopped(pub String);

struct State {
    image: MetadataImage,
    stopped: Option<String>,
}

/// The published image and the offset up to which every publisher has
/// applied the log.
pub struct ImageCache {
    node: BrokerId,
    /// Read by every request (a read lock and a few `Arc` clones).
    state: RwLock<State>,
    /// Blocking waiters sleep on `changed` under `waiters`; `publish`
    /// notifies under it after the state changed, so no wake-up is lost.
    waiters: Mutex<()>,
    changed: Condvar,
    /// The published image's last offset, for async waiters.
    published: watch::Sender<Offset>,
    /// Whether the published image holds any client quota (the one check
    /// the produce and fetch paths make when none is configured).
    has_client_quotas: AtomicBool,
}

impl std::fmt::Debug for ImageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageCache")
            .field("node", &self.node)
            .field("provenance", &self.state.read().image.provenance())
            .finish()
    }
}

impl ImageCache {
    /// An empty cache for broker `node` (nothing published yet).
    pub fn new(node: BrokerId) -> Arc<Self> {
        let (published, _) = watch::channel(Offset(-1));
        Arc::new(ImageCache {
            node,
            state: RwLock::new(State {
                image: MetadataImage::empty(),
                stopped: None,
            }),
            waiters: Mutex::new(()),
            changed: Condvar::new(),
            published,
            has_client_quotas: AtomicBool::new(false),
        })
    }

    /// This broker's id (the one `local_changes` and leadership are about).
    pub fn node(&self) -> BrokerId {
        self.node
    }

    /// Whether the current image holds any client quota.
    pub fn has_client_quotas(&self) -> bool {
        self.has_client_quotas.load(Ordering::Acquire)
    }

    /// The current image.
    pub fn image(&self) -> MetadataImage {
        self.state.read().image.clone()
    }

    /// Makes `image` current. Called by the loader after every other
    /// publisher has applied it.
    pub(crate) fn publish(&self, image: MetadataImage) {
        let offset = image.provenance().last_offset;
        self.has_client_quotas
            .store(!image.client_quotas().is_empty(), Ordering::Release);
        self.state.write().image = image;
        self.wake();
        self.published.send_replace(offset);
    }

    /// Marks the loader stopped: every waiter (now and later) gets an error.
    pub(crate) fn stop(&self, reason: String) {
        self.state.write().stopped = Some(reason);
        self.wake();
        self.published.send_modify(|_| {});
    }

    fn wake(&self) {
        let _waiters = self.waiters.lock();
        self.changed.notify_all();
    }

    /// The image if it includes `offset`, the loader's stop reason if it
    /// stopped, or `None` to keep waiting.
    fn ready(&self, offset: Offset) -> Option<Result<MetadataImage, LoaderStopped>> {
        let state = self.state.read();
        if state.image.provenance().last_offset >= offset {
            return Some(Ok(state.image.clone()));
        }
        state
            .stopped
            .as_ref()
            .map(|r| Err(LoaderStopped(r.clone())))
    }

    /// Blocks until the image includes `offset` (call on the blocking pool).
    pub fn wait_for_blocking(&self, offset: Offset) -> Result<MetadataImage, LoaderStopped> {
        let mut waiters = self.waiters.lock();
        loop {
            if let Some(done) = self.ready(offset) {
                return done;
            }
            self.changed.wait(&mut waiters);
        }
    }

    /// Waits until the image includes `offset`.
    pub async fn wait_for(&self, offset: Offset) -> Result<MetadataImage, LoaderStopped> {
        let mut rx = self.published.subscribe();
        loop {
            if let Some(done) = self.ready(offset) {
                return done;
            }
            if rx.changed().await.is_err() {
                return Err(LoaderStopped("image cache dropped".into()));
            }
        }
    }

    // ---- views of the current image that handlers use ----

    /// One topic by name, as a [`TopicMetadata`] view.
    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        let image = self.image();
        image.topic(name).map(|t| topic_view(&image, t))
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMetadata> {
        let image = self.image();
        image.topic_by_id(id).map(|t| topic_view(&image, t))
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicMetadata> {
        let image = self.image();
        image
            .topic_names()
            .values()
            .filter_map(|id| image.topic_by_id(*id))
            .map(|t| topic_view(&image, t))
            .collect()
    }

    /// A group's config overrides (empty when it has none).
    pub fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.image().config(&group_resource(group_id)).clone()
    }

    /// Every group with config overrides.
    pub fn all_group_configs(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.image()
            .configs()
            .iter()
            .filter(|(r, _)| r.resource_type == ConfigResourceType::Group)
            .map(|(r, keys)| (r.name.clone(), (**keys).clone()))
            .collect()
    }

    /// A partition's registration, if the topic and partition exist.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionRegistration> {
        self.image()
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
    }
}

/// The config resource of a topic.
pub fn topic_resource(name: &str) -> ConfigResource {
    ConfigResource {
        resource_type: ConfigResourceType::Topic,
        name: name.to_string(),
    }
}

/// The config resource of a KIP-848 group.
pub fn group_resource(group_id: &str) -> ConfigResource {
    ConfigResource {
        resource_type: ConfigResourceType::Group,
        name: group_id.to_string(),
    }
}

/// A topic of `image` as the handlers' [`TopicMetadata`] (name, id,
/// partition count, overrides).
pub fn topic_view(image: &MetadataImage, t: &TopicImage) -> TopicMetadata {
    TopicMetadata {
        name: t.name().to_string(),
        topic_id: t.id(),
        partitions: t.partitions().len() as i32,
        configs: image.config(&topic_resource(t.name())).clone(),
    }
}
