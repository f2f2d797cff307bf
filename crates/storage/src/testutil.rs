//! Test-only RecordBatch v2 builder (uncompressed), shared by unit tests,
//! integration tests and benches via `#[path]`. To be replaced by
//! `sluice_record::builder` once that exists.
#![allow(dead_code)]

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

/// One uncompressed batch of `values`, base offset 0, all records at
/// `timestamp` + their index (ms).
pub fn build_batch(values: &[&[u8]], timestamp: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut body = Vec::new();
        body.push(0u8); // attributes
        put_varint(&mut body, i as i64); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // key: null
        put_varint(&mut body, v.len() as i64);
        body.extend_from_slice(v);
        put_varint(&mut body, 0); // headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let n = values.len() as i32;
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc placeholder
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(n - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp.to_be_bytes()); // base timestamp
    b.extend_from_slice(&(timestamp + (n as i64 - 1).max(0)).to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&n.to_be_bytes()); // record count
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A batch of `count` records of `size` bytes each (value bytes derived
/// from `seed`).
pub fn batch_of(count: usize, size: usize, timestamp: i64, seed: u8) -> Vec<u8> {
    let vals: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            (0..size)
                .map(|j| seed.wrapping_add((i * 7 + j) as u8))
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    build_batch(&refs, timestamp)
}
