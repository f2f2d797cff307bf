//! Reading size-prefixed request frames from a socket.
//!
//! The 4-byte size prefix is untrusted: it is checked against
//! `socket.request.max.bytes` and then only *reserves* budget in the
//! broker-wide `queued.max.request.bytes` pool. The buffer is sized for the
//! whole frame up front only up to [`FRAME_PREALLOC`] (typical produce
//! requests arrive in one allocation instead of a chain of reallocations
//! that copied every byte once more); beyond that it grows as bytes actually
//! arrive, in steps no bigger than what has been received so far (or
//! [`READ_STEP`]). So a client that claims 2 GiB and sends ten bytes costs
//! ten bytes plus at most [`FRAME_PREALLOC`] of untouched address space.

use std::io;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest single growth step of a frame buffer.
pub const READ_STEP: usize = 64 * 1024;
/// Initial buffer capacity of a connection.
const INITIAL_CAPACITY: usize = 4 * 1024;
/// Frames up to this size get their whole buffer before the bytes arrive
/// (librdkafka's produce requests stay below 1 MiB by default).
pub const FRAME_PREALLOC: usize = 1 << 20;

/// Why a connection's byte stream cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("connection closed in the middle of a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    #[error("socket: {0}")]
    Io(#[from] io::Error),
}

/// The broker-wide budget of request bytes held by all connections
/// (`queued.max.request.bytes`). A connection that cannot get budget for
/// its next frame stops reading its socket until others release some.
#[derive(Clone)]
pub struct MemoryPool {
    semaphore: Option<Arc<Semaphore>>,
    capacity: usize,
}

impl MemoryPool {
    /// `capacity == usize::MAX` means unbounded (Kafka's -1).
    pub fn new(capacity: usize) -> Self {
        // tokio semaphores hold at most usize::MAX >> 3 permits.
        if capacity >= Semaphore::MAX_PERMITS {
            MemoryPool {
                semaphore: None,
                capacity: usize::MAX,
            }
        } else {
            MemoryPool {
                semaphore: Some(Arc::new(Semaphore::new(capacity))),
                capacity,
            }
        }
    }

    /// Reserves budget for a frame of `size` bytes, waiting (and so not
    /// reading the socket) while the pool is exhausted. A frame bigger than
    /// the whole pool takes the whole pool, as Kafka's pool allows one
    /// oversized request at a time.
    pub async fn reserve(&self, size: usize) -> Reservation {
        match &self.semaphore {
            None => Reservation { _permit: None },
            Some(sem) => {
                let n = size.min(self.capacity).max(1);
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                let permit = sem
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("the pool semaphore is never closed");
                Reservation {
                    _permit: Some(permit),
                }
            }
        }
    }

    /// Budget not currently reserved (`usize::MAX` when unbounded).
    pub fn available(&self) -> usize {
        match &self.semaphore {
            None => usize::MAX,
            Some(s) => s.available_permits(),
        }
    }
}

/// Budget held for one request until it has been handled.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

/// One complete request frame (without its size prefix) and the budget it
/// holds.
pub struct Frame {
    pub bytes: Bytes,
    pub reservation: Reservation,
}

