//! Building RecordBatch v2 bytes from records, as a Kafka producer (or the
//! log cleaner) would.
//!
//! ```
//! use sluice_record::{BatchBuilder, BatchHeader, CompressionType, Header, Timestamp, records};
//!
//! let mut builder = BatchBuilder::new(CompressionType::Lz4);
//! builder.append(Timestamp(1_700_000_000_000), Some(b"k"), Some(b"v"),
//!     &[Header { key: b"trace", value: Some(b"1") }]).unwrap();
//! builder.append(Timestamp(1_700_000_000_005), None, None, &[]).unwrap();
//! let batch = builder.build().unwrap();
//!
//! let header = BatchHeader::validate(&batch).unwrap();
//! assert_eq!(header.record_count, 2);
//! let reader = records(&batch, 1 << 20).unwrap();
//! let values: Vec<_> = reader.records().map(|r| r.unwrap().value).collect();
//! assert_eq!(values, [Some(&b"v"[..]), None]);
//! ```

use crate::batch::{attr, CompressionType, BATCH_HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use crate::compression::compress;
use crate::error::RecordError;
use crate::record::{encode_record, encoded_record_size, Header, OwnedRecord, Record};
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};

/// Builds one RecordBatch v2. Records are encoded as they are appended; the
/// header, compression and CRC-32C are done by [`BatchBuilder::build`].
///
/// Defaults are those of a non-idempotent Kafka producer: base offset 0,
/// leader epoch -1, no producer id/epoch/sequence (-1), CreateTime, neither
/// transactional nor control.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    compression: CompressionType,
    base_offset: Offset,
    partition_leader_epoch: LeaderEpoch,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    log_append_time: Option<Timestamp>,
    last_offset_override: Option<Offset>,
    /// Encoded, uncompressed records.
    records: Vec<u8>,
    count: i32,
    last_offset_delta: Option<i32>,
    base_timestamp: Option<Timestamp>,
    max_timestamp: Timestamp,
}

impl BatchBuilder {
    pub fn new(compression: CompressionType) -> Self {
        BatchBuilder {
            compression,
            base_offset: Offset::ZERO,
            partition_leader_epoch: LeaderEpoch(-1),
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch(-1),
            base_sequence: -1,
            transactional: false,
            control: false,
            log_append_time: None,
            last_offset_override: None,
            records: Vec::new(),
            count: 0,
            last_offset_delta: None,
            base_timestamp: None,
            max_timestamp: Timestamp::NONE,
        }
    }

    /// The offset of the first record (a producer sends 0; the broker
    /// rewrites it). Set it before appending with absolute offsets.
    #[must_use]
    pub fn base_offset(mut self, offset: Offset) -> Self {
        self.base_offset = offset;
        self
    }

