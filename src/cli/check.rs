//! `outpost check`: the command line of the mail setup diagnosis in
//! [`crate::check`]: options, usage text, one printed line (or two, with a
//! `fix:`) per finding, and the exit code.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::check::{self, CheckError, Level, PortTarget, Request, Sender};
use crate::config::{self, ConfigError, ServeArgs};
use crate::tls::TlsError;

/// Exit code when every check passed.
const EXIT_OK: i32 = 0;
/// Exit code when a check found a problem.
const EXIT_PROBLEM: i32 = 1;
/// Exit code for a usage error.
const EXIT_USAGE: i32 = 2;
/// `--timeout` when not given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Options of `outpost serve` that `--dns` needs to judge the server's
/// mail (its host name and DKIM keys); passed on to the serve parser.
const SERVE_OPTIONS: [&str; 8] = [
    "config",
    "outbound-address",
    "data-dir",
    "hostname",
    "local-domains",
    "dkim-selector",
    "dkim-domains",
    "dkim-algorithms",
];

enum CheckArgs {
    Run(Box<Request>),
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
    /// An option of `outpost serve` (or the `--config` file) is wrong.
    Config(ConfigError),
    /// `--source-address` is not a list of IP addresses.
    SourceAddress(String),
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
            UsageError::Config(e) => write!(f, "{e}"),
            UsageError::SourceAddress(value) => {
                write!(f, "--source-address {value:?}: expected IP[,IP]")
            }
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
        "check DOMAIN's records: MX, SPF for this host, reverse DNS, DKIM, DMARC",
        "DOMAIN",
    );
    o.optopt(
        "",
        "source-address",
        "the addresses this host sends mail from (default: --outbound-address, else those the routing table picks)",
        "IP[,IP]",
    );
    for name in SERVE_OPTIONS {
        let (help, hint) = match name {
            "config" => ("the config file of `outpost serve`", "FILE"),
            "data-dir" => ("the data directory of `outpost serve` (DKIM keys)", "DIR"),
            "hostname" => ("the host name of `outpost serve`", "NAME"),
            "local-domains" | "dkim-domains" => ("as for `outpost serve`", "D1,D2"),
            _ => ("as for `outpost serve`", "VALUE"),
        };
        o.optopt("", name, help, hint);
    }
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
         the login methods, and what to choose in a mail client. For --dns DOMAIN: the MX,\n\
         SPF evaluated for this host's outbound addresses, their reverse DNS (PTR) against\n\
         --hostname, the DKIM records against the server's keys, DMARC; give the --config\n\
         (or --data-dir and --hostname) of `outpost serve`. Each finding is one line\n\
         starting with ok, warning or error; problems have a `fix:` line.\n\
         Exit code: 0 all ok, 1 a problem was found, 2 usage error.",
    )
}

