//! Node-to-node RPC of a Sluice cluster (issue 16), in Kafka's protocol so
//! Kafka's tools and wire captures make sense of it. This crate owns:
//!
//! - [`server`]: [`ControllerServer`], the controller listener. It reads
//!   bounded frames, validates every body with `sluice-protocol` before
//!   decoding, and serves BrokerRegistration, BrokerHeartbeat, ApiVersions
//!   and the admin APIs a broker forwards (CreateTopics, DeleteTopics,
//!   CreatePartitions, IncrementalAlterConfigs, AlterConfigs, ElectLeaders,
//!   AllocateProducerIds), DescribeQuorum and DescribeCluster (endpoint
//!   type CONTROLLER, for `kafka-metadata-quorum --bootstrap-controller`) by
//!   calling the
//!   [`QuorumController`](sluice_controller::QuorumController). A node that
//!   is not the active controller answers NOT_CONTROLLER.
//! - [`codes`]: the one place where a
//!   [`ControllerError`](sluice_controller::ControllerError) becomes a Kafka
//!   error code (the broker's handlers reuse it), and back
//!   ([`controller_error_from_code`]).
//! - [`committed`]: the committed metadata offset every answer of the
//!   broker's controller APIs carries in a tagged field
//!   ([`committed::COMMITTED_OFFSET_TAG`]), since Kafka's responses have
//!   none.
//! - [`remote`]: [`RemoteController`], the broker's
//!   [`ControllerClient`](sluice_controller::client::ControllerClient) when
//!   the active controller is another node: the thirteen operations as Kafka
//!   requests over the [`ControllerChannel`], the answers in domain types
//!   with their committed offset.
//! - [`channel`]: [`ControllerChannel`], a broker's connection to whichever
//!   voter of `controller.quorum.voters` is the active controller: one
//!   connection, bounded in-flight requests, request timeouts, and a move to
//!   the next voter on NOT_CONTROLLER or a broken connection.
//! - [`lifecycle`]: [`BrokerLifecycleManager`] (Kafka's name): registration
//!   with an incarnation id, heartbeats with the broker's metadata offset,
//!   fenced/unfenced state, controlled shutdown, re-registration.
//! - [`voters`]: the `controller.quorum.voters` value (`id@host:port,...`).
//! - [`listener`]: [`SplitListener`](listener::SplitListener), one voter
//!   address for both the metadata quorum's RPC and Kafka's protocol.
//! - [`security`]: TLS and SASL between nodes: [`security::SecureConnector`]
//!   for the connections a node opens, [`security::ServerSecurity`] for the
//!   controller listener's gate.
//! - [`net`]: the socket seam (accepting and connecting), so tests and the
//!   simulation can substitute in-memory streams.
//!
//! Invariants at the network boundary:
//! - No byte from the wire sizes an allocation before it is checked: frame
//!   sizes against a limit, request bodies by `sluice-protocol`'s walker.
//! - A malformed frame, an unknown API or an unsupported version closes the
//!   connection with a log line; nothing reaches the controller.
//! - Responses are decoded from frames bounded by `max_response_bytes`.
//!   (kafka-protocol still sizes response arrays from counts on the wire:
//!   the controller is a configured peer, not a client; see the report.)

pub mod channel;
pub mod codes;
pub mod committed;
pub mod error;
pub mod features;
pub mod forwarded;
#[doc(hidden)]
pub mod fuzzing;
pub mod lifecycle;
pub mod listener;
pub mod net;
pub mod remote;
pub mod security;
pub mod server;
pub mod voters;

pub use channel::{ChannelConfig, ControllerApi, ControllerChannel};
pub use codes::{
    controller_error_code, controller_error_from_code, item_error, ErrorCode, ErrorContext,
};
pub use error::TransportError;
pub use lifecycle::{BrokerLifecycleManager, BrokerState, LifecycleConfig, LifecycleStatus};
pub use net::{Acceptor, BoxStream, Connector, TcpAcceptor, TcpConnector};
pub use remote::RemoteController;
pub use server::{ControllerServer, ServerConfig, CONTROLLER_APIS};
pub use voters::{QuorumVoter, QuorumVoters};
