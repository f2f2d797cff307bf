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

/// A UTC calendar date and time of day, from a Unix time in ms (what a
/// record's timestamp means to a person reading it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcDateTime {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 (Sunday) to 6.
    pub weekday: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl UtcDateTime {
    /// Howard Hinnant's days-to-civil algorithm; exact for every `i64`
    /// millisecond the proleptic Gregorian calendar can name.
    pub fn from_unix_ms(ms: i64) -> UtcDateTime {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcDateTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
            hour: (sod / 3600) as u32,
            minute: (sod % 3600 / 60) as u32,
            second: (sod % 60) as u32,
            millis: ms.rem_euclid(1000) as u32,
        }
    }
}

#[cfg(test)]
mod utc_tests {
    use super::UtcDateTime;

    #[test]
    fn known_dates() {
        let t = UtcDateTime::from_unix_ms(0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1970, 1, 1, 4));
        // 2000-02-29T12:34:56.789Z, a Tuesday.
        let t = UtcDateTime::from_unix_ms(951_827_696_789);
        assert_eq!(
            (t.year, t.month, t.day, t.weekday, t.hour, t.minute, t.second, t.millis),
            (2000, 2, 29, 2, 12, 34, 56, 789)
        );
        // One ms before the epoch.
        let t = UtcDateTime::from_unix_ms(-1);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.millis),
            (1969, 12, 31, 23, 999)
        );
    }
}
