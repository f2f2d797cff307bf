//! Cold reads at low CPU priority, on threads of their own (KAFKA-7504).
//!
//! Faulting an evicted segment range into the page cache costs disk waits
//! and, on this class of machine, a lot of CPU (fresh page-cache pages,
//! readahead). On tokio's shared blocking pool that work competed at normal
//! priority with the network threads serving producers. Here it runs on
//! [`THREADS`] dedicated threads lowered to nice [`NICE`] once, at start
//! (an unprivileged thread cannot raise its priority back, which is why
//! these threads are not shared with anything else): whenever a producer's
//! network thread wants the CPU, it gets it first. The threads start with
//! the first cold read; the queue in front of them is bounded, so a flood of
//! cold fetches waits for a slot instead of growing memory.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

/// Dedicated cold-read threads.
pub const THREADS: usize = 2;
/// The niceness those threads run at (the lowest CFS weight).
pub const NICE: i32 = 19;
/// Jobs queued for the threads before callers wait for a slot.
const QUEUE: usize = 256;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    tx: mpsc::Sender<Job>,
}

fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        let mut started = 0;
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sluice-cold-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // One thread waits on the queue at a time; the
                        // others wait for the lock, which it releases as
                        // soon as it has a job.
                        let job = rx.lock().blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "cannot start a cold-read thread"),
            }
        }
        (started > 0).then_some(Pool { tx })
    })
    .as_ref()
}

/// Runs `f` on a low-priority cold-read thread and returns its result.
/// `None` if `f` panicked. Falls back to tokio's blocking pool when no
/// cold-read thread could be started.
pub async fn run<T, F>(f: F) -> Option<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // A simulation's disk never blocks, and a thread would finish at a
    // moment its seed does not decide: inline (as the blocking seam does).
    if sluice_runtime::is_simulated() {
        return sluice_runtime::spawn_blocking(f).await.ok();
    }
    let Some(pool) = pool() else {
        return sluice_runtime::spawn_blocking(f).await.ok();
    };
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move || {
        if let Ok(v) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
            let _ = reply.send(v);
        }
    });
    if pool.tx.send(job).await.is_err() {
        return None;
    }
    answer.await.ok()
}

/// Lowers the calling thread (only it: Linux applies `setpriority` with
/// `PRIO_PROCESS` and a thread id to that thread) to [`NICE`].
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no
        // memory of ours.
        let r = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
        };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the cold-read thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_nice() -> i32 {
        // SAFETY: as in lower_priority; errno is cleared first because -1
        // is also a valid niceness.
        unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn jobs_run_on_low_priority_threads_and_callers_keep_theirs() {
        let caller_nice = thread_nice();
        let caller = std::thread::current().id();
        let (nice, name, id) = run(|| {
            (
                thread_nice(),
                std::thread::current().name().map(str::to_string),
                std::thread::current().id(),
            )
        })
        .await
        .expect("job ran");
        assert_ne!(id, caller);
        assert!(name.unwrap_or_default().starts_with("sluice-cold-"));
        // Unprivileged test runs may already be at a high niceness; the
        // thread is at NICE either way, and the caller was not lowered.
        assert_eq!(nice, NICE);
        assert_eq!(thread_nice(), caller_nice);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_panicking_job_answers_none_and_the_threads_survive() {
        let r: Option<()> = run(|| panic!("boom")).await;
        assert!(r.is_none());
        let many: Vec<_> = (0..THREADS * 4).map(|i| run(move || i * 2)).collect();
        for (i, f) in many.into_iter().enumerate() {
            assert_eq!(f.await, Some(i * 2));
        }
    }
}
