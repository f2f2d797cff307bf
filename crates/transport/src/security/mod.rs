//! Security of node-to-node traffic (issue 20): brokers talking to each
//! other and to the controllers, and voters talking to each other, over
//! TLS and SASL as Kafka's `security.inter.broker.protocol`,
//! `sasl.mechanism.inter.broker.protocol`, `controller.listener.names`
//! and `sasl.mechanism.controller.protocol` ask.
//!
//! - [`client`]: [`ClientSecurity`] secures each connection a node opens
//!   (TLS, then the node's SASL login) and [`SecureConnector`] applies it
//!   to every connection of a [`Connector`](crate::Connector) user (replica
//!   fetchers, transaction peers, the controller channel) and of the
//!   metadata quorum's raft RPC.
//! - [`gate`]: [`ServerSecurity`] admits each connection of the controller
//!   listener (TLS, then Kafka's SASL exchange) and names its principal,
//!   which the controller APIs and the raft RPC then authorize.
//! - [`prefixed`]: a stream whose first bytes were read to classify it.
//!
//! The broker crate resolves these from its config (the listener's `ssl.*`
//! keys, its JAAS entries); this crate holds no config of its own.

pub mod client;
pub mod gate;
pub mod prefixed;

pub use client::{ClientSecurity, ClientTls, SaslLogin, SecureConnector};
pub use gate::{SaslAccept, ServerSecurity, SharedCredentials, TlsAccept};
pub use prefixed::Prefixed;

#[cfg(test)]
mod tests;
