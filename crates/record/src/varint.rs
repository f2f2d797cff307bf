//! Kafka's zig-zag varints (`varint` = 32-bit, `varlong` = 64-bit), as the
//! record format uses them for lengths, deltas and counts.

use crate::error::RecordError;

/// Reads a zig-zag varint (at most 5 bytes) at `*pos`, advancing `*pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordError> {
    let mut raw: u64 = 0;
    for i in 0..5 {
        let Some(&b) = buf.get(*pos) else {
            return Err(RecordError::MalformedRecord("varint runs past the end"));
        };
        *pos += 1;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let v = raw as u32;
            return Ok(((v >> 1) as i32) ^ -((v & 1) as i32));
        }
    }
    Err(RecordError::MalformedRecord("varint longer than 5 bytes"))
}

/// Reads a zig-zag varlong (at most 10 bytes) at `*pos`, advancing `*pos`.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err(RecordError::MalformedRecord("varlong runs past the end"));
        };
        *pos += 1;
        // The 10th byte contributes only its lowest bit; higher bits fall off.
        raw |= u64::from(b & 0x7f).wrapping_shl(7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(RecordError::MalformedRecord("varlong longer than 10 bytes"))
}

#[inline]
fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

#[inline]
fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn unsigned_size(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

pub(crate) fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, zigzag32(v));
}

pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, zigzag64(v));
}

pub(crate) fn varint_size(v: i32) -> usize {
    unsigned_size(zigzag32(v))
}

pub(crate) fn varlong_size(v: i64) -> usize {
    unsigned_size(zigzag64(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Values from the zig-zag definition: 0->0, -1->1, 1->2, -2->3, ...
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (150, &[0xac, 0x02]),
        ];
        for &(v, bytes) in cases {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(out, bytes, "varlong {v}");
            let mut out = Vec::new();
            write_varint(&mut out, v as i32);
            assert_eq!(out, bytes, "varint {v}");
        }
        let mut out = Vec::new();
        write_varint(&mut out, i32::MIN);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut out = Vec::new();
        write_varlong(&mut out, i64::MIN);
        assert_eq!(
            out,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn overlong_and_truncated_input_is_an_error() {
        let mut pos = 0;
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0xff; 11], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[], &mut pos).is_err());
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<i32>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_size(v));
            let n = out.len();
            out.extend(tail);
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos).unwrap(), v);
            prop_assert_eq!(pos, n);
        }

        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_size(v));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos).unwrap(), v);
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn readers_never_read_past_the_end(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut pos = 0;
            if read_varint(&bytes, &mut pos).is_ok() {
                prop_assert!(pos <= bytes.len() && pos <= 5);
            }
            let mut pos = 0;
            if read_varlong(&bytes, &mut pos).is_ok() {
                prop_assert!(pos <= bytes.len() && pos <= 10);
            }
        }
    }
}
