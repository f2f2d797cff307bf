//! Streaming decoders of the codecs, and what each keeps in memory while it
//! decodes (its *state*: a window, block buffers), which callers charge to
//! a [`Budget`] before decoding. The state is read from the compressed
//! bytes' own framing (lz4 block sizes, zstd window descriptors, snappy
//! block lengths) without decompressing anything.

use std::cell::RefCell;
use std::io::Read;

use crate::batch::CompressionType;
use crate::budget::Budget;
use crate::compression::{dec_err, snappy_block, too_large};
use crate::error::RecordError;

/// gzip's inflate state (a 32 KiB window and its tables), rounded up.
const GZIP_STATE: usize = 64 << 10;
/// What an lz4 frame decoder keeps besides its two block buffers.
const LZ4_STATE: usize = 128 << 10;
/// lz4's largest block (block size id 7), for frames the walk cannot read.
const LZ4_MAX_BLOCK: usize = 4 << 20;
/// What a zstd stream decoder keeps besides its window: a 128 KiB block,
/// its input buffer and the context's tables, rounded up.
const ZSTD_STATE: usize = 512 << 10;
/// Largest window a zstd frame may declare (`ZSTD_WINDOW_LOG_MAX`).
const ZSTD_MAX_WINDOW: usize = 1 << 27;
/// Windows up to this size decode with the thread's reused context (which
/// keeps its buffers between calls); larger ones with a private context
/// freed when the call ends, so no thread keeps a bomb's window.
const ZSTD_REUSED_WINDOW: usize = 8 << 20;
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;

/// Bytes a decoder of `codec` keeps while it decodes `input` (not counting
/// its output), capped by what it may produce (`max_output`) where the
/// state is output (snappy blocks).
pub(crate) fn decoder_state(
    codec: CompressionType,
    input: &[u8],
    max_output: usize,
) -> Result<usize, RecordError> {
    Ok(match codec {
        CompressionType::None => 0,
        CompressionType::Gzip => GZIP_STATE,
        CompressionType::Lz4 => LZ4_STATE + 2 * lz4_max_block(input).unwrap_or(LZ4_MAX_BLOCK),
        CompressionType::Zstd => ZSTD_STATE + zstd_max_window(input)?,
        CompressionType::Snappy => snappy_max_block(input, max_output)?,
    })
}

/// Runs `f` over a reader of `input` decompressed with `codec`. The caller
/// charged [`decoder_state`] first; `f` bounds the output it reads.
pub(crate) fn with_decoder<T>(
    codec: CompressionType,
    input: &[u8],
    max_output: usize,
    f: impl FnOnce(&mut dyn Read) -> Result<T, RecordError>,
) -> Result<T, RecordError> {
    match codec {
        CompressionType::None => f(&mut &input[..]),
        CompressionType::Gzip => f(&mut flate2::bufread::MultiGzDecoder::new(input)),
        CompressionType::Lz4 => f(&mut lz4_flex::frame::FrameDecoder::new(input)),
        CompressionType::Zstd => with_zstd(input, f),
        CompressionType::Snappy => {
            if input.starts_with(XERIAL_MAGIC) {
                if input.len() < XERIAL_HEADER_LEN {
                    return Err(dec_err(codec, "truncated xerial header"));
                }
                f(&mut Xerial {
                    input,
                    pos: XERIAL_HEADER_LEN,
                    block: Vec::new(),
                    at: 0,
                    max_output,
                    produced: 0,
                })
            } else {
                let mut out = Vec::new();
                snappy_block(input, &mut out, max_output)?;
                f(&mut &out[..])
            }
        }
    }
}

