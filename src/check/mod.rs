//! `outpost check`: a client-side diagnosis of the usual mail setup
//! problems, in plain words. It probes ports (`HOST:PORT`: plaintext SMTP,
//! STARTTLS or implicit TLS, the certificate, AUTH), a domain's MX and SPF
//! records (`--dns`) and whether outbound port 25 works (`--outbound`).
//!
//! Owns the command line and the order of the checks; `probe` holds the
//! socket and TLS code, `lookup` the DNS questions, `findings` the
//! judgment (pure, unit-tested).

mod findings;
mod lookup;
mod probe;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::RootCertStore;

use crate::delivery::dns::{DnsError, Resolver, ResolverConfig};
use crate::tls::TlsError;
use findings::{Attempt, Finding, Level};
use probe::{Settings, Target};

/// Exit code when every check passed.
const EXIT_OK: i32 = 0;
/// Exit code when a check found a problem.
const EXIT_PROBLEM: i32 = 1;
/// Exit code for a usage error.
const EXIT_USAGE: i32 = 2;
/// `--timeout` when not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `--outbound` tries at most this many mail host addresses.
const MAX_OUTBOUND_ATTEMPTS: usize = 4;

/// What to check, from the command line.
struct Request {
    targets: Vec<String>,
    dns: Option<String>,
    outbound: Option<String>,
    outbound_port: u16,
    timeout: Duration,
    sni: Option<String>,
    ca_file: Option<PathBuf>,
    dns_server: Option<SocketAddr>,
    ehlo_name: String,
}

enum Parsed {
    Run(Request),
    Help,
}

/// Why the command line cannot be run (exit code 2).
#[derive(Debug)]
enum UsageError {
    /// getopts refused the arguments (unknown option, missing value …).
    Options(getopts::Fail),
    /// `--timeout` is not a duration.
    Timeout {
        /// The value given.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// `--timeout` is zero.
    ZeroTimeout,
    /// `--port` is not a port number (1 to 65535).
    Port(String),
    /// `--dns-server` is neither IP nor IP:PORT.
    DnsServer(String),
    /// A target is not `HOST:PORT`.
    Target(String),
    /// A target's port is not a port number.
    TargetPort {
        /// The target as given.
        target: String,
        /// Its port part.
        port: String,
    },
    /// Neither a target nor `--dns` nor `--outbound` was given.
    NothingToCheck,
    /// The `--ca-file` certificates cannot be used.
    CaFile(TlsError),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Options(e) => write!(f, "{e}"),
            UsageError::Timeout { value, reason } => write!(f, "--timeout {value:?}: {reason}"),
            UsageError::ZeroTimeout => write!(f, "--timeout must be more than zero"),
            UsageError::Port(value) => write!(f, "--port: {value:?} is not a port number"),
            UsageError::DnsServer(value) => {
                write!(f, "--dns-server {value:?}: expected IP or IP:PORT")
            }
            UsageError::Target(target) => {
                write!(
                    f,
                    "{target:?}: expected HOST:PORT, e.g. mail.example.com:587"
                )
            }
            UsageError::TargetPort { target, port } => {
                write!(f, "{target:?}: {port:?} is not a port number")
            }
            UsageError::NothingToCheck => write!(
                f,
                "nothing to check: give HOST:PORT, --dns DOMAIN or --outbound DOMAIN"
            ),
            UsageError::CaFile(e) => write!(f, "--ca-file: {e}"),
        }
    }
}

/// Why a host name gave no address.
#[derive(Debug)]
enum ResolveError {
    /// The `--dns-server` lookup failed.
    Dns(DnsError),
    /// The system's resolver failed.
    System(io::Error),
    /// The name exists but has no address.
    NoAddress,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Dns(e) => write!(f, "{e}"),
            ResolveError::System(e) => write!(f, "{e}"),
            ResolveError::NoAddress => write!(f, "no address"),
        }
    }
}

