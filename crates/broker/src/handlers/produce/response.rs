//! The Produce response: each partition's result in request order, with
//! the current leader of a partition this broker no longer leads and that
//! leader's endpoint (Produce v10+, KIP-951).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::MetadataImage;

use super::PartitionResult;
use crate::context::BrokerContext;
use crate::handlers::leadership::endpoint;
use crate::handlers::Response;

/// The response for `req` from `results` (one slot per partition, in
/// request order; `layout` holds each topic's first slot).
pub(super) fn build(
    ctx: &BrokerContext,
    image: &MetadataImage,
    version: i16,
    req: &ProduceRequest,
    layout: &[(usize, usize)],
    mut results: Vec<Option<PartitionResult>>,
) -> Response {
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut leaders: Vec<i32> = Vec::new();
    for &(ti, first_slot) in layout {
        let topic = &req.topic_data[ti];
        let partition_responses = topic
            .partition_data
            .iter()
            .enumerate()
            .map(|(pi, pd)| {
                let r = results[first_slot + pi].take().unwrap_or_else(|| {
                    PartitionResult::error(ResponseError::KafkaStorageError.code(), None)
                });
                partition_response(pd, r, version, &mut leaders)
            })
            .collect();
        let mut t = TopicProduceResponse::default().with_partition_responses(partition_responses);
        if version >= 13 {
            t = t.with_topic_id(topic.topic_id);
        } else {
            t = t.with_name(topic.name.clone());
        }
        responses.push(t);
    }
    let listener = ctx
        .config
        .advertised_listeners
        .first()
        .map_or("", |l| l.name.as_str());
    let node_endpoints = leaders
        .into_iter()
        .filter_map(|id| {
            endpoint(image, id, listener).map(|(host, port)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
            })
        })
        .collect();
    Response::Message(kafka_protocol::messages::ResponseKind::Produce(
        ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(node_endpoints)
            .with_throttle_time_ms(0),
    ))
}

/// One partition's answer; a current leader it names joins `leaders` (for
/// the response's node endpoints).
fn partition_response(
    pd: &PartitionProduceData,
    r: PartitionResult,
    version: i16,
    leaders: &mut Vec<i32>,
) -> PartitionProduceResponse {
    let mut resp = PartitionProduceResponse::default()
        .with_index(pd.index)
        .with_error_code(r.error_code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    if let Some(info) = r.info {
        resp = resp
            .with_base_offset(info.first_offset.value())
            .with_log_append_time_ms(info.log_append_time.millis())
            .with_log_start_offset(info.log_start_offset.value());
    }
    if let Some((leader_id, leader_epoch)) = r.leader.filter(|_| version >= 10) {
        resp = resp.with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader_id))
                .with_leader_epoch(leader_epoch),
        );
        if leader_id >= 0 && !leaders.contains(&leader_id) {
            leaders.push(leader_id);
        }
    }
    if let Some(msg) = r.error_message {
        resp = resp.with_error_message(Some(StrBytes::from_string(msg)));
    }
    if !r.record_errors.is_empty() {
        resp = resp.with_record_errors(
            r.record_errors
                .into_iter()
                .map(|(index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(StrBytes::from_string(message)))
                })
                .collect(),
        );
    }
    resp
}
