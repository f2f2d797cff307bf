//! Decoding a classic consumer group member's assignment (Kafka's
//! `ConsumerProtocolAssignment`, the bytes DescribeGroups returns for
//! protocol type `consumer`). A broker's answer is untrusted here, so this is
//! a small decoder of its own that bounds every count by the bytes left
//! rather than kafka-protocol's, which allocates from counts on the wire.

/// Topic -> partitions, in the order given. `None` when the bytes are not
/// a well-formed assignment (they may belong to another protocol type).
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader { b: bytes };
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let topics = r.count(2 + 4)?;
    let mut out = Vec::with_capacity(topics);
    for _ in 0..topics {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = std::str::from_utf8(r.take(len)?).ok()?.to_string();
        let n = r.count(4)?;
        let mut ps = Vec::with_capacity(n);
        for _ in 0..n {
            ps.push(r.i32()?);
        }
        out.push((name, ps));
    }
    // User data (nullable bytes) follows; it is not shown.
    Some(out)
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|s| i16::from_be_bytes([s[0], s[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// An array count whose elements (at least `min_size` bytes each) fit
    /// in the bytes left.
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.checked_mul(min_size)? <= self.b.len()).then_some(n)
    }
}

/// Encodes an assignment as a consumer would (v0); for tests.
pub fn encode(topics: &[(String, Vec<i32>)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (t, ps) in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
        b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b
}

/// The fuzzing body: any bytes decode or are refused, without panicking or
/// allocating beyond their length.
pub fn fuzz(bytes: &[u8]) {
    if let Some(topics) = decode(bytes) {
        let parts: usize = topics.iter().map(|(_, p)| p.len()).sum();
        assert!(parts * 4 <= bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_huge_count_is_refused_without_allocating() {
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode(&b), None);
        assert_eq!(decode(&[0, 0, 0]), None);
        assert_eq!(decode(&[]), Some(vec![]));
    }

    proptest! {
        #[test]
        fn round_trips(topics in prop::collection::vec(("[a-z]{1,20}", prop::collection::vec(0i32..1000, 0..10)), 0..5)) {
            prop_assert_eq!(decode(&encode(&topics)), Some(topics));
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz(&bytes);
        }
    }
}