fn spec() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt(
        "",
        "timeout",
        "bound on each connect and reply (10s)",
        "DURATION",
    );
    o.optopt(
        "",
        "sni",
        "certificate name to check (default: the HOST of HOST:PORT)",
        "NAME",
    );
    o.optopt(
        "",
        "ca-file",
        "also trust these CA or self-signed certificates (PEM)",
        "FILE",
    );
    o.optopt(
        "",
        "dns",
        "check the MX and SPF records of DOMAIN",
        "DOMAIN",
    );
    o.optopt(
        "",
        "outbound",
        "check that port 25 of DOMAIN's mail hosts can be reached",
        "DOMAIN",
    );
    o.optopt("", "port", "the port --outbound connects to (25)", "PORT");
    o.optopt(
        "",
        "dns-server",
        "ask this DNS server (default: /etc/resolv.conf)",
        "IP[:PORT]",
    );
    o.optopt(
        "",
        "ehlo",
        "the name sent with EHLO (default: the system host name)",
        "NAME",
    );
    o.optflag("h", "help", "show this help");
    o
}

fn usage() -> String {
    spec().usage(
        "Usage: outpost check [OPTIONS] [HOST:PORT...] [--dns DOMAIN] [--outbound DOMAIN]\n\n\
         Diagnoses mail setup problems and says what to do. For each HOST:PORT: what the\n\
         port speaks (plaintext SMTP with STARTTLS, or implicit TLS), the certificate and\n\
         the login methods, and what to choose in a mail client. Each finding is one line\n\
         starting with ok, warning or error; problems have a `fix:` line.\n\
         Exit code: 0 all ok, 1 a problem was found, 2 usage error.",
    )
}

fn parse(args: &[String]) -> Result<Parsed, UsageError> {
    let matches = spec().parse(args).map_err(UsageError::Options)?;
    if matches.opt_present("help") {
        return Ok(Parsed::Help);
    }
    let timeout = match matches.opt_str("timeout") {
        Some(value) => crate::units::parse_duration(&value)
            .map_err(|reason| UsageError::Timeout { value, reason })?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(UsageError::ZeroTimeout);
    }
    let outbound_port = match matches.opt_str("port") {
        Some(value) => parse_port(&value).ok_or(UsageError::Port(value))?,
        None => 25,
    };
    let dns_server = match matches.opt_str("dns-server") {
        Some(value) => Some(parse_dns_server(&value)?),
        None => None,
    };
    let request = Request {
        targets: matches.free.clone(),
        dns: matches.opt_str("dns"),
        outbound: matches.opt_str("outbound"),
        outbound_port,
        timeout,
        sni: matches.opt_str("sni"),
        ca_file: matches.opt_str("ca-file").map(PathBuf::from),
        dns_server,
        ehlo_name: matches
            .opt_str("ehlo")
            .unwrap_or_else(crate::config::system_hostname),
    };
    if request.targets.is_empty() && request.dns.is_none() && request.outbound.is_none() {
        return Err(UsageError::NothingToCheck);
    }
    for target in &request.targets {
        split_host_port(target)?;
    }
    Ok(Parsed::Run(request))
}

/// A port number from 1 to 65535.
fn parse_port(value: &str) -> Option<u16> {
    value.parse::<u16>().ok().filter(|&port| port > 0)
}

fn parse_dns_server(value: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    value
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| UsageError::DnsServer(value.to_string()))
}

/// Splits `HOST:PORT` (an IPv6 address as `[::1]:587` or `::1:587`) into host and port.
fn split_host_port(target: &str) -> Result<(String, u16), UsageError> {
    let bad = || UsageError::Target(target.to_string());
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && host.parse::<IpAddr>().is_err() {
        return Err(bad());
    }
    let port = parse_port(port).ok_or_else(|| UsageError::TargetPort {
        target: target.to_string(),
        port: port.to_string(),
    })?;
    Ok((host.to_string(), port))
}

