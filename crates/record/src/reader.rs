//! Reading the records of one whole batch, decompressing it if needed.

use std::borrow::Cow;

use crate::batch::{BatchHeader, CompressionType, BATCH_HEADER_SIZE};
use crate::budget::Budget;
use crate::compression::decompress;
use crate::error::RecordError;
use crate::record::RecordIter;

/// One validated batch with its records section ready to iterate: borrowed
/// from the batch bytes when uncompressed, decompressed (within a limit)
/// otherwise.
#[derive(Clone, Debug)]
pub struct BatchReader<'a> {
    header: BatchHeader,
    data: Cow<'a, [u8]>,
}

impl<'a> BatchReader<'a> {
    /// Validates the batch at the start of `batch` as stored data
    /// ([`BatchHeader::validate_stored`]: CRC included, compaction gaps
    /// allowed) and decompresses its records section, failing with
    /// [`RecordError::Decompression`] if that would produce more than
    /// `max_decompressed` bytes. An uncompressed batch is borrowed as it is
    /// (the limit does not apply: its bytes are already in memory). Bytes
    /// after the batch are ignored.
    pub fn new(batch: &'a [u8], max_decompressed: usize) -> Result<Self, RecordError> {
        let header = BatchHeader::validate_stored(batch)?;
        let section = &batch[BATCH_HEADER_SIZE..header.size()];
        let data = match header.compression() {
            CompressionType::None => Cow::Borrowed(section),
            codec => Cow::Owned(decompress(codec, section, max_decompressed)?),
        };
        Ok(BatchReader { header, data })
    }

    /// [`BatchReader::new`] drawing the decompressed buffer and the
    /// decoder's state from `budget`, as they grow (nothing for an
    /// uncompressed batch, which is borrowed).
    pub fn with_budget(
        batch: &'a [u8],
        max_decompressed: usize,
        budget: &mut dyn Budget,
    ) -> Result<Self, RecordError> {
        let header = BatchHeader::validate_stored(batch)?;
        let section = &batch[BATCH_HEADER_SIZE..header.size()];
        let data = match header.compression() {
            CompressionType::None => Cow::Borrowed(section),
            codec => Cow::Owned(crate::stream::decompress_budgeted(
                codec,
                section,
                max_decompressed,
                budget,
            )?),
        };
        Ok(BatchReader { header, data })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The uncompressed records section.
    pub fn records_data(&self) -> &[u8] {
        &self.data
    }

    /// The batch's records, in order. See [`RecordIter`] for its errors.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter::new(&self.header, &self.data)
    }
}

/// Shorthand for [`BatchReader::new`]: validate one batch and get ready to
/// iterate its records with [`BatchReader::records`].
pub fn records(batch: &[u8], max_decompressed: usize) -> Result<BatchReader<'_>, RecordError> {
    BatchReader::new(batch, max_decompressed)
}
