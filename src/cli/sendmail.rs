//! `outpost sendmail`, also run when the binary is called `sendmail`: the
//! interface cron, smartd, unattended-upgrades and PHP's `mail()` use. It
//! reads a message on standard input and submits it over loopback SMTP to
//! the running server, as a relay-network client: to the first `--smtp`
//! listener of the server's configuration (`--config FILE`, by default
//! [`DEFAULT_CONFIG`] when it exists) or to `--server HOST:PORT`. Nothing
//! is queued here: when the server cannot be reached, the exit code says
//! "try again later" (75) and the caller keeps the message.
//!
//! The message goes through a temporary file (unlinked at once), never
//! whole in memory: its size and 8-bit content must be known before MAIL
//! (`SIZE=`, `BODY=8BITMIME`). On the way, line ends become CRLF, the
//! `Bcc:` field is removed, and a `From:` is added when there is none. The
//! SMTP exchange is the delivery threads' own driver
//! ([`crate::delivery::outbound::run`]).
//!
//! Exit codes follow sysexits.h: 0 sent, 64 usage, 65 bad message data,
//! 69 refused by the server, 70 internal error, 75 try again later (the
//! server is down or answered 4xx), 78 bad configuration.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{self, ServeArgs};
use crate::delivery::outbound::{self, CertPolicy, Peer};
use crate::proto::client::{
    BodyFacts, Client, ClientParams, Outcome, RecipientParams, SessionEnd, TlsPolicy,
};

/// sysexits.h `EX_USAGE`.
pub const EX_USAGE: i32 = 64;
/// sysexits.h `EX_DATAERR`: the message cannot be sent as it is.
pub const EX_DATAERR: i32 = 65;
/// sysexits.h `EX_UNAVAILABLE`: the server refused the message for good.
pub const EX_UNAVAILABLE: i32 = 69;
/// sysexits.h `EX_SOFTWARE`: something went wrong here.
pub const EX_SOFTWARE: i32 = 70;
/// sysexits.h `EX_TEMPFAIL`: try again later.
pub const EX_TEMPFAIL: i32 = 75;
/// sysexits.h `EX_CONFIG`: the configuration file is wrong.
pub const EX_CONFIG: i32 = 78;

/// The server's configuration file read when no `--config` is given, if it
/// exists (where the systemd unit of `contrib/` keeps it).
pub const DEFAULT_CONFIG: &str = "/etc/outpost/outpost.conf";

/// The EHLO name: the server must not take it for its own (that would
/// look like a mail loop).
const EHLO_NAME: &str = "localhost";

/// The longest header section read; it is kept in memory to find the
/// recipients and the `Bcc:` field.
const MAX_HEADER: usize = 1024 * 1024;

/// Lines are read in pieces of at most this many octets, so a long line
/// never grows memory.
const MAX_PIECE: u64 = 64 * 1024;

const USAGE: &str = "\
usage: sendmail [-t] [-i] [-f SENDER] [-F NAME] [--server HOST:PORT] [--config FILE] [RECIPIENT...]
       outpost sendmail ... (the same)

Reads a message on standard input and submits it to the running Outpost
server over loopback SMTP.

  -t                 also send to the To:, Cc: and Bcc: addresses of the message;
                     the Bcc: field is removed
  -i, -oi            a line with a single dot does not end the message
  -f SENDER, -r SENDER
                     the envelope sender (default: $LOGNAME or $USER); the server
                     completes a bare name, as it does bare recipients
  -F NAME            the full name in the From: field added to a message without one
  --server HOST:PORT the server's smtp listener (default: the first --smtp of the
                     configuration)
  --config FILE      the server's configuration (default: /etc/outpost/outpost.conf
                     when it exists)
  -bp                list the queue (as `mailq`)
Other sendmail options (-odi, -oem, -bm, -N, -B, -R, -V, -v, -U, ...) are
accepted and ignored.";

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    /// `-t`.
    from_headers: bool,
    /// `-i` / `-oi`.
    ignore_dots: bool,
    /// `-f` / `-r`.
    sender: Option<String>,
    /// `-F`.
    full_name: Option<String>,
    /// `--server`.
    server: Option<String>,
    /// `--config`.
    config: Option<PathBuf>,
    /// Recipients given as arguments.
    recipients: Vec<String>,
}

