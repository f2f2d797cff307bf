//! Page-cache control for the KAFKA-7504 scenario: write back and drop a topic's
//! segment files from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`) and count
//! how much of them is resident (`mincore`), so the report can show the reader really
//! read cold data.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Result;

/// Segment files (`*.log`) of every partition directory `<topic>-<n>` under `data_dir`.
pub fn segment_files(data_dir: &Path, topic: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let prefix = format!("{topic}-");
    for e in std::fs::read_dir(data_dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let is_partition_dir = name
            .strip_prefix(&prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
        if is_partition_dir && e.file_type()?.is_dir() {
            for f in std::fs::read_dir(e.path())? {
                let f = f?;
                if f.path().extension().is_some_and(|x| x == "log") {
                    out.push(f.path());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// fdatasync then drop each file from the page cache.
pub fn evict(files: &[PathBuf]) -> Result<()> {
    for p in files {
        let f = std::fs::OpenOptions::new().read(true).write(true).open(p)?;
        f.sync_data()?;
        // SAFETY: valid fd; advisory call with no memory effects on our side.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            anyhow::bail!("posix_fadvise({p:?}): errno {rc}");
        }
    }
    Ok(())
}

/// Reads each file once so all of it is in the page cache (the hot-reader control).
pub fn make_resident(files: &[PathBuf]) -> Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for p in files {
        let mut f = std::fs::File::open(p)?;
        while f.read(&mut buf)? > 0 {}
    }
    Ok(())
}

/// (resident bytes, total bytes) of `files`, from mincore(2) over a read-only mapping.
pub fn residency(files: &[PathBuf]) -> Result<(u64, u64)> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let (mut resident, mut total) = (0u64, 0u64);
    for p in files {
        let f = std::fs::File::open(p)?;
        let len = f.metadata()?.len() as usize;
        total += len as u64;
        if len == 0 {
            continue;
        }
        // SAFETY: a private read-only mapping of a file we opened; unmapped below and
        // never dereferenced (mincore only inspects page-table state).
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            anyhow::bail!("mmap {p:?}: {}", std::io::Error::last_os_error());
        }
        let pages = len.div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: addr/len is the mapping above; vec has one byte per page.
        let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
        // SAFETY: unmapping exactly what we mapped.
        unsafe { libc::munmap(addr, len) };
        if rc != 0 {
            anyhow::bail!("mincore {p:?}: {}", std::io::Error::last_os_error());
        }
        resident += vec.iter().filter(|&&b| b & 1 == 1).count() as u64 * page as u64;
    }
    Ok((resident.min(total), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn evicted_file_is_not_resident_and_reading_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("old-0");
        std::fs::create_dir(&pdir).unwrap();
        std::fs::create_dir(dir.path().join("old-x")).unwrap();
        let seg = pdir.join("00000000000000000000.log");
        std::fs::File::create(&seg)
            .unwrap()
            .write_all(&vec![7u8; 1 << 20])
            .unwrap();
        std::fs::write(pdir.join("00000000000000000000.index"), b"x").unwrap();
        let files = segment_files(dir.path(), "old").unwrap();
        assert_eq!(files, vec![seg.clone()]);
        evict(&files).unwrap();
        let (res, total) = residency(&files).unwrap();
        assert_eq!(total, 1 << 20);
        // tmpfs cannot drop pages; on a disk filesystem the file is now cold.
        let mut buf = Vec::new();
        std::fs::File::open(&seg)
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        let (res2, _) = residency(&files).unwrap();
        assert!(res2 >= res);
        assert_eq!(res2, 1 << 20);
    }
}
