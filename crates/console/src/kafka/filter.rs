//! The message browser's filter: a substring looked for in each record's
//! key, value and header text while a bounded window of one partition is
//! scanned. A filtered page never reads the whole partition: it looks at
//! most [`MAX_SCAN_OFFSETS`] offsets and makes at most [`MAX_SCAN_FETCHES`]
//! Fetches (each about [`FETCH_BYTES`]), keeps only the matches (at most a
//! page of them, each shown bytes bounded), and says which offsets it
//! searched so the next page carries on from there.

use sluice_record::Header;

use super::messages::{decode_into, fetch_at, Partition, FETCH_BYTES, MAX_PAGE};
use super::model::{Message, OffsetRange};
use super::Session;
use crate::ConsoleError;

/// Offsets one filtered page looks at, at most.
pub const MAX_SCAN_OFFSETS: i64 = 10_000;
/// Fetches one filtered page makes, at most (a newest-first page may finish
/// its first chunk of [`FIRST_CHUNK`] offsets beyond this).
pub const MAX_SCAN_FETCHES: usize = 32;
/// About the bytes one filtered page fetches at most.
pub const MAX_SCAN_BYTES: i64 = MAX_SCAN_FETCHES as i64 * FETCH_BYTES as i64;
/// The longest filter text.
pub const MAX_FILTER_LEN: usize = 256;
/// Newest first, offsets are scanned in chunks going back from the end:
/// the first is this long, each next one twice as long, up to [`MAX_CHUNK`].
const FIRST_CHUNK: i64 = 64;
const MAX_CHUNK: i64 = 4096;

/// A substring, matched ASCII case-insensitively against the raw bytes of
/// the key, the value, and each header's key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    text: String,
}

impl Filter {
    /// The filter of `text`: `None` when it is blank; an error when longer
    /// than [`MAX_FILTER_LEN`] bytes.
    pub fn new(text: &str) -> Result<Option<Filter>, ConsoleError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(ConsoleError::BadRequest(format!(
                "filter: at most {MAX_FILTER_LEN} bytes"
            )));
        }
        Ok((!text.is_empty()).then(|| Filter {
            text: text.to_string(),
        }))
    }

    /// The text looked for, as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the record holds the text (pure).
    pub fn matches<'a>(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = Header<'a>>,
    ) -> bool {
        let hit = |hay: Option<&[u8]>| hay.is_some_and(|h| contains(h, self.text.as_bytes()));
        hit(key)
            || hit(value)
            || headers
                .into_iter()
                .any(|h| hit(Some(h.key)) || hit(h.value))
    }
}

/// Whether `hay` holds `needle`, ASCII letters compared case-insensitively.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A filtered page: the matches in display order, the offsets searched,
/// and where the next page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub messages: Vec<Message>,
    pub scanned: OffsetRange,
    pub next: Option<i64>,
}

/// Oldest first: the first `limit` matches at or after `from`, searching at
/// most up to `end` (the log end).
pub fn forward(
    session: &mut Session,
    at: &Partition<'_>,
    from: i64,
    end: i64,
    limit: usize,
    f: &Filter,
) -> Result<Scan, ConsoleError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let to = end.min(from.saturating_add(MAX_SCAN_OFFSETS));
    let mut out = Vec::new();
    let mut offset = from;
    let mut fetches = 0;
    while offset < to && out.len() < limit && fetches < MAX_SCAN_FETCHES {
        fetches += 1;
        let Some(records) = fetch_at(session, at, offset)? else {
            break;
        };
        match decode_into(&records, offset, to, limit, at.partition, Some(f), &mut out) {
            Some(next) if next > offset => offset = next,
            _ => break,
        }
    }
    let hi = offset.min(to);
    Ok(Scan {
        messages: out,
        scanned: OffsetRange {
            start: from,
            end: hi,
        },
        next: (hi < end).then_some(hi),
    })
}

/// Newest first: the last `limit` matches before `to`, searching back at
/// most to `start` (the log start), newest first.
pub fn backward(
    session: &mut Session,
    at: &Partition<'_>,
    start: i64,
    to: i64,
    limit: usize,
    f: &Filter,
) -> Result<Scan, ConsoleError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let floor = start.max(to.saturating_sub(MAX_SCAN_OFFSETS));
    let mut out: Vec<Message> = Vec::new();
    let mut lo = to;
    let mut chunk = FIRST_CHUNK;
    let mut fetches = 0;
    while lo > floor && out.len() < limit && fetches < MAX_SCAN_FETCHES {
        let from = lo.saturating_sub(chunk).max(floor);
        let budget = if lo == to {
            usize::MAX
        } else {
            MAX_SCAN_FETCHES
        };
        let need = limit - out.len();
        let Some(found) = chunk_matches(session, at, (from, lo), need, f, &mut fetches, budget)?
        else {
            break;
        };
        out.extend(found.kept.into_iter().rev());
        if let Some(first_kept) = found.earlier_left {
            lo = first_kept;
            break;
        }
        lo = from;
        chunk = (chunk * 2).min(MAX_CHUNK);
    }
    debug_assert!(out.windows(2).all(|w| w[0].offset > w[1].offset));
    Ok(Scan {
        messages: out,
        scanned: OffsetRange { start: lo, end: to },
        next: (lo > start).then_some(lo),
    })
}

