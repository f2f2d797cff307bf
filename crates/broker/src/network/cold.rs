//! Cold reads on threads of their own (KAFKA-7504).
//!
//! Faulting an evicted segment range into the page cache waits for the
//! disk and, on this class of machine, costs a lot of CPU (fresh page-cache
//! pages, readahead). Here it runs on [`THREADS`] dedicated threads behind a
//! bounded queue, never on a network thread: a fetch waiting for a cold
//! range holds no thread that another connection needs, which is the whole
//! isolation (the network threads stay free whatever the cold threads do).
//! The threads run at the process's own priority, as Kafka's do: at nice 19
//! they starved whenever the machine was busy (at load 16-19 a cold piece
//! waited 15-340 ms at the median for its thread and consume fell to
//! 4-7 MB/s, against 1.5-4 ms and 35-110 MB/s at nice 0; BENCHMARKS.md,
//! "Cold reads"). The threads start with the first cold read; the queue in
//! front of them is bounded, so a flood of cold fetches waits for a slot
//! instead of growing memory.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

/// Dedicated cold-read threads.
pub const THREADS: usize = 2;
/// Jobs queued for the threads before callers wait for a slot.
const QUEUE: usize = 256;
/// The `tracing` target of the cold path's timings (debug events:
/// `RUST_LOG=sluice_broker::network::cold::stages=debug`): per cold read,
/// how long it waited for a cold-read thread and how long the prefault
/// ran; per non-hot fetch, the blocking-pool hop and the log read.
pub const STAGES: &str = "sluice_broker::network::cold::stages";

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

/// A cold read handed to a cold-read thread (or, without one, to the
/// blocking pool). It runs whether or not it is waited for, so a caller can
/// queue several before it waits for the first.
pub enum Queued<T> {
    Thread(oneshot::Receiver<T>),
    Pool(sluice_runtime::Blocking<T>),
    /// The threads are gone: it will not run.
    Lost,
}

impl<T> Queued<T> {
    /// The job's result; `None` if it panicked or could not run.
    pub async fn wait(self) -> Option<T> {
        match self {
            Queued::Thread(answer) => answer.await.ok(),
            Queued::Pool(blocking) => blocking.await.ok(),
            Queued::Lost => None,
        }
    }
}

/// Queues `f` for a cold-read thread, waiting only for a slot in the
/// bounded queue. Falls back to tokio's blocking pool when no cold-read
/// thread could be started.
pub async fn submit<T, F>(f: F) -> Queued<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // A simulation's disk never blocks, and a thread would finish at a
    // moment its seed does not decide: inline (as the blocking seam does).
    if sluice_runtime::is_simulated() {
        return Queued::Pool(sluice_runtime::spawn_blocking(f));
    }
    let Some(pool) = pool() else {
        return Queued::Pool(sluice_runtime::spawn_blocking(f));
    };
    let (reply, answer) = oneshot::channel();
    let queued = std::time::Instant::now();
    let job: Job = Box::new(move || {
        let started = std::time::Instant::now();
        let v = std::panic::catch_unwind(AssertUnwindSafe(f));
        tracing::debug!(
            target: STAGES,
            queued_us = started.duration_since(queued).as_micros() as u64,
            ran_us = started.elapsed().as_micros() as u64,
            "cold read"
        );
        if let Ok(v) = v {
            let _ = reply.send(v);
        }
    });
    if pool.tx.send(job).await.is_err() {
        return Queued::Lost;
    }
    Queued::Thread(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        submit(f).await.wait().await
    }

    fn thread_nice() -> i32 {
        // SAFETY: gettid and getpriority take plain integers and touch no
        // memory of ours; errno is cleared first because -1 is also a valid
        // niceness.
        unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn jobs_run_on_the_cold_threads_at_the_callers_priority() {
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
        // Not starved behind every other process of a busy machine: the
        // isolation is the separate thread, not a lower priority.
        assert_eq!(nice, caller_nice);
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
