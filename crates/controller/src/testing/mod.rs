//! Test support shared with other crates and the openraft side: an
//! in-memory [`MetadataLog`](crate::MetadataLog) for code above the seam.
//! Not part of the stable API.

mod memory;

pub use memory::MemoryLog;
