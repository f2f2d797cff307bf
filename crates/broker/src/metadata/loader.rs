//! The metadata loader: reads the metadata log through the controller
//! crate's seam ([`LogListener`]), replays each committed batch into a
//! [`MetadataDelta`] on the current image, and hands the result (what
//! changed, and the new image) to the publishers in a fixed order.
//!
//! Publishers run one change at a time, in log order, on the blocking pool
//! (they create and delete logs). The [`ImageCache`] is published last, so
//! a handler never sees a topic whose logs are not open yet, and a writer
//! waiting on the cache for its committed offset is answered only after
//! every publisher applied it (Kafka's `MetadataLoader` and its
//! `MetadataPublisher`s).

use std::sync::Arc;

use sluice_controller::{LogError, LogEvent, LogListener};
use sluice_metadata::{MetadataChanges, MetadataDelta, MetadataImage};
use sluice_record::Offset;

use super::image_cache::ImageCache;

/// A broker-side consumer of metadata changes.
pub trait MetadataPublisher: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;
    /// Applies one change. `changes.image` is the new image and
    /// `changes.previous` the one before it. Must not fail the loader:
    /// a publisher reports its own failures (a partition whose log
    /// cannot be created stays offline, with a WARN).
    fn publish(&self, changes: &MetadataChanges);
}

/// Why the loader stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("metadata log: {0}")]
    Log(#[from] LogError),
    #[error("committed metadata record does not apply: {0}")]
    Replay(#[from] sluice_metadata::MetadataError),
}

/// Turns the committed log into published images.
pub struct MetadataLoader {
    image: MetadataImage,
    publishers: Vec<Arc<dyn MetadataPublisher>>,
    cache: Arc<ImageCache>,
    /// Nothing is published before the image reaches this offset (the
    /// log end at start): the first publish is the whole state at once,
    /// as Kafka's loader waits to catch up. Publishing an early prefix
    /// would let the partitions publisher delete as strays the logs of
    /// topics created later in the log.
    catch_up_to: Offset,
    published_once: bool,
}

impl MetadataLoader {
    /// A loader that starts from the empty image and calls `publishers` in
    /// order, then publishes the image to `cache`.
    pub fn new(publishers: Vec<Arc<dyn MetadataPublisher>>, cache: Arc<ImageCache>) -> Self {
        MetadataLoader {
            image: MetadataImage::empty(),
            publishers,
            cache,
            catch_up_to: Offset(-1),
            published_once: false,
        }
    }

    /// Publishes nothing until the image includes `offset` (the last
    /// committed offset when the node starts).
    pub fn catch_up_to(mut self, offset: Offset) -> Self {
        self.catch_up_to = offset;
        self
    }

    /// Applies one event of the log.
    pub fn handle(&mut self, event: LogEvent) -> Result<(), LoaderError> {
        let changes = match event {
            LogEvent::LeaderChange(le) => {
                tracing::debug!(leader = ?le.leader, epoch = le.epoch.0, "metadata log leader");
                return Ok(());
            }
            LogEvent::Batch(batch) => {
                let mut delta = MetadataDelta::new(self.image.clone());
                let mut offset = batch.base_offset;
                for record in &batch.records {
                    delta.replay(offset, batch.epoch, record)?;
                    offset = offset.plus(1);
                }
                delta.apply().1
            }
            LogEvent::Snapshot(image) => {
                if self.published_once {
                    snapshot_changes(&self.image, &image)?
                } else {
                    self.image = image;
                    return self.maybe_first_publish();
                }
            }
        };
        if !self.published_once {
            self.image = changes.image;
            return self.maybe_first_publish();
        }
        for p in &self.publishers {
            p.publish(&changes);
        }
        self.image = changes.image.clone();
        self.cache.publish(changes.image);
        Ok(())
    }

    /// Before the first publish: publishes the caught-up image as one
    /// change from the empty image once it reaches `catch_up_to`.
    fn maybe_first_publish(&mut self) -> Result<(), LoaderError> {
        if self.image.provenance().last_offset < self.catch_up_to {
            return Ok(());
        }
        let changes = snapshot_changes(&MetadataImage::empty(), &self.image)?;
        self.published_once = true;
        for p in &self.publishers {
            p.publish(&changes);
        }
        self.image = changes.image.clone();
        self.cache.publish(changes.image);
        Ok(())
    }

    /// Follows the log until it shuts down. Each change is applied on the
    /// blocking pool. A record that does not apply stops the loader loudly
    /// (the image must not diverge from the log): waiters get an error.
    pub async fn run(self, listener: Box<dyn LogListener>) {
        self.run_until(listener, tokio::sync::watch::channel(false).1)
            .await
    }

    /// [`MetadataLoader::run`], also stopping once `stop` turns true
    /// (between two events, never inside a publish): a node of a cluster
    /// stops its loader while the log it follows keeps running.
    pub async fn run_until(
        mut self,
        mut listener: Box<dyn LogListener>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let cache = self.cache.clone();
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => {
                    cache.stop("metadata loader stopped".into());
                    return;
                }
                next = listener.next() => next,
            };
            let event = match next {
                Ok(e) => e,
                Err(LogError::Shutdown) => {
                    cache.stop("metadata log shut down".into());
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "metadata log failed; metadata loader stops");
                    cache.stop(e.to_string());
                    return;
                }
            };
            let joined = sluice_runtime::spawn_blocking(move || {
                let result = self.handle(event);
                (self, result)
            })
            .await;
            match joined {
                Ok((me, Ok(()))) => self = me,
                Ok((_, Err(e))) => {
                    tracing::error!(error = %e, "metadata loader stops: the image can no longer follow the log");
                    cache.stop(e.to_string());
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "metadata publisher panicked; metadata loader stops");
                    cache.stop(e.to_string());
                    return;
                }
            }
        }
    }
}

