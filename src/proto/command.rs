//! SMTP commands parsed from one line into a borrowed enum, with their ESMTP
//! parameters (RFC 5321 §4.1, RFC 1870, 6152, 6531, 3461, 4954, 3030).
//!
//! Verbs are case-insensitive. The command line is 8-bit: it is `&[u8]`. An
//! unknown verb is `Command::Unknown` whatever its bytes; a known verb whose
//! line is not UTF-8 is an [`ErrorKind::NotUtf8`] error (except NOOP, HELP,
//! VRFY and EXPN, whose arguments are ignored). Errors are small `Copy`
//! values, a verb and a kind ([`CommandError`]); the wording of the reply
//! is the session's. Paths are parsed with UTF-8 allowed; the
//! session checks them against the SMTPUTF8 parameter (`Path::is_ascii`).
//! Outlook's `MAIL FROM: <x>` (space after the colon) parses like
//! `MAIL FROM:<x>`, and so does `MAIL FROM: x` without angle brackets (old
//! devices and scripts; Postfix takes it too); trailing spaces are ignored.
//! The values of BODY, RET, NOTIFY, ORCPT and ENVID are read by
//! [`super::esmtp`], which the client and the spool share.

use super::address::{self, AddressError, Path};
use super::esmtp::{self, Body, Notify, Orcpt, Ret};
use super::line::MAX_COMMAND_LINE;

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

/// The parameters of RCPT TO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=`; `None` when absent.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<Orcpt>,
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
        /// The reverse-path.
        from: Path<'a>,
        /// The ESMTP parameters after the path.
        params: MailParams<'a>,
    },
    /// `RCPT TO:<path> params`
    Rcpt {
        /// The forward-path.
        to: Path<'a>,
        /// The ESMTP parameters after the path.
        params: RcptParams,
    },
    /// `DATA`
    Data,
    /// `BDAT size [LAST]` (RFC 3030)
    Bdat {
        /// Octets of message data that follow the command.
        size: u64,
        /// Whether `LAST` was given: this chunk ends the message.
        last: bool,
    },
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
        /// The SASL mechanism name, as the client wrote it.
        mechanism: &'a str,
        /// The initial response, if the client sent one.
        initial: Option<&'a str>,
    },
    /// A verb we do not know (500 5.5.1), whatever the bytes of its line.
    Unknown,
}

impl Command<'_> {
    /// The verb of the command; `None` for [`Command::Unknown`].
    pub fn verb(&self) -> Option<Verb> {
        Some(match self {
            Command::Ehlo(_) => Verb::Ehlo,
            Command::Helo(_) => Verb::Helo,
            Command::Mail { .. } => Verb::Mail,
            Command::Rcpt { .. } => Verb::Rcpt,
            Command::Data => Verb::Data,
            Command::Bdat { .. } => Verb::Bdat,
            Command::Rset => Verb::Rset,
            Command::Noop => Verb::Noop,
            Command::Quit => Verb::Quit,
            Command::Vrfy => Verb::Vrfy,
            Command::Expn => Verb::Expn,
            Command::Help => Verb::Help,
            Command::StartTls => Verb::StartTls,
            Command::Auth { .. } => Verb::Auth,
            Command::Unknown => return None,
        })
    }
}

/// The verbs this parser knows, each with the section that defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// RFC 5321 §4.1.1.1, extended hello.
    Ehlo,
    /// RFC 5321 §4.1.1.1, hello.
    Helo,
    /// RFC 5321 §4.1.1.2, mail.
    Mail,
    /// RFC 5321 §4.1.1.3, recipient.
    Rcpt,
    /// RFC 5321 §4.1.1.4, data.
    Data,
    /// RFC 3030 §2, binary data chunk.
    Bdat,
    /// RFC 5321 §4.1.1.5, reset.
    Rset,
    /// RFC 5321 §4.1.1.9, no operation.
    Noop,
    /// RFC 5321 §4.1.1.10, quit.
    Quit,
    /// RFC 5321 §4.1.1.6, verify.
    Vrfy,
    /// RFC 5321 §4.1.1.7, expand.
    Expn,
    /// RFC 5321 §4.1.1.8, help.
    Help,
    /// RFC 3207 §4, start TLS.
    StartTls,
    /// RFC 4954 §4, authenticate.
    Auth,
}

/// A command line with a known verb that cannot be accepted as written.
/// The session turns it into a reply; the parser holds no reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandError {
    /// The verb of the line.
    pub verb: Verb,
    /// What is wrong with its arguments.
    pub kind: ErrorKind,
}

