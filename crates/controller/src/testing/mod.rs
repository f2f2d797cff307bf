//! Test support shared with other crates and the openraft side. Not part
//! of the stable API.
//!
//! - [`MemoryLog`]: an in-memory [`MetadataLog`](crate::MetadataLog) for
//!   tests of code above the seam.
//! - [`conformance`]: the seam's conformance suite, run against every
//!   implementation ([`run_conformance`] with a [`LogFactory`]).
//! - [`read_side`]: its read-side part for a node that follows a log it
//!   cannot append to (an observer): [`run_read_side_conformance`].

pub mod conformance;
mod memory;
pub mod read_side;

pub use conformance::{run_conformance, LogFactory};
pub use memory::MemoryLog;
pub use read_side::{run_read_side_conformance, ReadSide};
