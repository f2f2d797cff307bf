//! The controller RPC server: the controller listener of a node.
//!
//! Each connection is read into a [`FrameReader`] bounded by
//! `socket.request.max.bytes`; each frame is decoded with
//! [`decode_request_with`] against [`CONTROLLER_APIS`] (header parsed, body
//! walked against Kafka's spec before kafka-protocol allocates anything),
//! then handled by calling the [`QuorumController`]. Up to
//! [`ServerConfig::max_in_flight_per_connection`] requests of a connection
//! are handled at once (so a broker's heartbeat joins the same group commit
//! as its forwarded CreateTopics) and answered in request order, as Kafka
//! requires.
//!
//! Every answer of the thirteen APIs a broker's `ControllerClient` uses carries
//! the metadata offset at which it is true, in the tagged field
//! [`COMMITTED_OFFSET_TAG`](crate::committed::COMMITTED_OFFSET_TAG) (see
//! [`committed`](crate::committed)).
//!
//! DescribeQuorum and DescribeCluster (endpoint type CONTROLLER) are
//! answered here too, for `kafka-metadata-quorum --bootstrap-controller`
//! (see `describe.rs`).
//!
//! Refusals: a frame that does not parse, an unknown API or an unsupported
//! version closes the connection with a warning (ApiVersions of an
//! unsupported version gets Kafka's v0 fallback answer); nothing reaches
//! the controller. Requests that parse but are refused are answered with
//! Kafka's error code: NOT_CONTROLLER when this node is not the active
//! controller, INCONSISTENT_CLUSTER_ID for a registration naming another
//! cluster, and the controller's own errors through
//! [`controller_error_code`](crate::codes::controller_error_code).

pub mod acls;
mod admin;
pub mod authz;
mod broker_rpc;
mod describe;
mod isr;
pub mod quotas;
mod reassign;
pub mod scram;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use parking_lot::Mutex;
use sluice_controller::{ControllerError, QuorumController};
use sluice_metadata::features::supported_features;
use sluice_protocol::{
    api_versions_fallback_frame, api_versions_response, decode_request_with, encode_response,
    kafka_protocol, with_features, DecodedRequest, ProtocolError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::TransportError;
use crate::net::{Acceptor, BoxStream, TcpAcceptor};

/// The APIs and versions the controller listener serves (Kafka 4.1's
/// controller listener ranges for the same APIs).
pub const CONTROLLER_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::AlterPartition, 2, 3),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::CreateAcls, 2, 3),
    (ApiKey::DeleteAcls, 2, 3),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// Settings of the controller listener (Kafka's keys).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The cluster id of `meta.properties`: a BrokerRegistration naming
    /// another is refused with INCONSISTENT_CLUSTER_ID.
    pub cluster_id: String,
    /// `socket.request.max.bytes`.
    pub max_request_bytes: usize,
    /// Requests of one connection handled at once (Kafka handles one; the
    /// answers are written in request order either way).
    pub max_in_flight_per_connection: usize,
    /// `controller.quorum.voters` at their controller listener addresses:
    /// DescribeCluster (endpoint type CONTROLLER) lists them and
    /// DescribeQuorum v2 names their listeners. `None` lists no nodes.
    pub voters: Option<crate::QuorumVoters>,
    /// The controller listener's name (`controller.listener.names`' first).
    pub listener_name: String,
    /// `authorizer.class.name` (Kafka's StandardAuthorizer) with
    /// `super.users`: every request is authorized as Kafka's
    /// `ControllerApis` does (`authz.rs`); `None` allows everything.
    pub authorizer: Option<Arc<sluice_auth::acl::AuthorizerConfig>>,
}

impl ServerConfig {
    pub fn new(cluster_id: impl Into<String>) -> ServerConfig {
        ServerConfig {
            cluster_id: cluster_id.into(),
            max_request_bytes: sluice_protocol::DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight_per_connection: 16,
            voters: None,
            listener_name: "CONTROLLER".into(),
            authorizer: None,
        }
    }
}

struct Inner {
    controller: Arc<QuorumController>,
    config: ServerConfig,
}

