//! The DATA unstuffer against a reference model written the obvious way:
//! the end of data is the first CRLF "." CRLF (the start of DATA counts as
//! after a CRLF); the message is everything before it with the first dot of
//! every line removed; a bare CR or LF before the end is BareNewline, a NUL
//! Nul, an over-size message TooBig, in the precedence the `dot` module
//! documents (TooBig, BareNewline, Nul); lines may be of any length.
//! Fuzzer-chosen chunk boundaries must not change anything. The dot-stuffer
//! is checked as its inverse: unstuff(stuff(x)) is x with its line ends
//! made CRLF (refused as Nul when x holds a NUL).
//!
//! Input: 1 byte of settings (the size limit, and whether the rest is raw or
//! mapped into a DATA alphabet), 4 bytes of chunk pattern, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::proto::dot::{self, BodyError, DataStatus, Unstuffer};

#[path = "common/mod.rs"]
mod common;

const MAX_SIZES: [usize; 8] = [0, 1, 3, 8, 20, 100, 1000, 1 << 20];

/// The DATA alphabet: line ends, dots and the smuggling sequences.
const TOKENS: &[&[u8]] = &[
    b".",
    b"\r",
    b"\n",
    b"\r\n",
    b"a",
    b"b",
    b"\x00",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
    b" ",
    b"\r\n.\r\n",
    b"..",
    b"\r\n.",
    b".\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\r\n..\r\n",
    b"hello world",
];

/// What a whole DATA stream gives.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Where the data ended and with which result.
    end: Option<(usize, Result<(), BodyError>)>,
    /// The message, only when good.
    message: Option<Vec<u8>>,
    /// `Unstuffer::size` at the end.
    size: usize,
}

fn run(max_size: usize, chunks: &[&[u8]]) -> Outcome {
    let mut unstuffer = Unstuffer::new(max_size);
    let mut out = Vec::new();
    let mut offset = 0;
    for chunk in chunks {
        let status = unstuffer.feed(chunk, &mut out);
        assert!(out.len() <= max_size, "output over the size limit");
        match status {
            DataStatus::NeedMore => offset += chunk.len(),
            DataStatus::End { consumed, result } => {
                assert!(consumed <= chunk.len() && consumed > 0);
                // Asking again changes nothing.
                let again = unstuffer.feed(b".\r\n", &mut out);
                assert_eq!(
                    again,
                    DataStatus::End {
                        consumed: 0,
                        result
                    }
                );
                return Outcome {
                    end: Some((offset + consumed, result)),
                    message: result.is_ok().then_some(out),
                    size: unstuffer.size(),
                };
            }
        }
    }
    Outcome {
        end: None,
        message: None,
        size: unstuffer.size(),
    }
}

/// The offset just after the first CRLF.CRLF, the start counting as CRLF.
fn find_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b".\r\n") {
        return Some(3);
    }
    data.windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|at| at + 5)
}

/// The reference outcome for a stream whose data ends at `end`.
fn expected(max_size: usize, data: &[u8], end: usize) -> Outcome {
    // The message bytes: all but the final ".\r\n" line.
    let region = &data[..end - 3];
    let mut message = Vec::new();
    let mut bare = false;
    let mut line_start = true;
    for (i, &b) in region.iter().enumerate() {
        let next = region.get(i + 1);
        let previous = i.checked_sub(1).map(|p| region[p]);
        if b == b'\r' && next != Some(&b'\n') || b == b'\n' && previous != Some(b'\r') {
            bare = true;
        }
        if !(line_start && b == b'.') {
            message.push(b);
        }
        line_start = b == b'\n' && previous == Some(b'\r');
    }
    let result = if message.len() > max_size {
        Err(BodyError::TooBig)
    } else if bare {
        Err(BodyError::BareNewline)
    } else if message.contains(&0) {
        Err(BodyError::Nul)
    } else {
        Ok(())
    };
    Outcome {
        end: Some((end, result)),
        size: message.len(),
        message: result.is_ok().then_some(message),
    }
}

/// Bare CR and bare LF become CRLF, and a last unfinished line gets one:
/// what `stuff` promises to send.
fn normalize(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let settings = common::byte(&mut data);
    let max_size = MAX_SIZES[usize::from(settings & 7)];
    let pattern = common::take(&mut data, 4);
    let mapped;
    if settings & 0x20 != 0 {
        mapped = common::detokenize(TOKENS, data);
        data = &mapped;
    }

    let whole = run(max_size, &[data]);
    let chunks = common::chunks(pattern, data);
    assert_eq!(
        run(max_size, &chunks),
        whole,
        "chunking changed the outcome"
    );
    match find_end(data) {
        Some(end) => assert_eq!(whole, expected(max_size, data, end)),
        None => assert_eq!(whole.end, None, "an end where there is no CRLF.CRLF"),
    }

    // unstuff(stuff(x)) == x, with x's line ends made CRLF.
    let mut stuffed = Vec::new();
    dot::stuff(data, &mut stuffed);
    assert_eq!(
        find_end(&stuffed),
        Some(stuffed.len()),
        "stuffed data ends early"
    );
    let round = run(usize::MAX, &common::chunks(pattern, &stuffed));
    if data.contains(&0) {
        assert_eq!(round.end, Some((stuffed.len(), Err(BodyError::Nul))));
    } else {
        assert_eq!(round.end, Some((stuffed.len(), Ok(()))));
        assert_eq!(round.message, Some(normalize(data)));
    }
});
