//! Domain newtypes. Offsets and timestamps are never bare `i64`s.

use std::fmt;

/// A position in a partition's log: the offset of one record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    #[inline]
    pub fn value(self) -> i64 {
        self.0
    }

    /// The offset `n` records after this one. Saturates at the ends of the
    /// `i64` range rather than overflowing: offsets read from untrusted or
    /// corrupt bytes can be anything, and must never cause a panic.
    #[inline]
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0.saturating_add(n))
    }

    /// Number of records between `earlier` and `self` (`self - earlier`),
    /// saturating like [`Offset::plus`].
    #[inline]
    pub fn distance_from(self, earlier: Offset) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Kafka's `RecordBatch.NO_TIMESTAMP`.
    pub const NONE: Timestamp = Timestamp(-1);

    #[inline]
    pub fn millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The leader epoch stamped into each batch (`partitionLeaderEpoch`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LeaderEpoch(pub i32);

/// An idempotent/transactional producer id; -1 means "none".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProducerId(pub i64);

impl ProducerId {
    pub const NONE: ProducerId = ProducerId(-1);
}

/// A producer epoch; -1 means "none".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProducerEpoch(pub i16);
