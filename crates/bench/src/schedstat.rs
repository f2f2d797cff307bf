//! Per-thread scheduler statistics (`/proc/<pid>/task/<tid>/schedstat`: time on a
//! CPU and time runnable but waiting for one), to see which threads of the broker
//! and of the load generator ran and waited during a measured interval.

use std::collections::BTreeMap;

/// tid → (thread name, ns on CPU, ns waiting on a run queue).
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<u32, (String, u64, u64)>);

impl Snapshot {
    /// The threads of `pid` now (threads that exit between two reads are missing).
    pub fn take(pid: u32) -> Snapshot {
        let mut out = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Snapshot(out);
        };
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let Ok(stat) = std::fs::read_to_string(e.path().join("schedstat")) else {
                continue;
            };
            let mut it = stat
                .split_whitespace()
                .map(|x| x.parse::<u64>().unwrap_or(0));
            let (run, wait) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            out.insert(tid, (comm.trim().to_string(), run, wait));
        }
        Snapshot(out)
    }

    /// Per thread: (tid, name, ms on CPU, ms waiting) since `before`, busiest first;
    /// threads born since count from zero.
    pub fn since(&self, before: &Snapshot) -> Vec<(u32, String, f64, f64)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .map(|(tid, (comm, run, wait))| {
                let (r0, w0) = before.0.get(tid).map_or((0, 0), |(_, r, w)| (*r, *w));
                (
                    *tid,
                    comm.clone(),
                    run.saturating_sub(r0) as f64 / 1e6,
                    wait.saturating_sub(w0) as f64 / 1e6,
                )
            })
            .filter(|t| t.2 > 0.5 || t.3 > 0.5)
            .collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }
}

/// `name tid: run ms / wait ms` for the busiest `n` threads.
pub fn describe(threads: &[(u32, String, f64, f64)], n: usize) -> String {
    threads
        .iter()
        .take(n)
        .map(|(tid, comm, run, wait)| format!("{comm}[{tid}] {run:.0}/{wait:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_threads_show_their_cpu_time() {
        let pid = std::process::id();
        let before = Snapshot::take(pid);
        let h = std::thread::Builder::new()
            .name("spinner".into())
            .spawn(|| {
                let t = std::time::Instant::now();
                let mut x = 0u64;
                while t.elapsed() < std::time::Duration::from_millis(30) {
                    x = x.wrapping_add(1);
                }
                std::hint::black_box(x);
                Snapshot::take(std::process::id())
            })
            .unwrap();
        let after = h.join().unwrap();
        let d = after.since(&before);
        let spinner = d.iter().find(|t| t.1 == "spinner").expect("spinner listed");
        assert!(spinner.2 >= 5.0, "{d:?}");
    }
}