/// Runs `outpost check` with the arguments after `check`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let request = match parse(args) {
        Ok(Parsed::Run(request)) => request,
        Ok(Parsed::Help) => {
            print!("{}", usage());
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("outpost check: {e}\n");
            eprint!("{}", usage());
            return EXIT_USAGE;
        }
    };
    let roots = match trusted_roots(request.ca_file.as_ref()) {
        Ok(roots) => roots,
        Err(e) => {
            eprintln!("outpost check: {e}");
            return EXIT_USAGE;
        }
    };
    let settings = Settings {
        timeout: request.timeout,
        ehlo_name: request.ehlo_name.clone(),
        roots,
    };
    let mut problems = false;
    let mut report = |findings: Vec<Finding>| {
        for finding in findings {
            problems |= finding.level != Level::Ok;
            println!("{finding}");
        }
    };
    let resolver = resolver(&request);
    for target in &request.targets {
        report(check_port(
            target,
            &request,
            resolver.as_ref().ok(),
            &settings,
        ));
    }
    for (domain, outbound) in [(&request.dns, false), (&request.outbound, true)] {
        let Some(domain) = domain else { continue };
        let resolver = match &resolver {
            Ok(resolver) => resolver,
            Err(e) => {
                report(vec![no_resolver(domain, e)]);
                continue;
            }
        };
        let hosts = lookup::mail_hosts(resolver, domain);
        if outbound {
            let attempts = outbound_attempts(domain, &hosts, &request);
            report(findings::outbound_findings(
                domain,
                request.outbound_port,
                &hosts,
                &attempts,
            ));
        } else {
            report(findings::dns_findings(domain, &hosts));
            if !matches!(hosts, lookup::MailHosts::NoDomain) {
                let spf = lookup::spf_records(resolver, domain);
                report(findings::spf_findings(domain, &spf));
            }
        }
    }
    if problems {
        EXIT_PROBLEM
    } else {
        EXIT_OK
    }
}

fn no_resolver(subject: &str, error: &DnsError) -> Finding {
    Finding::error(
        subject,
        format!("cannot ask DNS: {error}"),
        "pass --dns-server IP",
    )
}

/// The resolver of `--dns-server`, or of /etc/resolv.conf.
fn resolver(request: &Request) -> Result<Resolver, DnsError> {
    let config = match request.dns_server {
        Some(server) => ResolverConfig::with_server(server),
        None => ResolverConfig::from_system()?,
    };
    Ok(Resolver::new(ResolverConfig {
        timeout: config.timeout.min(request.timeout),
        ..config
    }))
}

/// The public CAs plus the certificates of `--ca-file`.
fn trusted_roots(ca_file: Option<&PathBuf>) -> Result<Arc<RootCertStore>, UsageError> {
    let roots =
        crate::tls::trusted_roots(ca_file.map(PathBuf::as_path)).map_err(UsageError::CaFile)?;
    Ok(Arc::new(roots))
}

/// Probes one `HOST:PORT` (already validated by `parse`).
fn check_port(
    target: &str,
    request: &Request,
    resolver: Option<&Resolver>,
    settings: &Settings,
) -> Vec<Finding> {
    let failed = |message: String, fix: &str| vec![Finding::error(target, message, fix)];
    let (host, port) = match split_host_port(target) {
        Ok(parts) => parts,
        Err(e) => return failed(e.to_string(), "write the target as HOST:PORT"),
    };
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match resolve(&host, port, request.dns_server.and(resolver)) {
            Ok(ip) => ip,
            Err(e) => return failed(format!("cannot resolve {host}: {e}"), "check the host name"),
        },
    };
    let checked_name = match (&request.sni, host.parse::<IpAddr>().is_ok()) {
        (Some(sni), _) => Some(sni.clone()),
        (None, true) => None,
        (None, false) => Some(host.clone()),
    };
    let tls_name = match &checked_name {
        Some(name) => match ServerName::try_from(name.clone()) {
            Ok(name) => name,
            Err(_) => return failed(format!("{name:?} is not a valid host name"), "check --sni"),
        },
        None => ServerName::IpAddress(ip.into()),
    };
    let probe_target = Target {
        addr: SocketAddr::new(ip, port),
        tls_name,
        checked_name,
    };
    let outcome = probe::probe_port(&probe_target, settings);
    findings::port_findings(target, port, &outcome)
}

