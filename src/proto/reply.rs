//! SMTP replies: a code, an enhanced status code (RFC 3463), text lines and
//! an explicit flag saying the server closes the connection after sending it.
//!
//! Both directions live here: [`Reply::render`] writes the server's replies,
//! [`Reply::parse`] and [`ReplyReader`] read a peer's replies for the
//! outbound client, `outpost check` and `outpost bench`. Reading is
//! incremental in the httparse style: "need more bytes" is
//! [`ReplyStatus::Partial`], and [`ReplyError`] is only for bytes that can
//! never become a valid reply. Pure: imports nothing else of the crate.

use std::borrow::Cow;
use std::fmt;

use memchr::memchr;

/// RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets; real servers
/// exceed it with long EHLO keywords and diagnostics, so we accept up to the
/// text-line limit and treat anything longer as a broken peer.
pub const MAX_REPLY_LINE: usize = 1000;

/// Lines in one multi-line reply before the peer is considered broken
/// (bounds the memory one reply can take).
pub const MAX_REPLY_LINES: usize = 100;

/// An enhanced status code `class.subject.detail` (RFC 3463), e.g. `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// The enhanced status code, written at the start of every line's text.
    /// `None` only for the greeting and the EHLO/HELO reply (RFC 2034 §3).
    pub enhanced: Option<Enhanced>,
    /// The text lines; at least one.
    pub lines: Vec<Cow<'static, str>>,
    /// The server closes the connection after this reply.
    pub close: bool,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            enhanced: Some(Enhanced(enhanced.0, enhanced.1, enhanced.2)),
            lines: vec![text.into()],
            close: false,
        }
    }

    /// A reply without an enhanced status code (greeting, EHLO).
    pub fn plain(code: u16, lines: Vec<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
            close: false,
        }
    }

    /// The same reply, after which the server closes the connection.
    pub fn and_close(mut self) -> Reply {
        self.close = true;
        self
    }

    /// Appends the wire form to `out`: `code-text` for all lines but the
    /// last, `code text` for the last, each ending in CRLF. CR and LF inside
    /// the text are replaced by spaces so a reply can never be split.
    pub fn render(&self, out: &mut Vec<u8>) {
        // Digits are written by hand: no `format!` and no allocation on
        // the path every command takes.
        let last = self.lines.len().saturating_sub(1);
        for (i, text) in self.lines.iter().enumerate() {
            push_decimal(out, self.code);
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(Enhanced(c, s, d)) = self.enhanced {
                push_decimal(out, c.into());
                out.push(b'.');
                push_decimal(out, s);
                out.push(b'.');
                push_decimal(out, d);
                out.push(b' ');
            }
            out.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        if self.lines.is_empty() {
            push_decimal(out, self.code);
            out.extend_from_slice(b" \r\n");
        }
    }

    /// The text on one line, as [`Reply`]'s `Display` writes it after the
    /// codes: the lines trimmed and joined by spaces, CR and LF inside them
    /// made spaces (as in [`Reply::render`]).
    pub fn text_line(&self) -> TextLine<'_> {
        TextLine(self)
    }

    /// Reads the reply at the start of `input`.
    ///
    /// A reply is one or more lines of a three-digit code (200 to 599),
    /// `-` on every line but the last, then the text (RFC 5321 §4.2). A
    /// line ends at LF; one CR before it is dropped; text that is not UTF-8
    /// is kept lossily. The enhanced status code starting the first line
    /// (RFC 3463 §2, its class matching the code's first digit) is taken out
    /// of every line that starts with it. A 421 reply has `close` set.
    pub fn parse(input: &[u8]) -> Result<ReplyStatus, ReplyError> {
        Ok(match Scan::default().next(input)? {
            Some((consumed, code)) => ReplyStatus::Complete {
                reply: build(code, &input[..consumed]),
                consumed,
            },
            None => ReplyStatus::Partial,
        })
    }
}

/// The reply on one line, for logs, reports and messages:
/// `550 5.1.1 No such user`. The text lines are trimmed and joined by
/// spaces; CR and LF inside them become spaces, as in [`Reply::render`].
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(enhanced) = self.enhanced {
            write!(f, " {enhanced}")?;
        }
        write!(f, " {}", self.text_line())
    }
}

