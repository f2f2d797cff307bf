//! Reading size-prefixed request frames from a socket.
//!
//! The 4-byte size prefix is untrusted: it is checked against
//! `socket.request.max.bytes` and sizes nothing else. Budget in the
//! broker-wide `queued.max.request.bytes` pool is taken as bytes *arrive*:
//! before each read a connection holds budget for every byte it has buffered
//! plus what that read may add, at most the larger of what it has already
//! received and its fair share of the pool (`queued.max.request.bytes /
//! max.connections`, between 4 KiB and 1 MiB). So a client that claims
//! 100 MiB and sends ten bytes holds ten bytes plus that share: stalled
//! claims together hold at most `max.connections` shares, never the pool.
//!
//! When the pool is used up, one frame at a time may finish without budget
//! (the *overdraft*, as Kafka's non-strict pool lets one request exceed it):
//! otherwise frames that each hold part of the pool could wait for one
//! another forever. So request bytes in memory stay below
//! `queued.max.request.bytes + socket.request.max.bytes`.
//!
//! A frame that has begun to arrive but gets no byte for the stall timeout
//! (`sluice.request.stall.timeout.ms`) is abandoned with
//! [`FrameError::Stalled`], which frees its budget. Time spent waiting for
//! budget is not the client's fault and does not count.
//!
//! The buffer itself is sized for the whole frame up front only up to
//! [`FRAME_PREALLOC`] (typical produce requests arrive in one allocation
//! instead of a chain of reallocations that copied every byte once more);
//! beyond that it grows as bytes actually arrive, in steps of at most
//! [`READ_STEP`]. Untouched capacity is address space, not memory.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// Largest single growth step of a frame buffer.
pub const READ_STEP: usize = 64 * 1024;
/// Initial buffer capacity of a connection.
const INITIAL_CAPACITY: usize = 4 * 1024;
/// Frames up to this size get their whole buffer before the bytes arrive
/// (librdkafka's produce requests stay below 1 MiB by default).
pub const FRAME_PREALLOC: usize = 1 << 20;
/// Bounds of the budget a connection may take ahead of the bytes it has
/// received (its fair share of the pool is clamped to these).
pub const MIN_READ_AHEAD: usize = 4 * 1024;
pub const MAX_READ_AHEAD: usize = 1 << 20;

/// Why a connection's byte stream cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("connection closed in the middle of a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    #[error(
        "no byte of a request for {} ms (sluice.request.stall.timeout.ms) after {have} of {need} bytes",
        after.as_millis()
    )]
    Stalled {
        have: usize,
        need: usize,
        after: Duration,
    },
    #[error("socket: {0}")]
    Io(#[from] io::Error),
}

/// The broker-wide budget of request bytes held by all connections
/// (`queued.max.request.bytes`). A connection that cannot get budget for
/// its next read stops reading its socket until others release some.
#[derive(Clone)]
pub struct MemoryPool {
    inner: Option<Arc<PoolInner>>,
}

struct PoolInner {
    semaphore: Arc<Semaphore>,
    /// One permit: the frame allowed to finish without budget.
    overdraft: Arc<Semaphore>,
    capacity: usize,
    /// Budget a connection may hold beyond the bytes it has received.
    read_ahead: usize,
}

impl MemoryPool {
    /// A pool of `capacity` bytes shared by up to 10000 connections (Sluice's
    /// `max.connections` default). `usize::MAX` or 0 means unbounded (Kafka's
    /// -1 and 0).
    pub fn new(capacity: usize) -> Self {
        Self::for_connections(capacity, 10_000)
    }

    /// A pool of `capacity` bytes whose connections (at most
    /// `max_connections`) may each hold a fair share of it ahead of the
    /// bytes they receive.
    pub fn for_connections(capacity: usize, max_connections: usize) -> Self {
        // tokio semaphores hold at most usize::MAX >> 3 permits.
        if capacity == 0 || capacity >= Semaphore::MAX_PERMITS {
            return MemoryPool { inner: None };
        }
        // A pool must at least hold a size prefix.
        let capacity = capacity.max(4);
        let share = capacity / max_connections.max(1);
        MemoryPool {
            inner: Some(Arc::new(PoolInner {
                semaphore: Arc::new(Semaphore::new(capacity)),
                overdraft: Arc::new(Semaphore::new(1)),
                capacity,
                read_ahead: share.clamp(MIN_READ_AHEAD, MAX_READ_AHEAD).min(capacity),
            })),
        }
    }

