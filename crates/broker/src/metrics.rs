//! Prometheus metrics: process-wide counters fed by small hooks in the
//! network layer, plus gauges read from the partitions at scrape time, served
//! as Prometheus text format at `/metrics` by a tiny HTTP server
//! ([`serve_http`]) on the `sluice.metrics.listener` address. `/health`
//! answers 200 only once log recovery has finished ([`HttpState::set_ready`]).
//!
//! The counters are process-global (one broker per process); in-process
//! tests that start several brokers see their sum.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use std::path::{Path, PathBuf};

use sluice_storage::{FileHandle, Fs, MappedRegion, OpenOptions};

use crate::context::BrokerContext;
use crate::handlers::Response;

mod replication;
mod transactions;
pub use replication::isr_updated;

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct ApiStats {
    requests: u64,
    /// Cumulative per bucket is computed at render time; these are per-bucket counts.
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum_seconds: f64,
}

#[derive(Default)]
struct TopicStats {
    bytes_in: u64,
    records_in: u64,
    bytes_out: u64,
    records_out: u64,
}

#[derive(Default)]
struct Registry {
    apis: BTreeMap<i16, ApiStats>,
    /// (api key, error code) -> count of error codes in responses.
    errors: BTreeMap<(i16, i16), u64>,
    topics: BTreeMap<String, TopicStats>,
    /// fsync latency: "file" (fdatasync of segments/indexes) and "dir".
    fsyncs: BTreeMap<&'static str, ApiStats>,
    /// Produce requests whose records were on disk when answered: time
    /// from the request's decoding to its answer.
    produce_durable: ApiStats,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);
static ACTIVE_CONNECTIONS: AtomicI64 = AtomicI64::new(0);
static CONNECTIONS_TOTAL: AtomicU64 = AtomicU64::new(0);
static REAUTHENTICATIONS: AtomicU64 = AtomicU64::new(0);
static EXPIRED_SESSIONS_KILLED: AtomicU64 = AtomicU64::new(0);

/// A SASL connection re-authenticated (KIP-368; Kafka's
/// `successful-reauthentication-total`).
pub fn reauthenticated() {
    REAUTHENTICATIONS.fetch_add(1, Ordering::Relaxed);
}

/// A SASL connection was closed because its session ended (Kafka's
/// `expired-connections-killed-count`).
pub fn expired_session_killed() {
    EXPIRED_SESSIONS_KILLED.fetch_add(1, Ordering::Relaxed);
}

/// Counts a connection as active until dropped.
pub struct ConnectionGuard(());

