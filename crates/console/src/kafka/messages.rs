//! The message browser: a bounded page of one partition's records, newest
//! first or from an offset. At most [`MAX_PAGE`] records are kept, each
//! Fetch asks for [`FETCH_BYTES`], at most [`MAX_FETCHES`] are made per
//! page, and only the first [`MAX_SHOWN_BYTES`] of a key or value are kept.
//! A filtered page scans a bounded window instead ([`super::filter`]).

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};
use sluice_client::str_bytes;
use sluice_record::{BatchReader, Batches};

use super::cluster::partitions;
use super::filter::{self, Filter};
use super::model::{Message, MessagePage, OffsetRange};
use super::offsets::{self, Led};
use super::{kafka_error, Session};
use crate::ConsoleError;

/// The largest page.
pub const MAX_PAGE: usize = 200;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: usize = 20;
/// Bytes asked for per Fetch (a broker still returns a first batch that is larger).
pub const FETCH_BYTES: i32 = 1 << 20;
/// Fetches per page at most (gaps from compaction or transaction markers).
pub const MAX_FETCHES: usize = 8;
/// Key and value bytes kept per record for display.
pub const MAX_SHOWN_BYTES: usize = 64 << 10;
/// Decompressed bytes allowed per batch.
const MAX_DECOMPRESSED: usize = 32 << 20;
/// Fetch v4 (record batches, log start offset from v5) up to v12 (v13
/// replaces topic names with ids).
const FETCH_VERSIONS: (i16, i16) = (4, 12);

/// What page to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageQuery {
    pub partition: i32,
    /// Newest first: show the records before this offset (default: the
    /// end). Oldest first: start at this offset (default: the log start).
    pub offset: Option<i64>,
    pub limit: usize,
    pub newest_first: bool,
    /// Start at the first record at or after this time (ms), oldest first;
    /// overrides `offset`.
    pub timestamp: Option<i64>,
    /// Only records whose key, value or header text holds this.
    pub filter: Option<Filter>,
}

/// The offsets `[from, to)` a page covers, and where the next page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub next: Option<i64>,
}

/// The window of `q` over a partition holding `range` (pure).
pub fn window(range: OffsetRange, q: &PageQuery) -> Window {
    let limit = q.limit.clamp(1, MAX_PAGE) as i64;
    if q.newest_first {
        let to = q.offset.unwrap_or(range.end).clamp(range.start, range.end);
        let from = to.saturating_sub(limit).max(range.start);
        Window {
            from,
            to,
            next: (from > range.start).then_some(from),
        }
    } else {
        let from = q
            .offset
            .unwrap_or(range.start)
            .clamp(range.start, range.end);
        let to = from.saturating_add(limit).min(range.end);
        Window {
            from,
            to,
            next: (to < range.end).then_some(to),
        }
    }
}

/// Fetches the page `q` of `topic`.
pub fn page(
    session: &mut Session,
    topic: &str,
    q: &PageQuery,
) -> Result<MessagePage, ConsoleError> {
    let md = session.metadata(Some(&[topic]))?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic) && t.error_code == 0)
        .ok_or_else(|| ConsoleError::NotFound(format!("unknown topic {topic:?}")))?;
    let ps = partitions(t);
    let p = ps
        .iter()
        .find(|p| p.partition == q.partition)
        .ok_or_else(|| {
            ConsoleError::NotFound(format!("topic {topic:?} has no partition {}", q.partition))
        })?;
    if p.leader < 0 {
        return Err(ConsoleError::Kafka {
            what: format!("partition {topic}-{}", q.partition),
            error: "offline (no leader)".into(),
        });
    }
    let led: Vec<Led> = vec![((topic.to_string(), p.partition), p.leader)];
    let range = offsets::ranges(session, &led)?
        .remove(&(topic.to_string(), p.partition))
        .ok_or_else(|| ConsoleError::Kafka {
            what: format!("offsets of {topic}-{}", q.partition),
            error: "the leader did not answer them".into(),
        })?;
    let mut q = q.clone();
    if let Some(ts) = q.timestamp {
        let found = offsets::for_timestamp(session, &led, ts)?;
        q.offset = Some(
            found
                .get(&(topic.to_string(), p.partition))
                .copied()
                .unwrap_or(range.end),
        );
        q.newest_first = false;
    }
    let w = window(range, &q);
    let anchor = if q.newest_first { w.to } else { w.from };
    let at = Partition {
        leader: p.leader,
        topic,
        partition: p.partition,
    };
    let (messages, next, scanned) = match &q.filter {
        None => {
            let mut messages = fetch_window(session, &at, &w, q.limit)?;
            if q.newest_first {
                messages.reverse();
            }
            (messages, w.next, None)
        }
        Some(f) => {
            let s = if q.newest_first {
                filter::backward(session, &at, range.start, anchor, q.limit, f)?
            } else {
                filter::forward(session, &at, anchor, range.end, q.limit, f)?
            };
            (s.messages, s.next, Some(s.scanned))
        }
    };
    Ok(MessagePage {
        topic: topic.to_string(),
        partition: p.partition,
        partitions: ps.len(),
        range,
        messages,
        newest_first: q.newest_first,
        next,
        anchor,
        filter: q.filter.as_ref().map(|f| f.text().to_string()),
        scanned,
    })
}

