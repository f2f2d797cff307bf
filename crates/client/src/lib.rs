//! A small blocking Kafka protocol client: one connection per broker, API
//! versions negotiated with ApiVersions, every response bounds-checked by
//! `sluice-protocol` before `kafka-protocol` decodes it.
//!
//! It exists so that tools which speak to *any* Kafka-compatible cluster
//! (the `sluice` CLI's admin subcommands, the web console in
//! `sluice-console`) share one implementation of the wire exchange instead
//! of each carrying its own. It knows nothing about any particular API's
//! meaning; callers build requests and read responses.

mod error;
pub mod raw;
pub mod security;

pub use error::ClientError;
pub use raw::{error_text, str_bytes, RawConnection};
pub use security::{SaslLogin, Security};
