//! What the coordinators (groups in [`crate::group`], transactions in
//! [`crate::txn`]) share: the byte layout of their records in internal
//! topics, and how a key (group id, transactional id) picks its partition.

pub mod codec;

/// The partition of an internal topic with `num_partitions` that owns
/// `key` (a group id, a transactional id): Kafka's
/// `Utils.abs(key.hashCode) % numPartitions`, with Java's `String.hashCode`
/// over UTF-16 code units, so Sluice and Kafka agree on every coordinator.
pub fn partition_for(key: &str, num_partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 (h & 0x7fffffff).
    let abs = h & 0x7fff_ffff;
    abs % num_partitions.max(1)
}
