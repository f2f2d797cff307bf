//! The runtime seams beside the file system (`sluice_storage::Fs`), the
//! clock (`sluice_storage::Clock`) and the network
//! (`sluice_transport::net`): where blocking work runs ([`spawn_blocking`],
//! [`spawn_thread`]) and where randomness comes from ([`random_uuid`],
//! [`Rng`]).
//!
//! Outside a simulation they are tokio's blocking pool, OS threads and the
//! OS's entropy. A deterministic simulation runs every simulated host on
//! one thread and calls [`simulate_on_this_thread`] with its seed first;
//! from then on, on that thread:
//!
//! - blocking work runs inline, at the call (simulated disks never block,
//!   and a pool thread would finish at a moment the seed does not decide);
//! - ids and random draws come from one generator seeded by the seed;
//! - a slow simulated disk's latency is paid in simulated time by the
//!   work that touched it ([`disk`]).
//!
//! Invariant: with the simulation switched on, nothing here starts an OS
//! thread or reads the OS's entropy, so a seed replays the same run.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub mod disk;
pub use disk::{disk_io, DiskStall};

thread_local! {
    /// The seeded generator while this thread runs a simulation.
    static SIM: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Switches this thread to the simulation's runtime: inline blocking work,
/// randomness from `seed`. Call it before any simulated host starts.
pub fn simulate_on_this_thread(seed: u64) {
    SIM.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// Switches this thread back to the real runtime (between seeds a test
/// calls [`simulate_on_this_thread`] again instead).
pub fn stop_simulating_on_this_thread() {
    SIM.with(|s| *s.borrow_mut() = None);
}

/// Whether this thread runs a simulation.
pub fn is_simulated() -> bool {
    SIM.with(|s| s.borrow().is_some())
}

/// Why blocking work gave no result.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("blocking task panicked: {0}")]
    Panicked(String),
    #[error("blocking task cancelled")]
    Cancelled,
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Blocking work in progress: resolves with its result.
pub struct Blocking<T> {
    inner: BlockingInner<T>,
}

enum BlockingInner<T> {
    Done(Option<Result<T, RuntimeError>>),
    /// Done under a simulation, on a slow disk: the result once the
    /// disk's latency has passed.
    Slow(disk::Wait, Option<Result<T, RuntimeError>>),
    Pool(JoinHandle<T>),
}

// The result is only ever moved out, never pinned.
impl<T> Unpin for Blocking<T> {}

impl<T> Future for Blocking<T> {
    type Output = Result<T, RuntimeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            BlockingInner::Done(result) => {
                Poll::Ready(result.take().expect("Blocking polled after completion"))
            }
            BlockingInner::Slow(wait, result) => wait
                .as_mut()
                .poll(cx)
                .map(|()| result.take().expect("Blocking polled after completion")),
            BlockingInner::Pool(handle) => Pin::new(handle).poll(cx).map(|r| {
                r.map_err(|e| match e.try_into_panic() {
                    Ok(p) => RuntimeError::Panicked(panic_message(p)),
                    Err(_) => RuntimeError::Cancelled,
                })
            }),
        }
    }
}

/// Runs `f` where blocking is allowed: tokio's blocking pool, or inline
/// under a simulation. The work starts at the call, as tokio's does.
pub fn spawn_blocking<F, T>(f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let inner = if is_simulated() {
        let (result, wait) = disk::measured(|| {
            std::panic::catch_unwind(AssertUnwindSafe(f))
                .map_err(|p| RuntimeError::Panicked(panic_message(p)))
        });
        match wait {
            None => BlockingInner::Done(Some(result)),
            Some(wait) => BlockingInner::Slow(wait, Some(result)),
        }
    } else {
        BlockingInner::Pool(tokio::task::spawn_blocking(f))
    };
    Blocking { inner }
}

/// Runs `f` on a new named OS thread, detached; under a simulation, inline
/// at the call.
pub fn spawn_thread<F>(name: &str, f: F) -> std::io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    if is_simulated() {
        f();
        return Ok(());
    }
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(|_| ())
}

/// A random (version 4) UUID: from the OS, or from the simulation's seed.
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    Rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A random number: from the OS, or from the simulation's seed.
pub fn random_u64() -> u64 {
    Rng.next_u64()
}

/// `N` random bytes (a nonce): from the OS, or from the simulation's seed.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    Rng.fill_bytes(&mut bytes);
    bytes
}

/// Random draws: from the simulation's seeded generator on a simulating
/// thread, else from `rand::thread_rng` (the OS's entropy).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rng;

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        SIM.with(|s| match s.borrow_mut().as_mut() {
            Some(rng) => rng.next_u64(),
            None => rand::thread_rng().next_u64(),
        })
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        SIM.with(|s| match s.borrow_mut().as_mut() {
            Some(rng) => rng.fill_bytes(dest),
            None => rand::thread_rng().fill_bytes(dest),
        })
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn simulated_blocking_work_runs_inline_and_real_work_on_the_pool() {
        let caller = std::thread::current().id();
        let real = spawn_blocking(move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(real, caller);
        simulate_on_this_thread(1);
        let sim = spawn_blocking(move || std::thread::current().id());
        // Done before it is awaited: it ran at the call.
        assert!(matches!(sim.inner, BlockingInner::Done(Some(Ok(_)))));
        assert_eq!(sim.await.unwrap(), caller);
        let mut ran_on = None;
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_thread("t", move || tx.send(std::thread::current().id()).unwrap()).unwrap();
        if let Ok(id) = rx.try_recv() {
            ran_on = Some(id);
        }
        assert_eq!(ran_on, Some(caller), "the thread body ran inline");
        stop_simulating_on_this_thread();
    }

    #[tokio::test]
    async fn a_panic_in_blocking_work_is_an_error_both_ways() {
        let real = spawn_blocking(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(real, Err(RuntimeError::Panicked(m)) if m == "boom"));
        simulate_on_this_thread(1);
        let sim = spawn_blocking(|| -> u8 { panic!("bang") }).await;
        assert!(matches!(sim, Err(RuntimeError::Panicked(m)) if m == "bang"));
        stop_simulating_on_this_thread();
    }

    #[test]
    fn a_seed_decides_the_ids_and_the_os_does_otherwise() {
        simulate_on_this_thread(42);
        let a: Vec<Uuid> = (0..3).map(|_| random_uuid()).collect();
        simulate_on_this_thread(42);
        let b: Vec<Uuid> = (0..3).map(|_| random_uuid()).collect();
        assert_eq!(a, b);
        assert_eq!(a[0].get_version_num(), 4);
        simulate_on_this_thread(43);
        assert_ne!(random_uuid(), a[0]);
        stop_simulating_on_this_thread();
        assert_ne!(random_uuid(), random_uuid());
    }
}
