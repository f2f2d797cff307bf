//! Reads: file slices for fetches, and offset lookups by timestamp.

use super::*;

impl Log {
    /// Finds the batch holding `fetch_offset` and returns a slice of whole
    /// batches, at most `max_bytes` long unless the first batch is bigger and
    /// `min_one_batch` (KIP-74), holding no offset at or past `max_offset`
    /// (the high watermark; `None` = log end). `Ok(None)`: nothing to read.
    pub fn read(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
        max_offset: Option<Offset>,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, StorageError> {
        self.check()?;
        let (mut seg, lso, leo) = {
            let st = self.state.read();
            let seg = st
                .segments
                .range(..=fetch_offset.0)
                .next_back()
                .map(|(_, s)| s.clone());
            (seg, st.log_start_offset, st.log_end_offset)
        };
        if fetch_offset < lso || fetch_offset > leo {
            return Err(StorageError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start: lso,
                log_end: leo,
            });
        }
        let upper = max_offset.unwrap_or(leo).min(leo);
        if fetch_offset >= upper {
            return Ok(None);
        }
        let mut retries = 0;
        while let Some(s) = seg {
            let r = match s.read(fetch_offset, max_bytes, upper, min_one_batch) {
                Ok(r) => r,
                Err(e) => {
                    // The log cleaner or retention may have replaced or
                    // removed this segment since it was looked up (its files
                    // are renamed): look it up again (a few times).
                    let st = self.state.read();
                    let gone = !st
                        .segments
                        .get(&s.base_offset().0)
                        .is_some_and(|c| Arc::ptr_eq(c, &s));
                    if gone && retries < 4 {
                        retries += 1;
                        seg = st
                            .segments
                            .range(..=fetch_offset.0.max(s.base_offset().0))
                            .next_back()
                            .map(|(_, s)| s.clone());
                        continue;
                    }
                    return Err(e);
                }
            };
            if let Some(slice) = r {
                return Ok(Some(slice));
            }
            let st = self.state.read();
            seg = st
                .segments
                .range(s.base_offset().0 + 1..)
                .next()
                .filter(|(b, _)| **b < upper.0)
                .map(|(_, s)| s.clone());
        }
        Ok(None)
    }

    /// Reads whole batches from `fetch_offset` into memory (tests, tools).
    pub fn read_to_vec(
        &self,
        fetch_offset: Offset,
        max_bytes: usize,
    ) -> Result<Vec<u8>, StorageError> {
        match self.read(fetch_offset, max_bytes, None, true)? {
            Some(s) => s.read_to_vec(),
            None => Ok(Vec::new()),
        }
    }

    /// ListOffsets by timestamp: the offset and timestamp of the first
    /// record at or after the log start whose timestamp is `>= ts` (time
    /// index, then batch headers, then the records of one batch).
    pub fn offset_for_timestamp(
        &self,
        ts: Timestamp,
    ) -> Result<Option<(Offset, Timestamp)>, StorageError> {
        self.check()?;
        let (segs, lso) = {
            let st = self.state.read();
            (
                st.segments.values().cloned().collect::<Vec<_>>(),
                st.log_start_offset,
            )
        };
        for s in segs {
            if s.next_offset() <= lso && !s.is_active() {
                continue;
            }
            match s.max_timestamp()? {
                Some(m) if m.timestamp >= ts => {}
                _ => continue,
            }
            if let Some(found) = s.find_offset_by_timestamp(ts, lso)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest timestamp in the log and the
    /// offset of the first record carrying it, as Kafka answers since 3.8
    /// (KAFKA-16310): the record inside its batch, not the batch's last
    /// offset. Falls back to the batch's last offset when the batch cannot
    /// be decoded (e.g. a producer-set max above its records).
    pub fn max_timestamp_and_offset(&self) -> Option<(Timestamp, Offset)> {
        let segs = self.segments();
        let mut best: Option<(Timestamp, Offset, usize)> = None;
        for (i, s) in segs.iter().enumerate() {
            if let Ok(Some(m)) = s.max_timestamp() {
                if best.is_none_or(|(t, _, _)| m.timestamp > t) {
                    best = Some((m.timestamp, m.offset, i));
                }
            }
        }
        let (ts, batch_last, i) = best?;
        let seg = &segs[i];
        match seg.find_offset_by_timestamp(ts, seg.base_offset()) {
            Ok(Some((offset, found))) if found == ts && offset <= batch_last => Some((ts, offset)),
            _ => Some((ts, batch_last)),
        }
    }
}
