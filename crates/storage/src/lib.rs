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
//! * [`manager`] — `LogManager`: log dirs, `recovery-point-offset-checkpoint`
//!   / `log-start-offset-checkpoint`, the `.kafka_cleanshutdown` marker.
//!
//! On disk a Sluice log dir looks like Kafka's:
//!
//! ```text
//! <log.dir>/.kafka_cleanshutdown                (after a clean shutdown)
//! <log.dir>/recovery-point-offset-checkpoint
//! <log.dir>/log-start-offset-checkpoint
//! <log.dir>/orders-0/00000000000000000000.log
//! <log.dir>/orders-0/00000000000000000000.index
//! <log.dir>/orders-0/00000000000000000000.timeindex
//! ```
//!
//! Storage never sees wire types and never decompresses: batches are stored
//! exactly as produced, except the base offset, leader epoch and (for
//! LogAppendTime topics) max timestamp + CRC. It is synchronous and does not
//! depend on tokio; the broker calls blocking operations from a blocking pool.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod fs;
pub mod index;
pub mod log;
pub mod manager;
pub mod segment;
pub mod sim;

#[cfg(test)]
mod testutil;

pub use config::{LogConfig, LogManagerConfig, TimestampType, TopicPartition};
pub use error::StorageError;
pub use fs::{Clock, FileHandle, Fs, ManualClock, MappedRegion, OpenOptions, RealFs, SystemClock};
pub use log::{validate_batches, AppendInfo, LoadOptions, Log, LogDirState, LogEnv};
pub use manager::{LogManager, CLEAN_SHUTDOWN_FILE};
pub use segment::{FileSlice, HandleCache, LogSegment};
pub use sim::{Fault, FaultKind, SimFs};
pub use sluice_record::{LeaderEpoch, Offset, Timestamp};
