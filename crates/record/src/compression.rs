//! Compression codecs of the records section, in the formats Kafka clients
//! write:
//!
//! - **gzip**: RFC 1952 (concatenated members are read as one stream).
//! - **snappy**: the Java client writes snappy-java's *xerial* framing
//!   (`\x82SNAPPY\0`, two big-endian version ints, then blocks each prefixed
//!   by a big-endian 32-bit length); other clients may write one raw snappy
//!   block. Both are read; Sluice writes xerial framing with 32 KiB blocks
//!   as the Java client does, which every Kafka client reads.
//! - **lz4**: the standard LZ4 frame format with independent 64 KiB blocks.
//! - **zstd**: zstd frames (level 3, Kafka's default, when writing).
//!
//! Decompression takes a limit on the output and fails with
//! [`RecordError::Decompression`] as soon as the output would exceed it, so
//! a small "decompression bomb" cannot make the broker allocate more than
//! the limit. Output buffers grow with the bytes actually produced.

use std::cell::RefCell;
use std::io::{Read, Write};

use crate::batch::CompressionType;
use crate::error::RecordError;

/// snappy-java's stream header magic.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
/// Magic + version + minimum compatible version.
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size, which Kafka's Java client uses.
const XERIAL_BLOCK: usize = 32 * 1024;
/// Kafka's default zstd level.
const ZSTD_LEVEL: i32 = 3;
/// Largest zstd window (log2) a frame may ask for: zstd's own default
/// ceiling for decompression (128 MiB, reserved lazily as output arrives).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

pub(crate) fn dec_err(codec: CompressionType, reason: impl ToString) -> RecordError {
    RecordError::Decompression {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

pub(crate) fn too_large(codec: CompressionType, limit: usize) -> RecordError {
    dec_err(
        codec,
        format!("decompressed size exceeds the limit of {limit} bytes"),
    )
}

fn comp_err(codec: CompressionType, reason: impl ToString) -> RecordError {
    RecordError::Compression {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

/// Compresses `input` with `codec` (a copy for [`CompressionType::None`]).
pub fn compress(codec: CompressionType, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    match codec {
        CompressionType::None => Ok(input.to_vec()),
        CompressionType::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(input).map_err(|e| comp_err(codec, e))?;
            enc.finish().map_err(|e| comp_err(codec, e))
        }
        CompressionType::Snappy => {
            let mut out = Vec::with_capacity(input.len() / 2 + XERIAL_HEADER_LEN);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible
            let mut encoder = snap::raw::Encoder::new();
            let mut block = Vec::new();
            for chunk in input.chunks(XERIAL_BLOCK) {
                block.resize(snap::raw::max_compress_len(chunk.len()), 0);
                let n = encoder
                    .compress(chunk, &mut block)
                    .map_err(|e| comp_err(codec, e))?;
                out.extend_from_slice(&(n as u32).to_be_bytes());
                out.extend_from_slice(&block[..n]);
            }
            Ok(out)
        }
        CompressionType::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            enc.write_all(input).map_err(|e| comp_err(codec, e))?;
            enc.finish().map_err(|e| comp_err(codec, e))
        }
        CompressionType::Zstd => {
            zstd::bulk::compress(input, ZSTD_LEVEL).map_err(|e| comp_err(codec, e))
        }
    }
}

/// Decompresses `input`, producing at most `max_output` bytes; more is an
/// error. For [`CompressionType::None`] returns a copy of `input` (subject
/// to the same limit).
pub fn decompress(
    codec: CompressionType,
    input: &[u8],
    max_output: usize,
) -> Result<Vec<u8>, RecordError> {
    match codec {
        CompressionType::None => {
            if input.len() > max_output {
                return Err(too_large(codec, max_output));
            }
            Ok(input.to_vec())
        }
        CompressionType::Gzip => {
            read_bounded(codec, flate2::read::MultiGzDecoder::new(input), max_output)
        }
        CompressionType::Snappy => {
            if input.starts_with(XERIAL_MAGIC) {
                snappy_xerial(input, max_output)
            } else {
                let mut out = Vec::new();
                snappy_block(input, &mut out, max_output)?;
                Ok(out)
            }
        }
        CompressionType::Lz4 => {
            read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input), max_output)
        }
        CompressionType::Zstd => zstd_decompress(input, max_output),
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused: creating one
    /// costs more than decoding a 16 KiB batch (its tables are ~100 KiB of
    /// fresh memory).
    static ZSTD_DCTX: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_context() -> Result<zstd::zstd_safe::DCtx<'static>, RecordError> {
    let mut ctx = zstd::zstd_safe::DCtx::create();
    ctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
        ZSTD_WINDOW_LOG_MAX,
    ))
    .map_err(|code| dec_err(CompressionType::Zstd, zstd::zstd_safe::get_error_name(code)))?;
    Ok(ctx)
}