/// Decompresses `input` into a buffer that grows with the output, charging
/// `budget` for the decoder's state and then for every growth of the
/// buffer, so memory is granted before it is touched. At most `max_output`
/// bytes; more is [`RecordError::Decompression`].
pub fn decompress_budgeted(
    codec: CompressionType,
    input: &[u8],
    max_output: usize,
    budget: &mut dyn Budget,
) -> Result<Vec<u8>, RecordError> {
    budget.grow(decoder_state(codec, input, max_output)?)?;
    with_decoder(codec, input, max_output, |r| {
        let mut out: Vec<u8> = Vec::new();
        loop {
            // Double, from 16 KiB, up to one byte past the limit (to see
            // that the output would exceed it). Capacity is granted before
            // it is reserved; pages are touched only as output arrives.
            let step = out
                .len()
                .max(16 << 10)
                .min(max_output.saturating_add(1) - out.len());
            budget.grow(step)?;
            out.reserve_exact(step);
            let n = (&mut *r)
                .take(step as u64)
                .read_to_end(&mut out)
                .map_err(|e| dec_err(codec, e))?;
            if out.len() > max_output {
                return Err(too_large(codec, max_output));
            }
            if n < step {
                return Ok(out);
            }
        }
    })
}

thread_local! {
    /// The streaming twin of `compression`'s reused context.
    static ZSTD_STREAM_DCTX: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_err(code: usize) -> RecordError {
    dec_err(CompressionType::Zstd, zstd::zstd_safe::get_error_name(code))
}

fn new_zstd_context() -> Result<zstd::zstd_safe::DCtx<'static>, RecordError> {
    let mut ctx = zstd::zstd_safe::DCtx::create();
    ctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27))
        .map_err(zstd_err)?;
    Ok(ctx)
}

fn with_zstd<T>(
    input: &[u8],
    f: impl FnOnce(&mut dyn Read) -> Result<T, RecordError>,
) -> Result<T, RecordError> {
    let private = |f: &mut dyn FnMut(&mut dyn Read) -> Result<T, RecordError>| {
        let mut ctx = new_zstd_context()?;
        let mut dec = zstd::stream::read::Decoder::with_context(input, &mut ctx);
        f(&mut dec)
    };
    let mut f = Some(f);
    let mut call = |r: &mut dyn Read| (f.take().expect("called once"))(r);
    if zstd_max_window(input)? > ZSTD_REUSED_WINDOW {
        return private(&mut call);
    }
    ZSTD_STREAM_DCTX.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = Some(new_zstd_context()?);
            }
            let ctx = slot.as_mut().expect("set above");
            let result = {
                let mut dec = zstd::stream::read::Decoder::with_context(input, ctx);
                call(&mut dec)
            };
            if result.is_err() {
                // Do not keep a context that saw a failed frame.
                *slot = None;
            }
            result
        }
        Err(_) => private(&mut call),
    })
}

/// The largest window any zstd frame of `input` declares (capped at the
/// 128 MiB a frame may ask for), from the frame headers alone.
fn zstd_max_window(input: &[u8]) -> Result<usize, RecordError> {
    let mut rest = input;
    let mut max = 0usize;
    while !rest.is_empty() {
        let n = zstd::zstd_safe::find_frame_compressed_size(rest).map_err(zstd_err)?;
        if n == 0 || n > rest.len() {
            return Err(dec_err(CompressionType::Zstd, "bad frame size"));
        }
        max = max.max(zstd_frame_window(&rest[..n]));
        rest = &rest[n..];
    }
    Ok(max.min(ZSTD_MAX_WINDOW))
}

/// Window of one zstd frame (RFC 8878 3.1.1.1): from the window descriptor,
/// or the content size of a single-segment frame; 0 for skippable frames.
fn zstd_frame_window(frame: &[u8]) -> usize {
    const MAGIC: u32 = 0xFD2F_B528;
    let Some(magic) = frame.get(..4) else {
        return ZSTD_MAX_WINDOW;
    };
    if u32::from_le_bytes(magic.try_into().expect("4 bytes")) != MAGIC {
        return 0; // skippable (find_frame_compressed_size accepted it)
    }
    let Some(&fhd) = frame.get(4) else {
        return ZSTD_MAX_WINDOW;
    };
    if fhd & 0x20 == 0 {
        let Some(&wd) = frame.get(5) else {
            return ZSTD_MAX_WINDOW;
        };
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        let window = base + (base >> 3) * u64::from(wd & 7);
        return usize::try_from(window).unwrap_or(usize::MAX);
    }
    let did = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let at = 5 + did;
    let fcs = match fhd >> 6 {
        0 => frame.get(at).map(|&b| u64::from(b)),
        1 => frame
            .get(at..at + 2)
            .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])) + 256),
        2 => frame
            .get(at..at + 4)
            .map(|b| u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")))),
        _ => frame
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
    };
    fcs.map_or(ZSTD_MAX_WINDOW, |v| {
        usize::try_from(v).unwrap_or(usize::MAX)
    })
}

