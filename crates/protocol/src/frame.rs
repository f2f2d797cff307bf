//! Size-prefixed framing: every Kafka request is a 4-byte big-endian size followed by
//! that many bytes.
//!
//! [`FrameReader`] accumulates bytes as they arrive and hands out complete frames. The
//! size prefix is checked (negative, or above `socket.request.max.bytes`) before any
//! byte of the frame is buffered, and the buffer only grows by what actually arrived
//! plus a bounded read chunk: a prefix claiming 100 MiB reserves nothing until the
//! bytes are there.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// The most a single read reserves beyond the bytes already buffered.
pub const READ_CHUNK: usize = 64 * 1024;

/// The least a single read reserves, so small pipelined requests need few reads.
pub const MIN_READ: usize = 8 * 1024;

/// Check a 4-byte size prefix: returns the frame length, or an error for a negative
/// size or one above `max_request_bytes`.
pub fn parse_size_prefix(
    prefix: [u8; 4],
    max_request_bytes: usize,
) -> Result<usize, ProtocolError> {
    let size = i32::from_be_bytes(prefix);
    if size < 0 {
        return Err(ProtocolError::NegativeFrameSize(size));
    }
    let size = size as usize;
    if size > max_request_bytes {
        return Err(ProtocolError::FrameTooLarge {
            size,
            max: max_request_bytes,
        });
    }
    Ok(size)
}

/// Incremental reader of size-prefixed frames from a byte stream.
///
/// Use [`FrameReader::read_buf`] as the target of a socket read (e.g. tokio's
/// `AsyncReadExt::read_buf`), then call [`FrameReader::next_frame`] until it returns
/// `Ok(None)`. Frames already complete are returned even when more bytes of the next
/// request are buffered (pipelining). After an error the stream is unusable and the
/// connection should be closed.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max_request_bytes: usize,
    /// Length of the frame whose prefix has been read and checked.
    pending: Option<usize>,
}

impl FrameReader {
    /// A reader refusing frames larger than `max_request_bytes`
    /// (`socket.request.max.bytes`).
    pub fn new(max_request_bytes: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            max_request_bytes,
            pending: None,
        }
    }

    /// The buffer to read socket bytes into. Guarantees spare room for what the current
    /// frame still needs, but at least [`MIN_READ`] and at most [`READ_CHUNK`] bytes:
    /// the reservation never follows the size prefix beyond one chunk, so memory grows
    /// only with bytes that actually arrived.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        let needed = match self.pending {
            Some(len) => (4 + len).saturating_sub(self.buf.len()),
            None => 4usize.saturating_sub(self.buf.len()),
        };
        let want = needed.clamp(MIN_READ, READ_CHUNK);
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        &mut self.buf
    }

    /// Append bytes (for callers that read into their own buffers, and for tests).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned as frames (for `queued.max.request.bytes`
    /// accounting).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Take the next complete frame (without its size prefix), if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let len = match self.pending {
            Some(len) => len,
            None => {
                if self.buf.len() < 4 {
                    return Ok(None);
                }
                let prefix = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                let len = parse_size_prefix(prefix, self.max_request_bytes)?;
                self.pending = Some(len);
                len
            }
        };
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        let frame = self.buf.split_to(len).freeze();
        self.pending = None;
        Ok(Some(frame))
    }
}
