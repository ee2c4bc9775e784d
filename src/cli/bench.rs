//! `outpost bench`: the command line of the load generator in
//! [`crate::loadgen`]: options, usage text, the printed description, the
//! live progress line, session errors and results, the `--csv` file, and
//! the exit code.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::loadgen::options::{
    loopback_target, MAX_MESSAGES, MAX_RECIPIENTS, MAX_SESSIONS, MAX_SIZE, MIN_SIZE,
};
use crate::loadgen::{self, AuthMechanism, Options, Second, Security, Summary, TargetError, Trust};

/// Default number of concurrent sessions (the same as the anchors' smtp-source runs).
const DEFAULT_SESSIONS: usize = 16;
/// Default number of messages each session sends.
const DEFAULT_MESSAGES: usize = 100;
/// Default message size in bytes.
const DEFAULT_SIZE: usize = 1024;
/// Default hard stop for the whole run.
const DEFAULT_DURATION_LIMIT: Duration = Duration::from_secs(60);
/// How many session errors are printed before the rest are only counted.
const MAX_PRINTED_ERRORS: usize = 5;
/// Exit code when every message was accepted.
const EXIT_OK: i32 = 0;
/// Exit code when some messages were not accepted, or the run failed.
const EXIT_FAILURE: i32 = 1;
/// Exit code for a usage error or a target that is not loopback.
const EXIT_USAGE: i32 = 2;
/// Moves the cursor to the start of the line and erases the line (ANSI),
/// so the progress line is rewritten in place.
const REWRITE_LINE: &str = "\r\x1b[K";

/// Why the command line cannot be run (exit code 2).
#[derive(Debug)]
pub enum UsageError {
    /// The arguments are wrong; the text says how.
    Arguments(String),
    /// `--server` is malformed or names no loopback address.
    Target(TargetError),
}