/// Call when a connection is accepted; hold the guard for its lifetime.
pub fn connection_opened() -> ConnectionGuard {
    ACTIVE_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    CONNECTIONS_TOTAL.fetch_add(1, Ordering::Relaxed);
    ConnectionGuard(())
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        ACTIVE_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a produce request carried per partition: (topic, partition, bytes, records).
type ProduceShape = Vec<(String, i32, u64, u64)>;

/// Fetch offsets of a fetch request: (topic name or id, partition) -> offset.
type FetchOffsets = BTreeMap<(String, i32), i64>;

/// How a fetch request or response names a topic (v13+ by id only).
fn fetch_topic_key(name: &str, id: uuid::Uuid) -> String {
    if name.is_empty() {
        format!("id:{id}")
    } else {
        name.to_string()
    }
}

/// One request being handled: `start` before the handler, `finish` with its answer.
pub struct Observation {
    api_key: i16,
    started: Instant,
    produce: Option<ProduceShape>,
    fetch: Option<FetchOffsets>,
}

impl Observation {
    pub fn start(header: &RequestHeader, body: &RequestKind) -> Observation {
        let produce = match body {
            RequestKind::Produce(req) => Some(
                req.topic_data
                    .iter()
                    .flat_map(|t| {
                        t.partition_data.iter().map(move |p| {
                            let bytes = p.records.as_ref().map_or(&[][..], |r| &r[..]);
                            (
                                t.name.0.to_string(),
                                p.index,
                                bytes.len() as u64,
                                count_records(bytes),
                            )
                        })
                    })
                    .collect(),
            ),
            _ => None,
        };
        let fetch = match body {
            RequestKind::Fetch(req) => Some(
                req.topics
                    .iter()
                    .flat_map(|t| {
                        let key = fetch_topic_key(&t.topic.0, t.topic_id);
                        t.partitions
                            .iter()
                            .map(move |p| ((key.clone(), p.partition), p.fetch_offset))
                    })
                    .collect(),
            ),
            _ => None,
        };
        Observation {
            api_key: header.request_api_key,
            started: Instant::now(),
            produce,
            fetch,
        }
    }

    pub fn finish(self, ctx: &BrokerContext, response: &Response) {
        let elapsed = self.started.elapsed();
        let durable = match (response, &self.produce) {
            (Response::Message(ResponseKind::Produce(resp)), Some(shape)) => {
                produce_was_durable(ctx, resp, shape)
            }
            _ => false,
        };
        let mut reg = REGISTRY.lock();
        if durable {
            reg.produce_durable.observe(elapsed);
        }
        reg.observe_latency(self.api_key, elapsed);
        match response {
            Response::Message(message) => {
                let mut codes = Vec::new();
                error_codes(message, &mut codes);
                for c in codes.into_iter().filter(|c| *c != 0) {
                    *reg.errors.entry((self.api_key, c)).or_default() += 1;
                }
                if let (ResponseKind::Produce(resp), Some(shape)) = (message, &self.produce) {
                    for (topic, partition, bytes, records) in shape {
                        let accepted = resp.responses.iter().any(|t| {
                            t.name.0.as_str() == topic
                                && t.partition_responses
                                    .iter()
                                    .any(|p| p.index == *partition && p.error_code == 0)
                        });
                        if accepted {
                            let s = reg.topics.entry(topic.clone()).or_default();
                            s.bytes_in += bytes;
                            s.records_in += records;
                        }
                    }
                }
            }
            Response::Fetch(plan) => {
                for t in &plan.response.responses {
                    for p in &t.partitions {
                        if p.error_code != 0 {
                            *reg.errors.entry((self.api_key, p.error_code)).or_default() += 1;
                        }
                    }
                }
                for f in &plan.files {
                    if let Some(t) = plan.response.responses.get(f.topic) {
                        // Records served: the offsets the slice covers from
                        // the fetch offset on (the first batch may start
                        // before it; the consumer skips those records).
                        // Storage found the slice's end offset while ending
                        // it on a batch boundary, so the bytes are not read.
                        let fetch_offset = t.partitions.get(f.partition).and_then(|p| {
                            self.fetch
                                .as_ref()?
                                .get(&(fetch_topic_key(&t.topic.0, t.topic_id), p.partition_index))
                        });
                        let records = fetch_offset
                            .map_or(0, |o| (f.slice.next_offset.value() - o).max(0) as u64);
                        let mut name = t.topic.0.to_string();
                        if name.is_empty() {
                            // Fetch v13+ names topics by id only.
                            name = ctx
                                .image
                                .topic_by_id(t.topic_id)
                                .map_or_else(|| format!("id:{}", t.topic_id), |m| m.name);
                        }
                        let stats = reg.topics.entry(name).or_default();
                        stats.bytes_out += f.slice.len as u64;
                        stats.records_out += records;
                    }
                }
            }
            // acks=0 produce: the records were appended unless the handler failed silently.
            Response::NoResponse => {
                if let Some(shape) = &self.produce {
                    for (topic, _, bytes, records) in shape {
                        let s = reg.topics.entry(topic.clone()).or_default();
                        s.bytes_in += bytes;
                        s.records_in += records;
                    }
                }
            }
            Response::Close(_) => {}
        }
    }
}

/// True if every partition the produce request appended to has its records
/// fsynced (the log's recovery point is past them) and at least one append
/// succeeded: with `flush.messages=1` the handler waited for the group-commit
/// fsync; otherwise only if a flush happened to cover the records already.
fn produce_was_durable(
    ctx: &BrokerContext,
    resp: &kafka_protocol::messages::ProduceResponse,
    shape: &ProduceShape,
) -> bool {
    let mut any = false;
    for t in &resp.responses {
        for p in &t.partition_responses {
            if p.error_code != 0 {
                continue;
            }
            let records = shape
                .iter()
                .find(|(topic, partition, _, _)| {
                    topic.as_str() == t.name.0.as_str() && *partition == p.index
                })
                .map_or(0, |s| s.3);
            let tp = sluice_storage::TopicPartition::new(t.name.0.to_string(), p.index);
            let Some(partition) = ctx.replicas.get_partition(&tp) else {
                return false;
            };
            let next = p.base_offset.saturating_add(records as i64);
            if partition.log().recovery_point().value() < next {
                return false;
            }
            any = true;
        }
    }
    any
}

impl Registry {
    fn observe_latency(&mut self, api_key: i16, elapsed: Duration) {
        self.apis.entry(api_key).or_default().observe(elapsed);
    }
}

impl ApiStats {
    fn observe(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        self.requests += 1;
        self.sum_seconds += secs;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
    }

    fn render(&self, s: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        let plain = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i];
            let _ = writeln!(s, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            s,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.requests
        );
        let _ = writeln!(s, "{name}_sum{plain} {}", self.sum_seconds);
        let _ = writeln!(s, "{name}_count{plain} {}", self.requests);
    }
}

