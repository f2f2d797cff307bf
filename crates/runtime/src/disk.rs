//! Simulated disk time: a slow or stalled simulated disk makes the work
//! that touched it take simulated time.
//!
//! A simulated disk (`sluice_storage::SimFs`) never blocks: its calls
//! return at once, inline. When the simulation makes a disk slow, each
//! write or fsync instead [`charge`]s its latency (or a [`DiskStall`] it
//! must wait out) to the calling thread, and the code that waits for disk
//! work pays the charge in simulated time before it sees the result:
//! [`crate::spawn_blocking`] under a simulation, and [`disk_io`] where
//! async code calls the disk directly (the metadata log's appends).
//!
//! Invariants: a charge is paid only by the work that ran up its cost
//! (each waiting point takes the charges made between its start and its
//! end, with no await in between, so one simulated host never pays for
//! another's); outside a simulation nothing is ever charged and
//! [`disk_io`] runs its work with no wait.
//!
//! What this does not model: a real disk serves one request after another,
//! while here concurrent callers each wait their own latency.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::is_simulated;

thread_local! {
    /// What the disk work running on this thread has cost so far.
    static CHARGE: RefCell<Charge> = RefCell::new(Charge::default());
}

/// The cost of disk work: a latency, and the stalls it must wait out first.
#[derive(Default)]
struct Charge {
    latency: Duration,
    stalls: Vec<DiskStall>,
}

/// A stalled disk: every write and fsync made while it is stalled waits
/// until [`DiskStall::release`], however long that takes.
#[derive(Clone, Debug, Default)]
pub struct DiskStall(Arc<StallState>);

#[derive(Debug, Default)]
struct StallState {
    released: AtomicBool,
    notify: Notify,
}

impl DiskStall {
    pub fn new() -> Self {
        DiskStall::default()
    }

    /// Ends the stall: the work waiting for it goes on.
    pub fn release(&self) {
        self.0.released.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_released(&self) -> bool {
        self.0.released.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_released() {
                return;
            }
            notified.await;
        }
    }
}

/// Charges `latency` to the disk work running on this thread (a slow
/// disk's write or fsync); nothing outside a simulation.
pub fn charge(latency: Duration) {
    if is_simulated() {
        CHARGE.with(|c| c.borrow_mut().latency += latency);
    }
}

/// Makes the disk work running on this thread wait out `stall` (a write
/// or fsync on a stalled disk); nothing outside a simulation or once the
/// stall is over.
pub fn charge_stall(stall: &DiskStall) {
    if is_simulated() && !stall.is_released() {
        CHARGE.with(|c| c.borrow_mut().stalls.push(stall.clone()));
    }
}

fn take() -> Charge {
    CHARGE.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// What the waiting point pays: the stalls, then the latency.
pub(crate) type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `f` (disk work, inline) and returns what it cost, if anything.
pub(crate) fn measured<T>(f: impl FnOnce() -> T) -> (T, Option<Wait>) {
    // Charges nobody waited for (disk calls outside any waiting point)
    // are dropped, not paid by this work.
    drop(take());
    let out = f();
    let charge = take();
    if charge.latency.is_zero() && charge.stalls.is_empty() {
        return (out, None);
    }
    let wait = async move {
        for stall in &charge.stalls {
            stall.wait().await;
        }
        if !charge.latency.is_zero() {
            tokio::time::sleep(charge.latency).await;
        }
    };
    (out, Some(Box::pin(wait)))
}

/// Runs `f`, disk work called from async code, at once, and returns its
/// result once a slow simulated disk's latency has passed (at once on
/// any other disk).
pub async fn disk_io<T>(f: impl FnOnce() -> T) -> T {
    let (out, wait) = measured(f);
    if let Some(wait) = wait {
        wait.await;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{simulate_on_this_thread, spawn_blocking, stop_simulating_on_this_thread};
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_charge_is_paid_by_the_work_that_made_it() {
        simulate_on_this_thread(1);
        charge(Duration::from_secs(60)); // outside any waiting point: dropped
        let began = Instant::now();
        let v = disk_io(|| {
            charge(Duration::from_millis(30));
            charge(Duration::from_millis(20));
            7
        })
        .await;
        assert_eq!(v, 7);
        assert_eq!(began.elapsed(), Duration::from_millis(50));
        let began = Instant::now();
        let v = spawn_blocking(|| {
            charge(Duration::from_millis(400));
            8
        })
        .await
        .unwrap();
        assert_eq!(v, 8);
        assert_eq!(began.elapsed(), Duration::from_millis(400));
        let began = Instant::now();
        disk_io(|| ()).await;
        assert_eq!(began.elapsed(), Duration::ZERO);
        stop_simulating_on_this_thread();
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_work_waits_for_the_release() {
        simulate_on_this_thread(1);
        let stall = DiskStall::new();
        let s = stall.clone();
        let began = Instant::now();
        let work = tokio::spawn(async move {
            disk_io(|| charge_stall(&s)).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!work.is_finished());
        stall.release();
        let done = work.await.unwrap();
        assert_eq!(done - began, Duration::from_secs(5));
        // A released stall costs nothing.
        let began = Instant::now();
        disk_io(|| charge_stall(&stall)).await;
        assert_eq!(began.elapsed(), Duration::ZERO);
        stop_simulating_on_this_thread();
    }

    #[tokio::test]
    async fn nothing_is_charged_outside_a_simulation() {
        let began = std::time::Instant::now();
        disk_io(|| charge(Duration::from_secs(60))).await;
        assert!(began.elapsed() < Duration::from_secs(30));
    }
}
