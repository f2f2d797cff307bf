//! Group-commit flushing: `flush_until` fsyncs the segments below an offset
//! once for every waiter, and moves the recovery point.

use super::*;

impl Log {
    /// Group commit: returns once every offset up to and including `offset`
    /// is fsynced. Callers arriving while an fsync is in flight wait for it,
    /// then find their data covered or issue one fsync for all of them.
    pub fn flush_until(&self, offset: Offset) -> Result<(), StorageError> {
        self.check()?;
        let needed = offset.0.saturating_add(1).min(self.log_end_offset().0);
        if self.recovery_point.load(Ordering::Acquire) >= needed {
            return Ok(());
        }
        let _g = self.flush_lock.lock();
        if self.recovery_point.load(Ordering::Acquire) >= needed {
            return Ok(());
        }
        self.check()?;
        self.flush_locked()
    }

    /// Flushes everything appended so far.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.check()?;
        let _g = self.flush_lock.lock();
        self.flush_locked()
    }

    pub(super) fn flush_locked(&self) -> Result<(), StorageError> {
        let rp = self.recovery_point.load(Ordering::Acquire);
        let (target, segs) = {
            let st = self.state.read();
            let from = st
                .segments
                .range(..=rp)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(i64::MIN);
            let segs: Vec<Arc<LogSegment>> =
                st.segments.range(from..).map(|(_, s)| s.clone()).collect();
            (st.log_end_offset, segs)
        };
        let now = self.env.clock.now_ms();
        if target.0 <= rp && !self.dir_dirty.load(Ordering::Acquire) {
            self.last_flush_ms.store(now, Ordering::Release);
            return Ok(());
        }
        for s in segs {
            if let Err(e) = s.flush() {
                self.offline(&e);
                return Err(e);
            }
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self
                .env
                .fs
                .sync_dir(&self.dir)
                .ctx("fsync directory", &self.dir)
            {
                self.offline(&e);
                return Err(e);
            }
        }
        self.recovery_point.fetch_max(target.0, Ordering::AcqRel);
        self.last_flush_ms.store(now, Ordering::Release);
        Ok(())
    }
}
