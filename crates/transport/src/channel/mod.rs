//! [`ControllerChannel`]: a broker's channel to the active controller
//! (Kafka's `NodeToControllerChannelManager`).
//!
//! - One connection at a time, to one voter of `controller.quorum.voters`.
//!   On connect it asks ApiVersions and sends every request at the highest
//!   version both sides know.
//! - Requests are pipelined on that connection, at most
//!   [`ChannelConfig::max_in_flight`] at once; answers are matched by
//!   correlation id. Each attempt has `request.timeout.ms`.
//! - On NOT_CONTROLLER, a broken or timed-out connection, or a voter that
//!   cannot be reached, the connection is dropped and the next voter (or the
//!   one [`ControllerChannel::set_active_controller`] names) is tried after
//!   a backoff (`controller.quorum.retry.backoff.ms`, doubled after each
//!   round over the voters up to [`ChannelConfig::retry_backoff_max_ms`]),
//!   until the request's deadline. Requests that fail on the same voter
//!   together move the channel on once, not once each.
//! - Response frames are bounded by [`ChannelConfig::max_response_bytes`];
//!   a frame with a correlation id nobody waits for closes the connection.

mod conn;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_protocol::kafka_protocol;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::codes::NOT_CONTROLLER;
use crate::error::TransportError;
use crate::net::{Connector, TcpConnector};
use crate::voters::QuorumVoters;
use conn::Conn;

/// Settings of the channel (Kafka's keys where they exist).
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// `controller.quorum.request.timeout.ms`: one attempt's limit.
    pub request_timeout_ms: u64,
    /// `controller.quorum.retry.backoff.ms`: the first backoff.
    pub retry_backoff_ms: u64,
    /// The backoff doubles per failed attempt up to this.
    pub retry_backoff_max_ms: u64,
    /// Requests in flight on the connection at once.
    pub max_in_flight: usize,
    /// The largest response frame accepted.
    pub max_response_bytes: usize,
    /// The request header's client id.
    pub client_id: String,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            retry_backoff_max_ms: 1000,
            max_in_flight: 16,
            max_response_bytes: 16 * 1024 * 1024,
            client_id: "sluice-controller-channel".into(),
        }
    }
}

/// A request the channel can send to the controller, and how to tell that
/// its answer is NOT_CONTROLLER.
pub trait ControllerApi: Request + Send + Sync + 'static
where
    Self::Response: Send + 'static,
{
    fn not_controller(resp: &Self::Response) -> bool;

    /// The request as sent at `version`, when a field moved between the
    /// versions the channel may negotiate (`None`: as it is).
    fn at_version(&self, _version: i16) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

macro_rules! top_level_error {
    ($($req:ty),*) => {$(
        impl ControllerApi for $req {
            fn not_controller(resp: &Self::Response) -> bool {
                resp.error_code == NOT_CONTROLLER
            }
        }
    )*};
}
top_level_error!(
    BrokerRegistrationRequest,
    BrokerHeartbeatRequest,
    AllocateProducerIdsRequest,
    ElectLeadersRequest,
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest
);

/// Built with v1+'s UpgradeType; v0 has AllowDowngrade instead (a field
/// set outside its versions does not encode: so a validate-only request
/// fails at v0 rather than being applied).
impl ControllerApi for UpdateFeaturesRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.error_code == NOT_CONTROLLER
    }

    fn at_version(&self, version: i16) -> Option<Self> {
        if version >= 1 {
            return None;
        }
        let mut req = self.clone();
        for u in &mut req.feature_updates {
            u.allow_downgrade = u.upgrade_type != 1;
            u.upgrade_type = 1;
        }
        Some(req)
    }
}

/// Built with v3's NewIsrWithEpochs; v2 carries the ids alone (NewIsr).
impl ControllerApi for AlterPartitionRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.error_code == NOT_CONTROLLER
    }

    fn at_version(&self, version: i16) -> Option<Self> {
        if version >= 3 {
            return None;
        }
        let mut req = self.clone();
        for t in &mut req.topics {
            for p in &mut t.partitions {
                p.new_isr = p.new_isr_with_epochs.iter().map(|b| b.broker_id).collect();
                p.new_isr_with_epochs.clear();
            }
        }
        Some(req)
    }
}