/// Incremental frame reader over one connection's read half.
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_frame: usize,
    pool: MemoryPool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R, max_frame: usize, pool: MemoryPool) -> Self {
        FrameReader {
            reader,
            buf: BytesMut::with_capacity(INITIAL_CAPACITY),
            max_frame,
            pool,
        }
    }

    /// The next frame, or `None` at a clean end of stream (between frames).
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Size prefix.
        while self.buf.len() < 4 {
            if self.fill(4 - self.buf.len()).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated {
                        have: self.buf.len(),
                        need: 4,
                    })
                };
            }
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if size < 0 {
            return Err(FrameError::NegativeSize(size));
        }
        let size = size as usize;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame,
            });
        }
        let reservation = self.pool.reserve(size).await;
        let need = 4 + size;
        let upfront = need.min(FRAME_PREALLOC);
        if self.buf.capacity() < upfront {
            self.buf.reserve(upfront - self.buf.len());
        }
        while self.buf.len() < need {
            let missing = need - self.buf.len();
            if self.fill(missing).await? == 0 {
                return Err(FrameError::Truncated {
                    have: self.buf.len() - 4,
                    need: size,
                });
            }
        }
        self.buf.advance(4);
        let bytes = self.buf.split_to(size).freeze();
        Ok(Some(Frame { bytes, reservation }))
    }

    /// Reads once, growing the buffer by at most `min(missing, READ_STEP)`
    /// bytes (never by what the client merely claims). Returns bytes read.
    async fn fill(&mut self, missing: usize) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() == 0 {
            self.buf.reserve(missing.clamp(INITIAL_CAPACITY, READ_STEP));
        }
        self.reader.read_buf(&mut self.buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// An `AsyncRead` that hands out the input in the given chunk sizes.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        next: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = &mut *self;
            let step = this
                .sizes
                .get(this.next)
                .copied()
                .unwrap_or(usize::MAX)
                .max(1);
            this.next += 1;
            let n = step.min(buf.remaining()).min(this.data.len() - this.pos);
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// What the frames of `data` are, by a plain reading of the format.
    fn reference(data: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
        let mut frames = Vec::new();
        let mut pos = 0;
        loop {
            if pos == data.len() {
                return (frames, true);
            }
            if data.len() - pos < 4 {
                return (frames, false);
            }
            let size = i32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
            if size < 0 || size as usize > max || data.len() - pos - 4 < size as usize {
                return (frames, false);
            }
            frames.push(data[pos + 4..pos + 4 + size as usize].to_vec());
            pos += 4 + size as usize;
        }
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        // Mostly well-formed frames, sometimes followed by arbitrary bytes.
        (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
            prop::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(frames, tail)| {
                let mut v = Vec::new();
                for f in frames {
                    v.extend_from_slice(&(f.len() as i32).to_be_bytes());
                    v.extend_from_slice(&f);
                }
                v.extend_from_slice(&tail);
                v
            })
    }

    proptest! {
        /// However the bytes are split by the network, the reader yields
        /// exactly the frames a plain parse finds, then a clean end or an
        /// error, and its buffer never grows past what arrived plus one step.
        #[test]
        fn frames_do_not_depend_on_how_bytes_arrive(
            data in stream(),
            sizes in prop::collection::vec(1usize..700, 0..40),
            max in prop_oneof![0usize..400, Just(100usize << 20)],
        ) {
            let (expected, clean) = reference(&data, max);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (got, ended_clean, peak) = rt.block_on(async {
                let input = Chunked { data: data.clone(), pos: 0, sizes, next: 0 };
                let mut r = FrameReader::new(input, max, MemoryPool::new(usize::MAX));
                let mut got = Vec::new();
                let mut peak = 0;
                let clean = loop {
                    let next = r.next_frame().await;
                    peak = peak.max(r.buf.capacity());
                    match next {
                        Ok(Some(f)) => got.push(f.bytes.to_vec()),
                        Ok(None) => break true,
                        Err(_) => break false,
                    }
                };
                (got, clean, peak)
            });
            prop_assert_eq!(got, expected);
            prop_assert_eq!(ended_clean, clean);
            prop_assert!(peak <= 2 * (data.len() + READ_STEP + INITIAL_CAPACITY) + FRAME_PREALLOC);
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn pipelined_frames_come_out_whole_and_in_order() {
        let mut input = frame(b"first");
        input.extend(frame(b""));
        input.extend(frame(&[7u8; 100_000]));
        let mut r = FrameReader::new(&input[..], 1 << 20, MemoryPool::new(usize::MAX));
        assert_eq!(&r.next_frame().await.unwrap().unwrap().bytes[..], b"first");
        assert!(r.next_frame().await.unwrap().unwrap().bytes.is_empty());
        assert_eq!(r.next_frame().await.unwrap().unwrap().bytes.len(), 100_000);
        assert!(r.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_huge_claim_is_refused_without_allocating_it() {
        let input = (i32::MAX).to_be_bytes();
        let mut r = FrameReader::new(&input[..], 100 << 20, MemoryPool::new(usize::MAX));
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::TooLarge { size, .. }) if size == i32::MAX as usize
        ));
        assert!(r.buf.capacity() < 1 << 20);
    }

    #[tokio::test]
    async fn a_big_claim_with_few_bytes_costs_at_most_the_preallocation() {
        let mut input = (50i32 << 20).to_be_bytes().to_vec();
        input.extend_from_slice(&[9u8; 10]);
        let mut r = FrameReader::new(&input[..], 100 << 20, MemoryPool::new(usize::MAX));
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::Truncated { have: 10, .. })
        ));
        assert!(r.buf.capacity() <= FRAME_PREALLOC + INITIAL_CAPACITY);
    }

    #[tokio::test]
    async fn a_frame_just_below_the_preallocation_arrives_whole() {
        let body = vec![3u8; 900_000];
        let input = frame(&body);
        let mut r = FrameReader::new(&input[..], 100 << 20, MemoryPool::new(usize::MAX));
        let f = r.next_frame().await.unwrap().unwrap();
        assert_eq!(&f.bytes[..], &body[..]);
    }

    #[tokio::test]
    async fn negative_sizes_and_truncated_frames_are_errors() {
        let input = (-5i32).to_be_bytes();
        let mut r = FrameReader::new(&input[..], 1 << 20, MemoryPool::new(usize::MAX));
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::NegativeSize(-5))
        ));

        let mut input = 1000i32.to_be_bytes().to_vec();
        input.extend_from_slice(&[1, 2, 3]);
        let mut r = FrameReader::new(&input[..], 1 << 20, MemoryPool::new(usize::MAX));
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::Truncated {
                have: 3,
                need: 1000
            })
        ));
        // The buffer grew with the 3 bytes that arrived, not the 1000 claimed.
        assert!(r.buf.capacity() <= 2 * INITIAL_CAPACITY + 1000);

        let input = [0u8, 0];
        let mut r = FrameReader::new(&input[..], 1 << 20, MemoryPool::new(usize::MAX));
        assert!(matches!(
            r.next_frame().await,
            Err(FrameError::Truncated { have: 2, need: 4 })
        ));
    }

    #[tokio::test]
    async fn reservations_hold_pool_budget_until_dropped() {
        let pool = MemoryPool::new(1000);
        let input = frame(&[1u8; 600]);
        let mut r = FrameReader::new(&input[..], 1 << 20, pool.clone());
        let f = r.next_frame().await.unwrap().unwrap();
        assert_eq!(pool.available(), 400);
        drop(f);
        assert_eq!(pool.available(), 1000);
    }
}
