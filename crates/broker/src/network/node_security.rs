//! Turns this node's [`NodeSecurity`] config into the transport layer's
//! secured connections (issue 20): [`client_security`] for the connections
//! it opens (replica fetchers, transaction peers, the controller channel,
//! raft RPC between voters) and [`controller_admission`] for its controller
//! listener (TLS, SASL with PLAIN's JAAS users and SCRAM credentials of the
//! controller's image, and the CLUSTER_ACTION check of the quorum RPC).
//!
//! The controller does not exist yet when its listener is bound (the raft
//! log comes first, then the controller on it), so the listener reads it
//! through a [`ControllerSlot`] filled once it started; until then SCRAM
//! logins fail and only `super.users` (or `allow.everyone.if.no.acl.found`)
//! may speak the quorum RPC.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice_auth::acl::{
    AclIndex, AclOperation, AuthorizerConfig, ResourceType, StandardAuthorizer,
};
use sluice_auth::sasl::{Credentials, ScramCredential, ScramMechanism};
use sluice_auth::KafkaPrincipal;
use sluice_controller::QuorumController;
use sluice_transport::listener::Admission;
use sluice_transport::security::{
    ClientSecurity, ClientTls, SaslAccept, SaslLogin, ServerSecurity, TlsAccept,
};
use sluice_transport::server::authz::{ControllerAuthz, CLUSTER_NAME};

use super::tls;
use crate::config::node_security::{NodeClientConfig, NodeSecurity};
use crate::error::BrokerError;

/// How long a node gives TLS and SASL with a peer, either side.
pub const NODE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The controller of this node, once started.
#[derive(Clone, Default)]
pub struct ControllerSlot(Arc<OnceLock<Arc<QuorumController>>>);

impl ControllerSlot {
    pub fn set(&self, controller: Arc<QuorumController>) {
        let _ = self.0.set(controller);
    }

    fn get(&self) -> Option<&Arc<QuorumController>> {
        self.0.get()
    }
}

/// The secured connections of one path (PLAINTEXT: the default).
pub fn client_security(c: &NodeClientConfig) -> Result<ClientSecurity, BrokerError> {
    let tls = match &c.ssl {
        Some(ssl) => Some(ClientTls::new(tls::client_config(&c.listener, ssl)?)),
        None => None,
    };
    let sasl = c.sasl.as_ref().map(|l| match l.mechanism {
        sluice_auth::sasl::SaslMechanism::Scram(mechanism) => SaslLogin::Scram {
            mechanism,
            user: l.user.clone(),
            password: l.password.0.clone(),
        },
        _ => SaslLogin::Plain {
            user: l.user.clone(),
            password: l.password.0.clone(),
        },
    });
    Ok(ClientSecurity {
        tls,
        sasl,
        handshake_timeout: NODE_HANDSHAKE_TIMEOUT,
    })
}

/// PLAIN's JAAS users of the controller listener, SCRAM credentials of
/// the controller's image.
struct ControllerCredentials {
    plain_users: std::collections::BTreeMap<String, String>,
    controller: ControllerSlot,
}

impl Credentials for ControllerCredentials {
    fn plain_password(&self, user: &str) -> Option<String> {
        self.plain_users.get(user).cloned()
    }

    fn scram_credential(&self, mechanism: ScramMechanism, user: &str) -> Option<ScramCredential> {
        super::sasl::scram_credential(&self.controller.get()?.image(), mechanism, user)
    }
}

/// Who gets past this node's controller listener.
pub fn controller_admission(
    security: &NodeSecurity,
    authorizer: Option<Arc<AuthorizerConfig>>,
    controller: ControllerSlot,
) -> Result<Admission, BrokerError> {
    let Some(server) = &security.controller_server else {
        return Ok(Admission::default());
    };
    let tls = match &server.security.ssl {
        Some(ssl) => Some(TlsAccept {
            config: Arc::new(tls::server_config(&server.listener, ssl)?),
            mapper: ssl.principal_mapper.clone(),
        }),
        None => None,
    };
    let sasl = server.sasl.as_ref().map(|s| SaslAccept {
        mechanisms: s.mechanisms.clone(),
        credentials: Arc::new(ControllerCredentials {
            plain_users: s.plain_users.clone(),
            controller: controller.clone(),
        }),
    });
    let security = (tls.is_some() || sasl.is_some()).then(|| {
        Arc::new(ServerSecurity {
            listener: server.listener.clone(),
            tls,
            sasl,
            handshake_timeout: NODE_HANDSHAKE_TIMEOUT,
            apis: sluice_transport::CONTROLLER_APIS.to_vec(),
        })
    });
    let quorum_allowed = authorizer.map(|authorizer| {
        let f: sluice_transport::listener::QuorumAllowed = Arc::new(
            move |principal: &KafkaPrincipal, peer: SocketAddr| match controller.get() {
                Some(c) => {
                    ControllerAuthz::new(authorizer.clone(), c, principal, peer).quorum_allowed()
                }
                None => StandardAuthorizer::from_shared(
                    authorizer.clone(),
                    Arc::new(AclIndex::default()),
                )
                .authorize(
                    principal,
                    &peer.ip().to_string(),
                    AclOperation::ClusterAction,
                    ResourceType::Cluster,
                    CLUSTER_NAME,
                )
                .allowed(),
            },
        );
        f
    });
    Ok(Admission {
        security,
        quorum_allowed,
    })
}