fn observe_fsync(kind: &'static str, started: Instant) {
    REGISTRY
        .lock()
        .fsyncs
        .entry(kind)
        .or_default()
        .observe(started.elapsed());
}

/// An [`Fs`] that times every fsync (file and directory) for
/// `sluice_fsync_duration_seconds`; everything else is passed through.
pub struct MeteredFs(pub Arc<dyn Fs>);

struct MeteredFile(Arc<dyn FileHandle>);

impl Fs for MeteredFs {
    fn open(&self, path: &Path, opts: &OpenOptions) -> std::io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(MeteredFile(self.0.open(path, opts)?)))
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<PathBuf>> {
        self.0.read_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.0.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.0.is_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        let started = Instant::now();
        let r = self.0.sync_dir(path);
        observe_fsync("dir", started);
        r
    }
    fn boot_id(&self) -> Option<String> {
        self.0.boot_id()
    }
}

impl FileHandle for MeteredFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> std::io::Result<usize> {
        self.0.write_at(buf, pos)
    }
    fn write_vectored_at(&self, bufs: &[std::io::IoSlice<'_>], pos: u64) -> std::io::Result<usize> {
        self.0.write_vectored_at(bufs, pos)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn is_empty(&self) -> std::io::Result<bool> {
        self.0.is_empty()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn allocate(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.0.allocate(offset, len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let started = Instant::now();
        let r = self.0.sync_data();
        observe_fsync("file", started);
        r
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.0.raw_fd()
    }
    fn is_resident(&self, pos: u64, len: u64) -> std::io::Result<bool> {
        self.0.is_resident(pos, len)
    }
    fn prefault(&self, pos: u64, len: u64) -> std::io::Result<()> {
        self.0.prefault(pos, len)
    }
    fn map_mut(&self, len: u64) -> std::io::Result<Box<dyn MappedRegion>> {
        self.0.map_mut(len)
    }
}

/// Record count of a RecordBatch v2 sequence (sum of the batch headers'
/// record counts), stopping at the first incomplete batch.
fn count_records(mut bytes: &[u8]) -> u64 {
    const COUNT_AT: usize = 57;
    let mut total = 0u64;
    while bytes.len() >= 12 {
        let len = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let Ok(len) = usize::try_from(len) else { break };
        let Some(end) = len.checked_add(12) else {
            break;
        };
        if end > bytes.len() || end < COUNT_AT + 4 {
            break;
        }
        let c = i32::from_be_bytes([
            bytes[COUNT_AT],
            bytes[COUNT_AT + 1],
            bytes[COUNT_AT + 2],
            bytes[COUNT_AT + 3],
        ]);
        total += c.max(0) as u64;
        bytes = &bytes[end..];
    }
    total
}

/// Error codes found in a response (top level and per partition) for the
/// common APIs.
fn error_codes(message: &ResponseKind, out: &mut Vec<i16>) {
    match message {
        ResponseKind::Produce(r) => {
            for t in &r.responses {
                out.extend(t.partition_responses.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in &r.topics {
                out.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::Metadata(r) => out.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::CreateTopics(r) => out.extend(r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => out.extend(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::CreatePartitions(r) => out.extend(r.results.iter().map(|t| t.error_code)),
        ResponseKind::DescribeConfigs(r) => out.extend(r.results.iter().map(|t| t.error_code)),
        ResponseKind::AlterConfigs(r) => out.extend(r.responses.iter().map(|t| t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            out.extend(r.responses.iter().map(|t| t.error_code))
        }
        ResponseKind::FindCoordinator(r) => {
            out.push(r.error_code);
            out.extend(r.coordinators.iter().map(|c| c.error_code));
        }
        ResponseKind::JoinGroup(r) => out.push(r.error_code),
        ResponseKind::SyncGroup(r) => out.push(r.error_code),
        ResponseKind::Heartbeat(r) => out.push(r.error_code),
        ResponseKind::LeaveGroup(r) => out.push(r.error_code),
        ResponseKind::OffsetCommit(r) => {
            for t in &r.topics {
                out.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::OffsetFetch(r) => {
            out.push(r.error_code);
            for g in &r.groups {
                out.push(g.error_code);
            }
        }
        ResponseKind::TxnOffsetCommit(r) => {
            for t in &r.topics {
                out.extend(t.partitions.iter().map(|p| p.error_code));
            }
        }
        ResponseKind::ApiVersions(r) => out.push(r.error_code),
        _ => {}
    }
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("api_{key}"), |k| format!("{k:?}"))
}

/// Escapes a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of every metric; partition gauges are
/// read from `ctx` when given (absent while the broker is still recovering).
pub fn render(ctx: Option<&BrokerContext>) -> String {
    let mut s = String::new();
    {
        let reg = REGISTRY.lock();
        s.push_str("# HELP sluice_requests_total Requests handled, by API.\n# TYPE sluice_requests_total counter\n");
        for (k, a) in &reg.apis {
            let _ = writeln!(
                s,
                "sluice_requests_total{{api=\"{}\"}} {}",
                api_name(*k),
                a.requests
            );
        }
        s.push_str("# HELP sluice_request_duration_seconds Time from a request's decoding to its response being ready, by API.\n# TYPE sluice_request_duration_seconds histogram\n");
        for (k, a) in &reg.apis {
            a.render(
                &mut s,
                "sluice_request_duration_seconds",
                &format!("api=\"{}\"", api_name(*k)),
            );
        }
        s.push_str("# HELP sluice_fsync_duration_seconds Duration of fsyncs of log files (kind=file) and directories (kind=dir).\n# TYPE sluice_fsync_duration_seconds histogram\n");
        for (kind, a) in &reg.fsyncs {
            a.render(
                &mut s,
                "sluice_fsync_duration_seconds",
                &format!("kind=\"{kind}\""),
            );
        }
        s.push_str("# HELP sluice_produce_durable_seconds Time from a produce request's decoding to its answer, for requests whose records were fsynced before the answer (topics with flush.messages=1, or a flush that happened to cover them); requests left to the background flush are not observed.\n# TYPE sluice_produce_durable_seconds histogram\n");
        reg.produce_durable
            .render(&mut s, "sluice_produce_durable_seconds", "");
        s.push_str("# HELP sluice_errors_total Kafka error codes in responses (per partition or per resource), by API and code.\n# TYPE sluice_errors_total counter\n");
        for ((k, code), n) in &reg.errors {
            let _ = writeln!(
                s,
                "sluice_errors_total{{api=\"{}\",code=\"{code}\"}} {n}",
                api_name(*k)
            );
        }
        for (name, help, get) in [
            (
                "sluice_topic_bytes_in_total",
                "Record batch bytes appended, by topic.",
                (|t: &TopicStats| t.bytes_in) as fn(&TopicStats) -> u64,
            ),
            (
                "sluice_topic_records_in_total",
                "Records appended, by topic.",
                |t| t.records_in,
            ),
            (
                "sluice_topic_bytes_out_total",
                "Record bytes sent to fetchers (consumers), by topic.",
                |t| t.bytes_out,
            ),
            (
                "sluice_topic_records_out_total",
                "Records sent to fetchers (consumers), by topic: the offsets the sent batches cover from each fetch offset (on compacted topics this includes offsets compaction removed).",
                |t| t.records_out,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (topic, t) in &reg.topics {
                let _ = writeln!(s, "{name}{{topic=\"{}\"}} {}", label(topic), get(t));
            }
        }
    }
    s.push_str("# HELP sluice_active_connections Client connections open now.\n# TYPE sluice_active_connections gauge\n");
    let _ = writeln!(
        s,
        "sluice_active_connections {}",
        ACTIVE_CONNECTIONS.load(Ordering::Relaxed)
    );
    s.push_str("# HELP sluice_connections_total Client connections accepted.\n# TYPE sluice_connections_total counter\n");
    let _ = writeln!(
        s,
        "sluice_connections_total {}",
        CONNECTIONS_TOTAL.load(Ordering::Relaxed)
    );
    s.push_str("# HELP sluice_successful_reauthentications_total SASL re-authentications (KIP-368) that succeeded.\n# TYPE sluice_successful_reauthentications_total counter\n");
    let _ = writeln!(
        s,
        "sluice_successful_reauthentications_total {}",
        REAUTHENTICATIONS.load(Ordering::Relaxed)
    );
    s.push_str("# HELP sluice_expired_sessions_killed_total SASL connections closed because their session ended (connections.max.reauth.ms) without re-authentication.\n# TYPE sluice_expired_sessions_killed_total counter\n");
    let _ = writeln!(
        s,
        "sluice_expired_sessions_killed_total {}",
        EXPIRED_SESSIONS_KILLED.load(Ordering::Relaxed)
    );
    if let Some(ctx) = ctx {
        // Who answers: a reader (the web console) checks it scraped the
        // broker it meant to, not another process on a reused port.
        let _ = writeln!(
            s,
            "# HELP sluice_broker_info This broker's cluster id and node id.\n# TYPE sluice_broker_info gauge\nsluice_broker_info{{cluster_id=\"{}\",node_id=\"{}\"}} 1",
            label(&ctx.metadata.cluster_id()),
            ctx.config.node_id
        );
        let mut parts: Vec<_> = ctx
            .replicas
            .partitions()
            .into_iter()
            .map(|p| {
                let log = p.log();
                let tp = log.topic_partition().clone();
                (
                    tp.topic,
                    tp.partition,
                    log.size_in_bytes(),
                    log.num_segments(),
                    log.log_end_offset(),
                    log.log_start_offset(),
                )
            })
            .collect();
        parts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (name, help, kind) in [
            (
                "sluice_log_size_bytes",
                "Bytes of a partition's log on disk.",
                0,
            ),
            (
                "sluice_log_segments",
                "Segment files of a partition's log.",
                1,
            ),
            ("sluice_log_end_offset", "Log end offset of a partition.", 2),
            (
                "sluice_log_start_offset",
                "Log start offset of a partition.",
                3,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (topic, partition, size, segments, end, start) in &parts {
                let v = match kind {
                    0 => *size as i64,
                    1 => *segments as i64,
                    2 => end.value(),
                    _ => start.value(),
                };
                let _ = writeln!(
                    s,
                    "{name}{{topic=\"{}\",partition=\"{partition}\"}} {v}",
                    label(topic)
                );
            }
        }
        let (producers, producer_bytes) = ctx.logs.producer_state_usage();
        let _ = writeln!(
            s,
            "# HELP sluice_producers Idempotent producers whose state the logs track (summed over partitions).\n# TYPE sluice_producers gauge\nsluice_producers {producers}"
        );
        let _ = writeln!(
            s,
            "# HELP sluice_producer_state_bytes Estimated memory held by idempotent producer state.\n# TYPE sluice_producer_state_bytes gauge\nsluice_producer_state_bytes {producer_bytes}"
        );
        render_groups(ctx, &mut s);
        replication::render(ctx, &mut s);
        transactions::render(ctx, &mut s);
        // Per quota group: rate, limit, throttle time (crate::quota).
        ctx.quotas.render(ctx.clock.now_ms(), &mut s);
    }
    s
}

/// Groups by state, members per group, and committed-offset lag per group
/// and partition (high watermark minus committed offset).
fn render_groups(ctx: &BrokerContext, s: &mut String) {
    let groups = ctx.groups.list_groups();
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut members = Vec::new();
    let mut lags = Vec::new();
    for g in &groups {
        *by_state.entry(format!("{:?}", g.state)).or_default() += 1;
        if let Ok(d) = ctx.groups.describe_group(&g.group_id) {
            members.push((g.group_id.clone(), d.members.len()));
        }
        if let Ok(offsets) = ctx.groups.fetch_offsets(&g.group_id, None) {
            for (topic, partition, committed) in offsets {
                let Some(committed) = committed else { continue };
                let tp = sluice_storage::TopicPartition::new(topic.clone(), partition);
                if let Some(p) = ctx.replicas.get_partition(&tp) {
                    let lag = (p.high_watermark().value() - committed.offset).max(0);
                    lags.push((g.group_id.clone(), topic, partition, lag));
                }
            }
        }
    }
    s.push_str("# HELP sluice_groups Consumer groups, by state.\n# TYPE sluice_groups gauge\n");
    for (state, n) in &by_state {
        let _ = writeln!(s, "sluice_groups{{state=\"{state}\"}} {n}");
    }
    s.push_str("# HELP sluice_group_members Members of a consumer group.\n# TYPE sluice_group_members gauge\n");
    for (g, n) in &members {
        let _ = writeln!(s, "sluice_group_members{{group=\"{}\"}} {n}", label(g));
    }
    s.push_str("# HELP sluice_group_lag Records between a group's committed offset and the high watermark.\n# TYPE sluice_group_lag gauge\n");
    for (g, t, p, lag) in &lags {
        let _ = writeln!(
            s,
            "sluice_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{p}\"}} {lag}",
            label(g),
            label(t)
        );
    }
}

/// What the HTTP server answers from; the broker context is set once
/// recovery has finished and the broker listens.
#[derive(Default)]
pub struct HttpState {
    ctx: OnceLock<BrokerContext>,
}

impl HttpState {
    pub fn new() -> Arc<HttpState> {
        Arc::new(HttpState::default())
    }

    /// Marks the broker ready (recovery finished): `/health` answers 200.
    pub fn set_ready(&self, ctx: BrokerContext) {
        let _ = self.ctx.set(ctx);
    }

    pub fn is_ready(&self) -> bool {
        self.ctx.get().is_some()
    }
}

/// Serves `GET /metrics` and `GET /health` on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, state: Arc<HttpState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &state)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, state: &HttpState) -> std::io::Result<()> {
    // Read the request head (bounded), then answer and close.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 * 1024 {
            break;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(state.ctx.get()),
        ),
        ("GET", "/health") if state.is_ready() => ("200 OK", "text/plain", "ready\n".to_string()),
        ("GET", "/health") => (
            "503 Service Unavailable",
            "text/plain",
            "recovering\n".to_string(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /health\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 61 + payload];
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    #[test]
    fn counts_records_across_batches_and_stops_at_a_torn_one() {
        let mut bytes = batch(3, 10);
        bytes.extend(batch(5, 0));
        assert_eq!(count_records(&bytes), 8);
        let mut torn = bytes.clone();
        torn.extend(&batch(7, 4)[..30]);
        assert_eq!(count_records(&torn), 8);
        assert_eq!(count_records(&[]), 0);
        let mut negative = batch(1, 0);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(count_records(&negative), 0);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut reg = Registry::default();
        reg.observe_latency(0, Duration::from_micros(300));
        reg.observe_latency(0, Duration::from_millis(20));
        reg.observe_latency(0, Duration::from_secs(60));
        let a = &reg.apis[&0];
        assert_eq!(a.requests, 3);
        assert_eq!(a.buckets[0], 1);
        assert_eq!(a.buckets.iter().sum::<u64>(), 2, "60 s only in +Inf");
    }
}