/// The first address of `host`: through `resolver` (`--dns-server`) when
/// given, else through the system's resolver (which also reads /etc/hosts).
fn resolve(host: &str, port: u16, resolver: Option<&Resolver>) -> Result<IpAddr, ResolveError> {
    let addrs: Vec<IpAddr> = match resolver {
        Some(resolver) => resolver.ip_addrs(host).map_err(ResolveError::Dns)?,
        None => (host, port)
            .to_socket_addrs()
            .map_err(ResolveError::System)?
            .map(|addr| addr.ip())
            .collect(),
    };
    addrs.first().copied().ok_or(ResolveError::NoAddress)
}

/// Connects to the mail hosts of `domain` in order until one greets.
fn outbound_attempts(domain: &str, hosts: &lookup::MailHosts, request: &Request) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for (host, ip) in hosts
        .delivery_addresses(domain)
        .into_iter()
        .take(MAX_OUTBOUND_ATTEMPTS)
    {
        let greeting = probe::greeting(SocketAddr::new(ip, request.outbound_port), request.timeout);
        let greeted = matches!(greeting, probe::Greeting::Received(_));
        attempts.push(Attempt { host, ip, greeting });
        if greeted {
            break;
        }
    }
    attempts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(
            split_host_port("mail.example:587").ok(),
            Some(("mail.example".into(), 587))
        );
        assert_eq!(split_host_port("[::1]:465").ok(), Some(("::1".into(), 465)));
        assert!(split_host_port("mail.example").is_err());
        assert!(split_host_port("mail.example:0").is_err());
        assert!(split_host_port("mail.example:smtp").is_err());
        assert!(split_host_port(":25").is_err());
        assert!(split_host_port("::1:25").is_ok());
        assert!(split_host_port("a:b:25").is_err());
    }

    #[test]
    fn usage_errors() {
        assert_eq!(run(&args(&[])), EXIT_USAGE);
        assert_eq!(run(&args(&["mail.example"])), EXIT_USAGE);
        assert_eq!(run(&args(&["--timeout", "soon", "a:25"])), EXIT_USAGE);
        assert_eq!(run(&args(&["--timeout", "0", "a:25"])), EXIT_USAGE);
        assert_eq!(
            run(&args(&["--dns-server", "nowhere", "--dns", "a"])),
            EXIT_USAGE
        );
        assert_eq!(run(&args(&["--port", "x", "--outbound", "a"])), EXIT_USAGE);
        assert_eq!(
            run(&args(&["--ca-file", "/nonexistent/ca.pem", "a:25"])),
            EXIT_USAGE
        );
        assert_eq!(run(&args(&["--help"])), EXIT_OK);
    }

    #[test]
    fn usage_errors_say_which_option_is_wrong() {
        let error = |list: &[&str]| match parse(&args(list)) {
            Err(e) => e,
            Ok(_) => panic!("{list:?} parsed"),
        };
        assert!(matches!(
            error(&["--timeout", "0", "a:25"]),
            UsageError::ZeroTimeout
        ));
        assert!(matches!(error(&[]), UsageError::NothingToCheck));
        assert_eq!(
            error(&["--port", "x", "--outbound", "a"]).to_string(),
            "--port: \"x\" is not a port number"
        );
        assert_eq!(
            error(&["mail.example:smtp"]).to_string(),
            "\"mail.example:smtp\": \"smtp\" is not a port number"
        );
        assert_eq!(
            error(&["--dns-server", "nowhere", "--dns", "a"]).to_string(),
            "--dns-server \"nowhere\": expected IP or IP:PORT"
        );
    }
}
