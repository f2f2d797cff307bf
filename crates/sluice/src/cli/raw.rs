//! A minimal blocking Kafka protocol connection for the few requests
//! librdkafka does not expose (ApiVersions with features, Metadata's
//! controller id, DescribeLogDirs sizes). Versions are negotiated with
//! ApiVersions first, so it works with any broker that speaks them.
//! With `--command-config` it speaks TLS and SASL first
//! ([`super::client_security`]): TLS with rustls, then SaslHandshake v1
//! and SaslAuthenticate (PLAIN, or SCRAM with the server's signature
//! checked) before ApiVersions, in the order Kafka's gate allows.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Responses bigger than this are refused (the buffer still grows only as bytes arrive).
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

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

use super::client_security::{ClientSecurity, SaslLogin};

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct RawConnection {
    stream: Box<dyn Stream>,
    correlation: i32,
    /// api key -> (min, max) the broker supports.
    pub versions: BTreeMap<i16, (i16, i16)>,
    pub api_versions: ApiVersionsResponse,
}

impl RawConnection {
    /// Connects to the first reachable bootstrap broker and runs ApiVersions.
    pub fn connect(
        brokers: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> anyhow::Result<RawConnection> {
        let mut last = None;
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Self::connect_one(addr, timeout, security) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no brokers given")))
    }

    fn connect_one(
        addr: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> anyhow::Result<RawConnection> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(stream),
            Some(config) => {
                let name = server_name(addr)?;
                let tls = rustls::ClientConnection::new(config.clone(), name)
                    .with_context(|| format!("TLS to {addr}"))?;
                Box::new(rustls::StreamOwned::new(tls, stream))
            }
        };
        let mut c = RawConnection {
            stream,
            correlation: 0,
            versions: BTreeMap::new(),
            api_versions: ApiVersionsResponse::default(),
        };
        if let Some(login) = &security.sasl {
            c.sasl_login(login)
                .with_context(|| format!("SASL {login:?} at {addr}"))?;
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
            bail!("ApiVersions failed with error code {}", resp.error_code);
        }
        for k in &resp.api_keys {
            c.versions.insert(k.api_key, (k.min_version, k.max_version));
        }
        c.api_versions = resp;
        Ok(c)
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 tokens until the
    /// mechanism completes.
    fn sasl_login(&mut self, login: &SaslLogin) -> anyhow::Result<()> {
        let mechanism = match login {
            SaslLogin::Plain { .. } => "PLAIN",
            SaslLogin::Scram { mechanism, .. } => mechanism.mechanism_name(),
        };
        let hs = self.send_at(
            1,
            &SaslHandshakeRequest::default().with_mechanism(str_bytes(mechanism)),
        )?;
        if hs.error_code != 0 {
            let enabled: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "{}; the listener enables {enabled:?}",
                error_text(hs.error_code, None)
            );
        }
        match login {
            SaslLogin::Plain { user, password } => {
                self.authenticate(format!("\0{user}\0{password}").into_bytes())?;
            }
            SaslLogin::Scram {
                mechanism,
                user,
                password,
            } => {
                let mut random = [0u8; 24];
                for chunk in random.chunks_mut(8) {
                    chunk.copy_from_slice(&sluice_runtime::random_u64().to_le_bytes());
                }
                let nonce = sluice_auth::sasl::ScramServer::nonce(&random);
                let mut client =
                    sluice_auth::sasl::ScramClient::new(*mechanism, user, password, nonce);
                let server_first = self.authenticate(client.first())?;
                let last = client.final_message(&server_first)?;
                let server_final = self.authenticate(last)?;
                client.verify(&server_final)?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate token; the server's answer token.
    fn authenticate(&mut self, token: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let resp = self.send_at(
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token)),
        )?;
        if resp.error_code != 0 {
            bail!(
                "{}",
                error_text(resp.error_code, resp.error_message.as_ref())
            );
        }
        Ok(resp.auth_bytes.to_vec())
    }

    /// The highest version both sides support, if any.
    pub fn version_for<R: Request>(&self, lowest_we_use: i16) -> Option<i16> {
        let (min, max) = *self.versions.get(&R::KEY)?;
        let v = max.min(R::VERSIONS.max);
        (v >= min && v >= lowest_we_use).then_some(v)
    }

    /// Sends `req` at the best common version.
    pub fn send<R: Request>(&mut self, req: &R, lowest_we_use: i16) -> anyhow::Result<R::Response> {
        let v = self.version_for::<R>(lowest_we_use).ok_or_else(|| {
            anyhow!(
                "the broker does not support API key {} in a version this tool speaks",
                R::KEY
            )
        })?;
        self.send_at(v, req)
    }

    pub fn send_at<R: Request>(&mut self, version: i16, req: &R) -> anyhow::Result<R::Response> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice-cli")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| anyhow!("encoding request header: {e}"))?;
        req.encode(&mut body, version)
            .map_err(|e| anyhow!("encoding request: {e}"))?;
        let len = i32::try_from(body.len())?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).context("sending request")?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("reading response")?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as u64 > MAX_RESPONSE_BYTES {
            bail!("invalid response size {size}");
        }
        let mut buf = Vec::new();
        (&mut self.stream)
            .take(size as u64)
            .read_to_end(&mut buf)
            .context("reading response")?;
        if buf.len() != size as usize {
            bail!("connection closed mid-response");
        }
        let mut bytes = bytes::Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version))
            .map_err(|e| anyhow!("decoding response header: {e}"))?;
        if rh.correlation_id != self.correlation {
            bail!(
                "response correlation id {} != {}",
                rh.correlation_id,
                self.correlation
            );
        }
        let resp = R::Response::decode(&mut bytes, version)
            .map_err(|e| anyhow!("decoding response (API key {} v{version}): {e}", R::KEY))?;
        if bytes.remaining() != 0 {
            tracing::debug!(left = bytes.remaining(), "trailing bytes in response");
        }
        Ok(resp)
    }
}

/// The TLS server name of `host:port` (an IP address or a DNS name).
fn server_name(addr: &str) -> anyhow::Result<rustls_pki_types::ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| anyhow!("{host} is not a TLS server name: {e}"))
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