/// The command line's verdict.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    Send(Options),
    ListQueue,
    Help,
}

/// Runs `sendmail ARGS` (the words after the program or subcommand name);
/// returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let options = match parse(args) {
        Ok(Invocation::Send(options)) => options,
        Ok(Invocation::ListQueue) => return super::queue::run(&["list".to_string()]),
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Err(problem) => {
            eprintln!("sendmail: {problem}\n{USAGE}");
            return EX_USAGE;
        }
    };
    match send(&options, io::stdin().lock()) {
        Ok(()) => 0,
        Err((code, problem)) => {
            eprintln!("sendmail: {problem}");
            code
        }
    }
}

/// Runs `mailq ARGS`: the queue list (`outpost queue list ARGS`).
pub fn run_mailq(args: &[String]) -> i32 {
    let mut words = vec!["list".to_string()];
    words.extend(args.iter().cloned());
    super::queue::run(&words)
}

/// A failure: its exit code and what to say.
type Failure = (i32, String);

/// Reads the command line the way sendmail programs do: single-letter
/// options, values attached (`-fADDR`) or in the next word (`-f ADDR`).
fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut options = Options::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |attached: &str, flag: &str| -> Result<String, String> {
            if !attached.is_empty() {
                return Ok(attached.to_string());
            }
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--" => {
                options.recipients.extend(iter.by_ref().cloned());
                break;
            }
            "-h" | "--help" => return Ok(Invocation::Help),
            "-t" => options.from_headers = true,
            "-i" | "-oi" => options.ignore_dots = true,
            "-bp" => return Ok(Invocation::ListQueue),
            "--server" => options.server = Some(value("", arg)?),
            "--config" => options.config = Some(PathBuf::from(value("", arg)?)),
            _ => {
                if let Some(v) = arg.strip_prefix("--server=") {
                    options.server = Some(v.to_string());
                } else if let Some(v) = arg.strip_prefix("--config=") {
                    options.config = Some(PathBuf::from(v));
                } else if let Some(v) = arg.strip_prefix("-f").or(arg.strip_prefix("-r")) {
                    options.sender = Some(value(v, "-f")?);
                } else if let Some(v) = arg.strip_prefix("-F") {
                    options.full_name = Some(value(v, "-F")?);
                } else if let Some(v) = ["-N", "-B", "-R", "-V", "-X", "-C", "-L", "-h"]
                    .iter()
                    .find_map(|flag| arg.strip_prefix(flag))
                {
                    // DSN NOTIFY, body type, RET, ENVID, log file, config
                    // file, syslog label, hop count: taken and ignored.
                    value(v, arg)?;
                } else if arg == "-bm" || arg.starts_with("-o") {
                    // -bm is the mode we are in; -odi, -oem, -om ... are
                    // delivery and error modes of other sendmails.
                } else if arg.starts_with("-b") {
                    return Err(format!("{arg} is not supported"));
                } else if matches!(
                    arg.as_str(),
                    "-v" | "-U" | "-G" | "-n" | "-m" | "-em" | "-ee"
                ) || arg.starts_with("-q")
                {
                    // Verbose, initial submission, relay, no aliasing,
                    // me too, error modes, queue runs: nothing to do.
                } else if arg.starts_with('-') && arg.len() > 1 {
                    return Err(format!("unknown option {arg}"));
                } else {
                    options.recipients.push(arg.clone());
                }
            }
        }
    }
    Ok(Invocation::Send(options))
}

/// Where the server is, and the domain of the `From:` field added for a
/// bare sender.
struct Target {
    server: SocketAddr,
    sender_domain: String,
}