/// What is wrong with a command line's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The arguments are not ASCII or UTF-8 text.
    NotUtf8,
    /// The arguments do not follow the verb's syntax.
    Syntax,
    /// The path is not a valid address, or `<>` / `<Postmaster>` where that
    /// is not allowed.
    BadAddress,
    /// The address exceeds RFC 5321 §4.5.3.1's lengths.
    AddressTooLong,
    /// A parameter is not `KEYWORD` or `KEYWORD=VALUE` (RFC 5321 §4.1.2).
    ParameterSyntax,
    /// A known parameter with a value it cannot take.
    BadValue(Param),
    /// A known parameter given more than once.
    Duplicate(Param),
    /// A parameter this server does not know for the verb.
    UnknownParameter,
    /// A parameter of an extension this server knows of but does not offer.
    Unsupported(Extension),
    /// A number too large for 64 bits (the BDAT chunk size).
    TooLarge,
}

/// The ESMTP parameters this server takes on MAIL and RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `SIZE=` (RFC 1870)
    Size,
    /// `BODY=` (RFC 6152, RFC 3030)
    Body,
    /// `SMTPUTF8` (RFC 6531)
    SmtpUtf8,
    /// `RET=` (RFC 3461)
    Ret,
    /// `ENVID=` (RFC 3461)
    Envid,
    /// `AUTH=` (RFC 4954)
    Auth,
    /// `NOTIFY=` (RFC 3461)
    Notify,
    /// `ORCPT=` (RFC 3461)
    Orcpt,
}

impl Param {
    /// The keyword as the RFCs write it, e.g. `SIZE`.
    pub fn keyword(self) -> &'static str {
        match self {
            Param::Size => "SIZE",
            Param::Body => "BODY",
            Param::SmtpUtf8 => "SMTPUTF8",
            Param::Ret => "RET",
            Param::Envid => "ENVID",
            Param::Auth => "AUTH",
            Param::Notify => "NOTIFY",
            Param::Orcpt => "ORCPT",
        }
    }
}

/// Extensions whose parameters clients send but this server does not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `REQUIRETLS` (RFC 8689)
    RequireTls,
    /// `MT-PRIORITY=` (RFC 6710)
    MtPriority,
    /// `BY=` deliver-by (RFC 2852)
    DeliverBy,
}

/// RFC 4954 §4: AUTH command lines and SASL responses may be up to 12288
/// octets, longer than the 512 of other commands (large PLAIN responses).
pub const MAX_AUTH_LINE: usize = 12288;

/// The longest command line allowed for `line`'s verb, CRLF included:
/// [`MAX_AUTH_LINE`] for AUTH, else [`MAX_COMMAND_LINE`].
pub fn line_limit(line: &[u8]) -> usize {
    let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
    match Verb::from_bytes(verb) {
        Some(Verb::Auth) => MAX_AUTH_LINE,
        _ => MAX_COMMAND_LINE,
    }
}

/// Parses one command line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = trim_end(line);
    let (verb, args) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], Some(&line[space + 1..])),
        None => (line, None),
    };
    let Some(verb) = Verb::from_bytes(verb) else {
        return Ok(Command::Unknown);
    };
    arguments(verb, args).map_err(|kind| CommandError { verb, kind })
}

/// The command `verb` makes of its arguments.
fn arguments(verb: Verb, args: Option<&[u8]>) -> Result<Command<'_>, ErrorKind> {
    match (verb, args.map(std::str::from_utf8).transpose()) {
        // Their arguments are ignored, so their bytes do not matter.
        (Verb::Noop, _) => Ok(Command::Noop),
        (Verb::Help, _) => Ok(Command::Help),
        (Verb::Vrfy, _) => Ok(Command::Vrfy),
        (Verb::Expn, _) => Ok(Command::Expn),
        (_, Err(_)) => Err(ErrorKind::NotUtf8),
        (Verb::Ehlo, Ok(args)) => hello(args).map(Command::Ehlo),
        (Verb::Helo, Ok(args)) => hello(args).map(Command::Helo),
        (Verb::Mail, Ok(args)) => mail(args.unwrap_or("")),
        (Verb::Rcpt, Ok(args)) => rcpt(args.unwrap_or("")),
        (Verb::Bdat, Ok(args)) => bdat(args.unwrap_or("")),
        (Verb::Auth, Ok(args)) => auth(args.unwrap_or("")),
        (Verb::Data, Ok(args)) => no_args(args, Command::Data),
        (Verb::Rset, Ok(args)) => no_args(args, Command::Rset),
        (Verb::Quit, Ok(args)) => no_args(args, Command::Quit),
        (Verb::StartTls, Ok(args)) => no_args(args, Command::StartTls),
    }
}

