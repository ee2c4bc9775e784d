//! SMTP commands parsed from one line into a borrowed enum, with their ESMTP
//! parameters (RFC 5321 §4.1, RFC 1870, 6152, 6531, 3461, 4954, 3030).
//!
//! Verbs are case-insensitive. The command line is 8-bit: it is `&[u8]`. An
//! unknown verb is `Command::Unknown` whatever its bytes; a known verb whose
//! line is not UTF-8 is `Command::Invalid` (except NOOP, HELP, VRFY and EXPN,
//! whose arguments are ignored). Paths are parsed with UTF-8 allowed; the
//! session checks them against the SMTPUTF8 parameter (`Path::is_ascii`).
//! Outlook's `MAIL FROM: <x>` (space after the colon) parses like
//! `MAIL FROM:<x>`; trailing spaces are ignored.

use super::address::{self, AddressError, Path};

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
        params: RcptParams<'a>,
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
    /// A known verb with bad arguments; the text explains what is wrong and
    /// is suitable for a 501 reply (555 when [`is_unsupported_parameter`],
    /// 501 5.1.7 / 5.1.3 when [`is_bad_address`]).
    Invalid(&'static str),
    /// A verb we do not know (500 5.5.1), or a line that is not UTF-8.
    Unknown,
}

const MAIL_SYNTAX: &str = "Syntax: MAIL FROM:<address> [parameters]";
const RCPT_SYNTAX: &str = "Syntax: RCPT TO:<address> [parameters]";
const MAIL_ADDRESS: &str =
    "The sender address is not a valid address: use MAIL FROM:<user@example.com>";
const RCPT_ADDRESS: &str =
    "The recipient address is not a valid address: use RCPT TO:<user@example.com>";
const ADDRESS_TOO_LONG: &str =
    "The address is too long (at most 64 octets before the @ and 255 after it)";
const MAIL_UNKNOWN_PARAMETER: &str =
    "MAIL FROM parameter not supported: this server knows SIZE, BODY, SMTPUTF8, RET, ENVID and AUTH";
const RCPT_UNKNOWN_PARAMETER: &str =
    "RCPT TO parameter not supported: this server knows NOTIFY and ORCPT";
const REQUIRETLS_UNSUPPORTED: &str = "REQUIRETLS is not supported by this server";
const MT_PRIORITY_UNSUPPORTED: &str = "MT-PRIORITY is not supported by this server";
const BY_UNSUPPORTED: &str = "BY (deliver-by) is not supported by this server";

/// The `Invalid` texts that mean "parameter not supported" (RFC 5321
/// §4.1.1.11: answered with 555 5.5.4).
const UNSUPPORTED: [&str; 5] = [
    MAIL_UNKNOWN_PARAMETER,
    RCPT_UNKNOWN_PARAMETER,
    REQUIRETLS_UNSUPPORTED,
    MT_PRIORITY_UNSUPPORTED,
    BY_UNSUPPORTED,
];

/// True when an `Invalid` text is about an unknown or unsupported ESMTP
/// parameter, to be answered with 555 5.5.4 instead of 501.
pub fn is_unsupported_parameter(text: &str) -> bool {
    UNSUPPORTED.contains(&text)
}

/// True when an `Invalid` text is about the address itself, to be answered
/// with 501 5.1.7 (MAIL) or 501 5.1.3 (RCPT).
pub fn is_bad_address(text: &str) -> bool {
    [MAIL_ADDRESS, RCPT_ADDRESS, ADDRESS_TOO_LONG].contains(&text)
}