/// The changes from `current` to a snapshot's image: everything in the
/// snapshot as created, and every topic of `current` it lacks as deleted.
fn snapshot_changes(
    current: &MetadataImage,
    snapshot: &MetadataImage,
) -> Result<MetadataChanges, LoaderError> {
    let records = snapshot.write_snapshot();
    let image = MetadataImage::from_snapshot(&records, snapshot.provenance())?;
    let mut delta = MetadataDelta::new(MetadataImage::empty());
    for r in &records {
        delta.replay_record(r)?;
    }
    let (_, mut changes) = delta.apply();
    changes.image = image;
    for t in current.topics() {
        if snapshot.topic_by_id(t.id()).is_none() {
            changes.deleted_topics.insert(t.id(), t.clone());
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use sluice_controller::{CommittedBatch, LeaderAndEpoch};
    use sluice_metadata::record::TopicRecord;
    use sluice_metadata::{BrokerId, MetadataRecord};
    use sluice_record::{LeaderEpoch, Offset};
    use uuid::Uuid;

    struct Recorder(Mutex<Vec<(usize, i64)>>, Arc<ImageCache>);
    impl MetadataPublisher for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn publish(&self, changes: &MetadataChanges) {
            // The cache still shows the previous image while publishers run.
            assert_eq!(self.1.image(), changes.previous);
            self.0.lock().push((
                changes.image.topic_count(),
                changes.image.provenance().last_offset.0,
            ));
        }
    }

    fn batch(base: i64, records: Vec<MetadataRecord>) -> LogEvent {
        LogEvent::Batch(CommittedBatch {
            base_offset: Offset(base),
            epoch: LeaderEpoch(1),
            append_time_ms: 0,
            records,
        })
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: Uuid::from_u128(id),
        })
    }

    #[test]
    fn publishers_run_in_log_order_before_the_cache_and_a_bad_record_stops_it() {
        let cache = ImageCache::new(BrokerId(1));
        let rec = Arc::new(Recorder(Mutex::new(Vec::new()), cache.clone()));
        let mut loader = MetadataLoader::new(vec![rec.clone()], cache.clone());
        loader
            .handle(LogEvent::LeaderChange(LeaderAndEpoch {
                leader: Some(BrokerId(1)),
                epoch: LeaderEpoch(1),
            }))
            .unwrap();
        loader
            .handle(batch(0, vec![topic("a", 1), topic("b", 2)]))
            .unwrap();
        loader.handle(batch(2, vec![topic("c", 3)])).unwrap();
        assert_eq!(*rec.0.lock(), vec![(2, 1), (3, 2)]);
        assert_eq!(cache.wait_for_blocking(Offset(2)).unwrap().topic_count(), 3);
        // A record that does not fit the image (a duplicate name) is refused
        // and nothing is published.
        assert!(loader.handle(batch(3, vec![topic("a", 4)])).is_err());
        assert_eq!(rec.0.lock().len(), 2);
        assert_eq!(cache.image().provenance().last_offset, Offset(2));
    }

    #[test]
    fn a_snapshot_replaces_the_image_and_deletes_what_it_lacks() {
        let cache = ImageCache::new(BrokerId(1));
        let mut loader = MetadataLoader::new(Vec::new(), cache.clone());
        loader
            .handle(batch(0, vec![topic("a", 1), topic("b", 2)]))
            .unwrap();
        let mut other = MetadataDelta::new(MetadataImage::empty());
        other
            .replay(Offset(5), LeaderEpoch(2), &topic("b", 2))
            .unwrap();
        other
            .replay(Offset(6), LeaderEpoch(2), &topic("c", 3))
            .unwrap();
        let (snapshot, _) = other.apply();
        let changes = snapshot_changes(&loader.image, &snapshot).unwrap();
        assert_eq!(
            changes.deleted_topics.keys().copied().collect::<Vec<_>>(),
            vec![Uuid::from_u128(1)]
        );
        loader.handle(LogEvent::Snapshot(snapshot.clone())).unwrap();
        assert_eq!(cache.image(), snapshot);
    }
}
