//! Incremental fetch sessions (KIP-227).
//!
//! A consumer that fetches many partitions sends the full list once (epoch
//! 0) and gets a session id back; later requests (epoch 1, 2, ...) name only
//! the partitions whose fetch position changed, and the answers carry only
//! partitions with news: records, an error, or a moved high watermark / log
//! start offset. The cache is bounded; when it is full of recently used
//! sessions a new client simply gets session id 0 and keeps sending full
//! fetches, as with Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use kafka_protocol::messages::TopicName;
use parking_lot::Mutex;
use uuid::Uuid;

/// Kafka's `max.incremental.fetch.session.cache.slots` default.
pub const DEFAULT_MAX_SESSIONS: usize = 1000;
/// A session idle this long may be evicted to make room for a new one
/// (Kafka's `min.incremental.fetch.session.eviction.ms`).
const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// Identifies a partition within a session: by topic id (v13+) or name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub topic_id: Uuid,
    pub topic: String,
    pub partition: i32,
}

/// What the session remembers about one partition: the client's fetch
/// parameters and what the last answer told it.
#[derive(Clone, Debug)]
pub struct CachedPartition {
    pub key: SessionKey,
    /// The topic name as the client sent it (echoed in answers before v13).
    pub topic_name: TopicName,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// A follower's own log start offset (Fetch v5+), -1 from consumers.
    pub fetcher_log_start_offset: i64,
    /// A follower's last fetched epoch (Fetch v12+), -1 when not given.
    pub last_fetched_epoch: i32,
}

impl CachedPartition {
    pub fn new(
        key: SessionKey,
        topic_name: TopicName,
        fetch_offset: i64,
        partition_max_bytes: i32,
        current_leader_epoch: i32,
    ) -> Self {
        CachedPartition {
            key,
            topic_name,
            fetch_offset,
            partition_max_bytes,
            current_leader_epoch,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            fetcher_log_start_offset: -1,
            last_fetched_epoch: -1,
        }
    }

    /// The follower fields of the request (Kafka's `fetcherLogStartOffset`
    /// and `lastFetchedEpoch`).
    pub fn with_fetcher(mut self, log_start_offset: i64, last_fetched_epoch: i32) -> Self {
        self.fetcher_log_start_offset = log_start_offset;
        self.last_fetched_epoch = last_fetched_epoch;
        self
    }

    /// Records what an answer said; true if the partition must be in an
    /// incremental answer (Kafka's `maybeUpdateResponseData`).
    pub fn observe(
        &mut self,
        error_code: i16,
        has_records: bool,
        high_watermark: i64,
        last_stable_offset: i64,
        log_start_offset: i64,
    ) -> bool {
        let mut must_respond = has_records || error_code != 0;
        if self.high_watermark != high_watermark {
            self.high_watermark = high_watermark;
            must_respond = true;
        }
        if self.log_start_offset != log_start_offset {
            self.log_start_offset = log_start_offset;
            must_respond = true;
        }
        if last_stable_offset >= 0 && self.last_stable_offset != last_stable_offset {
            self.last_stable_offset = last_stable_offset;
            must_respond = true;
        }
        must_respond
    }
}

pub struct FetchSession {
    pub id: i32,
    /// The epoch the next request must carry.
    pub epoch: i32,
    /// Whether the session names topics by id (v13+).
    pub uses_topic_ids: bool,
    /// Partitions in the order they were added.
    pub partitions: Vec<CachedPartition>,
    last_used: Instant,
}

impl FetchSession {
    pub fn position(&self, key: &SessionKey) -> Option<usize> {
        self.partitions.iter().position(|p| &p.key == key)
    }

    /// Adds a partition or updates its fetch parameters.
    pub fn upsert(&mut self, part: CachedPartition) {
        match self.position(&part.key) {
            Some(i) => {
                let p = &mut self.partitions[i];
                p.fetch_offset = part.fetch_offset;
                p.partition_max_bytes = part.partition_max_bytes;
                p.current_leader_epoch = part.current_leader_epoch;
                p.fetcher_log_start_offset = part.fetcher_log_start_offset;
                p.last_fetched_epoch = part.last_fetched_epoch;
            }
            None => self.partitions.push(part),
        }
    }

    pub fn forget(&mut self, key: &SessionKey) {
        self.partitions.retain(|p| &p.key != key);
    }
}

/// Kafka's `FetchMetadata.nextEpoch`: 1, 2, ..., i32::MAX, 1, ...
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        return epoch;
    }
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// Why an incremental request cannot use its session.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    NotFound,
    InvalidEpoch,
    TopicIdUsage,
}

pub struct FetchSessionCache {
    sessions: Mutex<Sessions>,
    max_sessions: usize,
}

