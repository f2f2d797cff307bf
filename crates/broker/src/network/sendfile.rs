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
/// socket, or a file without a descriptor).
const COPY_STEP: usize = 64 * 1024;
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
/// response goes through one buffer of [`COPY_STEP`] bytes, the file bytes
/// read straight into it (after the cold-read check, so the read finds
/// resident pages), so the stream gets large writes: over TLS each is cut
/// into full 16 KiB records, the fetch header sharing the first one with
/// the records, and each byte is copied once, into rustls's record buffer
/// where it is encrypted in place.
async fn copy_chunks<W: AsyncWrite + Unpin>(socket: &mut W, chunks: Vec<Chunk>) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_STEP];
    let mut filled = 0;
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(b) => {
                if filled + b.len() > COPY_STEP && filled > 0 {
                    socket.write_all(&buf[..filled]).await?;
                    filled = 0;
                }
                if b.len() >= COPY_STEP {
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
                    if filled == COPY_STEP {
                        socket.write_all(&buf).await?;
                        filled = 0;
                    }
                    let want = ((end - pos) as usize).min(COPY_STEP - filled);
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
