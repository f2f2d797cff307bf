//! DescribeLogDirs: every log dir with the partitions it holds, their
//! sizes in bytes and offset lags; v4+ also total and usable bytes of the
//! file system. As Kafka's `ReplicaManager.describeLogDirs`:
//!
//! - OffsetLag of a replica is `max(high watermark - log end offset, 0)`
//!   of this broker's replica (`getLogEndOffsetLag`). A leader's high
//!   watermark never passes its log end, and a follower's is
//!   min(leader's, own log end), so it is 0 for healthy replicas; Kafka
//!   reports a follower's distance from its leader in the fetcher lag
//!   (`sluice_replica_fetcher_lag` here). Kafka's future replicas (an
//!   AlterReplicaLogDirs move in progress, lag = current log end - future
//!   log end) do not exist here: Sluice refuses moves between dirs, so
//!   IsFuture is always false.
//! - A log dir that is offline answers KAFKA_STORAGE_ERROR with no
//!   partitions; topics without a listed partition are left out.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use sluice_record::Offset;

use crate::context::BrokerContext;

const KAFKA_STORAGE_ERROR: i16 = 56;

/// Kafka's OffsetLag of a current replica: how far its log end is below
/// its high watermark, never negative.
fn offset_lag(high_watermark: Offset, log_end: Offset) -> i64 {
    (high_watermark.value() - log_end.value()).max(0)
}

/// (total, usable) bytes of the file system holding `dir`, or (-1, -1).
fn fs_space(dir: &Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return (-1, -1);
    }
    let frsize = st.f_frsize as i64;
    (
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    )
}

pub async fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let version = header.request_api_version;
    // Which partitions to report: all, or the requested ones.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    });
    let mut partitions = ctx.replicas.partitions();
    partitions.sort_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
    let single_dir = ctx.config.log_dirs.len() == 1;
    let mut results = Vec::with_capacity(ctx.config.log_dirs.len());
    for dir in &ctx.config.log_dirs {
        let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for p in &partitions {
            let tp = p.topic_partition();
            if let Some(w) = &wanted {
                if !w
                    .get(&tp.topic)
                    .is_some_and(|ps| ps.contains(&tp.partition))
                {
                    continue;
                }
            }
            if !single_dir && !ctx.fs.exists(&dir.join(tp.dir_name())) {
                continue;
            }
            let log = p.log();
            topics.entry(tp.topic.clone()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_partition_size(i64::try_from(log.size_in_bytes()).unwrap_or(i64::MAX))
                    .with_offset_lag(offset_lag(p.high_watermark(), log.log_end_offset()))
                    .with_is_future_key(false),
            );
        }
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        if let Some(reason) = ctx.logs.offline_reason(dir) {
            tracing::warn!(dir = %abs.display(), %reason, "DescribeLogDirs: the log dir is offline");
            results.push(
                DescribeLogDirsResult::default()
                    .with_error_code(KAFKA_STORAGE_ERROR)
                    .with_log_dir(StrBytes::from_string(abs.to_string_lossy().into_owned()))
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1),
            );
            continue;
        }
        let mut r = DescribeLogDirsResult::default()
            .with_error_code(0)
            .with_log_dir(StrBytes::from_string(abs.to_string_lossy().into_owned()))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, ps)| {
                        DescribeLogDirsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        if version >= 4 {
            let (total, usable) = fs_space(dir);
            r = r.with_total_bytes(total).with_usable_bytes(usable);
        } else {
            r = r.with_total_bytes(-1).with_usable_bytes(-1);
        }
        results.push(r);
    }
    DescribeLogDirsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lag_is_the_high_watermark_above_the_log_end_never_negative() {
        assert_eq!(offset_lag(Offset(10), Offset(10)), 0);
        assert_eq!(
            offset_lag(Offset(7), Offset(10)),
            0,
            "a leader ahead of its HW"
        );
        assert_eq!(offset_lag(Offset(10), Offset(4)), 6);
    }
}
