//! The Kafka-querying layer: [`Session`] holds the connections one page
//! needs (the bootstrap broker, then partition leaders and group
//! coordinators by node id); the submodules turn Kafka requests into the
//! plain data of [`model`]. Nothing here knows about HTTP or HTML.

pub mod acl_admin;
pub mod admin;
pub mod assignment;
pub mod broker_metrics;
pub mod cluster;
pub mod consumption;
pub mod filter;
pub mod groups;
pub mod messages;
pub mod model;
pub mod offsets;
pub mod prometheus;
pub mod quota_admin;
pub mod scram_admin;
pub mod security;
pub mod throughput;
pub mod topics;
pub mod writes;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::Request;
use sluice_client::{error_text, str_bytes, RawConnection, Security};

use crate::ConsoleError;

/// Metadata versions used: v1 (null topics = all) up to v12 (v13 only adds
/// a top-level error code this layer has no use for).
const METADATA_VERSIONS: (i16, i16) = (1, 12);

/// The connections of one page's worth of requests.
pub struct Session {
    bootstrap_addrs: String,
    timeout: Duration,
    /// TLS and SASL of every connection (the bootstrap's and the nodes').
    security: Security,
    bootstrap: RawConnection,
    /// node id -> `host:port`, from the last Metadata response.
    addrs: BTreeMap<i32, String>,
    conns: BTreeMap<i32, RawConnection>,
}

impl Session {
    /// Connects to the first bootstrap broker that answers, secured as
    /// `security` says.
    pub fn connect(
        brokers: &str,
        timeout: Duration,
        security: Security,
    ) -> Result<Session, ConsoleError> {
        let bootstrap =
            RawConnection::connect_with(brokers, timeout, &security).map_err(|source| {
                ConsoleError::Unreachable {
                    brokers: brokers.to_string(),
                    source,
                }
            })?;
        Ok(Session {
            bootstrap_addrs: brokers.to_string(),
            timeout,
            security,
            bootstrap,
            addrs: BTreeMap::new(),
            conns: BTreeMap::new(),
        })
    }

    /// The timeout as a request's `timeout_ms`.
    pub fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// The bootstrap list this session was made from.
    pub fn bootstrap_addrs(&self) -> &str {
        &self.bootstrap_addrs
    }

    /// The connection to the bootstrap broker.
    pub fn bootstrap(&mut self) -> &mut RawConnection {
        &mut self.bootstrap
    }

    /// Sends `req` to the bootstrap broker at the best version in `versions`.
    pub fn send<R: Request>(
        &mut self,
        req: &R,
        versions: (i16, i16),
    ) -> Result<(i16, R::Response), ConsoleError> {
        let addr = self.bootstrap.addr.clone();
        self.bootstrap
            .send_between(req, versions.0, versions.1)
            .map_err(|source| ConsoleError::Client {
                broker: addr,
                source,
            })
    }

    /// Sends `req` to node `id` (a leader or a coordinator).
    pub fn send_to<R: Request>(
        &mut self,
        id: i32,
        req: &R,
        versions: (i16, i16),
    ) -> Result<(i16, R::Response), ConsoleError> {
        let conn = self.node(id)?;
        let addr = conn.addr.clone();
        conn.send_between(req, versions.0, versions.1)
            .map_err(|source| ConsoleError::Client {
                broker: addr,
                source,
            })
    }

    /// The connection to node `id`, opened on first use. Its address must
    /// have been learnt from a Metadata response.
    fn node(&mut self, id: i32) -> Result<&mut RawConnection, ConsoleError> {
        if !self.conns.contains_key(&id) {
            let addr = self
                .addrs
                .get(&id)
                .cloned()
                .ok_or_else(|| ConsoleError::Kafka {
                    what: format!("broker {id}"),
                    error: "not in the cluster metadata".into(),
                })?;
            let conn = RawConnection::connect_with(&addr, self.timeout, &self.security).map_err(
                |source| ConsoleError::Client {
                    broker: format!("{id} ({addr})"),
                    source,
                },
            )?;
            self.conns.insert(id, conn);
        }
        Ok(self.conns.get_mut(&id).expect("inserted above"))
    }

    /// The node ids of the brokers in the last Metadata response.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.addrs.keys().copied().collect()
    }

    /// Cluster metadata: every topic (`None`) or the named ones. Learns the
    /// brokers' addresses for [`Session::send_to`].
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, ConsoleError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(str_bytes(t).into())))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let (_, resp) = self.send(&req, METADATA_VERSIONS)?;
        if resp.error_code != 0 {
            return Err(kafka_error("Metadata", resp.error_code, None));
        }
        self.addrs = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        Ok(resp)
    }
}

/// A Kafka error code as a [`ConsoleError`].
pub(crate) fn kafka_error(
    what: impl Into<String>,
    code: i16,
    message: Option<&kafka_protocol::protocol::StrBytes>,
) -> ConsoleError {
    ConsoleError::Kafka {
        what: what.into(),
        error: error_text(code, message),
    }
}