/// Where a page's records are fetched from.
pub struct Partition<'a> {
    pub leader: i32,
    pub topic: &'a str,
    pub partition: i32,
}

/// The records with offsets in `[w.from, w.to)`, at most `limit`, in offset order.
fn fetch_window(
    session: &mut Session,
    at: &Partition<'_>,
    w: &Window,
    limit: usize,
) -> Result<Vec<Message>, ConsoleError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut out = Vec::new();
    let mut offset = w.from;
    for _ in 0..MAX_FETCHES {
        if offset >= w.to || out.len() >= limit {
            break;
        }
        let Some(records) = fetch_at(session, at, offset)? else {
            break;
        };
        match decode_into(&records, offset, w.to, limit, at.partition, None, &mut out) {
            Some(next) if next > offset => offset = next,
            _ => break,
        }
    }
    Ok(out)
}

/// One Fetch of the partition's records from `offset` (at most about
/// [`FETCH_BYTES`]); `None` when the answer has no such partition.
pub fn fetch_at(
    session: &mut Session,
    at: &Partition<'_>,
    offset: i64,
) -> Result<Option<bytes::Bytes>, ConsoleError> {
    let (topic, partition) = (at.topic, at.partition);
    let req = fetch_request(topic, partition, offset);
    let (_, resp) = session.send_to(at.leader, &req, FETCH_VERSIONS)?;
    let Some(pd) = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
    else {
        return Ok(None);
    };
    if pd.error_code != 0 {
        return Err(kafka_error(
            format!("fetching {topic}-{partition} at offset {offset}"),
            pd.error_code,
            None,
        ));
    }
    Ok(Some(pd.records.clone().unwrap_or_default()))
}

fn fetch_request(topic: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(FETCH_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(str_bytes(topic).into())
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(FETCH_BYTES)
                .with_log_start_offset(-1)
                .with_current_leader_epoch(-1)])])
}

/// Decodes the batches in `records` into `out`: records with offsets in
/// `[from, to)` (and matching `filter`, when there is one) until `out` holds
/// `limit`. Returns where the next fetch starts: the offset of the first
/// record left out for the limit, else the offset after the last batch
/// read; `None` when no whole batch was there. Control batches
/// (transaction markers) are skipped; a corrupt batch ends the page.
pub fn decode_into(
    records: &[u8],
    from: i64,
    to: i64,
    limit: usize,
    partition: i32,
    filter: Option<&Filter>,
    out: &mut Vec<Message>,
) -> Option<i64> {
    let mut next = None;
    let mut batches = Batches::stored(records);
    while let Some(Ok((pos, header))) = batches.next() {
        next = Some(header.last_offset().0 + 1);
        if header.is_control() || header.last_offset().0 < from {
            continue;
        }
        let Ok(reader) = BatchReader::new(&records[pos..], MAX_DECOMPRESSED) else {
            break;
        };
        for r in reader.records() {
            let Ok(r) = r else { break };
            if r.offset.0 < from {
                continue;
            }
            if r.offset.0 >= to {
                return next;
            }
            if filter.is_some_and(|f| !f.matches(r.key, r.value, r.headers)) {
                continue;
            }
            if out.len() >= limit {
                return Some(r.offset.0);
            }
            out.push(Message {
                partition,
                offset: r.offset.0,
                timestamp: r.timestamp.0,
                key: r.key.map(shown),
                key_size: r.key.map_or(0, <[u8]>::len),
                value: r.value.map(shown),
                value_size: r.value.map_or(0, <[u8]>::len),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            String::from_utf8_lossy(h.key).into_owned(),
                            h.value.map(shown),
                        )
                    })
                    .collect(),
            });
        }
    }
    next
}

