//! The fetcher against an in-memory follower log and an in-process leader
//! speaking Kafka's protocol over TCP (the real connection code): copying
//! byte for byte, the incremental session, DivergingEpoch truncation,
//! out-of-range, fenced and retried partitions, storage errors, refused
//! responses, and the manager's grouping and shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsResponse, RequestKind, ResponseKind,
};
use parking_lot::Mutex;
use sluice_metadata::BrokerId;
use sluice_protocol::{decode_request, encode_response, FrameReader};
use sluice_record::{BatchBuilder, BatchHeader, CompressionType, LeaderEpoch, Offset, Timestamp};
use sluice_storage::{StorageError, TopicPartition};
use sluice_transport::net::TcpConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

use super::apply::{truncation_offset, FetchStatus};
use super::conn::LeaderConnection;
use super::*;

mod throttle;

const TOPIC_ID: Uuid = Uuid::from_u128(0x5157);

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// A batch of `count` records at `base` in leader epoch `epoch`.
fn batch(base: i64, count: usize, epoch: i32) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .base_offset(Offset(base))
        .partition_leader_epoch(LeaderEpoch(epoch));
    for i in 0..count {
        let v = format!("value-{base}-{i}-{epoch}");
        b.append(Timestamp(1_700_000_000_000), None, Some(v.as_bytes()), &[])
            .unwrap();
    }
    b.build().unwrap()
}

/// Batches as a log holds them: (bytes, base, next offset, epoch).
#[derive(Clone, Default)]
struct Batches(Vec<(Vec<u8>, i64, i64, i32)>);

impl Batches {
    fn of(list: &[(i64, usize, i32)]) -> Batches {
        Batches(
            list.iter()
                .map(|&(b, n, e)| (batch(b, n, e), b, b + n as i64, e))
                .collect(),
        )
    }
    fn end(&self, start: i64) -> i64 {
        self.0.last().map_or(start, |b| b.2)
    }
    /// Kafka's endOffsetFor over the epochs the batches carry.
    fn end_offset_for_epoch(&self, epoch: i32, leo: i64) -> Option<(i32, i64)> {
        let mut starts: Vec<(i32, i64)> = Vec::new();
        for b in &self.0 {
            if starts.last().is_none_or(|l| b.3 > l.0) {
                starts.push((b.3, b.1));
            }
        }
        let i = starts.iter().rposition(|s| s.0 <= epoch)?;
        let end = starts.get(i + 1).map_or(leo, |n| n.1);
        Some((starts[i].0, end))
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|b| b.0.clone()).collect()
    }
}

#[derive(Default)]
struct FakeLog {
    batches: Batches,
    log_start: i64,
    hw: i64,
    /// Appends fail with this errno (ENOSPC: a full disk; EIO: a failed
    /// write the storage layer undid).
    fail_appends: Option<i32>,
    /// The log directory is offline: appends fail with `LogDirOffline`.
    offline: bool,
    /// Truncations fail with this errno.
    fail_truncations: Option<i32>,
    /// Pretends the epoch cache is empty.
    no_epochs: bool,
    /// An epoch-cache entry at the log end with no batch in it: this broker
    /// led that epoch and lost the leadership before appending.
    empty_epoch: Option<i32>,
}

/// The follower's log.
struct FakeReplica {
    log: Mutex<FakeLog>,
    epoch: Mutex<LeaderEpoch>,
    leader_here: std::sync::atomic::AtomicBool,
}

impl FakeReplica {
    fn new(batches: Batches, epoch: i32) -> Arc<FakeReplica> {
        Arc::new(FakeReplica {
            log: Mutex::new(FakeLog {
                batches,
                ..Default::default()
            }),
            epoch: Mutex::new(LeaderEpoch(epoch)),
            leader_here: Default::default(),
        })
    }
    fn bytes(&self) -> Vec<u8> {
        self.log.lock().batches.bytes()
    }
}

