//! The bench-only sink broker: a tiny Kafka-protocol server that the harness drives
//! with the same librdkafka load as a real broker, to measure what the client and the
//! machine can do without a broker's work in the way.
//!
//! - **Produce ceiling** (default): answers ApiVersions, Metadata, CreateTopics and
//!   Produce (acks) and discards every record: the client's own produce ceiling
//!   (librdkafka plus loopback).
//! - **Consume ceiling** (always on): answers FindCoordinator, ListOffsets and Fetch for
//!   any topic produced to it. While acknowledging, it remembers the shape of every
//!   batch (record count per batch, per partition, and the record value size); at the
//!   first ListOffsets or Fetch of that topic it builds the same log in memory as
//!   RecordBatch v2 bytes with `sluice-record` (same record size, same batches, offsets
//!   from 0, valid CRC-32C), and serves Fetch from it, whole batches up to each
//!   partition's and the response's byte limits (at least one batch, KIP-74). Reading
//!   a topic back from the sink with the same consumer is the client's own consume
//!   ceiling.
//! - **Page-cache write floor** (`write_dir`): each produce request's record bytes are
//!   written with one `writev` to a file per topic in `write_dir`, then acknowledged; no
//!   validation, no index. Its process CPU per GB is the least any broker that writes
//!   through the page cache pays on this machine.
//!
//! Framing and decoding use `sluice-protocol` (bounded frame reader, validation pass
//! before kafka-protocol decodes), so hostile input cannot make it allocate from a
//! wire length. Remembered batch shapes and built logs are bounded.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_response::CreatableTopicResult,
    fetch_response::{FetchableTopicResponse, PartitionData},
    find_coordinator_response::Coordinator,
    list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
    ApiKey, BrokerId, CreateTopicsResponse, FetchRequest, FetchResponse, FindCoordinatorResponse,
    ListOffsetsResponse, MetadataResponse, ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::{
    api_versions_fallback_frame, api_versions_response, decode_request_with, encode_fetch_response,
    encode_response, FetchChunk, FrameReader, ProtocolError, RecordsRef,
};
use sluice_record::{BatchBuilder, BatchHeader, CompressionType, Offset, Timestamp};

/// What the sink advertises: only the APIs it answers (the same version ranges as
/// Sluice for the ones a consumer uses, so librdkafka picks the same versions).
pub const SINK_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
];

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const KAFKA_STORAGE_ERROR: i16 = 56;
const UNKNOWN_TOPIC_ID: i16 = 100;
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
const NODE_ID: i32 = 1;
/// Batch shapes remembered over the sink's life (16 bytes each): 64 MiB at most.
const MAX_SHAPES: usize = 4 << 20;
/// Bytes of built logs held at once (the bench serves at most 512 MiB).
const MAX_SERVED_BYTES: u64 = 4 << 30;
/// Longest long-poll wait of a Fetch with nothing to return.
const MAX_FETCH_WAIT: Duration = Duration::from_millis(500);
/// Kafka's response cap (`fetch.max.bytes` upper bound the broker accepts).
const FETCH_MAX_BYTES: usize = 64 << 20;

/// How the sink treats produced records.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Write each produce request's records into `<dir>/<topic>.log` (one `writev`
    /// per request) before acknowledging: the page-cache write floor.
    pub write_dir: Option<PathBuf>,
    /// Serve Fetch records with `sendfile` from a memfd holding each built log (as a
    /// broker sends from the page cache) instead of `writev` from memory.
    pub sendfile: bool,
    /// Topics to serve from the start, in the batch layout of another broker's log
    /// (see [`TopicShapes::from_log_dir`]).
    pub serve: Vec<TopicShapes>,
}

/// A topic's batch layout: the record value size and, per partition, the record count
/// of each batch in order. Read from a broker's data directory so the sink can serve
/// the same batches the broker serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicShapes {
    pub topic: String,
    pub value_size: usize,
    pub partitions: Vec<Vec<i32>>,
}

