//! Helpers shared by the fuzz targets: reading a small header of control
//! bytes off the input, cutting data into chunks whose sizes the fuzzer
//! chooses, and mapping bytes into a protocol alphabet.
//!
//! Each target includes this file with `#[path = "common/mod.rs"] mod common;`
//! and may not use every helper.
#![allow(dead_code)]

/// Splits `n` control bytes off the front of `data` (fewer if it is short).
pub fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (head, rest) = data.split_at(n);
    *data = rest;
    head
}

/// One control byte off the front of `data`, 0 when there is none.
pub fn byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or(0)
}

/// The size of one chunk for a pattern byte: mostly tiny chunks (1..=16
/// octets), where boundary bugs live, and some big ones (64..=4096).
fn chunk_size(b: u8) -> usize {
    if b < 0xc0 {
        usize::from(b & 0x0f) + 1
    } else {
        (usize::from(b & 0x3f) + 1) * 64
    }
}

/// Cuts `data` into chunks whose sizes cycle through `pattern`; the whole
/// input as one chunk when the pattern is empty.
pub fn chunks<'a>(pattern: &[u8], data: &'a [u8]) -> Vec<&'a [u8]> {
    if pattern.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunk_size(pattern[i % pattern.len()]).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.push(chunk);
        rest = tail;
        i += 1;
    }
    out
}

/// Maps every byte of `data` to a token of `table` (byte modulo the table
/// length) and concatenates them, so random bytes become protocol text.
pub fn detokenize(table: &[&[u8]], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &b in data {
        out.extend_from_slice(table[usize::from(b) % table.len()]);
    }
    out
}
