//! Same-run physical ceilings: sequential write bandwidth of the disk under the
//! data directory, and loopback TCP bandwidth.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

const CHUNK: usize = 1 << 20;

/// Buffered sequential write of `bytes` into a new file under `dir`, then fdatasync:
/// the rate at which data written through the page cache reaches the disk. MB/s (1e6).
pub fn disk_write_buffered_mbps(dir: &Path, bytes: u64) -> Result<f64> {
    let path = dir.join("ceiling-disk-buffered.tmp");
    let buf = pattern(CHUNK);
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(&path).with_context(|| format!("create {path:?}"))?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.sync_data()?;
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(bytes as f64 / secs / 1e6)
}

/// O_DIRECT sequential 1 MiB writes (queue depth 1) of `bytes`, then fdatasync: the
/// device's own sequential write bandwidth, no page cache. MB/s. `None` when the
/// filesystem refuses O_DIRECT (tmpfs).
pub fn disk_write_direct_mbps(dir: &Path, bytes: u64) -> Result<Option<f64>> {
    let path = dir.join("ceiling-disk-direct.tmp");
    let f = match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
    {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    // O_DIRECT needs an aligned buffer: over-allocate and offset into it.
    let raw = pattern(CHUNK + 4096);
    let off = raw.as_ptr().align_offset(4096);
    let buf = &raw[off..off + CHUNK];
    let chunks = bytes.div_ceil(CHUNK as u64);
    let t = Instant::now();
    let mut f = f;
    for _ in 0..chunks {
        if f.write_all(buf).is_err() {
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
    }
    f.sync_data()?;
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(Some((chunks * CHUNK as u64) as f64 / secs / 1e6))
}

/// One TCP stream over 127.0.0.1: a writer thread sends `bytes` in 1 MiB writes, this
/// thread reads them. MB/s.
pub fn loopback_mbps(bytes: u64) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let buf = pattern(CHUNK);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            s.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut s, _) = listener.accept()?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let t = Instant::now();
    while got < bytes {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("loopback writer panicked"))??;
    Ok(got as f64 / secs / 1e6)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_measure_positive_rates() {
        let dir = tempfile::tempdir().unwrap();
        assert!(disk_write_buffered_mbps(dir.path(), 4 << 20).unwrap() > 0.0);
        if let Some(d) = disk_write_direct_mbps(dir.path(), 4 << 20).unwrap() {
            assert!(d > 0.0);
        }
        assert!(loopback_mbps(8 << 20).unwrap() > 0.0);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "temp files removed"
        );
    }
}