/// Parses one command line (without its CRLF).
pub fn parse(line: &[u8]) -> Command<'_> {
    let line = trim_end(line);
    let (verb, args) = match line.iter().position(|&b| b == b' ') {
        Some(space) => (&line[..space], Some(&line[space + 1..])),
        None => (line, None),
    };
    let Some(verb) = Verb::from_bytes(verb) else {
        return Command::Unknown;
    };
    match (verb, args.map(std::str::from_utf8).transpose()) {
        // Their arguments are ignored, so their bytes do not matter.
        (Verb::Noop, _) => Command::Noop,
        (Verb::Help, _) => Command::Help,
        (Verb::Vrfy, _) => Command::Vrfy,
        (Verb::Expn, _) => Command::Expn,
        (Verb::Mail | Verb::Rcpt, Err(_)) => {
            Command::Invalid("Addresses and parameters must be ASCII or UTF-8")
        }
        (_, Err(_)) => Command::Invalid("The command must be ASCII text"),
        (Verb::Ehlo, Ok(args)) => {
            hello(args).map_or(Command::Invalid("Syntax: EHLO hostname"), Command::Ehlo)
        }
        (Verb::Helo, Ok(args)) => {
            hello(args).map_or(Command::Invalid("Syntax: HELO hostname"), Command::Helo)
        }
        (Verb::Mail, Ok(args)) => mail(args.unwrap_or("")),
        (Verb::Rcpt, Ok(args)) => rcpt(args.unwrap_or("")),
        (Verb::Bdat, Ok(args)) => bdat(args.unwrap_or("")),
        (Verb::Auth, Ok(args)) => auth(args.unwrap_or("")),
        (Verb::Data, Ok(args)) => no_args(args, Command::Data, "Syntax: DATA (without arguments)"),
        (Verb::Rset, Ok(args)) => no_args(args, Command::Rset, "Syntax: RSET (without arguments)"),
        (Verb::Quit, Ok(args)) => no_args(args, Command::Quit, "Syntax: QUIT (without arguments)"),
        (Verb::StartTls, Ok(args)) => no_args(
            args,
            Command::StartTls,
            "Syntax: STARTTLS (without arguments)",
        ),
    }
}

/// The verbs this parser knows.
#[derive(Clone, Copy)]
enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
}

impl Verb {
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
fn hello(args: Option<&str>) -> Option<&str> {
    args?.split(' ').find(|word| !word.is_empty())
}

fn no_args<'a>(args: Option<&str>, command: Command<'a>, syntax: &'static str) -> Command<'a> {
    match args {
        Some(args) if !args.trim_start_matches(' ').is_empty() => Command::Invalid(syntax),
        _ => command,
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
fn path_and_params<'a>(
    args: &'a str,
    keyword: &str,
    syntax: &'static str,
    bad_address: &'static str,
) -> Result<(Path<'a>, &'a str), &'static str> {
    let rest = after_keyword(args, keyword).ok_or(syntax)?;
    if !rest.starts_with('<') {
        return Err(syntax);
    }
    let (path, params) = address::parse_path(rest, true).map_err(|e| match e {
        AddressError::TooLong => ADDRESS_TOO_LONG,
        AddressError::Syntax | AddressError::NeedsUtf8 => bad_address,
    })?;
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(syntax);
    }
    Ok((path, params))
}

/// Splits ESMTP parameters `KEY[=VALUE]` (RFC 5321 §4.1.2), space-separated.
fn parameters(params: &str) -> impl Iterator<Item = Result<(&str, Option<&str>), &'static str>> {
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
            Err("Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces")
        }
    })
}

