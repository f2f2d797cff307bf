//! A minimal async Kafka request client for the cluster scenarios: one
//! connection, one request at a time, any request type of the
//! `kafka-protocol` crate. Responses are size-checked before decoding.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response larger than this is not one the scenarios asked for.
const MAX_RESPONSE: usize = 64 << 20;

pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    next_correlation_id: i32,
    timeout: Duration,
}

impl Conn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            addr,
            next_correlation_id: 1,
            timeout,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` at `version` and reads its response (within the timeout).
    pub async fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let cid = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(cid)
            .with_client_id(Some(StrBytes::from_static_str("sluice-bench")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        let addr = self.addr;
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&frame).await?;
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let len = i32::from_be_bytes(len);
            if len < 0 || len as usize > MAX_RESPONSE {
                bail!("response of {len} bytes from {addr}");
            }
            let mut buf = vec![0u8; len as usize];
            self.stream.read_exact(&mut buf).await?;
            let mut buf = Bytes::from(buf);
            let rh = ResponseHeader::decode(
                &mut buf,
                <R::Response as HeaderVersion>::header_version(version),
            )?;
            if rh.correlation_id != cid {
                bail!(
                    "correlation id {} from {addr}, expected {cid}",
                    rh.correlation_id
                );
            }
            <R::Response as Decodable>::decode(&mut buf, version)
        })
        .await
        .with_context(|| format!("request {} to {addr}: timed out", R::KEY))?
    }
}
