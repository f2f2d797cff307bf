//! The memory a caller lets this crate's decoders use beyond the bytes it
//! handed in: decompressed output, a codec's window or block buffers, and
//! the re-encoding buffers of [`crate::recompress_budgeted`]. The broker
//! implements [`Budget`] with one broker-wide pool of bytes, so that many
//! small batches expanding to a lot at once cannot add up past it.

use crate::error::RecordError;

/// An allowance of bytes that decoders draw on before they allocate.
/// Implementations keep what was granted until they are dropped.
pub trait Budget {
    /// Asks for `bytes` more before allocating them; an error aborts the
    /// decoding that asked, with that error.
    fn grow(&mut self, bytes: usize) -> Result<(), RecordError>;
}

/// No allowance check (tests, tools, data whose size the caller bounds).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unbounded;

impl Budget for Unbounded {
    fn grow(&mut self, _bytes: usize) -> Result<(), RecordError> {
        Ok(())
    }
}

/// A fixed allowance, for tests: refuses once `limit` bytes were granted,
/// with [`RecordError::MemoryBudget`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixed {
    pub limit: usize,
    pub granted: usize,
}

impl Fixed {
    pub fn new(limit: usize) -> Self {
        Fixed { limit, granted: 0 }
    }
}

impl Budget for Fixed {
    fn grow(&mut self, bytes: usize) -> Result<(), RecordError> {
        let total = self.granted.saturating_add(bytes);
        if total > self.limit {
            return Err(RecordError::MemoryBudget {
                requested: bytes,
                held: self.granted,
            });
        }
        self.granted = total;
        Ok(())
    }
}
