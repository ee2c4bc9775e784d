//! Splits the read buffer into command lines with memchr, handing out
//! borrowed slices; bounded memory for over-long lines.
//!
//! A line ends at LF; one CR before it is stripped (a bare LF is tolerated
//! for commands, as most servers do; DATA never uses this splitter, it uses
//! `dot`, which is strict). The splitter never allocates and never copies:
//! the caller owns the buffer and drops the `consumed` bytes it is told to.

use memchr::memchr;

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 512;

/// What the splitter found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus<'a> {
    /// A whole line (without its CRLF) and the bytes it used, CRLF included.
    Line {
        /// The line's bytes, without the LF and any CR before it.
        line: &'a [u8],
        /// Bytes to drop from the front of the buffer, line end included.
        consumed: usize,
    },
    /// No line end yet. `consumed` bytes (part of an over-long line being
    /// discarded) may be dropped from the buffer; keep the rest and read more.
    NeedMore {
        /// Bytes to drop from the front of the buffer (0 unless discarding).
        consumed: usize,
    },
    /// The end of an over-long line was reached; its `consumed` bytes are
    /// gone and the caller should answer 500 5.5.6 (or similar).
    TooLong {
        /// Bytes to drop from the front of the buffer, line end included.
        consumed: usize,
    },
}

/// Incremental line splitter; the only state is "discarding an over-long line".
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max: usize,
    discarding: bool,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` octets including CRLF.
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            discarding: false,
        }
    }

    /// True while the rest of an over-long line is being thrown away.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Looks for the next line at the start of `buf`.
    ///
    /// The caller drops `consumed` bytes from the front of its buffer after
    /// every answer, and stops asking on `NeedMore` until more bytes arrive.
    /// A buffer holding `max` bytes without a line end can never become a
    /// valid line, so discarding starts then: the buffer never has to hold
    /// more than `max` bytes plus one read.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> LineStatus<'a> {
        if self.discarding {
            return match memchr(b'\n', buf) {
                Some(lf) => {
                    self.discarding = false;
                    LineStatus::TooLong { consumed: lf + 1 }
                }
                None => LineStatus::NeedMore {
                    consumed: buf.len(),
                },
            };
        }
        let window = &buf[..buf.len().min(self.max)];
        if let Some(lf) = memchr(b'\n', window) {
            let line = &buf[..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return LineStatus::Line {
                line,
                consumed: lf + 1,
            };
        }
        if buf.len() < self.max {
            return LineStatus::NeedMore { consumed: 0 };
        }
        // `max` bytes and no LF: over-long whatever follows. The LF may
        // already be in the buffer, past the window.
        match memchr(b'\n', &buf[window.len()..]) {
            Some(lf) => LineStatus::TooLong {
                consumed: window.len() + lf + 1,
            },
            None => {
                self.discarding = true;
                LineStatus::NeedMore {
                    consumed: buf.len(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Line(Vec<u8>),
        TooLong,
    }

    /// Feeds `chunks` the way a connection does: append, split until
    /// NeedMore, drop what was consumed. Also checks the memory bound.
    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Event>, Vec<u8>) {
        let mut splitter = LineSplitter::new(max);
        let mut buf = Vec::new();
        let mut events = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match splitter.next(&buf) {
                    LineStatus::Line { line, consumed } => {
                        assert!(consumed <= max);
                        events.push(Event::Line(line.to_vec()));
                        buf.drain(..consumed);
                    }
                    LineStatus::TooLong { consumed } => {
                        events.push(Event::TooLong);
                        buf.drain(..consumed);
                    }
                    LineStatus::NeedMore { consumed } => {
                        buf.drain(..consumed);
                        break;
                    }
                }
            }
            assert!(buf.len() < max, "buffer must stay bounded");
        }
        (events, buf)
    }

    /// Whole, byte by byte, and split at every index: all identical.
    fn check(max: usize, input: &[u8], expected: &[Event], rest: &[u8]) {
        let (events, left) = run(max, &[input]);
        assert_eq!(events, expected, "whole: {input:?}");
        assert_eq!(left, rest, "whole rest: {input:?}");
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let (events, left) = run(max, &bytes);
        assert_eq!(events, expected, "byte by byte: {input:?}");
        assert_eq!(left, rest);
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            let (events, left) = run(max, &[a, b]);
            assert_eq!(events, expected, "split at {at}: {input:?}");
            assert_eq!(left, rest);
        }
    }

    fn line(s: &str) -> Event {
        Event::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines() {
        let cases: &[(&str, &[Event], &str)] = &[
            ("", &[], ""),
            ("EHLO x\r\n", &[line("EHLO x")], ""),
            (
                "EHLO x\r\nMAIL FROM:<>\r\nRC",
                &[line("EHLO x"), line("MAIL FROM:<>")],
                "RC",
            ),
            ("NOOP\n", &[line("NOOP")], ""),
            ("\r\n\r\n", &[line(""), line("")], ""),
            ("A\r\r\n", &[line("A\r")], ""),
            ("A\rB\r\n", &[line("A\rB")], ""),
            ("QUIT\r", &[], "QUIT\r"),
        ];
        for (input, expected, rest) in cases {
            check(16, input.as_bytes(), expected, rest.as_bytes());
        }
    }

    #[test]
    fn limit_is_inclusive_of_crlf() {
        // max 8: "123456\r\n" is exactly 8 octets and fits.
        check(8, b"123456\r\n", &[line("123456")], b"");
        check(8, b"1234567\n", &[line("1234567")], b"");
        check(8, b"1234567\r\nOK\r\n", &[Event::TooLong, line("OK")], b"");
        check(8, b"12345678\r\nOK\r\n", &[Event::TooLong, line("OK")], b"");
        let long = format!("{}\r\nNOOP\r\n", "x".repeat(100));
        check(8, long.as_bytes(), &[Event::TooLong, line("NOOP")], b"");
        let two = format!("{0}\r\n{0}\nQ\r\n", "y".repeat(30));
        check(
            8,
            two.as_bytes(),
            &[Event::TooLong, Event::TooLong, line("Q")],
            b"",
        );
    }

    #[test]
    fn exactly_max_without_lf_starts_discarding() {
        let mut splitter = LineSplitter::new(4);
        assert_eq!(splitter.next(b"abc"), LineStatus::NeedMore { consumed: 0 });
        assert_eq!(splitter.next(b"abcd"), LineStatus::NeedMore { consumed: 4 });
        assert!(splitter.is_discarding());
        assert_eq!(splitter.next(b"ef"), LineStatus::NeedMore { consumed: 2 });
        assert_eq!(splitter.next(b"\nX"), LineStatus::TooLong { consumed: 1 });
        assert!(!splitter.is_discarding());
        assert_eq!(
            splitter.next(b"X\r\n"),
            LineStatus::Line {
                line: b"X",
                consumed: 3
            }
        );
    }
}