impl Verb {
    /// The command's name as the client sends it.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Ehlo => "EHLO",
            Verb::Helo => "HELO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
        }
    }

    fn from_bytes(verb: &[u8]) -> Option<Verb> {
        // One uppercase copy and one match instead of fourteen
        // case-insensitive comparisons: this runs for every command.
        let mut upper = [0; 8];
        upper.get_mut(..verb.len())?.copy_from_slice(verb);
        upper.make_ascii_uppercase();
        Some(match &upper[..verb.len()] {
            b"EHLO" => Verb::Ehlo,
            b"HELO" => Verb::Helo,
            b"MAIL" => Verb::Mail,
            b"RCPT" => Verb::Rcpt,
            b"DATA" => Verb::Data,
            b"BDAT" => Verb::Bdat,
            b"RSET" => Verb::Rset,
            b"NOOP" => Verb::Noop,
            b"QUIT" => Verb::Quit,
            b"VRFY" => Verb::Vrfy,
            b"EXPN" => Verb::Expn,
            b"HELP" => Verb::Help,
            b"STARTTLS" => Verb::StartTls,
            b"AUTH" => Verb::Auth,
            _ => return None,
        })
    }
}

fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &line[..end]
}

/// The first word of the EHLO/HELO argument; later words are ignored, as
/// some clients add them.
fn hello(args: Option<&str>) -> Result<&str, ErrorKind> {
    args.and_then(|args| args.split(' ').find(|word| !word.is_empty()))
        .ok_or(ErrorKind::Syntax)
}

fn no_args<'a>(args: Option<&str>, command: Command<'a>) -> Result<Command<'a>, ErrorKind> {
    match args {
        Some(args) if !args.trim_start_matches(' ').is_empty() => Err(ErrorKind::Syntax),
        _ => Ok(command),
    }
}

/// Strips `keyword` (e.g. `FROM:`) case-insensitively and the spaces
/// around it (Outlook sends `MAIL FROM: <x>`).
fn after_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let args = args.trim_start_matches(' ');
    let head = args.as_bytes().get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword.as_bytes())
        .then(|| args[keyword.len()..].trim_start_matches(' '))
}

/// The path, and the parameters after it, of MAIL or RCPT.
fn path_and_params<'a>(args: &'a str, keyword: &str) -> Result<(Path<'a>, &'a str), ErrorKind> {
    let rest = after_keyword(args, keyword).ok_or(ErrorKind::Syntax)?;
    if rest.is_empty() {
        return Err(ErrorKind::Syntax);
    }
    let parsed = if rest.starts_with('<') {
        address::parse_path(rest, true)
    } else {
        address::parse_unbracketed_path(rest, true)
    };
    let (path, params) = parsed.map_err(|e| match e {
        AddressError::TooLong => ErrorKind::AddressTooLong,
        AddressError::Syntax | AddressError::NeedsUtf8 => ErrorKind::BadAddress,
    })?;
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(ErrorKind::Syntax);
    }
    Ok((path, params))
}

/// Splits ESMTP parameters `KEY[=VALUE]` (RFC 5321 §4.1.2), space-separated.
fn parameters(params: &str) -> impl Iterator<Item = Result<(&str, Option<&str>), ErrorKind>> {
    params.split(' ').filter(|p| !p.is_empty()).map(|param| {
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (param, None),
        };
        // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 under SMTPUTF8 (RFC 6531 §3.3)
        let value_ok = value.map_or(true, |v| {
            !v.is_empty() && v.bytes().all(|b| matches!(b, 33..=60 | 62..=126 | 0x80..))
        });
        if key_ok && value_ok {
            Ok((key, value))
        } else {
            Err(ErrorKind::ParameterSyntax)
        }
    })
}

/// Stores parameter `param`'s value once; a second one is an error (RFC
/// 5321 §4.1.2 gives no meaning to repeats, and they hint at confused
/// clients).
fn once<T>(slot: &mut Option<T>, value: T, param: Param) -> Result<(), ErrorKind> {
    if slot.is_some() {
        return Err(ErrorKind::Duplicate(param));
    }
    *slot = Some(value);
    Ok(())
}