/// Stores a parameter once; a second one is an error (RFC 5321 §4.1.2
/// gives no meaning to repeats, and they hint at confused clients).
fn once<T>(slot: &mut Option<T>, value: T, duplicate: &'static str) -> Result<(), &'static str> {
    if slot.is_some() {
        return Err(duplicate);
    }
    *slot = Some(value);
    Ok(())
}

/// xtext (RFC 3461 §4): `!`..`~` except `+` and `=`, or `+` and two
/// upper-case hex digits.
fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex =
                    |c: Option<&u8>| c.is_some_and(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
                if !(hex(b.get(i + 1)) && hex(b.get(i + 2))) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

fn mail(args: &str) -> Command<'_> {
    match mail_inner(args) {
        Ok((from, params)) => Command::Mail { from, params },
        Err(text) => Command::Invalid(text),
    }
}

fn mail_inner(args: &str) -> Result<(Path<'_>, MailParams<'_>), &'static str> {
    let (from, rest) = path_and_params(args, "FROM:", MAIL_SYNTAX, MAIL_ADDRESS)?;
    if from == Path::Postmaster {
        return Err(MAIL_ADDRESS);
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
                .ok_or("SIZE must be the message size in octets, e.g. SIZE=12345")?;
            once(&mut params.size, size, "SIZE given more than once")?;
        } else if key.eq_ignore_ascii_case("BODY") {
            let body = keyword(
                value,
                &[
                    ("7BIT", Body::SevenBit),
                    ("8BITMIME", Body::EightBitMime),
                    ("BINARYMIME", Body::BinaryMime),
                ],
            )
            .ok_or("BODY must be 7BIT, 8BITMIME or BINARYMIME")?;
            once(&mut params.body, body, "BODY given more than once")?;
        } else if key.eq_ignore_ascii_case("SMTPUTF8") {
            if value.is_some() {
                return Err("SMTPUTF8 takes no value");
            }
            once(&mut smtputf8, (), "SMTPUTF8 given more than once")?;
            params.smtputf8 = true;
        } else if key.eq_ignore_ascii_case("RET") {
            let ret = keyword(value, &[("FULL", Ret::Full), ("HDRS", Ret::Hdrs)])
                .ok_or("RET must be FULL or HDRS")?;
            once(&mut params.ret, ret, "RET given more than once")?;
        } else if key.eq_ignore_ascii_case("ENVID") {
            // RFC 3461 §4.4: at most 100 characters of xtext.
            let envid = value
                .filter(|v| v.len() <= 100 && is_xtext(v))
                .ok_or("ENVID must be xtext of at most 100 characters")?;
            once(&mut params.envid, envid, "ENVID given more than once")?;
        } else if key.eq_ignore_ascii_case("AUTH") {
            // RFC 4954 §5: AUTH=<> or AUTH=xtext (a mailbox).
            let auth = value
                .filter(|v| *v == "<>" || is_xtext(v))
                .ok_or("AUTH must be <> or an xtext-encoded address")?;
            once(&mut params.auth, auth, "AUTH given more than once")?;
        } else {
            return Err(unsupported(key, MAIL_UNKNOWN_PARAMETER));
        }
    }
    Ok((from, params))
}

/// The 555 text for a parameter we do not implement; well-known ones are
/// named, anything else lists what is supported.
fn unsupported(key: &str, generic: &'static str) -> &'static str {
    if key.eq_ignore_ascii_case("REQUIRETLS") {
        REQUIRETLS_UNSUPPORTED
    } else if key.eq_ignore_ascii_case("MT-PRIORITY") {
        MT_PRIORITY_UNSUPPORTED
    } else if key.eq_ignore_ascii_case("BY") {
        BY_UNSUPPORTED
    } else {
        generic
    }
}

fn rcpt(args: &str) -> Command<'_> {
    match rcpt_inner(args) {
        Ok((to, params)) => Command::Rcpt { to, params },
        Err(text) => Command::Invalid(text),
    }
}

fn rcpt_inner(args: &str) -> Result<(Path<'_>, RcptParams<'_>), &'static str> {
    let (to, rest) = path_and_params(args, "TO:", RCPT_SYNTAX, RCPT_ADDRESS)?;
    if to == Path::Null {
        return Err(RCPT_ADDRESS);
    }
    let mut params = RcptParams::default();
    for param in parameters(rest) {
        let (key, value) = param?;
        if key.eq_ignore_ascii_case("NOTIFY") {
            let notify = value.and_then(notify).ok_or(
                "NOTIFY must be NEVER, or a comma-separated list of SUCCESS, FAILURE and DELAY",
            )?;
            once(&mut params.notify, notify, "NOTIFY given more than once")?;
        } else if key.eq_ignore_ascii_case("ORCPT") {
            let orcpt = value
                .filter(|v| is_orcpt(v))
                .ok_or("ORCPT must be address-type;address, e.g. ORCPT=rfc822;user@example.com")?;
            once(&mut params.orcpt, orcpt, "ORCPT given more than once")?;
        } else {
            return Err(unsupported(key, RCPT_UNKNOWN_PARAMETER));
        }
    }
    Ok((to, params))
}

