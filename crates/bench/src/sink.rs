//! The bench-only sink broker: a tiny Kafka-protocol server that answers ApiVersions,
//! Metadata, CreateTopics and Produce (acks) and discards every record. Driving it with
//! the same load as a real broker measures the client's own ceiling (librdkafka plus
//! loopback), which bounds what any broker can show in this harness.
//!
//! Framing and decoding use `sluice-protocol` (bounded frame reader, validation pass
//! before kafka-protocol decodes), so hostile input cannot make it allocate from a
//! wire length.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use kafka_protocol::messages::{
    create_topics_response::CreatableTopicResult,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
    ApiKey, BrokerId, CreateTopicsResponse, MetadataResponse, ProduceResponse, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::{
    api_versions_fallback_frame, api_versions_response, decode_request_with, encode_response,
    FrameReader, ProtocolError,
};

/// What the sink advertises: only the APIs it answers.
pub const SINK_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
];

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;
const NODE_ID: i32 = 1;

#[derive(Debug, Clone)]
struct TopicState {
    partitions: i32,
    id: u128,
    /// Next offset per partition (records acknowledged so far).
    next_offset: Vec<i64>,
}

#[derive(Default)]
struct SinkState {
    topics: Mutex<HashMap<String, TopicState>>,
}

/// A running sink; the listener thread lives as long as the process.
pub struct Sink {
    addr: SocketAddr,
}

impl Sink {
    /// Bind `listen` (port 0 for any) and serve connections on background threads.
    pub fn start(listen: &str) -> Result<Sink> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SinkState::default());
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
                                eprintln!("sink: connection closed: {e}");
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
            if let Some(resp) = answer(frame, addr, state)? {
                conn.write_all(&resp)?;
            }
        }
    }
}

/// The response frame for one request frame; `None` for acks=0 produce.
fn answer(frame: Bytes, addr: SocketAddr, state: &SinkState) -> Result<Option<Bytes>> {
    let req = match decode_request_with(frame, SINK_APIS) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            return Ok(Some(api_versions_fallback_frame(
                SINK_APIS,
                correlation_id,
            )?))
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
            let mut resp = ProduceResponse::default();
            let mut topics = state.topics.lock().expect("sink state");
            for td in p.topic_data {
                let name = td.name.0.to_string();
                let st = topics.get_mut(&name);
                let mut tr = TopicProduceResponse::default().with_name(td.name.clone());
                let mut st = st;
                for pd in td.partition_data {
                    let mut pr = PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(0);
                    match st.as_deref_mut().and_then(|s| {
                        usize::try_from(pd.index)
                            .ok()
                            .and_then(|i| s.next_offset.get_mut(i))
                    }) {
                        Some(next) => {
                            pr.base_offset = *next;
                            *next += pd.records.as_deref().map(record_count).unwrap_or(0);
                        }
                        None => pr.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                    }
                    tr.partition_responses.push(pr);
                }
                resp.responses.push(tr);
            }
            if acks == 0 {
                return Ok(None);
            }
            ResponseKind::Produce(resp)
        }
        _ => anyhow::bail!("sink: unexpected request api {:?}", req.api_key),
    };
    Ok(Some(encode_response(req.api_key, cid, version, &body)?))
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
    TopicState {
        partitions,
        id: h | 1,
        next_offset: vec![0; partitions.max(0) as usize],
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

/// Records in a produce payload: the sum of the record counts of its RecordBatch v2
/// headers (baseOffset 8, batchLength 4, ..., recordCount at byte 57). Stops at the
/// first incomplete batch.
pub fn record_count(mut records: &[u8]) -> i64 {
    let mut n = 0i64;
    while records.len() >= 61 {
        let len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let Ok(len) = usize::try_from(len) else { break };
        let total = 12 + len;
        if total < 61 || total > records.len() {
            break;
        }
        n += i32::from_be_bytes([records[57], records[58], records[59], records[60]]).max(0) as i64;
        records = &records[total..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(count: i32, payload: usize) -> Vec<u8> {
        let mut b = vec![0u8; 61 + payload];
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b
    }

    #[test]
    fn counts_records_of_every_complete_batch() {
        let mut blob = batch(3, 10);
        blob.extend(batch(5, 0));
        assert_eq!(record_count(&blob), 8);
        blob.extend(&batch(7, 100)[..80]); // torn tail is not counted
        assert_eq!(record_count(&blob), 8);
        let mut bad = batch(2, 0);
        bad[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(record_count(&bad), 0);
    }
}
