//! A raw Metadata v1 request (brokers, controller, partition leaders and
//! ISRs) for fault tests that watch leadership move. Written by hand so the
//! testkit needs no protocol crate, and so it works against any broker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{io, TestkitError};

/// A broker as Metadata lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// One partition's leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub error_code: i16,
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    pub error_code: i16,
    pub name: String,
    pub partitions: Vec<PartitionMetadata>,
}

/// A Metadata v1 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub brokers: Vec<BrokerMetadata>,
    pub controller_id: i32,
    pub topics: Vec<TopicMetadata>,
}

impl ClusterMetadata {
    /// `partition` of `topic`, if listed.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMetadata> {
        self.topics
            .iter()
            .find(|t| t.name == topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)
    }
}

const METADATA: i16 = 3;
const CORRELATION_ID: i32 = 0x5e7a;
/// A response larger than this is not one the tests asked for.
const MAX_RESPONSE: usize = 16 << 20;

/// Asks the broker at `addr` for the metadata of `topics` (all when `None`).
pub fn fetch_metadata(
    addr: SocketAddr,
    topics: Option<&[&str]>,
) -> Result<ClusterMetadata, TestkitError> {
    let what = format!("Metadata from {addr}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(io(&what))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io(&what))?;
    let client = b"sluice-testkit";
    let mut body = Vec::new();
    body.extend_from_slice(&METADATA.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    match topics {
        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(topics) => {
            body.extend_from_slice(&(topics.len() as i32).to_be_bytes());
            for t in topics {
                body.extend_from_slice(&(t.len() as i16).to_be_bytes());
                body.extend_from_slice(t.as_bytes());
            }
        }
    }
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(io(&what))?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).map_err(io(&what))?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|&n| n <= MAX_RESPONSE)
        .ok_or_else(|| TestkitError::Protocol(format!("{what}: response size {size}")))?;
    let mut resp = vec![0u8; size];
    s.read_exact(&mut resp).map_err(io(&what))?;
    decode(&resp).map_err(|e| TestkitError::Protocol(format!("{what}: {e}")))
}

/// Reads big-endian fields, failing on truncation.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err(format!("truncated: need {N} bytes, have {}", self.0.len()));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.take::<2>().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take::<4>().map(i32::from_be_bytes)
    }
    fn count(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        // Each element takes at least 4 bytes: bound the count by what remains.
        match usize::try_from(n) {
            Ok(n) if n <= self.0.len() / 4 => Ok(n),
            Ok(_) => Err(format!("count {n} exceeds the remaining bytes")),
            Err(_) => Ok(0), // null array
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        let Ok(len) = usize::try_from(len) else {
            return Ok(String::new()); // null
        };
        if self.0.len() < len {
            return Err("truncated string".into());
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(String::from_utf8_lossy(head).into_owned())
    }
    fn i32_array(&mut self) -> Result<Vec<i32>, String> {
        (0..self.count()?).map(|_| self.i32()).collect()
    }
}

fn decode(resp: &[u8]) -> Result<ClusterMetadata, String> {
    let mut c = Cursor(resp);
    let correlation = c.i32()?;
    if correlation != CORRELATION_ID {
        return Err(format!("correlation id {correlation}"));
    }
    let mut brokers = Vec::new();
    for _ in 0..c.count()? {
        let node_id = c.i32()?;
        let host = c.string()?;
        let port = c.i32()?;
        let _rack = c.string()?;
        brokers.push(BrokerMetadata {
            node_id,
            host,
            port,
        });
    }
    let controller_id = c.i32()?;
    let mut topics = Vec::new();
    for _ in 0..c.count()? {
        let error_code = c.i16()?;
        let name = c.string()?;
        let _internal = c.take::<1>()?;
        let mut partitions = Vec::new();
        for _ in 0..c.count()? {
            partitions.push(PartitionMetadata {
                error_code: c.i16()?,
                partition: c.i32()?,
                leader: c.i32()?,
                replicas: c.i32_array()?,
                isr: c.i32_array()?,
            });
        }
        topics.push(TopicMetadata {
            error_code,
            name,
            partitions,
        });
    }
    Ok(ClusterMetadata {
        brokers,
        controller_id,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn decodes_a_metadata_v1_response() {
        let mut r = Vec::new();
        r.extend_from_slice(&CORRELATION_ID.to_be_bytes());
        r.extend_from_slice(&1i32.to_be_bytes()); // one broker
        r.extend_from_slice(&2i32.to_be_bytes());
        string(&mut r, "127.0.0.1");
        r.extend_from_slice(&9093i32.to_be_bytes());
        r.extend_from_slice(&(-1i16).to_be_bytes()); // null rack
        r.extend_from_slice(&2i32.to_be_bytes()); // controller
        r.extend_from_slice(&1i32.to_be_bytes()); // one topic
        r.extend_from_slice(&0i16.to_be_bytes());
        string(&mut r, "t");
        r.push(0);
        r.extend_from_slice(&1i32.to_be_bytes()); // one partition
        r.extend_from_slice(&0i16.to_be_bytes());
        r.extend_from_slice(&0i32.to_be_bytes());
        r.extend_from_slice(&2i32.to_be_bytes()); // leader
        for replicas in [[2i32, 3], [2, 3]] {
            r.extend_from_slice(&2i32.to_be_bytes());
            for id in replicas {
                r.extend_from_slice(&id.to_be_bytes());
            }
        }
        let md = decode(&r).unwrap();
        assert_eq!(md.brokers[0].node_id, 2);
        assert_eq!(md.controller_id, 2);
        let p = md.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.as_slice()), (2, &[2, 3][..]));
        // Every truncation is an error, never a panic.
        for cut in 0..r.len() {
            assert!(decode(&r[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut r = CORRELATION_ID.to_be_bytes().to_vec();
        r.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode(&r).unwrap_err().contains("exceeds"));
    }
}