impl FollowerReplica for FakeReplica {
    fn log_start_offset(&self) -> Offset {
        Offset(self.log.lock().log_start)
    }
    fn log_end_offset(&self) -> Offset {
        let l = self.log.lock();
        Offset(l.batches.end(l.log_start))
    }
    fn high_watermark(&self) -> Offset {
        Offset(self.log.lock().hw)
    }
    fn latest_epoch(&self) -> Option<LeaderEpoch> {
        let l = self.log.lock();
        if l.no_epochs {
            return None;
        }
        if let Some(e) = l.empty_epoch {
            return Some(LeaderEpoch(e));
        }
        l.batches.0.last().map(|b| LeaderEpoch(b.3))
    }
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let l = self.log.lock();
        let leo = l.batches.end(l.log_start);
        l.batches
            .end_offset_for_epoch(epoch.0, leo)
            .map(|(e, o)| (LeaderEpoch(e), Offset(o)))
    }
    fn max_message_bytes(&self) -> usize {
        1 << 20
    }
    fn is_follower_in(&self, epoch: LeaderEpoch) -> bool {
        !self.leader_here.load(Ordering::SeqCst) && *self.epoch.lock() == epoch
    }
    fn append_as_follower(&self, records: &[u8]) -> Result<FollowerAppend, StorageError> {
        let mut l = self.log.lock();
        if l.offline {
            return Err(StorageError::LogDirOffline {
                dir: "/failing".into(),
                reason: "an fsync failed".into(),
            });
        }
        if let Some(errno) = l.fail_appends {
            return Err(StorageError::Io {
                op: "write",
                path: "/failing".into(),
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        let mut rest = records;
        let mut out = FollowerAppend {
            last_offset: Offset(-1),
            bytes: 0,
        };
        while let Ok(size) = BatchHeader::peek_size(rest) {
            if size > rest.len() {
                break;
            }
            let h = BatchHeader::validate(&rest[..size])?;
            let leo = l.batches.end(l.log_start);
            if h.base_offset.0 < leo {
                return Err(StorageError::InvalidRecord(format!(
                    "append at {} below the log end {leo}",
                    h.base_offset
                )));
            }
            let next = h.next_offset().0;
            l.batches.0.push((
                rest[..size].to_vec(),
                h.base_offset.0,
                next,
                h.partition_leader_epoch.0,
            ));
            out = FollowerAppend {
                last_offset: Offset(next - 1),
                bytes: out.bytes + size,
            };
            rest = &rest[size..];
        }
        Ok(out)
    }
    fn truncate_to(&self, offset: Offset) -> Result<(), StorageError> {
        let mut l = self.log.lock();
        if let Some(errno) = l.fail_truncations {
            return Err(StorageError::Io {
                op: "allocate index",
                path: "/failing".into(),
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        l.batches.0.retain(|b| b.1 < offset.0);
        let leo = l.batches.end(l.log_start);
        // As the real log: an entry at or past the new end goes.
        if offset.0 <= leo {
            l.empty_epoch = None;
        }
        l.hw = l.hw.min(leo);
        Ok(())
    }
    fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<(), StorageError> {
        let mut l = self.log.lock();
        l.batches.0.clear();
        l.log_start = offset.0;
        l.hw = offset.0;
        Ok(())
    }
    fn update_high_watermark(&self, leader_hw: Offset) -> Offset {
        let mut l = self.log.lock();
        let leo = l.batches.end(l.log_start);
        l.hw = leader_hw.0.min(leo).max(l.log_start);
        Offset(l.hw)
    }
    fn maybe_increment_log_start_offset(
        &self,
        leader_log_start: Offset,
    ) -> Result<(), StorageError> {
        let mut l = self.log.lock();
        if leader_log_start.0 > l.log_start && leader_log_start.0 <= l.hw {
            l.log_start = leader_log_start.0;
        }
        Ok(())
    }
}

#[derive(Default)]
struct FakeSource(Mutex<HashMap<TopicPartition, Arc<FakeReplica>>>);

impl ReplicaSource for FakeSource {
    fn follower(&self, tp: &TopicPartition) -> Option<Arc<dyn FollowerReplica>> {
        self.0
            .lock()
            .get(tp)
            .cloned()
            .map(|r| r as Arc<dyn FollowerReplica>)
    }
}

/// One partition of the fake leader.
#[derive(Default, Clone)]
struct LeaderPartition {
    batches: Batches,
    log_start: i64,
    hw: i64,
    /// Error codes answered to the next fetches, in order.
    errors: Vec<i16>,
}

#[derive(Default)]
struct LeaderState {
    partitions: BTreeMap<i32, LeaderPartition>,
    session: Option<(i32, i32)>,
    /// Every fetch seen: (session id, epoch, partitions sent, forgotten).
    fetches: Vec<(i32, i32, Vec<i32>, usize)>,
    /// Answer the next incremental fetch with INVALID_FETCH_SESSION_EPOCH.
    break_session: bool,
    /// The session's partitions: fetch offset, last fetched epoch, max bytes.
    session_partitions: BTreeMap<i32, (i64, i32, i32)>,
}

/// A leader on a loopback port answering ApiVersions, Fetch and ListOffsets.
struct FakeLeader {
    state: Arc<Mutex<LeaderState>>,
    addr: String,
    requests: Arc<AtomicUsize>,
}

impl FakeLeader {
    async fn start(partitions: BTreeMap<i32, LeaderPartition>) -> FakeLeader {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(LeaderState {
            partitions,
            ..Default::default()
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r) = (state.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, s.clone(), r.clone()));
            }
        });
        FakeLeader {
            state,
            addr,
            requests,
        }
    }

    fn endpoint(&self) -> LeaderEndpoint {
        let (host, port) = self.addr.rsplit_once(':').unwrap();
        LeaderEndpoint {
            id: BrokerId(1),
            host: host.to_string(),
            port: port.parse().unwrap(),
        }
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    state: Arc<Mutex<LeaderState>>,
    requests: Arc<AtomicUsize>,
) {
    let mut frames = FrameReader::new(1 << 20);
    loop {
        let frame = loop {
            match frames.next_frame() {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => return,
            }
            match sock.read_buf(frames.read_buf()).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let req = decode_request(frame).unwrap();
        let (cid, version) = (req.correlation_id(), req.api_version());
        let body = match req.body {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(
                sluice_protocol::api_versions_response(sluice_protocol::SUPPORTED_APIS, 0),
            ),
            RequestKind::Fetch(f) => {
                let idle = {
                    let resp = answer_fetch(&mut state.lock(), &f, version);
                    let idle = resp
                        .responses
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .all(|p| p.records.is_none() && p.error_code == 0);
                    if !idle {
                        let out = encode_response(
                            ApiKey::Fetch,
                            cid,
                            version,
                            &ResponseKind::Fetch(resp),
                        )
                        .unwrap();
                        if sock.write_all(&out).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    resp
                };
                // A short long-poll when there is nothing to send.
                tokio::time::sleep(Duration::from_millis(20)).await;
                ResponseKind::Fetch(idle)
            }
            RequestKind::ListOffsets(l) => {
                let st = state.lock();
                let topics = l
                    .topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        let lp = &st.partitions[&p.partition_index];
                                        let offset = match p.timestamp {
                                            -2 => lp.log_start,
                                            _ => lp.batches.end(lp.log_start),
                                        };
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_offset(offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(topics))
            }
            other => panic!("unexpected request {other:?}"),
        };
        let out = encode_response(req.api_key, cid, version, &body).unwrap();
        if sock.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// The leader's Fetch answer: its session (id 1), divergence from
/// LastFetchedEpoch, out of range, records from the fetch offset.
fn answer_fetch(st: &mut LeaderState, f: &FetchRequest, version: i16) -> FetchResponse {
    assert!(version >= 13, "topic ids");
    if version >= 15 {
        assert_eq!(f.replica_state.replica_id.0, 2, "ReplicaState");
        assert_eq!(f.replica_id.0, -1);
    }
    let sent: Vec<i32> = f
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition))
        .collect();
    let forgotten = f
        .forgotten_topics_data
        .iter()
        .map(|t| t.partitions.len())
        .sum();
    st.fetches
        .push((f.session_id, f.session_epoch, sent, forgotten));
    if f.session_epoch != 0
        && (st.break_session || st.session != Some((f.session_id, f.session_epoch)))
    {
        st.break_session = false;
        st.session = None;
        return FetchResponse::default().with_error_code(71);
    }
    let mut asked: BTreeMap<i32, (i64, i32, i32)> = BTreeMap::new();
    for t in &f.topics {
        assert_eq!(t.topic_id, TOPIC_ID);
        for p in &t.partitions {
            asked.insert(
                p.partition,
                (p.fetch_offset, p.last_fetched_epoch, p.partition_max_bytes),
            );
        }
    }
    // The session keeps what incremental requests leave out.
    let mut partitions = if f.session_epoch == 0 {
        BTreeMap::new()
    } else {
        st.session_partitions.clone()
    };
    partitions.extend(asked);
    for t in &f.forgotten_topics_data {
        for p in &t.partitions {
            partitions.remove(p);
        }
    }
    st.session_partitions = partitions.clone();
    st.session = Some((1, f.session_epoch + 1));
    let mut out = Vec::new();
    for (&p, &(offset, last_epoch, max)) in &partitions {
        let lp = st.partitions.get_mut(&p).unwrap();
        let leo = lp.batches.end(lp.log_start);
        let mut d = PartitionData::default()
            .with_partition_index(p)
            .with_high_watermark(lp.hw)
            .with_log_start_offset(lp.log_start);
        if !lp.errors.is_empty() {
            out.push(d.with_error_code(lp.errors.remove(0)));
            continue;
        }
        if last_epoch >= 0 {
            if let Some((e, end)) = lp.batches.end_offset_for_epoch(last_epoch, leo) {
                if e < last_epoch || end < offset {
                    d.diverging_epoch =
                        EpochEndOffset::default().with_epoch(e).with_end_offset(end);
                    out.push(d);
                    continue;
                }
            }
        }
        if offset < lp.log_start || offset > leo {
            out.push(d.with_error_code(1));
            continue;
        }
        let mut records = Vec::new();
        for b in lp.batches.0.iter().filter(|b| b.1 >= offset) {
            if !records.is_empty() && records.len() + b.0.len() > max as usize {
                break;
            }
            records.extend_from_slice(&b.0);
        }
        if !records.is_empty() {
            d.records = Some(Bytes::from(records));
        }
        out.push(d);
    }
    FetchResponse::default()
        .with_session_id(1)
        .with_responses(vec![FetchableTopicResponse::default()
            .with_topic_id(TOPIC_ID)
            .with_partitions(out)])
}

fn config() -> ReplicaFetcherConfig {
    ReplicaFetcherConfig {
        replica_id: 2,
        backoff: Duration::from_millis(50),
        socket_timeout: Duration::from_secs(30),
        ..ReplicaFetcherConfig::default()
    }
}

fn manager(source: Arc<FakeSource>) -> ReplicaFetcherManager {
    ReplicaFetcherManager::new(
        config(),
        source,
        Arc::new(TcpConnector),
        tokio::runtime::Handle::current(),
    )
}

fn follow(
    m: &ReplicaFetcherManager,
    leader: &FakeLeader,
    p: i32,
    replica: &FakeReplica,
    epoch: i32,
) {
    m.add_partitions(
        &leader.endpoint(),
        vec![InitialFetchState {
            tp: tp(p),
            topic_id: TOPIC_ID,
            fetch_offset: replica.log_end_offset(),
            leader_epoch: LeaderEpoch(epoch),
        }],
    );
}

/// Polls `cond` every 10 ms for up to 60 s (a busy machine is slow).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn leader_partition(batches: &[(i64, usize, i32)], hw: i64) -> LeaderPartition {
    LeaderPartition {
        batches: Batches::of(batches),
        hw,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_copies_the_leader_byte_for_byte_in_one_incremental_session() {
    let leader = FakeLeader::start(BTreeMap::from([
        (0, leader_partition(&[(0, 3, 0), (3, 2, 0), (5, 4, 1)], 7)),
        (1, leader_partition(&[(0, 1, 1)], 1)),
    ]))
    .await;
    let source = Arc::new(FakeSource::default());
    let (r0, r1) = (
        FakeReplica::new(Batches::default(), 1),
        FakeReplica::new(Batches::default(), 1),
    );
    source.0.lock().insert(tp(0), r0.clone());
    source.0.lock().insert(tp(1), r1.clone());
    let m = manager(source);
    m.set_broker_epoch(12);
    follow(&m, &leader, 0, &r0, 1);
    follow(&m, &leader, 1, &r1, 1);
    let want0 = leader.state.lock().partitions[&0].batches.bytes();
    eventually("partition 0 copied", || r0.bytes() == want0).await;
    eventually("partition 1 copied", || !r1.bytes().is_empty()).await;
    // Follower HW = min(leader HW, own LEO).
    eventually("high watermark", || r0.high_watermark() == Offset(7)).await;
    assert_eq!(m.fetch_state(&tp(0)).unwrap().fetch_offset, Offset(9));
    assert_eq!(
        m.fetch_state(&tp(0)).unwrap().last_fetched_epoch,
        Some(LeaderEpoch(1))
    );

    // New data on the leader: only that partition is sent again.
    {
        let mut st = leader.state.lock();
        let p = st.partitions.get_mut(&0).unwrap();
        p.batches.0.extend(Batches::of(&[(9, 2, 1)]).0);
        p.hw = 11;
    }
    let want0 = leader.state.lock().partitions[&0].batches.bytes();
    eventually("new batch copied", || r0.bytes() == want0).await;
    eventually("high watermark moves", || r0.high_watermark() == Offset(11)).await;
    m.shutdown().await;
    let fetches = leader.state.lock().fetches.clone();
    let (first, rest) = fetches.split_first().unwrap();
    assert_eq!((first.0, first.1), (0, 0), "a full fetch first");
    assert!(
        rest.iter().all(|f| f.0 == 1 && f.1 >= 1),
        "then incremental: {fetches:?}"
    );
    assert!(
        rest.iter().any(|f| f.2 == vec![0]),
        "an incremental fetch carried only the partition that moved: {fetches:?}"
    );
    assert!(
        rest.iter().any(|f| f.2.is_empty()),
        "idle polls carry no partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diverging_epoch_truncates_the_follower_and_it_converges() {
    // The follower wrote epoch 1 batches the leader (epoch 2) never had.
    let leader = FakeLeader::start(BTreeMap::from([(
        0,
        leader_partition(&[(0, 3, 0), (3, 3, 2)], 6),
    )]))
    .await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::of(&[(0, 3, 0), (3, 1, 1), (4, 4, 1)]), 2);
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 2);
    let want = leader.state.lock().partitions[&0].batches.bytes();
    eventually("converged", || r.bytes() == want).await;
    m.shutdown().await;
    let fetches = leader.state.lock().fetches.len();
    assert!(fetches >= 2);
}

/// A truncation that finds the disk full is retried, as an append is: once
/// space is freed the follower truncates and converges. Found by the
/// cluster simulation (seed 55 with full disks): the partition stopped
/// fetching for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation_on_a_full_disk_is_retried_until_space_is_freed() {
    let leader = FakeLeader::start(BTreeMap::from([(
        0,
        leader_partition(&[(0, 3, 0), (3, 3, 2)], 6),
    )]))
    .await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::of(&[(0, 3, 0), (3, 1, 1), (4, 4, 1)]), 2);
    r.log.lock().fail_truncations = Some(libc::ENOSPC);
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 2);
    eventually("the truncation is delayed, not stopped", || {
        leader.state.lock().fetches.len() >= 2
            && matches!(
                m.fetch_state(&tp(0)).unwrap().status,
                FetchStatus::Delayed(_)
            )
    })
    .await;
    r.log.lock().fail_truncations = None;
    let want = leader.state.lock().partitions[&0].batches.bytes();
    eventually("converged once space is freed", || r.bytes() == want).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_led_here_without_appends_is_dropped_and_fetching_goes_on() {
    // This broker led epoch 2 without appending (its epoch cache says 2
    // starts at 3, the log end); the leader (epoch 3) never knew epoch 2.
    // It answers DivergingEpoch{1, 3}: truncation to the log end must drop
    // the entry, or every later fetch diverges the same way and the
    // follower never gets the leader's epoch 3 batches (seen in a nemesis
    // run: the replica left the ISR for good).
    let leader = FakeLeader::start(BTreeMap::from([(
        0,
        leader_partition(&[(0, 3, 1), (3, 2, 3)], 5),
    )]))
    .await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::of(&[(0, 3, 1)]), 3);
    r.log.lock().empty_epoch = Some(2);
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 3);
    let want = leader.state.lock().partitions[&0].batches.bytes();
    eventually("the follower has the leader's epoch 3 batches", || {
        r.bytes() == want
    })
    .await;
    m.shutdown().await;
}

#[test]
fn kip_279_truncation_offsets() {
    // Epochs 0 [0,3), 1 [3,8): LEO 8.
    let r = FakeReplica::new(Batches::of(&[(0, 3, 0), (3, 1, 1), (4, 4, 1)]), 2);
    let e = |x| LeaderEpoch(x);
    // The leader's epoch 1 ends at 5: min(5, own end of epoch 1 = 8).
    assert_eq!(
        truncation_offset(&*r, e(1), Offset(5), Offset(8)),
        Offset(5)
    );
    // The leader's epoch 1 ends after ours: keep our end of it.
    assert_eq!(
        truncation_offset(&*r, e(1), Offset(20), Offset(8)),
        Offset(8)
    );
    // Epoch 0 ends at 2 on the leader: truncate there.
    assert_eq!(
        truncation_offset(&*r, e(0), Offset(2), Offset(8)),
        Offset(2)
    );
    // We have no epoch 3... wait, the largest below 3 is 1, ending at LEO:
    // unknown leader epoch → our largest epoch below it, ending at 8.
    assert_eq!(
        truncation_offset(&*r, e(3), Offset(4), Offset(8)),
        Offset(8)
    );
    // A leader epoch between ours: epochs 0 and 2 here, leader says 1 ends at 5.
    let r2 = FakeReplica::new(Batches::of(&[(0, 3, 0), (3, 4, 2)]), 3);
    assert_eq!(
        truncation_offset(&*r2, e(1), Offset(5), Offset(7)),
        Offset(3)
    );
    // No epoch that old here: the leader's end offset.
    let r3 = FakeReplica::new(Batches::of(&[(5, 3, 4)]), 5);
    assert_eq!(
        truncation_offset(&*r3, e(2), Offset(6), Offset(8)),
        Offset(6)
    );
    // Undefined end: nothing to truncate.
    assert_eq!(
        truncation_offset(&*r, e(-1), Offset(-1), Offset(8)),
        Offset(8)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leader_log_start_restarts_there() {
    let mut lp = leader_partition(&[(10, 3, 1), (13, 2, 1)], 15);
    lp.log_start = 10;
    let leader = FakeLeader::start(BTreeMap::from([(0, lp)])).await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::of(&[(0, 3, 1)]), 1);
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 1);
    let want = leader.state.lock().partitions[&0].batches.bytes();
    eventually("restarted at the leader's log start", || r.bytes() == want).await;
    assert_eq!(r.log_start_offset(), Offset(10));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_ahead_of_the_leader_end_truncates_to_it() {
    // No epoch cache here, so no DivergingEpoch: the leader answers
    // OFFSET_OUT_OF_RANGE and its log end decides.
    let leader = FakeLeader::start(BTreeMap::from([(0, leader_partition(&[(0, 3, 0)], 3))])).await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::of(&[(0, 3, 0), (3, 2, 0)]), 1);
    r.log.lock().no_epochs = true;
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 1);
    eventually("truncated to the leader's end", || {
        r.log_end_offset() == Offset(3)
    })
    .await;
    let want = leader.state.lock().partitions[&0].batches.bytes();
    assert_eq!(r.bytes(), want);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_waits_for_a_new_epoch_and_other_errors_are_retried() {
    let mut p0 = leader_partition(&[(0, 2, 3)], 2);
    p0.errors = vec![74];
    let mut p1 = leader_partition(&[(0, 2, 3)], 2);
    p1.errors = vec![6, 6];
    let leader = FakeLeader::start(BTreeMap::from([(0, p0), (1, p1)])).await;
    let source = Arc::new(FakeSource::default());
    let (r0, r1) = (
        FakeReplica::new(Batches::default(), 2),
        FakeReplica::new(Batches::default(), 2),
    );
    source.0.lock().insert(tp(0), r0.clone());
    source.0.lock().insert(tp(1), r1.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r0, 2);
    follow(&m, &leader, 1, &r1, 2);
    // NOT_LEADER_OR_FOLLOWER twice, then the data.
    eventually("retried partition copied", || !r1.bytes().is_empty()).await;
    eventually("fenced partition stopped", || {
        matches!(
            m.fetch_state(&tp(0)).unwrap().status,
            FetchStatus::Stopped(_)
        )
    })
    .await;
    // The image says the same epoch again: still stopped.
    follow(&m, &leader, 0, &r0, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(r0.bytes().is_empty());
    // A new epoch: fetched again.
    *r0.epoch.lock() = LeaderEpoch(3);
    follow(&m, &leader, 0, &r0, 3);
    eventually("fetched in the new epoch", || !r0.bytes().is_empty()).await;
    m.shutdown().await;
}

/// After a failover the follower may learn the new leader before the new
/// leader does: UNKNOWN_LEADER_EPOCH is retried at once, not after
/// `replica.fetch.backoff.ms` (here longer than `eventually` waits), while
/// NOT_LEADER_OR_FOLLOWER still waits the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_behind_on_metadata_is_fetched_from_again_soon() {
    let mut p0 = leader_partition(&[(0, 2, 3)], 2);
    p0.errors = vec![75, 75, 75];
    let mut p1 = leader_partition(&[(0, 2, 3)], 2);
    p1.errors = vec![6];
    let leader = FakeLeader::start(BTreeMap::from([(0, p0), (1, p1)])).await;
    let source = Arc::new(FakeSource::default());
    let (r0, r1) = (
        FakeReplica::new(Batches::default(), 2),
        FakeReplica::new(Batches::default(), 2),
    );
    source.0.lock().insert(tp(0), r0.clone());
    source.0.lock().insert(tp(1), r1.clone());
    let m = ReplicaFetcherManager::new(
        ReplicaFetcherConfig {
            backoff: Duration::from_secs(600),
            ..config()
        },
        source,
        Arc::new(TcpConnector),
        tokio::runtime::Handle::current(),
    );
    follow(&m, &leader, 0, &r0, 2);
    follow(&m, &leader, 1, &r1, 2);
    eventually("partition copied once the leader caught up", || {
        !r0.bytes().is_empty()
    })
    .await;
    assert!(
        r1.bytes().is_empty(),
        "NOT_LEADER_OR_FOLLOWER waits replica.fetch.backoff.ms"
    );
    assert!(matches!(
        m.fetch_state(&tp(1)).unwrap().status,
        FetchStatus::Delayed(_)
    ));
    m.shutdown().await;
}

/// Follows partitions 0 and 1 of a fake leader, appends to partition 0
/// failing with `errno`; partition 1 is copied regardless.
async fn with_failing_appends(errno: i32) -> (FakeLeader, Arc<FakeReplica>, ReplicaFetcherManager) {
    let leader = FakeLeader::start(BTreeMap::from([
        (0, leader_partition(&[(0, 2, 0)], 2)),
        (1, leader_partition(&[(0, 2, 0)], 2)),
    ]))
    .await;
    let source = Arc::new(FakeSource::default());
    let (r0, r1) = (
        FakeReplica::new(Batches::default(), 1),
        FakeReplica::new(Batches::default(), 1),
    );
    r0.log.lock().fail_appends = Some(errno);
    source.0.lock().insert(tp(0), r0.clone());
    source.0.lock().insert(tp(1), r1.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r0, 1);
    follow(&m, &leader, 1, &r1, 1);
    eventually("healthy partition copied", || !r1.bytes().is_empty()).await;
    (leader, r0, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_directory_stops_only_that_partition() {
    let (_leader, r0, m) = with_failing_appends(libc::EIO).await;
    r0.log.lock().offline = true;
    eventually("failed directory stops its partition", || {
        matches!(&m.fetch_state(&tp(0)).unwrap().status, FetchStatus::Stopped(why) if why.contains("append failed"))
    })
    .await;
    assert!(r0.bytes().is_empty());
    m.shutdown().await;
}

/// A write that failed with EIO and was undone (the directory stays
/// online) is retried, and the follower catches up once writes succeed.
/// Found by the cluster simulation (seed 381): the follower stopped
/// fetching the partition for good and stayed behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undone_write_error_is_retried() {
    let (_leader, r0, m) = with_failing_appends(libc::EIO).await;
    eventually("the failed append is retried", || {
        matches!(
            &m.fetch_state(&tp(0)).unwrap().status,
            FetchStatus::Delayed(_)
        )
    })
    .await;
    assert!(r0.bytes().is_empty());
    r0.log.lock().fail_appends = None;
    eventually("copied once writes succeed", || !r0.bytes().is_empty()).await;
    m.shutdown().await;
}

/// A full disk is not a failed directory: the storage layer refuses the
/// append whole, and once space is freed the follower must catch up (and
/// can rejoin the ISR). Found by the nemesis: a follower whose disk had
/// filled stayed behind for good after the disk was freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_retried_until_space_is_freed() {
    let (_leader, r0, m) = with_failing_appends(libc::ENOSPC).await;
    eventually("full disk delays its partition", || {
        matches!(
            &m.fetch_state(&tp(0)).unwrap().status,
            FetchStatus::Delayed(_)
        )
    })
    .await;
    assert!(r0.bytes().is_empty());
    r0.log.lock().fail_appends = None;
    eventually("copied once space is freed", || !r0.bytes().is_empty()).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_appended_once_the_replica_leads() {
    let leader = FakeLeader::start(BTreeMap::from([(0, leader_partition(&[(0, 2, 0)], 2))])).await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::default(), 1);
    r.leader_here.store(true, Ordering::SeqCst);
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 1);
    let seen = leader.requests.load(Ordering::SeqCst);
    eventually("fetches answered", || {
        leader.requests.load(Ordering::SeqCst) > seen + 3
    })
    .await;
    assert!(
        r.bytes().is_empty(),
        "a leader's log was written as a follower"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_session_starts_over_with_a_full_fetch() {
    let leader = FakeLeader::start(BTreeMap::from([(0, leader_partition(&[(0, 2, 0)], 2))])).await;
    let source = Arc::new(FakeSource::default());
    let r = FakeReplica::new(Batches::default(), 1);
    source.0.lock().insert(tp(0), r.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r, 1);
    eventually("copied", || !r.bytes().is_empty()).await;
    leader.state.lock().break_session = true;
    {
        let mut st = leader.state.lock();
        let p = st.partitions.get_mut(&0).unwrap();
        p.batches.0.extend(Batches::of(&[(2, 1, 0)]).0);
    }
    eventually("copied after the new session", || {
        r.log_end_offset() == Offset(3)
    })
    .await;
    m.shutdown().await;
    let fetches = leader.state.lock().fetches.clone();
    let full_after_first = fetches.iter().skip(1).filter(|f| f.1 == 0).count();
    assert!(full_after_first >= 1, "{fetches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_groups_by_leader_and_stops_with_the_broker() {
    let leader = FakeLeader::start(BTreeMap::from([
        (0, leader_partition(&[(0, 1, 0)], 1)),
        (1, leader_partition(&[(0, 1, 0)], 1)),
        (2, leader_partition(&[(0, 1, 0)], 1)),
    ]))
    .await;
    let source = Arc::new(FakeSource::default());
    let rs: Vec<_> = (0..3)
        .map(|_| FakeReplica::new(Batches::default(), 1))
        .collect();
    for (i, r) in rs.iter().enumerate() {
        source.0.lock().insert(tp(i as i32), r.clone());
    }
    let mut cfg = config();
    cfg.num_fetchers = 2;
    let m = ReplicaFetcherManager::new(
        cfg,
        source,
        Arc::new(TcpConnector),
        tokio::runtime::Handle::current(),
    );
    for (i, r) in rs.iter().enumerate() {
        follow(&m, &leader, i as i32, r, 1);
    }
    let ids: std::collections::BTreeSet<u32> =
        (0..3).map(|p| manager::fetcher_id(&tp(p), 2)).collect();
    assert_eq!(m.fetchers().len(), ids.len());
    assert!(m.fetchers().iter().all(|(b, _)| *b == BrokerId(1)));
    eventually("all copied", || rs.iter().all(|r| !r.bytes().is_empty())).await;
    // Removing every partition stops the idle fetchers.
    m.remove_partitions(&[tp(0), tp(1), tp(2)]);
    assert!(m.fetchers().is_empty());
    follow(&m, &leader, 0, &rs[0], 1);
    assert_eq!(m.fetchers().len(), 1);
    m.shutdown().await;
    let after = leader.requests.load(Ordering::SeqCst);
    follow(&m, &leader, 1, &rs[1], 1);
    assert!(m.fetchers().is_empty(), "no fetcher starts after shutdown");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        leader.requests.load(Ordering::SeqCst),
        after,
        "a fetch after shutdown"
    );
}

#[test]
fn fetcher_ids_follow_kafkas_hash() {
    // Java: Math.abs(31 * "t".hashCode() + 5) % 3 = (31 * 116 + 5) % 3 = 3601 % 3.
    assert_eq!(manager::fetcher_id(&tp(5), 3), 3601 % 3);
    assert_eq!(manager::fetcher_id(&tp(5), 1), 0);
}

/// A leader that answers ApiVersions properly and then a Fetch with `frame`.
async fn leader_answering(frame: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut frames = FrameReader::new(1 << 20);
        let mut n = 0;
        loop {
            let f = loop {
                if let Ok(Some(f)) = frames.next_frame() {
                    break f;
                }
                if sock.read_buf(frames.read_buf()).await.unwrap_or(0) == 0 {
                    return;
                }
            };
            let req = decode_request(f).unwrap();
            let out = if n == 0 {
                encode_response(
                    ApiKey::ApiVersions,
                    req.correlation_id(),
                    req.api_version(),
                    &ResponseKind::ApiVersions(sluice_protocol::api_versions_response(
                        sluice_protocol::SUPPORTED_APIS,
                        0,
                    )),
                )
                .unwrap()
                .to_vec()
            } else {
                let mut f = frame.clone();
                // Patch in the correlation id after the size prefix.
                if f.len() >= 8 {
                    f[4..8].copy_from_slice(&req.correlation_id().to_be_bytes());
                }
                f
            };
            n += 1;
            if sock.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    addr
}

async fn fetch_once(addr: &str, max_frame: usize) -> Result<FetchResponse, FetcherError> {
    let mut c = LeaderConnection::open(&TcpConnector, addr, "t".into(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(c.fetch_version, 17);
    let req = FetchRequest::default();
    c.call(ApiKey::Fetch, 17, &req, max_frame, Duration::from_secs(30))
        .await
}

#[tokio::test]
async fn oversized_and_corrupt_answers_are_refused_before_decoding() {
    // A size prefix claiming 2 GiB: refused from the prefix alone.
    let addr = leader_answering(vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).await;
    let err = fetch_once(&addr, 11 << 20).await.unwrap_err();
    assert!(
        matches!(
            &err,
            FetcherError::Protocol {
                source: sluice_protocol::ProtocolError::FrameTooLarge { .. },
                ..
            }
        ),
        "{err}"
    );
    // A well-framed v17 answer whose partition count claims ~2^32 entries.
    let mut body = vec![0, 0, 0, 0, 0]; // correlation id (patched), header tags
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // throttle, error, session id
    body.push(2); // one topic
    body.extend_from_slice(TOPIC_ID.as_bytes());
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // partitions: ~2^32
    body.push(0);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let addr = leader_answering(frame).await;
    let err = fetch_once(&addr, 11 << 20).await.unwrap_err();
    assert!(
        matches!(
            &err,
            FetcherError::Protocol {
                source: sluice_protocol::ProtocolError::Malformed { .. },
                ..
            }
        ),
        "{err}"
    );
    // The same framing with a sane body decodes (the checks are not
    // refusing everything).
    let ok = encode_response(
        ApiKey::Fetch,
        0,
        17,
        &ResponseKind::Fetch(FetchResponse::default().with_session_id(9)),
    )
    .unwrap()
    .to_vec();
    let addr = leader_answering(ok).await;
    assert_eq!(fetch_once(&addr, 11 << 20).await.unwrap().session_id, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetcher_lag_is_the_leaders_high_watermark_minus_the_next_fetch_offset() {
    // A leader whose high watermark is ahead of what one answer carries
    // (as when a follower catches up over several fetches).
    let leader = FakeLeader::start(BTreeMap::from([(0, leader_partition(&[(0, 3, 0)], 10))])).await;
    let source = Arc::new(FakeSource::default());
    let r0 = FakeReplica::new(Batches::default(), 1);
    source.0.lock().insert(tp(0), r0.clone());
    let m = manager(source);
    follow(&m, &leader, 0, &r0, 1);
    assert_eq!(
        m.lags(),
        vec![(tp(0), leader.endpoint().id, 0)],
        "0 until the first answer"
    );
    eventually("the answer applied", || {
        m.fetch_state(&tp(0))
            .is_some_and(|s| s.fetch_offset == Offset(3))
    })
    .await;
    eventually("lag 10 - 3", || {
        m.lags() == vec![(tp(0), leader.endpoint().id, 7)]
    })
    .await;
    // Caught up with the high watermark: no lag (never negative).
    leader.state.lock().partitions.get_mut(&0).unwrap().hw = 2;
    {
        let mut st = leader.state.lock();
        let p = st.partitions.get_mut(&0).unwrap();
        p.batches.0.extend(Batches::of(&[(3, 1, 0)]).0);
    }
    eventually("lag 0", || {
        m.lags() == vec![(tp(0), leader.endpoint().id, 0)]
    })
    .await;
    m.remove_partitions(&[tp(0)]);
    assert!(
        m.lags().is_empty(),
        "a partition no longer followed has no lag"
    );
    m.shutdown().await;
}