    /// Budget not currently held (`usize::MAX` when unbounded).
    pub fn available(&self) -> usize {
        match &self.inner {
            None => usize::MAX,
            Some(p) => p.semaphore.available_permits(),
        }
    }

    /// Whether a frame is finishing without budget right now.
    pub fn overdraft_in_use(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|p| p.overdraft.available_permits() == 0)
    }
}

/// Budget held for one request until it has been handled.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    _overdraft: Option<OwnedSemaphorePermit>,
}

/// One complete request frame (without its size prefix) and the budget it
/// holds.
pub struct Frame {
    pub bytes: Bytes,
    pub reservation: Reservation,
}

/// What a connection holds of the pool.
#[derive(Default)]
struct Budget {
    /// Covers every buffered byte (and the next read), except bytes of a
    /// frame finishing under the overdraft.
    permit: Option<OwnedSemaphorePermit>,
    overdraft: Option<OwnedSemaphorePermit>,
}

impl Budget {
    fn held(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    fn add(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
    }

    /// Splits off up to `n` permits (and the overdraft) for a frame.
    fn take(&mut self, n: usize) -> Reservation {
        let held = self.held();
        let n = n.min(held);
        let permit = if n == held {
            self.permit.take()
        } else {
            self.permit.as_mut().and_then(|p| p.split(n))
        };
        Reservation {
            _permit: permit,
            _overdraft: self.overdraft.take(),
        }
    }

    /// Gives back everything above `keep` permits.
    fn trim(&mut self, keep: usize) {
        let held = self.held();
        if held > keep {
            if let Some(p) = &mut self.permit {
                drop(p.split(held - keep));
            }
        }
    }
}

/// Incremental frame reader over one connection's read half.
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_frame: usize,
    pool: MemoryPool,
    budget: Budget,
    stall_timeout: Option<Duration>,
    /// When the frame in progress is abandoned if no byte arrives.
    stall_deadline: Option<Instant>,
    /// When the last byte arrived.
    last_progress: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R, max_frame: usize, pool: MemoryPool) -> Self {
        FrameReader {
            reader,
            buf: BytesMut::with_capacity(INITIAL_CAPACITY),
            max_frame,
            pool,
            budget: Budget::default(),
            stall_timeout: None,
            stall_deadline: None,
            last_progress: None,
        }
    }

    /// Abandons a frame that gets no byte for `timeout` (`None`: never).
    pub fn with_stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// The largest frame this reader accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Changes the largest frame accepted from the next size prefix on (a
    /// connection accepts less before it has authenticated).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// When the last byte arrived (`None`: none yet).
    pub fn last_progress(&self) -> Option<Instant> {
        self.last_progress
    }

    /// The next frame, or `None` at a clean end of stream (between frames).
    ///
    /// Cancel safe: every partial state (bytes, budget, stall deadline)
    /// lives in `self`, so a dropped call resumes where it stopped.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let need = self.frame_need()?;
            if let Some(need) = need {
                if self.buf.len() >= need {
                    return Ok(Some(self.split_frame(need)));
                }
                let upfront = need.min(FRAME_PREALLOC);
                if self.buf.capacity() < upfront {
                    self.buf.reserve(upfront - self.buf.len());
                }
            }
            let limit = self.budget_for_read(need).await;
            if self.read_some(limit, need).await? == 0 {
                return match need {
                    None if self.buf.is_empty() => Ok(None),
                    None => Err(FrameError::Truncated {
                        have: self.buf.len(),
                        need: 4,
                    }),
                    Some(need) => Err(FrameError::Truncated {
                        have: self.buf.len() - 4,
                        need: need - 4,
                    }),
                };
            }
        }
    }

    /// `4 + size` of the frame at the head of the buffer, once its size
    /// prefix is in.
    fn frame_need(&self) -> Result<Option<usize>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
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
        Ok(Some(4 + size))
    }

    fn split_frame(&mut self, need: usize) -> Frame {
        let reservation = self.budget.take(need);
        self.buf.advance(4);
        let bytes = self.buf.split_to(need - 4).freeze();
        self.stall_deadline = None;
        if let Some(pool) = &self.pool.inner {
            // Keep budget for what is buffered and one read ahead.
            self.budget.trim(self.buf.len() + pool.read_ahead);
            debug_assert!(self.budget.held() >= self.buf.len());
        }
        Frame { bytes, reservation }
    }

    /// Takes budget for the next read, waiting while the pool is used up;
    /// returns how many bytes that read may add.
    async fn budget_for_read(&mut self, need: Option<usize>) -> usize {
        let Some(pool) = self.pool.inner.clone() else {
            return usize::MAX;
        };
        let len = self.buf.len();
        if self.budget.overdraft.is_some() {
            // Finishing one frame past the pool: read only that frame.
            return need.map_or(1, |n| n - len);
        }
        let ahead = len.clamp(pool.read_ahead, MAX_READ_AHEAD);
        let target = (len + ahead).min(pool.capacity);
        let held = self.budget.held();
        if target > held {
            let want = target - held;
            match pool.semaphore.clone().try_acquire_many_owned(want as u32) {
                Ok(p) => self.budget.add(p),
                Err(TryAcquireError::NoPermits) => {
                    self.wait_for_budget(&pool, want, need.is_some()).await
                }
                Err(TryAcquireError::Closed) => unreachable!("the pool semaphore is never closed"),
            }
        }
        let held = self.budget.held();
        if self.budget.overdraft.is_none() && held <= len {
            // The pool is smaller than this frame: finish it past the pool.
            let o = pool.overdraft.clone().acquire_owned().await;
            self.budget.overdraft = Some(o.expect("the overdraft semaphore is never closed"));
            self.stall_deadline = None;
        }
        if self.budget.overdraft.is_some() {
            return need.map_or(1, |n| n - len);
        }
        held - len
    }

    /// Waits until the pool frees `want` bytes, or, for a frame whose size
    /// is known, until the overdraft is free (whichever comes first).
    async fn wait_for_budget(&mut self, pool: &PoolInner, want: usize, sized: bool) {
        let more = pool.semaphore.clone().acquire_many_owned(want as u32);
        if sized {
            tokio::select! {
                p = more => self.budget.add(p.expect("the pool semaphore is never closed")),
                o = pool.overdraft.clone().acquire_owned() => {
                    self.budget.overdraft = Some(o.expect("the overdraft semaphore is never closed"));
                }
            }
        } else {
            self.budget
                .add(more.await.expect("the pool semaphore is never closed"));
        }
        // Waiting for budget is not the client's fault.
        self.stall_deadline = None;
    }

    /// Reads once, adding at most `limit` bytes and growing the buffer by at
    /// most `min(limit, READ_STEP)` (never by what the client merely
    /// claims). Returns bytes read; a frame in progress that gets no byte
    /// before its stall deadline is an error.
    async fn read_some(&mut self, limit: usize, need: Option<usize>) -> Result<usize, FrameError> {
        debug_assert!(limit > 0);
        if self.buf.capacity() - self.buf.len() == 0 {
            let missing = need.map_or(4, |n| n - self.buf.len());
            self.buf
                .reserve(missing.min(limit).clamp(INITIAL_CAPACITY, READ_STEP));
        }
        let deadline = match (self.stall_timeout, self.buf.is_empty()) {
            (Some(t), false) => Some(
                *self
                    .stall_deadline
                    .get_or_insert_with(|| Instant::now() + t),
            ),
            _ => None,
        };
        let mut into = (&mut self.buf).limit(limit);
        let read = self.reader.read_buf(&mut into);
        let n = match deadline {
            None => read.await?,
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(n) => n?,
                Err(_) => {
                    let have = self.buf.len();
                    return Err(FrameError::Stalled {
                        have: have.saturating_sub(4),
                        need: need.map_or(4, |n| n - 4),
                        after: self.stall_timeout.unwrap_or_default(),
                    });
                }
            },
        };
        if n > 0 {
            self.stall_deadline = None;
            self.last_progress = Some(Instant::now());
        }
        Ok(n)
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
            pool in prop_oneof![Just(usize::MAX), 1usize..600],
        ) {
            let (expected, clean) = reference(&data, max);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let pool = MemoryPool::new(pool);
            let (got, ended_clean, peak) = rt.block_on(async {
                let input = Chunked { data: data.clone(), pos: 0, sizes, next: 0 };
                // Frames bigger than a small pool finish on the overdraft.
                let mut r = FrameReader::new(input, max, pool.clone());
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
            // Every byte of budget came back once the reader was gone.
            prop_assert!(!pool.overdraft_in_use());
            if let Some(p) = &pool.inner {
                prop_assert_eq!(pool.available(), p.capacity);
            }
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
        let pool = MemoryPool::new(100_000);
        let read_ahead = pool.inner.as_ref().unwrap().read_ahead;
        let input = frame(&[1u8; 600]);
        let mut r = FrameReader::new(&input[..], 1 << 20, pool.clone());
        let f = r.next_frame().await.unwrap().unwrap();
        // The frame holds its bytes; the reader at most one read ahead.
        assert!(pool.available() <= 100_000 - 604);
        assert!(pool.available() >= 100_000 - 604 - read_ahead);
        drop(f);
        assert!(pool.available() >= 100_000 - read_ahead);
        drop(r);
        assert_eq!(pool.available(), 100_000);
    }

    /// A client that claims a huge frame and sends a few bytes holds a few
    /// bytes plus its read-ahead share of the pool, not the claim.
    #[tokio::test]
    async fn a_stalled_claim_holds_only_what_arrived_plus_its_share() {
        let pool = MemoryPool::for_connections(64 << 20, 1000);
        let share = pool.inner.as_ref().unwrap().read_ahead;
        assert_eq!(share, (64 << 20) / 1000);
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut input = (100i32 << 20).to_be_bytes().to_vec();
        input.extend_from_slice(&[9u8; 10]);
        tokio::io::AsyncWriteExt::write_all(&mut client, &input)
            .await
            .unwrap();
        let mut r = FrameReader::new(server, 100 << 20, pool.clone())
            .with_stall_timeout(Some(Duration::from_millis(100)));
        match r.next_frame().await {
            Err(FrameError::Stalled { have: 10, need, .. }) => assert_eq!(need, 100 << 20),
            other => panic!("{:?}", other.map(|f| f.map(|f| f.bytes.len()))),
        }
        let held = (64 << 20) - pool.available();
        assert!(held >= 14 && held <= 14 + share, "held {held}");
        drop(r);
        assert_eq!(pool.available(), 64 << 20);
    }

    /// Frames that together need more than the pool, each partly read, do
    /// not wait for one another forever: one finishes on the overdraft, and
    /// once it is handled the pool lets the other finish.
    #[tokio::test]
    async fn frames_bigger_than_what_is_left_of_the_pool_still_finish() {
        let pool = MemoryPool::new(100_000);
        let mut readers = Vec::new();
        for _ in 0..3 {
            // Bytes arrive 1000 at a time with a pause in between, so the
            // three frames are read side by side.
            let input = Trickle {
                data: frame(&[5u8; 90_000]),
                pos: 0,
                ready: false,
            };
            readers.push(FrameReader::new(input, 1 << 20, pool.clone()));
        }
        let reads = readers.iter_mut().map(|r| async move {
            // The frame (and its budget) is dropped as soon as it is read.
            r.next_frame().await.unwrap().unwrap().bytes.len()
        });
        let lens = tokio::time::timeout(Duration::from_secs(60), futures_join_all(reads.collect()))
            .await
            .expect("frames waited for each other's budget");
        assert_eq!(lens, vec![90_000; 3]);
        drop(readers);
        assert_eq!(pool.available(), 100_000);
    }

    /// Hands out 1000 bytes every second poll (waking itself in between).
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        ready: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = &mut *self;
            this.ready = !this.ready;
            if !this.ready {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = 1000.min(buf.remaining()).min(this.data.len() - this.pos);
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    /// Polls every future to completion concurrently on this task.
    async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
        let mut set: Vec<_> = futs.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (i, f) in set.iter_mut().enumerate() {
                if out[i].is_none() {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(v) => out[i] = Some(v),
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        out.into_iter().map(|o| o.unwrap()).collect()
    }
}