/// The controller RPC server (see the module docs).
pub struct ControllerServer {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ControllerServer {
    /// Binds the controller listener at `addr` and serves it.
    pub async fn bind(
        addr: SocketAddr,
        controller: Arc<QuorumController>,
        config: ServerConfig,
    ) -> Result<ControllerServer, TransportError> {
        let acceptor = TcpAcceptor::bind(addr)
            .await
            .map_err(|source| TransportError::Io {
                what: "binding the controller listener",
                addr: Some(addr),
                source,
            })?;
        Self::start(Box::new(acceptor), controller, config)
    }

    /// Serves connections from `acceptor` on the current tokio runtime.
    pub fn start(
        acceptor: Box<dyn Acceptor>,
        controller: Arc<QuorumController>,
        config: ServerConfig,
    ) -> Result<ControllerServer, TransportError> {
        let local_addr = acceptor.local_addr().map_err(|source| TransportError::Io {
            what: "controller listener address",
            addr: None,
            source,
        })?;
        let inner = Arc::new(Inner { controller, config });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(acceptor, inner.clone(), stopped));
        tracing::info!(%local_addr, "controller listener started");
        Ok(ControllerServer {
            inner,
            local_addr,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves one connection until it closes (for substituted streams).
    pub async fn serve_connection(&self, stream: BoxStream, peer: SocketAddr) {
        let (_tx, stopped) = watch::channel(false);
        let anonymous = sluice_auth::KafkaPrincipal::anonymous();
        serve(self.inner.clone(), stream, peer, anonymous, stopped).await
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for ControllerServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    mut acceptor: Box<dyn Acceptor>,
    inner: Arc<Inner>,
    stopped: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    let mut stop = stopped.clone();
    loop {
        tokio::select! {
            _ = stopped_signal(&mut stop) => break,
            r = acceptor.accept_admitted() => match r {
                Ok(a) => {
                    conns.spawn(serve(inner.clone(), a.stream, a.peer, a.principal, stopped.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controller listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Resolves once the server stops (or its sender is gone).
async fn stopped_signal(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// What to do after a frame.
enum Outcome {
    Reply(Bytes),
    Close,
}

async fn serve(
    inner: Arc<Inner>,
    stream: BoxStream,
    peer: SocketAddr,
    principal: sluice_auth::KafkaPrincipal,
    mut stopped: watch::Receiver<bool>,
) {
    let principal = Arc::new(principal);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let depth = inner.config.max_in_flight_per_connection.max(1);
    let (tx, mut rx) = mpsc::channel::<JoinHandle<Outcome>>(depth);
    // Answers in request order; a Close (or a write error) ends the
    // connection.
    let writer = tokio::spawn(async move {
        while let Some(h) = rx.recv().await {
            match h.await {
                Ok(Outcome::Reply(b)) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Outcome::Close) | Err(_) => break,
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut frames = sluice_protocol::FrameReader::new(inner.config.max_request_bytes);
    'conn: loop {
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    let h =
                        tokio::spawn(handle_frame(inner.clone(), frame, peer, principal.clone()));
                    if tx.send(h).await.is_err() {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "controller listener: closing connection on a bad frame");
                    break 'conn;
                }
            }
        }
        let read = tokio::select! {
            _ = stopped_signal(&mut stopped) => break,
            _ = tx.closed() => break,
            r = rd.read_buf(frames.read_buf()) => r,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(%peer, error = %e, "controller listener: read failed");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn handle_frame(
    inner: Arc<Inner>,
    frame: Bytes,
    peer: SocketAddr,
    principal: Arc<sluice_auth::KafkaPrincipal>,
) -> Outcome {
    let req = match decode_request_with(frame, CONTROLLER_APIS) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            return match api_versions_fallback_frame(CONTROLLER_APIS, correlation_id) {
                Ok(b) => Outcome::Reply(b),
                Err(_) => Outcome::Close,
            }
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "controller listener: refusing request, closing connection");
            return Outcome::Close;
        }
    };
    let api_key = req.api_key;
    let version = req.api_version();
    let cid = req.correlation_id();
    if let Some(config) = &inner.config.authorizer {
        let authz =
            authz::ControllerAuthz::new(config.clone(), &inner.controller, &principal, peer);
        if !authz.check(api_key, &req.body) {
            let Some(denied) = authz::denied_response(api_key) else {
                return Outcome::Close;
            };
            return match encode_response(api_key, cid, version, &denied) {
                Ok(b) => Outcome::Reply(b),
                Err(_) => Outcome::Close,
            };
        }
    }
    let requester = admin::requester(&req, &principal, || {
        inner.config.authorizer.as_ref().is_none_or(|config| {
            authz::ControllerAuthz::new(config.clone(), &inner.controller, &principal, peer)
                .quorum_allowed()
        })
    });
    let Some(mut body) = dispatch(&inner, req, peer, requester).await else {
        tracing::warn!(%peer, ?api_key, "controller listener: no handler, closing connection");
        return Outcome::Close;
    };
    // After the call: the image includes whatever it committed (the
    // in-process client reports the same offset).
    crate::committed::attach(&mut body, inner.controller.image().provenance().last_offset);
    match encode_response(api_key, cid, version, &body) {
        Ok(b) => Outcome::Reply(b),
        Err(e) => {
            tracing::error!(%peer, ?api_key, version, error = %e, "controller listener: cannot encode response");
            Outcome::Close
        }
    }
}

/// NOT_CONTROLLER when this node does not lead the metadata log.
fn check_active(c: &QuorumController) -> Result<(), ControllerError> {
    if c.is_active() {
        Ok(())
    } else {
        Err(ControllerError::NotController(c.leader_and_epoch()))
    }
}

async fn dispatch(
    inner: &Inner,
    req: DecodedRequest,
    peer: SocketAddr,
    requester: Option<sluice_controller::MutationRequester>,
) -> Option<ResponseKind> {
    let c = &*inner.controller;
    let v = req.api_version();
    Some(match req.body {
        RequestKind::ApiVersions(_) => {
            let resp = api_versions_response(CONTROLLER_APIS, 0);
            if v < 3 {
                ResponseKind::ApiVersions(resp)
            } else {
                // As a KRaft controller: its supported and the finalized
                // features (`kafka-features --bootstrap-controller`).
                let image = c.image();
                let supported = supported_features();
                ResponseKind::ApiVersions(with_features(
                    resp,
                    v,
                    supported.iter().map(|f| {
                        (
                            f.name.as_str(),
                            f.min_supported_version,
                            f.max_supported_version,
                        )
                    }),
                    image.features().iter().map(|(n, &l)| (n.as_str(), l)),
                    image.provenance().last_offset.0,
                ))
            }
        }
        RequestKind::BrokerRegistration(r) => ResponseKind::BrokerRegistration(
            broker_rpc::register(c, &inner.config.cluster_id, r, peer).await,
        ),
        RequestKind::BrokerHeartbeat(r) => {
            ResponseKind::BrokerHeartbeat(broker_rpc::heartbeat(c, r).await)
        }
        RequestKind::AllocateProducerIds(r) => {
            ResponseKind::AllocateProducerIds(broker_rpc::allocate_producer_ids(c, r).await)
        }
        RequestKind::AlterPartition(r) => {
            ResponseKind::AlterPartition(isr::alter_partition(c, r, v).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(c, r, v, requester).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(c, r, v, requester).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(c, r, requester).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(admin::incremental_alter_configs(c, r).await)
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(admin::alter_configs(c, r).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(admin::elect_leaders(c, r, v).await)
        }
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassign::alter(c, r, v).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassign::list(c, r).await)
        }
        RequestKind::UpdateFeatures(r) => {
            let result = match check_active(c) {
                Ok(()) => {
                    c.update_features(crate::features::updates(&r, v), r.validate_only)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                log_refusal("UpdateFeatures", e);
            }
            ResponseKind::UpdateFeatures(crate::features::response(&r, v, &result))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(describe::describe_quorum(c, &inner.config, r, v))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe::describe_cluster(c, &inner.config, r, v))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram::alter(c, r).await)
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(c, r).await),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(c, r).await),
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter(c, r).await)
        }
        // decode_request_with admits only CONTROLLER_APIS.
        _ => return None,
    })
}

/// Log a whole-request refusal at the right level.
fn log_refusal(what: &'static str, e: &ControllerError) {
    match e {
        ControllerError::NotController(_) => tracing::debug!(what, error = %e, "refused"),
        _ => tracing::info!(what, error = %e, "refused"),
    }
}

pub(crate) use admin::str_bytes;
