//! Topic names and ids: Kafka's naming rules and the base64 form of its
//! UUIDs. Pure functions, used by the controller side (validation) and the
//! handlers alike.

use uuid::Uuid;

use super::MetadataError;

/// Kafka's longest topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Kafka's upper bound on partitions per topic is the i32 range; we bound it
/// lower so a single request cannot make the broker create millions of logs.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// Kafka's topic name rules; checked before any path is built from a name.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let fail = |reason: &str| {
        Err(MetadataError::InvalidTopic {
            topic: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return fail("Topic name is illegal, it can't be empty");
    }
    if name == "." || name == ".." {
        return fail("Topic name cannot be \".\" or \"..\"");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return fail("Topic name is illegal, it can't be longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return fail(
            "Topic name contains characters other than ASCII alphanumerics, '.', '_' and '-'",
        );
    }
    Ok(())
}

/// A Kafka-style id: random, not the zero/metadata id, base64 form not starting with '-'.
pub(crate) fn new_kafka_uuid() -> Uuid {
    loop {
        let id = sluice_runtime::random_uuid();
        let first = id.as_bytes()[0];
        // URL-safe base64 of the first 6 bits: index 62 is '-'.
        if first >> 2 != 62 && id.as_u128() > 1 {
            return id;
        }
    }
}

/// URL-safe base64 without padding (how Kafka prints cluster and topic ids).
pub fn uuid_to_base64(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of [`uuid_to_base64`] (22 URL-safe base64 characters).
pub fn uuid_from_base64(s: &str) -> Option<Uuid> {
    let s = s.as_bytes();
    if s.len() != 22 {
        return None;
    }
    let mut n: u128 = 0;
    for (i, &c) in s.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        if i < 21 {
            n = (n << 6) | u128::from(v);
        } else {
            // 21 x 6 = 126 bits; the last character carries the final 2 bits
            // in its high bits, and its low 4 bits must be zero.
            if v & 0x0f != 0 {
                return None;
            }
            n = (n << 2) | u128::from(v >> 4);
        }
    }
    Some(Uuid::from_u128(n))
}

/// Kafka's internal topics (`__consumer_offsets`, `__transaction_state`).
pub fn is_internal_topic(name: &str) -> bool {
    matches!(name, "__consumer_offsets" | "__transaction_state")
}