fn zstd_decompress(input: &[u8], max_output: usize) -> Result<Vec<u8>, RecordError> {
    let codec = CompressionType::Zstd;
    ZSTD_DCTX.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = Some(zstd_context()?);
            }
            let ctx = slot.as_mut().expect("set above");
            // with_context resets the session, keeping the window limit.
            let dec = zstd::stream::read::Decoder::with_context(input, ctx);
            let result = read_bounded(codec, dec, max_output);
            if result.is_err() {
                // Do not keep a context that saw a failed frame.
                *slot = None;
            }
            result
        }
        // Only reachable through re-entrancy; use a private context.
        Err(_) => {
            let mut ctx = zstd_context()?;
            let dec = zstd::stream::read::Decoder::with_context(input, &mut ctx);
            read_bounded(codec, dec, max_output)
        }
    })
}

/// Reads `reader` to its end into a buffer that grows with the bytes read,
/// failing once more than `max` bytes come out.
fn read_bounded(
    codec: CompressionType,
    reader: impl Read,
    max: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let limit = (max as u64).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| dec_err(codec, e))?;
    if out.len() > max {
        return Err(too_large(codec, max));
    }
    Ok(out)
}

/// Appends one raw snappy block's output to `out`, keeping `out` within
/// `max` bytes. The block's declared length is checked before anything is
/// allocated for it.
pub(crate) fn snappy_block(block: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), RecordError> {
    let codec = CompressionType::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| dec_err(codec, e))?;
    let start = out.len();
    if len > max.saturating_sub(start) {
        return Err(too_large(codec, max));
    }
    out.resize(start + len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| dec_err(codec, e))?;
    if n != len {
        return Err(dec_err(codec, "block shorter than its declared length"));
    }
    Ok(())
}

