//! Writing a response made of byte chunks and file slices to a socket, the
//! file slices with `sendfile(2)` so record bytes never pass through user
//! space. A stream that is not a TCP socket (the simulation's, a test's
//! in-memory one), or a file without a descriptor (a simulated one), gets
//! the bytes through a bounded copy buffer instead.
//!
//! KAFKA-7504: `sendfile` of a range that is not in page cache blocks the
//! calling thread on disk reads, which in Kafka stalls every connection of
//! that network thread. Here each slice is checked in pieces of
//! [`PREFAULT_PIECE`] (`FileHandle::is_resident` checks every page), and
//! every piece that is not wholly resident is queued at once to be faulted
//! in with `FileHandle::prefault` on a cold-read thread ([`super::cold`]);
//! each piece is sent from the network thread once it is resident.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sluice_storage::fs::FileHandle;
use sluice_storage::FileSlice;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::cold;

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

/// A file slice is checked for residency, and faulted in when cold, in
/// pieces of at most this many bytes, every piece of a response queued for
/// the cold-read threads before the first is waited for: the first piece
/// goes out while the threads fault in the next ones (both threads work on
/// one response), and a resident piece is never held back by a cold one
/// elsewhere in the same slice.
pub const PREFAULT_PIECE: u64 = 1 << 20;

/// A response chunk ready to write.
enum Ready {
    Bytes(Bytes),
    Piece(Piece),
}

/// A piece of a file slice, with the cold read that must finish before it
/// is sent (`None`: wholly resident when checked).
struct Piece {
    file: Arc<dyn FileHandle>,
    position: u64,
    len: u64,
    cold: Option<(Instant, cold::Queued<io::Result<()>>)>,
}

impl Piece {
    /// Waits until the piece's cold read (if any) has faulted it in.
    async fn resident(&mut self) {
        let Some((asked, queued)) = self.cold.take() else {
            return;
        };
        match queued.wait().await {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "prefault before sendfile failed"),
            None => tracing::warn!("prefault task failed"),
        }
        tracing::debug!(
            target: cold::STAGES,
            waited_us = asked.elapsed().as_micros() as u64,
            bytes = self.len,
            "cold piece resident"
        );
    }
}

/// Cuts the response's file slices into pieces and queues a prefault for
/// every piece that is not wholly resident, all before any is waited for.
/// Bounded: a response is at most the fetch's `max_bytes`, so its pieces
/// are too (and the cold-read queue is bounded).
async fn prepare(chunks: Vec<Chunk>) -> Vec<Ready> {
    let mut out = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(b) => out.push(Ready::Bytes(b)),
            Chunk::File(slice) => {
                let end = slice.position + u64::from(slice.len);
                let mut position = slice.position;
                while position < end {
                    let len = (end - position).min(PREFAULT_PIECE);
                    let cold = queue_prefault(&slice.file, position, len).await;
                    out.push(Ready::Piece(Piece {
                        file: slice.file.clone(),
                        position,
                        len,
                        cold,
                    }));
                    position += len;
                }
            }
        }
    }
    out
}

/// Queues the fault-in of `[pos, pos+len)` on a cold-read thread unless
/// `FileHandle::is_resident` says every page of it is in the page cache,
/// so the network thread never waits for the disk.
async fn queue_prefault(
    file: &Arc<dyn FileHandle>,
    pos: u64,
    len: u64,
) -> Option<(Instant, cold::Queued<io::Result<()>>)> {
    let resident = match file.is_resident(pos, len) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "residency check failed; prefaulting");
            false
        }
    };
    if resident {
        return None;
    }
    let file = file.clone();
    let asked = Instant::now();
    Some((asked, cold::submit(move || file.prefault(pos, len)).await))
}

/// Writes `chunks` in order. Adjacent byte chunks are gathered into one
/// write; file chunks go out with `sendfile` when the socket is TCP and the
/// file has a descriptor, otherwise through a bounded copy buffer.
pub async fn write_chunks<W: ResponseWriter>(socket: &mut W, chunks: Vec<Chunk>) -> io::Result<()> {
    let started = Instant::now();
    let step = copy_buffer_len(&chunks);
    let ready = prepare(chunks).await;
    let cold = ready
        .iter()
        .filter(|r| matches!(r, Ready::Piece(p) if p.cold.is_some()))
        .count();
    let mut first_piece = None;
    let written = if socket.tcp_socket().is_none() {
        copy_chunks(socket, ready, step, &mut first_piece).await
    } else {
        send_chunks(socket, ready, &mut first_piece).await
    };
    if cold > 0 {
        tracing::debug!(
            target: cold::STAGES,
            first_piece_us = first_piece.map_or(0, |d: std::time::Duration| d.as_micros() as u64),
            total_us = started.elapsed().as_micros() as u64,
            cold_pieces = cold,
            "response with cold pieces written"
        );
    }
    written
}

/// The `sendfile` path: `first_piece` is set to the time from the start of
/// the response to its first file piece's send.
async fn send_chunks<W: ResponseWriter>(
    socket: &mut W,
    ready: Vec<Ready>,
    first_piece: &mut Option<std::time::Duration>,
) -> io::Result<()> {
    let started = Instant::now();
    let mut pending = BytesMut::new();
    for chunk in ready {
        match chunk {
            Ready::Bytes(b) => pending.extend_from_slice(&b),
            Ready::Piece(mut piece) => {
                if !pending.is_empty() {
                    socket.write_all(&pending).await?;
                    pending.clear();
                }
                piece.resident().await;
                first_piece.get_or_insert_with(|| started.elapsed());
                write_piece(socket, &piece.file, piece.position, piece.len).await?;
            }
        }
    }
    if !pending.is_empty() {
        socket.write_all(&pending).await?;
    }
    Ok(())
}