/// The largest block size any lz4 frame of `input` allows; `None` when the
/// framing does not walk (the decoder will then fail, possibly after
/// allocating for the largest block).
fn lz4_max_block(input: &[u8]) -> Option<usize> {
    let u32_at = |at: usize| -> Option<u32> {
        input
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let mut pos = 0usize;
    let mut max = 0usize;
    while pos < input.len() {
        let magic = u32_at(pos)?;
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            pos = pos.checked_add(8 + u32_at(pos + 4)? as usize)?;
            continue;
        }
        if magic != 0x184D_2204 {
            return None;
        }
        let flg = *input.get(pos + 4)?;
        let bd = *input.get(pos + 5)?;
        max = max.max(match (bd >> 4) & 7 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            _ => LZ4_MAX_BLOCK,
        });
        pos += 7 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 };
        loop {
            let size = u32_at(pos)?;
            pos += 4;
            if size == 0 {
                break;
            }
            let checksum = if flg & 0x10 != 0 { 4 } else { 0 };
            pos = pos.checked_add((size & 0x7FFF_FFFF) as usize + checksum)?;
        }
        if flg & 0x04 != 0 {
            pos += 4;
        }
    }
    (pos == input.len()).then_some(max)
}

/// The largest block a snappy section decodes to (the whole output for a
/// raw block), from the blocks' length headers; over `max_output` is
/// [`RecordError::Decompression`].
fn snappy_max_block(input: &[u8], max_output: usize) -> Result<usize, RecordError> {
    let codec = CompressionType::Snappy;
    let block_len = |block: &[u8]| -> Result<usize, RecordError> {
        let n = snap::raw::decompress_len(block).map_err(|e| dec_err(codec, e))?;
        if n > max_output {
            return Err(too_large(codec, max_output));
        }
        Ok(n)
    };
    if !input.starts_with(XERIAL_MAGIC) {
        return block_len(input);
    }
    if input.len() < XERIAL_HEADER_LEN {
        return Err(dec_err(codec, "truncated xerial header"));
    }
    let mut pos = XERIAL_HEADER_LEN;
    let mut max = 0;
    while pos < input.len() {
        let (len, block) = xerial_block(input, pos)?;
        max = max.max(block_len(block)?);
        pos += 4 + len;
    }
    Ok(max)
}

/// The xerial block at `pos`: its length and bytes.
fn xerial_block(input: &[u8], pos: usize) -> Result<(usize, &[u8]), RecordError> {
    let codec = CompressionType::Snappy;
    let Some(len_bytes) = input.get(pos..pos + 4) else {
        return Err(dec_err(codec, "truncated xerial block length"));
    };
    let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
    if len > input.len() - pos - 4 {
        return Err(dec_err(codec, "xerial block longer than the input"));
    }
    Ok((len, &input[pos + 4..pos + 4 + len]))
}

/// snappy-java's xerial stream, decoded one block at a time into one
/// reused buffer.
struct Xerial<'a> {
    input: &'a [u8],
    pos: usize,
    block: Vec<u8>,
    at: usize,
    max_output: usize,
    produced: usize,
}

impl Read for Xerial<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if self.pos >= self.input.len() {
                return Ok(0);
            }
            let io = |e: RecordError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            let (len, block) = xerial_block(self.input, self.pos).map_err(io)?;
            self.pos += 4 + len;
            self.block.clear();
            let room = self.max_output.saturating_sub(self.produced);
            snappy_block(block, &mut self.block, room).map_err(io)?;
            self.produced += self.block.len();
            self.at = 0;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
