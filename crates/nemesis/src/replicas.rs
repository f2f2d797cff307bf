//! After the final heal: are the replicas of every workload partition
//! byte-identical? Issue 17 asks that followers hold exactly the leader's
//! batches (appended byte for byte, offsets and leader epochs as the
//! leader wrote them), so once the producers stop and every replica is
//! back in the ISR, the concatenated `.log` segment files of one
//! partition must be the same bytes on every node that holds it.
//!
//! Segment boundaries may differ between replicas (each rolls on its own
//! clock and size), so the comparison is over the segments concatenated
//! in offset order, never file by file. A follower that is still fetching
//! the last batches is not a divergence: [`await_identical`] polls until
//! the replicas agree or the time is up, and only then reports what
//! differs (the node, its length and the first differing byte).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where one replica of a partition lives.
#[derive(Clone, Debug)]
pub struct Replica {
    pub node: usize,
    pub dir: PathBuf,
}

/// The concatenated `.log` files of a partition directory, in offset order
/// (segment files are named by their zero-padded base offset).
pub fn log_bytes(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend_from_slice(&std::fs::read(f)?);
    }
    Ok(out)
}

/// The replicas of `topic-partition` under each `(node, data dir)`: the
/// nodes whose data dir holds a directory of that name (at any depth, as
/// Kafka and Sluice lay their log dirs out differently).
pub fn find(data_dirs: &[(usize, PathBuf)], topic: &str, partition: i32) -> Vec<Replica> {
    let name = format!("{topic}-{partition}");
    data_dirs
        .iter()
        .filter_map(|(node, base)| find_dir(base, &name, 4).map(|dir| Replica { node: *node, dir }))
        .collect()
}

fn find_dir(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if depth > 0 {
            if let Some(found) = find_dir(&p, name, depth - 1) {
                return Some(found);
            }
        }
    }
    None
}

