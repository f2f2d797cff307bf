//! Producer ids for InitProducerId, in blocks the controller hands out
//! (AllocateProducerIds, a `ProducerIdsRecord` committed in the metadata
//! log), as Kafka's `RPCProducerIdManager`: the broker serves ids from its
//! current block and asks for the next block when it is used up. An id is
//! never handed out twice, across restarts and crashes, because the
//! committed next id only goes up (ids of a partly used block are skipped).
//!
//! KIP-360 epoch bumps: the epoch last handed out per id is remembered in
//! memory (bounded); an instance presenting an older one is fenced.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sluice_metadata::{BrokerEpoch, BrokerId};
use sluice_record::ProducerId;
use sluice_storage::producer_id::{ProducerFenced, MAX_TRACKED_EPOCHS};

use super::client::ControllerClient;
use super::image_cache::ImageCache;
use super::MetadataError;

#[derive(Default)]
struct Block {
    next: i64,
    end: i64,
}

/// This broker's producer-id blocks and the epochs it handed out.
pub struct ProducerIds {
    node: BrokerId,
    /// The broker epoch of the current registration (the lifecycle sets it).
    broker_epoch: Arc<AtomicI64>,
    client: Arc<dyn ControllerClient>,
    cache: Arc<ImageCache>,
    block: tokio::sync::Mutex<Block>,
    epochs: parking_lot::Mutex<BTreeMap<i64, i16>>,
}

impl ProducerIds {
    pub fn new(
        node: BrokerId,
        broker_epoch: Arc<AtomicI64>,
        client: Arc<dyn ControllerClient>,
        cache: Arc<ImageCache>,
    ) -> Self {
        ProducerIds {
            node,
            broker_epoch,
            client,
            cache,
            block: tokio::sync::Mutex::new(Block::default()),
            epochs: parking_lot::Mutex::new(BTreeMap::new()),
        }
    }

    /// A producer id never handed out before, with epoch 0.
    pub async fn generate(&self) -> Result<ProducerId, MetadataError> {
        let mut b = self.block.lock().await;
        if b.next >= b.end {
            let epoch = BrokerEpoch(self.broker_epoch.load(Ordering::Acquire));
            let answer = self.client.allocate_producer_ids(self.node, epoch).await?;
            // Published before any id of it is handed out, so the image's
            // next producer id (`was_allocated`) covers the block.
            self.cache
                .wait_for(answer.offset)
                .await
                .map_err(|e| MetadataError::LoaderStopped(e.to_string()))?;
            let block = answer.value;
            b.next = block.first_producer_id.0;
            b.end = block.first_producer_id.0 + i64::from(block.size);
            tracing::debug!(first = b.next, end = b.end, "producer id block");
        }
        let id = b.next;
        b.next += 1;
        drop(b);
        self.remember(id, 0);
        Ok(ProducerId(id))
    }

    /// True if `id` was handed out by the cluster (it lies below the
    /// committed next producer id).
    pub fn was_allocated(&self, id: ProducerId) -> bool {
        id.0 >= 0 && id < self.cache.image().next_producer_id()
    }

    /// KIP-360 bump for a producer re-initialising with `epoch`: the next
    /// epoch, unless this broker handed out a newer one for the id (then
    /// the caller is a zombie). After a restart the presented epoch is
    /// trusted; partitions still refuse batches of older epochs.
    pub fn bump_epoch(&self, id: ProducerId, epoch: i16) -> Result<i16, ProducerFenced> {
        let current = self.epochs.lock().get(&id.0).copied();
        if let Some(current) = current {
            if epoch != current {
                return Err(ProducerFenced {
                    producer_id: id,
                    epoch,
                    current,
                });
            }
        }
        let next = epoch.saturating_add(1);
        self.remember(id.0, next);
        Ok(next)
    }

    fn remember(&self, id: i64, epoch: i16) {
        let mut epochs = self.epochs.lock();
        if epochs.len() >= MAX_TRACKED_EPOCHS && !epochs.contains_key(&id) {
            // Forget the oldest ids first (they are the smallest).
            if let Some(&oldest) = epochs.keys().min() {
                epochs.remove(&oldest);
            }
        }
        epochs.insert(id, epoch);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_storage::{Fs, SimFs};

    use super::*;
    use crate::config::BrokerConfig;
    use crate::metadata::testing::open_node;

    fn config() -> BrokerConfig {
        BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap()
    }

    #[test]
    fn ids_are_never_handed_out_twice_across_crashes_and_upgrades() {
        let fs = Arc::new(SimFs::new());
        // The single-node release had handed out ids below 5000.
        let dir = std::path::Path::new("/sim/data");
        fs.create_dir_all(dir).unwrap();
        let f = fs
            .open(
                &dir.join(sluice_storage::producer_id::PRODUCER_ID_BLOCK_FILE),
                &sluice_storage::OpenOptions::create_truncate(),
            )
            .unwrap();
        sluice_storage::fs::write_all_at(&*f, b"sluice-producer-id-block v1\n5000\n5000\n", 0)
            .unwrap();
        f.sync_data().unwrap();
        drop(f);
        fs.sync_dir(dir).unwrap();

        let mut seen = Vec::new();
        for seed in 0..3 {
            let node = open_node(config(), &fs).unwrap();
            let ids = node.controller.producer_ids();
            for _ in 0..3 {
                let id = node.block_on(ids.generate()).unwrap();
                assert!(id.0 >= 5000, "{id:?}");
                assert!(ids.was_allocated(id));
                assert!(!seen.contains(&id), "{id:?} twice (seed {seed})");
                seen.push(id);
            }
            assert!(ids.was_allocated(ProducerId(4999)), "the old release's");
            assert!(!ids.was_allocated(ProducerId(i64::MAX)));
            // KIP-360: the epoch handed out moves on; an older one is fenced.
            let id = *seen.last().unwrap();
            assert_eq!(ids.bump_epoch(id, 0), Ok(1));
            assert!(ids.bump_epoch(id, 0).is_err(), "a zombie");
            drop(node);
            fs.crash(seed);
        }
    }
}
