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
//! The work runs inline, at one instant, but a real disk would have served
//! its writes and fsyncs one after another: an fsync charged by a disk
//! ([`charge_op`]) costs what the disk's speed is when its turn comes
//! ([`DiskNow`]), not what it was when the work ran. So a recovery of
//! forty fsyncs that began on a disk slowed to 780 ms per fsync costs
//! only until the disk is fast again, not 31 s (seed 7175 stayed fenced
//! for good that way: its metadata loader paid such a charge).
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

/// The cost of disk work: what it must wait out, in order.
#[derive(Default)]
struct Charge {
    items: Vec<Item>,
}

/// One part of a charge.
enum Item {
    /// A fixed latency.
    Latency(Duration),
    /// A stall, until its release.
    Stall(DiskStall),
    /// A write (`false`) or fsync (`true`) of a disk whose cost is asked
    /// when its turn comes.
    Op(Arc<dyn DiskNow>, bool),
}

/// What one write or fsync costs on a simulated disk at a given moment.
#[derive(Clone, Debug)]
pub enum DiskCost {
    Free,
    Latency(Duration),
    /// Until the stall's release (then the disk is asked again).
    Stall(DiskStall),
}

/// A simulated disk whose speed may change while work waits on it.
pub trait DiskNow: Send + Sync {
    /// What a write (`sync` false) or fsync costs now.
    fn cost(&self, sync: bool) -> DiskCost;
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
        CHARGE.with(|c| c.borrow_mut().items.push(Item::Latency(latency)));
    }
}

/// Charges a write (`sync` false) or fsync of `disk` to the disk work
/// running on this thread, to cost what `disk` says when its turn comes;
/// nothing outside a simulation.
pub fn charge_op(disk: Arc<dyn DiskNow>, sync: bool) {
    if is_simulated() {
        CHARGE.with(|c| c.borrow_mut().items.push(Item::Op(disk, sync)));
    }
}

/// Makes the disk work running on this thread wait out `stall` (a write
/// or fsync on a stalled disk); nothing outside a simulation or once the
/// stall is over.
pub fn charge_stall(stall: &DiskStall) {
    if is_simulated() && !stall.is_released() {
        CHARGE.with(|c| c.borrow_mut().items.push(Item::Stall(stall.clone())));
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
    if charge.items.is_empty() {
        return (out, None);
    }
    let wait = async move {
        for item in charge.items {
            match item {
                Item::Latency(d) => tokio::time::sleep(d).await,
                Item::Stall(stall) => stall.wait().await,
                Item::Op(disk, sync) => loop {
                    match disk.cost(sync) {
                        DiskCost::Free => break,
                        DiskCost::Latency(d) => {
                            tokio::time::sleep(d).await;
                            break;
                        }
                        DiskCost::Stall(stall) => stall.wait().await,
                    }
                },
            }
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

    /// A disk whose speed the test changes.
    struct Knob(std::sync::Mutex<DiskCost>);
    impl DiskNow for Knob {
        fn cost(&self, _sync: bool) -> DiskCost {
            self.0.lock().unwrap().clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_costs_what_the_disk_costs_when_its_turn_comes() {
        simulate_on_this_thread(1);
        let disk = Arc::new(Knob(std::sync::Mutex::new(DiskCost::Latency(
            Duration::from_secs(1),
        ))));
        let d = disk.clone();
        let began = Instant::now();
        let work = tokio::spawn(async move {
            disk_io(|| {
                for _ in 0..40 {
                    charge_op(d.clone(), true);
                }
            })
            .await;
            Instant::now()
        });
        // Three fsyncs and a half at 1 s each, then the disk is fast: the
        // other 36 cost nothing (charged at once, they would cost 40 s).
        tokio::time::sleep(Duration::from_millis(3500)).await;
        *disk.0.lock().unwrap() = DiskCost::Free;
        let done = work.await.unwrap();
        assert_eq!(done - began, Duration::from_secs(4));
        // A stall holds the operation, then it costs the speed after it.
        let stall = DiskStall::new();
        *disk.0.lock().unwrap() = DiskCost::Stall(stall.clone());
        let d = disk.clone();
        let began = Instant::now();
        let work = tokio::spawn(async move {
            disk_io(|| charge_op(d, false)).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        *disk.0.lock().unwrap() = DiskCost::Latency(Duration::from_millis(30));
        stall.release();
        let done = work.await.unwrap();
        assert_eq!(done - began, Duration::from_millis(2030));
        stop_simulating_on_this_thread();
    }

    #[tokio::test]
    async fn nothing_is_charged_outside_a_simulation() {
        let began = std::time::Instant::now();
        disk_io(|| charge(Duration::from_secs(60))).await;
        assert!(began.elapsed() < Duration::from_secs(30));
    }
}