/// Compares the replicas once: `None` when all hold the same bytes, else
/// a line naming each replica that differs from the first.
pub fn differences(replicas: &[Replica]) -> Option<String> {
    let logs: Vec<(usize, Result<Vec<u8>, String>)> = replicas
        .iter()
        .map(|r| (r.node, log_bytes(&r.dir).map_err(|e| e.to_string())))
        .collect();
    let (first_node, first) = logs.first()?;
    let first = match first {
        Ok(b) => b,
        Err(e) => return Some(format!("node {first_node}: unreadable: {e}")),
    };
    let mut out = Vec::new();
    for (node, log) in &logs[1..] {
        match log {
            Err(e) => out.push(format!("node {node}: unreadable: {e}")),
            Ok(b) if b == first => {}
            Ok(b) => {
                let at = first.iter().zip(b).take_while(|(x, y)| x == y).count();
                out.push(format!(
                    "node {node}: {} bytes against node {first_node}'s {}, first difference at byte {at}",
                    b.len(),
                    first.len()
                ));
            }
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// One record batch's header fields that tell replicas' histories apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub position: usize,
    pub base_offset: i64,
    pub last_offset: i64,
    pub leader_epoch: i32,
    pub producer_id: i64,
    pub base_sequence: i32,
    pub crc: u32,
}

/// Walks the v2 record batches of a log's bytes (stops at the first
/// incomplete or malformed one).
pub fn batches(log: &[u8]) -> Vec<BatchHeader> {
    let i64_at = |p: usize| i64::from_be_bytes(log[p..p + 8].try_into().unwrap());
    let i32_at = |p: usize| i32::from_be_bytes(log[p..p + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= log.len() {
        let len = i32_at(pos + 8);
        let end = pos + 12 + len.max(0) as usize;
        if len < 49 || end > log.len() {
            break;
        }
        let base_offset = i64_at(pos);
        out.push(BatchHeader {
            position: pos,
            base_offset,
            last_offset: base_offset + i64::from(i32_at(pos + 23)),
            leader_epoch: i32_at(pos + 12),
            crc: i32_at(pos + 17) as u32,
            producer_id: i64_at(pos + 43),
            base_sequence: i32_at(pos + 53),
        });
        pos = end;
    }
    out
}

/// The batches of `log` from the one holding byte `at` on (at most `n`),
/// one per line, to say how two replicas' histories parted.
pub fn batches_around(log: &[u8], at: usize, n: usize) -> String {
    let all = batches(log);
    let first = all.iter().rposition(|b| b.position <= at).unwrap_or(0);
    all[first..]
        .iter()
        .take(n)
        .map(|b| {
            format!(
                "  offsets {}..={} epoch {} producer {} seq {} crc {:08x} at byte {}",
                b.base_offset,
                b.last_offset,
                b.leader_epoch,
                b.producer_id,
                b.base_sequence,
                b.crc,
                b.position
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Copies the replicas of a partition that differ to `to/node-<id>` (the
/// nodes' disks are removed with the run) and describes each one's
/// batches from where it parts from the first replica.
pub fn keep_evidence(replicas: &[Replica], to: &Path) -> String {
    let logs: Vec<(usize, Vec<u8>)> = replicas
        .iter()
        .map(|r| (r.node, log_bytes(&r.dir).unwrap_or_default()))
        .collect();
    let mut out = Vec::new();
    for (r, (node, log)) in replicas.iter().zip(&logs) {
        let dest = to.join(format!("node-{node}"));
        let copied = std::fs::create_dir_all(&dest).and_then(|()| {
            for e in std::fs::read_dir(&r.dir)?.flatten() {
                std::fs::copy(e.path(), dest.join(e.file_name()))?;
            }
            Ok(())
        });
        let at = logs
            .iter()
            .filter(|(n, _)| n != node)
            .map(|(_, other)| log.iter().zip(other).take_while(|(x, y)| x == y).count())
            .min()
            .unwrap_or(0);
        out.push(format!(
            "node {node} ({} bytes; copied: {}):\n{}",
            log.len(),
            copied.map_or_else(|e| e.to_string(), |()| dest.display().to_string()),
            batches_around(log, at, 6)
        ));
    }
    out.join("\n")
}

/// Polls until every partition's replicas agree or `timeout` passes;
/// returns the partitions still differing, each with what differs.
pub fn await_identical(
    data_dirs: &[(usize, PathBuf)],
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let differing: Vec<String> = (0..partitions)
            .filter_map(|p| {
                let replicas = find(data_dirs, topic, p);
                differences(&replicas).map(|d| format!("{topic}-{p}: {d}"))
            })
            .collect();
        if differing.is_empty() || Instant::now() >= deadline {
            return differing;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_dir(root: &Path, node: usize, segments: &[(&str, &[u8])]) -> (usize, PathBuf) {
        let data = root.join(format!("n{node}")).join("data");
        let part = data.join("t-0");
        std::fs::create_dir_all(&part).unwrap();
        for (name, bytes) in segments {
            std::fs::write(part.join(name), bytes).unwrap();
        }
        std::fs::write(part.join("00000000000000000000.index"), [node as u8]).unwrap();
        (node, data)
    }

    #[test]
    fn replicas_rolled_at_other_offsets_are_identical() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![
            node_dir(root.path(), 1, &[("00000000000000000000.log", b"abcdef")]),
            node_dir(
                root.path(),
                2,
                &[
                    ("00000000000000000000.log", b"abc"),
                    ("00000000000000000003.log", b"def"),
                ],
            ),
        ];
        let replicas = find(&dirs, "t", 0);
        assert_eq!(replicas.len(), 2);
        assert_eq!(differences(&replicas), None, "index files are not compared");
        assert!(await_identical(&dirs, "t", 1, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_diverging_or_short_replica_is_named() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![
            node_dir(root.path(), 1, &[("00000000000000000000.log", b"abcdef")]),
            node_dir(root.path(), 2, &[("00000000000000000000.log", b"abcxef")]),
            node_dir(root.path(), 3, &[("00000000000000000000.log", b"abcd")]),
        ];
        let d = await_identical(&dirs, "t", 1, Duration::ZERO);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].contains("node 2: 6 bytes against node 1's 6, first difference at byte 3"),
            "{d:?}"
        );
        assert!(d[0].contains("node 3: 4 bytes"), "{d:?}");
    }
}
