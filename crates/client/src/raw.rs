//! [`RawConnection`]: one blocking connection to one broker. Versions are
//! negotiated with ApiVersions first, so it works with any broker that
//! speaks them; every response is bounds-checked before it is decoded.
//! With a [`Security`] it speaks TLS and SASL first: TLS with rustls, then
//! SaslHandshake v1 and SaslAuthenticate (PLAIN, or SCRAM with the
//! server's signature checked) before ApiVersions, in the order Kafka's
//! gate allows.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

use crate::security::{server_name, SaslLogin, Security};
use crate::ClientError;

/// Responses bigger than this are refused (the buffer still grows only as bytes arrive).
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// The client id every request carries.
const CLIENT_ID: &str = "sluice-cli";

/// Kafka's name of an error code (`UnknownTopicOrPartition`), with the
/// broker's message when it gave one.
pub fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let name = match ResponseError::try_from_code(code) {
        None | Some(ResponseError::Unknown(_)) => format!("error {code}"),
        Some(e) => format!("{e:?}"),
    };
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => format!("{name}: {m}"),
        None => name,
    }
}

/// A string field of a request.
pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct RawConnection {
    stream: Box<dyn Stream>,
    correlation: i32,
    /// The address this connection was made to (`host:port`).
    pub addr: String,
    /// api key -> (min, max) the broker supports.
    pub versions: BTreeMap<i16, (i16, i16)>,
    pub api_versions: ApiVersionsResponse,
}

impl RawConnection {
    /// Connects to the first reachable bootstrap broker (`host:port[,...]`)
    /// over PLAINTEXT and runs ApiVersions.
    pub fn connect(brokers: &str, timeout: Duration) -> Result<RawConnection, ClientError> {
        Self::connect_with(brokers, timeout, &Security::default())
    }