impl UsageError {
    /// The usage text helps: anything but a refused target.
    fn wants_usage(&self) -> bool {
        match self {
            UsageError::Arguments(_) => true,
            UsageError::Target(e) => !e.is_refusal(),
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Arguments(why) => write!(f, "{why}"),
            UsageError::Target(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UsageError {}

/// Runs `outpost bench` with the arguments after `bench`: prints the
/// results; returns 0 if every message was accepted, 1 if some were not,
/// 2 for a usage error or a non-loopback target.
pub(super) fn run(args: &[String]) -> i32 {
    let bench = match parse(args) {
        Ok(BenchArgs::Run(bench)) => bench,
        Ok(BenchArgs::Help(text)) => {
            println!("{text}");
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("outpost bench: {e}");
            if e.wants_usage() {
                eprintln!("{}", usage());
            }
            return EXIT_USAGE;
        }
    };
    let opts = &bench.load;
    // Made before the run, so a path that cannot be written costs no run.
    let mut csv = match &bench.csv {
        None => None,
        Some(path) => match File::create(path) {
            Ok(file) => Some((path, BufWriter::new(file))),
            Err(e) => {
                eprintln!("outpost bench: --csv {}: {e}", path.display());
                return EXIT_FAILURE;
            }
        },
    };
    let settings = describe(opts);
    println!("{settings}");
    let live = bench.progress.shown(std::io::stderr().is_terminal());
    let printed = AtomicUsize::new(0);
    let print_error = move |session: usize, err: &loadgen::LoadgenError| {
        if printed.fetch_add(1, Ordering::Relaxed) < MAX_PRINTED_ERRORS {
            // An error line replaces the progress line; the next second redraws it.
            let clear = if live == Some(Redraw::InPlace) {
                REWRITE_LINE
            } else {
                ""
            };
            eprintln!("{clear}outpost bench: session {session}: {err}");
        }
    };
    let show_second = |second: &Second| match live {
        Some(Redraw::InPlace) => eprint!("{REWRITE_LINE}{}", progress_line(second)),
        Some(Redraw::NewLine) => eprintln!("{}", progress_line(second)),
        None => {}
    };
    let result = loadgen::run(opts, print_error, show_second);
    if live == Some(Redraw::InPlace) {
        eprint!("{REWRITE_LINE}");
    }
    match result {
        Ok(summary) => {
            print!("{}", report(opts, &summary));
            if let Some((path, out)) = &mut csv {
                let written = loadgen::csv::write(out, &settings, opts.latency_span(), &summary);
                if let Err(e) = written {
                    eprintln!("outpost bench: --csv {}: {e}", path.display());
                    return EXIT_FAILURE;
                }
            }
            let complete = summary.sent == (opts.sessions * opts.messages) as u64;
            if complete {
                EXIT_OK
            } else {
                EXIT_FAILURE
            }
        }
        Err(e) => {
            eprintln!("outpost bench: {e}");
            EXIT_FAILURE
        }
    }
}

/// When the live progress line is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Only when standard error is a terminal (the default).
    Auto,
    /// Always: rewritten in place on a terminal, a line a second otherwise.
    Always,
    /// Never (logs of scripted runs).
    Never,
}

/// How a shown progress line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redraw {
    /// Rewritten in place on a terminal.
    InPlace,
    /// One line a second, for a file or pipe.
    NewLine,
}

impl Progress {
    /// Whether and how the line is drawn, given whether standard error is a terminal.
    fn shown(self, terminal: bool) -> Option<Redraw> {
        match (self, terminal) {
            (Progress::Never, _) | (Progress::Auto, false) => None,
            (_, true) => Some(Redraw::InPlace),
            (Progress::Always, false) => Some(Redraw::NewLine),
        }
    }
}

/// The progress line for one second of the run.
fn progress_line(second: &Second) -> String {
    format!(
        "{:7.1} s  {} sent  {:.0} msgs/s  {} errors",
        second.end.as_secs_f64(),
        second.totals.sent,
        second.msgs_per_sec(),
        second.totals.errors,
    )
}

/// A run as the command line asks for it: the load, and how it is shown.
#[derive(Debug)]
pub struct BenchRun {
    /// What the load generator does.
    pub load: Options,
    /// When the live progress line is shown.
    pub progress: Progress,
    /// Where the time line and latency histogram go as CSV, if anywhere.
    pub csv: Option<PathBuf>,
}

/// Result of parsing: either options to run with, or a request for help.
#[derive(Debug)]
pub enum BenchArgs {
    /// Run with these options.
    Run(Box<BenchRun>),
    /// `--help` was given; print this usage text.
    Help(String),
}

/// Every option but `--help`, in the order of the usage text: its name,
/// what it does, and the hint for its value (`None`: a flag).
const OPTIONS: &[(&str, &str, Option<&str>)] = &[
    (
        "server",
        "target, loopback only (required)",
        Some("HOST:PORT"),
    ),
    ("sessions", "concurrent connections (16)", Some("N")),
    ("messages", "messages per session (100)", Some("M")),
    (
        "size",
        "message size, e.g. 1024, 1K, 64K, 10M (1K)",
        Some("S"),
    ),
    ("recipients", "recipients per message (1)", Some("R")),
    ("from", "reverse path (bench@example.com)", Some("ADDR")),
    ("to", "recipient (rcpt@example.net)", Some("ADDR")),
    (
        "pipelining",
        "send MAIL/RCPT/DATA in one write if offered",
        None,
    ),
    ("starttls", "upgrade with STARTTLS", None),
    ("tls", "implicit TLS (port 465 style)", None),
    (
        "auth",
        "authenticate with these credentials",
        Some("USER:PASS"),
    ),
    (
        "auth-mechanism",
        "AUTH PLAIN, or LOGIN as Outlook does (plain)",
        Some("plain|login"),
    ),
    ("insecure", "accept any server certificate", None),
    (
        "tls-resumption",
        "resume earlier TLS sessions; off: every handshake is full (on)",
        Some("on|off"),
    ),
    (
        "ca",
        "trust only the certificates in this PEM file",
        Some("FILE"),
    ),
    (
        "sni",
        "server name to ask for and verify (default: the --server address)",
        Some("NAME"),
    ),
    (
        "duration-limit",
        "hard stop, e.g. 60, 60s, 2m (60s)",
        Some("T"),
    ),
    ("reuse", "many messages per connection (default)", None),
    ("no-reuse", "one connection per message", None),
    ("helo", "EHLO name (bench.client)", Some("NAME")),
    (
        "progress",
        "live line each second on stderr; auto: on a terminal only (auto)",
        Some("auto|always|never"),
    ),
    (
        "csv",
        "write the time line and latency histogram as CSV (gnuplot data blocks)",
        Some("FILE"),
    ),
];

fn spec() -> getopts::Options {
    let mut o = getopts::Options::new();
    for &(name, what, hint) in OPTIONS {
        match hint {
            Some(hint) => o.optopt("", name, what, hint),
            None => o.optflag("", name, what),
        };
    }
    o.optflag("h", "help", "print this help");
    o
}

/// Usage text for `outpost bench`.
fn usage() -> String {
    spec().usage("Usage: outpost bench --server 127.0.0.1:PORT [options]")
}

/// Parses the arguments after `bench` (no program name).
pub fn parse(args: &[String]) -> Result<BenchArgs, UsageError> {
    let m = spec()
        .parse(args)
        .map_err(|e| UsageError::Arguments(e.to_string()))?;
    if m.opt_present("help") {
        return Ok(BenchArgs::Help(usage()));
    }
    if let Some(extra) = m.free.first() {
        return Err(UsageError::Arguments(format!(
            "unexpected argument '{extra}'"
        )));
    }
    let server = match m.opt_str("server") {
        Some(s) => loopback_target(&s).map_err(UsageError::Target)?,
        None => {
            return Err(UsageError::Arguments(
                "--server HOST:PORT is required".into(),
            ))
        }
    };
    let count = |name: &str, default: usize, max: usize| -> Result<usize, UsageError> {
        match m.opt_str(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(UsageError::Arguments(format!(
                    "--{name} wants a number from 1 to {max}, got '{v}'"
                ))),
            },
        }
    };
    let sessions = count("sessions", DEFAULT_SESSIONS, MAX_SESSIONS)?;
    let messages = count("messages", DEFAULT_MESSAGES, MAX_MESSAGES)?;
    let recipients = count("recipients", 1, MAX_RECIPIENTS)?;
    let size = match m.opt_str("size") {
        None => DEFAULT_SIZE,
        Some(v) => parse_size(&v)?,
    };
    let duration_limit = match m.opt_str("duration-limit") {
        None => DEFAULT_DURATION_LIMIT,
        Some(v) => parse_duration(&v)?,
    };
    let from = m
        .opt_str("from")
        .unwrap_or_else(|| "bench@example.com".into());
    let to = m.opt_str("to").unwrap_or_else(|| "rcpt@example.net".into());
    for (name, addr) in [("from", &from), ("to", &to)] {
        check_address(name, addr)?;
    }
    let security = match (m.opt_present("starttls"), m.opt_present("tls")) {
        (false, false) => Security::Plain,
        (true, false) => Security::StartTls,
        (false, true) => Security::Implicit,
        (true, true) => {
            return Err(UsageError::Arguments(
                "--starttls and --tls exclude each other".into(),
            ))
        }
    };
    let trust = match (m.opt_present("insecure"), m.opt_str("ca")) {
        (true, Some(_)) => {
            return Err(UsageError::Arguments(
                "--insecure and --ca exclude each other".into(),
            ))
        }
        (true, None) => Trust::Any,
        (false, Some(path)) => Trust::CaFile(PathBuf::from(path)),
        (false, None) => Trust::WebPkiRoots,
    };
    let sni = match m.opt_str("sni") {
        None => None,
        Some(name) => match rustls::pki_types::DnsName::try_from(name.as_str()) {
            Ok(_) => Some(name),
            Err(_) => {
                return Err(UsageError::Arguments(format!(
                    "--sni wants a DNS name, got '{name}'"
                )))
            }
        },
    };
    let auth = match m.opt_str("auth") {
        None => None,
        Some(v) => match v.split_once(':') {
            Some((user, pass)) if !user.is_empty() => Some((user.to_string(), pass.to_string())),
            _ => return Err(UsageError::Arguments("--auth wants USER:PASS".into())),
        },
    };
    let auth_mechanism = match m.opt_str("auth-mechanism").as_deref() {
        None | Some("plain") => AuthMechanism::Plain,
        Some("login") => AuthMechanism::Login,
        Some(other) => {
            return Err(UsageError::Arguments(format!(
                "--auth-mechanism wants plain or login, got '{other}'"
            )))
        }
    };
    if auth.is_none() && m.opt_present("auth-mechanism") {
        return Err(UsageError::Arguments(
            "--auth-mechanism needs --auth USER:PASS".into(),
        ));
    }
    let tls_resumption = match m.opt_str("tls-resumption").as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(UsageError::Arguments(format!(
                "--tls-resumption wants on or off, got '{other}'"
            )))
        }
    };
    let progress = match m.opt_str("progress").as_deref() {
        None | Some("auto") => Progress::Auto,
        Some("always") => Progress::Always,
        Some("never") => Progress::Never,
        Some(other) => {
            return Err(UsageError::Arguments(format!(
                "--progress wants auto, always or never, got '{other}'"
            )))
        }
    };
    let csv = match m.opt_str("csv") {
        Some(path) if path.is_empty() => {
            return Err(UsageError::Arguments("--csv wants a file name".into()))
        }
        other => other.map(PathBuf::from),
    };
    let reuse = match (m.opt_present("reuse"), m.opt_present("no-reuse")) {
        (true, true) => {
            return Err(UsageError::Arguments(
                "--reuse and --no-reuse exclude each other".into(),
            ))
        }
        (_, no_reuse) => !no_reuse,
    };
    let helo = m.opt_str("helo").unwrap_or_else(|| "bench.client".into());
    if helo.is_empty() || helo.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(UsageError::Arguments(format!("bad --helo name '{helo}'")));
    }
    let load = Options {
        server,
        sessions,
        messages,
        size,
        recipients,
        from,
        to,
        pipelining: m.opt_present("pipelining"),
        security,
        trust,
        sni,
        auth,
        auth_mechanism,
        tls_resumption,
        duration_limit,
        reuse,
        helo,
    };
    Ok(BenchArgs::Run(Box::new(BenchRun {
        load,
        progress,
        csv,
    })))
}

