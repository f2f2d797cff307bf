//! File descriptors: the broker's budget (`RLIMIT_NOFILE`), raised at
//! start, and the WARN when it runs out. A partition holds one descriptor
//! (its active segment's log; index maps outlive theirs), inactive
//! segments one each through the LRU (docs/operations.md).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::fs::{Clock, SystemClock};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as many servers do
/// at start: each partition holds a descriptor (its active segment's log),
/// and the common soft default of 1,024 would cap a broker at fewer than a
/// thousand partitions. Returns the soft limit before and after.
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok((before, before));
    }
    let mut want = lim.rlim_max;
    if want == libc::RLIM_INFINITY {
        // The kernel refuses more than fs.nr_open descriptors.
        want = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    lim.rlim_cur = want;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before, want))
}

/// The soft `RLIMIT_NOFILE` and the descriptors open now. They are counted
/// by asking the kernel about each descriptor number below the limit
/// (`fcntl(F_GETFD)`), which needs no descriptor of its own: reading
/// `/proc/self/fd` would fail exactly when they have run out.
pub fn descriptor_usage() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid pointer to a local.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let limit = lim.rlim_cur;
    let probe = limit.min(1 << 22) as libc::c_int;
    // SAFETY: F_GETFD only reads the descriptor table.
    let open = (0..probe)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count() as u64;
    (limit, open)
}

/// Logs that descriptors ran out (at most once every 10 s), with the limit
/// and the count: the operation fails with EMFILE, the broker keeps serving.
pub(crate) fn warn_out_of_descriptors(path: &Path, e: &io::Error) {
    static LAST_WARN_MS: AtomicI64 = AtomicI64::new(i64::MIN);
    let now = SystemClock.now_ms();
    let last = LAST_WARN_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 10_000
        || LAST_WARN_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let (limit, open) = descriptor_usage();
    tracing::warn!(
        path = %path.display(),
        error = %e,
        limit,
        open,
        "out of file descriptors (RLIMIT_NOFILE {limit}, {open} open): the operation is refused; raise the limit (ulimit -n / LimitNOFILE) or lower the partition count"
    );
}
