//! What a handler knows of a request besides its header and body: who sent
//! it and over which listener. The network layer builds one per
//! connection once the connection's principal is known; handlers read it
//! and never reach back into the connection.

use std::net::SocketAddr;

use sluice_auth::{KafkaPrincipal, ListenerName, SecurityProtocol};

/// The sender of a request, as Kafka's `RequestContext` carries it.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// Who the connection authenticated as (`User:ANONYMOUS` without
    /// authentication).
    pub principal: KafkaPrincipal,
    /// The listener the connection came in on.
    pub listener: ListenerName,
    /// What that listener speaks.
    pub security_protocol: SecurityProtocol,
    /// The connection's remote address; `None` for requests the broker
    /// makes of itself (tests, fuzzing). JoinGroup records it as a
    /// member's host.
    pub client_address: Option<SocketAddr>,
}

impl RequestContext {
    /// An unauthenticated connection on a `PLAINTEXT` listener.
    pub fn plaintext(client_address: Option<SocketAddr>) -> Self {
        Self {
            principal: KafkaPrincipal::anonymous(),
            listener: ListenerName::new("PLAINTEXT"),
            security_protocol: SecurityProtocol::Plaintext,
            client_address,
        }
    }
}
