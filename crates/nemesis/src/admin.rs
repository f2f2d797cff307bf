//! Raw Kafka requests where librdkafka has no API ([`call`]): the
//! AlterPartitionReassignments (KIP-455) the `reassign` fault sends to a
//! broker, which hands it to the active controller, on Kafka and Sluice
//! alike; and the single Produce and Fetch requests of the targeted tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// A response larger than this is not one asked for.
const MAX_RESPONSE: usize = 64 << 20;

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
    let resp = call(addr, 0, &req, Duration::from_secs(15))
        .map_err(|e| format!("AlterPartitionReassignments to {addr}: {e}"))?;
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

/// Why [`call`] has no answer.
#[derive(Debug)]
pub enum CallError {
    /// No connection, or no answer within the timeout (a node cut off or
    /// stopped): the request may or may not have been handled.
    Io(std::io::Error),
    /// An answer that is not a well-formed response to the request.
    Protocol(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Protocol(m) => write!(f, "malformed answer: {m}"),
        }
    }
}

/// One request of API version `version` on a fresh connection to `addr`,
/// its answer waited for at most `timeout`.
pub fn call<R: Request>(
    addr: SocketAddr,
    version: i16,
    req: &R,
    timeout: Duration,
) -> Result<R::Response, CallError> {
    const CORRELATION_ID: i32 = 1;
    let protocol = |e: &dyn std::fmt::Display| CallError::Protocol(e.to_string());
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(CallError::Io)?;
    s.set_read_timeout(Some(timeout)).map_err(CallError::Io)?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("sluice-nemesis")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .map_err(|e| protocol(&e))?;
    req.encode(&mut body, version).map_err(|e| protocol(&e))?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(CallError::Io)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).map_err(CallError::Io)?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|&n| n <= MAX_RESPONSE)
        .ok_or_else(|| protocol(&"a response of an impossible size"))?;
    let mut buf = vec![0u8; size];
    s.read_exact(&mut buf).map_err(CallError::Io)?;
    let mut bytes = bytes::Bytes::from(buf);
    let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version))
        .map_err(|e| protocol(&e))?;
    if rh.correlation_id != CORRELATION_ID {
        return Err(protocol(&format!("correlation id {}", rh.correlation_id)));
    }
    let resp = R::Response::decode(&mut bytes, version).map_err(|e| protocol(&e))?;
    if bytes.has_remaining() {
        return Err(protocol(&format!("{} trailing bytes", bytes.remaining())));
    }
    Ok(resp)
}