struct Sessions {
    by_id: BTreeMap<i32, Arc<Mutex<FetchSession>>>,
    next_id: i32,
}

impl Default for FetchSessionCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SESSIONS)
    }
}

impl FetchSessionCache {
    pub fn new(max_sessions: usize) -> Self {
        // Ids start somewhere arbitrary so a restarted broker is unlikely to
        // reuse the id a client still holds.
        let seed = (sluice_runtime::random_u64() & 0x3fff_ffff) as i32;
        FetchSessionCache {
            sessions: Mutex::new(Sessions {
                by_id: BTreeMap::new(),
                next_id: seed.max(1),
            }),
            max_sessions,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn remove(&self, id: i32) {
        self.sessions.lock().by_id.remove(&id);
    }

    /// Creates a session holding `partitions` (whose answer state is already
    /// recorded); `None` when the cache is full of sessions still in use.
    pub fn create(&self, uses_topic_ids: bool, partitions: Vec<CachedPartition>) -> Option<i32> {
        if self.max_sessions == 0 {
            return None;
        }
        let mut s = self.sessions.lock();
        if s.by_id.len() >= self.max_sessions {
            let now = Instant::now();
            let oldest = s
                .by_id
                .iter()
                .map(|(id, sess)| (*id, sess.lock().last_used))
                .min_by_key(|(_, used)| *used)?;
            if now.duration_since(oldest.1) < EVICTABLE_AFTER {
                return None;
            }
            s.by_id.remove(&oldest.0);
        }
        let mut id = s.next_id;
        while id <= 0 || s.by_id.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        s.next_id = id.wrapping_add(1);
        s.by_id.insert(
            id,
            Arc::new(Mutex::new(FetchSession {
                id,
                epoch: next_epoch(0),
                uses_topic_ids,
                partitions,
                last_used: Instant::now(),
            })),
        );
        Some(id)
    }

    /// Looks up the session of an incremental request, checks its epoch and
    /// moves the epoch on (a repeated epoch is refused from then on).
    pub fn begin_incremental(
        &self,
        id: i32,
        epoch: i32,
        uses_topic_ids: bool,
    ) -> Result<Arc<Mutex<FetchSession>>, SessionError> {
        let session = self
            .sessions
            .lock()
            .by_id
            .get(&id)
            .cloned()
            .ok_or(SessionError::NotFound)?;
        {
            let mut s = session.lock();
            if s.epoch != epoch {
                return Err(SessionError::InvalidEpoch);
            }
            if s.uses_topic_ids != uses_topic_ids {
                return Err(SessionError::TopicIdUsage);
            }
            s.epoch = next_epoch(s.epoch);
            s.last_used = Instant::now();
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn part(p: i32) -> CachedPartition {
        CachedPartition::new(
            SessionKey {
                topic_id: Uuid::nil(),
                topic: "t".into(),
                partition: p,
            },
            TopicName(StrBytes::from_static_str("t")),
            0,
            1024,
            -1,
        )
    }

    #[test]
    fn epochs_must_follow_one_another() {
        let cache = FetchSessionCache::new(10);
        let id = cache.create(false, vec![part(0)]).unwrap();
        assert!(id > 0);
        assert!(cache.begin_incremental(id, 1, false).is_ok());
        assert_eq!(
            cache.begin_incremental(id, 1, false).err(),
            Some(SessionError::InvalidEpoch)
        );
        assert!(cache.begin_incremental(id, 2, false).is_ok());
        assert_eq!(
            cache.begin_incremental(id + 1, 3, false).err(),
            Some(SessionError::NotFound)
        );
        assert_eq!(
            cache.begin_incremental(id, 3, true).err(),
            Some(SessionError::TopicIdUsage)
        );
        cache.remove(id);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_of_busy_sessions_answers_sessionless() {
        let cache = FetchSessionCache::new(2);
        assert!(cache.create(false, vec![]).is_some());
        assert!(cache.create(false, vec![]).is_some());
        assert_eq!(cache.create(false, vec![]), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn only_news_makes_a_partition_part_of_an_incremental_answer() {
        let mut p = part(0);
        assert!(p.observe(0, false, 10, 10, 0)); // first sight: offsets changed
        assert!(!p.observe(0, false, 10, 10, 0)); // nothing new
        assert!(p.observe(0, true, 10, 10, 0)); // records
        assert!(p.observe(0, false, 12, 12, 0)); // high watermark moved
        assert!(p.observe(0, false, 12, 12, 5)); // log start moved
        assert!(p.observe(1, false, 12, 12, 5)); // error
    }

    #[test]
    fn epoch_wraps_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }
}
