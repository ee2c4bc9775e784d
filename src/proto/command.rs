//! SMTP commands parsed from one line into a borrowed enum, with their ESMTP
//! parameters (RFC 5321 §4.1, RFC 1870, 6152, 6531, 3461, 4954, 3030).
//!
//! CONTRACT (implementation pending). Verbs are case-insensitive. The
//! command line is 8-bit: it is `&[u8]`; a line that is not UTF-8 is
//! `Command::Invalid`. Outlook's `MAIL FROM: <x>` (space after the colon)
//! parses like `MAIL FROM:<x>`.

use super::address::Path;

/// `BODY=` of MAIL (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
    /// `BODY=BINARYMIME` (only with BDAT)
    BinaryMime,
}

/// `RET=` of MAIL (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// Return the whole message in a failure report.
    Full,
    /// Return the headers only.
    Hdrs,
}

/// The parameters of MAIL FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams<'a> {
    /// `SIZE=n` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` as written (xtext, RFC 3461 §4.4).
    pub envid: Option<&'a str>,
    /// `AUTH=` (RFC 4954 §5), as written.
    pub auth: Option<&'a str>,
}

/// `NOTIFY=` of RCPT (RFC 3461 §4.1) as bit flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    /// `NEVER` was given.
    pub never: bool,
    /// `SUCCESS` was given.
    pub success: bool,
    /// `FAILURE` was given.
    pub failure: bool,
    /// `DELAY` was given.
    pub delay: bool,
}

/// The parameters of RCPT TO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams<'a> {
    /// `NOTIFY=`; `None` when absent.
    pub notify: Option<Notify>,
    /// `ORCPT=` as written (`rfc822;xtext`).
    pub orcpt: Option<&'a str>,
}

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `EHLO name`
    Ehlo(&'a str),
    /// `HELO name`
    Helo(&'a str),
    /// `MAIL FROM:<path> params`
    Mail {
        from: Path<'a>,
        params: MailParams<'a>,
    },
    /// `RCPT TO:<path> params`
    Rcpt {
        to: Path<'a>,
        params: RcptParams<'a>,
    },
    /// `DATA`
    Data,
    /// `BDAT size [LAST]` (RFC 3030)
    Bdat { size: u64, last: bool },
    /// `RSET`
    Rset,
    /// `NOOP [text]`
    Noop,
    /// `QUIT`
    Quit,
    /// `VRFY string`
    Vrfy,
    /// `EXPN string`
    Expn,
    /// `HELP [topic]`
    Help,
    /// `STARTTLS`
    StartTls,
    /// `AUTH mechanism [initial-response]`; the initial response is the raw
    /// base64 text (may be `=` for empty).
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
    /// A known verb with bad arguments; the text explains what is wrong and
    /// is suitable for a 501 reply.
    Invalid(&'static str),
    /// A verb we do not know (500 5.5.1), or a line that is not UTF-8.
    Unknown,
}

/// Parses one command line (without its CRLF). `utf8_paths` allows UTF-8
/// addresses (SMTPUTF8 was advertised; the MAIL parameter is still checked
/// by the session).
pub fn parse(line: &[u8]) -> Command<'_> {
    let _ = line;
    todo!()
}
