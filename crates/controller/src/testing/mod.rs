//! Test support shared with other crates and the openraft side. Not part
//! of the stable API.
//!
//! - [`MemoryLog`]: an in-memory [`MetadataLog`](crate::MetadataLog) for
//!   tests of code above the seam.
//! - [`conformance`]: the seam's conformance suite, run against every
//!   implementation ([`run_conformance`] with a [`LogFactory`]).

pub mod conformance;
mod memory;

pub use conformance::{run_conformance, LogFactory};
pub use memory::MemoryLog;
