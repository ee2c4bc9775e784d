//! DATA: a streaming dot-unstuffer that finds exactly CRLF.CRLF across any
//! read boundary, and the dot-stuffer used when sending.
//!
//! The unstuffer is a small state machine with a fast path: runs of
//! ordinary lines are checked 64 bytes at a time (vector compares the
//! compiler makes from a plain loop), lines around dot-stuffed ones with one
//! `memchr(LF)` each, and whole runs are copied with one `extend_from_slice`,
//! so a big body costs about one scan and one copy, with no allocation per
//! line. What could end the data or break a rule (a line starting with `.`
//! CR, a bare LF, a NUL, a chunk's end) goes through the state machine,
//! which scans with `memchr3(CR, LF, NUL)`.
//!
//! SMTP smuggling (RFC 5321 §2.3.8, §4.1.1.4): the end of data is only ever
//! CR LF "." CR LF. Any bare CR or bare LF marks the message bad and never
//! counts as a line end, so `\n.\n`, `\n.\r\n`, `\r.\r\n` and friends are
//! neither an end of data here nor accepted as content. A NUL marks the
//! message bad too: a next hop that drops NULs would read `\r\n\0.\r\n` or
//! `\r\n.\0\r\n` as the end of data (RFC 5322 §2.3 and RFC 6152 allow no
//! NUL in a message).
//!
//! Lines may be of any length: RFC 5321 §4.5.3.1.6's 1000 octets bind
//! senders, and mail with longer lines is common, so only the size limit
//! bounds a line.

use memchr::{memchr, memchr2, memchr3, memchr_iter, memrchr};

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// The block scan looks at this many bytes at a time.
const BLOCK: usize = 64;

/// The longest the block scan waits after failing (in bytes of input).
const MAX_BACKOFF: usize = 4096;

/// Whether a block breaks a rule of the fast path (a CR not followed by
/// LF, an LF not after a CR, an LF followed by a dot, a NUL). The block is
/// `window` without its first and last byte, which are the neighbours its
/// first and last byte are checked against.
// Kept out of line: inlined into the scan loop, the compiler unrolls it
// into byte-at-a-time code instead of vector compares.
#[inline(never)]
fn block_faults(window: &[u8; BLOCK + 2]) -> bool {
    let mut bad = false;
    for i in 0..BLOCK {
        let (p, c, n) = (window[i], window[i + 1], window[i + 2]);
        bad |= (c == LF && p != CR) | (c == CR && n != LF) | (c == LF && n == b'.') | (c == NUL);
    }
    bad
}

/// CRs in `bytes`.
fn count_cr(bytes: &[u8]) -> usize {
    memchr_iter(CR, bytes).count()
}

/// Why a message read to its end is refused.
///
/// When several apply, the unstuffer reports the first of `TooBig`,
/// `BareNewline`, `Nul`: a client over the size limit gets the size reply
/// (552) whatever else is wrong, and a bare line end is named before a NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the size limit; the body was read to the end but not kept.
    TooBig,
    /// A bare CR or a bare LF (SMTP smuggling, RFC 5321 §2.3.8).
    BareNewline,
    /// A NUL octet (SMTP smuggling through a next hop that drops NULs).
    Nul,
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
/// error is noticed (a bare CR or a NUL at the latest at the end of the
/// chunk that holds it) and never goes past the size limit, so `out` stays
/// bounded.
#[derive(Debug, Clone)]
pub struct Unstuffer {
    max_size: usize,
    state: State,
    /// Unstuffed octets seen so far, kept or not.
    size: usize,
    too_big: bool,
    bare_newline: bool,
    nul: bool,
}

impl Unstuffer {
    /// An unstuffer that keeps at most `max_size` octets of message.
    pub fn new(max_size: usize) -> Unstuffer {
        Unstuffer {
            max_size,
            state: State::LineStart,
            size: 0,
            too_big: false,
            bare_newline: false,
            nul: false,
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
                        if at_line_start {
                            self.state = State::LineStart;
                        }
                    } else {
                        i = self.mid_line(input, i, &mut run, out);
                    }
                }

