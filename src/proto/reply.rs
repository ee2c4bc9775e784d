//! SMTP replies: a code, an enhanced status code (RFC 3463), text lines and
//! an explicit flag saying the server closes the connection after sending it.

use std::borrow::Cow;

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
}
