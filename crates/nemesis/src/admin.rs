//! The one admin request the faults need that librdkafka does not offer:
//! AlterPartitionReassignments (KIP-455), sent to a broker, which hands it
//! to the active controller, on Kafka and Sluice alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// A response larger than this is not one asked for.
const MAX_RESPONSE: usize = 1 << 20;
const VERSION: i16 = 0;

/// Asks the broker at `addr` to move each `(partition, replicas)` of
/// `topic`. `Err` names what failed: the connection, or each partition the
/// controller refused with its error code and message.
pub fn reassign(addr: SocketAddr, topic: &str, plan: &[(i32, Vec<i32>)]) -> Result<(), String> {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                plan.iter()
                    .map(|(p, replicas)| {
                        ReassignablePartition::default()
                            .with_partition_index(*p)
                            .with_replicas(Some(replicas.iter().map(|&b| BrokerId(b)).collect()))
                    })
                    .collect(),
            )]);
    let resp =
        call(addr, &req).map_err(|e| format!("AlterPartitionReassignments to {addr}: {e}"))?;
    if resp.error_code != 0 {
        return Err(format!(
            "AlterPartitionReassignments: error {} {:?}",
            resp.error_code, resp.error_message
        ));
    }
    let refused: Vec<String> = resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code != 0)
        .map(|p| {
            format!(
                "{topic}-{}: error {} {:?}",
                p.partition_index, p.error_code, p.error_message
            )
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}

fn call<R: Request>(addr: SocketAddr, req: &R) -> Result<R::Response, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(VERSION)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("sluice-nemesis")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(VERSION))
        .map_err(|e| e.to_string())?;
    req.encode(&mut body, VERSION).map_err(|e| e.to_string())?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(|e| e.to_string())?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).map_err(|e| e.to_string())?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|&n| n <= MAX_RESPONSE)
        .ok_or("a response of an impossible size")?;
    let mut buf = vec![0u8; size];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let mut bytes = bytes::Bytes::from(buf);
    let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(VERSION))
        .map_err(|e| e.to_string())?;
    if rh.correlation_id != 1 {
        return Err(format!("correlation id {}", rh.correlation_id));
    }
    R::Response::decode(&mut bytes, VERSION).map_err(|e| e.to_string())
}
