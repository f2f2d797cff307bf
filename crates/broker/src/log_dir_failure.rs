//! What a broker does once a log directory fails (Kafka's
//! `ReplicaManager.handleLogDirFailure` and `LogManager.handleLogDirFailure`).
//!
//! The storage layer takes a directory offline on an I/O error it cannot
//! undo (a failed fsync, a write whose partial bytes could not be cut
//! back): from then on every log in it answers KAFKA_STORAGE_ERROR, and
//! nothing it wrote since its last good fsync is trusted. As Kafka's, the
//! broker then halts when the failed directory holds the metadata log
//! (`metadata.log.dir`) or when no log directory is left online: its
//! leaderships move away once the controller misses its heartbeats, and a
//! restart recovers the directory from what is on disk.
//!
//! A failure that leaves other directories online keeps the broker up,
//! serving KAFKA_STORAGE_ERROR for the failed directory's partitions;
//! telling the controller (KIP-858's offline directories in the broker
//! heartbeat) so that their leaderships move is not built yet.

use std::path::Path;
use std::time::Duration;

use sluice_storage::LogManager;

use crate::context::BrokerContext;

/// How often the directories' health is looked at (Kafka's handler thread
/// waits on a queue; the check is a few atomic loads).
const POLL: Duration = Duration::from_millis(100);

/// Why the broker must halt now, if it must: the metadata log's directory
/// or every log directory is offline.
pub fn fatal_reason(logs: &LogManager, metadata_dir: &Path) -> Option<String> {
    let dirs = logs.log_dirs();
    let offline: Vec<(&Path, String)> = dirs
        .iter()
        .filter_map(|d| Some((d.as_path(), logs.offline_reason(d)?)))
        .collect();
    if let Some((d, why)) = offline.iter().find(|(d, _)| *d == metadata_dir) {
        return Some(format!(
            "the metadata log dir {} has failed: {why}",
            d.display()
        ));
    }
    if !dirs.is_empty() && offline.len() == dirs.len() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Some(format!(
            "all log dirs in {} have failed: {}",
            names.join(", "),
            offline[0].1
        ));
    }
    None
}

/// Resolves with the reason once the broker must halt for a failed log
/// directory (see the module docs); never otherwise.
pub async fn fatal(ctx: &BrokerContext) -> String {
    let metadata_dir = match &ctx.config.kraft {
        Some(k) => k.metadata_log_dir.clone(),
        None => crate::metadata::metadata_log_dir(&ctx.config),
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(why) = fatal_reason(&ctx.logs, &metadata_dir) {
            tracing::error!(reason = %why, "halting: a log directory failed");
            return why;
        }
    }
}
