//! DATA: a streaming dot-unstuffer that finds exactly CRLF.CRLF across any
//! read boundary, and the dot-stuffer used when sending.
//!
//! The unstuffer is a small state machine with a fast path: runs of
//! ordinary lines are checked 64 bytes at a time (vector compares the
//! compiler makes from a plain loop), lines around dot-stuffed ones with one
//! `memchr(LF)` each, and whole runs are copied with one `extend_from_slice`,
//! so a big body costs about one scan and one copy, with no allocation per
//! line. What could end the data or break a rule (a line starting with `.`
//! CR, a bare LF, a long line, a chunk's end) goes through the state
//! machine, which scans with `memchr2(CR, LF)`.
//!
//! SMTP smuggling (RFC 5321 §2.3.8, §4.1.1.4): the end of data is only ever
//! CR LF "." CR LF. Any bare CR or bare LF marks the message bad and never
//! counts as a line end, so `\n.\n`, `\n.\r\n`, `\r.\r\n` and friends are
//! neither an end of data here nor accepted as content.

use memchr::{memchr, memchr2, memchr_iter, memrchr};

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
pub const MAX_TEXT_LINE: usize = 1000;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// The block scan looks at this many bytes at a time.
const BLOCK: usize = 64;

/// The longest the block scan waits after failing (in bytes of input).
const MAX_BACKOFF: usize = 4096;

/// Whether a block breaks a rule of the fast path (a CR not followed by
/// LF, an LF not after a CR, an LF followed by a dot), and whether it has an
/// LF. The block is `window` without its first and last byte, which are the
/// neighbours its first and last byte are checked against.
// Kept out of line: inlined into the scan loop, the compiler unrolls it
// into byte-at-a-time code instead of vector compares.
#[inline(never)]
fn block_faults(window: &[u8; BLOCK + 2]) -> (bool, bool) {
    let mut bad = false;
    let mut has_lf = false;
    for i in 0..BLOCK {
        let (p, c, n) = (window[i], window[i + 1], window[i + 2]);
        bad |= (c == LF && p != CR) | (c == CR && n != LF) | (c == LF && n == b'.');
        has_lf |= c == LF;
    }
    (bad, has_lf)
}

/// CRs in `bytes`.
fn count_cr(bytes: &[u8]) -> usize {
    memchr_iter(CR, bytes).count()
}

/// Why a message read to its end is refused.
///
/// When several apply, the unstuffer reports the first of `TooBig`,
/// `BareNewline`, `LineTooLong`: a client over the size limit gets the
/// size reply (552) whatever else is wrong, and a smuggling attempt is
/// named before a merely long line.
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
        /// Bytes of the chunk used, through the final LF (0 if it ended before).
        consumed: usize,
        /// `Ok` for a good message, else the most serious rule it broke.
        result: Result<(), BodyError>,
    },
}

/// Where the unstuffer is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Right after CRLF (or at the start of DATA).
    LineStart,
    /// A leading dot was seen (and dropped).
    AfterDot,
    /// `.` CR at the start of a line: LF next ends the data.
    AfterDotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, a CR ended the previous chunk; not copied yet.
    MidCr,
    /// The end of data was seen.
    Done,
}

/// Incremental unstuffer for one message's DATA section.
///
/// It is created right after the 354 reply, so the "previous line end" at
/// the start is implicit: a `.\r\n` as first line ends an empty message.
/// Output is the message with CRLF line ends kept and leading dots removed;
/// the final `.\r\n` is not part of it.
///
/// When the result is an error, what was appended to `out` is an unspecified
/// prefix of the message and must be thrown away; appending stops once an
/// error is noticed (a bare CR at the latest at the end of the chunk that
/// holds it) and never goes past the size limit, so `out` stays bounded.
#[derive(Debug, Clone)]
pub struct Unstuffer {
    max_size: usize,
    max_line: usize,
    state: State,
    /// Unstuffed octets seen so far, kept or not.
    size: usize,
    /// Unstuffed octets of the current line so far, CRLF included.
    line_len: usize,
    too_big: bool,
    bare_newline: bool,
    line_too_long: bool,
}