/// The value of the keyword `value` names, in any case; no allocation
/// (this runs for every MAIL and RCPT parameter).
fn keyword<T: Copy>(value: Option<&str>, table: &[(&str, T)]) -> Option<T> {
    let value = value?;
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, v)| v)
}

/// `NOTIFY=NEVER / 1#(SUCCESS / FAILURE / DELAY)` (RFC 3461 §4.1).
fn notify(value: &str) -> Option<Notify> {
    let mut notify = Notify::default();
    for item in value.split(',') {
        let flag = match keyword(
            Some(item),
            &[("NEVER", 0), ("SUCCESS", 1), ("FAILURE", 2), ("DELAY", 3)],
        )? {
            0 => &mut notify.never,
            1 => &mut notify.success,
            2 => &mut notify.failure,
            _ => &mut notify.delay,
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    let others = notify.success || notify.failure || notify.delay;
    (notify.never != others).then_some(notify)
}

/// `ORCPT=addr-type ";" xtext` (RFC 3461 §4.2), at most 500 characters;
/// UTF-8 allowed after the `;` (RFC 6533 utf-8-addr-xtext/unitext).
fn is_orcpt(value: &str) -> bool {
    let Some((addr_type, address)) = value.split_once(';') else {
        return false;
    };
    let atom = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    value.len() <= 500
        && !addr_type.is_empty()
        && addr_type.bytes().all(atom)
        && !address.is_empty()
        && (is_xtext(address) || !address.is_ascii())
}

fn bdat(args: &str) -> Command<'_> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    const SYNTAX: &str = "Syntax: BDAT size [LAST]";
    let size = match words.next() {
        Some(size) if size.bytes().all(|b| b.is_ascii_digit()) => match size.parse::<u64>() {
            Ok(size) => size,
            Err(_) => return Command::Invalid("BDAT size is too large"),
        },
        _ => return Command::Invalid(SYNTAX),
    };
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Command::Invalid(SYNTAX),
    };
    if words.next().is_some() {
        return Command::Invalid(SYNTAX);
    }
    Command::Bdat { size, last }
}

