//! Writing a response made of byte chunks and file slices to a socket, the
//! file slices with `sendfile(2)` so record bytes never pass through user
//! space. A stream that is not a TCP socket (the simulation's, a test's
//! in-memory one), or a file without a descriptor (a simulated one), gets
//! the bytes through a bounded copy buffer instead.
//!
//! KAFKA-7504: `sendfile` of a range that is not in page cache blocks the
//! calling thread on disk reads, which in Kafka stalls every connection of
//! that network thread. Here a slice that `FileHandle::is_resident` says is
//! not wholly resident (it checks every page of the range) is first faulted
//! in with `FileHandle::prefault` on a low-priority cold-read thread
//! ([`super::cold`]); only then is it sent from the network thread.

use std::io;

use bytes::{Bytes, BytesMut};
use sluice_storage::FileSlice;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// Bytes of a file read per step when there is no `sendfile` (no TCP
/// socket, or a file without a descriptor): at most this much of a
/// response is in user space at a time. Over TLS each step is one `pread`,
/// 16 full TLS records and one `writev` (with [`super::tls::SEND_BUFFER`]
/// as rustls's buffer limit); at 64 KiB the per-step syscalls and TCP
/// pushes cost about as much CPU as the cipher did (issue 20, perf in
/// docs/security.md).
pub const COPY_STEP: usize = 256 * 1024;
/// Linux transfers at most this many bytes per `sendfile` call.
const SENDFILE_MAX: usize = 0x7fff_f000;

/// One piece of an outgoing response.
pub enum Chunk {
    Bytes(Bytes),
    File(FileSlice),
}

/// The write side of a connection.
pub trait ResponseWriter: AsyncWrite + Unpin + Send {
    /// The TCP socket underneath, which file slices are `sendfile`d into
    /// (`None`: they are copied).
    fn tcp_socket(&self) -> Option<&TcpStream>;
}

impl ResponseWriter for OwnedWriteHalf {
    fn tcp_socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<T: AsyncRead + AsyncWrite + Send> ResponseWriter for WriteHalf<T> {
    fn tcp_socket(&self) -> Option<&TcpStream> {
        None
    }
}

/// Writes `chunks` in order. Adjacent byte chunks are gathered into one
/// write; file chunks go out with `sendfile` when the socket is TCP and the
/// file has a descriptor, otherwise through a bounded copy buffer.
pub async fn write_chunks<W: ResponseWriter>(socket: &mut W, chunks: Vec<Chunk>) -> io::Result<()> {
    if socket.tcp_socket().is_none() {
        return copy_chunks(socket, chunks).await;
    }
    let mut pending = BytesMut::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(b) => pending.extend_from_slice(&b),
            Chunk::File(slice) => {
                if !pending.is_empty() {
                    socket.write_all(&pending).await?;
                    pending.clear();
                }
                write_file(socket, &slice).await?;
            }
        }
    }
    if !pending.is_empty() {
        socket.write_all(&pending).await?;
    }
    Ok(())
}

/// Without `sendfile` (a TLS stream, the simulation's): the whole
/// response goes through one buffer (the response's size, at most
/// [`COPY_STEP`] bytes), the file bytes
/// read straight into it (after the cold-read check, so the read finds
/// resident pages), so the stream gets large writes: over TLS each is cut
/// into full 16 KiB records, the fetch header sharing the first one with
/// the records, and each byte is copied once, into rustls's record buffer
/// where it is encrypted in place.
async fn copy_chunks<W: AsyncWrite + Unpin>(socket: &mut W, chunks: Vec<Chunk>) -> io::Result<()> {
    // No bigger than the response: a small answer costs a small buffer.
    let step = copy_buffer_len(&chunks);
    let mut buf = vec![0u8; step];
    let mut filled = 0;
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(b) => {
                if filled + b.len() > step && filled > 0 {
                    socket.write_all(&buf[..filled]).await?;
                    filled = 0;
                }
                if b.len() >= step {
                    socket.write_all(&b).await?;
                } else {
                    buf[filled..filled + b.len()].copy_from_slice(&b);
                    filled += b.len();
                }
            }
            Chunk::File(slice) => {
                if slice.len == 0 {
                    continue;
                }
                ensure_resident(&slice).await;
                let mut pos = slice.position;
                let end = slice.position + u64::from(slice.len);
                while pos < end {
                    if filled == step {
                        socket.write_all(&buf).await?;
                        filled = 0;
                    }
                    let want = ((end - pos) as usize).min(step - filled);
                    let n = slice.file.read_at(&mut buf[filled..filled + want], pos)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "segment file ended before the fetched slice",
                        ));
                    }
                    filled += n;
                    pos += n as u64;
                }
            }
        }
    }
    if filled > 0 {
        socket.write_all(&buf[..filled]).await?;
    }
    Ok(())
}

/// The copy buffer for `chunks`: the whole response, at most [`COPY_STEP`].
fn copy_buffer_len(chunks: &[Chunk]) -> usize {
    let total = chunks.iter().fold(0usize, |sum, chunk| {
        sum.saturating_add(match chunk {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(slice) => slice.len as usize,
        })
    });
    total.clamp(1, COPY_STEP)
}

