//! Command-line options of `outpost bench`, and the loopback guard: the load
//! generator may only ever be pointed at this machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::LoadgenError;

/// Default number of concurrent sessions (the same as the anchors' smtp-source runs).
pub const DEFAULT_SESSIONS: usize = 16;
/// Default number of messages each session sends.
pub const DEFAULT_MESSAGES: usize = 100;
/// Default message size in bytes.
pub const DEFAULT_SIZE: usize = 1024;
/// Default hard stop for the whole run.
pub const DEFAULT_DURATION_LIMIT: Duration = Duration::from_secs(60);
/// Smallest message: room for the generated header block.
pub const MIN_SIZE: usize = 256;
/// Largest message; every session shares one copy, but the server may not.
pub const MAX_SIZE: usize = 100 * 1024 * 1024;
/// Upper bound on concurrent sessions: one OS thread each.
pub const MAX_SESSIONS: usize = 4096;
/// Upper bound on messages per session, so every run is bounded in count.
pub const MAX_MESSAGES: usize = 10_000_000;
/// RFC 5321 §4.5.3.1.8: servers must accept at least 100 recipients; more is pointless here.
pub const MAX_RECIPIENTS: usize = 100;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP.
    Plain,
    /// Plain greeting, then STARTTLS (RFC 3207).
    StartTls,
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
}

/// How certificates presented by the server are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The webpki (Mozilla) roots.
    WebPkiRoots,
    /// Only the certificates in this PEM file.
    CaFile(PathBuf),
    /// Any certificate (`--insecure`); signatures are still checked.
    Any,
}

/// Everything one run needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Target; always a loopback address.
    pub server: SocketAddr,
    /// Concurrent connections, one thread each.
    pub sessions: usize,
    /// Messages per session.
    pub messages: usize,
    /// Message size in bytes (headers and body, before dot-stuffing).
    pub size: usize,
    /// Recipients per message.
    pub recipients: usize,
    /// Reverse path.
    pub from: String,
    /// First recipient; further recipients get `+N` before the `@`.
    pub to: String,
    /// Send MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Transport security.
    pub security: Security,
    /// Certificate checking for `security != Plain`.
    pub trust: Trust,
    /// AUTH PLAIN credentials (user, password).
    pub auth: Option<(String, String)>,
    /// Hard stop for the whole run.
    pub duration_limit: Duration,
    /// Many messages per connection (true) or one connection per message.
    pub reuse: bool,
    /// EHLO name.
    pub helo: String,
}

/// Result of parsing: either options to run with, or a request for help.
#[derive(Debug)]
pub enum Parsed {
    /// Run with these options.
    Run(Box<Options>),
    /// `--help` was given; print this usage text.
    Help(String),
}

fn spec() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt(
        "",
        "server",
        "target, loopback only (required)",
        "HOST:PORT",
    );
    o.optopt("", "sessions", "concurrent connections (16)", "N");
    o.optopt("", "messages", "messages per session (100)", "M");
    o.optopt(
        "",
        "size",
        "message size, e.g. 1024, 1K, 64K, 10M (1K)",
        "S",
    );
    o.optopt("", "recipients", "recipients per message (1)", "R");
    o.optopt("", "from", "reverse path (bench@example.com)", "ADDR");
    o.optopt("", "to", "recipient (rcpt@example.net)", "ADDR");
    o.optflag(
        "",
        "pipelining",
        "send MAIL/RCPT/DATA in one write if offered",
    );
    o.optflag("", "starttls", "upgrade with STARTTLS");
    o.optflag("", "tls", "implicit TLS (port 465 style)");
    o.optopt("", "auth", "AUTH PLAIN with these credentials", "USER:PASS");
    o.optflag("", "insecure", "accept any server certificate");
    o.optopt(
        "",
        "ca",
        "trust only the certificates in this PEM file",
        "FILE",
    );
    o.optopt(
        "",
        "duration-limit",
        "hard stop, e.g. 60, 60s, 2m (60s)",
        "T",
    );
    o.optflag("", "reuse", "many messages per connection (default)");
    o.optflag("", "no-reuse", "one connection per message");
    o.optopt("", "helo", "EHLO name (bench.client)", "NAME");
    o.optflag("h", "help", "print this help");
    o
}

/// Usage text for `outpost bench`.
pub fn usage() -> String {
    spec().usage("Usage: outpost bench --server 127.0.0.1:PORT [options]")
}

