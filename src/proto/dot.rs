//! DATA: a streaming dot-unstuffer that finds exactly CRLF.CRLF across any
//! read boundary, and the dot-stuffer used when sending.
//!
//! CONTRACT (implementation pending).

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
pub const MAX_TEXT_LINE: usize = 1000;

/// Why a message read to its end is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the size limit; the body was read to the end but not kept.
    TooBig,
    /// A bare CR or a bare LF (SMTP smuggling, RFC 5321 §2.3.8).
    BareNewline,
    /// A line longer than the text line limit.
    LineTooLong,
}

/// The unstuffer's answer to one chunk of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// All of the chunk was consumed; the end of data was not seen yet.
    NeedMore,
    /// The end of data (CRLF.CRLF) ended `consumed` bytes into the chunk;
    /// the rest of the chunk is the next command. `result` says whether the
    /// message is good.
    End {
        consumed: usize,
        result: Result<(), BodyError>,
    },
}

/// Incremental unstuffer for one message's DATA section.
///
/// It is created right after the 354 reply, so the "previous line end" at
/// the start is implicit: a `.\r\n` as first line ends an empty message.
/// Output is the message with CRLF line ends kept and leading dots removed;
/// the final `.\r\n` is not part of it.
#[derive(Debug, Clone)]
pub struct Unstuffer {
    max_size: usize,
    max_line: usize,
}

impl Unstuffer {
    /// An unstuffer that keeps at most `max_size` octets of message and
    /// refuses lines longer than `max_line` octets including CRLF.
    pub fn new(max_size: usize, max_line: usize) -> Unstuffer {
        Unstuffer { max_size, max_line }
    }

    /// Consumes `input`, appending unstuffed message bytes to `out` (only
    /// while under the size limit and no error has been seen).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> DataStatus {
        let _ = (input, out, self.max_size, self.max_line);
        todo!()
    }

    /// Octets of message seen so far (kept or not).
    pub fn size(&self) -> usize {
        todo!()
    }
}

/// Appends `body` dot-stuffed for sending, followed by `.\r\n`. The body must
/// use CRLF line ends; a body not ending in CRLF gets one before the dot.
pub fn stuff(body: &[u8], out: &mut Vec<u8>) {
    let _ = (body, out);
    todo!()
}