/// The last matches of one chunk.
struct Chunk {
    /// At most the number asked for, in offset order.
    kept: Vec<Message>,
    /// The offset of the first kept match, when earlier matches of the
    /// chunk were left out (the next page starts there).
    earlier_left: Option<i64>,
}

/// The last `need` matches with offsets in `[from, to)`, or `None` when
/// `fetches` reached `budget` before the chunk was read to its end (the
/// chunk is then left for the next page, so no offsets are skipped).
fn chunk_matches(
    session: &mut Session,
    at: &Partition<'_>,
    (from, to): (i64, i64),
    need: usize,
    f: &Filter,
    fetches: &mut usize,
    budget: usize,
) -> Result<Option<Chunk>, ConsoleError> {
    let mut kept: Vec<Message> = Vec::new();
    let mut dropped = false;
    let mut offset = from;
    while offset < to {
        if *fetches >= budget {
            return Ok(None);
        }
        *fetches += 1;
        let Some(records) = fetch_at(session, at, offset)? else {
            break;
        };
        // Room for `need` more; the oldest are dropped beyond that, so at
        // most 2 * need matches are held.
        let room = kept.len() + need;
        match decode_into(&records, offset, to, room, at.partition, Some(f), &mut kept) {
            Some(next) if next > offset => offset = next,
            _ => break,
        }
        if kept.len() > need {
            kept.drain(..kept.len() - need);
            dropped = true;
        }
    }
    let earlier_left = dropped.then(|| kept[0].offset);
    Ok(Some(Chunk { kept, earlier_left }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(k: &'a str, v: &'a str) -> Header<'a> {
        Header {
            key: k.as_bytes(),
            value: Some(v.as_bytes()),
        }
    }

    #[test]
    fn matches_key_value_and_headers_ignoring_ascii_case() {
        let f = Filter::new("Widget").unwrap().unwrap();
        assert!(f.matches(Some(b"a widget!"), None, []));
        assert!(f.matches(None, Some(b"{\"name\":\"WIDGET\"}"), []));
        assert!(f.matches(None, None, [h("x-widget", "1")]));
        assert!(f.matches(None, None, [h("k", "my widgets")]));
        assert!(!f.matches(Some(b"widge"), Some(b"idget"), [h("wid", "get")]));
        // Binary bytes around the text still match.
        assert!(f.matches(
            None,
            Some(&[0xff, b'w', b'i', b'd', b'g', b'e', b't', 0]),
            []
        ));
        assert_eq!(Filter::new("").unwrap(), None);
        assert!(Filter::new(&"x".repeat(MAX_FILTER_LEN + 1)).is_err());
    }

    proptest::proptest! {
        /// The byte search agrees with lowercasing both sides (ASCII).
        #[test]
        fn contains_is_ascii_case_insensitive_substring(
            hay in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            needle in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..4),
        ) {
            let lower = |b: &[u8]| b.to_ascii_lowercase();
            let (h, n) = (lower(&hay), lower(&needle));
            let naive = h.windows(n.len()).any(|w| w == n.as_slice());
            proptest::prop_assert_eq!(contains(&hay, &needle), naive);
        }
    }

    #[test]
    fn decoding_with_a_filter_keeps_only_matches_and_resumes_exactly() {
        use sluice_record::{BatchBuilder, CompressionType, Offset, Timestamp};
        let mut b = BatchBuilder::new(CompressionType::None).base_offset(Offset(0));
        for i in 0..10 {
            let v = if i % 3 == 0 {
                format!("hit-{i}")
            } else {
                format!("miss-{i}")
            };
            b.append(Timestamp(1), None, Some(v.as_bytes()), &[])
                .unwrap();
        }
        let bytes = b.build().unwrap();
        let f = Filter::new("HIT").unwrap().unwrap();
        let mut out = Vec::new();
        // Matches are 0, 3, 6, 9: two fit, the third (6) is where to resume.
        assert_eq!(
            decode_into(&bytes, 0, 100, 2, 0, Some(&f), &mut out),
            Some(6)
        );
        let offs: Vec<i64> = out.iter().map(|m| m.offset).collect();
        assert_eq!(offs, vec![0, 3]);
        let mut rest = Vec::new();
        assert_eq!(
            decode_into(&bytes, 6, 100, 10, 0, Some(&f), &mut rest),
            Some(10)
        );
        assert_eq!(
            rest.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![6, 9]
        );
    }
}