/// Parses the arguments after `bench` (no program name).
pub fn parse(args: &[String]) -> Result<Parsed, LoadgenError> {
    let m = spec()
        .parse(args)
        .map_err(|e| LoadgenError::Usage(e.to_string()))?;
    if m.opt_present("help") {
        return Ok(Parsed::Help(usage()));
    }
    if let Some(extra) = m.free.first() {
        return Err(LoadgenError::Usage(format!(
            "unexpected argument '{extra}'"
        )));
    }
    let server = match m.opt_str("server") {
        Some(s) => loopback_target(&s)?,
        None => return Err(LoadgenError::Usage("--server HOST:PORT is required".into())),
    };
    let count = |name: &str, default: usize, max: usize| -> Result<usize, LoadgenError> {
        match m.opt_str(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(LoadgenError::Usage(format!(
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
            return Err(LoadgenError::Usage(
                "--starttls and --tls exclude each other".into(),
            ))
        }
    };
    let trust = match (m.opt_present("insecure"), m.opt_str("ca")) {
        (true, Some(_)) => {
            return Err(LoadgenError::Usage(
                "--insecure and --ca exclude each other".into(),
            ))
        }
        (true, None) => Trust::Any,
        (false, Some(path)) => Trust::CaFile(PathBuf::from(path)),
        (false, None) => Trust::WebPkiRoots,
    };
    let auth = match m.opt_str("auth") {
        None => None,
        Some(v) => match v.split_once(':') {
            Some((user, pass)) if !user.is_empty() => Some((user.to_string(), pass.to_string())),
            _ => return Err(LoadgenError::Usage("--auth wants USER:PASS".into())),
        },
    };
    let reuse = match (m.opt_present("reuse"), m.opt_present("no-reuse")) {
        (true, true) => {
            return Err(LoadgenError::Usage(
                "--reuse and --no-reuse exclude each other".into(),
            ))
        }
        (_, no_reuse) => !no_reuse,
    };
    let helo = m.opt_str("helo").unwrap_or_else(|| "bench.client".into());
    if helo.is_empty() || helo.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(LoadgenError::Usage(format!("bad --helo name '{helo}'")));
    }
    Ok(Parsed::Run(Box::new(Options {
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
        auth,
        duration_limit,
        reuse,
        helo,
    })))
}

/// Parses `HOST:PORT` and refuses anything that is not loopback (127.0.0.0/8, ::1,
/// or `localhost`). Names other than `localhost` are refused rather than resolved:
/// a benchmark must never send load to another machine by accident.
pub fn loopback_target(s: &str) -> Result<SocketAddr, LoadgenError> {
    let addr = if let Some(port) = s.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| LoadgenError::Usage(format!("bad port in '{s}'")))?;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else {
        match s.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                return Err(LoadgenError::NotLoopback(format!(
                    "'{s}' is not an IP address with a port; only 127.0.0.0/8, [::1] or localhost are allowed"
                )))
            }
        }
    };
    if addr.port() == 0 {
        return Err(LoadgenError::Usage(format!("port 0 in '{s}'")));
    }
    if !addr.ip().to_canonical().is_loopback() {
        return Err(LoadgenError::NotLoopback(format!(
            "{} is not a loopback address; only 127.0.0.0/8 and ::1 are allowed",
            addr.ip()
        )));
    }
    Ok(addr)
}

/// Parses a size: plain bytes, or with a K/M suffix (powers of 1024; `KiB`/`MiB` too).
pub fn parse_size(s: &str) -> Result<usize, LoadgenError> {
    match crate::units::parse_size(s) {
        Ok(size) if (MIN_SIZE..=MAX_SIZE).contains(&size) => Ok(size),
        _ => Err(LoadgenError::Usage(format!(
            "--size wants bytes from {MIN_SIZE} to {MAX_SIZE}, e.g. 1024, 1K, 64K, 10M; got '{s}'"
        ))),
    }
}

/// Parses `--duration-limit`: e.g. `60`, `60s`, `2m` (1 s to 24 h).
pub fn parse_duration(s: &str) -> Result<Duration, LoadgenError> {
    match crate::units::parse_duration(s) {
        Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&d) => Ok(d),
        _ => Err(LoadgenError::Usage(format!(
            "--duration-limit wants e.g. 60, 60s or 2m (1 s to 24 h); got '{s}'"
        ))),
    }
}

/// A mailbox for MAIL/RCPT: something@something, nothing that could break the
/// command line (RFC 5321 §4.1.2 forbids spaces and controls in a path).
fn check_address(name: &str, addr: &str) -> Result<(), LoadgenError> {
    let ok = addr
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && addr
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && b != b'<' && b != b'>');
    if ok {
        Ok(())
    } else {
        Err(LoadgenError::Usage(format!(
            "--{name} wants an address like user@example.com, got '{addr}'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run_opts(s: &str) -> Options {
        match parse(&args(s)).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help(_) => panic!("help for {s}"),
        }
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
        assert_eq!(
            run_opts("--server 127.0.0.1:465 --tls").security,
            Security::Implicit
        );
    }

    #[test]
    fn help() {
        assert!(matches!(parse(&args("--help")).unwrap(), Parsed::Help(_)));
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
            "--server 127.0.0.1:25 --reuse --no-reuse",
            "--server 127.0.0.1:25 --auth nopassword",
            "--server 127.0.0.1:25 --auth :pw",
            "--server 127.0.0.1:25 --from nobody",
            "--server 127.0.0.1:25 --to a<b@c",
            "--server 127.0.0.1:25 --duration-limit 0",
            "--server 127.0.0.1:25 stray",
            "--server 127.0.0.1:25 --bogus",
            "--server 127.0.0.1:0",
        ] {
            assert!(
                matches!(parse(&args(bad)), Err(LoadgenError::Usage(_))),
                "accepted: {bad}"
            );
        }
    }

    #[test]
    fn loopback_guard() {
        for (input, want) in [
            ("127.0.0.1:25", Some("127.0.0.1:25")),
            ("127.1.2.3:2525", Some("127.1.2.3:2525")),
            ("[::1]:25", Some("[::1]:25")),
            ("localhost:587", Some("127.0.0.1:587")),
            ("[::ffff:127.0.0.1]:25", Some("[::ffff:127.0.0.1]:25")),
            ("10.0.0.1:25", None),
            ("192.168.1.1:25", None),
            ("0.0.0.0:25", None),
            ("[::]:25", None),
            ("[2001:db8::1]:25", None),
            ("[::ffff:10.0.0.1]:25", None),
            ("example.com:25", None),
            ("localhost.example.com:25", None),
            ("127.0.0.1", None),
        ] {
            let got = loopback_target(input).ok();
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{input}");
        }
        assert!(matches!(
            parse(&args("--server 10.1.1.1:25")),
            Err(LoadgenError::NotLoopback(_))
        ));
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
}
