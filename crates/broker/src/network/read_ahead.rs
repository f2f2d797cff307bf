//! A read-ahead buffer between a TLS connection's socket and rustls.
//!
//! rustls pulls ciphertext in steps of at most 4 KiB (`read_tls` grows its
//! deframer buffer by `READ_SIZE = 4096`), so a produce request arriving as
//! full 16 KiB TLS records costs four or five `recv` calls per record, each
//! followed by an attempt to decrypt. [`ReadAhead`] answers those small reads
//! from one `recv` of up to [`READ_AHEAD`] bytes instead.
//!
//! Memory stays with busy connections only: the buffer is allocated once the
//! socket is readable (an idle connection waits on readiness, holding none),
//! and freed as soon as it is drained after a read that left the socket
//! empty (a short read). Reads at least as large as the buffer go straight
//! to the socket. Writes pass through.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most one `recv` reads ahead: four full TLS records.
pub const READ_AHEAD: usize = 64 * 1024;

/// A [`TcpStream`] whose small reads are served from one larger `recv`.
#[derive(Debug)]
pub struct ReadAhead {
    inner: TcpStream,
    /// Bytes read from the socket and not yet handed out: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// The last `recv` filled the whole buffer (more is likely waiting).
    full: bool,
}

impl ReadAhead {
    pub fn new(inner: TcpStream) -> Self {
        ReadAhead {
            inner,
            buf: Vec::new(),
            pos: 0,
            full: false,
        }
    }

    /// The socket underneath.
    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }

    /// Bytes held in the buffer (buffered, not yet handed out).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Capacity held by the buffer (0 when the connection holds none).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Hands buffered bytes to `out`; frees the buffer once it is drained
    /// after a short read.
    fn drain_into(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.buffered().min(out.remaining());
        out.put_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf.clear();
            if !self.full {
                self.buf = Vec::new();
            }
        }
    }

    /// One `recv` of up to [`READ_AHEAD`] bytes into the buffer (its
    /// spare capacity: nothing is zeroed), once the socket is readable.
    /// `Ok(0)`: end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_read_ready(cx))?;
            if self.buf.capacity() < READ_AHEAD {
                self.buf = Vec::with_capacity(READ_AHEAD);
            }
            self.buf.clear();
            self.pos = 0;
            match self.inner.try_read_buf(&mut self.buf) {
                Ok(n) => {
                    self.full = n >= READ_AHEAD;
                    if n == 0 {
                        self.buf = Vec::new();
                    }
                    return Poll::Ready(Ok(n));
                }
                // Stale readiness (try_read_buf cleared it): wait again,
                // holding no buffer.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.buf = Vec::new(),
                Err(e) => {
                    self.buf = Vec::new();
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl AsyncRead for ReadAhead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buffered() == 0 {
            if out.remaining() >= READ_AHEAD {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            if ready!(this.poll_fill(cx))? == 0 {
                return Poll::Ready(Ok(()));
            }
        }
        this.drain_into(out);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ReadAhead {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (ReadAhead, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (ReadAhead::new(server), client)
    }

    /// Polls `stream` until the socket holds `n` bytes for it (so one `recv`
    /// sees them all).
    async fn wait_readable(stream: &ReadAhead, n: usize) {
        let mut probe = vec![0u8; n];
        loop {
            stream.get_ref().readable().await.unwrap();
            if stream.get_ref().peek(&mut probe).await.unwrap() >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn small_reads_come_from_one_recv_and_the_buffer_is_freed_after() {
        let (mut server, mut client) = pair().await;
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&data).await.unwrap();
        wait_readable(&server, data.len()).await;
        // An idle connection holds no buffer.
        assert_eq!(server.held(), 0);
        let mut got = Vec::new();
        let mut step = [0u8; 4096];
        let n = server.read(&mut step).await.unwrap();
        got.extend_from_slice(&step[..n]);
        // The first 4 KiB read pulled in everything the socket held.
        assert_eq!(n, 4096);
        assert_eq!(server.buffered(), data.len() - 4096);
        while got.len() < data.len() {
            let n = server.read(&mut step).await.unwrap();
            got.extend_from_slice(&step[..n]);
        }
        assert_eq!(got, data);
        // Drained after a short read: the memory is given back.
        assert_eq!(server.held(), 0);
    }

    #[tokio::test]
    async fn large_reads_bypass_the_buffer_and_eof_is_eof() {
        let (mut server, mut client) = pair().await;
        client.write_all(b"hello").await.unwrap();
        client.shutdown().await.unwrap();
        let mut big = vec![0u8; READ_AHEAD];
        let n = server.read(&mut big).await.unwrap();
        assert_eq!(&big[..n], b"hello");
        assert_eq!(server.held(), 0);
        let mut small = [0u8; 16];
        assert_eq!(server.read(&mut small).await.unwrap(), 0);
        assert_eq!(server.held(), 0);
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"answer").await.unwrap();
        server.flush().await.unwrap();
        let mut got = [0u8; 6];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answer");
    }
}
