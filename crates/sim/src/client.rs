//! The simulated Kafka client: what an idempotent producer and a reader do
//! on the wire (Metadata, CreateTopics, InitProducerId, Produce with
//! `acks=all`, Fetch), over the broker's own client-side connection code
//! (`LeaderConnection`: ApiVersions first, bounded and spec-checked
//! answers) on the simulated network.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::replica_fetcher::conn::LeaderConnection;
use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, ProducerId, Timestamp};

use crate::net::SimNet;
use crate::node::{host, BROKER_PORT};

/// How long one request may take before the client gives up on it (the
/// connection is then dropped, as a client's `request.timeout.ms`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_FRAME: usize = 8 << 20;

/// Why a call gave no answer.
#[derive(Debug)]
pub struct CallFailed(pub String);

/// A connection to one node's client listener.
pub struct Client {
    pub node: i32,
    conn: LeaderConnection,
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

impl Client {
    pub async fn connect(node: i32, client_id: &str) -> Result<Client, CallFailed> {
        let address = format!("{}:{BROKER_PORT}", host(node));
        let conn =
            LeaderConnection::open(&SimNet, &address, client_id.to_string(), REQUEST_TIMEOUT)
                .await
                .map_err(|e| CallFailed(e.to_string()))?;
        Ok(Client { node, conn })
    }

    pub(crate) async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, CallFailed>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        self.conn
            .call(key, version, req, MAX_FRAME, REQUEST_TIMEOUT)
            .await
            .map_err(|e| CallFailed(e.to_string()))
    }

    /// The leader of each partition of `topic` (index = partition), as
    /// this node's metadata says (`None`: no leader, or unknown).
    pub async fn leaders(&mut self, topic: &str) -> Result<Vec<Option<i32>>, CallFailed> {
        Ok(self
            .partitions(topic)
            .await?
            .into_iter()
            .map(|p| p.map(|(leader, _)| leader))
            .collect())
    }

    /// Whether `partition` of `topic` is led by `leader` with every
    /// replica in its ISR, as this node's metadata says.
    pub async fn fully_replicated(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
    ) -> Result<bool, CallFailed> {
        let partitions = self.partitions(topic).await?;
        Ok(partitions.get(partition as usize).copied().flatten() == Some((leader, true)))
    }

    /// Each partition of `topic` (index = partition): its leader and
    /// whether every replica is in its ISR (`None`: no leader, or unknown).
    async fn partitions(&mut self, topic: &str) -> Result<Vec<Option<(i32, bool)>>, CallFailed> {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
        ]));
        let resp: MetadataResponse = self.call(ApiKey::Metadata, 12, &req).await?;
        let Some(t) = resp.topics.first().filter(|t| t.error_code == 0) else {
            return Ok(Vec::new());
        };
        let mut out = vec![None; t.partitions.len()];
        for p in &t.partitions {
            let i = p.partition_index as usize;
            if i < out.len() && p.error_code == 0 && p.leader_id.0 >= 0 {
                let full = p.replica_nodes.iter().all(|r| p.isr_nodes.contains(r));
                out[i] = Some((p.leader_id.0, full));
            }
        }
        Ok(out)
    }

    /// AlterPartitionReassignments of one partition of `topic` to
    /// `replicas`; the first error code, top level then partition.
    pub async fn reassign(
        &mut self,
        topic: &str,
        partition: i32,
        replicas: &[i32],
    ) -> Result<i16, CallFailed> {
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![ReassignableTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ReassignablePartition::default()
                    .with_partition_index(partition)
                    .with_replicas(Some(
                        replicas.iter().map(|&b| BrokerId(b)).collect(),
                    ))])]);
        let resp: AlterPartitionReassignmentsResponse = self
            .call(ApiKey::AlterPartitionReassignments, 0, &req)
            .await?;
        let partition_code = resp
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(-1, |p| p.error_code);
        Ok(if resp.error_code != 0 {
            resp.error_code
        } else {
            partition_code
        })
    }

    /// CreateTopics; the error code (36: it already exists).
    pub async fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication: i16,
    ) -> Result<i16, CallFailed> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication)]);
        let resp: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 7, &req).await?;
        Ok(resp.topics.first().map_or(-1, |t| t.error_code))
    }

    /// InitProducerId without a transactional id: (id, epoch) or the error.
    pub async fn init_producer_id(&mut self) -> Result<Result<(i64, i16), i16>, CallFailed> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1);
        let resp: InitProducerIdResponse = self.call(ApiKey::InitProducerId, 4, &req).await?;
        Ok(if resp.error_code == 0 {
            Ok((resp.producer_id.0, resp.producer_epoch))
        } else {
            Err(resp.error_code)
        })
    }

    /// One idempotent batch of `value` with `acks=all`: (error code, base
    /// offset).
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        producer: (i64, i16),
        sequence: i32,
        value: u64,
        now_ms: i64,
    ) -> Result<(i16, i64), CallFailed> {
        let mut b = BatchBuilder::new(CompressionType::None).producer(
            ProducerId(producer.0),
            ProducerEpoch(producer.1),
            sequence,
        );
        let v = value.to_string();
        b.append(Timestamp(now_ms), None, Some(v.as_bytes()), &[])
            .map_err(|e| CallFailed(e.to_string()))?;
        let records = b.build().map_err(|e| CallFailed(e.to_string()))?;
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(2_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(records)))])]);
        let resp: ProduceResponse = self.call(ApiKey::Produce, 9, &req).await?;
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| CallFailed("an empty produce answer".into()))?;
        Ok((p.error_code, p.base_offset))
    }

    /// Fetch from `offset` (`read_uncommitted`, as a replica would not):
    /// (error code, high watermark, (offset, value) of each record).
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(i16, i64, Vec<(i64, u64)>), CallFailed> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp: FetchResponse = self.call(ApiKey::Fetch, 12, &req).await?;
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| CallFailed("an empty fetch answer".into()))?;
        let records = match &p.records {
            Some(r) => values(r).map_err(CallFailed)?,
            None => Vec::new(),
        };
        Ok((p.error_code, p.high_watermark, records))
    }
}

/// The (offset, value) of every data record in `bytes` (whole batches end
/// to end; a trailing partial batch is ignored, as clients do).
pub fn values(bytes: &[u8]) -> Result<Vec<(i64, u64)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Ok(size) = sluice_record::BatchHeader::peek_size(&bytes[pos..]) else {
            break;
        };
        if pos + size > bytes.len() {
            break;
        }
        let batch = &bytes[pos..pos + size];
        let reader = sluice_record::records(batch, 64 << 20).map_err(|e| e.to_string())?;
        if !reader.header().is_control() {
            for r in reader.records() {
                let r = r.map_err(|e| e.to_string())?;
                let v = r
                    .value
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                    .ok_or_else(|| format!("a record at {} without a number", r.offset.value()))?;
                out.push((r.offset.value(), v));
            }
        }
        pos += size;
    }
    Ok(out)
}