async fn write_file<W: ResponseWriter>(socket: &mut W, slice: &FileSlice) -> io::Result<()> {
    if slice.len == 0 {
        return Ok(());
    }
    ensure_resident(slice).await;
    match (socket.tcp_socket(), slice.file.raw_fd()) {
        (Some(tcp), Some(fd)) => sendfile_all(tcp, fd, slice.position, slice.len as usize).await,
        _ => copy_all(socket, slice).await,
    }
}

/// Faults a non-resident slice into page cache on a low-priority cold-read
/// thread, so the network thread never waits for the disk and the fault's
/// CPU work yields to the network threads.
pub async fn ensure_resident(slice: &FileSlice) {
    let (pos, len) = (slice.position, u64::from(slice.len));
    let resident = match slice.file.is_resident(pos, len) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "residency check failed; prefaulting");
            false
        }
    };
    if resident {
        return;
    }
    let file = slice.file.clone();
    match super::cold::run(move || file.prefault(pos, len)).await {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::warn!(error = %e, "prefault before sendfile failed"),
        None => tracing::warn!("prefault task failed"),
    }
}

async fn sendfile_all(
    socket: &TcpStream,
    file_fd: std::os::fd::RawFd,
    position: u64,
    len: usize,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let socket_fd = socket.as_raw_fd();
    let mut offset = libc::off_t::try_from(position)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position too large"))?;
    let mut remaining = len;
    while remaining > 0 {
        let count = remaining.min(SENDFILE_MAX);
        let sent = socket
            .async_io(Interest::WRITABLE, || {
                // SAFETY: both descriptors are open for the duration of the
                // call (the socket is borrowed, the file is owned by the
                // slice's Arc<dyn FileHandle>), and `offset` is a valid
                // pointer to a local.
                let n = unsafe { libc::sendfile(socket_fd, file_fd, &mut offset, count) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            })
            .await?;
        if sent == 0 {
            // The file is shorter than the slice (truncated or deleted
            // underneath us): the frame can no longer be completed.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file ended before the fetched slice",
            ));
        }
        remaining -= sent;
    }
    Ok(())
}

async fn copy_all<W: AsyncWrite + Unpin>(socket: &mut W, slice: &FileSlice) -> io::Result<()> {
    let mut buf = vec![0u8; (slice.len as usize).min(COPY_STEP)];
    let mut pos = slice.position;
    let end = slice.position + u64::from(slice.len);
    while pos < end {
        let want = ((end - pos) as usize).min(buf.len());
        let n = slice.file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file ended before the fetched slice",
            ));
        }
        socket.write_all(&buf[..n]).await?;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sluice_storage::fs::{Fs, OpenOptions, RealFs};
    use tokio::io::AsyncReadExt;

    use super::*;

    fn slice_of(path: &std::path::Path, position: u64, len: u32) -> FileSlice {
        FileSlice {
            file: RealFs.open(path, &OpenOptions::read()).unwrap(),
            position,
            len,
            next_offset: sluice_record::Offset(0),
        }
    }

    /// Writes `chunks` through the copy path (an in-memory stream, as a TLS
    /// stream is not a TCP socket) and returns what the peer read.
    async fn copied(chunks: Vec<Chunk>) -> io::Result<Vec<u8>> {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        let (_, mut writer) = tokio::io::split(near);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            far.read_to_end(&mut out).await.map(|_| out)
        });
        let written = write_chunks(&mut writer, chunks).await;
        drop(writer);
        let out = reader.await.unwrap()?;
        written.map(|_| out)
    }

    #[tokio::test]
    async fn a_response_spanning_many_copy_steps_arrives_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let file: Vec<u8> = (0..3 * COPY_STEP + 777).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &file).unwrap();
        let header = Bytes::from(vec![0xAB; 61]);
        let big = Bytes::from(vec![0xCD; COPY_STEP + 5]);
        let (from, len) = (13u64, (2 * COPY_STEP + 500) as u32);
        let out = copied(vec![
            Chunk::Bytes(header.clone()),
            Chunk::File(slice_of(&path, from, len)),
            Chunk::Bytes(big.clone()),
            Chunk::File(slice_of(&path, 0, 100)),
        ])
        .await
        .unwrap();
        let mut expected = header.to_vec();
        expected.extend_from_slice(&file[from as usize..from as usize + len as usize]);
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&file[..100]);
        assert_eq!(out.len(), expected.len());
        assert!(out == expected, "the copied response differs");
    }

    #[tokio::test]
    async fn a_slice_past_the_end_of_a_truncated_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let slice = slice_of(&path, 0, 10_000);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4_000)
            .unwrap();
        let err = copied(vec![Chunk::File(slice)]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[test]
    fn the_copy_buffer_is_no_bigger_than_the_response_nor_than_a_step() {
        let small = vec![Chunk::Bytes(Bytes::from_static(b"0123456789"))];
        assert_eq!(copy_buffer_len(&small), 10);
        assert_eq!(copy_buffer_len(&[]), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let huge = vec![Chunk::File(slice_of(&path, 0, u32::MAX))];
        assert_eq!(copy_buffer_len(&huge), COPY_STEP);
    }
}