/// A reply's text on one line; see [`Reply::text_line`].
#[derive(Debug, Clone, Copy)]
pub struct TextLine<'a>(&'a Reply);

impl fmt::Display for TextLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.lines.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for (j, part) in line.trim().split(['\r', '\n']).enumerate() {
                if j > 0 {
                    f.write_str(" ")?;
                }
                f.write_str(part)?;
            }
        }
        Ok(())
    }
}

/// `class.subject.detail`, e.g. `5.7.1`.
impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What [`Reply::parse`] found at the start of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyStatus {
    /// A whole reply.
    Complete {
        /// The reply.
        reply: Reply,
        /// The bytes it took, up to and including its last LF.
        consumed: usize,
    },
    /// The reply's last line has not arrived yet; read more.
    Partial,
}

/// Bytes that can never become a valid reply: the peer is broken, and the
/// dialogue cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyError {
    /// What is wrong.
    pub kind: ReplyErrorKind,
    /// Where the offending line starts, counted from the start of the
    /// input (for [`ReplyReader`]: of [`ReplyReader::buffered`]).
    pub at: usize,
}

/// What is wrong with a reply line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyErrorKind {
    /// The line does not start with three digits.
    NotAReply,
    /// The code is not between 200 and 599.
    CodeOutOfRange,
    /// A line of a multi-line reply has another code than the first.
    CodeChanged,
    /// The fourth octet is neither a space nor `-`.
    Malformed,
    /// The reply goes on past [`MAX_REPLY_LINES`] lines.
    TooManyLines,
}

impl ReplyErrorKind {
    /// The reason in words, as the outbound client logs it.
    pub fn reason(self) -> &'static str {
        match self {
            ReplyErrorKind::NotAReply => "the server sent a line that is not an SMTP reply",
            ReplyErrorKind::CodeOutOfRange => "the server sent a reply code out of range",
            ReplyErrorKind::CodeChanged => {
                "the server changed the reply code inside a multi-line reply"
            }
            ReplyErrorKind::Malformed => "the server sent a malformed reply line",
            ReplyErrorKind::TooManyLines => "the server sent too many reply lines",
        }
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.reason())
    }
}

impl std::error::Error for ReplyError {}

/// Reads replies from a stream that arrives in pieces: push what was read,
/// take whole replies out. Checking resumes where the previous call
/// stopped, so a long reply fed in small pieces is not scanned again; the
/// buffer holds at most one reply ([`MAX_REPLY_LINES`] lines of
/// [`MAX_REPLY_LINE`] octets) plus one read.
///
/// A line longer than [`MAX_REPLY_LINE`] is cut to that length as it
/// arrives and the rest of it, up to its LF, is dropped; its code still
/// counts. A `250` after the end of data with an over-long text means the
/// message was taken: treating it as an error would send the message again
/// (Postfix's client also truncates long reply lines).
#[derive(Debug, Default)]
pub struct ReplyReader {
    buffer: Vec<u8>,
    /// Where the bytes not yet returned start in `buffer`.
    start: usize,
    /// How many octets of an unfinished line end the buffer.
    tail: usize,
    /// The buffer's last line was cut: drop what comes up to its LF.
    dropping: bool,
    scan: Scan,
}