fn mail(args: &str) -> Result<Command<'_>, ErrorKind> {
    let (from, rest) = path_and_params(args, "FROM:")?;
    if from == Path::Postmaster {
        return Err(ErrorKind::BadAddress);
    }
    let mut params = MailParams::default();
    let mut smtputf8 = None;
    for param in parameters(rest) {
        let (key, value) = param?;
        if key.eq_ignore_ascii_case("SIZE") {
            // RFC 1870: size-value = 1*20DIGIT; too big for u64 is refused.
            let size = value
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(ErrorKind::BadValue(Param::Size))?;
            once(&mut params.size, size, Param::Size)?;
        } else if key.eq_ignore_ascii_case("BODY") {
            let body: Body = parsed(value, Param::Body)?;
            once(&mut params.body, body, Param::Body)?;
        } else if key.eq_ignore_ascii_case("SMTPUTF8") {
            if value.is_some() {
                return Err(ErrorKind::BadValue(Param::SmtpUtf8));
            }
            once(&mut smtputf8, (), Param::SmtpUtf8)?;
            params.smtputf8 = true;
        } else if key.eq_ignore_ascii_case("RET") {
            let ret: Ret = parsed(value, Param::Ret)?;
            once(&mut params.ret, ret, Param::Ret)?;
        } else if key.eq_ignore_ascii_case("ENVID") {
            let envid = value
                .filter(|v| esmtp::is_envid(v))
                .ok_or(ErrorKind::BadValue(Param::Envid))?;
            once(&mut params.envid, envid, Param::Envid)?;
        } else if key.eq_ignore_ascii_case("AUTH") {
            // RFC 4954 §5: AUTH=<> or AUTH=xtext (a mailbox).
            let auth = value
                .filter(|v| *v == "<>" || esmtp::is_xtext(v))
                .ok_or(ErrorKind::BadValue(Param::Auth))?;
            once(&mut params.auth, auth, Param::Auth)?;
        } else {
            return Err(unsupported(key));
        }
    }
    Ok(Command::Mail { from, params })
}

/// The error for a parameter we do not take: well-known extensions are
/// named, anything else is unknown.
fn unsupported(key: &str) -> ErrorKind {
    let known = [
        ("REQUIRETLS", Extension::RequireTls),
        ("MT-PRIORITY", Extension::MtPriority),
        ("BY", Extension::DeliverBy),
    ];
    keyword(Some(key), &known).map_or(ErrorKind::UnknownParameter, ErrorKind::Unsupported)
}

/// The value of parameter `param`, which must be given and valid.
fn parsed<T: std::str::FromStr>(value: Option<&str>, param: Param) -> Result<T, ErrorKind> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or(ErrorKind::BadValue(param))
}

fn rcpt(args: &str) -> Result<Command<'_>, ErrorKind> {
    let (to, rest) = path_and_params(args, "TO:")?;
    if to == Path::Null {
        return Err(ErrorKind::BadAddress);
    }
    let mut params = RcptParams::default();
    for param in parameters(rest) {
        let (key, value) = param?;
        if key.eq_ignore_ascii_case("NOTIFY") {
            let notify: Notify = parsed(value, Param::Notify)?;
            once(&mut params.notify, notify, Param::Notify)?;
        } else if key.eq_ignore_ascii_case("ORCPT") {
            let orcpt: Orcpt = parsed(value, Param::Orcpt)?;
            once(&mut params.orcpt, orcpt, Param::Orcpt)?;
        } else {
            return Err(unsupported(key));
        }
    }
    Ok(Command::Rcpt { to, params })
}

/// The value of the keyword `value` names, in any case; no allocation
/// (this runs for every parameter we do not take).
fn keyword<T: Copy>(value: Option<&str>, table: &[(&str, T)]) -> Option<T> {
    let value = value?;
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, v)| v)
}

fn bdat(args: &str) -> Result<Command<'_>, ErrorKind> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size = match words.next() {
        Some(size) if size.bytes().all(|b| b.is_ascii_digit()) => {
            size.parse::<u64>().map_err(|_| ErrorKind::TooLarge)?
        }
        _ => return Err(ErrorKind::Syntax),
    };
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ErrorKind::Syntax),
    };
    if words.next().is_some() {
        return Err(ErrorKind::Syntax);
    }
    Ok(Command::Bdat { size, last })
}