fn auth(args: &str) -> Command<'_> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    const SYNTAX: &str = "Syntax: AUTH mechanism [initial-response]";
    // RFC 4422 §3.1: sasl-mech = 1*20 of upper-case letters, digits, - and _
    // (compared case-insensitively).
    let mechanism = match words.next() {
        Some(m)
            if m.len() <= 20
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            m
        }
        _ => return Command::Invalid(SYNTAX),
    };
    let initial = words.next();
    if words.next().is_some() {
        return Command::Invalid(SYNTAX);
    }
    Command::Auth { mechanism, initial }
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

    fn mail_from<'a>(from: Path<'a>, params: MailParams<'a>) -> Command<'a> {
        Command::Mail { from, params }
    }

    fn rcpt_to<'a>(to: Path<'a>, params: RcptParams<'a>) -> Command<'a> {
        Command::Rcpt { to, params }
    }

    #[test]
    fn simple_verbs() {
        let cases: &[(&[u8], Command)] = &[
            (b"DATA", Command::Data),
            (b"data", Command::Data),
            (b"DATA ", Command::Data),
            (b"RSET", Command::Rset),
            (b"QUIT", Command::Quit),
            (b"qUiT\t", Command::Quit),
            (b"STARTTLS", Command::StartTls),
            (b"NOOP", Command::Noop),
            (b"NOOP anything \xff", Command::Noop),
            (b"HELP", Command::Help),
            (b"HELP MAIL", Command::Help),
            (b"VRFY postmaster", Command::Vrfy),
            (b"EXPN list", Command::Expn),
            (
                b"DATA x",
                Command::Invalid("Syntax: DATA (without arguments)"),
            ),
            (
                b"STARTTLS now",
                Command::Invalid("Syntax: STARTTLS (without arguments)"),
            ),
            (b"", Command::Unknown),
            (b"FOO", Command::Unknown),
            (b"MAILFROM:<a@b>", Command::Unknown),
            (b"\xff\xfe", Command::Unknown),
            (b"XCLIENT \xff", Command::Unknown),
            (b" DATA", Command::Unknown),
            // Verbs in any case; longer or shorter words are not verbs.
            (b"StartTls", Command::StartTls),
            (b"noop", Command::Noop),
            (b"sTaRtTlSs", Command::Unknown),
            (b"STARTTLSSTARTTLS", Command::Unknown),
            (b"NOO", Command::Unknown),
            (b"QUIT\x00", Command::Unknown),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn hello() {
        let cases: &[(&[u8], Command)] = &[
            (b"EHLO mail.example.com", Command::Ehlo("mail.example.com")),
            (b"ehlo DESKTOP-UPCFNQM", Command::Ehlo("DESKTOP-UPCFNQM")),
            (b"EHLO [127.0.0.1]", Command::Ehlo("[127.0.0.1]")),
            (b"EHLO  spaced   extra", Command::Ehlo("spaced")),
            (b"HELO host", Command::Helo("host")),
            (b"EHLO", Command::Invalid("Syntax: EHLO hostname")),
            (b"EHLO   ", Command::Invalid("Syntax: EHLO hostname")),
            (b"HELO", Command::Invalid("Syntax: HELO hostname")),
            (
                b"EHLO h\xffst",
                Command::Invalid("The command must be ASCII text"),
            ),
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
        let cases: &[(&[u8], Command)] = &[
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
            (
                b"RCPT TO:<j\xc3\xb6rg@b>",
                rcpt_to(mb("j\u{f6}rg", "b"), RcptParams::default()),
            ),
            (b"MAIL FROM:a@b", Command::Invalid(MAIL_SYNTAX)),
            (b"MAIL FROM", Command::Invalid(MAIL_SYNTAX)),
            (b"MAIL", Command::Invalid(MAIL_SYNTAX)),
            (b"MAIL TO:<a@b>", Command::Invalid(MAIL_SYNTAX)),
            (b"MAIL FROM:<a@b>SIZE=1", Command::Invalid(MAIL_SYNTAX)),
            (b"RCPT FROM:<a@b>", Command::Invalid(RCPT_SYNTAX)),
            (b"MAIL FROM:<a@b.>", Command::Invalid(MAIL_ADDRESS)),
            (b"MAIL FROM:<Postmaster>", Command::Invalid(MAIL_ADDRESS)),
            (b"RCPT TO:<>", Command::Invalid(RCPT_ADDRESS)),
            (b"RCPT TO:<a@@b>", Command::Invalid(RCPT_ADDRESS)),
            (
                b"MAIL FROM:<a@b\xff>",
                Command::Invalid("Addresses and parameters must be ASCII or UTF-8"),
            ),
            (
                b"RCPT TO:<\xe4@b>",
                Command::Invalid("Addresses and parameters must be ASCII or UTF-8"),
            ),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
        let long = format!("MAIL FROM:<{}@b>", "x".repeat(65));
        assert_eq!(parse(long.as_bytes()), Command::Invalid(ADDRESS_TOO_LONG));
        assert!(is_bad_address(ADDRESS_TOO_LONG) && is_bad_address(MAIL_ADDRESS));
        assert!(!is_bad_address(MAIL_SYNTAX));
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
                Command::Rcpt {
                    to:
                        Path::Mailbox {
                            mailbox,
                            source_route,
                        },
                    ..
                } => {
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
        let cases: &[(&str, Result<MailParams, &str>)] = &[
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
                Err("SIZE must be the message size in octets, e.g. SIZE=12345"),
            ),
            (
                "SIZE=-1",
                Err("SIZE must be the message size in octets, e.g. SIZE=12345"),
            ),
            (
                "SIZE=+1",
                Err("SIZE must be the message size in octets, e.g. SIZE=12345"),
            ),
            (
                "SIZE",
                Err("SIZE must be the message size in octets, e.g. SIZE=12345"),
            ),
            (
                "SIZE=",
                Err("Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces"),
            ),
            ("SIZE=1 SIZE=2", Err("SIZE given more than once")),
            ("SMTPUTF8 smtputf8", Err("SMTPUTF8 given more than once")),
            ("SMTPUTF8=yes", Err("SMTPUTF8 takes no value")),
            (
                "BODY=8BIT",
                Err("BODY must be 7BIT, 8BITMIME or BINARYMIME"),
            ),
            ("RET=ALL", Err("RET must be FULL or HDRS")),
            (
                "ENVID=a+2b",
                Err("ENVID must be xtext of at most 100 characters"),
            ),
            (
                "ENVID=a=b",
                Err("Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces"),
            ),
            (
                "AUTH=a+",
                Err("AUTH must be <> or an xtext-encoded address"),
            ),
            (
                "=1",
                Err("Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces"),
            ),
            (
                "-X=1",
                Err("Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces"),
            ),
            ("XFOO=1", Err(MAIL_UNKNOWN_PARAMETER)),
            ("NOTIFY=NEVER", Err(MAIL_UNKNOWN_PARAMETER)),
            ("REQUIRETLS", Err(REQUIRETLS_UNSUPPORTED)),
            ("MT-PRIORITY=3", Err(MT_PRIORITY_UNSUPPORTED)),
            ("BY=120;R", Err(BY_UNSUPPORTED)),
        ];
        for (params, expected) in cases {
            let line = format!("MAIL FROM:<a@b> {params}");
            let expected = match expected {
                Ok(p) => mail_from(mb("a", "b"), p.clone()),
                Err(text) => Command::Invalid(text),
            };
            assert_eq!(parse(line.as_bytes()), expected, "{line}");
        }
        let envid = format!("MAIL FROM:<> ENVID={}", "e".repeat(101));
        assert!(matches!(parse(envid.as_bytes()), Command::Invalid(_)));
        assert!(is_unsupported_parameter(MAIL_UNKNOWN_PARAMETER));
        assert!(is_unsupported_parameter(REQUIRETLS_UNSUPPORTED));
        assert!(!is_unsupported_parameter("SIZE given more than once"));
    }

    #[test]
    fn rcpt_parameters() {
        let notify = |never, success, failure, delay| RcptParams {
            notify: Some(Notify {
                never,
                success,
                failure,
                delay,
            }),
            orcpt: None,
        };
        const BAD_NOTIFY: &str =
            "NOTIFY must be NEVER, or a comma-separated list of SUCCESS, FAILURE and DELAY";
        const BAD_ORCPT: &str =
            "ORCPT must be address-type;address, e.g. ORCPT=rfc822;user@example.com";
        let cases: &[(&str, Result<RcptParams, &str>)] = &[
            ("NOTIFY=NEVER", Ok(notify(true, false, false, false))),
            (
                "notify=success,failure",
                Ok(notify(false, true, true, false)),
            ),
            (
                "NOTIFY=DELAY,FAILURE,SUCCESS",
                Ok(notify(false, true, true, true)),
            ),
            ("NOTIFY=NEVER,SUCCESS", Err(BAD_NOTIFY)),
            ("NOTIFY=SUCCESS,,DELAY", Err(BAD_NOTIFY)),
            ("NOTIFY=SUCCESS,SUCCESS", Err(BAD_NOTIFY)),
            ("NOTIFY=ALWAYS", Err(BAD_NOTIFY)),
            ("NOTIFY", Err(BAD_NOTIFY)),
            (
                "NOTIFY=NEVER NOTIFY=NEVER",
                Err("NOTIFY given more than once"),
            ),
            (
                "ORCPT=rfc822;a+40b",
                Ok(RcptParams {
                    notify: None,
                    orcpt: Some("rfc822;a+40b"),
                }),
            ),
            (
                "ORCPT=utf-8;j\u{f6}rg@b",
                Ok(RcptParams {
                    notify: None,
                    orcpt: Some("utf-8;j\u{f6}rg@b"),
                }),
            ),
            ("ORCPT=rfc822", Err(BAD_ORCPT)),
            ("ORCPT=;a", Err(BAD_ORCPT)),
            ("ORCPT=rfc822;", Err(BAD_ORCPT)),
            ("ORCPT=rfc822;a+4", Err(BAD_ORCPT)),
            ("SIZE=10", Err(RCPT_UNKNOWN_PARAMETER)),
        ];
        for (params, expected) in cases {
            let line = format!("RCPT TO:<a@b> {params}");
            let expected = match expected {
                Ok(p) => rcpt_to(mb("a", "b"), p.clone()),
                Err(text) => Command::Invalid(text),
            };
            assert_eq!(parse(line.as_bytes()), expected, "{line}");
        }
    }

    #[test]
    fn bdat_and_auth() {
        let cases: &[(&[u8], Command)] = &[
            (
                b"BDAT 0 LAST",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            (
                b"bdat 1000",
                Command::Bdat {
                    size: 1000,
                    last: false,
                },
            ),
            (
                b"BDAT 12 last",
                Command::Bdat {
                    size: 12,
                    last: true,
                },
            ),
            (b"BDAT", Command::Invalid("Syntax: BDAT size [LAST]")),
            (b"BDAT x", Command::Invalid("Syntax: BDAT size [LAST]")),
            (b"BDAT -1", Command::Invalid("Syntax: BDAT size [LAST]")),
            (
                b"BDAT 1 FIRST",
                Command::Invalid("Syntax: BDAT size [LAST]"),
            ),
            (
                b"BDAT 1 LAST x",
                Command::Invalid("Syntax: BDAT size [LAST]"),
            ),
            (
                b"BDAT 99999999999999999999",
                Command::Invalid("BDAT size is too large"),
            ),
            (
                b"AUTH PLAIN",
                Command::Auth {
                    mechanism: "PLAIN",
                    initial: None,
                },
            ),
            (
                b"auth login dXNlcg==",
                Command::Auth {
                    mechanism: "login",
                    initial: Some("dXNlcg=="),
                },
            ),
            // Some Microsoft clients put two spaces before the response.
            (
                b"AUTH PLAIN  AGEAYg==",
                Command::Auth {
                    mechanism: "PLAIN",
                    initial: Some("AGEAYg=="),
                },
            ),
            (
                b"AUTH PLAIN =",
                Command::Auth {
                    mechanism: "PLAIN",
                    initial: Some("="),
                },
            ),
            (
                b"AUTH",
                Command::Invalid("Syntax: AUTH mechanism [initial-response]"),
            ),
            (
                b"AUTH PLAIN a b",
                Command::Invalid("Syntax: AUTH mechanism [initial-response]"),
            ),
            (
                b"AUTH PL@IN",
                Command::Invalid("Syntax: AUTH mechanism [initial-response]"),
            ),
            (
                b"AUTH PLAIN \xff",
                Command::Invalid("The command must be ASCII text"),
            ),
        ];
        for (line, command) in cases {
            assert_eq!(parse(line), *command, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
