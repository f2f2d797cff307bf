//! Storage engine: the partition log, modelled on Apache Kafka's log layer.
//!
//! This crate owns everything between RecordBatch bytes and the disk:
//!
//! * [`fs`] — the syscall seam ([`Fs`], [`FileHandle`], [`Clock`]) with the
//!   real implementation ([`RealFs`]: `pread`/`pwrite`, `fdatasync`,
//!   `preadv2(RWF_NOWAIT)`, `posix_fadvise`, `memmap2`), and [`sim::SimFs`],
//!   a deterministic in-memory file system that can inject failures and
//!   simulate a power cut.
//! * [`index`] — `OffsetIndex` (`.index`) and `TimeIndex` (`.timeindex`),
//!   sparse, memory-mapped, byte-compatible with Kafka's.
//! * [`segment`] — `LogSegment` (`<20-digit base>.log` + indexes), file
//!   slices for `sendfile`, and the bounded LRU of open inactive segments.
//! * [`log`] — `Log`: validate-then-append with offsets assigned by
//!   rewriting base offsets, reads, rolling, group-commit flushing, crash
//!   recovery on load, retention, `delete_records_before`, `truncate_to`,
//!   and log-directory failure handling.
//! * [`cleaner`] — the log cleaner (compaction): offset map, batch filter,
//!   the `.cleaned` / `.swap` / `.deleted` swap and its recovery,
//!   [`cleaner::LogCleaner`].
//! * [`manager`] — `LogManager`: log dirs, `recovery-point-offset-checkpoint`
//!   / `log-start-offset-checkpoint` / `replication-offset-checkpoint` (high
//!   watermarks), the `.kafka_cleanshutdown` marker.
//! * [`epoch_cache`] — the leader-epoch cache of each partition
//!   (`leader-epoch-checkpoint`, Kafka's `LeaderEpochFileCache`), kept by
//!   appends, truncation and log-start moves, rebuilt from batch headers
//!   when missing or corrupt; `Log::append_as_follower` appends a leader's
//!   batches as they are (`log/follower.rs`).
//! * [`headroom`] — the preallocated `.metadata-headroom` file of each log
//!   dir that only metadata writes may use, so a full disk can still
//!   delete, checkpoint and restart.
//! * [`producer_state`] — idempotent and transactional producers:
//!   per-partition `ProducerStateManager` (epoch + last five batches per
//!   producer id, its open transaction, the coordinator epoch), the
//!   sequence rules, the transaction rules by append origin and the first
//!   unstable offset (`producer_state/txn.rs`), `<offset>.snapshot` files;
//!   [`producer_id`] — producer id allocation with a durable high-water
//!   mark (`producer-id-block`).
//! * [`txn_index`] — the aborted-transaction index of each segment
//!   (`.txnindex`, Kafka's format), written when an ABORT marker is
//!   appended, read by read_committed fetches (`Log::collect_aborted_transactions`).
//! * [`meta_properties`] — `meta.properties` of every log dir and the
//!   metadata log dir (cluster id, node id, directory id), the
//!   `kafka-storage format` step, Kafka's UUIDs, and the start-up check that
//!   a node's dirs belong to its cluster and node id.
//!
//! On disk a Sluice log dir looks like Kafka's:
//!
//! ```text
//! <log.dir>/.kafka_cleanshutdown                (after a clean shutdown)
//! <log.dir>/.broker_running                     (Sluice's: epoch and boot id)
//! <log.dir>/recovery-point-offset-checkpoint
//! <log.dir>/log-start-offset-checkpoint
//! <log.dir>/replication-offset-checkpoint
//! <log.dir>/orders-0/leader-epoch-checkpoint
//! <log.dir>/orders-0/00000000000000000000.log
//! <log.dir>/orders-0/00000000000000000000.index
//! <log.dir>/orders-0/00000000000000000000.timeindex
//! <log.dir>/orders-0/00000000000000000000.txnindex   (once an ABORT is in the segment)
//! ```
//!
//! Behaviour worth knowing:
//!
//! * **Idempotence**: `append_as_leader` checks the producer id / epoch /
//!   sequence of every batch before writing. An exact retry of one of the
//!   producer's last five batches writes nothing and returns the original
//!   offsets (`AppendInfo::duplicate`); a gap or a bad epoch rejects the
//!   call. The state is snapshotted at every roll and at shutdown and rebuilt
//!   on load from the newest snapshot plus the batch headers after it.
//! * **Transactions** (KIP-98): a transactional batch opens its producer's
//!   transaction; [`Log::append_txn_marker`] ends it (the coordinator's
//!   rules: epochs by transaction version, coordinator fencing); the first
//!   unstable offset covers open transactions and completed ones whose
//!   marker the high watermark has not passed
//!   ([`Log::on_high_watermark_updated`]); ABORTs are indexed per segment,
//!   and the index is truncated, retained, cleaned and recovered with its
//!   segment. Appends carry an origin ([`log::AppendOrigin`]): clients get
//!   sequence checks and may not write control batches, coordinators get
//!   epoch checks, replication none.
//! * **Append** validates every batch of a call (framing, magic 2, CRC-32C,
//!   count vs last offset delta, `max.message.bytes`, timestamps against
//!   `message.timestamp.{before,after}.max.ms` for CreateTime topics) before
//!   a byte is written, then assigns offsets and writes the whole call with
//!   one `pwrite`. A failed or short write cuts the segment back to its last
//!   whole batch and returns [`StorageError::Io`] naming file and operation.
//! * **Durability**: `flush.messages` / `flush.ms` per log.
//!   [`Log::flush_until`] is a group commit: callers arriving while an fsync
//!   is in flight are covered by the next single `fdatasync`. A failed fsync
//!   takes the whole log directory offline ([`StorageError::LogDirOffline`]
//!   with the reason) until restart; other directories keep working.
//! * **Recovery**: with `.kafka_cleanshutdown` present only the active
//!   segment is scanned (Kafka scans nothing; fetches are zero-copy, so a
//!   damaged byte there would reach clients). Otherwise every segment from
//!   the one holding the checkpointed recovery point is scanned (CRC,
//!   framing and the offset rules of `recovery.rs`: the base offset lies
//!   outside the CRC), cut at the first torn, corrupt or misplaced batch,
//!   its indexes rebuilt, and every later segment deleted; progress is
//!   logged with `tracing`. Indexes of other segments are checked when
//!   first opened and rebuilt if missing, corrupt or stale.
//! * **Deletion**: segments removed by retention, `delete_records_before` or
//!   `truncate_to` are renamed `*.deleted` at once and removed after
//!   `file.delete.delay.ms` by the [`LogManager`]'s periodic calls (at once if
//!   the delay is `<= 0`; leftovers go when the log is next loaded).
//! * **Bounded handles**: active segments keep their log's fd and their
//!   index maps (an index closes its fd once mapped: one fd per segment);
//!   inactive ones open lazily through an LRU bounded by
//!   `LogManagerConfig::max_open_segment_files`.
//! * **A full disk** refuses appends, rolls and new logs with ENOSPC
//!   ([`StorageError::is_no_space`]) without taking the dir offline; index
//!   pages are allocated before maps write them, so nothing faults; loads
//!   and reads work, and deletions free space (see [`headroom`]).
//! * A read never crosses a segment boundary (as in Kafka); `preallocate` is
//!   accepted but not implemented.
//!
//! Storage never sees wire types. Batches are stored exactly as produced,
//! except the base offset, leader epoch and (for LogAppendTime topics) max
//! timestamp + CRC, or re-encoded in a topic's `compression.type` codec.
//! Every append walks each batch's records against its header
//! ([`validate`]: in place when uncompressed, streamed through the decoder
//! when compressed, keeping nothing). Records are decoded into memory only
//! by ListOffsets by timestamp (one batch, as Kafka does), by the
//! per-record checks of an append (keys on compacted topics; timestamps
//! when `message.timestamp.before.max.ms` is bounded or the header's are
//! out of range), by re-encoding, and by the log cleaner, which rewrites
//! (and recompresses with the same codec) the batches it removes records
//! from; all but the ListOffsets read draw on the broker-wide
//! [`budget::DecompressionBudget`].
//! It is synchronous and does not depend on tokio; the broker calls blocking
//! operations from a blocking pool.