impl ReplyReader {
    /// An empty reader.
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Appends bytes read from the peer, cutting over-long lines.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        while !bytes.is_empty() {
            let lf = memchr(b'\n', bytes);
            if self.dropping {
                let Some(lf) = lf else { return };
                bytes = &bytes[lf + 1..];
                self.dropping = false;
                continue;
            }
            // Octets of the current line this piece may still add: one
            // less than the limit, so a line that reaches the limit without
            // its LF is known to be too long.
            let room = MAX_REPLY_LINE - 1 - self.tail;
            match lf {
                Some(lf) if lf <= room => {
                    self.buffer.extend_from_slice(&bytes[..=lf]);
                    self.tail = 0;
                    bytes = &bytes[lf + 1..];
                }
                _ if lf.is_none() && bytes.len() <= room => {
                    self.buffer.extend_from_slice(bytes);
                    self.tail += bytes.len();
                    return;
                }
                _ => {
                    // Too long: keep what fits before a CRLF, drop the rest.
                    let keep = CUT_LINE.saturating_sub(self.tail).min(bytes.len());
                    self.buffer.extend_from_slice(&bytes[..keep]);
                    let line_start = self.buffer.len() - self.tail - keep;
                    self.buffer.truncate(line_start + CUT_LINE);
                    self.buffer.extend_from_slice(b"\r\n");
                    self.tail = 0;
                    self.dropping = true;
                }
            }
        }
    }

    /// Takes the next whole reply out of the buffer; `Ok(None)` until its
    /// last line has arrived.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        let rest = &self.buffer[self.start..];
        let Some((consumed, code)) = self.scan.next(rest)? else {
            return Ok(None);
        };
        let reply = build(code, &rest[..consumed]);
        self.start += consumed;
        Ok(Some(reply))
    }

    /// The bytes received and not yet returned in a reply.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Forgets everything buffered: the phase of the dialogue those bytes
    /// belonged to is over (after STARTTLS nothing read in plaintext may be
    /// taken as coming over TLS, RFC 3207 §4.2).
    pub fn clear(&mut self) {
        *self = ReplyReader::default();
    }
}

/// How far the reply at the front of a buffer has been checked: the lines
/// before `checked` are `lines` valid continuation lines with code `code`.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    checked: usize,
    code: Option<u16>,
    lines: usize,
}

impl Scan {
    /// Checks the lines after `checked`. Once the last line is in, returns
    /// the reply's length and code and starts over for the next reply.
    fn next(&mut self, input: &[u8]) -> Result<Option<(usize, u16)>, ReplyError> {
        loop {
            let start = self.checked;
            let rest = &input[start..];
            let error = |kind| ReplyError { kind, at: start };
            let Some(lf) = memchr(b'\n', rest) else {
                // Not starting with digits: no more bytes can make this a
                // reply line.
                if !rest.iter().take(3).all(u8::is_ascii_digit) {
                    return Err(error(ReplyErrorKind::NotAReply));
                }
                return Ok(None);
            };
            let line = strip_cr(&rest[..lf]);
            let code = code_of(line).ok_or(error(ReplyErrorKind::NotAReply))?;
            if !(200..600).contains(&code) {
                return Err(error(ReplyErrorKind::CodeOutOfRange));
            }
            if self.code.is_some_and(|c| c != code) {
                return Err(error(ReplyErrorKind::CodeChanged));
            }
            let last = match line.get(3) {
                None | Some(b' ') => true,
                Some(b'-') => false,
                Some(_) => return Err(error(ReplyErrorKind::Malformed)),
            };
            let end = start + lf + 1;
            if last {
                *self = Scan::default();
                return Ok(Some((end, code)));
            }
            if self.lines + 1 >= MAX_REPLY_LINES {
                return Err(error(ReplyErrorKind::TooManyLines));
            }
            *self = Scan {
                checked: end,
                code: Some(code),
                lines: self.lines + 1,
            };
        }
    }
}

/// The octets kept of a line longer than [`MAX_REPLY_LINE`], before the
/// CRLF that ends it.
const CUT_LINE: usize = MAX_REPLY_LINE - 2;

/// The line without one CR before its LF.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The three-digit code at the start of `line`.
fn code_of(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    digits.iter().try_fold(0u16, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
    })
}

/// The reply in `input`, which [`Scan`] found whole and valid with `code`.
fn build(code: u16, input: &[u8]) -> Reply {
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    let mut lines: Vec<String> = body
        .split(|&b| b == b'\n')
        .map(|line| {
            // As the reader cuts it: LF included, over the limit.
            let line = if line.len() + 1 > MAX_REPLY_LINE {
                &line[..CUT_LINE]
            } else {
                strip_cr(line)
            };
            String::from_utf8_lossy(line.get(4..).unwrap_or(b"")).into_owned()
        })
        .collect();
    let enhanced = lines.first().and_then(|l| parse_enhanced(code, l));
    if let Some((_, prefix_len)) = enhanced {
        let prefix = lines[0][..prefix_len].to_string();
        for line in &mut lines {
            if line.starts_with(&prefix) {
                line.drain(..prefix_len);
            }
        }
    }
    Reply {
        code,
        enhanced: enhanced.map(|(e, _)| e),
        lines: lines.into_iter().map(Cow::Owned).collect(),
        close: code == 421,
    }
}