macro_rules! any_voter {
    ($($req:ty),*) => {$(
        impl ControllerApi for $req {
            fn not_controller(_: &Self::Response) -> bool {
                false
            }
        }
    )*};
}
// Answered by whichever voter is asked (DescribeQuorum's leader-only
// answer is NOT_LEADER_OR_FOLLOWER, which the caller reads).
any_voter!(
    ApiVersionsRequest,
    DescribeQuorumRequest,
    DescribeClusterRequest
);

impl ControllerApi for CreateTopicsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.topics.iter().any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for DeleteTopicsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.responses
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for CreatePartitionsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.results.iter().any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for IncrementalAlterConfigsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.responses
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for AlterUserScramCredentialsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.results.iter().any(|r| r.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for CreateAclsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.results.iter().any(|r| r.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for DeleteAclsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.filter_results
            .iter()
            .any(|r| r.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for AlterClientQuotasRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.entries.iter().any(|e| e.error_code == NOT_CONTROLLER)
    }
}

impl ControllerApi for AlterConfigsRequest {
    fn not_controller(resp: &Self::Response) -> bool {
        resp.responses
            .iter()
            .any(|t| t.error_code == NOT_CONTROLLER)
    }
}

/// The channel (see the module docs). Cheap to share behind an `Arc`.
pub struct ControllerChannel {
    voters: QuorumVoters,
    config: ChannelConfig,
    connector: Arc<dyn Connector>,
    /// Index into the voters of the one to use next.
    current: AtomicUsize,
    conn: Mutex<Option<Arc<Conn>>>,
    in_flight: Semaphore,
}

impl ControllerChannel {
    /// A channel over TCP.
    pub fn new(voters: QuorumVoters, config: ChannelConfig) -> ControllerChannel {
        Self::with_connector(voters, config, Arc::new(TcpConnector))
    }

    /// A channel over a substituted connector.
    pub fn with_connector(
        voters: QuorumVoters,
        config: ChannelConfig,
        connector: Arc<dyn Connector>,
    ) -> ControllerChannel {
        let permits = config.max_in_flight.max(1);
        ControllerChannel {
            voters,
            config,
            connector,
            current: AtomicUsize::new(0),
            conn: Mutex::new(None),
            in_flight: Semaphore::new(permits),
        }
    }

    /// Points the channel at voter `id` (the leader the broker learned from
    /// the metadata log); the current connection is kept if it goes there.
    pub async fn set_active_controller(&self, id: i32) {
        let Some(i) = self.voters.voters().iter().position(|v| v.id == id) else {
            return;
        };
        self.current.store(i, Ordering::SeqCst);
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|c| c.voter_id != id) {
            *conn = None;
        }
    }

    /// The voter the channel is connected to (or will try next).
    pub fn controller_hint(&self) -> i32 {
        let i = self.current.load(Ordering::SeqCst) % self.voters.len();
        self.voters.voters()[i].id
    }

    /// Sends `req` to the active controller, retrying on other voters until
    /// `timeout` has passed. Answers the first response that is not
    /// NOT_CONTROLLER.
    pub async fn send<R: ControllerApi>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response, TransportError>
    where
        R::Response: Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let mut backoff = self.config.retry_backoff_ms;
        // The backoff grows once per round over the voters, not per
        // attempt: after a leader dies the others answer NOT_CONTROLLER
        // until one wins the election (under a second), and doubling on
        // each of those answers would wait out most of a second more.
        let round = self.voters.voters().len().max(1);
        let mut attempts = 0usize;
        // What the previous attempt learned: an attempt that the overall
        // deadline cut short says less than the voter answers before it.
        let mut previous: Option<String> = None;
        loop {
            // The voter this attempt goes to: only the first of the
            // requests that fail on it moves the channel on.
            let tried = self.current.load(Ordering::SeqCst);
            let last = match self.attempt(req, deadline).await {
                Ok(resp) if !R::not_controller(&resp) => return Ok(resp),
                Ok(_) => {
                    tracing::debug!(
                        voter = self.controller_hint(),
                        "NOT_CONTROLLER: trying the next voter"
                    );
                    "NOT_CONTROLLER".to_string()
                }
                // Not a question of which voter: encoding failed, or the
                // peer speaks no version of the API.
                Err(e @ (TransportError::Shutdown | TransportError::Rejected { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    tracing::debug!(voter = self.controller_hint(), error = %e, "controller request failed");
                    match previous.take() {
                        Some(p) if Instant::now() >= deadline => p,
                        _ => e.to_string(),
                    }
                }
            };
            previous = Some(last.clone());
            self.move_on(tried).await;
            let now = Instant::now();
            if now + Duration::from_millis(backoff) >= deadline {
                return Err(TransportError::ControllerUnavailable {
                    timeout_ms: timeout.as_millis() as u64,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            attempts += 1;
            if attempts % round == 0 {
                backoff = (backoff * 2).min(self.config.retry_backoff_max_ms.max(1));
            }
        }
    }

    /// Drops the connection and moves to the voter after `tried`, unless
    /// another request already moved on from it (or the channel was
    /// pointed elsewhere). Requests in flight together fail together: had
    /// each of them moved on, as many requests as there are voters would
    /// bring the channel back to the voter that failed them, again and
    /// again until their deadline (found by the cluster simulation, seed
    /// 1517: a broker's heartbeat stuck for 28 s on a voter that answered
    /// NOT_CONTROLLER, so the broker was fenced for as long).
    async fn move_on(&self, tried: usize) {
        let mut conn = self.conn.lock().await;
        let next = tried.wrapping_add(1);
        if self
            .current
            .compare_exchange(tried, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            *conn = None;
        }
    }

    async fn attempt<R: ControllerApi>(
        &self,
        req: &R,
        deadline: Instant,
    ) -> Result<R::Response, TransportError>
    where
        R::Response: Send + 'static,
    {
        let limit = deadline.min(Instant::now() + self.request_timeout());
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| TransportError::Shutdown)?;
        let conn = tokio::time::timeout_at(limit, self.connection())
            .await
            .map_err(|_| self.timed_out("connecting"))??;
        let key = ApiKey::try_from(R::KEY).map_err(|_| conn.bad("unknown api key"))?;
        let version = conn.version_for(key, R::VERSIONS.min, R::VERSIONS.max)?;
        let adapted = req.at_version(version);
        let req = adapted.as_ref().unwrap_or(req);
        let frame = encode_request(req, key, version, conn.next_correlation_id(), &self.config)?;
        let cid = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
        let answer = tokio::time::timeout_at(limit, conn.call(frame, cid))
            .await
            .map_err(|_| self.timed_out("waiting for the answer"))??;
        decode_response::<R::Response>(answer, version).map_err(|m| conn.bad(&m))
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms.max(1))
    }

    fn timed_out(&self, what: &str) -> TransportError {
        TransportError::ControllerUnavailable {
            timeout_ms: self.config.request_timeout_ms,
            last: format!(
                "request timed out {what} (voter {})",
                self.controller_hint()
            ),
        }
    }

    /// The live connection, or a new one to the current voter.
    async fn connection(&self) -> Result<Arc<Conn>, TransportError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        *slot = None;
        let i = self.current.load(Ordering::SeqCst) % self.voters.len();
        let voter = self.voters.voters()[i].clone();
        let c = Conn::open(&*self.connector, &voter, &self.config).await?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// A request frame: size prefix, header (its version for `version`), body.
pub(crate) fn encode_request<R: Request>(
    req: &R,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    config: &ChannelConfig,
) -> Result<Bytes, TransportError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(config.client_id.clone())));
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let encode_err = |e: String| TransportError::Rejected {
        code: -1,
        message: format!("cannot encode {key:?} v{version}: {e}"),
    };
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| encode_err(e.to_string()))?;
    req.encode(&mut buf, version)
        .map_err(|e| encode_err(e.to_string()))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (after its size prefix) at `version`.
pub(crate) fn decode_response<T: Decodable + HeaderVersion>(
    mut frame: Bytes,
    version: i16,
) -> Result<T, String> {
    ResponseHeader::decode(&mut frame, T::header_version(version))
        .map_err(|e| format!("response header: {e}"))?;
    T::decode(&mut frame, version).map_err(|e| format!("response body v{version}: {e}"))
}