pub mod budget;
pub mod checkpoint;
pub mod clean_shutdown;
pub mod cleaner;
pub mod config;
pub mod descriptors;
pub mod epoch_cache;
pub mod error;
pub mod fs;
pub mod fuzzing;
pub mod headroom;
pub mod index;
pub mod log;
pub mod manager;
pub mod meta_properties;
pub mod producer_id;
pub mod producer_state;
mod recovery;
pub mod segment;
pub mod sim;
pub mod txn_index;
pub mod validate;

#[cfg(test)]
mod testutil;

pub use budget::{DecompressionBudget, Reservation, DEFAULT_DECOMPRESSION_MEMORY_BYTES};
pub use cleaner::{CleanStats, CleanerConfig, LogCleaner};
pub use config::{
    CleanupPolicy, CompactionConfig, CompressionType, LogConfig, LogManagerConfig, TimestampType,
    TopicPartition,
};
pub use error::{RecordRejection, RejectedRecord, StorageError};
pub use fs::{Clock, FileHandle, Fs, ManualClock, MappedRegion, OpenOptions, RealFs, SystemClock};
pub use log::{AppendInfo, LoadOptions, Log, LogDirState, LogEnv, TxnMarker};
pub use manager::{LogManager, CLEAN_SHUTDOWN_FILE, METADATA_TOPIC};
pub use segment::{FileSlice, HandleCache, LogSegment};
pub use sim::{DiskSpeed, Fault, FaultKind, SimFs};
pub use sluice_record::{LeaderEpoch, Offset, Timestamp};
pub use validate::{validate_batches, validate_headers};