impl Unstuffer {
    /// An unstuffer that keeps at most `max_size` octets of message and
    /// refuses lines longer than `max_line` octets including CRLF.
    pub fn new(max_size: usize, max_line: usize) -> Unstuffer {
        Unstuffer {
            max_size,
            max_line,
            state: State::LineStart,
            size: 0,
            line_len: 0,
            too_big: false,
            bare_newline: false,
            line_too_long: false,
        }
    }

    /// Consumes `input`, appending unstuffed message bytes to `out` (only
    /// while under the size limit and no error has been seen).
    ///
    /// Once the end was reported, further calls consume nothing and report
    /// the end again with `consumed: 0`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> DataStatus {
        let len = input.len();
        let mut i = 0;
        // input[run..i] is message content not yet copied to `out`.
        let mut run = 0;
        while i < len {
            match self.state {
                State::Mid => {
                    let (end, at_line_start) = self.clean_lines(input, i, &mut run, out);
                    if end > i {
                        i = end;
                        self.line_len = 0;
                        if at_line_start {
                            self.state = State::LineStart;
                        }
                    } else {
                        i = self.mid_line(input, i, &mut run, out);
                    }
                }

                State::MidCr => {
                    if input[i] == LF {
                        self.line_len += 2;
                        self.copy(b"\r\n", out);
                        self.end_line();
                        i += 1;
                        run = i;
                        self.state = State::LineStart;
                    } else {
                        self.bare_newline = true;
                        self.line_len += 1;
                        self.copy(b"\r", out);
                        self.state = State::Mid;
                    }
                }
                State::LineStart => {
                    if input[i] == b'.' {
                        // RFC 5321 §4.5.2: drop the first dot of the line.
                        self.copy(&input[run..i], out);
                        i += 1;
                        run = i;
                        self.state = State::AfterDot;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::AfterDot => {
                    if input[i] == CR {
                        i += 1;
                        run = i;
                        self.state = State::AfterDotCr;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::AfterDotCr => {
                    if input[i] == LF {
                        self.state = State::Done;
                        return DataStatus::End {
                            consumed: i + 1,
                            result: self.result(),
                        };
                    }
                    // `.` CR followed by anything else: a bare CR, content.
                    self.bare_newline = true;
                    self.line_len += 1;
                    self.copy(b"\r", out);
                    self.state = State::Mid;
                }
                State::Done => {
                    return DataStatus::End {
                        consumed: 0,
                        result: self.result(),
                    };
                }
            }
        }
        if self.state == State::Done {
            return DataStatus::End {
                consumed: 0,
                result: self.result(),
            };
        }
        self.copy(&input[run..], out);
        if self.line_len > self.max_line {
            self.line_too_long = true;
        }
        DataStatus::NeedMore
    }

    /// The fast path: from `pos` inside a line, passes over the rest of the
    /// line and the whole CRLF lines after it, dropping the leading dot of
    /// dot-stuffed lines, and returns where it stopped and whether that is
    /// the start of a line (else it is right after a dropped dot). It
    /// stops where it started when the line at `pos` does not end in CRLF
    /// in this chunk.
    ///
    /// Line by line, it looks for LFs only (one `memchr` per line) and
    /// checks that each has its CR and the line's length. A CR anywhere else
    /// is bare: the lines passed over have one CR each exactly when there is
    /// no bare CR, which one fast count per stretch tells. Such a CR does not
    /// change where lines start or end, so it is only recorded. At line
    /// starts it hands over to the block scan, which passes over runs of
    /// ordinary lines without per-line work. The fast path stops before a
    /// bare LF, a line over the limit, a line starting with `.` CR (maybe
    /// the end of data) and at the chunk's end; the step-by-step code deals
    /// with those.
    fn clean_lines(
        &mut self,
        input: &[u8],
        pos: usize,
        run: &mut usize,
        out: &mut Vec<u8>,
    ) -> (usize, bool) {
        // Unstuffed octets of the current line before `line_start`.
        let mut line_len = self.line_len;
        let mut line_start = pos;
        // input[segment..line_start] holds `lines` lines passed over one by
        // one, whose CRs are counted when the segment ends; the block scan
        // checks the CRs of its blocks itself.
        let mut segment = pos;
        let mut lines = 0;
        let mut bare_cr = false;
        let mut at_line_start = false;
        // The block scan is tried at line starts from here on. After a bad
        // block it waits until the line-by-line search is past it, and
        // longer each time it fails at once (text full of dot lines).
        let mut blocks_from = if self.max_line >= 2 * BLOCK {
            pos + 1
        } else {
            usize::MAX
        };
        let mut backoff = BLOCK;
        while let Some(k) = memchr(LF, &input[line_start..]) {
            let lf = line_start + k;
            if lf == pos || input[lf - 1] != CR || line_len + lf + 1 - line_start > self.max_line {
                break;
            }
            line_len = 0;
            line_start = lf + 1;
            lines += 1;
            at_line_start = true;
            if input.get(line_start) == Some(&b'.') {
                if matches!(input.get(line_start + 1), None | Some(&CR)) {
                    break;
                }
                // RFC 5321 §4.5.2: drop the first dot of the line.
                self.copy(&input[*run..line_start], out);
                line_start += 1;
                *run = line_start;
                at_line_start = false;
            } else if line_start >= blocks_from {
                bare_cr |= count_cr(&input[segment..line_start]) != lines;
                let clean = self.clean_blocks(input, line_start);
                backoff = if clean == line_start {
                    (backoff * 2).min(MAX_BACKOFF)
                } else {
                    BLOCK
                };
                // The block at `clean` failed (or the chunk ends there).
                blocks_from = clean + backoff;
                if let Some(last) = memrchr(LF, &input[line_start..clean]) {
                    line_start += last + 1;
                }
                segment = line_start;
                lines = 0;
            }
        }
        if bare_cr || count_cr(&input[segment..line_start]) != lines {
            self.bare_newline = true;
        }
        (line_start, at_line_start)
    }

    /// The block scan, from `start`, a line start not followed by a dot:
    /// passes over 64-byte blocks in which CRs and LFs come in CR LF pairs
    /// and no LF is followed by a dot, and in which no line can be longer
    /// than the limit (a line spans at most two blocks with an LF plus the
    /// blocks without one in between). Returns where the clean blocks end.
    ///
    /// Each block is one plain loop over fixed-size arrays, which the
    /// compiler turns into vector compares (no `unsafe`, no intrinsics);
    /// it needs no per-line work, so long runs of ordinary lines cost a
    /// fraction of a `memchr` call per line.
    fn clean_blocks(&self, input: &[u8], start: usize) -> usize {
        let mut at = start;
        // Blocks in a row without an LF.
        let mut gap = 0;
        while let Some(window) = input
            .get(at - 1..)
            .and_then(<[u8]>::first_chunk::<{ BLOCK + 2 }>)
        {
            let (bad, has_lf) = block_faults(window);
            gap = if has_lf { 0 } else { gap + 1 };
            if bad || (gap + 2) * BLOCK > self.max_line {
                break;
            }
            at += BLOCK;
        }
        at
    }

    /// One step inside a line from `i`: up to and including the next CR or
    /// LF. Returns the next index.
    fn mid_line(&mut self, input: &[u8], i: usize, run: &mut usize, out: &mut Vec<u8>) -> usize {
        let len = input.len();
        match memchr2(CR, LF, &input[i..]) {
            None => {
                self.line_len += len - i;
                len
            }
            Some(k) => {
                let at = i + k;
                if input[at] == LF {
                    self.bare_newline = true;
                    self.line_len += k + 1;
                    at + 1
                } else if at + 1 == len {
                    // CR at the end of the chunk: hold it back until the
                    // next byte says whether it is a line end.
                    self.line_len += k;
                    self.copy(&input[*run..at], out);
                    *run = len;
                    self.state = State::MidCr;
                    len
                } else if input[at + 1] == LF {
                    self.line_len += k + 2;
                    self.end_line();
                    self.state = State::LineStart;
                    at + 2
                } else {
                    self.bare_newline = true;
                    self.line_len += k + 1;
                    at + 1
                }
            }
        }
    }

    /// Octets of message seen so far (kept or not).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Counts `bytes` as message content and appends them to `out` unless
    /// the message is already refused.
    fn copy(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.size += bytes.len();
        if self.size > self.max_size {
            self.too_big = true;
        }
        if !(self.too_big || self.bare_newline || self.line_too_long) {
            out.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        if self.line_len > self.max_line {
            self.line_too_long = true;
        }
        self.line_len = 0;
    }

    fn result(&self) -> Result<(), BodyError> {
        if self.too_big {
            Err(BodyError::TooBig)
        } else if self.bare_newline {
            Err(BodyError::BareNewline)
        } else if self.line_too_long {
            Err(BodyError::LineTooLong)
        } else {
            Ok(())
        }
    }
}

/// Appends `body` dot-stuffed for sending, followed by `.\r\n`. The body must
/// use CRLF line ends; a body not ending in CRLF gets one before the dot.
///
/// A bare CR or bare LF is sent as CRLF: no bare line end ever leaves this
/// server, so it can never be the carrier of a smuggling attack against the
/// next hop.
pub fn stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 5);
    let mut stuffer = Stuffer::new();
    stuffer.push(body, out);
    stuffer.finish(out);
}

/// [`stuff`] for a body handed over in pieces, so a large message can be
/// sent without a stuffed copy of it: the pieces may be cut anywhere (also
/// between a CR and its LF), and the bytes out are exactly those of
/// [`stuff`] on the whole body.
#[derive(Debug, Clone, Copy)]
pub struct Stuffer {
    /// The next byte starts a line (a dot there is doubled).
    line_start: bool,
    /// The last piece ended in a CR: CRLF if the next piece starts with LF,
    /// a bare CR (also sent as CRLF) otherwise.
    pending_cr: bool,
}

impl Default for Stuffer {
    fn default() -> Stuffer {
        Stuffer::new()
    }
}

impl Stuffer {
    /// A stuffer at the start of a body.
    pub fn new() -> Stuffer {
        Stuffer {
            line_start: true,
            pending_cr: false,
        }
    }

    /// Appends the next piece of the body, stuffed, to `out`.
    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let len = piece.len();
        if len == 0 {
            return;
        }
        let mut i = 0;
        if self.pending_cr {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.line_start = true;
            if piece[0] == LF {
                i = 1;
            }
        }
        while i < len {
            if self.line_start && piece[i] == b'.' {
                out.push(b'.');
            }
            match memchr2(CR, LF, &piece[i..]) {
                None => {
                    out.extend_from_slice(&piece[i..]);
                    self.line_start = false;
                    i = len;
                }
                Some(k) => {
                    let at = i + k;
                    if piece[at] == CR && at + 1 == len {
                        // Whether this CR ends a line is up to the next piece.
                        out.extend_from_slice(&piece[i..at]);
                        self.pending_cr = true;
                        self.line_start = false;
                        return;
                    }
                    if piece[at] == CR && piece[at + 1] == LF {
                        out.extend_from_slice(&piece[i..at + 2]);
                        i = at + 2;
                    } else {
                        out.extend_from_slice(&piece[i..at]);
                        out.extend_from_slice(b"\r\n");
                        i = at + 1;
                    }
                    self.line_start = true;
                }
            }
        }
    }

    /// Ends the body: CRLF if it did not end with one, then `.\r\n`.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outcome of feeding a whole stream: message bytes (only when
    /// good), the result, and where the data ended in the whole stream.
    type Outcome = (
        Option<Vec<u8>>,
        Option<(usize, Result<(), BodyError>)>,
        usize,
    );

    fn run(max_size: usize, max_line: usize, chunks: &[&[u8]]) -> Outcome {
        let mut unstuffer = Unstuffer::new(max_size, max_line);
        let mut out = Vec::new();
        let mut offset = 0;
        for chunk in chunks {
            match unstuffer.feed(chunk, &mut out) {
                DataStatus::NeedMore => offset += chunk.len(),
                DataStatus::End { consumed, result } => {
                    assert!(consumed <= chunk.len());
                    assert!(out.len() <= max_size);
                    let kept = result.is_ok().then_some(out);
                    return (kept, Some((offset + consumed, result)), unstuffer.size());
                }
            }
        }
        assert!(out.len() <= max_size);
        (None, None, unstuffer.size())
    }

    /// Whole, byte by byte, and split at every index (and at every pair of
    /// indices for short inputs): all identical.
    fn check_all(max_size: usize, max_line: usize, input: &[u8]) -> Outcome {
        let whole = run(max_size, max_line, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            run(max_size, max_line, &bytes),
            whole,
            "byte by byte: {input:?}"
        );
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                run(max_size, max_line, &[a, b]),
                whole,
                "split {at}: {input:?}"
            );
        }
        if input.len() <= 40 {
            for x in 0..=input.len() {
                for y in x..=input.len() {
                    let chunks = [&input[..x], &input[x..y], &input[y..]];
                    assert_eq!(
                        run(max_size, max_line, &chunks),
                        whole,
                        "{x},{y}: {input:?}"
                    );
                }
            }
        }
        whole
    }

    fn good(input: &[u8], message: &[u8]) {
        let (kept, end, _) = check_all(1 << 20, MAX_TEXT_LINE, input);
        assert_eq!(end.map(|e| e.1), Some(Ok(())), "{input:?}");
        assert_eq!(kept.as_deref(), Some(message), "{input:?}");
    }

    #[test]
    fn unstuffs_and_finds_the_end() {
        let cases: &[(&[u8], &[u8], usize)] = &[
            (b".\r\n", b"", 3),
            (b".\r\nQUIT\r\n", b"", 3),
            (b"a\r\n.\r\n", b"a\r\n", 6),
            (b"..\r\n.\r\n", b".\r\n", 7),
            (b"..x\r\n...y\r\n.\r\n", b".x\r\n..y\r\n", 14),
            (b".x\r\n.\r\n", b"x\r\n", 7),
            (b"\r\n\r\n.\r\nMAIL", b"\r\n\r\n", 7),
            (
                b"Subject: t\r\n\r\nbody .\r\n. \r\n.\r\n",
                b"Subject: t\r\n\r\nbody .\r\n \r\n",
                29,
            ),
            // Not an end: a NUL before or after the dot is content.
            (b"a\r\n\x00.\r\n.\r\n", b"a\r\n\x00.\r\n", 10),
            (b"a\r\n.\x00\r\n.\r\n", b"a\r\n\x00\r\n", 10),
        ];
        for (input, message, end) in cases {
            good(input, message);
            let (_, found, _) = run(1 << 20, MAX_TEXT_LINE, &[input]);
            assert_eq!(found.map(|e| e.0), Some(*end), "{input:?}");
        }
    }

    #[test]
    fn unfinished_data_needs_more() {
        for input in [
            &b""[..],
            b"abc",
            b"a\r\n.",
            b"a\r\n.\r",
            b"\r\n.\n",
            b".\n",
            b"x\r\n.x\r\n",
        ] {
            let (_, end, _) = check_all(1 << 20, MAX_TEXT_LINE, input);
            assert_eq!(end, None, "{input:?}");
        }
    }

    #[test]
    fn smuggling_never_ends_data_and_marks_bare_newlines() {
        // (sequence, contains a bare CR or LF)
        let cases: &[(&[u8], bool)] = &[
            (b"\n.\n", true),
            (b"\n.\r\n", true),
            (b"\r.\r", true),
            (b"\r.\r\n", true),
            (b"\r\n.\r", true),
            (b"\r\n.\n", true),
            (b"\n.\r", true),
            (b"\r.\n", true),
            (b"\r\n\x00.\r\n", false),
            (b"\r\n.\x00\r\n", false),
        ];
        for (sequence, bare) in cases {
            // The sequence inside a body, followed by a smuggled command
            // and then the real end.
            let mut input = b"x".to_vec();
            input.extend_from_slice(sequence);
            input.extend_from_slice(b"MAIL FROM:<a@b>\r\n.\r\n");
            let (kept, end, _) = check_all(1 << 20, MAX_TEXT_LINE, &input);
            let (at, result) = end.expect("the real end is found");
            assert_eq!(at, input.len(), "{sequence:?} must not end the data");
            if *bare {
                assert_eq!(result, Err(BodyError::BareNewline), "{sequence:?}");
                assert_eq!(kept, None);
            } else {
                assert_eq!(result, Ok(()), "{sequence:?}");
            }
            // The sequence alone, without the real end: never an end.
            let (_, end, _) = check_all(1 << 20, MAX_TEXT_LINE, &[&b"x"[..], sequence].concat());
            assert_eq!(end, None, "{sequence:?}");
        }
    }

    #[test]
    fn bare_newlines_anywhere() {
        for input in [
            &b"a\nb\r\n.\r\n"[..],
            b"a\rb\r\n.\r\n",
            b"\n\r\n.\r\n",
            b"\r\r\n.\r\n",
            b"a\r\r\n.\r\n",
            b"ab\n\r\n.\r\n",
        ] {
            let (_, end, _) = check_all(1 << 20, MAX_TEXT_LINE, input);
            assert_eq!(
                end,
                Some((input.len(), Err(BodyError::BareNewline))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn size_limit_reads_to_the_end() {
        let input = b"0123456789\r\n0123456789\r\n.\r\nQUIT\r\n";
        let (kept, end, size) = check_all(15, MAX_TEXT_LINE, input);
        assert_eq!(kept, None);
        assert_eq!(end, Some((input.len() - 6, Err(BodyError::TooBig))));
        assert_eq!(size, 24);
        // Exactly at the limit is fine.
        let (kept, end, _) = check_all(24, MAX_TEXT_LINE, input);
        assert_eq!(end.map(|e| e.1), Some(Ok(())));
        assert_eq!(kept.map(|k| k.len()), Some(24));
    }

    #[test]
    fn line_limit_includes_crlf() {
        let fits = b"12345678\r\n..345678\r\n.\r\n";
        let (_, end, _) = check_all(1 << 20, 10, fits);
        assert_eq!(end.map(|e| e.1), Some(Ok(())));
        for input in [
            &b"123456789\r\n.\r\n"[..],
            b"ok\r\n123456789\r\n.\r\n",
            b"12345678901234",
        ] {
            let (_, end, _) = check_all(1 << 20, 10, input);
            if input.ends_with(b".\r\n") {
                assert_eq!(
                    end,
                    Some((input.len(), Err(BodyError::LineTooLong))),
                    "{input:?}"
                );
            }
        }
        let mut unstuffer = Unstuffer::new(1 << 20, 10);
        let mut out = Vec::new();
        unstuffer.feed(b"12345678901234", &mut out);
        assert_eq!(
            unstuffer.feed(b"\r\n.\r\n", &mut out),
            DataStatus::End {
                consumed: 5,
                result: Err(BodyError::LineTooLong)
            }
        );
    }

    #[test]
    fn error_precedence() {
        // Too big, with a bare LF and a long line: TooBig.
        let (_, end, _) = check_all(8, 6, b"123456789\nabc\r\n.\r\n");
        assert_eq!(end.map(|e| e.1), Some(Err(BodyError::TooBig)));
        // Bare LF and a long line: BareNewline.
        let (_, end, _) = check_all(1000, 6, b"123456789\nabc\r\n.\r\n");
        assert_eq!(end.map(|e| e.1), Some(Err(BodyError::BareNewline)));
    }

    #[test]
    fn ended_unstuffer_consumes_nothing() {
        let mut unstuffer = Unstuffer::new(100, 100);
        let mut out = Vec::new();
        assert_eq!(
            unstuffer.feed(b".\r\nNOOP\r\n", &mut out),
            DataStatus::End {
                consumed: 3,
                result: Ok(())
            }
        );
        assert_eq!(
            unstuffer.feed(b"NOOP\r\n", &mut out),
            DataStatus::End {
                consumed: 0,
                result: Ok(())
            }
        );
        assert!(out.is_empty());
    }

    /// An obviously correct unstuffer, one byte at a time over the whole
    /// input, to compare the fast path with.
    fn reference(max_size: usize, max_line: usize, input: &[u8]) -> Outcome {
        let (mut out, mut size, mut line_len) = (Vec::new(), 0, 0);
        let (mut too_big, mut bare, mut too_long) = (false, false, false);
        let mut keep = |bytes: &[u8], size: &mut usize, too_big: &mut bool, ok: bool| {
            *size += bytes.len();
            *too_big |= *size > max_size;
            if ok && !*too_big {
                out.extend_from_slice(bytes);
            }
        };
        let (mut i, mut line_start) = (0, true);
        while i < input.len() {
            if line_start && input[i] == b'.' {
                if input[i..].starts_with(b".\r\n") {
                    let result = if too_big {
                        Err(BodyError::TooBig)
                    } else if bare {
                        Err(BodyError::BareNewline)
                    } else if too_long {
                        Err(BodyError::LineTooLong)
                    } else {
                        Ok(())
                    };
                    let kept = result.is_ok().then_some(out);
                    return (kept, Some((i + 3, result)), size);
                }
                i += 1;
            }
            line_start = false;
            let ok = !(bare || too_long);
            if input[i..].starts_with(b"\r\n") {
                keep(b"\r\n", &mut size, &mut too_big, ok);
                too_long |= line_len + 2 > max_line;
                line_len = 0;
                line_start = true;
                i += 2;
            } else {
                bare |= input[i] == CR || input[i] == LF;
                let ok = !(bare || too_long);
                keep(&input[i..=i], &mut size, &mut too_big, ok);
                line_len += 1;
                i += 1;
            }
        }
        panic!("the inputs of these tests always end");
    }

    /// `input` whole and split at the interesting points (the given ones
    /// and the block boundaries) must agree with the reference.
    fn agrees(max_size: usize, max_line: usize, input: &[u8], points: &[usize]) {
        let expected = reference(max_size, max_line, input);
        assert_eq!(run(max_size, max_line, &[input]), expected, "{input:?}");
        let blocks = [63, 64, 65, 127, 128, 129];
        for &at in points.iter().chain(&blocks) {
            let at = at.min(input.len());
            let (a, b) = input.split_at(at);
            assert_eq!(
                run(max_size, max_line, &[a, b]),
                expected,
                "split {at}: {input:?}"
            );
        }
    }

    /// Lines of 1 to 99 octets, about `len` in all.
    fn clean_body(len: usize) -> Vec<u8> {
        let mut body = Vec::new();
        let mut n = 7;
        while body.len() < len {
            n = (n * 37 + 11) % 99;
            body.extend((0..n).map(|k| b'a' + (k % 26) as u8));
            body.extend_from_slice(b"\r\n");
        }
        body
    }

    #[test]
    fn a_defect_anywhere_in_long_bodies() {
        let body = clean_body(300);
        let defects: &[&[u8]] = &[
            b"\r",
            b"\n",
            b".",
            b"\r\n.",
            b"\r\n..",
            b"\r\n.\r\n",
            b"\n.\n",
            b"\r\n.\r",
            b"\r\n.\n",
            b"\r\n..\r",
            b"\r\n.x\r",
            b"\r\n.x\n",
            b"\r\n.\r\n.",
        ];
        // The same lines, every third one dot-stuffed.
        let mut dotted = Vec::new();
        for (n, line) in body.split_inclusive(|&b| b == LF).enumerate() {
            if n % 3 == 1 {
                dotted.extend_from_slice(b"..");
            }
            dotted.extend_from_slice(line);
        }
        for (body, at) in (0..=body.len())
            .map(|at| (&body, at))
            .chain((0..=dotted.len()).map(|at| (&dotted, at)))
        {
            for defect in defects {
                let input = [&body[..at], defect, &body[at..], b"\r\n.\r\n"].concat();
                let points = [at.saturating_sub(1), at, at + 1, at + defect.len()];
                agrees(1 << 20, MAX_TEXT_LINE, &input, &points);
            }
        }
    }

    #[test]
    fn lines_at_the_limit_across_blocks() {
        for max_line in [10, 63, 64, 65, 66, 100, 127, 128, 129, 130, 200, 300] {
            for prefix in 0..70 {
                for len in [max_line - 3, max_line - 2, max_line - 1, max_line] {
                    // A line of `len` octets plus CRLF after `prefix` octets
                    // of short lines, then a clean line, then the end.
                    let mut input = clean_body(prefix);
                    input.truncate(prefix);
                    input.extend_from_slice(b"\r\n");
                    input.extend((0..len).map(|k| b'0' + (k % 10) as u8));
                    input.extend_from_slice(b"\r\nok\r\n.\r\n");
                    agrees(
                        1 << 20,
                        max_line,
                        &input,
                        &[prefix, prefix + 2, input.len() - 9],
                    );
                }
            }
        }
    }

    #[test]
    fn size_limit_inside_the_fast_path() {
        let mut input = clean_body(1000);
        input.extend_from_slice(b".\r\n");
        for max_size in [0, 1, 63, 64, 65, 500, 999, 1000, 1001, 1100] {
            agrees(max_size, MAX_TEXT_LINE, &input, &[max_size, 500]);
        }
    }

    #[test]
    fn stuffs() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"a\r\n.b\r\n..c", b"a\r\n..b\r\n...c\r\n.\r\n"),
            (b"a\nb\rc\r\n", b"a\r\nb\r\nc\r\n.\r\n"),
            (b"x\n.\n", b"x\r\n..\r\n.\r\n"),
            (b"x\r", b"x\r\n.\r\n"),
            (b"\r\r\n", b"\r\n\r\n.\r\n"),
        ];
        for (body, wire) in cases {
            let mut out = b"prefix".to_vec();
            stuff(body, &mut out);
            assert_eq!(&out[6..], *wire, "{body:?}");
        }
    }

    /// Bodies with bare CR and LF, dots at line starts and ragged ends.
    const AWKWARD_BODIES: &[&[u8]] = &[
        b"a\r\n.b\r\n..c",
        b"a\nb\rc\r\n",
        b"x\n.\n",
        b"x\r",
        b"\r\r\n.\r.\n\r",
        b".\r\n.",
        b"",
        b"\n.\n",
        b"\r.\r",
        b"\r\n.\r",
        b"a\n.\r\nb",
        b".",
        b"\r",
        b"\n",
    ];

    #[test]
    fn stuffing_in_pieces_is_stuffing_whole() {
        for body in AWKWARD_BODIES {
            let mut whole = Vec::new();
            stuff(body, &mut whole);
            for i in 0..=body.len() {
                for j in i..=body.len() {
                    let mut out = Vec::new();
                    let mut stuffer = Stuffer::new();
                    for piece in [&body[..i], &body[i..j], &body[j..]] {
                        stuffer.push(piece, &mut out);
                    }
                    stuffer.finish(&mut out);
                    assert_eq!(out, whole, "{body:?} cut at {i} and {j}");
                }
            }
        }
    }

    #[test]
    fn stuffed_output_is_always_clean() {
        // Whatever the body, the wire form has no bare CR/LF and ends once.
        for body in AWKWARD_BODIES {
            let mut wire = Vec::new();
            stuff(body, &mut wire);
            let (kept, end, _) = run(1 << 20, MAX_TEXT_LINE, &[&wire]);
            assert_eq!(end, Some((wire.len(), Ok(()))), "{body:?}");
            assert!(kept.is_some());
        }
    }

    #[test]
    fn unstuff_of_stuff_is_identity() {
        let lines: &[&[u8]] = &[
            b"",
            b".",
            b"..",
            b"x",
            b".x",
            b"hello world",
            b"\x00.",
            b" .",
            b"...",
        ];
        // Every body of up to three lines from the table.
        let mut bodies = vec![Vec::new()];
        for a in lines {
            for b in lines {
                for c in lines {
                    bodies.push([*a, b"\r\n", b, b"\r\n", c, b"\r\n"].concat());
                }
                bodies.push([*a, b"\r\n", b, b"\r\n"].concat());
            }
        }
        let mut long = Vec::new();
        for n in 0..500 {
            long.extend_from_slice(if n % 7 == 0 {
                b".dot line\r\n"
            } else {
                b"some text here\r\n"
            });
        }
        bodies.push(long);
        for body in &bodies {
            let mut wire = Vec::new();
            stuff(body, &mut wire);
            let (kept, end, size) = run(1 << 20, MAX_TEXT_LINE, &[&wire]);
            assert_eq!(end, Some((wire.len(), Ok(()))), "{body:?}");
            assert_eq!(kept.as_deref(), Some(&body[..]), "{body:?}");
            assert_eq!(size, body.len());
        }
        // And at every split point for a few.
        for body in bodies.iter().step_by(97) {
            let mut wire = Vec::new();
            stuff(body, &mut wire);
            let (kept, _, _) = check_all(1 << 20, MAX_TEXT_LINE, &wire);
            assert_eq!(kept.as_deref(), Some(&body[..]));
        }
    }
}
