//! CRC-32C (Castagnoli, CRC-32/ISCSI), the checksum of RecordBatch v2.
//!
//! Computed with `crc-fast` (PCLMULQDQ/VPCLMULQDQ folding with runtime CPU
//! detection): on 16 KiB batches it measured ~6x the `crc32c` crate here
//! (~40 vs ~7 GB/s), and every produced byte goes through it.

/// CRC-32C of `bytes`.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}
