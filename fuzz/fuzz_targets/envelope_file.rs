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
//! Input: 1 mode byte (bit 0: sealed; bit 1: lines, sealed too; the rest:
//! the length written in the trailer), 8 control bytes (cut points and byte
//! changes), then the file (sealed: without its trailer). In lines mode the
//! fuzzer's bytes are LF-separated values: the target writes the fields in
//! their fixed order with one value each, then a line per value left, its
//! first byte choosing the key (`rcpt`, `failure`, `remote-mta`,
//! `delay-warned` or none). An empty value stands for a good one and a lone
//! NUL for an empty one, so a fuzzer starting from nothing reaches every
//! field rather than stopping at the second line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::queue::envfile::{head_length, parse, render, sha256_hex};

#[path = "common/mod.rs"]
mod common;

/// The fields of a version 3 envelope in their order, each with a value
/// that parses.
const FIELDS: [(&str, &str); 16] = [
    ("version", "3"),
    ("id", "0J5Z3K1M2N3P4Q5R"),
    ("arrival", "1795718460 Thu, 26 Nov 2026 18:41:00 +0000"),
    ("sender", "alice@example.org"),
    ("client", "192.0.2.7"),
    ("helo", "client.example"),
    ("protocol", "ESMTPSA"),
    ("auth-user", "alice@example.org"),
    ("tls", "TLSv1.3"),
    ("body", "8BITMIME"),
    ("smtputf8", "no"),
    ("ret", "HDRS"),
    ("envid", "QQ314159"),
    (
        "message-sha256",
        "ab530a13e45914982b79f9b7e3fba994cfd1f3fb22f71cea1afbf02b460c6d1d",
    ),
    ("attempts", "1"),
    ("next-attempt", "1795718760"),
];

/// The keys of the lines after the fields, each with a value that parses;
/// the last (no key) writes the value as the whole line.
const MORE: [(&str, &str); 5] = [
    (
        "rcpt",
        "bob@example.com notify=- orcpt=- state=pending attempts=0",
    ),
    ("failure", "remote mx.example.com 451 4.3.0 Try again later"),
    ("remote-mta", "mx.example.com"),
    ("delay-warned", "yes"),
    ("", ""),
];

/// `key: value` with the fuzzer's `value`: empty stands for `good`, a lone
/// NUL for nothing.
fn push_line(file: &mut Vec<u8>, key: &str, value: &[u8], good: &str) {
    if !key.is_empty() {
        file.extend_from_slice(key.as_bytes());
        file.extend_from_slice(b": ");
    }
    match value {
        [] => file.extend_from_slice(good.as_bytes()),
        [0] => {}
        _ => file.extend_from_slice(value),
    }
    file.push(b'\n');
}

/// The file of lines mode (without its trailer).
fn lines_file(data: &[u8]) -> Vec<u8> {
    let mut values = data.split(|&b| b == b'\n');
    let mut file = Vec::new();
    for (key, good) in FIELDS {
        push_line(&mut file, key, values.next().unwrap_or_default(), good);
    }
    for value in values {
        let Some((&first, rest)) = value.split_first() else {
            continue;
        };
        let (key, good) = MORE[usize::from(first) % MORE.len()];
        push_line(&mut file, key, rest, good);
    }
    file
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mode = common::byte(&mut data);
    let control = common::take(&mut data, 8);
    let file = if mode & 3 != 0 {
        let mut file = if mode & 2 == 2 {
            lines_file(data)
        } else {
            data.to_vec()
        };
        if !file.is_empty() && !file.ends_with(b"\n") {
            file.push(b'\n');
        }
        file.extend_from_slice(format!("end {} ", mode >> 2).as_bytes());
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