    /// [`RawConnection::connect`], secured as `security` says.
    pub fn connect_with(
        brokers: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<RawConnection, ClientError> {
        let mut last = None;
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Self::connect_one(addr, timeout, security) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::NoBrokers))
    }

    fn connect_one(
        addr: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<RawConnection, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let sock = addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "resolves to no address",
                ))
            })?;
        let stream = TcpStream::connect_timeout(&sock, timeout).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(stream),
            Some(config) => {
                let tls_err = |message: String| ClientError::Tls {
                    addr: addr.to_string(),
                    message,
                };
                let name = server_name(addr)
                    .ok_or_else(|| tls_err("the host is not a TLS server name".into()))?;
                let tls = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| tls_err(e.to_string()))?;
                Box::new(rustls::StreamOwned::new(tls, stream))
            }
        };
        let mut c = RawConnection {
            stream,
            correlation: 0,
            addr: addr.to_string(),
            versions: BTreeMap::new(),
            api_versions: ApiVersionsResponse::default(),
        };
        if let Some(login) = &security.sasl {
            c.sasl_login(login).map_err(|message| ClientError::Sasl {
                login: format!("{login:?}"),
                addr: addr.to_string(),
                message,
            })?;
        }
        // v3+ is flexible and carries features (v4 all of them: before it a
        // range starting at 0 is left out, KIP-1022); a broker that does not
        // know the version answers error 35 (UNSUPPORTED_VERSION) in v0
        // format, which does not decode as v3+.
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp = match c.send_at(4, &req) {
            Ok(r) if r.error_code == 0 => r,
            _ => match c.send_at(3, &req) {
                Ok(r) if r.error_code == 0 => r,
                _ => c.send_at(0, &ApiVersionsRequest::default())?,
            },
        };
        if resp.error_code != 0 {
            return Err(ClientError::ApiVersions(resp.error_code));
        }
        for k in &resp.api_keys {
            c.versions.insert(k.api_key, (k.min_version, k.max_version));
        }
        c.api_versions = resp;
        Ok(c)
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 tokens until the
    /// mechanism completes; `Err` says why it failed.
    fn sasl_login(&mut self, login: &SaslLogin) -> Result<(), String> {
        let hs = self
            .send_at(
                1,
                &SaslHandshakeRequest::default().with_mechanism(str_bytes(login.mechanism())),
            )
            .map_err(|e| e.to_string())?;
        if hs.error_code != 0 {
            let enabled: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(format!(
                "{}; the listener enables {enabled:?}",
                error_text(hs.error_code, None)
            ));
        }
        let mut exchange = login.exchange(&sluice_runtime::random_bytes());
        let mut token = exchange.first();
        loop {
            let answer = self.authenticate(token)?;
            match exchange.next(&answer).map_err(|e| e.to_string())? {
                Some(next) => token = next,
                None => break,
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate token; the server's answer token.
    fn authenticate(&mut self, token: Vec<u8>) -> Result<Vec<u8>, String> {
        let resp = self
            .send_at(
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token)),
            )
            .map_err(|e| e.to_string())?;
        if resp.error_code != 0 {
            return Err(error_text(resp.error_code, resp.error_message.as_ref()));
        }
        Ok(resp.auth_bytes.to_vec())
    }

    /// The highest version both sides support, if any.
    pub fn version_for<R: Request>(&self, lowest_we_use: i16) -> Option<i16> {
        self.version_between::<R>(lowest_we_use, R::VERSIONS.max)
    }

    /// The highest version both sides support within `lowest..=highest`
    /// (a caller caps `highest` where a later version changes a field it
    /// relies on, such as topic ids replacing names).
    pub fn version_between<R: Request>(&self, lowest: i16, highest: i16) -> Option<i16> {
        let (min, max) = *self.versions.get(&R::KEY)?;
        let v = max.min(R::VERSIONS.max).min(highest);
        (v >= min && v >= lowest).then_some(v)
    }

    /// Sends `req` at the best common version.
    pub fn send<R: Request>(
        &mut self,
        req: &R,
        lowest_we_use: i16,
    ) -> Result<R::Response, ClientError> {
        self.send_between(req, lowest_we_use, R::VERSIONS.max)
            .map(|(_, r)| r)
    }

    /// Sends `req` at the best common version within `lowest..=highest`;
    /// returns the version used with the response.
    pub fn send_between<R: Request>(
        &mut self,
        req: &R,
        lowest: i16,
        highest: i16,
    ) -> Result<(i16, R::Response), ClientError> {
        let v = self
            .version_between::<R>(lowest, highest)
            .ok_or(ClientError::UnsupportedApi { api_key: R::KEY })?;
        Ok((v, self.send_at(v, req)?))
    }

    pub fn send_at<R: Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> Result<R::Response, ClientError> {
        self.correlation = self.correlation.wrapping_add(1);
        let encode_err = |message: String| ClientError::Encode {
            api_key: R::KEY,
            message,
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| encode_err(format!("header: {e}")))?;
        req.encode(&mut body, version)
            .map_err(|e| encode_err(e.to_string()))?;
        let len = i32::try_from(body.len())
            .map_err(|_| encode_err("request larger than 2 GiB".into()))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        let io = |what| move |source| ClientError::Io { what, source };
        self.stream
            .write_all(&frame)
            .map_err(io("sending request"))?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(io("reading response"))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as u64 > MAX_RESPONSE_BYTES {
            return Err(ClientError::ResponseSize(i64::from(size)));
        }
        let mut buf = Vec::new();
        (&mut self.stream)
            .take(size as u64)
            .read_to_end(&mut buf)
            .map_err(io("reading response"))?;
        if buf.len() != size as usize {
            return Err(ClientError::Io {
                what: "reading response",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        let api_key = ApiKey::try_from(R::KEY)
            .map_err(|()| ClientError::UnsupportedApi { api_key: R::KEY })?;
        sluice_protocol::decode_response::<R::Response>(
            api_key,
            version,
            self.correlation,
            bytes::Bytes::from(buf),
        )
        .map_err(|source| ClientError::Decode {
            api_key: R::KEY,
            version,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_kafkas_names() {
        assert_eq!(
            error_text(80, Some(&StrBytes::from_static_str("gone"))),
            "PreferredLeaderNotAvailable: gone"
        );
        assert_eq!(error_text(3, None), "UnknownTopicOrPartition");
        assert_eq!(
            error_text(3, Some(&StrBytes::from_static_str(""))),
            "UnknownTopicOrPartition"
        );
        assert_eq!(error_text(-2, None), "error -2");
    }
}
