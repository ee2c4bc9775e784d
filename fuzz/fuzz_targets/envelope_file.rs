//! The queue's envelope file reader (`queue::envfile::parse`) on arbitrary
//! bytes. Random bytes almost never carry a good SHA-256 trailer, so in
//! sealed mode the target appends a correct `end <length> <sha256>` trailer
//! to the fuzzer's text and the parser's line grammar is reached.
//!
//! Checked: no panic in `parse` or `head_length`; anything accepted renders
//! (`envfile::render`) to bytes that parse to the same value, and rendering
//! that value again gives the same bytes; in a message file (the rendered
//! envelope followed by the fuzzer's bytes as the message) `head_length`
//! finds exactly the envelope; the rendered (valid) file cut at
//! fuzzer-chosen points, or with one byte changed, is an error (the trailer
//! checksum).
//!
//! Input: 1 mode byte (bit 0: sealed; the rest: the length written in the
//! trailer), 8 control bytes (cut points and byte changes), then the file
//! (sealed: without its trailer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::queue::envfile::{head_length, parse, render, sha256_hex};

#[path = "common/mod.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mode = common::byte(&mut data);
    let control = common::take(&mut data, 8);
    let file = if mode & 1 == 1 {
        let mut file = data.to_vec();
        if !file.is_empty() && !file.ends_with(b"\n") {
            file.push(b'\n');
        }
        file.extend_from_slice(format!("end {} ", mode >> 1).as_bytes());
        let checksum = sha256_hex(&file);
        file.extend_from_slice(checksum.as_bytes());
        file.push(b'\n');
        file
    } else {
        data.to_vec()
    };
    let _ = head_length(&file);
    let Ok(message) = parse(&file) else {
        return;
    };
    let rendered = render(&message);
    let again = parse(&rendered).unwrap_or_else(|e| {
        panic!(
            "rendered file does not parse ({e}):\n{}",
            String::from_utf8_lossy(&rendered)
        )
    });
    assert_eq!(again, message, "parse(render(m)) != m");
    assert_eq!(render(&again), rendered, "render is not stable");
    let mut message_file = rendered.clone();
    message_file.extend_from_slice(data);
    assert_eq!(head_length(&message_file), Some(rendered.len()));

    for pair in control.chunks(2) {
        let at = usize::from(u16::from_le_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        let cut = at % rendered.len();
        assert!(
            parse(&rendered[..cut]).is_err(),
            "file cut at {cut} of {} parses",
            rendered.len()
        );
        let mut changed = rendered.clone();
        changed[cut] ^= pair.get(1).copied().filter(|&x| x != 0).unwrap_or(0x20);
        assert!(
            parse(&changed).is_err(),
            "file with byte {cut} changed parses"
        );
    }
});
