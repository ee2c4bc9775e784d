//! Splits the read buffer into command lines with memchr, handing out
//! borrowed slices; bounded memory for over-long lines.
//!
//! CONTRACT (implementation pending): a line ends at LF; one CR before it is
//! stripped. Lines are for commands only (DATA uses `dot`).

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 512;

/// What the splitter found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus<'a> {
    /// A whole line (without its CRLF) and the bytes it used, CRLF included.
    Line { line: &'a [u8], consumed: usize },
    /// No line end yet. `consumed` bytes (part of an over-long line being
    /// discarded) may be dropped from the buffer; keep the rest and read more.
    NeedMore { consumed: usize },
    /// The end of an over-long line was reached; its `consumed` bytes are
    /// gone and the caller should answer 500 5.5.6 (or similar).
    TooLong { consumed: usize },
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

    /// Looks for the next line at the start of `buf`.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> LineStatus<'a> {
        let _ = (buf, self.max, self.discarding);
        todo!()
    }
}