                State::MidCr => {
                    if input[i] == LF {
                        self.copy(b"\r\n", out);
                        i += 1;
                        run = i;
                        self.state = State::LineStart;
                    } else {
                        self.bare_newline = true;
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
    /// checks that each has its CR. A CR anywhere else is bare: the lines
    /// passed over have one CR each exactly when there is no bare CR, which
    /// one fast count per stretch tells, and one `memchr` per stretch finds
    /// a NUL. Such bytes do not change where lines start or end, so they
    /// are only recorded. At line starts it hands over to the block scan, which
    /// passes over runs of ordinary lines without per-line work. The fast
    /// path stops before a bare LF, a line starting with `.` CR (maybe the
    /// end of data) and at the chunk's end; the step-by-step code deals with
    /// those.
    fn clean_lines(
        &mut self,
        input: &[u8],
        pos: usize,
        run: &mut usize,
        out: &mut Vec<u8>,
    ) -> (usize, bool) {
        let mut line_start = pos;
        // input[segment..line_start] holds `lines` lines passed over one by
        // one, whose CRs are counted and NULs looked for when the segment
        // ends; the block scan checks the CRs and NULs of its blocks itself.
        let mut segment = pos;
        let mut lines = 0;
        let mut at_line_start = false;
        // The block scan is tried at line starts from here on. After a bad
        // block it waits until the line-by-line search is past it, and
        // longer each time it fails at once (text full of dot lines).
        let mut blocks_from = pos + 1;
        let mut backoff = BLOCK;
        while let Some(k) = memchr(LF, &input[line_start..]) {
            let lf = line_start + k;
            if lf == pos || input[lf - 1] != CR {
                break;
            }
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
                self.check_lines(&input[segment..line_start], lines);
                let clean = clean_blocks(input, line_start);
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
        self.check_lines(&input[segment..line_start], lines);
        (line_start, at_line_start)
    }

    /// Records a bare CR or a NUL in `bytes`, `lines` lines that each end
    /// in CRLF: they hold one CR per line exactly when no CR is bare.
    fn check_lines(&mut self, bytes: &[u8], lines: usize) {
        self.bare_newline |= count_cr(bytes) != lines;
        self.nul |= memchr(NUL, bytes).is_some();
    }

    /// One step inside a line from `i`: up to and including the next CR,
    /// LF or NUL. Returns the next index.
    fn mid_line(&mut self, input: &[u8], i: usize, run: &mut usize, out: &mut Vec<u8>) -> usize {
        let len = input.len();
        match memchr3(CR, LF, NUL, &input[i..]) {
            None => len,
            Some(k) => {
                let at = i + k;
                if input[at] == NUL {
                    self.nul = true;
                    at + 1
                } else if input[at] == LF {
                    self.bare_newline = true;
                    at + 1
                } else if at + 1 == len {
                    // CR at the end of the chunk: hold it back until the
                    // next byte says whether it is a line end.
                    self.copy(&input[*run..at], out);
                    *run = len;
                    self.state = State::MidCr;
                    len
                } else if input[at + 1] == LF {
                    self.state = State::LineStart;
                    at + 2
                } else {
                    self.bare_newline = true;
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
        if !(self.too_big || self.bare_newline || self.nul) {
            out.extend_from_slice(bytes);
        }
    }

    fn result(&self) -> Result<(), BodyError> {
        if self.too_big {
            Err(BodyError::TooBig)
        } else if self.bare_newline {
            Err(BodyError::BareNewline)
        } else if self.nul {
            Err(BodyError::Nul)
        } else {
            Ok(())
        }
    }
}

/// The block scan, from `start`, a line start not followed by a dot:
/// passes over 64-byte blocks without a NUL in which CRs and LFs come in
/// CR LF pairs and no LF is followed by a dot. Returns where the clean
/// blocks end.
///
/// Each block is one plain loop over fixed-size arrays, which the compiler
/// turns into vector compares (no `unsafe`, no intrinsics); it needs no
/// per-line work, so long runs of ordinary lines cost a fraction of a
/// `memchr` call per line.
fn clean_blocks(input: &[u8], start: usize) -> usize {
    let mut at = start;
    while let Some(window) = input
        .get(at - 1..)
        .and_then(<[u8]>::first_chunk::<{ BLOCK + 2 }>)
    {
        if block_faults(window) {
            break;
        }
        at += BLOCK;
    }
    at
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

    fn run(max_size: usize, chunks: &[&[u8]]) -> Outcome {
        let mut unstuffer = Unstuffer::new(max_size);
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
    fn check_all(max_size: usize, input: &[u8]) -> Outcome {
        let whole = run(max_size, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(max_size, &bytes), whole, "byte by byte: {input:?}");
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(run(max_size, &[a, b]), whole, "split {at}: {input:?}");
        }
        if input.len() <= 40 {
            for x in 0..=input.len() {
                for y in x..=input.len() {
                    let chunks = [&input[..x], &input[x..y], &input[y..]];
                    assert_eq!(run(max_size, &chunks), whole, "{x},{y}: {input:?}");
                }
            }
        }
        whole
    }

    fn good(input: &[u8], message: &[u8]) {
        let (kept, end, _) = check_all(1 << 20, input);
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
            // Lines of any length.
            (b"0123456789\r\n.\r\n", b"0123456789\r\n", 15),
        ];
        for (input, message, end) in cases {
            good(input, message);
            let (_, found, _) = run(1 << 20, &[input]);
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
            let (_, end, _) = check_all(1 << 20, input);
            assert_eq!(end, None, "{input:?}");
        }
    }

    #[test]
    fn smuggling_never_ends_data_and_marks_the_message_bad() {
        // (sequence, the rule it breaks)
        let bare = BodyError::BareNewline;
        let cases: &[(&[u8], BodyError)] = &[
            (b"\n.\n", bare),
            (b"\n.\r\n", bare),
            (b"\r.\r", bare),
            (b"\r.\r\n", bare),
            (b"\r\n.\r", bare),
            (b"\r\n.\n", bare),
            (b"\n.\r", bare),
            (b"\r.\n", bare),
            // The end of data to a next hop that drops NULs.
            (b"\r\n\x00.\r\n", BodyError::Nul),
            (b"\r\n.\x00\r\n", BodyError::Nul),
            (b"\r\n\x00.\x00\r\n", BodyError::Nul),
            (b"\r\n.\r\x00\n", bare),
        ];
        for (sequence, error) in cases {
            // The sequence inside a body, followed by a smuggled command
            // and then the real end.
            let mut input = b"x".to_vec();
            input.extend_from_slice(sequence);
            input.extend_from_slice(b"MAIL FROM:<a@b>\r\n.\r\n");
            let (kept, end, _) = check_all(1 << 20, &input);
            let (at, result) = end.expect("the real end is found");
            assert_eq!(at, input.len(), "{sequence:?} must not end the data");
            assert_eq!(result, Err(*error), "{sequence:?}");
            assert_eq!(kept, None);
            // The sequence alone, without the real end: never an end.
            let (_, end, _) = check_all(1 << 20, &[&b"x"[..], sequence].concat());
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
            let (_, end, _) = check_all(1 << 20, input);
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
        let (kept, end, size) = check_all(15, input);
        assert_eq!(kept, None);
        assert_eq!(end, Some((input.len() - 6, Err(BodyError::TooBig))));
        assert_eq!(size, 24);
        // Exactly at the limit is fine.
        let (kept, end, _) = check_all(24, input);
        assert_eq!(end.map(|e| e.1), Some(Ok(())));
        assert_eq!(kept.map(|k| k.len()), Some(24));
    }

    #[test]
    fn nul_anywhere_refuses_the_message() {
        for input in [
            &b"\x00\r\n.\r\n"[..],
            b"a\x00b\r\n.\r\n",
            b"a\r\n\x00\r\n.\r\n",
            b"a\r\n.\x00x\r\n.\r\n",
            b"a\r\n..\x00\r\n.\r\n",
            b"a\r\nb\x00\r\n.\r\n",
        ] {
            let (kept, end, _) = check_all(1 << 20, input);
            assert_eq!(end, Some((input.len(), Err(BodyError::Nul))), "{input:?}");
            assert_eq!(kept, None);
        }
    }

    #[test]
    fn long_lines_are_kept_as_they_are() {
        let line = "y".repeat(5000);
        let input = format!("short\r\n{line}\r\n.{line}\r\n.\r\n");
        let (kept, end, _) = check_all(1 << 20, input.as_bytes());
        assert_eq!(end, Some((input.len(), Ok(()))));
        let message = format!("short\r\n{line}\r\n{line}\r\n");
        assert_eq!(kept.as_deref(), Some(message.as_bytes()));
        // A line without an end is bounded by the size limit alone.
        let (kept, end, _) = check_all(4999, format!("{line}\r\n.\r\n").as_bytes());
        assert_eq!(end.map(|e| e.1), Some(Err(BodyError::TooBig)));
        assert_eq!(kept, None);
    }

    #[test]
    fn error_precedence() {
        // Too big, with a bare LF and a NUL: TooBig.
        let (_, end, _) = check_all(8, b"1234\x006789\nabc\r\n.\r\n");
        assert_eq!(end.map(|e| e.1), Some(Err(BodyError::TooBig)));
        // Bare LF and a NUL, in either order: BareNewline.
        for input in [&b"1\x002\nabc\r\n.\r\n"[..], b"12\nabc\x00\r\n.\r\n"] {
            let (_, end, _) = check_all(1000, input);
            assert_eq!(end.map(|e| e.1), Some(Err(BodyError::BareNewline)));
        }
    }

    #[test]
    fn ended_unstuffer_consumes_nothing() {
        let mut unstuffer = Unstuffer::new(100);
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
    fn reference(max_size: usize, input: &[u8]) -> Outcome {
        let (mut out, mut size) = (Vec::new(), 0);
        let (mut bare, mut nul) = (false, false);
        let (mut i, mut line_start) = (0, true);
        while i < input.len() {
            if line_start && input[i] == b'.' {
                if input[i..].starts_with(b".\r\n") {
                    let result = if size > max_size {
                        Err(BodyError::TooBig)
                    } else if bare {
                        Err(BodyError::BareNewline)
                    } else if nul {
                        Err(BodyError::Nul)
                    } else {
                        Ok(())
                    };
                    let kept = result.is_ok().then_some(out);
                    return (kept, Some((i + 3, result)), size);
                }
                i += 1;
            }
            let content = if input[i..].starts_with(b"\r\n") {
                &input[i..i + 2]
            } else {
                bare |= input[i] == CR || input[i] == LF;
                nul |= input[i] == NUL;
                &input[i..=i]
            };
            line_start = content == b"\r\n";
            out.extend_from_slice(content);
            size += content.len();
            i += content.len();
        }
        panic!("the inputs of these tests always end");
    }

    /// `input` whole and split at the interesting points (the given ones
    /// and the block boundaries) must agree with the reference.
    fn agrees(max_size: usize, input: &[u8], points: &[usize]) {
        let expected = reference(max_size, input);
        assert_eq!(run(max_size, &[input]), expected, "{input:?}");
        let blocks = [63, 64, 65, 127, 128, 129];
        for &at in points.iter().chain(&blocks) {
            let at = at.min(input.len());
            let (a, b) = input.split_at(at);
            assert_eq!(run(max_size, &[a, b]), expected, "split {at}: {input:?}");
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
            b"\x00",
            b"\r\n\x00.\r\n",
            b"\r\n.\x00\r\n",
            b"\r\n..\x00",
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
                agrees(1 << 20, &input, &points);
            }
        }
    }

    #[test]
    fn long_lines_across_blocks() {
        for len in [
            62, 63, 64, 65, 66, 127, 128, 129, 130, 998, 999, 1000, 1001, 5000,
        ] {
            for prefix in 0..70 {
                for defect in [&b""[..], b"\x00", b"\r", b"\n"] {
                    // A line of `len` octets (with `defect` in its middle)
                    // after `prefix` octets of short lines, then a clean
                    // line, then the end.
                    let mut input = clean_body(prefix);
                    input.truncate(prefix);
                    input.extend_from_slice(b"\r\n");
                    let line = prefix + 2;
                    input.extend((0..len).map(|k| b'0' + (k % 10) as u8));
                    input.splice(line + len / 2..line + len / 2, defect.iter().copied());
                    input.extend_from_slice(b"\r\nok\r\n.\r\n");
                    let points = [prefix, line, line + len / 2, input.len() - 9];
                    agrees(1 << 20, &input, &points);
                }
            }
        }
    }

    #[test]
    fn size_limit_inside_the_fast_path() {
        let mut input = clean_body(1000);
        input.extend_from_slice(b".\r\n");
        for max_size in [0, 1, 63, 64, 65, 500, 999, 1000, 1001, 1100] {
            agrees(max_size, &input, &[max_size, 500]);
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
            let (kept, end, _) = run(1 << 20, &[&wire]);
            assert_eq!(end, Some((wire.len(), Ok(()))), "{body:?}");
            assert!(kept.is_some());
        }
    }

    #[test]
    fn unstuff_of_stuff_is_identity() {
        let lines: &[&[u8]] = &[b"", b".", b"..", b"x", b".x", b"hello world", b" .", b"..."];
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
            let (kept, end, size) = run(1 << 20, &[&wire]);
            assert_eq!(end, Some((wire.len(), Ok(()))), "{body:?}");
            assert_eq!(kept.as_deref(), Some(&body[..]), "{body:?}");
            assert_eq!(size, body.len());
        }
        // And at every split point for a few.
        for body in bodies.iter().step_by(97) {
            let mut wire = Vec::new();
            stuff(body, &mut wire);
            let (kept, _, _) = check_all(1 << 20, &wire);
            assert_eq!(kept.as_deref(), Some(&body[..]));
        }
    }
}