    #[must_use]
    pub fn partition_leader_epoch(mut self, epoch: LeaderEpoch) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Idempotent-producer fields: producer id, epoch and the sequence
    /// number of the first record.
    #[must_use]
    pub fn producer(mut self, id: ProducerId, epoch: ProducerEpoch, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    #[must_use]
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as a control batch (transaction markers).
    #[must_use]
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Makes it a LogAppendTime batch stamped `now`: readers see `now` as
    /// every record's timestamp, as Kafka's broker writes such batches.
    #[must_use]
    pub fn log_append_time(mut self, now: Timestamp) -> Self {
        self.log_append_time = Some(now);
        self
    }

    /// Keeps the batch's offset range ending at `last` even when its last
    /// records were removed, as Kafka's log cleaner does so that producer
    /// sequence numbers stay consistent. Ignored if a record lies beyond.
    #[must_use]
    pub fn last_offset(mut self, last: Offset) -> Self {
        self.last_offset_override = Some(last);
        self
    }

    /// Records appended so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if built uncompressed now; an upper bound for
    /// cutting batches at a size (compressed batches come out smaller, bar
    /// a few bytes of framing on incompressible data).
    pub fn uncompressed_size(&self) -> usize {
        BATCH_HEADER_SIZE + self.records.len()
    }

    /// Bytes `append` would add for this record before compression,
    /// counting a zero timestamp delta (other deltas add up to 9 bytes).
    pub fn record_size(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> usize {
        let delta = self.last_offset_delta.map_or(0, |d| d.saturating_add(1));
        encoded_record_size(delta, 0, key, value, headers).map_or(usize::MAX, |(n, _)| n)
    }

    /// Appends a record at the next offset; returns its offset.
    pub fn append(
        &mut self,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<Offset, RecordError> {
        let delta = match self.last_offset_delta {
            None => 0,
            Some(d) => d
                .checked_add(1)
                .ok_or(RecordError::Build("offset delta overflows i32"))?,
        };
        self.append_at_delta(delta, timestamp, key, value, headers)?;
        Ok(self.base_offset.plus(i64::from(delta)))
    }

    /// Appends a record at an absolute offset, which must lie after every
    /// record appended so far and at or after the base offset. The gaps this
    /// leaves are how compacted batches look.
    pub fn append_with_offset(
        &mut self,
        offset: Offset,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<(), RecordError> {
        let delta = offset
            .0
            .checked_sub(self.base_offset.0)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|&d| d >= 0)
            .ok_or(RecordError::Build(
                "offset before the base offset or more than 2^31 after it",
            ))?;
        if self.last_offset_delta.is_some_and(|last| delta <= last) {
            return Err(RecordError::Build("offsets must increase within a batch"));
        }
        self.append_at_delta(delta, timestamp, key, value, headers)
    }

    /// Re-encodes a decoded record at its own offset and timestamp (the
    /// compactor's copy). Its headers are copied as they are.
    pub fn append_record(&mut self, record: &Record<'_>) -> Result<(), RecordError> {
        let headers: Vec<Header<'_>> = record.headers.iter().collect();
        self.append_with_offset(
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            &headers,
        )
    }

    /// Appends an owned record at its own offset and timestamp.
    pub fn append_owned(&mut self, record: &OwnedRecord) -> Result<(), RecordError> {
        let headers: Vec<Header<'_>> = record.headers.iter().map(|h| h.as_header()).collect();
        self.append_with_offset(
            record.offset,
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        )
    }

    fn append_at_delta(
        &mut self,
        delta: i32,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> Result<(), RecordError> {
        if self.count == i32::MAX {
            return Err(RecordError::Build("more than 2^31 - 1 records"));
        }
        let base = *self.base_timestamp.get_or_insert(timestamp);
        // Kafka subtracts in plain 64-bit arithmetic; wrapping keeps every
        // timestamp representable and round-trips exactly.
        encode_record(
            &mut self.records,
            delta,
            timestamp.0.wrapping_sub(base.0),
            key,
            value,
            headers,
        )?;
        self.count += 1;
        self.last_offset_delta = Some(delta);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        Ok(())
    }

    fn attributes(&self) -> i16 {
        let mut a = self.compression.id();
        if self.log_append_time.is_some() {
            a |= attr::TIMESTAMP_TYPE;
        }
        if self.transactional {
            a |= attr::TRANSACTIONAL;
        }
        if self.control {
            a |= attr::CONTROL;
        }
        a
    }

    /// Compresses the records, writes the header and the CRC-32C, and
    /// returns the whole batch.
    pub fn build(self) -> Result<Vec<u8>, RecordError> {
        let body = match self.compression {
            CompressionType::None => None,
            codec => Some(compress(codec, &self.records)?),
        };
        let body: &[u8] = body.as_deref().unwrap_or(&self.records);
        let batch_length = i32::try_from(BATCH_HEADER_SIZE - LOG_OVERHEAD + body.len())
            .map_err(|_| RecordError::Build("batch larger than 2 GiB"))?;
        let mut last_offset_delta = self.last_offset_delta.unwrap_or(0);
        if let Some(last) = self.last_offset_override {
            let wanted = last
                .0
                .checked_sub(self.base_offset.0)
                .and_then(|d| i32::try_from(d).ok())
                .filter(|&d| d >= 0)
                .ok_or(RecordError::Build(
                    "last offset before the base offset or more than 2^31 after it",
                ))?;
            last_offset_delta = last_offset_delta.max(wanted);
        }
        let (base_timestamp, max_timestamp) = match (self.log_append_time, self.base_timestamp) {
            (Some(now), base) => (base.unwrap_or(now), now),
            (None, Some(base)) => (base, self.max_timestamp),
            (None, None) => (Timestamp::NONE, Timestamp::NONE),
        };

        let mut out = Vec::with_capacity(BATCH_HEADER_SIZE + body.len());
        out.extend_from_slice(&self.base_offset.0.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.0.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]); // CRC, filled in below
        out.extend_from_slice(&self.attributes().to_be_bytes());
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&base_timestamp.0.to_be_bytes());
        out.extend_from_slice(&max_timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.producer_id.0.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.0.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        debug_assert_eq!(out.len(), BATCH_HEADER_SIZE);
        out.extend_from_slice(body);
        let crc = crate::crc::crc32c(&out[CRC_END..]);
        out[CRC_START..CRC_END].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

const CRC_START: usize = 17;
const CRC_END: usize = 21;
