//! [`ControllerClient`]: the broker's one seam to the active controller.
//! The trait lives in `sluice_controller::client` (so sluice-transport's
//! `RemoteController` can implement it without depending on the broker);
//! this re-export keeps `crate::metadata::client::*` for the broker.
//!
//! Implementations: the in-process `Arc<QuorumController>` (one node, its
//! own controller) and `sluice_transport::RemoteController` (the active
//! controller of a quorum, over the network).

pub use sluice_controller::client::{Answer, Committed, ControllerClient, Items};