/// Reads the message from `input`, then submits it.
fn send(options: &Options, input: impl BufRead) -> Result<(), Failure> {
    let target = target(options)?;
    // The envelope keeps a bare name: the server completes it with its
    // own --sender-domain. The From: field needs a whole address.
    let sender = options
        .sender
        .clone()
        .or_else(|| std::env::var("LOGNAME").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "nobody".to_string());
    let from = qualify(&sender, &target.sender_domain);
    let mut recipients: Vec<String> = options
        .recipients
        .iter()
        .flat_map(|arg| address_list(arg))
        .collect();
    if recipients.is_empty() && !options.from_headers {
        return Err((EX_USAGE, "no recipients given (and no -t)".into()));
    }
    let mut file = temporary_file().map_err(|e| (EX_TEMPFAIL, format!("temporary file: {e}")))?;
    let prepared = prepare(input, &mut file, options, &from)?;
    recipients.extend(prepared.recipients);
    if recipients.is_empty() {
        return Err((EX_DATAERR, "no recipient addresses in the message".into()));
    }
    file.rewind()
        .map_err(|e| (EX_TEMPFAIL, format!("temporary file: {e}")))?;
    submit(target.server, &sender, &recipients, prepared.facts, file)
}

/// The server to submit to and the sender domain, from `--server` and the
/// configuration.
fn target(options: &Options) -> Result<Target, Failure> {
    let config_file = options.config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG);
        default.exists().then_some(default)
    });
    let mut words = Vec::new();
    if let Some(path) = &config_file {
        words.push("--config".to_string());
        words.push(path.display().to_string());
    }
    let config = match config::parse_args(&words) {
        Ok(ServeArgs::Run(config)) => config,
        Ok(_) => return Err((EX_SOFTWARE, "unexpected configuration".into())),
        Err(e) => return Err((EX_CONFIG, e.to_string())),
    };
    let server = match &options.server {
        Some(text) => resolve(text)
            .ok_or_else(|| (EX_USAGE, format!("--server {text:?} is not HOST:PORT")))?,
        None => match config.smtp.first() {
            Some(listener) => loopback(*listener),
            None => {
                return Err((
                    EX_CONFIG,
                    "the server has no --smtp listener; give --server HOST:PORT".into(),
                ))
            }
        },
    };
    Ok(Target {
        server,
        sender_domain: config.effective_sender_domain(),
    })
}

/// `HOST:PORT` as a socket address (a name is looked up).
fn resolve(text: &str) -> Option<SocketAddr> {
    text.to_socket_addrs().ok()?.next()
}

/// A listener on every address is reached over loopback.
fn loopback(listener: SocketAddr) -> SocketAddr {
    let ip = match listener.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listener.port())
}

/// `address`, with `@domain` added when it has none.
fn qualify(address: &str, domain: &str) -> String {
    if address.contains('@') {
        address.to_string()
    } else {
        format!("{address}@{domain}")
    }
}

