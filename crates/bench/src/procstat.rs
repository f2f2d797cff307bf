//! Process and machine accounting from /proc: broker CPU (utime+stime), VmRSS,
//! whole-machine busy time (to attribute the rest to "other processes").

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system, all threads) consumed so far by `pid`; `None` if gone.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// CPU seconds used so far by this process (the load generator and its librdkafka threads).
pub fn self_cpu_s() -> f64 {
    process_cpu_s(std::process::id()).unwrap_or(0.0)
}

/// Resident set size of `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Busy CPU seconds of the whole machine so far (all cores), from /proc/stat.
pub fn machine_busy_s() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy: f64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum();
    busy / clk_tck()
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// CPU accounting over one measured interval.
pub struct CpuWindow {
    pid: Option<u32>,
    broker0: f64,
    self0: f64,
    machine0: f64,
    t0: std::time::Instant,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuUse {
    pub wall_s: f64,
    /// CPU seconds of the broker (or sink) process.
    pub broker_cpu_s: f64,
    /// CPU seconds of the load generator (this process).
    pub client_cpu_s: f64,
    /// Average cores used by every other process on the machine.
    pub other_cores: f64,
}

impl CpuWindow {
    pub fn start(pid: Option<u32>) -> CpuWindow {
        CpuWindow {
            pid,
            broker0: pid.and_then(process_cpu_s).unwrap_or(0.0),
            self0: self_cpu_s(),
            machine0: machine_busy_s(),
            t0: std::time::Instant::now(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let wall_s = self.t0.elapsed().as_secs_f64().max(1e-9);
        let broker = self.pid.and_then(process_cpu_s).unwrap_or(self.broker0) - self.broker0;
        let client = self_cpu_s() - self.self0;
        let machine = machine_busy_s() - self.machine0;
        CpuUse {
            wall_s,
            broker_cpu_s: broker.max(0.0),
            client_cpu_s: client.max(0.0),
            other_cores: ((machine - broker - client) / wall_s).max(0.0),
        }
    }
}

/// Samples a process's VmRSS once a second and keeps the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss_bytes(pid) {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                for _ in 0..10 {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        RssSampler {
            stop,
            peak,
            handle: Some(handle),
        }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_rss() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_cpu_s(pid).is_some());
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(machine_busy_s() > 0.0);
        assert!(process_cpu_s(u32::MAX).is_none());
    }
}
