//! BrokerRegistration, BrokerHeartbeat and AllocateProducerIds: wire
//! types to the controller's domain types and back.

use std::net::SocketAddr;

use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, BrokerHeartbeatRequest,
    BrokerHeartbeatResponse, BrokerRegistrationRequest, BrokerRegistrationResponse,
};
use sluice_controller::{
    BrokerHeartbeat, BrokerRegistrationRequest as Registration, ControllerError, QuorumController,
};
use sluice_metadata::record::{BrokerEndpoint, BrokerFeature};
use sluice_metadata::{BrokerEpoch, BrokerId};
use sluice_protocol::kafka_protocol;
use sluice_record::Offset;

use super::{check_active, log_refusal};
use crate::codes::{controller_error_code, INCONSISTENT_CLUSTER_ID};

/// BrokerRegistration: refused with INCONSISTENT_CLUSTER_ID when the broker
/// names another cluster (nothing is written), else registered by the
/// controller (fenced, with a new broker epoch).
pub(super) async fn register(
    c: &QuorumController,
    cluster_id: &str,
    r: BrokerRegistrationRequest,
    peer: SocketAddr,
) -> BrokerRegistrationResponse {
    let refuse = |code: i16| {
        BrokerRegistrationResponse::default()
            .with_error_code(code)
            .with_broker_epoch(-1)
    };
    if &*r.cluster_id != cluster_id {
        tracing::warn!(
            %peer,
            broker = r.broker_id.0,
            theirs = %&*r.cluster_id,
            ours = cluster_id,
            "refusing broker registration: inconsistent cluster id"
        );
        return refuse(INCONSISTENT_CLUSTER_ID);
    }
    let req = Registration {
        broker_id: BrokerId(r.broker_id.0),
        incarnation_id: r.incarnation_id,
        listeners: r
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        features: r
            .features
            .iter()
            .map(|f| BrokerFeature {
                name: f.name.to_string(),
                min_supported_version: f.min_supported_version,
                max_supported_version: f.max_supported_version,
            })
            .collect(),
        rack: r.rack.as_ref().map(|s| s.to_string()),
        log_dirs: r.log_dirs.clone(),
        previous_broker_epoch: (r.previous_broker_epoch >= 0)
            .then_some(BrokerEpoch(r.previous_broker_epoch)),
    };
    let result = match check_active(c) {
        Ok(()) => c.register_broker(req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reg) => {
            tracing::info!(%peer, broker = r.broker_id.0, epoch = %reg.broker_epoch, "broker registered");
            BrokerRegistrationResponse::default().with_broker_epoch(reg.broker_epoch.0)
        }
        Err(e) => {
            if matches!(e, ControllerError::DuplicateBrokerRegistration(_)) {
                tracing::warn!(%peer, broker = r.broker_id.0, error = %e, "refusing broker registration");
            } else {
                log_refusal("BrokerRegistration", &e);
            }
            refuse(controller_error_code(&e))
        }
    }
}

/// BrokerHeartbeat. An error answers fenced, not caught up.
pub(super) async fn heartbeat(
    c: &QuorumController,
    r: BrokerHeartbeatRequest,
) -> BrokerHeartbeatResponse {
    let hb = BrokerHeartbeat {
        broker_id: BrokerId(r.broker_id.0),
        broker_epoch: BrokerEpoch(r.broker_epoch),
        current_metadata_offset: Offset(r.current_metadata_offset),
        want_fence: r.want_fence,
        want_shutdown: r.want_shut_down,
    };
    let result = match check_active(c) {
        Ok(()) => c.heartbeat(hb).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => BrokerHeartbeatResponse::default()
            .with_is_caught_up(reply.is_caught_up)
            .with_is_fenced(reply.is_fenced)
            .with_should_shut_down(reply.should_shutdown),
        Err(e) => {
            log_refusal("BrokerHeartbeat", &e);
            BrokerHeartbeatResponse::default()
                .with_error_code(controller_error_code(&e))
                .with_is_caught_up(false)
                .with_is_fenced(true)
        }
    }
}

/// AllocateProducerIds: a block of producer ids for a registered broker.
pub(super) async fn allocate_producer_ids(
    c: &QuorumController,
    r: AllocateProducerIdsRequest,
) -> AllocateProducerIdsResponse {
    let result = match check_active(c) {
        Ok(()) => {
            c.allocate_producer_ids(BrokerId(r.broker_id.0), BrokerEpoch(r.broker_epoch))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(block) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(block.first_producer_id.0.into())
            .with_producer_id_len(block.size),
        Err(e) => {
            log_refusal("AllocateProducerIds", &e);
            AllocateProducerIdsResponse::default()
                .with_error_code(controller_error_code(&e))
                .with_producer_id_start((-1).into())
                .with_producer_id_len(0)
        }
    }
}