/// Without `sendfile` (a TLS stream, the simulation's): the whole
/// response goes through one buffer of `step` bytes (the response's size,
/// at most [`COPY_STEP`]), the file bytes read straight into it (once each
/// piece is resident, so the read never waits for the disk), so the stream
/// gets large writes: over TLS each is cut into full 16 KiB records, the
/// fetch header sharing the first one with the records, and each byte is
/// copied once, into rustls's record buffer where it is encrypted in place.
async fn copy_chunks<W: AsyncWrite + Unpin>(
    socket: &mut W,
    ready: Vec<Ready>,
    step: usize,
    first_piece: &mut Option<std::time::Duration>,
) -> io::Result<()> {
    let started = Instant::now();
    let mut buf = vec![0u8; step];
    let mut filled = 0;
    for chunk in ready {
        match chunk {
            Ready::Bytes(b) => {
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
            Ready::Piece(mut piece) => {
                piece.resident().await;
                first_piece.get_or_insert_with(|| started.elapsed());
                let mut pos = piece.position;
                let end = piece.position + piece.len;
                while pos < end {
                    if filled == step {
                        socket.write_all(&buf).await?;
                        filled = 0;
                    }
                    let want = ((end - pos) as usize).min(step - filled);
                    let n = piece.file.read_at(&mut buf[filled..filled + want], pos)?;
                    if n == 0 {
                        return Err(ended());
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

fn ended() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "segment file ended before the fetched slice",
    )
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

/// Sends `[position, position+len)` of `file` (a piece, resident by now).
async fn write_piece<W: ResponseWriter>(
    socket: &mut W,
    file: &Arc<dyn FileHandle>,
    position: u64,
    len: u64,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    match (socket.tcp_socket(), file.raw_fd()) {
        (Some(tcp), Some(fd)) => sendfile_all(tcp, fd, position, len as usize).await,
        _ => copy_all(socket, file, position, len).await,
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
            return Err(ended());
        }
        remaining -= sent;
    }
    Ok(())
}

async fn copy_all<W: AsyncWrite + Unpin>(
    socket: &mut W,
    file: &Arc<dyn FileHandle>,
    position: u64,
    len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; (len as usize).min(COPY_STEP)];
    let mut pos = position;
    let end = position + len;
    while pos < end {
        let want = ((end - pos) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            return Err(ended());
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

    /// A file every piece of which is cold: its prefault of the first
    /// piece waits (boundedly) until the second piece's prefault has been
    /// entered too, which happens only when a response's pieces are all
    /// queued before the first is waited for.
    struct ColdFile {
        inner: Arc<dyn FileHandle>,
        prefaults: std::sync::Mutex<Vec<(u64, u64)>>,
        second: (std::sync::Mutex<bool>, std::sync::Condvar),
        overlapped: std::sync::atomic::AtomicBool,
    }

    impl FileHandle for ColdFile {
        fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
            self.inner.read_at(buf, pos)
        }
        fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
            self.inner.write_at(buf, pos)
        }
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
            self.inner.allocate(offset, len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.inner.sync_data()
        }
        fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
            None
        }
        fn is_resident(&self, _: u64, _: u64) -> io::Result<bool> {
            Ok(false)
        }
        fn prefault(&self, pos: u64, len: u64) -> io::Result<()> {
            let first = {
                let mut all = self.prefaults.lock().unwrap();
                all.push((pos, len));
                all.len() == 1
            };
            let (entered, cv) = &self.second;
            if first {
                // Generous: only a broken pipeline waits this long.
                let (got, _) = cv
                    .wait_timeout_while(
                        entered.lock().unwrap(),
                        std::time::Duration::from_secs(60),
                        |e| !*e,
                    )
                    .unwrap();
                self.overlapped
                    .store(*got, std::sync::atomic::Ordering::SeqCst);
            } else {
                *entered.lock().unwrap() = true;
                cv.notify_all();
            }
            Ok(())
        }
        fn map_mut(&self, len: u64) -> io::Result<Box<dyn sluice_storage::MappedRegion>> {
            self.inner.map_mut(len)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_cold_slice_is_faulted_in_pieces_queued_together_and_arrives_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let piece = PREFAULT_PIECE as usize;
        let file: Vec<u8> = (0..2 * piece + 4_321).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &file).unwrap();
        let cold = Arc::new(ColdFile {
            inner: RealFs.open(&path, &OpenOptions::read()).unwrap(),
            prefaults: Default::default(),
            second: Default::default(),
            overlapped: Default::default(),
        });
        let (from, len) = (100u64, (2 * piece + 1_000) as u32);
        let slice = FileSlice {
            file: cold.clone(),
            position: from,
            len,
            next_offset: sluice_record::Offset(0),
        };
        let out = copied(vec![Chunk::File(slice)]).await.unwrap();
        assert!(
            out == file[from as usize..from as usize + len as usize],
            "the copied slice differs"
        );
        let p = PREFAULT_PIECE;
        let mut prefaults = cold.prefaults.lock().unwrap().clone();
        // The two threads may enter their pieces in either order.
        prefaults.sort();
        assert_eq!(
            prefaults,
            vec![(from, p), (from + p, p), (from + 2 * p, 1_000)],
            "one prefault per piece, covering the slice exactly"
        );
        assert!(
            cold.overlapped.load(std::sync::atomic::Ordering::SeqCst),
            "the second piece was not queued while the first was faulted in"
        );
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