fn auth(args: &str) -> Result<Command<'_>, ErrorKind> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    // RFC 4422 §3.1: sasl-mech = 1*20 of upper-case letters, digits, - and _
    // (compared case-insensitively).
    let mechanism = words
        .next()
        .filter(|m| {
            m.len() <= 20
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(ErrorKind::Syntax)?;
    let initial = words.next();
    if words.next().is_some() {
        return Err(ErrorKind::Syntax);
    }
    Ok(Command::Auth { mechanism, initial })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::address::{Domain, Mailbox};

    fn mb<'a>(local: &'a str, domain: &'a str) -> Path<'a> {
        Path::Mailbox {
            mailbox: Mailbox {
                local,
                domain: Domain::Name(domain),
            },
            source_route: false,
        }
    }

    type Parsed<'a> = Result<Command<'a>, CommandError>;

    fn mail_from<'a>(from: Path<'a>, params: MailParams<'a>) -> Parsed<'a> {
        Ok(Command::Mail { from, params })
    }

    fn rcpt_to(to: Path<'_>, params: RcptParams) -> Parsed<'_> {
        Ok(Command::Rcpt { to, params })
    }

    fn err(verb: Verb, kind: ErrorKind) -> Parsed<'static> {
        Err(CommandError { verb, kind })
    }

    #[test]
    fn simple_verbs() {
        let cases: &[(&[u8], Parsed)] = &[
            (b"DATA", Ok(Command::Data)),
            (b"data", Ok(Command::Data)),
            (b"DATA ", Ok(Command::Data)),
            (b"RSET", Ok(Command::Rset)),
            (b"QUIT", Ok(Command::Quit)),
            (b"qUiT\t", Ok(Command::Quit)),
            (b"STARTTLS", Ok(Command::StartTls)),
            (b"NOOP", Ok(Command::Noop)),
            (b"NOOP anything \xff", Ok(Command::Noop)),
            (b"HELP", Ok(Command::Help)),
            (b"HELP MAIL", Ok(Command::Help)),
            (b"VRFY postmaster", Ok(Command::Vrfy)),
            (b"EXPN list", Ok(Command::Expn)),
            (b"DATA x", err(Verb::Data, ErrorKind::Syntax)),
            (b"STARTTLS now", err(Verb::StartTls, ErrorKind::Syntax)),
            (b"", Ok(Command::Unknown)),
            (b"FOO", Ok(Command::Unknown)),
            (b"MAILFROM:<a@b>", Ok(Command::Unknown)),
            (b"\xff\xfe", Ok(Command::Unknown)),
            (b"XCLIENT \xff", Ok(Command::Unknown)),
            (b" DATA", Ok(Command::Unknown)),
            // Verbs in any case; longer or shorter words are not verbs.
            (b"StartTls", Ok(Command::StartTls)),
            (b"noop", Ok(Command::Noop)),
            (b"sTaRtTlSs", Ok(Command::Unknown)),
            (b"STARTTLSSTARTTLS", Ok(Command::Unknown)),
            (b"NOO", Ok(Command::Unknown)),
            (b"QUIT\x00", Ok(Command::Unknown)),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn hello() {
        let cases: &[(&[u8], Parsed)] = &[
            (
                b"EHLO mail.example.com",
                Ok(Command::Ehlo("mail.example.com")),
            ),
            (
                b"ehlo DESKTOP-UPCFNQM",
                Ok(Command::Ehlo("DESKTOP-UPCFNQM")),
            ),
            (b"EHLO [127.0.0.1]", Ok(Command::Ehlo("[127.0.0.1]"))),
            (b"EHLO  spaced   extra", Ok(Command::Ehlo("spaced"))),
            (b"HELO host", Ok(Command::Helo("host"))),
            (b"EHLO", err(Verb::Ehlo, ErrorKind::Syntax)),
            (b"EHLO   ", err(Verb::Ehlo, ErrorKind::Syntax)),
            (b"HELO", err(Verb::Helo, ErrorKind::Syntax)),
            (b"EHLO h\xffst", err(Verb::Ehlo, ErrorKind::NotUtf8)),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn mail_and_rcpt() {
        let size = |n| MailParams {
            size: Some(n),
            ..MailParams::default()
        };
        let cases: &[(&[u8], Parsed)] = &[
            (
                b"MAIL FROM:<a@b>",
                mail_from(mb("a", "b"), MailParams::default()),
            ),
            (
                b"mail from:<a@b>",
                mail_from(mb("a", "b"), MailParams::default()),
            ),
            // Outlook 365: a space after the colon.
            (
                b"MAIL FROM: <a@b>",
                mail_from(mb("a", "b"), MailParams::default()),
            ),
            (
                b"RCPT TO: <a@b>",
                rcpt_to(mb("a", "b"), RcptParams::default()),
            ),
            (
                b"MAIL FROM:<>",
                mail_from(Path::Null, MailParams::default()),
            ),
            (
                b"MAIL FROM:<a@b> SIZE=1000",
                mail_from(mb("a", "b"), size(1000)),
            ),
            (
                b"MAIL FROM:<a@b>  size=1000  ",
                mail_from(mb("a", "b"), size(1000)),
            ),
            (
                b"RCPT TO:<Postmaster>",
                rcpt_to(Path::Postmaster, RcptParams::default()),
            ),
            // cron's bare `root`; the session decides what it means.
            (
                b"MAIL FROM:<root>",
                mail_from(Path::LocalPart("root"), MailParams::default()),
            ),
            (
                b"RCPT TO:<root>",
                rcpt_to(Path::LocalPart("root"), RcptParams::default()),
            ),
            (
                b"RCPT TO:<j\xc3\xb6rg@b>",
                rcpt_to(mb("j\u{f6}rg", "b"), RcptParams::default()),
            ),
            // Without angle brackets, as Postfix takes them.
            (
                b"MAIL FROM:a@b",
                mail_from(mb("a", "b"), MailParams::default()),
            ),
            (b"MAIL FROM: a@b SIZE=10", mail_from(mb("a", "b"), size(10))),
            (
                b"RCPT TO: a@b NOTIFY=NEVER",
                rcpt_to(
                    mb("a", "b"),
                    RcptParams {
                        notify: Some(Notify::NEVER),
                        orcpt: None,
                    },
                ),
            ),
            (
                b"RCPT TO: postmaster",
                rcpt_to(Path::Postmaster, RcptParams::default()),
            ),
            (b"MAIL FROM: ", err(Verb::Mail, ErrorKind::Syntax)),
            (b"MAIL FROM: a", err(Verb::Mail, ErrorKind::BadAddress)),
            (b"MAIL FROM: a@b>", err(Verb::Mail, ErrorKind::BadAddress)),
            (
                b"MAIL FROM: a@b\tSIZE=1",
                err(Verb::Mail, ErrorKind::BadAddress),
            ),
            (
                b"MAIL FROM: postmaster",
                err(Verb::Mail, ErrorKind::BadAddress),
            ),
            (b"RCPT TO: a b@c", err(Verb::Rcpt, ErrorKind::BadAddress)),
            (b"MAIL FROM", err(Verb::Mail, ErrorKind::Syntax)),
            (b"MAIL", err(Verb::Mail, ErrorKind::Syntax)),
            (b"MAIL TO:<a@b>", err(Verb::Mail, ErrorKind::Syntax)),
            (b"MAIL FROM:<a@b>SIZE=1", err(Verb::Mail, ErrorKind::Syntax)),
            (b"RCPT FROM:<a@b>", err(Verb::Rcpt, ErrorKind::Syntax)),
            (b"MAIL FROM:<a@b.>", err(Verb::Mail, ErrorKind::BadAddress)),
            (
                b"MAIL FROM:<Postmaster>",
                err(Verb::Mail, ErrorKind::BadAddress),
            ),
            (b"RCPT TO:<>", err(Verb::Rcpt, ErrorKind::BadAddress)),
            (b"RCPT TO:<a@@b>", err(Verb::Rcpt, ErrorKind::BadAddress)),
            (b"MAIL FROM:<a@b\xff>", err(Verb::Mail, ErrorKind::NotUtf8)),
            (b"RCPT TO:<\xe4@b>", err(Verb::Rcpt, ErrorKind::NotUtf8)),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
        let long = format!("MAIL FROM:<{}@b>", "x".repeat(65));
        assert_eq!(
            parse(long.as_bytes()),
            err(Verb::Mail, ErrorKind::AddressTooLong)
        );
    }

    #[test]
    fn relay_tricks_parse() {
        for line in [
            &b"RCPT TO:<user%other@ours>"[..],
            b"RCPT TO:<@relay:user@other>",
            b"RCPT TO:<\"user@other\"@ours>",
            b"RCPT TO:<user!other@ours>",
        ] {
            match parse(line) {
                Ok(Command::Rcpt {
                    to:
                        Path::Mailbox {
                            mailbox,
                            source_route,
                        },
                    ..
                }) => {
                    assert!(mailbox.has_relay_trick() || source_route, "{line:?}");
                }
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn mail_parameters() {
        let all = b"MAIL FROM:<a@b> SIZE=12 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<>";
        assert_eq!(
            parse(all),
            mail_from(
                mb("a", "b"),
                MailParams {
                    size: Some(12),
                    body: Some(Body::EightBitMime),
                    smtputf8: true,
                    ret: Some(Ret::Hdrs),
                    envid: Some("QQ+2B1"),
                    auth: Some("<>"),
                }
            )
        );
        let cases: &[(&str, Result<MailParams, ErrorKind>)] = &[
            (
                "BODY=7BIT",
                Ok(MailParams {
                    body: Some(Body::SevenBit),
                    ..Default::default()
                }),
            ),
            (
                "BODY=BINARYMIME",
                Ok(MailParams {
                    body: Some(Body::BinaryMime),
                    ..Default::default()
                }),
            ),
            (
                "ret=full",
                Ok(MailParams {
                    ret: Some(Ret::Full),
                    ..Default::default()
                }),
            ),
            (
                "AUTH=user+40example.com",
                Ok(MailParams {
                    auth: Some("user+40example.com"),
                    ..Default::default()
                }),
            ),
            (
                "SIZE=18446744073709551615",
                Ok(MailParams {
                    size: Some(u64::MAX),
                    ..Default::default()
                }),
            ),
            (
                "SIZE=18446744073709551616",
                Err(ErrorKind::BadValue(Param::Size)),
            ),
            ("SIZE=-1", Err(ErrorKind::BadValue(Param::Size))),
            ("SIZE=+1", Err(ErrorKind::BadValue(Param::Size))),
            ("SIZE", Err(ErrorKind::BadValue(Param::Size))),
            ("SIZE=", Err(ErrorKind::ParameterSyntax)),
            ("SIZE=1 SIZE=2", Err(ErrorKind::Duplicate(Param::Size))),
            (
                "SMTPUTF8 smtputf8",
                Err(ErrorKind::Duplicate(Param::SmtpUtf8)),
            ),
            ("SMTPUTF8=yes", Err(ErrorKind::BadValue(Param::SmtpUtf8))),
            ("BODY=8BIT", Err(ErrorKind::BadValue(Param::Body))),
            ("RET=ALL", Err(ErrorKind::BadValue(Param::Ret))),
            ("ENVID=a+2b", Err(ErrorKind::BadValue(Param::Envid))),
            ("ENVID=a=b", Err(ErrorKind::ParameterSyntax)),
            ("AUTH=a+", Err(ErrorKind::BadValue(Param::Auth))),
            ("=1", Err(ErrorKind::ParameterSyntax)),
            ("-X=1", Err(ErrorKind::ParameterSyntax)),
            ("XFOO=1", Err(ErrorKind::UnknownParameter)),
            ("NOTIFY=NEVER", Err(ErrorKind::UnknownParameter)),
            (
                "REQUIRETLS",
                Err(ErrorKind::Unsupported(Extension::RequireTls)),
            ),
            (
                "MT-PRIORITY=3",
                Err(ErrorKind::Unsupported(Extension::MtPriority)),
            ),
            (
                "BY=120;R",
                Err(ErrorKind::Unsupported(Extension::DeliverBy)),
            ),
        ];
        for (params, expected) in cases {
            let line = format!("MAIL FROM:<a@b> {params}");
            let expected = match expected {
                Ok(p) => mail_from(mb("a", "b"), p.clone()),
                Err(kind) => err(Verb::Mail, *kind),
            };
            assert_eq!(parse(line.as_bytes()), expected, "{line}");
        }
        let envid = format!("MAIL FROM:<> ENVID={}", "e".repeat(101));
        assert_eq!(
            parse(envid.as_bytes()),
            err(Verb::Mail, ErrorKind::BadValue(Param::Envid))
        );
    }

    #[test]
    fn rcpt_parameters() {
        let notify = |success, failure, delay| RcptParams {
            notify: Some(Notify {
                success,
                failure,
                delay,
            }),
            orcpt: None,
        };
        let orcpt = |value: &str| RcptParams {
            notify: None,
            orcpt: Some(value.parse().unwrap()),
        };
        let cases: &[(&str, Result<RcptParams, ErrorKind>)] = &[
            ("NOTIFY=NEVER", Ok(notify(false, false, false))),
            ("notify=success,failure", Ok(notify(true, true, false))),
            ("NOTIFY=DELAY,FAILURE,SUCCESS", Ok(notify(true, true, true))),
            (
                "NOTIFY=NEVER,SUCCESS",
                Err(ErrorKind::BadValue(Param::Notify)),
            ),
            (
                "NOTIFY=SUCCESS,,DELAY",
                Err(ErrorKind::BadValue(Param::Notify)),
            ),
            (
                "NOTIFY=SUCCESS,SUCCESS",
                Err(ErrorKind::BadValue(Param::Notify)),
            ),
            ("NOTIFY=ALWAYS", Err(ErrorKind::BadValue(Param::Notify))),
            ("NOTIFY", Err(ErrorKind::BadValue(Param::Notify))),
            (
                "NOTIFY=NEVER NOTIFY=NEVER",
                Err(ErrorKind::Duplicate(Param::Notify)),
            ),
            ("ORCPT=rfc822;a+40b", Ok(orcpt("rfc822;a+40b"))),
            ("ORCPT=utf-8;j\u{f6}rg@b", Ok(orcpt("utf-8;j\u{f6}rg@b"))),
            ("ORCPT=rfc822", Err(ErrorKind::BadValue(Param::Orcpt))),
            ("ORCPT=;a", Err(ErrorKind::BadValue(Param::Orcpt))),
            ("ORCPT=rfc822;", Err(ErrorKind::BadValue(Param::Orcpt))),
            ("ORCPT=rfc822;a+4", Err(ErrorKind::BadValue(Param::Orcpt))),
            ("SIZE=10", Err(ErrorKind::UnknownParameter)),
        ];
        for (params, expected) in cases {
            let line = format!("RCPT TO:<a@b> {params}");
            let expected = match expected {
                Ok(p) => rcpt_to(mb("a", "b"), p.clone()),
                Err(kind) => err(Verb::Rcpt, *kind),
            };
            assert_eq!(parse(line.as_bytes()), expected, "{line}");
        }
    }

    /// RFC 4954 §4: only AUTH lines may be longer than 512 octets.
    #[test]
    fn line_limits() {
        let cases: &[(&[u8], usize)] = &[
            (b"AUTH PLAIN AGEAYg==", MAX_AUTH_LINE),
            (b"auth plain", MAX_AUTH_LINE),
            (b"AUTH     ", MAX_AUTH_LINE),
            (b"AUTH\tPLAIN", MAX_COMMAND_LINE),
            (b"AUTHX PLAIN", MAX_COMMAND_LINE),
            (b"NOOP AUTH", MAX_COMMAND_LINE),
            (b"", MAX_COMMAND_LINE),
        ];
        for (line, limit) in cases {
            assert_eq!(
                line_limit(line),
                *limit,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// A command and an error name the verb of their line.
    #[test]
    fn verbs() {
        let cases: &[(&[u8], Option<Verb>)] = &[
            (b"EHLO x", Some(Verb::Ehlo)),
            (b"helo x", Some(Verb::Helo)),
            (b"MAIL FROM:<>", Some(Verb::Mail)),
            (b"RCPT TO:<a@b>", Some(Verb::Rcpt)),
            (b"DATA", Some(Verb::Data)),
            (b"BDAT 1", Some(Verb::Bdat)),
            (b"RSET", Some(Verb::Rset)),
            (b"NOOP", Some(Verb::Noop)),
            (b"QUIT", Some(Verb::Quit)),
            (b"VRFY x", Some(Verb::Vrfy)),
            (b"EXPN x", Some(Verb::Expn)),
            (b"HELP", Some(Verb::Help)),
            (b"STARTTLS", Some(Verb::StartTls)),
            (b"AUTH PLAIN", Some(Verb::Auth)),
            (b"XYZZY", None),
        ];
        for (line, verb) in cases {
            assert_eq!(parse(line).ok().and_then(|c| c.verb()), *verb);
            let mut bad = line.to_vec();
            bad.extend_from_slice(b" \xff x");
            if let Err(error) = parse(&bad) {
                assert_eq!(Some(error.verb), *verb);
            }
        }
    }

    #[test]
    fn bdat_and_auth() {
        let cases: &[(&[u8], Parsed)] = &[
            (
                b"BDAT 0 LAST",
                Ok(Command::Bdat {
                    size: 0,
                    last: true,
                }),
            ),
            (
                b"bdat 1000",
                Ok(Command::Bdat {
                    size: 1000,
                    last: false,
                }),
            ),
            (
                b"BDAT 12 last",
                Ok(Command::Bdat {
                    size: 12,
                    last: true,
                }),
            ),
            (b"BDAT", err(Verb::Bdat, ErrorKind::Syntax)),
            (b"BDAT x", err(Verb::Bdat, ErrorKind::Syntax)),
            (b"BDAT -1", err(Verb::Bdat, ErrorKind::Syntax)),
            (b"BDAT 1 FIRST", err(Verb::Bdat, ErrorKind::Syntax)),
            (b"BDAT 1 LAST x", err(Verb::Bdat, ErrorKind::Syntax)),
            (
                b"BDAT 99999999999999999999",
                err(Verb::Bdat, ErrorKind::TooLarge),
            ),
            (
                b"AUTH PLAIN",
                Ok(Command::Auth {
                    mechanism: "PLAIN",
                    initial: None,
                }),
            ),
            (
                b"auth login dXNlcg==",
                Ok(Command::Auth {
                    mechanism: "login",
                    initial: Some("dXNlcg=="),
                }),
            ),
            // Some Microsoft clients put two spaces before the response.
            (
                b"AUTH PLAIN  AGEAYg==",
                Ok(Command::Auth {
                    mechanism: "PLAIN",
                    initial: Some("AGEAYg=="),
                }),
            ),
            (
                b"AUTH PLAIN =",
                Ok(Command::Auth {
                    mechanism: "PLAIN",
                    initial: Some("="),
                }),
            ),
            (b"AUTH", err(Verb::Auth, ErrorKind::Syntax)),
            (b"AUTH PLAIN a b", err(Verb::Auth, ErrorKind::Syntax)),
            (b"AUTH PL@IN", err(Verb::Auth, ErrorKind::Syntax)),
            (b"AUTH PLAIN \xff", err(Verb::Auth, ErrorKind::NotUtf8)),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