impl TopicShapes {
    /// The layout of `topic` with `partitions` partitions under a Kafka-style data
    /// directory (`<dir>/<topic>-<n>/*.log`, as both Sluice and Kafka keep them): the
    /// record count of every valid batch of every segment, in segment order, up to the
    /// first torn or zero-filled batch of each segment. Bounded by `MAX_SHAPES`.
    pub fn from_log_dir(
        dir: &std::path::Path,
        topic: &str,
        partitions: i32,
    ) -> Result<TopicShapes> {
        let mut out = TopicShapes {
            topic: topic.to_string(),
            ..Default::default()
        };
        let mut total = 0usize;
        for p in 0..partitions.max(0) {
            let pdir = dir.join(format!("{topic}-{p}"));
            let mut segs: Vec<PathBuf> = std::fs::read_dir(&pdir)
                .with_context(|| format!("read {pdir:?}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            segs.sort();
            let mut counts = Vec::new();
            for seg in segs {
                use std::os::unix::fs::FileExt;
                // Batch headers only: the records stay on disk.
                let f = File::open(&seg).with_context(|| format!("open {seg:?}"))?;
                let file_len = f.metadata()?.len();
                let mut pos = 0u64;
                let mut head = [0u8; 61];
                while pos + head.len() as u64 <= file_len {
                    f.read_exact_at(&mut head, pos)?;
                    let Ok(h) = BatchHeader::parse(&head) else {
                        break;
                    };
                    let len = h.size() as u64;
                    if h.record_count <= 0 || pos + len > file_len {
                        break;
                    }
                    if out.value_size == 0 {
                        let mut batch = vec![0u8; len as usize];
                        f.read_exact_at(&mut batch, pos)?;
                        out.value_size = first_value_size(&batch).unwrap_or(0);
                    }
                    total += 1;
                    anyhow::ensure!(
                        total <= MAX_SHAPES,
                        "{topic}: more than {MAX_SHAPES} batches"
                    );
                    counts.push(h.record_count);
                    pos += len;
                }
            }
            out.partitions.push(counts);
        }
        Ok(out)
    }
}

/// One piece of a response frame: bytes, or (sendfile mode) a range of a log's memfd.
#[derive(Debug, Clone)]
enum Out {
    Bytes(Bytes),
    File {
        file: Arc<File>,
        pos: u64,
        len: usize,
    },
}

/// Records of one partition in a Fetch answer: the bytes, and where they sit in the
/// log's memfd in sendfile mode.
#[derive(Debug, Clone)]
struct Piece {
    bytes: Bytes,
    file: Option<(Arc<File>, u64)>,
}

/// One remembered batch: its record count and size as produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    records: i32,
    bytes: u32,
}

#[derive(Debug)]
struct TopicState {
    partitions: i32,
    id: u128,
    /// Next offset per partition (records acknowledged so far).
    next_offset: Vec<i64>,
    /// Batches acknowledged per partition, in order (until `MAX_SHAPES` is reached).
    shapes: Vec<Vec<Shape>>,
    /// Value size of the first record produced to the topic.
    value_size: Option<usize>,
    /// Some batch shapes were not recorded (bound reached): the log cannot be served.
    incomplete: bool,
    /// The log built from `shapes`, once a consumer asks for it.
    served: Option<Arc<ServedTopic>>,
    /// Page-cache floor mode: where this topic's records are written.
    file: Option<Arc<File>>,
}

/// One partition's log in memory: batches end to end, and where each starts.
#[derive(Debug)]
struct ServedLog {
    bytes: Bytes,
    /// Sendfile mode: a memfd with the same bytes.
    file: Option<Arc<File>>,
    /// (base offset, byte position) of each batch, ascending.
    batches: Vec<(i64, usize)>,
    log_end: i64,
}

#[derive(Debug)]
struct ServedTopic {
    partitions: Vec<ServedLog>,
}

#[derive(Default)]
struct SinkState {
    topics: Mutex<HashMap<String, TopicState>>,
    shapes: Mutex<usize>,
    served_bytes: Mutex<u64>,
    options: SinkOptions,
}

/// A running sink; the listener thread lives as long as the process.
pub struct Sink {
    addr: SocketAddr,
}

impl Sink {
    /// Bind `listen` (port 0 for any) and serve connections on background threads.
    pub fn start(listen: &str, options: SinkOptions) -> Result<Sink> {
        if let Some(d) = &options.write_dir {
            std::fs::create_dir_all(d).with_context(|| format!("create {d:?}"))?;
        }
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let state = SinkState {
            options,
            ..Default::default()
        };
        for t in state.options.serve.clone() {
            preload(&state, &t);
        }
        let state = Arc::new(state);
        std::thread::Builder::new()
            .name("sink-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    let _ = std::thread::Builder::new()
                        .name("sink-conn".into())
                        .spawn(move || {
                            if let Err(e) = serve_conn(conn, addr, &state) {
                                eprintln!("sink: connection closed: {e:#}");
                            }
                        });
                }
            })?;
        Ok(Sink { addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serve_conn(mut conn: TcpStream, addr: SocketAddr, state: &SinkState) -> Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = FrameReader::new(MAX_REQUEST_BYTES);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        reader.extend_from_slice(&buf[..n]);
        while let Some(frame) = reader.next_frame()? {
            let out = answer(frame, addr, state)?;
            write_out(&mut conn, &out)?;
        }
    }
}

/// Write a response: runs of bytes with `writev`, memfd ranges with `sendfile`.
fn write_out(conn: &mut TcpStream, out: &[Out]) -> std::io::Result<()> {
    let mut run: Vec<Bytes> = Vec::new();
    for o in out {
        match o {
            Out::Bytes(b) => run.push(b.clone()),
            Out::File { file, pos, len } => {
                write_all_vectored(conn, &std::mem::take(&mut run))?;
                sendfile_all(conn, file, *pos, *len)?;
            }
        }
    }
    write_all_vectored(conn, &run)
}

fn sendfile_all(conn: &TcpStream, file: &File, pos: u64, len: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut offset = libc::off_t::try_from(pos)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open (borrowed for the call) and `offset`
        // points to a local.
        let n = unsafe { libc::sendfile(conn.as_raw_fd(), file.as_raw_fd(), &mut offset, left) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as usize;
    }
    Ok(())
}

/// Write every chunk, in as few `writev` calls as the kernel allows.
fn write_all_vectored<W: Write>(w: &mut W, chunks: &[Bytes]) -> std::io::Result<()> {
    const MAX_IOV: usize = 512;
    let mut idx = 0; // first chunk not fully written
    let mut off = 0; // bytes of chunks[idx] already written
    loop {
        while idx < chunks.len() && chunks[idx].len() == off {
            idx += 1;
            off = 0;
        }
        if idx == chunks.len() {
            return Ok(());
        }
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_IOV.min(chunks.len() - idx));
        iov.push(IoSlice::new(&chunks[idx][off..]));
        for c in chunks[idx + 1..].iter().take(MAX_IOV - 1) {
            iov.push(IoSlice::new(c));
        }
        let mut n = match w.write_vectored(&iov) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 && idx < chunks.len() {
            let left = chunks[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
}

/// The response to one request frame, as chunks to write in order (none for acks=0
/// produce).
fn answer(frame: Bytes, addr: SocketAddr, state: &SinkState) -> Result<Vec<Out>> {
    let req = match decode_request_with(frame, SINK_APIS) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            return Ok(vec![Out::Bytes(api_versions_fallback_frame(
                SINK_APIS,
                correlation_id,
            )?)])
        }
        Err(e) => return Err(e.into()),
    };
    let version = req.api_version();
    let cid = req.correlation_id();
    let body = match req.body {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(api_versions_response(SINK_APIS, 0))
        }
        RequestKind::Metadata(m) => {
            let names: Option<Vec<String>> = m.topics.map(|ts| {
                ts.into_iter()
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect()
            });
            ResponseKind::Metadata(metadata(state, addr, names, m.allow_auto_topic_creation))
        }
        RequestKind::CreateTopics(c) => {
            let mut resp = CreateTopicsResponse::default();
            let mut topics = state.topics.lock().expect("sink state");
            for t in c.topics {
                let name = t.name.0.to_string();
                let partitions = if t.num_partitions > 0 {
                    t.num_partitions
                } else {
                    1
                };
                let mut r = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                match topics.entry(name) {
                    Entry::Occupied(_) => r.error_code = TOPIC_ALREADY_EXISTS,
                    Entry::Vacant(v) => {
                        // Bounded: more partitions than this is not a bench workload.
                        let st = new_topic(v.key(), partitions.min(100_000));
                        r.topic_id = uuid_of(st.id);
                        if !c.validate_only {
                            v.insert(st);
                        }
                    }
                }
                resp.topics.push(r);
            }
            ResponseKind::CreateTopics(resp)
        }
        RequestKind::Produce(p) => {
            let acks = p.acks;
            let resp = produce(state, p.topic_data)?;
            if acks == 0 {
                return Ok(Vec::new());
            }
            ResponseKind::Produce(resp)
        }
        RequestKind::FindCoordinator(f) => {
            let host = StrBytes::from_string(addr.ip().to_string());
            let port = addr.port() as i32;
            let mut resp = FindCoordinatorResponse::default();
            if version >= 4 {
                resp.coordinators = f
                    .coordinator_keys
                    .into_iter()
                    .map(|k| {
                        Coordinator::default()
                            .with_key(k)
                            .with_node_id(BrokerId(NODE_ID))
                            .with_host(host.clone())
                            .with_port(port)
                    })
                    .collect();
            } else {
                resp.node_id = BrokerId(NODE_ID);
                resp.host = host;
                resp.port = port;
            }
            ResponseKind::FindCoordinator(resp)
        }
        RequestKind::ListOffsets(l) => {
            let mut resp = ListOffsetsResponse::default();
            for t in l.topics {
                let served = served_topic(state, &t.name.0);
                let mut tr = ListOffsetsTopicResponse::default().with_name(t.name.clone());
                for p in t.partitions {
                    let mut pr = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match &served {
                        Ok(s) => match partition_log(s, p.partition_index) {
                            Some(log) => {
                                // -1 latest, -2 earliest; a timestamp lookup answers the
                                // start too (every record carries the same timestamp).
                                pr.offset = if p.timestamp == -1 { log.log_end } else { 0 };
                                pr.timestamp = -1;
                                if version >= 4 {
                                    pr.leader_epoch = 0;
                                }
                            }
                            None => pr.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                        },
                        Err(code) => pr.error_code = *code,
                    }
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
            ResponseKind::ListOffsets(resp)
        }
        RequestKind::Fetch(f) => return fetch(state, cid, version, f),
        _ => anyhow::bail!("sink: unexpected request api {:?}", req.api_key),
    };
    Ok(vec![Out::Bytes(encode_response(
        req.api_key,
        cid,
        version,
        &body,
    )?)])
}

/// Acknowledge a produce request: assign offsets, remember batch shapes, and in floor
/// mode write the records first.
fn produce(
    state: &SinkState,
    topic_data: Vec<kafka_protocol::messages::produce_request::TopicProduceData>,
) -> Result<ProduceResponse> {
    let mut resp = ProduceResponse::default();
    let mut writes: Vec<(Arc<File>, Vec<Bytes>)> = Vec::new();
    {
        let mut topics = state.topics.lock().expect("sink state");
        let mut shapes_total = state.shapes.lock().expect("sink shapes");
        for td in topic_data {
            let name = td.name.0.to_string();
            let mut st = topics.get_mut(&name);
            if let (Some(st), Some(dir)) = (st.as_deref_mut(), &state.options.write_dir) {
                if st.file.is_none() {
                    let path = dir.join(format!("{}.log", sanitize(&name)));
                    st.file = Some(Arc::new(
                        File::create(&path).with_context(|| format!("create {path:?}"))?,
                    ));
                }
            }
            let mut to_write = Vec::new();
            let mut tr = TopicProduceResponse::default().with_name(td.name.clone());
            for pd in td.partition_data {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(0);
                let records = pd.records.unwrap_or_default();
                match st.as_deref_mut() {
                    Some(s) if pd.index >= 0 && pd.index < s.partitions => {
                        let i = pd.index as usize;
                        pr.base_offset = s.next_offset[i];
                        let mut rest: &[u8] = &records;
                        while let Some((shape, len)) = next_shape(rest) {
                            s.next_offset[i] += i64::from(shape.records);
                            if s.value_size.is_none() {
                                s.value_size = first_value_size(&rest[..len]);
                            }
                            if *shapes_total < MAX_SHAPES {
                                s.shapes[i].push(shape);
                                *shapes_total += 1;
                            } else {
                                s.incomplete = true;
                            }
                            rest = &rest[len..];
                        }
                        if s.file.is_some() && !records.is_empty() {
                            to_write.push(records);
                        }
                    }
                    _ => pr.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                }
                tr.partition_responses.push(pr);
            }
            if let Some(f) = st.and_then(|s| s.file.clone()) {
                if !to_write.is_empty() {
                    writes.push((f, to_write));
                }
            }
            resp.responses.push(tr);
        }
    }
    for (file, chunks) in writes {
        write_all_vectored(&mut &*file, &chunks).context("floor write")?;
    }
    Ok(resp)
}

/// Register `t` as if its batches had been produced to the sink (offsets from 0).
fn preload(state: &SinkState, t: &TopicShapes) {
    let n = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
    let mut st = new_topic(&t.topic, n);
    st.value_size = Some(t.value_size);
    let batch_bytes = 61 + t.value_size as u32 + 8;
    for (i, counts) in t.partitions.iter().enumerate() {
        for &c in counts {
            st.next_offset[i] += i64::from(c);
            st.shapes[i].push(Shape {
                records: c,
                bytes: batch_bytes.saturating_mul(c.max(0) as u32),
            });
        }
    }
    *state.shapes.lock().expect("sink shapes") += t.partitions.iter().map(Vec::len).sum::<usize>();
    state
        .topics
        .lock()
        .expect("sink state")
        .insert(t.topic.clone(), st);
}

/// The shape and length of the first whole batch of `records`, if any.
fn next_shape(records: &[u8]) -> Option<(Shape, usize)> {
    let h = BatchHeader::parse(records).ok()?;
    let len = h.size();
    if len > records.len() {
        return None;
    }
    Some((
        Shape {
            records: h.record_count.max(0),
            bytes: u32::try_from(len).ok()?,
        },
        len,
    ))
}

/// Value size of the first record of an uncompressed batch.
fn first_value_size(batch: &[u8]) -> Option<usize> {
    let reader = sluice_record::records(batch, 16 << 20).ok()?;
    let first = reader.records().next()?.ok()?;
    Some(first.value.map_or(0, <[u8]>::len))
}

/// A file name for a topic (topic names are [A-Za-z0-9._-]; anything else becomes _).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The topic's served log, built on first use; a Kafka error code when the topic is
/// unknown or cannot be served.
fn served_topic(state: &SinkState, name: &str) -> Result<Arc<ServedTopic>, i16> {
    let mut topics = state.topics.lock().expect("sink state");
    let st = topics.get_mut(name).ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
    if let Some(s) = &st.served {
        return Ok(s.clone());
    }
    if st.incomplete {
        return Err(KAFKA_STORAGE_ERROR);
    }
    let total: u64 = st.shapes.iter().flatten().map(|s| u64::from(s.bytes)).sum();
    let mut served_bytes = state.served_bytes.lock().expect("served bytes");
    if *served_bytes + total > MAX_SERVED_BYTES {
        return Err(KAFKA_STORAGE_ERROR);
    }
    let value_size = st.value_size.unwrap_or(0);
    let t0 = std::time::Instant::now();
    let built = build_topic(&st.shapes, value_size, state.options.sendfile).map_err(|e| {
        eprintln!("sink: cannot build {name}: {e:#}");
        KAFKA_STORAGE_ERROR
    })?;
    let bytes: u64 = built.partitions.iter().map(|p| p.bytes.len() as u64).sum();
    *served_bytes += bytes;
    eprintln!(
        "sink: built {name}: {} partitions, {bytes} bytes of batches in {:.0} ms",
        built.partitions.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    let built = Arc::new(built);
    st.served = Some(built.clone());
    Ok(built)
}

/// Build each partition's log: for every remembered batch, a RecordBatch v2 of as many
/// records of `value_size` bytes (no key, no headers, one timestamp), at the offsets
/// the sink acknowledged. Batches of equal record count are built once and copied with
/// their base offset set (the CRC does not cover the base offset).
fn build_topic(shapes: &[Vec<Shape>], value_size: usize, memfd: bool) -> Result<ServedTopic> {
    let value: Vec<u8> = (0..value_size)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let now = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    );
    let mut templates: HashMap<i32, Vec<u8>> = HashMap::new();
    let mut partitions = Vec::with_capacity(shapes.len());
    for part in shapes {
        let mut batches = Vec::with_capacity(part.len());
        let mut buf = BytesMut::new();
        let mut offset = 0i64;
        for shape in part {
            if shape.records == 0 {
                continue;
            }
            let template = match templates.entry(shape.records) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let mut b = BatchBuilder::new(CompressionType::None)
                        .partition_leader_epoch(sluice_record::LeaderEpoch(0));
                    for _ in 0..shape.records {
                        b.append(now, None, Some(&value), &[])?;
                    }
                    v.insert(b.build()?)
                }
            };
            if buf.capacity() == 0 {
                // One allocation per partition: the sizes are known up front.
                let est: usize = part.iter().map(|s| s.bytes as usize).sum();
                buf.reserve(est + template.len());
            }
            let pos = buf.len();
            buf.extend_from_slice(template);
            sluice_record::batch::set_base_offset(&mut buf[pos..], Offset(offset));
            batches.push((offset, pos));
            offset += i64::from(shape.records);
        }
        let bytes = buf.freeze();
        let file = if memfd {
            // SAFETY: memfd_create with a valid NUL-terminated name.
            let fd = unsafe { libc::memfd_create(c"sink-log".as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("memfd_create");
            }
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            let mut f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            f.write_all(&bytes).context("fill memfd")?;
            Some(Arc::new(f))
        } else {
            None
        };
        partitions.push(ServedLog {
            bytes,
            file,
            batches,
            log_end: offset,
        });
    }
    Ok(ServedTopic { partitions })
}

fn partition_log(t: &ServedTopic, index: i32) -> Option<&ServedLog> {
    usize::try_from(index)
        .ok()
        .and_then(|i| t.partitions.get(i))
}

/// Whole batches of `log` from the one holding `offset`, at most `max` bytes unless
/// `min_one` (then at least the first batch). `Err` when `offset` is outside the log.
fn read_log(log: &ServedLog, offset: i64, max: usize, min_one: bool) -> Result<Piece, i16> {
    if offset < 0 || offset > log.log_end {
        return Err(OFFSET_OUT_OF_RANGE);
    }
    if offset == log.log_end {
        return Ok(Piece {
            bytes: Bytes::new(),
            file: None,
        });
    }
    let first = log.batches.partition_point(|&(base, _)| base <= offset) - 1;
    let start = log.batches[first].1;
    let end_of = |i: usize| log.batches.get(i + 1).map_or(log.bytes.len(), |b| b.1);
    let mut end = start;
    let mut i = first;
    while i < log.batches.len() {
        let e = end_of(i);
        if e - start > max && !(min_one && i == first) {
            break;
        }
        end = e;
        i += 1;
    }
    Ok(Piece {
        bytes: log.bytes.slice(start..end),
        file: log.file.clone().map(|f| (f, start as u64)),
    })
}

/// Answer a Fetch from the built logs, records as separate chunks (no copy).
fn fetch(state: &SinkState, cid: i32, version: i16, f: FetchRequest) -> Result<Vec<Out>> {
    let mut limit = (f.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES);
    let mut min_one = true;
    let mut total = 0usize;
    let mut resp = FetchResponse::default().with_session_id(0);
    let mut records: Vec<Option<RecordsRef<Piece>>> = Vec::new();
    for t in f.topics {
        let name = if t.topic.0.is_empty() {
            topic_name_by_id(state, t.topic_id)
        } else {
            Some(t.topic.0.to_string())
        };
        let served = match &name {
            Some(n) => served_topic(state, n),
            None => Err(UNKNOWN_TOPIC_ID),
        };
        // Topic ids from v13 on, names before (each field exists in one range only).
        let tr = FetchableTopicResponse::default();
        let mut tr = if version >= 13 {
            tr.with_topic_id(t.topic_id)
        } else {
            tr.with_topic(t.topic.clone())
        };
        for p in t.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(p.partition)
                .with_aborted_transactions(None)
                .with_log_start_offset(0);
            let mut rec = None;
            match &served {
                Ok(s) => match partition_log(s, p.partition) {
                    Some(log) => {
                        pd.high_watermark = log.log_end;
                        pd.last_stable_offset = log.log_end;
                        let max = limit.min(p.partition_max_bytes.max(0) as usize);
                        match read_log(log, p.fetch_offset, max, min_one) {
                            Ok(b) => {
                                if !b.bytes.is_empty() {
                                    min_one = false;
                                    limit = limit.saturating_sub(b.bytes.len());
                                    total += b.bytes.len();
                                }
                                rec = Some(b);
                            }
                            Err(code) => pd.error_code = code,
                        }
                    }
                    None => pd.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                },
                Err(code) => pd.error_code = *code,
            }
            if pd.error_code != 0 {
                pd.high_watermark = -1;
                pd.last_stable_offset = -1;
                pd.log_start_offset = -1;
            }
            records.push(rec.map(|b| RecordsRef {
                len: b.bytes.len(),
                token: b,
            }));
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }
    if total == 0 && f.max_wait_ms > 0 && i64::from(f.min_bytes) > 0 {
        // Long poll: nothing will arrive (the log is fixed), so wait it out as a
        // broker would, bounded.
        std::thread::sleep(Duration::from_millis(f.max_wait_ms as u64).min(MAX_FETCH_WAIT));
    }
    let layout = encode_fetch_response(cid, version, resp, records)?;
    Ok(layout
        .chunks
        .into_iter()
        .filter_map(|c| match c {
            FetchChunk::Bytes(b) => (!b.is_empty()).then_some(Out::Bytes(b)),
            FetchChunk::Records { token, len } => match token.file {
                Some((file, pos)) => Some(Out::File { file, pos, len }),
                None => (!token.bytes.is_empty()).then_some(Out::Bytes(token.bytes)),
            },
        })
        .collect())
}

fn topic_name_by_id(state: &SinkState, id: uuid::Uuid) -> Option<String> {
    let topics = state.topics.lock().expect("sink state");
    topics
        .iter()
        .find(|(_, t)| uuid_of(t.id) == id)
        .map(|(n, _)| n.clone())
}

fn uuid_of(id: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(id)
}

fn new_topic(name: &str, partitions: i32) -> TopicState {
    // A stable, non-zero id derived from the name (FNV-1a, 128-bit fold).
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in name.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let n = partitions.max(0) as usize;
    TopicState {
        partitions,
        id: h | 1,
        next_offset: vec![0; n],
        shapes: vec![Vec::new(); n],
        value_size: None,
        incomplete: false,
        served: None,
        file: None,
    }
}

fn metadata(
    state: &SinkState,
    addr: SocketAddr,
    names: Option<Vec<String>>,
    auto_create: bool,
) -> MetadataResponse {
    let mut topics = state.topics.lock().expect("sink state");
    let wanted: Vec<String> = match names {
        Some(n) => n,
        None => topics.keys().cloned().collect(),
    };
    let mut resp = MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_static_str("sluice-bench-sink")))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_string(addr.ip().to_string()))
            .with_port(addr.port() as i32)]);
    for name in wanted {
        if !topics.contains_key(&name) && auto_create {
            topics.insert(name.clone(), new_topic(&name, 1));
        }
        let tn = TopicName(StrBytes::from_string(name.clone()));
        let t = match topics.get(&name) {
            Some(st) => MetadataResponseTopic::default()
                .with_name(Some(tn))
                .with_topic_id(uuid_of(st.id))
                .with_partitions(
                    (0..st.partitions)
                        .map(|i| {
                            MetadataResponsePartition::default()
                                .with_partition_index(i)
                                .with_leader_id(BrokerId(NODE_ID))
                                .with_leader_epoch(0)
                                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                                .with_isr_nodes(vec![BrokerId(NODE_ID)])
                        })
                        .collect(),
                ),
            None => MetadataResponseTopic::default()
                .with_name(Some(tn))
                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
        };
        resp.topics.push(t);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        fetch_request::{FetchPartition, FetchTopic},
        produce_request::{PartitionProduceData, TopicProduceData},
        CreateTopicsRequest, ProduceRequest, RequestHeader,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};
    use proptest::prelude::*;
    use sluice_record::Batches;

    fn produced_batch(count: usize, value: &[u8]) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None);
        for i in 0..count {
            b.append(
                Timestamp(1_700_000_000_000 + i as i64),
                None,
                Some(value),
                &[],
            )
            .unwrap();
        }
        b.build().unwrap()
    }

    fn state_with_topic(name: &str, partitions: i32) -> SinkState {
        let state = SinkState::default();
        state
            .topics
            .lock()
            .unwrap()
            .insert(name.into(), new_topic(name, partitions));
        state
    }

    fn produce_to(state: &SinkState, topic: &str, partition: i32, records: Vec<u8>) -> i64 {
        let td = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))]);
        let r = produce(state, vec![td]).unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        p.base_offset
    }

    fn fetch_req(topic: &str, parts: &[(i32, i64)], part_max: i32, max: i32) -> FetchRequest {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                                .with_partition_max_bytes(part_max)
                        })
                        .collect(),
                )])
    }

    /// Concatenate the chunks, check the size prefix and decode the response.
    fn decode_fetch(chunks: &[Out], version: i16, cid: i32) -> FetchResponse {
        use std::os::unix::fs::FileExt;
        let mut frame = BytesMut::new();
        for c in chunks {
            match c {
                Out::Bytes(b) => frame.extend_from_slice(b),
                Out::File { file, pos, len } => {
                    let mut v = vec![0u8; *len];
                    file.read_exact_at(&mut v, *pos).unwrap();
                    frame.extend_from_slice(&v);
                }
            }
        }
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4, "size prefix covers the frame");
        let mut body = frame.split_off(4).freeze();
        let hv = sluice_protocol::response_header_version(ApiKey::Fetch, version);
        let h = kafka_protocol::messages::ResponseHeader::decode(&mut body, hv).unwrap();
        assert_eq!(h.correlation_id, cid);
        FetchResponse::decode(&mut body, version).unwrap()
    }

    /// Every batch validates (CRC-32C, framing); returns (base offset, count, value sizes ok).
    fn batches_of(records: &[u8], value_size: usize) -> Vec<(i64, i32)> {
        let mut out = Vec::new();
        let mut it = Batches::new(records);
        for b in it.by_ref() {
            let (at, h) = b.expect("CRC and framing valid");
            let bytes = &records[at..at + h.size()];
            let reader = sluice_record::records(bytes, 16 << 20).unwrap();
            for (i, r) in reader.records().enumerate() {
                let r = r.unwrap();
                assert_eq!(r.offset.0, h.base_offset.0 + i as i64);
                assert_eq!(r.value.map(<[u8]>::len), Some(value_size));
            }
            out.push((h.base_offset.0, h.record_count));
        }
        assert_eq!(it.position(), records.len(), "no torn batch at the end");
        out
    }

    #[test]
    fn fetch_serves_the_produced_batches_with_offsets_and_crcs() {
        let state = state_with_topic("t", 2);
        let value = vec![7u8; 1024];
        assert_eq!(produce_to(&state, "t", 0, produced_batch(3, &value)), 0);
        let mut two = produced_batch(5, &value);
        two.extend(produced_batch(2, &value));
        assert_eq!(produce_to(&state, "t", 0, two), 3);
        assert_eq!(produce_to(&state, "t", 1, produced_batch(4, &value)), 0);

        for version in [4i16, 11, 12, 13, 16] {
            let mut req = fetch_req("t", &[(0, 0), (1, 0)], 1 << 20, 50 << 20);
            if version >= 13 {
                // Clients name topics by id from v13 on.
                let id = uuid_of(state.topics.lock().unwrap()["t"].id);
                req.topics[0].topic = TopicName::default();
                req.topics[0].topic_id = id;
            }
            let chunks = fetch(&state, 42, version, req).unwrap();
            let r = decode_fetch(&chunks, version, 42);
            let ps = &r.responses[0].partitions;
            assert_eq!(ps[0].high_watermark, 10);
            assert_eq!(ps[1].high_watermark, 4);
            assert_eq!(
                batches_of(ps[0].records.as_ref().unwrap(), 1024),
                vec![(0, 3), (3, 5), (8, 2)]
            );
            assert_eq!(
                batches_of(ps[1].records.as_ref().unwrap(), 1024),
                vec![(0, 4)]
            );
        }
        // From the middle of a batch: the batch holding it, as a broker answers.
        let chunks = fetch(&state, 1, 12, fetch_req("t", &[(0, 4)], 1 << 20, 1 << 20)).unwrap();
        let r = decode_fetch(&chunks, 12, 1);
        assert_eq!(
            batches_of(r.responses[0].partitions[0].records.as_ref().unwrap(), 1024),
            vec![(3, 5), (8, 2)]
        );
        // At the end: no records; beyond it: OFFSET_OUT_OF_RANGE.
        let chunks = fetch(
            &state,
            1,
            12,
            fetch_req("t", &[(0, 10), (1, 5)], 1 << 20, 1 << 20),
        )
        .unwrap();
        let r = decode_fetch(&chunks, 12, 1);
        let ps = &r.responses[0].partitions;
        assert_eq!(ps[0].records.as_deref().map(<[u8]>::len), Some(0));
        assert_eq!(ps[1].error_code, OFFSET_OUT_OF_RANGE);
    }

    #[test]
    fn sendfile_mode_serves_the_same_bytes_from_a_memfd() {
        let state = SinkState {
            options: SinkOptions {
                write_dir: None,
                sendfile: true,
                serve: Vec::new(),
            },
            ..Default::default()
        };
        state
            .topics
            .lock()
            .unwrap()
            .insert("t".into(), new_topic("t", 1));
        let value = vec![5u8; 300];
        produce_to(&state, "t", 0, produced_batch(4, &value));
        produce_to(&state, "t", 0, produced_batch(6, &value));
        let out = fetch(&state, 3, 12, fetch_req("t", &[(0, 4)], 1 << 20, 1 << 20)).unwrap();
        assert!(out
            .iter()
            .any(|o| matches!(o, Out::File { pos, .. } if *pos > 0)));
        let r = decode_fetch(&out, 12, 3);
        assert_eq!(
            batches_of(r.responses[0].partitions[0].records.as_ref().unwrap(), 300),
            vec![(4, 6)]
        );
    }

    #[test]
    fn serves_the_batch_layout_read_from_a_log_dir() {
        let dir = tempfile::tempdir().unwrap();
        let value = vec![9u8; 1024];
        // Partition 0: two segments (3+5 records, then 2); partition 1: one batch,
        // then zeros as in a preallocated segment.
        std::fs::create_dir_all(dir.path().join("t-0")).unwrap();
        std::fs::create_dir_all(dir.path().join("t-1")).unwrap();
        let mut seg0 = produced_batch(3, &value);
        seg0.extend(produced_batch(5, &value));
        std::fs::write(dir.path().join("t-0/00000000000000000000.log"), seg0).unwrap();
        std::fs::write(
            dir.path().join("t-0/00000000000000000008.log"),
            produced_batch(2, &value),
        )
        .unwrap();
        let mut seg1 = produced_batch(4, &value);
        seg1.extend(vec![0u8; 4096]);
        std::fs::write(dir.path().join("t-1/00000000000000000000.log"), seg1).unwrap();
        std::fs::write(dir.path().join("t-1/00000000000000000000.index"), [1u8; 64]).unwrap();
        let shapes = TopicShapes::from_log_dir(dir.path(), "t", 2).unwrap();
        assert_eq!(shapes.value_size, 1024);
        assert_eq!(shapes.partitions, vec![vec![3, 5, 2], vec![4]]);

        let state = SinkState::default();
        preload(&state, &shapes);
        let r = decode_fetch(
            &fetch(
                &state,
                1,
                12,
                fetch_req("t", &[(0, 0), (1, 0)], 1 << 20, 1 << 20),
            )
            .unwrap(),
            12,
            1,
        );
        let ps = &r.responses[0].partitions;
        assert_eq!(
            batches_of(ps[0].records.as_ref().unwrap(), 1024),
            vec![(0, 3), (3, 5), (8, 2)]
        );
        assert_eq!(
            batches_of(ps[1].records.as_ref().unwrap(), 1024),
            vec![(0, 4)]
        );
        assert!(TopicShapes::from_log_dir(dir.path(), "missing", 1).is_err());
    }

    #[test]
    fn fetch_honours_partition_and_response_limits() {
        let state = state_with_topic("t", 2);
        let value = vec![1u8; 100];
        for p in 0..2 {
            for _ in 0..4 {
                produce_to(&state, "t", p, produced_batch(10, &value));
            }
        }
        let one = produced_batch(10, &value).len() as i32;
        // Partition limit of 2.5 batches: two whole batches.
        let r = decode_fetch(
            &fetch(
                &state,
                1,
                12,
                fetch_req("t", &[(0, 0)], one * 5 / 2, 1 << 20),
            )
            .unwrap(),
            12,
            1,
        );
        assert_eq!(
            batches_of(r.responses[0].partitions[0].records.as_ref().unwrap(), 100).len(),
            2
        );
        // A limit below one batch still returns the first batch (KIP-74), and only
        // for the first partition with data; the response limit is then spent.
        let r = decode_fetch(
            &fetch(
                &state,
                1,
                12,
                fetch_req("t", &[(0, 0), (1, 0)], 10, 1 << 20),
            )
            .unwrap(),
            12,
            1,
        );
        let ps = &r.responses[0].partitions;
        assert_eq!(batches_of(ps[0].records.as_ref().unwrap(), 100).len(), 1);
        assert_eq!(ps[1].records.as_deref().map(<[u8]>::len), Some(0));
        let r = decode_fetch(
            &fetch(
                &state,
                1,
                12,
                fetch_req("t", &[(0, 0), (1, 0)], 1 << 20, one * 3),
            )
            .unwrap(),
            12,
            1,
        );
        let ps = &r.responses[0].partitions;
        assert_eq!(batches_of(ps[0].records.as_ref().unwrap(), 100).len(), 3);
        assert_eq!(ps[1].records.as_deref().map(<[u8]>::len), Some(0));
    }

    #[test]
    fn list_offsets_and_unknown_topics() {
        let state = state_with_topic("t", 1);
        produce_to(&state, "t", 0, produced_batch(6, b"abc"));
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let req = kafka_protocol::messages::ListOffsetsRequest::default().with_topics(vec![
            kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(
                    [-2i64, -1]
                        .iter()
                        .map(|&ts| {
                            kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                                .with_timestamp(ts)
                        })
                        .collect(),
                ),
        ]);
        let frame = request_frame(ApiKey::ListOffsets, 7, &req);
        let out = answer(frame, addr, &state).unwrap();
        let Out::Bytes(b) = &out[0] else {
            panic!("bytes")
        };
        let mut body = b.slice(4..);
        let hv = sluice_protocol::response_header_version(ApiKey::ListOffsets, 7);
        kafka_protocol::messages::ResponseHeader::decode(&mut body, hv).unwrap();
        let r = ListOffsetsResponse::decode(&mut body, 7).unwrap();
        let offs: Vec<i64> = r.topics[0].partitions.iter().map(|p| p.offset).collect();
        assert_eq!(offs, vec![0, 6]);
        let chunks = fetch(
            &state,
            1,
            12,
            fetch_req("nope", &[(0, 0)], 1 << 20, 1 << 20),
        )
        .unwrap();
        let r = decode_fetch(&chunks, 12, 1);
        assert_eq!(
            r.responses[0].partitions[0].error_code,
            UNKNOWN_TOPIC_OR_PARTITION
        );
    }

    fn request_frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let hv = sluice_protocol::request_header_version(key, version);
        let h = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(5);
        let mut buf = BytesMut::new();
        h.encode(&mut buf, hv).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn floor_mode_writes_each_requests_records_and_acknowledges() {
        let dir = tempfile::tempdir().unwrap();
        let state = SinkState {
            options: SinkOptions {
                write_dir: Some(dir.path().to_path_buf()),
                sendfile: false,
                serve: Vec::new(),
            },
            ..Default::default()
        };
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let create = CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("w")))
                .with_num_partitions(2)
                .with_replication_factor(1),
        ]);
        answer(
            request_frame(ApiKey::CreateTopics, 5, &create),
            addr,
            &state,
        )
        .unwrap();
        let (a, b) = (produced_batch(3, b"xyz"), produced_batch(4, b"q"));
        let req = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("w")))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(a.clone()))),
                    PartitionProduceData::default()
                        .with_index(1)
                        .with_records(Some(Bytes::from(b.clone()))),
                ]),
        ]);
        let out = answer(request_frame(ApiKey::Produce, 9, &req), addr, &state).unwrap();
        assert_eq!(out.len(), 1, "acknowledged");
        let written = std::fs::read(dir.path().join("w.log")).unwrap();
        assert_eq!(written, [a, b].concat());
    }

    #[test]
    fn shapes_are_bounded_and_unservable_past_the_bound() {
        let state = state_with_topic("t", 1);
        *state.shapes.lock().unwrap() = MAX_SHAPES;
        produce_to(&state, "t", 0, produced_batch(2, b"v"));
        let r = decode_fetch(
            &fetch(&state, 1, 12, fetch_req("t", &[(0, 0)], 1 << 20, 1 << 20)).unwrap(),
            12,
            1,
        );
        assert_eq!(r.responses[0].partitions[0].error_code, KAFKA_STORAGE_ERROR);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever batches were produced, reading the partition back fetch by fetch
        /// from each answer's next offset yields every offset once, in valid batches of
        /// the produced shapes.
        #[test]
        fn reading_back_yields_every_offset_once(
            counts in proptest::collection::vec(1usize..40, 1..12),
            value_size in 0usize..300,
            part_max in 1i32..20_000,
        ) {
            let state = state_with_topic("t", 1);
            let value = vec![3u8; value_size];
            for &c in &counts {
                produce_to(&state, "t", 0, produced_batch(c, &value));
            }
            let total: i64 = counts.iter().sum::<usize>() as i64;
            let mut next = 0i64;
            let mut seen = Vec::new();
            while next < total {
                let r = decode_fetch(
                    &fetch(&state, 1, 12, fetch_req("t", &[(0, next)], part_max, 1 << 20)).unwrap(),
                    12,
                    1,
                );
                let got = batches_of(r.responses[0].partitions[0].records.as_ref().unwrap(), value_size);
                prop_assert!(!got.is_empty());
                for (base, n) in got {
                    prop_assert_eq!(base, next);
                    seen.push(n as usize);
                    next = base + i64::from(n);
                }
            }
            prop_assert_eq!(seen, counts);
        }
    }

    #[test]
    fn vectored_writes_survive_short_writes() {
        struct Dribble(Vec<u8>);
        impl Write for Dribble {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let chunks: Vec<Bytes> = ["ab", "", "cdefg", "h"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        let mut d = Dribble(Vec::new());
        write_all_vectored(&mut d, &chunks).unwrap();
        assert_eq!(d.0, b"abcdefgh");
    }
}