fn shown(b: &[u8]) -> Vec<u8> {
    b[..b.len().min(MAX_SHOWN_BYTES)].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::{BatchBuilder, CompressionType, Offset, Timestamp};

    fn q(offset: Option<i64>, limit: usize, newest_first: bool) -> PageQuery {
        PageQuery {
            partition: 0,
            offset,
            limit,
            newest_first,
            timestamp: None,
            filter: None,
        }
    }

    #[test]
    fn newest_first_windows_end_at_the_end_and_page_backwards() {
        let r = OffsetRange { start: 5, end: 100 };
        assert_eq!(
            window(r, &q(None, 20, true)),
            Window {
                from: 80,
                to: 100,
                next: Some(80)
            }
        );
        assert_eq!(
            window(r, &q(Some(15), 20, true)),
            Window {
                from: 5,
                to: 15,
                next: None
            }
        );
        // Past the end or before the start: clamped.
        assert_eq!(window(r, &q(Some(1000), 1000, true)).to, 100);
        let long = OffsetRange {
            start: 0,
            end: 1000,
        };
        assert_eq!(
            window(long, &q(None, 100_000, true)).from,
            1000 - MAX_PAGE as i64
        );
        let empty = OffsetRange { start: 7, end: 7 };
        assert_eq!(
            window(empty, &q(None, 20, true)),
            Window {
                from: 7,
                to: 7,
                next: None
            }
        );
    }

    #[test]
    fn oldest_first_windows_start_at_the_offset() {
        let r = OffsetRange { start: 5, end: 100 };
        assert_eq!(
            window(r, &q(None, 20, false)),
            Window {
                from: 5,
                to: 25,
                next: Some(25)
            }
        );
        assert_eq!(
            window(r, &q(Some(90), 20, false)),
            Window {
                from: 90,
                to: 100,
                next: None
            }
        );
        assert_eq!(window(r, &q(Some(0), 0, false)).to, 6);
    }

    fn batch(base: i64, n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(CompressionType::None).base_offset(Offset(base));
        for i in 0..n {
            let v = format!("v{}", base + i as i64);
            b.append(Timestamp(1), Some(b"k"), Some(v.as_bytes()), &[])
                .unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn decoding_keeps_the_window_and_the_limit() {
        let mut bytes = batch(0, 5);
        bytes.extend(batch(5, 5));
        let mut out = Vec::new();
        assert_eq!(decode_into(&bytes, 3, 8, 100, 0, None, &mut out), Some(10));
        let offs: Vec<i64> = out.iter().map(|m| m.offset).collect();
        assert_eq!(offs, vec![3, 4, 5, 6, 7]);
        assert_eq!(out[0].value.as_deref(), Some(&b"v3"[..]));
        let mut out = Vec::new();
        assert_eq!(decode_into(&bytes, 0, 10, 2, 0, None, &mut out), Some(2));
        assert_eq!(out.len(), 2);
        // A torn last batch is left for the next fetch.
        let mut torn = batch(0, 3);
        let second = batch(3, 3);
        torn.extend_from_slice(&second[..second.len() - 1]);
        let mut out = Vec::new();
        assert_eq!(decode_into(&torn, 0, 10, 100, 0, None, &mut out), Some(3));
        assert_eq!(out.len(), 3);
        // Garbage decodes to nothing, without panicking.
        assert_eq!(
            decode_into(&[0xff; 100], 0, 10, 100, 0, None, &mut Vec::new()),
            None
        );
    }
}