/// Parses a size: plain bytes, or with a K/M suffix (powers of 1024; `KiB`/`MiB` too).
fn parse_size(s: &str) -> Result<usize, UsageError> {
    match crate::units::parse_size(s) {
        Ok(size) if (MIN_SIZE..=MAX_SIZE).contains(&size) => Ok(size),
        _ => Err(UsageError::Arguments(format!(
            "--size wants bytes from {MIN_SIZE} to {MAX_SIZE}, e.g. 1024, 1K, 64K, 10M; got '{s}'"
        ))),
    }
}

/// Parses `--duration-limit`: e.g. `60`, `60s`, `2m` (1 s to 24 h).
fn parse_duration(s: &str) -> Result<Duration, UsageError> {
    match crate::units::parse_duration(s) {
        Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&d) => Ok(d),
        _ => Err(UsageError::Arguments(format!(
            "--duration-limit wants e.g. 60, 60s or 2m (1 s to 24 h); got '{s}'"
        ))),
    }
}

/// A mailbox for MAIL/RCPT: something@something, nothing that could break the
/// command line (RFC 5321 §4.1.2 forbids spaces and controls in a path).
fn check_address(name: &str, addr: &str) -> Result<(), UsageError> {
    let ok = addr
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && addr
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && b != b'<' && b != b'>');
    if ok {
        Ok(())
    } else {
        Err(UsageError::Arguments(format!(
            "--{name} wants an address like user@example.com, got '{addr}'"
        )))
    }
}