fn parse(args: &[String]) -> Result<CheckArgs, UsageError> {
    let matches = spec().parse(args).map_err(UsageError::Options)?;
    if matches.opt_present("help") {
        return Ok(CheckArgs::Help);
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
    let source_addresses = match matches.opt_str("source-address") {
        Some(value) => Some(parse_addresses(&value).ok_or(UsageError::SourceAddress(value))?),
        None => None,
    };
    let sender = sender(&matches, source_addresses)?;
    let request = Request {
        ports: Vec::new(),
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
        sender,
    };
    if matches.free.is_empty() && request.dns.is_none() && request.outbound.is_none() {
        return Err(UsageError::NothingToCheck);
    }
    let ports = matches
        .free
        .iter()
        .map(|target| port_target(target))
        .collect::<Result<_, _>>()?;
    Ok(CheckArgs::Run(Box::new(Request { ports, ..request })))
}

/// The server `--dns` judges, from the options of `outpost serve` given
/// (read by the serve parser, so defaults and the config file agree).
fn sender(
    matches: &getopts::Matches,
    source_addresses: Option<Vec<IpAddr>>,
) -> Result<Sender, UsageError> {
    let mut serve_args = Vec::new();
    for name in SERVE_OPTIONS {
        if let Some(value) = matches.opt_str(name) {
            serve_args.extend([format!("--{name}"), value]);
        }
    }
    let config = match config::parse_args(&serve_args).map_err(UsageError::Config)? {
        ServeArgs::Run(config) | ServeArgs::Check(config, _) => *config,
        ServeArgs::Help => config::Config::default(),
    };
    let mut signed_domains = config.effective_local_domains();
    signed_domains.extend(config.dkim.domains.iter().cloned());
    Ok(Sender {
        hostname: config.hostname,
        data_dir: config.data_dir,
        dkim: config.dkim,
        signed_domains,
        // What delivery connects from, unless asked about other addresses.
        source_addresses: source_addresses.or_else(|| {
            let outbound = config.delivery.outbound_addresses;
            (!outbound.is_empty()).then_some(outbound)
        }),
    })
}

/// `IP[,IP]`.
fn parse_addresses(value: &str) -> Option<Vec<IpAddr>> {
    value
        .split(',')
        .map(|ip| ip.trim().parse().ok())
        .collect::<Option<Vec<IpAddr>>>()
        .filter(|list| !list.is_empty())
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
fn port_target(target: &str) -> Result<PortTarget, UsageError> {
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
    Ok(PortTarget {
        label: target.to_string(),
        host: host.to_string(),
        port,
    })
}

/// Runs `outpost check` with the arguments after `check`: prints each
/// finding; returns 0 when all are ok, 1 when one is not, 2 for a usage
/// error.
pub(super) fn run(args: &[String]) -> i32 {
    let request = match parse(args) {
        Ok(CheckArgs::Run(request)) => request,
        Ok(CheckArgs::Help) => {
            print!("{}", usage());
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("outpost check: {e}\n");
            eprint!("{}", usage());
            return EXIT_USAGE;
        }
    };
    let mut problems = false;
    let checked = check::run(&request, |finding| {
        problems |= finding.level != Level::Ok;
        println!("{finding}");
    });
    match checked {
        Ok(()) if problems => EXIT_PROBLEM,
        Ok(()) => EXIT_OK,
        Err(CheckError::CaFile(e)) => {
            eprintln!("outpost check: {}", UsageError::CaFile(e));
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_split_into_host_and_port() {
        let split = |target: &str| port_target(target).ok().map(|t| (t.host, t.port));
        assert_eq!(
            split("mail.example:587"),
            Some(("mail.example".into(), 587))
        );
        assert_eq!(split("[::1]:465"), Some(("::1".into(), 465)));
        assert!(split("mail.example").is_none());
        assert!(split("mail.example:0").is_none());
        assert!(split("mail.example:smtp").is_none());
        assert!(split(":25").is_none());
        assert!(split("::1:25").is_some());
        assert!(split("a:b:25").is_none());
        assert_eq!(port_target("[::1]:465").unwrap().label, "[::1]:465");
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
    fn source_addresses_and_serve_options() {
        let request = match parse(&args(&[
            "--dns",
            "example.com",
            "--source-address",
            "192.0.2.1, 2001:db8::1",
            "--hostname",
            "mail.example.com",
            "--data-dir",
            "/srv/outpost",
            "--dkim-domains",
            "other.example",
        ])) {
            Ok(CheckArgs::Run(request)) => request,
            _ => panic!("did not parse"),
        };
        let sender = &request.sender;
        assert_eq!(
            sender.source_addresses,
            Some(vec![
                "192.0.2.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap()
            ])
        );
        assert_eq!(sender.hostname, "mail.example.com");
        assert_eq!(sender.data_dir, PathBuf::from("/srv/outpost"));
        assert_eq!(sender.signed_domains, ["mail.example.com", "other.example"]);
        // Without --source-address, the routing table decides.
        match parse(&args(&["--dns", "example.com"])) {
            Ok(CheckArgs::Run(request)) => assert_eq!(request.sender.source_addresses, None),
            _ => panic!("did not parse"),
        }
        // With serve's --outbound-address, those are the addresses judged.
        let outbound = &["--dns", "example.com", "--outbound-address", "192.0.2.9"];
        match parse(&args(outbound)) {
            Ok(CheckArgs::Run(request)) => assert_eq!(
                request.sender.source_addresses,
                Some(vec!["192.0.2.9".parse().unwrap()])
            ),
            _ => panic!("did not parse"),
        }
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
        assert_eq!(
            error(&["--source-address", "192.0.2.1,mx", "--dns", "a"]).to_string(),
            "--source-address \"192.0.2.1,mx\": expected IP[,IP]"
        );
        assert!(matches!(
            error(&["--hostname", "bad name", "--dns", "a"]),
            UsageError::Config(_)
        ));
        assert!(matches!(
            error(&["--config", "/nonexistent/outpost.conf", "--dns", "a"]),
            UsageError::Config(_)
        ));
    }
}