/// RFC 3463 §2: `class.subject.detail` at the start of the text, the class
/// matching the reply's first digit. Returns the code and the length of the
/// prefix including the following space.
fn parse_enhanced(code: u16, text: &str) -> Option<(Enhanced, usize)> {
    let word = text.split(' ').next()?;
    let mut parts = word.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || u16::from(class) != code / 100 || !word.is_ascii() {
        return None;
    }
    let len = (word.len() + 1).min(text.len());
    Some((Enhanced(class, subject, detail), len))
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0; 5];
    let mut rest = n;
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, (2, 1, 0), "Sender OK").render(&mut out);
        assert_eq!(out, b"250 2.1.0 Sender OK\r\n");
        out.clear();
        Reply::plain(250, vec!["mx.example".into(), "PIPELINING".into()]).render(&mut out);
        assert_eq!(out, b"250-mx.example\r\n250 PIPELINING\r\n");
    }

    #[test]
    fn renders_any_numbers() {
        for (code, enhanced, wire) in [
            (0, (0, 0, 0), &b"0 0.0.0 t\r\n"[..]),
            (421, (4, 7, 0), b"421 4.7.0 t\r\n"),
            (552, (5, 3, 4), b"552 5.3.4 t\r\n"),
            (999, (9, 999, 999), b"999 9.999.999 t\r\n"),
            (65535, (255, 65535, 10), b"65535 255.65535.10 t\r\n"),
        ] {
            let mut out = Vec::new();
            Reply::new(code, enhanced, "t").render(&mut out);
            assert_eq!(out, wire);
        }
        let mut out = Vec::new();
        Reply::plain(250, Vec::new()).render(&mut out);
        assert_eq!(out, b"250 \r\n");
    }

    #[test]
    fn text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(550, (5, 1, 1), "a\r\n250 ok").render(&mut out);
        assert_eq!(out, b"550 5.1.1 a  250 ok\r\n");
    }

    /// Every reply the reader yields for `chunks`, or the first error.
    fn read_all(chunks: &[&[u8]]) -> Result<Vec<Reply>, ReplyError> {
        let mut reader = ReplyReader::new();
        let mut replies = Vec::new();
        for chunk in chunks {
            reader.push(chunk);
            while let Some(reply) = reader.next_reply()? {
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    /// Whole, byte by byte and split at every index: the same replies (or
    /// error), and the same as calling `Reply::parse` in a loop.
    fn read_at_every_split(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let whole = read_all(&[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(read_all(&bytes), whole, "byte by byte");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(read_all(&[a, b]), whole, "split at {i}");
        }
        let mut parsed = Vec::new();
        let mut rest = input;
        let stateless = loop {
            match Reply::parse(rest) {
                Ok(ReplyStatus::Complete { reply, consumed }) => {
                    parsed.push(reply);
                    rest = &rest[consumed..];
                }
                Ok(ReplyStatus::Partial) => break Ok(parsed),
                Err(e) => break Err(e.kind),
            }
        };
        assert_eq!(stateless, whole.clone().map_err(|e| e.kind));
        whole
    }

    fn reply(code: u16, enhanced: Option<Enhanced>, lines: &[&str]) -> Reply {
        Reply {
            code,
            enhanced,
            lines: lines.iter().map(|l| Cow::Owned(l.to_string())).collect(),
            close: code == 421,
        }
    }

    fn error_kind(input: &[u8]) -> Option<ReplyErrorKind> {
        read_at_every_split(input).err().map(|e| e.kind)
    }

    #[test]
    fn reads_a_dialogue_at_every_split_point() {
        let input: &[u8] = b"220 mx.example ESMTP\r\n\
            250-mx.example hello\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n\
            250 2.1.0 Ok\r\n\
            550-5.1.1 first\r\n550 5.1.1 second\r\n\
            354\r\n\
            250 ok\n\
            421 4.7.0 Closing\r\n\
            250 \xff\xfe\r\n";
        assert_eq!(
            read_at_every_split(input).unwrap(),
            vec![
                reply(220, None, &["mx.example ESMTP"]),
                reply(250, None, &["mx.example hello", "SIZE 1000000", "8BITMIME"]),
                reply(250, Some(Enhanced(2, 1, 0)), &["Ok"]),
                reply(550, Some(Enhanced(5, 1, 1)), &["first", "second"]),
                reply(354, None, &[""]),
                reply(250, None, &["ok"]),
                reply(421, Some(Enhanced(4, 7, 0)), &["Closing"]),
                reply(250, None, &["\u{fffd}\u{fffd}"]),
            ]
        );
    }

    #[test]
    fn enhanced_codes_must_match_the_class_and_start_the_text() {
        for (input, enhanced, lines) in [
            (
                &b"550 4.1.1 wrong class\r\n"[..],
                None,
                &["4.1.1 wrong class"][..],
            ),
            (b"550 5.1 too short\r\n", None, &["5.1 too short"]),
            (b"550 5.1.1.1 too long\r\n", None, &["5.1.1.1 too long"]),
            (b"550 5.1.1\r\n", Some(Enhanced(5, 1, 1)), &[""]),
            (
                b"550-5.1.1 a\r\n550-other\r\n550 5.1.1 b\r\n",
                Some(Enhanced(5, 1, 1)),
                &["a", "other", "b"],
            ),
            (
                b"250 2.0.0 Ok: queued as 7\r\n",
                Some(Enhanced(2, 0, 0)),
                &["Ok: queued as 7"],
            ),
        ] {
            let got = read_at_every_split(input).unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].enhanced, enhanced, "{input:?}");
            assert_eq!(got[0].lines, lines, "{input:?}");
        }
    }

    #[test]
    fn bytes_that_can_never_be_a_reply_are_errors() {
        use ReplyErrorKind::*;
        for (input, kind) in [
            (&b"hello\r\n"[..], NotAReply),
            (b"SSH-2.0-OpenSSH_9.6\r\n", NotAReply),
            (b"\x16\x03\x01", NotAReply),
            (b"HTTP/1.1 400", NotAReply),
            (b"\r\n", NotAReply),
            (b"25\r\n", NotAReply),
            (b"2x0 no\r\n", NotAReply),
            (b"099 no\r\n", CodeOutOfRange),
            (b"999 bad code\r\n", CodeOutOfRange),
            (b"250_x\r\n", Malformed),
            (b"2500 x\r\n", Malformed),
            (b"220-a\r\n250 b\r\n", CodeChanged),
            (b"250 ok\r\n250-a\r\n451 b\r\n", CodeChanged),
        ] {
            assert_eq!(
                error_kind(input),
                Some(kind),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn an_error_says_where_the_offending_line_starts() {
        let mut reader = ReplyReader::new();
        reader.push(b"250 ok\r\n250-a\r\n451 b\r\n");
        assert!(reader.next_reply().unwrap().is_some());
        let error = reader.next_reply().unwrap_err();
        assert_eq!(error.kind, ReplyErrorKind::CodeChanged);
        assert_eq!(&reader.buffered()[error.at..], b"451 b\r\n");
        assert_eq!(
            error.to_string(),
            "the server changed the reply code inside a multi-line reply"
        );
        // Asking again gives the same answer.
        assert_eq!(reader.next_reply(), Err(error));
    }

    #[test]
    fn line_and_reply_length_limits() {
        let line = |len: usize| {
            let mut l = b"250 ".to_vec();
            l.resize(len - 2, b'x');
            l.extend_from_slice(b"\r\n");
            l
        };
        let text = |replies: Vec<Reply>| replies[0].lines[0].len();
        let at_limit = read_at_every_split(&line(MAX_REPLY_LINE)).unwrap();
        assert_eq!(text(at_limit), MAX_REPLY_LINE - 6);
        // Longer lines are cut, and their code still counts: a 250 after
        // the end of data must not become an error.
        for len in [MAX_REPLY_LINE + 1, MAX_REPLY_LINE + 2, 3 * MAX_REPLY_LINE] {
            let mut input = line(len);
            input.extend_from_slice(b"354 next\r\n");
            let replies = read_at_every_split(&input).unwrap();
            assert_eq!(replies[0].code, 250);
            assert_eq!(text(replies.clone()), MAX_REPLY_LINE - 6, "{len}");
            assert_eq!(replies[1].lines, ["next"]);
        }
        // The reader holds no more than a line, however long it runs.
        let mut reader = ReplyReader::new();
        reader.push(b"250 ");
        for _ in 0..100 {
            reader.push(&[b'x'; MAX_REPLY_LINE]);
        }
        assert_eq!(reader.buffered().len(), MAX_REPLY_LINE);
        reader.push(b"xx\r\n220 next\r\n");
        assert_eq!(
            text(vec![reader.next_reply().unwrap().unwrap()]),
            MAX_REPLY_LINE - 6
        );
        assert_eq!(reader.next_reply().unwrap().unwrap().code, 220);

        let mut most = b"250-x\r\n".repeat(MAX_REPLY_LINES - 1);
        most.extend_from_slice(b"250 x\r\n");
        assert_eq!(read_all(&[&most]).unwrap()[0].lines.len(), MAX_REPLY_LINES);
        let too_many = b"250-x\r\n".repeat(MAX_REPLY_LINES);
        assert_eq!(
            read_at_every_split(&too_many).unwrap_err().kind,
            ReplyErrorKind::TooManyLines
        );
    }

    #[test]
    fn partial_input_is_not_an_error() {
        for input in [
            &b""[..],
            b"2",
            b"25",
            b"250",
            b"250-",
            b"250-mx\r\n",
            b"250 ok\r",
        ] {
            assert_eq!(Reply::parse(input), Ok(ReplyStatus::Partial), "{input:?}");
        }
    }

    #[test]
    fn the_reader_keeps_what_follows_a_reply_until_cleared() {
        let mut reader = ReplyReader::new();
        reader.push(b"220 go ahead\r\n250-evil\r\n");
        assert_eq!(reader.next_reply().unwrap().unwrap().code, 220);
        assert_eq!(reader.buffered(), b"250-evil\r\n");
        assert_eq!(reader.next_reply(), Ok(None));
        reader.clear();
        assert_eq!(reader.buffered(), b"");
        reader.push(b"250 clean\r\n");
        assert_eq!(
            reader.next_reply().unwrap().unwrap().lines,
            vec![Cow::Borrowed("clean")]
        );
    }

    #[test]
    fn what_is_rendered_parses_back() {
        for sent in [
            Reply::new(250, (2, 1, 0), "Sender OK"),
            Reply::new(421, (4, 4, 2), "Timeout").and_close(),
            Reply::new(550, (5, 7, 1), "a\r\n250 ok"),
            Reply::plain(
                250,
                vec!["mx.example".into(), "PIPELINING".into(), "SIZE 10".into()],
            ),
        ] {
            let mut wire = Vec::new();
            sent.render(&mut wire);
            let Ok(ReplyStatus::Complete { reply, consumed }) = Reply::parse(&wire) else {
                panic!("{wire:?} does not parse");
            };
            assert_eq!(consumed, wire.len());
            let neutralised: Vec<String> = sent
                .lines
                .iter()
                .map(|l| l.replace(['\r', '\n'], " "))
                .collect();
            assert_eq!(
                (reply.code, reply.enhanced, reply.close),
                (sent.code, sent.enhanced, sent.close)
            );
            assert_eq!(reply.lines, neutralised);
        }
    }

    #[test]
    fn displays_on_one_line() {
        for (r, text) in [
            (
                Reply::new(250, (2, 0, 0), "Ok: queued"),
                "250 2.0.0 Ok: queued",
            ),
            (
                Reply::plain(220, vec!["mx.example ESMTP".into()]),
                "220 mx.example ESMTP",
            ),
            (
                reply(550, Some(Enhanced(5, 1, 1)), &["first ", " second"]),
                "550 5.1.1 first second",
            ),
            (
                Reply::new(550, (5, 1, 1), "a\r\n250 ok"),
                "550 5.1.1 a  250 ok",
            ),
            (Reply::plain(354, Vec::new()), "354 "),
        ] {
            assert_eq!(r.to_string(), text);
        }
    }
}