/// The line printed before the run: the target and every setting.
fn describe(opts: &Options) -> String {
    let security = match opts.security {
        Security::Plain => "plain",
        Security::StartTls => "starttls",
        Security::Implicit => "tls",
    };
    format!(
        "outpost bench: {} sessions={} messages/session={} size={} recipients={} {} security={}{} auth={} pipelining={} limit={}s",
        opts.server,
        opts.sessions,
        opts.messages,
        opts.size,
        opts.recipients,
        if opts.reuse { "reuse" } else { "no-reuse" },
        security,
        if opts.security != Security::Plain && !opts.tls_resumption {
            " tls-resumption=off"
        } else {
            ""
        },
        match (&opts.auth, opts.auth_mechanism) {
            (None, _) => "none",
            (Some(_), AuthMechanism::Plain) => "plain",
            (Some(_), AuthMechanism::Login) => "login",
        },
        if opts.pipelining { "if-offered" } else { "no" },
        opts.duration_limit.as_secs(),
    )
}

/// The human-readable report and the one machine-readable `result` line.
fn report(opts: &Options, s: &Summary) -> String {
    let l = &s.latency;
    let secs = s.elapsed.as_secs_f64();
    let mut out = format!(
        "messages: {} sent, {} failed, {} not attempted (error replies {}, connection errors {}{})\n\
         connections: {} ({:.1}/s), pipelining used on {}, TLS resumed on {}\n\
         elapsed: {secs:.3} s\n\
         rate: {:.1} msgs/s, {:.2} MB/s\n\
         latency ms ({}): p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}\n",
        s.sent,
        s.failed,
        s.not_attempted,
        s.error_replies,
        s.connection_errors,
        if s.stuck_sessions > 0 {
            format!(", {} sessions stuck", s.stuck_sessions)
        } else {
            String::new()
        },
        s.connections,
        s.sessions_per_sec(),
        s.pipelined_connections,
        s.tls_resumed,
        s.msgs_per_sec(),
        s.mb_per_sec(opts.size),
        opts.latency_span(),
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        l.max_ms,
    );
    out.push_str(&format!(
        "result sessions={} size={} msgs={} secs={secs:.3} msgs_per_s={:.1} mb_per_s={:.2} p50_ms={:.3} p99_ms={:.3}\n",
        opts.sessions,
        opts.size,
        s.sent,
        s.msgs_per_sec(),
        s.mb_per_sec(opts.size),
        l.p50_ms,
        l.p99_ms,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::Latency;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run_args(s: &str) -> BenchRun {
        match parse(&args(s)).unwrap() {
            BenchArgs::Run(o) => *o,
            BenchArgs::Help(_) => panic!("help for {s}"),
        }
    }

    fn run_opts(s: &str) -> Options {
        run_args(s).load
    }

    #[test]
    fn defaults() {
        let o = run_opts("--server 127.0.0.1:2525");
        assert_eq!(o.server, "127.0.0.1:2525".parse().unwrap());
        assert_eq!(o.sessions, 16);
        assert_eq!(o.messages, 100);
        assert_eq!(o.size, 1024);
        assert_eq!(o.recipients, 1);
        assert_eq!(o.from, "bench@example.com");
        assert_eq!(o.to, "rcpt@example.net");
        assert!(!o.pipelining);
        assert_eq!(o.security, Security::Plain);
        assert_eq!(o.trust, Trust::WebPkiRoots);
        assert_eq!(o.auth, None);
        assert_eq!(o.duration_limit, Duration::from_secs(60));
        assert!(o.reuse);
        assert_eq!(o.auth_mechanism, AuthMechanism::Plain);
        assert!(o.tls_resumption);
        let run = run_args("--server 127.0.0.1:2525");
        assert_eq!((run.progress, run.csv), (Progress::Auto, None));
    }

    #[test]
    fn auth_mechanism_progress_and_csv() {
        let run = run_args(
            "--server 127.0.0.1:587 --auth a@b.c:pw --auth-mechanism login \
             --progress never --csv /tmp/run.csv",
        );
        assert_eq!(run.load.auth_mechanism, AuthMechanism::Login);
        assert_eq!(run.progress, Progress::Never);
        assert_eq!(run.csv, Some(PathBuf::from("/tmp/run.csv")));
        let mechanism = |m| {
            run_opts(&format!(
                "--server 127.0.0.1:587 --auth a:b --auth-mechanism {m}"
            ))
            .auth_mechanism
        };
        assert_eq!(mechanism("plain"), AuthMechanism::Plain);
        assert_eq!(mechanism("login"), AuthMechanism::Login);
        assert!(!run_opts("--server 127.0.0.1:25 --tls-resumption off").tls_resumption);
        assert!(run_opts("--server 127.0.0.1:25 --tls-resumption on").tls_resumption);
        assert_eq!(
            run_args("--server 127.0.0.1:25 --progress always").progress,
            Progress::Always
        );
        assert_eq!(
            run_args("--server 127.0.0.1:25 --progress auto").progress,
            Progress::Auto
        );
    }

    #[test]
    fn progress_is_drawn_in_place_only_on_a_terminal() {
        for (progress, terminal, want) in [
            (Progress::Auto, true, Some(Redraw::InPlace)),
            (Progress::Auto, false, None),
            (Progress::Always, true, Some(Redraw::InPlace)),
            (Progress::Always, false, Some(Redraw::NewLine)),
            (Progress::Never, true, None),
            (Progress::Never, false, None),
        ] {
            assert_eq!(progress.shown(terminal), want, "{progress:?} {terminal}");
        }
    }

    #[test]
    fn progress_line_text() {
        let second = Second {
            end: Duration::from_secs(12),
            length: Duration::from_millis(500),
            totals: loadgen::Totals {
                sent: 10234,
                sessions_opened: 16,
                errors: 3,
            },
            within: loadgen::Totals {
                sent: 406,
                sessions_opened: 0,
                errors: 1,
            },
        };
        assert_eq!(
            progress_line(&second),
            "   12.0 s  10234 sent  812 msgs/s  3 errors"
        );
    }

    #[test]
    fn everything_set() {
        let o = run_opts(
            "--server [::1]:587 --sessions 4 --messages 7 --size 64K --recipients 3 \
             --from a@b.c --to d@e.f --pipelining --starttls --auth bob:s3:cret \
             --insecure --duration-limit 2m --no-reuse --helo me.test",
        );
        assert_eq!(o.server, "[::1]:587".parse().unwrap());
        assert_eq!(
            (o.sessions, o.messages, o.size, o.recipients),
            (4, 7, 65536, 3)
        );
        assert_eq!((o.from.as_str(), o.to.as_str()), ("a@b.c", "d@e.f"));
        assert!(o.pipelining);
        assert_eq!(o.security, Security::StartTls);
        assert_eq!(o.trust, Trust::Any);
        // Only the first colon splits: passwords may contain colons.
        assert_eq!(o.auth, Some(("bob".into(), "s3:cret".into())));
        assert_eq!(o.duration_limit, Duration::from_secs(120));
        assert!(!o.reuse);
        assert_eq!(o.helo, "me.test");
        assert_eq!(o.sni, None);
        assert_eq!(
            run_opts("--server 127.0.0.1:25 --sni mx.test")
                .sni
                .as_deref(),
            Some("mx.test")
        );
        assert_eq!(
            run_opts("--server 127.0.0.1:465 --tls").security,
            Security::Implicit
        );
    }

    #[test]
    fn help() {
        assert!(matches!(
            parse(&args("--help")).unwrap(),
            BenchArgs::Help(_)
        ));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            "",
            "--server 127.0.0.1:25 --sessions 0",
            "--server 127.0.0.1:25 --sessions x",
            "--server 127.0.0.1:25 --messages -1",
            "--server 127.0.0.1:25 --recipients 101",
            "--server 127.0.0.1:25 --size 12",
            "--server 127.0.0.1:25 --size 1G",
            "--server 127.0.0.1:25 --starttls --tls",
            "--server 127.0.0.1:25 --insecure --ca x.pem",
            "--server 127.0.0.1:25 --sni 127.0.0.1",
            "--server 127.0.0.1:25 --sni bad_name!",
            "--server 127.0.0.1:25 --reuse --no-reuse",
            "--server 127.0.0.1:25 --auth nopassword",
            "--server 127.0.0.1:25 --auth :pw",
            "--server 127.0.0.1:25 --auth a:b --auth-mechanism cram-md5",
            "--server 127.0.0.1:25 --auth-mechanism login",
            "--server 127.0.0.1:25 --progress sometimes",
            "--server 127.0.0.1:25 --tls-resumption maybe",
            "--server 127.0.0.1:25 --csv",
            "--server 127.0.0.1:25 --from nobody",
            "--server 127.0.0.1:25 --to a<b@c",
            "--server 127.0.0.1:25 --duration-limit 0",
            "--server 127.0.0.1:25 stray",
            "--server 127.0.0.1:25 --bogus",
            "--server 127.0.0.1:0",
        ] {
            assert!(
                matches!(parse(&args(bad)), Err(e) if e.wants_usage()),
                "accepted: {bad}"
            );
        }
    }

    #[test]
    fn other_machines_are_refused_without_the_usage_text() {
        match parse(&args("--server 10.1.1.1:25")) {
            Err(e @ UsageError::Target(TargetError::NotLoopback(_))) => assert!(!e.wants_usage()),
            other => panic!("{other:?}"),
        }
        match parse(&args("--server localhost:x")) {
            Err(e @ UsageError::Target(TargetError::BadPort(_))) => assert!(e.wants_usage()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sizes() {
        for (input, want) in [
            ("1024", Some(1024)),
            ("1K", Some(1024)),
            ("1k", Some(1024)),
            ("64K", Some(65536)),
            ("64KiB", Some(65536)),
            ("10M", Some(10 * 1024 * 1024)),
            ("10MB", Some(10_000_000)),
            ("256", Some(256)),
            ("255", None),
            ("101M", None),
            ("", None),
            ("K", None),
            ("1.5K", None),
            ("1X", None),
            ("99999999999999999999K", None),
        ] {
            assert_eq!(parse_size(input).ok(), want, "{input}");
        }
    }

    #[test]
    fn durations() {
        for (input, want) in [
            ("60", Some(60)),
            ("5s", Some(5)),
            ("2m", Some(120)),
            ("0", None),
            ("-1", None),
            ("1h", Some(3600)),
            ("2d", None),
            ("s", None),
            ("86401", None),
        ] {
            assert_eq!(
                parse_duration(input).ok(),
                want.map(Duration::from_secs),
                "{input}"
            );
        }
    }

    #[test]
    fn result_line() {
        let opts = run_opts("--server 127.0.0.1:25");
        let summary = Summary {
            sent: 2000,
            failed: 0,
            not_attempted: 0,
            error_replies: 0,
            connection_errors: 0,
            connections: 16,
            pipelined_connections: 0,
            tls_resumed: 0,
            stuck_sessions: 0,
            elapsed: Duration::from_secs(2),
            latency: Latency {
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: 3.0,
                max_ms: 4.0,
            },
            timeline: Vec::new(),
            histogram: Vec::new(),
        };
        let text = report(&opts, &summary);
        assert!(text.contains("2000 sent, 0 failed"));
        assert!(text.contains("connections: 16 (8.0/s), pipelining used on 0, TLS resumed on 0"));
        assert!(text.contains("latency ms (MAIL sent to final reply): p50 1.000"));
        assert!(text.ends_with(
            "result sessions=16 size=1024 msgs=2000 secs=2.000 msgs_per_s=1000.0 mb_per_s=1.02 p50_ms=1.000 p99_ms=3.000\n"
        ));
    }

    #[test]
    fn refuses_non_loopback_with_exit_2() {
        assert_eq!(run(&args("--server 192.0.2.1:25")), EXIT_USAGE);
        assert_eq!(run(&args("--sessions 3")), EXIT_USAGE);
    }
}