/// A new file only this process can read, already unlinked: it goes with
/// the process, however it ends.
fn temporary_file() -> io::Result<File> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path =
        std::env::temp_dir().join(format!("outpost-sendmail-{}-{nanos}", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    fs::remove_file(&path)?;
    Ok(file)
}

/// The message as written to the temporary file.
struct Prepared {
    /// What the SMTP client must know about it.
    facts: BodyFacts,
    /// The To:, Cc: and Bcc: addresses, with `-t`.
    recipients: Vec<String>,
}

/// Copies the message from `input` to `out` with CRLF line ends, up to the
/// end of input (or a line with a single dot, without `-i`): the header
/// section with its `Bcc:` removed and a `From:` added if it has none,
/// then the body.
fn prepare(
    mut input: impl BufRead,
    out: &mut impl Write,
    options: &Options,
    sender: &str,
) -> Result<Prepared, Failure> {
    let read_error = |e: io::Error| (EX_DATAERR, format!("reading the message: {e}"));
    let write_error = |e: io::Error| (EX_TEMPFAIL, format!("temporary file: {e}"));
    let mut writer = FactsWriter {
        out,
        facts: BodyFacts::default(),
    };
    let mut lines = Lines::new(options.ignore_dots);
    let mut header = Vec::new();
    // The first body line, when the header section ended without its
    // empty line.
    let mut first_body: Option<Vec<u8>> = None;
    let mut ended = false;
    loop {
        match lines.next_line(&mut input).map_err(read_error)? {
            Line::End => {
                ended = true;
                break;
            }
            Line::Text(line) => {
                if line.is_empty() {
                    break;
                }
                let continues = matches!(line.first(), Some(b' ' | b'\t')) && !header.is_empty();
                if !continues && !is_field(&line) {
                    first_body = Some(line);
                    break;
                }
                header.extend_from_slice(&line);
                header.extend_from_slice(b"\r\n");
                if header.len() > MAX_HEADER {
                    return Err((EX_DATAERR, "the header section is too long".into()));
                }
            }
        }
    }
    let fields = Fields::read(&header);
    let mut recipients = Vec::new();
    for field in &fields.0 {
        let name = field.name();
        let addressed = ["to", "cc", "bcc"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        if options.from_headers && addressed {
            recipients.extend(address_list(&String::from_utf8_lossy(field.value())));
        }
        if !name.eq_ignore_ascii_case("bcc") {
            writer.write_all(field.0).map_err(write_error)?;
        }
    }
    if !fields
        .0
        .iter()
        .any(|f| f.name().eq_ignore_ascii_case("from"))
    {
        let from = match &options.full_name {
            Some(name) => format!("From: {} <{sender}>\r\n", quoted_name(name)),
            None => format!("From: {sender}\r\n"),
        };
        writer.write_all(from.as_bytes()).map_err(write_error)?;
    }
    writer.write_all(b"\r\n").map_err(write_error)?;
    if let Some(line) = first_body {
        writer.write_all(&line).map_err(write_error)?;
        writer.write_all(b"\r\n").map_err(write_error)?;
    }
    while !ended {
        match lines.next_piece(&mut input).map_err(read_error)? {
            None => ended = true,
            Some(piece) => writer.write_all(&piece).map_err(write_error)?,
        }
    }
    Ok(Prepared {
        facts: writer.facts.finish(),
        recipients,
    })
}

/// A display name as a quoted string when it has characters an atom
/// cannot hold (RFC 5322 §3.2.3); quotes and backslashes escaped, line
/// ends dropped.
fn quoted_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    let atoms = clean
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c));
    if atoms && !clean.trim().is_empty() {
        return clean.trim().to_string();
    }
    let escaped = clean.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// `name:` at the start of a header line (RFC 5322 §3.6.8: printable
/// ASCII but the colon, at least one).
fn is_field(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) => colon > 0 && line[..colon].iter().all(|b| (33..=126).contains(b)),
        None => false,
    }
}

/// The header fields, each with its continuation lines and CRLFs.
struct Fields<'a>(Vec<Field<'a>>);

/// One header field as written.
struct Field<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn read(header: &'a [u8]) -> Fields<'a> {
        let mut fields = Vec::new();
        let mut start = 0;
        let mut at = 0;
        while at < header.len() {
            let end = memchr::memchr(b'\n', &header[at..]).map_or(header.len(), |lf| at + lf + 1);
            // A field ends where the next line does not continue it.
            if !matches!(header.get(end), Some(b' ' | b'\t')) {
                fields.push(Field(&header[start..end]));
                start = end;
            }
            at = end;
        }
        Fields(fields)
    }
}

impl Field<'_> {
    fn name(&self) -> &str {
        let colon = self.0.iter().position(|&b| b == b':').unwrap_or(0);
        std::str::from_utf8(&self.0[..colon])
            .unwrap_or("")
            .trim_end()
    }

    fn value(&self) -> &[u8] {
        let colon = self.0.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
        &self.0[colon..]
    }
}

