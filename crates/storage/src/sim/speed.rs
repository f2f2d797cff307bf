//! How fast a simulated disk is: instant (the default), slow (each write
//! and fsync costs a latency), or stalled (each waits for the stall's
//! release). The cost is charged to the calling thread and paid in
//! simulated time where the caller waits for disk work, at the speed the
//! disk has when each operation's turn comes (see `sluice_runtime::disk`);
//! the bytes themselves move at once, so a crash
//! while work waits out its latency keeps what a real disk would have
//! received by then at most.

use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::disk::{charge_op, DiskCost, DiskNow};
use sluice_runtime::DiskStall;

/// A simulated disk's speed ([`super::SimFs::set_speed`]).
#[derive(Clone, Debug, Default)]
pub enum DiskSpeed {
    #[default]
    Instant,
    /// Each write (and preallocation) costs `write`, each fsync (file,
    /// directory or map flush) `sync`.
    Slow { write: Duration, sync: Duration },
    /// Every write and fsync waits until the stall is released.
    Stalled(DiskStall),
}

impl DiskSpeed {
    /// Charges a write (`sync` false) or fsync of `disk` (whose speed is
    /// this one now) to the calling thread: it costs what the disk's speed
    /// is when the operation's turn comes (see `sluice_runtime::disk`).
    /// Nothing on an instant disk.
    pub(super) fn charge(&self, disk: Arc<dyn DiskNow>, sync: bool) {
        if !matches!(self, DiskSpeed::Instant) {
            charge_op(disk, sync);
        }
    }

    /// What a write or fsync costs at this speed.
    pub(super) fn cost(&self, sync: bool) -> DiskCost {
        match self {
            DiskSpeed::Instant => DiskCost::Free,
            DiskSpeed::Slow { write, sync: s } => DiskCost::Latency(if sync { *s } else { *write }),
            DiskSpeed::Stalled(stall) if !stall.is_released() => DiskCost::Stall(stall.clone()),
            DiskSpeed::Stalled(_) => DiskCost::Free,
        }
    }

    /// Ends a stall (work waiting for it goes on); nothing otherwise.
    pub(super) fn release(&self) {
        if let DiskSpeed::Stalled(stall) = self {
            stall.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::time::Instant;

    use super::*;
    use crate::fs::{Fs, OpenOptions};
    use crate::SimFs;

    #[tokio::test(start_paused = true)]
    async fn a_slow_disk_costs_simulated_time_and_a_stall_lasts_until_released() {
        sluice_runtime::simulate_on_this_thread(1);
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let file = fs
            .open(Path::new("/d/f"), &OpenOptions::create_truncate())
            .unwrap();
        let append = move || {
            file.write_at(b"x", 0).unwrap();
            file.sync_data().unwrap();
        };
        let write = Duration::from_millis(3);
        let sync = Duration::from_millis(250);
        fs.set_speed(DiskSpeed::Slow { write, sync });
        let began = Instant::now();
        let a = append.clone();
        sluice_runtime::spawn_blocking(a).await.unwrap();
        assert_eq!(began.elapsed(), write + sync);

        let stall = DiskStall::new();
        fs.set_speed(DiskSpeed::Stalled(stall.clone()));
        let a = append.clone();
        let waiting = tokio::spawn(sluice_runtime::disk_io(a));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!waiting.is_finished(), "a stalled fsync waits");
        // Back to an instant disk: the stall it replaces is released.
        fs.set_speed(DiskSpeed::Instant);
        waiting.await.unwrap();
        assert!(stall.is_released());
        let began = Instant::now();
        sluice_runtime::disk_io(append).await;
        assert_eq!(began.elapsed(), Duration::ZERO);
        sluice_runtime::stop_simulating_on_this_thread();
    }
}
