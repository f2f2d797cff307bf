//! Bytes produced per topic, as a Sluice broker counts them itself
//! (`sluice_topic_bytes_in_total` at its `/metrics` endpoint). The console
//! learns where each broker serves its metrics from the broker's
//! `sluice.metrics.listener` config (DescribeConfigs; Apache Kafka has no
//! such key, so the throughput page estimates bytes there instead), reads
//! the page over plain HTTP with a bounded size and time, and uses it only
//! when `sluice_broker_info` names the same cluster and node, so a port
//! reused by another process is never charted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use sluice_client::str_bytes;

use super::prometheus;
use super::Session;
use crate::ConsoleError;

/// The broker config naming the metrics endpoint (Sluice only).
pub const METRICS_LISTENER: &str = "sluice.metrics.listener";
/// The largest metrics page read (a 10,000-partition broker's is ~3 MiB).
pub const MAX_METRICS_BYTES: usize = 32 << 20;
/// How long one scrape may take, connecting included.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
const BYTES_IN: &str = "sluice_topic_bytes_in_total";
const INFO: &str = "sluice_broker_info";
/// DescribeConfigs' resource type of a broker.
const BROKER_RESOURCE: i8 = 4;
const DESCRIBE_CONFIGS_VERSIONS: (i16, i16) = (1, 4);

/// Where a broker serves its metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The broker has no `sluice.metrics.listener`: not a Sluice broker.
    NotSluice,
    /// It has one, but it cannot be reached from its value (empty:
    /// disabled; port 0: an ephemeral port only the broker knows).
    Unknown(String),
    /// `host:port` to connect to.
    At(String),
}

/// Where broker `id` (advertised on `host`) serves its metrics, from its
/// `sluice.metrics.listener`.
pub fn endpoint(session: &mut Session, id: i32, host: &str) -> Result<Endpoint, ConsoleError> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER_RESOURCE)
            .with_resource_name(str_bytes(&id.to_string()))
            .with_configuration_keys(Some(vec![str_bytes(METRICS_LISTENER)]))]);
    let (_, resp) = session.send_to(id, &req, DESCRIBE_CONFIGS_VERSIONS)?;
    let value = resp
        .results
        .iter()
        .filter(|r| r.error_code == 0)
        .flat_map(|r| r.configs.iter())
        .find(|c| c.name.as_str() == METRICS_LISTENER)
        .map(|c| c.value.as_ref().map(|v| v.to_string()).unwrap_or_default());
    Ok(match value {
        None => Endpoint::NotSluice,
        Some(v) => match listener_address(&v, host) {
            Some(a) => Endpoint::At(a),
            None => Endpoint::Unknown(v),
        },
    })
}

/// `host:port` to connect to for a `sluice.metrics.listener` value (pure):
/// a bare port is on 127.0.0.1, a wildcard host is the broker's own host,
/// port 0 (ephemeral, not known from here) and empty values give `None`.
pub fn listener_address(value: &str, broker_host: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => ("127.0.0.1", value),
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host {
        "" | "0.0.0.0" | "[::]" | "::" => broker_host,
        h => h,
    };
    if host.contains(':') && !host.starts_with('[') {
        Some(format!("[{host}]:{port}"))
    } else {
        Some(format!("{host}:{port}"))
    }
}

/// Bytes produced per topic on broker `node` of cluster `cluster_id`, read
/// from its metrics at `addr`; an error when it cannot be read or another
/// broker answers there.
pub fn bytes_in(
    addr: &str,
    cluster_id: &str,
    node: i32,
) -> Result<BTreeMap<String, u64>, ConsoleError> {
    let fail = |error: String| ConsoleError::Metrics {
        broker: format!("{node} ({addr})"),
        error,
    };
    let text = http_get(addr, "/metrics", MAX_METRICS_BYTES).map_err(fail)?;
    let lines = prometheus::parse(&text, &[INFO, BYTES_IN]);
    let info = lines.iter().find(|l| l.name == INFO);
    let who = info.map(|l| {
        (
            l.label("cluster_id").unwrap_or(""),
            l.label("node_id").unwrap_or(""),
        )
    });
    if who != Some((cluster_id, node.to_string().as_str())) {
        return Err(fail(format!(
            "the metrics there are not this broker's ({})",
            who.map_or("no sluice_broker_info".into(), |(c, n)| format!(
                "cluster {c:?}, node {n:?}"
            ))
        )));
    }
    Ok(lines
        .iter()
        .filter(|l| l.name == BYTES_IN && l.value.is_finite() && l.value >= 0.0)
        .filter_map(|l| Some((l.label("topic")?.to_string(), l.value as u64)))
        .collect())
}

/// The body of `GET path` at `addr`, read within [`SCRAPE_TIMEOUT`] and at
/// most `limit` bytes; an error unless the status is 200.
fn http_get(addr: &str, path: &str, limit: usize) -> Result<String, String> {
    let deadline = Instant::now() + SCRAPE_TIMEOUT;
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&sock, SCRAPE_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no full answer within {SCRAPE_TIMEOUT:?}"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
    }
    split_response(&buf).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The body of an HTTP response, or why it is not a 200 (pure).
fn split_response(buf: &[u8]) -> Result<&[u8], String> {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP response head")?;
    let status = buf[..head_end].split(|b| *b == b'\n').next().unwrap_or(&[]);
    let status = String::from_utf8_lossy(status);
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(&buf[head_end + 4..]),
        _ => Err(format!("answered {:?}", status.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_values_become_addresses() {
        let a = |v: &str| listener_address(v, "broker-2.example");
        assert_eq!(a("127.0.0.1:9644").as_deref(), Some("127.0.0.1:9644"));
        assert_eq!(a("9644").as_deref(), Some("127.0.0.1:9644"));
        assert_eq!(a("0.0.0.0:9644").as_deref(), Some("broker-2.example:9644"));
        assert_eq!(a(":9644").as_deref(), Some("broker-2.example:9644"));
        assert_eq!(a("[::1]:9644").as_deref(), Some("[::1]:9644"));
        assert_eq!(a("127.0.0.1:0"), None);
        assert_eq!(a("0"), None);
        assert_eq!(a(""), None);
        assert_eq!(a("host:notaport"), None);
    }

    #[test]
    fn only_a_200_has_a_body() {
        assert_eq!(
            split_response(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nx 1\n"),
            Ok(&b"x 1\n"[..])
        );
        assert!(split_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\nrecovering").is_err());
        assert!(split_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