/// The addresses of an RFC 5322 §3.4 address list: `a@b`, `Name <a@b>`,
/// `"Doe, J" <a@b>`, `group: a@b, c@d;`, with comments skipped.
fn address_list(text: &str) -> Vec<String> {
    let mut addresses = Vec::new();
    let mut plain = String::new();
    let mut angle: Option<String> = None;
    let mut in_angle = false;
    let mut in_quote = false;
    let mut comment = 0u32;
    let mut chars = text.chars();
    let mut finish = |plain: &mut String, angle: &mut Option<String>| {
        let address = angle.take().unwrap_or_else(|| plain.trim().to_string());
        let address = address.trim();
        if !address.is_empty() && !address.contains(char::is_whitespace) {
            addresses.push(address.to_string());
        }
        plain.clear();
    };
    while let Some(c) = chars.next() {
        if in_quote {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        if comment > 0 {
            match c {
                '(' => comment += 1,
                ')' => comment -= 1,
                '\\' => {
                    chars.next();
                }
                _ => {}
            }
            continue;
        }
        match c {
            '(' => comment = 1,
            '"' if !in_angle => in_quote = true,
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' => in_angle = false,
            ':' if !in_angle => plain.clear(),
            ',' | ';' if !in_angle => finish(&mut plain, &mut angle),
            '\r' | '\n' => {}
            _ if in_angle => angle.get_or_insert_with(String::new).push(c),
            _ => plain.push(c),
        }
    }
    finish(&mut plain, &mut angle);
    addresses
}

/// A line of the input, or its end.
enum Line {
    /// A line without its line end.
    Text(Vec<u8>),
    /// End of input, or the single-dot line without `-i`.
    End,
}

/// Reads the input as lines with CRLF ends, in bounded pieces.
struct Lines {
    ignore_dots: bool,
    /// The next octet read starts a line.
    at_line_start: bool,
}

impl Lines {
    fn new(ignore_dots: bool) -> Lines {
        Lines {
            ignore_dots,
            at_line_start: true,
        }
    }

    /// One whole header line (header lines are kept anyway).
    fn next_line(&mut self, input: &mut impl BufRead) -> io::Result<Line> {
        let mut line = Vec::new();
        loop {
            match self.next_piece(input)? {
                None if line.is_empty() => return Ok(Line::End),
                None => return Ok(Line::Text(line)),
                Some(piece) => {
                    line.extend_from_slice(&piece);
                    if line.len() > MAX_HEADER {
                        return Err(io::Error::other("a header line is too long"));
                    }
                    if let Some(text) = line.strip_suffix(b"\r\n") {
                        return Ok(Line::Text(text.to_vec()));
                    }
                }
            }
        }
    }

    /// The next piece of at most [`MAX_PIECE`] octets, its line end made
    /// CRLF; `None` at the end of input or at the single-dot line.
    fn next_piece(&mut self, input: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
        let mut piece = Vec::new();
        input.take(MAX_PIECE).read_until(b'\n', &mut piece)?;
        if piece.is_empty() {
            return Ok(None);
        }
        let whole_line = piece.ends_with(b"\n");
        if whole_line {
            piece.pop();
            if piece.ends_with(b"\r") {
                piece.pop();
            }
        }
        if self.at_line_start && whole_line && !self.ignore_dots && piece == b"." {
            return Ok(None);
        }
        self.at_line_start = whole_line;
        if whole_line {
            piece.extend_from_slice(b"\r\n");
        }
        Ok(Some(piece))
    }
}

/// Writes on, noting the [`BodyFacts`] of what passes.
struct FactsWriter<'a, W: Write> {
    out: &'a mut W,
    facts: BodyFacts,
}

impl<W: Write> FactsWriter<'_, W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.facts.add(bytes);
        self.out.write_all(bytes)
    }
}