fn snappy_xerial(input: &[u8], max: usize) -> Result<Vec<u8>, RecordError> {
    let codec = CompressionType::Snappy;
    if input.len() < XERIAL_HEADER_LEN {
        return Err(dec_err(codec, "truncated xerial header"));
    }
    let mut out = Vec::new();
    let mut pos = XERIAL_HEADER_LEN;
    while pos < input.len() {
        let Some(len_bytes) = input.get(pos..pos + 4) else {
            return Err(dec_err(codec, "truncated xerial block length"));
        };
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        pos += 4;
        if len > input.len() - pos {
            return Err(dec_err(codec, "xerial block longer than the input"));
        }
        snappy_block(&input[pos..pos + len], &mut out, max)?;
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODECS: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[i % 44])
            .collect()
    }

    fn is_limit_error(e: &RecordError) -> bool {
        matches!(e, RecordError::Decompression { reason, .. } if reason.contains("limit"))
    }

    #[test]
    fn every_codec_round_trips_and_compresses_text() {
        let input = text(200_000);
        for codec in CODECS {
            let c = compress(codec, &input).unwrap();
            if codec != CompressionType::None {
                assert!(c.len() < input.len() / 4, "{codec:?}: {}", c.len());
            }
            assert_eq!(
                decompress(codec, &c, input.len()).unwrap(),
                input,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn output_over_the_limit_is_an_error_not_an_allocation() {
        // 64 MiB of zeros compresses to a few KiB: a bomb for a 1 MiB limit.
        let zeros = vec![0u8; 64 << 20];
        for codec in CODECS {
            let bomb = compress(codec, &zeros).unwrap();
            let err = decompress(codec, &bomb, 1 << 20).unwrap_err();
            assert!(is_limit_error(&err), "{codec:?}: {err}");
            // Exactly at the limit is fine; one byte under is not.
            let small = &zeros[..1000];
            let c = compress(codec, small).unwrap();
            assert_eq!(decompress(codec, &c, 1000).unwrap().len(), 1000);
            assert!(is_limit_error(&decompress(codec, &c, 999).unwrap_err()));
        }
    }

    #[test]
    fn snappy_writes_xerial_framing_in_32k_blocks() {
        let input = text(100_000);
        let c = compress(CompressionType::Snappy, &input).unwrap();
        assert_eq!(&c[..8], b"\x82SNAPPY\0");
        assert_eq!(&c[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // Walk the blocks by hand: 4 blocks of at most 32 KiB of input each.
        let mut pos = 16;
        let mut blocks = 0;
        let mut total = 0;
        while pos < c.len() {
            let len = u32::from_be_bytes(c[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4;
            let block = &c[pos..pos + len];
            let n = snap::raw::decompress_len(block).unwrap();
            assert!(n <= 32 * 1024);
            total += n;
            pos += len;
            blocks += 1;
        }
        assert_eq!(pos, c.len());
        assert_eq!(blocks, 4);
        assert_eq!(total, input.len());
    }

    #[test]
    fn snappy_reads_raw_blocks_too() {
        let input = text(50_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert!(!raw.starts_with(XERIAL_MAGIC));
        assert_eq!(
            decompress(CompressionType::Snappy, &raw, 50_000).unwrap(),
            input
        );
        assert!(is_limit_error(
            &decompress(CompressionType::Snappy, &raw, 49_999).unwrap_err()
        ));
    }

    #[test]
    fn snappy_declared_length_bomb_is_refused_before_allocating() {
        // A raw block whose header claims ~4 GiB of output.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(is_limit_error(
            &decompress(CompressionType::Snappy, &bomb, 1 << 20).unwrap_err()
        ));
        // The same inside xerial framing, after a legitimate block.
        let mut framed = compress(CompressionType::Snappy, b"hello").unwrap();
        framed.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
        framed.extend_from_slice(&bomb);
        assert!(is_limit_error(
            &decompress(CompressionType::Snappy, &framed, 1 << 20).unwrap_err()
        ));
    }

    #[test]
    fn xerial_block_length_past_the_input_is_an_error() {
        let mut framed = compress(CompressionType::Snappy, b"hello").unwrap();
        framed.extend_from_slice(&u32::MAX.to_be_bytes());
        framed.push(0);
        let err = decompress(CompressionType::Snappy, &framed, 1 << 20).unwrap_err();
        assert!(matches!(
            err,
            RecordError::Decompression {
                codec: "snappy",
                ..
            }
        ));
        assert!(decompress(CompressionType::Snappy, &framed[..10], 100).is_err());
    }

    #[test]
    fn lz4_uses_the_standard_frame_with_independent_64k_blocks() {
        let c = compress(CompressionType::Lz4, b"abc").unwrap();
        assert_eq!(&c[..4], &[0x04, 0x22, 0x4d, 0x18]); // magic 0x184D2204, LE
        let flg = c[4];
        assert_eq!(flg >> 6, 0b01, "version 01");
        assert_ne!(flg & 0x20, 0, "block independence");
        assert_eq!(flg & 0x10, 0, "no block checksums");
        assert_eq!(flg & 0x04, 0, "no content checksum");
        assert_eq!((c[5] >> 4) & 0x7, 4, "64 KiB max block size");
    }

    #[test]
    fn zstd_context_reuse_does_not_leak_state_between_calls() {
        let a = compress(CompressionType::Zstd, &text(70_000)).unwrap();
        let b = compress(CompressionType::Zstd, b"second").unwrap();
        // A failed (over the limit, then truncated) decode in between.
        assert!(decompress(CompressionType::Zstd, &a, 10).is_err());
        assert!(decompress(CompressionType::Zstd, &a[..a.len() / 2], 1 << 20).is_err());
        assert_eq!(
            decompress(CompressionType::Zstd, &b, 100).unwrap(),
            b"second"
        );
        assert_eq!(
            decompress(CompressionType::Zstd, &a, 1 << 20).unwrap(),
            text(70_000)
        );
        // Stop mid-frame at the limit, then decode another frame.
        assert!(decompress(CompressionType::Zstd, &a, 40_000).is_err());
        assert_eq!(
            decompress(CompressionType::Zstd, &b, 100).unwrap(),
            b"second"
        );
    }

    #[test]
    fn zstd_frames_asking_for_a_window_over_128_mib_are_refused() {
        // Frame header: magic, descriptor 0x00 (no content size, window
        // descriptor follows), window descriptor 0xA0 = exponent 20 ->
        // 2^(10+20) = 1 GiB window, then a raw block of 1 byte, last block.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, 0x09, 0x00, 0x00, b'x'];
        let err = decompress(CompressionType::Zstd, &frame, 1 << 20).unwrap_err();
        assert!(
            matches!(err, RecordError::Decompression { codec: "zstd", .. }),
            "{err}"
        );
        // The same frame with a 1 MiB window (exponent 10 -> 0x50) decodes.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, 0x09, 0x00, 0x00, b'x'];
        assert_eq!(decompress(CompressionType::Zstd, &frame, 10).unwrap(), b"x");
    }

    #[test]
    fn truncated_streams_are_errors() {
        let input = text(10_000);
        for codec in CODECS.into_iter().skip(1) {
            let c = compress(codec, &input).unwrap();
            let cut = &c[..c.len() / 2];
            assert!(
                decompress(codec, cut, 1 << 20).is_err(),
                "{codec:?} accepted a truncated stream"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_any_bytes(
            input in proptest::collection::vec(any::<u8>(), 0..5000),
            codec in prop::sample::select(CODECS.to_vec()),
        ) {
            let c = compress(codec, &input).unwrap();
            prop_assert_eq!(decompress(codec, &c, input.len()).unwrap(), input);
        }

        #[test]
        fn garbage_never_panics_and_respects_the_limit(
            prefix in prop::sample::select(vec![
                &b""[..],
                &[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff][..], // gzip header
                &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82][..],    // lz4 frame header
                &[0x28, 0xb5, 0x2f, 0xfd][..],                      // zstd magic
                &b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\0\0\0\x10"[..], // xerial + length
            ]),
            garbage in proptest::collection::vec(any::<u8>(), 0..2000),
            codec in prop::sample::select(CODECS.to_vec()),
            limit in 0usize..100_000,
        ) {
            let input = [prefix, &garbage[..]].concat();
            if let Ok(out) = decompress(codec, &input, limit) {
                prop_assert!(out.len() <= limit);
            }
        }
    }
}
