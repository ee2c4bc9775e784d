//! The command line splitter: the input cut into fuzzer-chosen chunks gives
//! exactly the lines and `TooLong` events a simple reference splitter finds
//! in the whole input, the buffer stays bounded, and the bytes left over
//! (an unfinished line) are the same.
//!
//! Input: 1 byte picks the line limit, 4 bytes the chunk pattern, the rest
//! is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::proto::line::{LineSplitter, LineStatus, MAX_COMMAND_LINE};

#[path = "common/mod.rs"]
mod common;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Line(Vec<u8>),
    TooLong,
}

/// Limits worth testing: tiny ones reach TooLong often, the real ones too.
const LIMITS: [usize; 8] = [1, 2, 3, 4, 8, 16, MAX_COMMAND_LINE, 12288];

/// The obvious definition: a line ends at LF; with its LF it may be at most
/// `max` octets, else it is TooLong; one CR before the LF is stripped. An
/// unfinished last line is left over if shorter than `max`, else discarded.
fn reference(max: usize, input: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let mut events = Vec::new();
    let mut rest = input;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        if lf < max {
            let line = &rest[..lf];
            events.push(Event::Line(
                line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
            ));
        } else {
            events.push(Event::TooLong);
        }
        rest = &rest[lf + 1..];
    }
    let left = if rest.len() < max {
        rest.to_vec()
    } else {
        Vec::new()
    };
    (events, left)
}

/// Feeds the chunks like a connection: append, split until NeedMore, drop
/// what was consumed.
fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Event>, Vec<u8>) {
    let mut splitter = LineSplitter::new(max);
    let mut buf = Vec::new();
    let mut events = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match splitter.next(&buf) {
                LineStatus::Line { line, consumed } => {
                    assert!(consumed <= max, "a line longer than the limit");
                    assert!(consumed > 0);
                    events.push(Event::Line(line.to_vec()));
                    buf.drain(..consumed);
                }
                LineStatus::TooLong { consumed } => {
                    assert!(consumed > 0);
                    events.push(Event::TooLong);
                    buf.drain(..consumed);
                }
                LineStatus::NeedMore { consumed } => {
                    assert!(consumed <= buf.len());
                    buf.drain(..consumed);
                    break;
                }
            }
        }
        assert!(
            buf.len() < max,
            "buffer not bounded: {} >= {max}",
            buf.len()
        );
    }
    (events, buf)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let max = LIMITS[usize::from(common::byte(&mut data)) % LIMITS.len()];
    let pattern = common::take(&mut data, 4);
    let expected = reference(max, data);
    assert_eq!(run(max, &[data]), expected, "whole input, max {max}");
    let chunks = common::chunks(pattern, data);
    assert_eq!(run(max, &chunks), expected, "chunked input, max {max}");
});