/// Submits the message in `body` to `server`; the server's answer becomes
/// the exit code.
fn submit(
    server: SocketAddr,
    sender: &str,
    recipients: &[String],
    facts: BodyFacts,
    body: impl Read,
) -> Result<(), Failure> {
    let params = ClientParams {
        hostname: EHLO_NAME.to_string(),
        sender: sender.to_string(),
        recipients: recipients
            .iter()
            .map(|address| RecipientParams {
                address: address.clone(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        body: facts,
        eight_bit_mime: facts.eight_bit,
        smtputf8: !sender.is_ascii() || recipients.iter().any(|r| !r.is_ascii()),
        ret: None,
        envid: None,
        // Loopback: nothing to hide from, and no certificate to check.
        tls: TlsPolicy::Never,
        tls_active: false,
        credentials: None,
    };
    let peer = Peer {
        addr: server,
        source: None,
        host: EHLO_NAME.to_string(),
        implicit_tls: false,
    };
    let tls = outbound::tls_config(CertPolicy::Opportunistic, None)
        .map_err(|e| (EX_SOFTWARE, e.to_string()))?;
    let attempt = outbound::run(&peer, Client::new(params), body, &tls).map_err(|e| {
        (
            EX_TEMPFAIL,
            format!("the mail server at {server} cannot be reached ({e}); try again later"),
        )
    })?;
    let report = attempt.report;
    let mut code = 0;
    for (recipient, outcome) in recipients.iter().zip(&report.outcomes) {
        let (this, what) = match outcome {
            Outcome::Delivered(_) => continue,
            Outcome::Transient(_) => (EX_TEMPFAIL, "deferred"),
            Outcome::Permanent(_) if report.end == SessionEnd::Refused => (EX_DATAERR, "refused"),
            Outcome::Permanent(_) => (EX_UNAVAILABLE, "refused"),
        };
        eprintln!("sendmail: <{recipient}> {what}: {}", outcome.reply());
        code = code.max(this);
    }
    match code {
        0 => Ok(()),
        _ => Err((code, "the message was not sent to every recipient".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines_of_cron_php_and_friends() {
        let Ok(Invocation::Send(o)) = parse(&args(&[
            "-t",
            "-i",
            "-odi",
            "-oem",
            "-FCron Daemon",
            "-f",
            "root",
            "-N",
            "never",
            "-v",
            "--",
            "-bob@example.org",
        ])) else {
            panic!()
        };
        assert!(o.from_headers && o.ignore_dots);
        assert_eq!(o.full_name.as_deref(), Some("Cron Daemon"));
        assert_eq!(o.sender.as_deref(), Some("root"));
        assert_eq!(o.recipients, ["-bob@example.org"]);
        let Ok(Invocation::Send(o)) = parse(&args(&["-oi", "-fwww-data@example.org", "a@b"]))
        else {
            panic!()
        };
        assert_eq!(o.sender.as_deref(), Some("www-data@example.org"));
        assert_eq!(o.recipients, ["a@b"]);
        assert_eq!(parse(&args(&["-bp"])), Ok(Invocation::ListQueue));
        assert!(parse(&args(&["-bs"])).is_err());
        assert!(parse(&args(&["-f"])).is_err());
        assert!(parse(&args(&["-Z"])).is_err());
    }

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("a@b", &["a@b"]),
            (
                " Alice <alice@example.org>, bob@example.org ",
                &["alice@example.org", "bob@example.org"],
            ),
            ("\"Doe, J\" <j@x> (comment, here), k@y", &["j@x", "k@y"]),
            ("team: a@x, b@y;, c@z", &["a@x", "b@y", "c@z"]),
            ("undisclosed-recipients:;", &[]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(address_list(text), *expected, "{text}");
        }
    }

    fn prepared(input: &str, options: &Options) -> (String, Vec<String>) {
        let mut out = Vec::new();
        let p = prepare(input.as_bytes(), &mut out, options, "root@example.org").unwrap();
        assert_eq!(p.facts, BodyFacts::of(&out));
        (String::from_utf8(out).unwrap(), p.recipients)
    }

    #[test]
    fn messages_get_crlf_a_from_field_and_lose_bcc() {
        let t = Options {
            from_headers: true,
            full_name: Some("Cron Daemon".into()),
            ..Options::default()
        };
        let (text, recipients) = prepared(
            "To: a@x\nBcc: secret@y,\n  other@z\nSubject: hi\n\nbody\n.\nafter the dot\n",
            &t,
        );
        assert_eq!(
            text,
            "To: a@x\r\nSubject: hi\r\nFrom: Cron Daemon <root@example.org>\r\n\r\nbody\r\n"
        );
        assert_eq!(recipients, ["a@x", "secret@y", "other@z"]);
        let i = Options {
            ignore_dots: true,
            ..Options::default()
        };
        let (text, recipients) = prepared("From: me@x\r\nBcc: b@y\r\n\r\n.\r\nend", &i);
        assert_eq!(text, "From: me@x\r\n\r\n.\r\nend");
        assert!(recipients.is_empty(), "no -t");
        // A message that starts with its body gets a header section.
        let (text, _) = prepared("just a line\n", &Options::default());
        assert_eq!(text, "From: root@example.org\r\n\r\njust a line\r\n");
        assert_eq!(quoted_name("Doe, J."), "\"Doe, J.\"");
    }
}
