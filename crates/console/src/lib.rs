//! The built-in web console (issue 22): see and operate any Kafka-compatible
//! cluster from a browser, served by the `sluice` binary with nothing else
//! to install.
//!
//! It speaks only the Kafka protocol (through `sluice-client`), so it works
//! against Apache Kafka as well as Sluice. Three layers, each in its own
//! module, with dependencies pointing one way:
//!
//! - [`web`]: the HTTP server (axum on tokio): routes, the read-only/writes
//!   switch, same-origin checks on every form post, error statuses. It runs
//!   each Kafka exchange on tokio's blocking pool.
//! - [`pages`]: server-rendered HTML, one module per page, every untrusted
//!   string (topic names, message bytes, broker messages) escaped by
//!   [`html`]. The CSS and the little script are embedded with
//!   `include_str!`, so there is no build step and nothing is fetched at run
//!   time.
//! - [`kafka`]: the Kafka-querying layer: plain functions from a
//!   [`kafka::Session`] (connections to the bootstrap broker and to leaders
//!   and coordinators) to plain data ([`kafka::model`]). Message pages are
//!   bounded (at most [`kafka::messages::MAX_PAGE`] records, fetched a
//!   bounded number of bytes at a time); nothing loads a whole topic.
//!
//! Safe by default: it binds to loopback unless told otherwise and is
//! read-only unless [`ConsoleConfig::allow_writes`] is set; every
//! destructive write is planned (validated by the cluster where Kafka can:
//! `validate_only`) and shown on a confirmation page before it is made.

pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod html;
pub mod kafka;
pub mod pages;
pub mod render;
pub mod web;

pub use error::ConsoleError;
pub use web::{Console, ConsoleConfig};
