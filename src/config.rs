//! Command-line and config-file settings for `outpost serve`.
//!
//! Every option is one row of [`OPTIONS`]: its name, value hint, help text,
//! default and a setter that parses the text. The command line (getopts) and
//! the config file (`name = value` lines, `#` comments) both produce text
//! values for those names; the command line wins, then the file, then the
//! default. Adding a flag is one row plus a field in [`Config`].
//!
//! The file is read strictly: a value in matching quotes loses them, a
//! second line for an option that takes one value is an error, an unknown
//! name gets a did-you-mean, and a UTF-8 byte-order mark is ignored.
//! `--check-config` returns every effective setting with where it came
//! from ([`Source`]).
//!
//! Also here: the value parsers (durations such as `30s`/`10m`/`4h`/`5d`,
//! sizes such as `25M`/`25MiB`/bytes) and the CIDR matcher used for
//! `--relay-networks`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::delivery::config::{self as dc, DeliveryConfig};
use crate::delivery::retry;
use crate::dkim;
pub use crate::units::{parse_duration, parse_size};

/// Errors in the command line or config file.
#[derive(Debug)]
pub enum ConfigError {
    /// getopts refused the command line (unknown flag, missing value…).
    CommandLine(getopts::Fail),
    /// An argument that is not an option.
    UnexpectedArgument(String),
    /// The config file could not be read.
    ReadFile {
        /// The config file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A config-file line names no known option.
    UnknownFileOption {
        /// The config file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The name on the line.
        name: String,
        /// The known option with the closest name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// The command line names no known option.
    UnknownFlag {
        /// The name as given, without dashes.
        name: String,
        /// The known option with the closest name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A config file sets an option that takes one value a second time.
    DuplicateFileOption {
        /// The config file.
        path: PathBuf,
        /// The 1-based number of the second line.
        line: usize,
        /// The line that set it first.
        first: usize,
        /// The option.
        name: &'static str,
    },
    /// A config-file value opens a quote it does not close.
    UnbalancedQuote {
        /// The config file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// An option's value does not parse.
    BadValue {
        /// The option's long name, without the leading `--`.
        option: &'static str,
        /// The value as given.
        value: String,
        /// Why it does not parse.
        reason: ValueError,
        /// Where the value was given.
        source: Source,
    },
}

/// Where an effective setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default (or, without one, the value computed at start).
    Default,
    /// A line of the config file.
    File {
        /// The config file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// The command line.
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::CommandLine => f.write_str("command line"),
        }
    }
}

/// One effective setting, for `--check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The option's long name.
    pub name: &'static str,
    /// The value in force, as text (`(not set)` for an option left unset).
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// ` (did you mean "NAME"?)` or nothing.
fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|name| format!(" (did you mean {name:?}?)"))
        .unwrap_or_default()
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::CommandLine(fail) => write!(f, "{fail} (see outpost --help)"),
            ConfigError::UnexpectedArgument(arg) => {
                write!(f, "unexpected argument {arg:?} (see outpost --help)")
            }
            ConfigError::ReadFile { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::UnknownFileOption {
                path,
                line,
                name,
                suggestion,
            } => write!(
                f,
                "{}:{line}: unknown option {name:?}{}",
                path.display(),
                did_you_mean(suggestion)
            ),
            ConfigError::UnknownFlag { name, suggestion } => {
                write!(f, "unknown option --{name}")?;
                if let Some(known) = suggestion {
                    write!(f, " (did you mean --{known}?)")?;
                }
                f.write_str(" (see outpost serve --help)")
            }
            ConfigError::DuplicateFileOption {
                path,
                line,
                first,
                name,
            } => write!(
                f,
                "{}:{line}: {name} is already set on line {first}",
                path.display()
            ),
            ConfigError::UnbalancedQuote { path, line } => write!(
                f,
                "{}:{line}: the value opens a quote it does not close",
                path.display()
            ),
            ConfigError::BadValue {
                option,
                value,
                reason,
                source,
            } => match source {
                Source::File { .. } => write!(f, "{source}: {option} = {value:?}: {reason}"),
                _ => write!(f, "--{option} {value:?}: {reason}"),
            },
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::ReadFile { source, .. } => Some(source),
            ConfigError::BadValue { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Why an option's value does not parse; [`ConfigError::BadValue`] names
/// the option and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// The value is empty or blank.
    Empty,
    /// A listener is neither `ADDR:PORT` nor `off`.
    Listener,
    /// A domain list names no domain.
    NoDomain,
    /// Not an address `local@domain`.
    Address,
    /// An entry of a network list is neither `ADDR/PREFIX` nor an address;
    /// holds the entry.
    Network(String),
    /// Not a whole number in the setting's range.
    Count,
    /// Zero, for a limit or timeout where zero would stop all mail.
    Zero,
    /// Not a DNS name; the reason in words.
    DnsName(String),
    /// Not `on` or `off` (or `yes`/`no`, `true`/`false`, `1`/`0`).
    Switch,
    /// The metrics address is not an explicit `ADDR:PORT` (a wildcard
    /// would publish the counters to the world).
    MetricsAddress,
    /// A duration or size that does not parse; the reason in words.
    Unit(String),
    /// A delivery setting that does not parse.
    Delivery(dc::SettingError),
    /// A delay warning that does not parse.
    Retry(retry::RetryError),
    /// A DKIM setting that does not parse; the reason in words.
    Dkim(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Empty => write!(f, "must not be empty"),
            ValueError::Listener => {
                write!(
                    f,
                    "expected ADDR:PORT such as 0.0.0.0:25 or [::]:587, or `off`"
                )
            }
            ValueError::NoDomain => write!(f, "expected at least one domain"),
            ValueError::Address => write!(f, "expected an address local@domain"),
            ValueError::Network(text) => {
                write!(
                    f,
                    "{text:?} is not a network such as 10.0.0.0/8 or fd00::/8"
                )
            }
            ValueError::Count => write!(f, "expected a whole number"),
            ValueError::Zero => write!(f, "must be above 0"),
            ValueError::DnsName(reason) => write!(f, "not a DNS name: {reason}"),
            ValueError::Switch => write!(f, "expected on or off"),
            ValueError::MetricsAddress => write!(
                f,
                "expected an explicit ADDR:PORT such as 127.0.0.1:9187 (not 0.0.0.0 or [::])"
            ),
            ValueError::Unit(reason) => write!(f, "{reason}"),
            ValueError::Delivery(e) => write!(f, "{e}"),
            ValueError::Retry(e) => write!(f, "{e}"),
            ValueError::Dkim(reason) => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// All settings of a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port-25-role listeners (mail from other servers, relay for trusted networks).
    pub smtp: Vec<SocketAddr>,
    /// Port-587-role listeners (STARTTLS, AUTH required).
    pub submission: Vec<SocketAddr>,
    /// Port-465-role listeners (implicit TLS, AUTH required).
    pub submissions: Vec<SocketAddr>,
    /// Our host name (greeting, EHLO, Received, self-signed certificate).
    pub hostname: String,
    /// Where the queue, TLS files and users file live.
    pub data_dir: PathBuf,
    /// PEM certificate chain; `None`: `<data-dir>/tls/cert.pem`, generated if missing.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; `None`: `<data-dir>/tls/key.pem`, generated if missing.
    pub tls_key: Option<PathBuf>,
    /// Users file; `None`: `<data-dir>/users`, created with one user if missing.
    pub users: Option<PathBuf>,
    /// Domains we accept mail for; empty means the host name.
    pub local_domains: Vec<String>,
    /// Where `postmaster@` a local domain without users goes; `None`: the
    /// first user of the users file.
    pub postmaster: Option<String>,
    /// Clients that may relay without AUTH and are exempt from the per-IP limit.
    pub relay_networks: Vec<Cidr>,
    /// Load balancers whose connections start with a PROXY protocol
    /// header naming the real client (`--proxy-from`).
    pub proxy_from: Vec<Cidr>,
    /// Largest message, octets.
    pub max_message_size: usize,
    /// Octets of one arriving message kept in memory; beyond it the
    /// message is written to the spool as it arrives.
    pub message_memory: usize,
    /// Octets of all arriving messages together kept in memory.
    pub message_memory_total: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Most `Received:` fields a message may carry (a mail loop).
    pub max_received: usize,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Bad commands before 421 and close.
    pub max_bad_commands: u32,
    /// Errors in a session (bad commands, refused recipients) after which
    /// each error reply waits `error_delay`.
    pub soft_error_limit: u32,
    /// Errors in a session after which it gets 421 and is closed.
    pub hard_error_limit: u32,
    /// How long an error reply past the soft limit waits.
    pub error_delay: Duration,
    /// Offer AUTH on the smtp (port 25) listeners too.
    pub smtp_auth: bool,
    /// Idle time allowed while waiting for a command.
    pub command_timeout: Duration,
    /// Idle time allowed between reads inside DATA/BDAT.
    pub data_timeout: Duration,
    /// Longest a whole connection may last.
    pub connection_timeout: Duration,
    /// Longest a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Wait this long before the greeting; clients that talk first are refused.
    pub greeting_delay: Duration,
    /// How long a graceful stop lets sessions finish before closing them.
    pub shutdown_grace: Duration,
    /// Also advertise `AUTH=LOGIN PLAIN` (Outlook 2003 and older).
    pub auth_equals_line: bool,
    /// An authenticated user may only send as its own address.
    pub sender_check: bool,
    /// Protocol worker threads.
    pub workers: usize,
    /// Accept and discard messages without writing them (benchmarks only).
    pub sink: bool,
    /// Run the queue manager; off keeps every accepted message queued.
    pub deliver: bool,
    /// Completes a relay-network client's bare or `@localhost` envelope
    /// address; `None`: the first local domain.
    pub sender_domain: Option<String>,
    /// Messages one user (or the relay networks together) may send in a
    /// rolling day.
    pub max_messages_per_day: u64,
    /// Recipients one user (or the relay networks together) may send to
    /// in a rolling day.
    pub max_recipients_per_day: u64,
    /// Per-user exceptions to the daily limits.
    pub user_limits: Option<PathBuf>,
    /// `--user`: the user to run as once the listeners are bound and the
    /// certificate read (a server started as root).
    pub user: Option<String>,
    /// `--group`: the group to run as (default: the user's own group).
    pub group: Option<String>,
    /// `--metrics`: where the Prometheus text format is served over HTTP.
    pub metrics: Option<SocketAddr>,
    /// Outbound delivery settings (`--dns-server`, `--relay-host`, …); its
    /// host name, local domains and data directory are filled in at start.
    pub delivery: DeliveryConfig,
    /// DKIM signing: selector, extra domains, algorithms.
    pub dkim: dkim::Settings,
}

/// Defaults are the values of an empty command line, except that the
/// listener lists start as given (no listeners) for programmatic use.
impl Default for Config {
    fn default() -> Config {
        let mut config = Config {
            smtp: Vec::new(),
            submission: Vec::new(),
            submissions: Vec::new(),
            hostname: String::new(),
            data_dir: PathBuf::new(),
            tls_cert: None,
            tls_key: None,
            users: None,
            local_domains: Vec::new(),
            postmaster: None,
            relay_networks: Vec::new(),
            proxy_from: Vec::new(),
            max_message_size: 0,
            message_memory: 0,
            message_memory_total: 0,
            max_recipients: 0,
            max_received: 0,
            max_connections: 0,
            max_connections_per_ip: 0,
            max_bad_commands: 0,
            soft_error_limit: 0,
            hard_error_limit: 0,
            error_delay: Duration::ZERO,
            smtp_auth: false,
            command_timeout: Duration::ZERO,
            data_timeout: Duration::ZERO,
            connection_timeout: Duration::ZERO,
            tls_handshake_timeout: Duration::ZERO,
            greeting_delay: Duration::ZERO,
            shutdown_grace: Duration::ZERO,
            auth_equals_line: false,
            sink: false,
            deliver: false,
            user: None,
            group: None,
            metrics: None,
            delivery: DeliveryConfig::default(),
            dkim: dkim::Settings::default(),
            sender_check: false,
            workers: 0,
            sender_domain: None,
            max_messages_per_day: 0,
            max_recipients_per_day: 0,
            user_limits: None,
        };
        for option in OPTIONS {
            if let Some(default) = option.default {
                // The defaults are constants checked by a unit test.
                let _ = (option.set)(&mut config, default);
            }
        }
        config.hostname = system_hostname();
        config.workers = default_workers();
        config.smtp.clear();
        config.submission.clear();
        config.submissions.clear();
        config
    }
}

impl Config {
    /// The local domains, or the host name when none were given.
    pub fn effective_local_domains(&self) -> Vec<String> {
        if self.local_domains.is_empty() {
            vec![self.hostname.to_ascii_lowercase()]
        } else {
            self.local_domains.clone()
        }
    }

    /// The sender domain, or the first local domain when none was given.
    pub fn effective_sender_domain(&self) -> String {
        match &self.sender_domain {
            Some(domain) => domain.clone(),
            None => self
                .effective_local_domains()
                .into_iter()
                .next()
                .unwrap_or_else(|| self.hostname.to_ascii_lowercase()),
        }
    }

    /// The users file path (given or `<data-dir>/users`).
    pub fn users_path(&self) -> PathBuf {
        self.users
            .clone()
            .unwrap_or_else(|| self.data_dir.join("users"))
    }

    /// Is `ip` in `--relay-networks`?
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.relay_networks.iter().any(|net| net.contains(ip))
    }

    /// Does a connection from `ip` start with a PROXY protocol header?
    pub fn is_proxy(&self, ip: IpAddr) -> bool {
        self.proxy_from.iter().any(|net| net.contains(ip))
    }
}

/// What `outpost serve` was asked to do.
#[derive(Debug)]
pub enum ServeArgs {
    /// Run with this configuration.
    Run(Box<Config>),
    /// `--check-config`: print these settings (every option, in `--help`
    /// order) and exit.
    Check(Box<Config>, Vec<Setting>),
    /// Print [`usage`] and exit.
    Help,
}

/// Sets one option from its text value.
type Setter = fn(&mut Config, &str) -> Result<(), ValueError>;

/// One option: a row of the table.
pub struct OptionSpec {
    /// The long name, without `--`.
    pub name: &'static str,
    /// The value hint for `--help`; empty for a flag without value.
    pub hint: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// The default as text, or `None` when it is computed (shown in `help`).
    pub default: Option<&'static str>,
    /// May be given more than once (values accumulate).
    pub repeatable: bool,
    /// Parses and stores the value.
    pub set: Setter,
}

macro_rules! opt {
    ($name:literal, $hint:literal, $help:literal, $default:expr, $repeat:literal, $set:expr) => {
        OptionSpec {
            name: $name,
            hint: $hint,
            help: $help,
            default: $default,
            repeatable: $repeat,
            set: $set,
        }
    };
}

/// Every option of `outpost serve`, in `--help` order.
#[rustfmt::skip]
pub const OPTIONS: &[OptionSpec] = &[
    opt!("smtp", "ADDR:PORT", "listener for mail from other servers (port 25 role); repeatable; `off`", Some("127.0.0.1:2525"), true, |c, v| listener(&mut c.smtp, v)),
    opt!("submission", "ADDR:PORT", "listener for mail clients, STARTTLS (port 587 role); repeatable; `off`", Some("127.0.0.1:2587"), true, |c, v| listener(&mut c.submission, v)),
    opt!("submissions", "ADDR:PORT", "listener for mail clients, implicit TLS (port 465 role); repeatable; `off`", Some("127.0.0.1:2465"), true, |c, v| listener(&mut c.submissions, v)),
    opt!("hostname", "NAME", "host name for the greeting, EHLO and Received (default: the system host name)", None, false, |c, v| { c.hostname = dns_name(v)?; Ok(()) }),
    opt!("data-dir", "DIR", "queue, TLS files and users file live here", Some("./outpost-data"), false, |c, v| { c.data_dir = PathBuf::from(non_empty(v)?); Ok(()) }),
    opt!("tls-cert", "FILE", "PEM certificate chain (default: self-signed, generated in DATA-DIR/tls)", None, false, |c, v| { c.tls_cert = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("tls-key", "FILE", "PEM private key, PKCS#8, RSA or EC (default: DATA-DIR/tls/key.pem)", None, false, |c, v| { c.tls_key = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("users", "FILE", "users file, one address:hash per line (default: DATA-DIR/users, created on first start)", None, false, |c, v| { c.users = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("local-domains", "D1,D2", "domains we accept mail for (default: the host name)", None, false, |c, v| { c.local_domains = domain_list(v)?; Ok(()) }),
    opt!("proxy-from", "CIDR,...", "load balancers (HAProxy send-proxy or send-proxy-v2) whose connections start with a PROXY header naming the real client; from anyone else no header is accepted", Some("none"), false, |c, v| { c.proxy_from = cidr_list(v)?; Ok(()) }),
    opt!("relay-networks", "CIDR,...", "clients that may relay without AUTH; `none` for nobody", Some("127.0.0.0/8,::1/128"), false, |c, v| { c.relay_networks = cidr_list(v)?; Ok(()) }),
    opt!("max-message-size", "SIZE", "largest message (bytes, or with K/M/G, KiB/MiB/GiB)", Some("25MiB"), false, |c, v| { c.max_message_size = above_zero(size(v)?)?; Ok(()) }),
    opt!("message-memory", "SIZE", "how much of one arriving message is kept in memory; the rest is written to the spool as it arrives (0: every message)", Some("128KiB"), false, |c, v| { c.message_memory = size(v)?; Ok(()) }),
    opt!("message-memory-total", "SIZE", "how much of all arriving messages together is kept in memory; past it they are written to the spool as they arrive (0: every message)", Some("32MiB"), false, |c, v| { c.message_memory_total = size(v)?; Ok(()) }),
    opt!("max-recipients", "N", "most recipients per message (RFC 5321 4.5.3.1.8: at least 100)", Some("100"), false, |c, v| { c.max_recipients = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("max-received", "N", "most Received header fields a message may carry; more get 554 5.4.6 (a mail loop)", Some("50"), false, |c, v| { c.max_received = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("max-connections", "N", "most connections at once", Some("1000"), false, |c, v| { c.max_connections = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("max-connections-per-ip", "N", "most connections at once from one address (relay networks exempt)", Some("50"), false, |c, v| { c.max_connections_per_ip = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("max-bad-commands", "N", "bad commands in a session before it is closed", Some("20"), false, |c, v| { c.max_bad_commands = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("soft-error-limit", "N", "errors in a session (bad commands, unknown users, relay attempts) after which each error reply waits --error-delay", Some("10"), false, |c, v| { c.soft_error_limit = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("hard-error-limit", "N", "errors in a session after which it gets 421 and is closed", Some("20"), false, |c, v| { c.hard_error_limit = above_zero(parse_count(v)?)?; Ok(()) }),
    opt!("error-delay", "DURATION", "how long each error reply past --soft-error-limit waits (0 = no wait)", Some("1s"), false, |c, v| { c.error_delay = duration(v)?; Ok(()) }),
    opt!("command-timeout", "DURATION", "idle time allowed waiting for a command (RFC 5321 4.5.3.2: at least 5m)", Some("5m"), false, |c, v| { c.command_timeout = above_zero(duration(v)?)?; Ok(()) }),
    opt!("data-timeout", "DURATION", "idle time allowed between reads of a message (RFC 5321 4.5.3.2.6)", Some("3m"), false, |c, v| { c.data_timeout = above_zero(duration(v)?)?; Ok(()) }),
    opt!("connection-timeout", "DURATION", "longest a whole connection may last", Some("30m"), false, |c, v| { c.connection_timeout = above_zero(duration(v)?)?; Ok(()) }),
    opt!("tls-handshake-timeout", "DURATION", "longest a TLS handshake may take", Some("20s"), false, |c, v| { c.tls_handshake_timeout = above_zero(duration(v)?)?; Ok(()) }),
    opt!("greeting-delay", "DURATION", "wait before the greeting; clients talking first get 554 (0 = off)", Some("0"), false, |c, v| { c.greeting_delay = duration(v)?; Ok(()) }),
    opt!("shutdown-grace", "DURATION", "on SIGTERM, time sessions get to finish before they are closed (0 = close at once)", Some("30s"), false, |c, v| { c.shutdown_grace = duration(v)?; Ok(()) }),
    opt!("auth-equals-line", "", "also advertise AUTH=LOGIN PLAIN (Outlook 2003 and older)", Some("off"), false, |c, v| { c.auth_equals_line = parse_switch(v)?; Ok(()) }),
    opt!("smtp-auth", "on|off", "also offer AUTH on the smtp (port 25) listeners; the submission ports always do", Some("off"), false, |c, v| { c.smtp_auth = parse_switch(v)?; Ok(()) }),
    opt!("sender-check", "on|off", "authenticated users may only send as their own address", Some("on"), false, |c, v| { c.sender_check = parse_switch(v)?; Ok(()) }),
    opt!("delivery", "on|off", "deliver queued mail; `off` keeps everything queued (to inspect what a device sends)", Some("on"), false, |c, v| { c.deliver = parse_switch(v)?; Ok(()) }),
    opt!("dns-server", "IP:PORT", "ask this DNS server for MX records instead of those in /etc/resolv.conf", None, false, |c, v| { c.delivery.dns_server = Some(dc::parse_socket_addr(v).map_err(ValueError::Delivery)?); Ok(()) }),
    opt!("mx-port", "PORT", "port of the recipients' mail servers (25; change it only for tests)", Some("25"), false, |c, v| { c.delivery.mx_port = dc::parse_port(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("outbound-tls", "MODE", "`opportunistic`: STARTTLS when offered, any certificate; `verify`: require STARTTLS and a valid certificate", Some("opportunistic"), false, |c, v| { c.delivery.outbound_tls = dc::parse_outbound_tls(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("outbound-address", "IP[,IP]", "connect to other servers from this local address (one IPv4 and/or one IPv6); the PTR of each should name --hostname", None, false, |c, v| { c.delivery.outbound_addresses = dc::parse_outbound_addresses(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("outbound-ip-family", "FAMILY", "which addresses of other servers to connect to: ipv4, ipv6 or both (IPv6 first; a refusal of our IPv6 address for its PTR or policy is retried over IPv4)", Some("both"), false, |c, v| { c.delivery.ip_family = dc::parse_ip_family(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("relay-host", "HOST:PORT", "send remote mail through this smarthost (where port 25 is blocked): all of it, or with --transport DOMAIN=relay only those domains", None, false, |c, v| { c.delivery.relay_host = Some(dc::parse_host_port(v).map_err(ValueError::Delivery)?); Ok(()) }),
    opt!("relay-tls", "MODE", "smarthost encryption: starttls, tls (implicit, port 465) or none", Some("starttls"), false, |c, v| { c.delivery.relay_tls = dc::parse_relay_tls(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("relay-user", "NAME", "user name for AUTH at the smarthost", None, false, |c, v| { c.delivery.relay_user = Some(non_empty(v)?.to_string()); Ok(()) }),
    opt!("relay-password-file", "FILE", "file whose first line is the smarthost password", None, false, |c, v| { c.delivery.relay_password_file = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("relay-ca", "FILE", "extra CA certificates (PEM) trusted for the smarthost", None, false, |c, v| { c.delivery.relay_ca = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("transport", "DOMAIN=ROUTE", "route one domain to HOST:PORT, through the smarthost (`relay`: then only such domains use it), or `discard` it; repeatable", None, true, |c, v| { c.delivery.add_transport(v).map_err(ValueError::Delivery) }),
    opt!("retry", "LIST", "retry delays, e.g. 1m,5m,30m (the last repeats; default: 5m doubling to 1h, with jitter)", None, false, |c, v| { c.delivery.retry.schedule = dc::parse_retry(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("max-queue-lifetime", "DURATION", "give up and return a message this long after it arrived", Some("5d"), false, |c, v| { c.delivery.retry.max_lifetime = above_zero(duration(v)?)?; Ok(()) }),
    opt!("delay-warning", "DURATION", "tell the sender when a message is still waiting after this long (0 = never)", Some("4h"), false, |c, v| { c.delivery.retry.delay_warning = retry::parse_delay_warning(v).map_err(ValueError::Retry)?; Ok(()) }),
    opt!("max-outbound-connections", "N", "most delivery connections at once", Some("20"), false, |c, v| { c.delivery.max_outbound_connections = dc::parse_connections(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("max-connections-per-destination", "N", "most connections at once to one destination (a domain's MX hosts, a --transport host, the smarthost), idle kept ones included; after a transient failure one at a time until a delivery", Some("20"), false, |c, v| { c.delivery.max_connections_per_destination = dc::parse_connections(v).map_err(ValueError::Delivery)?; Ok(()) }),
    opt!("dkim-selector", "NAME", "DKIM key selector (default: each domain's newest outpostYYYYMM key, or this month for a new one); Ed25519 keys use NAME-ed25519", None, false, |c, v| { c.dkim.selector = Some(dkim::store::parse_selector(v).map_err(ValueError::Dkim)?); Ok(()) }),
    opt!("dkim-domains", "D1,D2", "also DKIM-sign mail whose From: is in these domains (the local domains always are; keys are created in DATA-DIR/dkim)", None, false, |c, v| { c.dkim.domains = domain_list(v)?; Ok(()) }),
    opt!("dkim-algorithms", "LIST", "DKIM signatures to add: rsa, ed25519 or rsa,ed25519 (Gmail and Microsoft verify only rsa)", Some("rsa"), false, |c, v| { c.dkim.algorithms = dkim::store::parse_algorithms(v).map_err(ValueError::Dkim)?; Ok(()) }),
    opt!("aliases", "FILE", "alias file: `alias@domain: target, target` per line", None, false, |c, v| { c.delivery.aliases = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("postmaster", "ADDRESS", "where postmaster@ a local domain without users goes (default: the first user in the users file)", None, false, |c, v| { c.postmaster = Some(address(v)?); Ok(()) }),
    opt!("sender-domain", "DOMAIN", "completes bare or @localhost envelope addresses from relay-network clients, e.g. cron's `root` (default: the first local domain)", None, false, |c, v| { c.sender_domain = Some(dns_name(v)?.to_ascii_lowercase()); Ok(()) }),
    opt!("max-messages-per-day", "N", "messages one user may send in a rolling 24 hours; relay-network clients share one count (0 = no limit)", Some("1000"), false, |c, v| { c.max_messages_per_day = parse_count(v)?; Ok(()) }),
    opt!("max-recipients-per-day", "N", "recipients one user may send to in a rolling 24 hours; relay-network clients share one count (0 = no limit)", Some("2000"), false, |c, v| { c.max_recipients_per_day = parse_count(v)?; Ok(()) }),
    opt!("user-limits", "FILE", "per-user daily limits: `user@example.org messages=N recipients=N` per line", None, false, |c, v| { c.user_limits = Some(PathBuf::from(non_empty(v)?)); Ok(()) }),
    opt!("sink", "", "accept messages and throw them away, no disk, no log line per message (for benchmarks only: nothing is delivered)", Some("off"), false, |c, v| { c.sink = parse_switch(v)?; Ok(()) }),
    opt!("user", "NAME", "started as root: bind the listeners, read the certificate and lock the data directory, then run as this user, who owns the data directory", None, false, |c, v| { c.user = Some(non_empty(v)?.to_string()); Ok(()) }),
    opt!("group", "NAME", "with --user: the group to run as (default: the user's own group)", None, false, |c, v| { c.group = Some(non_empty(v)?.to_string()); Ok(()) }),
    opt!("maildir-group-access", "", "Maildirs readable and writable by the server's group (directories 2770, files 0640) for an IMAP server such as Dovecot in that group; off: 0700 and 0600", Some("off"), false, |c, v| { c.delivery.maildir_group_access = parse_switch(v)?; Ok(()) }),
    opt!("metrics", "ADDR:PORT", "serve counters in the Prometheus text format over plain HTTP at http://ADDR:PORT/metrics (off by default; an explicit address such as 127.0.0.1:9187); `outpost stats` prints them", None, false, |c, v| { c.metrics = metrics_address(v)?; Ok(()) }),
    opt!("workers", "N", "protocol worker threads, each running its own event loop (default: one less than the number of CPUs, which leaves a core for the spool, delivery and TLS key work); 0 serves every connection on the accepting thread (the default on one core)", None, false, |c, v| { c.workers = parse_count(v)?; Ok(()) }),
];

/// The `--config FILE` option, handled before the others.
const CONFIG_OPTION: &str = "config";
/// `--check-config`: print the effective settings instead of serving.
const CHECK_OPTION: &str = "check-config";

fn getopts_options() -> getopts::Options {
    let mut options = getopts::Options::new();
    options.long_only(false);
    for spec in OPTIONS {
        if spec.hint.is_empty() {
            options.optflagmulti("", spec.name, spec.help);
        } else if spec.repeatable {
            options.optmulti("", spec.name, spec.help, spec.hint);
        } else {
            options.optopt("", spec.name, spec.help, spec.hint);
        }
    }
    options.optopt(
        "",
        CONFIG_OPTION,
        "read options from FILE (`name = value` lines, `#` comments)",
        "FILE",
    );
    options.optflag(
        "",
        CHECK_OPTION,
        "print every effective setting and where it came from, then exit",
    );
    options.optflag("h", "help", "show this help");
    options
}

/// The `--help` text for `outpost serve`, with every default.
pub fn usage() -> String {
    format!("Usage: outpost serve [OPTIONS]\n\n{}", options_help())
}

/// Every option with its value hint, help and default.
pub fn options_help() -> String {
    let mut text = String::from(
        "Options (also accepted as `name = value` lines in --config FILE; the command line wins):\n",
    );
    for spec in OPTIONS {
        let head = if spec.hint.is_empty() {
            format!("  --{}", spec.name)
        } else {
            format!("  --{} {}", spec.name, spec.hint)
        };
        let default = match spec.default {
            Some(d) if !d.is_empty() => format!(" [default: {d}]"),
            _ => String::new(),
        };
        text.push_str(&format!("{head:<36} {}{default}\n", spec.help));
    }
    text.push_str(&format!(
        "{:<36} {}\n",
        "  --config FILE", "read options from FILE"
    ));
    text.push_str(&format!(
        "{:<36} {}\n",
        "  --check-config",
        "print every effective setting and where it came from (default, FILE:LINE, command line); exit 0, or 2 on an error"
    ));
    text.push_str(&format!("{:<36} {}\n", "  -h, --help", "show this help"));
    text.push_str("\nDurations: 30s, 10m, 4h, 5d (a bare number is seconds). Sizes: 25M = 25MiB; 25MB = 25000000.\n");
    text.push_str(
        "Limits, sizes and timeouts must be above 0, except where the help says what 0 means.\n",
    );
    text
}

/// Parses the arguments after `serve` (and the config file they name).
pub fn parse_args(args: &[String]) -> Result<ServeArgs, ConfigError> {
    let matches = getopts_options().parse(args).map_err(|fail| match fail {
        getopts::Fail::UnrecognizedOption(name) => ConfigError::UnknownFlag {
            suggestion: closest_option(&name),
            name,
        },
        fail => ConfigError::CommandLine(fail),
    })?;
    if matches.opt_present("help") {
        return Ok(ServeArgs::Help);
    }
    if let Some(extra) = matches.free.first() {
        return Err(ConfigError::UnexpectedArgument(extra.clone()));
    }
    let mut values: Values = HashMap::new();
    for spec in OPTIONS {
        let given = if spec.hint.is_empty() {
            vec!["on".to_string(); usize::from(matches.opt_present(spec.name))]
        } else {
            matches.opt_strs(spec.name)
        };
        if !given.is_empty() {
            let given = given.into_iter().map(|v| (v, Source::CommandLine));
            values.insert(spec.name, given.collect());
        }
    }
    let file_values = match matches.opt_str(CONFIG_OPTION) {
        Some(path) => read_config_file(Path::new(&path))?,
        None => HashMap::new(),
    };
    for (name, list) in file_values {
        values.entry(name).or_insert(list);
    }
    let (config, settings) = build(&values)?;
    if matches.opt_present(CHECK_OPTION) {
        Ok(ServeArgs::Check(Box::new(config), settings))
    } else {
        Ok(ServeArgs::Run(Box::new(config)))
    }
}

/// Option values as text with where each was given, by option name.
type Values = HashMap<&'static str, Vec<(String, Source)>>;

/// Applies `values` (by option name) over the defaults; also returns every
/// effective setting with its source.
fn build(values: &Values) -> Result<(Config, Vec<Setting>), ConfigError> {
    let mut config = Config::default();
    let mut settings = Vec::new();
    for spec in OPTIONS {
        let list: Vec<(&str, Source)> = match (values.get(spec.name), spec.default) {
            (Some(list), _) => list.iter().map(|(v, s)| (v.as_str(), s.clone())).collect(),
            (None, Some(default)) => vec![(default, Source::Default)],
            (None, None) => {
                settings.push(Setting {
                    name: spec.name,
                    value: computed_default(&config, spec.name),
                    source: Source::Default,
                });
                continue;
            }
        };
        if spec.repeatable {
            // A repeatable option given explicitly replaces its default.
            reset_list(&mut config, spec.name);
        }
        for (value, source) in list {
            (spec.set)(&mut config, value).map_err(|reason| ConfigError::BadValue {
                option: spec.name,
                value: value.to_string(),
                reason,
                source: source.clone(),
            })?;
            settings.push(Setting {
                name: spec.name,
                value: value.to_string(),
                source,
            });
        }
    }
    Ok((config, settings))
}

/// The value in force of an option without a default that was not given.
fn computed_default(config: &Config, name: &str) -> String {
    match name {
        "hostname" => config.hostname.clone(),
        "sender-domain" => config.effective_sender_domain(),
        "workers" => config.workers.to_string(),
        _ => "(not set)".to_string(),
    }
}

fn reset_list(config: &mut Config, name: &str) {
    match name {
        "smtp" => config.smtp.clear(),
        "submission" => config.submission.clear(),
        "submissions" => config.submissions.clear(),
        _ => {}
    }
}

/// Reads `name = value` lines; `#` starts a comment; repeatable options may
/// appear on several lines, the others once.
fn read_config_file(path: &Path) -> Result<Values, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config_text(&text)
        .map_err(|(line, problem)| match problem {
            LineProblem::Unknown(name) => ConfigError::UnknownFileOption {
                path: path.to_path_buf(),
                line,
                suggestion: closest_option(&name),
                name,
            },
            LineProblem::Again { first, name } => ConfigError::DuplicateFileOption {
                path: path.to_path_buf(),
                line,
                first,
                name,
            },
            LineProblem::OpenQuote => ConfigError::UnbalancedQuote {
                path: path.to_path_buf(),
                line,
            },
        })
        .map(|values| {
            values
                .into_iter()
                .map(|(name, list)| {
                    let list = list.into_iter().map(|(value, line)| {
                        let path = path.to_path_buf();
                        (value, Source::File { path, line })
                    });
                    (name, list.collect())
                })
                .collect()
        })
}

/// What is wrong with a config-file line.
#[derive(Debug, PartialEq, Eq)]
enum LineProblem {
    /// It names no known option.
    Unknown(String),
    /// It sets a one-value option already set on line `first`.
    Again { first: usize, name: &'static str },
    /// Its value opens a quote it does not close.
    OpenQuote,
}

/// The values and their line numbers by option name, or the number of a
/// line that is wrong and what is wrong with it.
#[allow(clippy::type_complexity)]
fn parse_config_text(
    text: &str,
) -> Result<HashMap<&'static str, Vec<(String, usize)>>, (usize, LineProblem)> {
    // Windows Notepad starts a UTF-8 file with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values: HashMap<&'static str, Vec<(String, usize)>> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n.trim().trim_start_matches("--"), v.trim()),
            // A bare flag name means "on".
            None => (line.trim_start_matches("--"), "on"),
        };
        let Some(spec) = OPTIONS.iter().find(|s| s.name == name) else {
            return Err((line_no, LineProblem::Unknown(name.to_string())));
        };
        let value = unquote(value).ok_or((line_no, LineProblem::OpenQuote))?;
        let entry = values.entry(spec.name).or_default();
        if let (false, Some((_, first))) = (spec.repeatable, entry.first()) {
            let first = *first;
            return Err((
                line_no,
                LineProblem::Again {
                    first,
                    name: spec.name,
                },
            ));
        }
        entry.push((value.to_string(), line_no));
    }
    Ok(values)
}

/// The value without matching surrounding quotes (`"..."` or `'...'`);
/// `None` for a value that opens a quote it does not close.
fn unquote(value: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            return rest.strip_suffix(quote);
        }
    }
    Some(value)
}

/// The option whose name is closest to `name` (at most two edits away,
/// or a prefix of it), for a did-you-mean.
fn closest_option(name: &str) -> Option<&'static str> {
    let names = OPTIONS
        .iter()
        .map(|spec| spec.name)
        .chain([CONFIG_OPTION, CHECK_OPTION]);
    names
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, known)| *distance <= 2 || known.starts_with(name))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// What in a valid configuration deserves a warning at start and in
/// `--check-config`.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if !config.hostname.contains('.') {
        let domains = if config.local_domains.is_empty() {
            " and mail is accepted only for addresses @ it (no --local-domains);"
        } else {
            ";"
        };
        warnings.push(format!(
            "the host name {} is not fully qualified: other servers may refuse mail from a \
             host that greets them (EHLO) with it{domains} set --hostname to the name the \
             server's address resolves to, e.g. mail.example.com",
            config.hostname
        ));
    }
    warnings
}

fn non_empty(value: &str) -> Result<&str, ValueError> {
    let value = value.trim();
    if value.is_empty() {
        Err(ValueError::Empty)
    } else {
        Ok(value)
    }
}

fn listener(list: &mut Vec<SocketAddr>, value: &str) -> Result<(), ValueError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        list.clear();
        return Ok(());
    }
    let addr = SocketAddr::from_str(value).map_err(|_| ValueError::Listener)?;
    list.push(addr);
    Ok(())
}

/// `--metrics`: an explicit address, or `off`.
fn metrics_address(value: &str) -> Result<Option<SocketAddr>, ValueError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match SocketAddr::from_str(value) {
        Ok(addr) if !addr.ip().is_unspecified() => Ok(Some(addr)),
        _ => Err(ValueError::MetricsAddress),
    }
}

/// `local@domain`, with something on both sides and no spaces.
fn address(value: &str) -> Result<String, ValueError> {
    let value = non_empty(value)?;
    match value.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !value.contains(char::is_whitespace) =>
        {
            Ok(value.to_string())
        }
        _ => Err(ValueError::Address),
    }
}

fn domain_list(value: &str) -> Result<Vec<String>, ValueError> {
    let domains: Vec<String> = value
        .split(',')
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .map(|d| dns_name(d).map(|d| d.to_lowercase()))
        .collect::<Result<_, _>>()?;
    if domains.is_empty() {
        return Err(ValueError::NoDomain);
    }
    Ok(domains)
}

/// RFC 1035 §2.3.4 and RFC 1123 §2.1: at most 253 octets, labels of 1 to 63
/// letters, digits and hyphens, not starting or ending with a hyphen. A
/// final dot is dropped.
fn dns_name(value: &str) -> Result<String, ValueError> {
    let name = non_empty(value)?;
    let name = name.strip_suffix('.').unwrap_or(name);
    let bad = |reason: String| Err(ValueError::DnsName(reason));
    if name.len() > 253 {
        return bad("longer than 253 characters".to_string());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("an empty label (two dots in a row, or a leading dot)".to_string());
        }
        if label.len() > 63 {
            return bad(format!("the label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
        {
            return bad(format!(
                "{c:?} is not a letter, digit or hyphen (quotes are allowed only around the whole value, in the config file)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("the label {label:?} starts or ends with a hyphen"));
        }
    }
    Ok(name.to_string())
}

/// Refuses zero for a limit or timeout where zero would refuse all mail
/// or time out at once.
fn above_zero<T: Default + PartialEq>(value: T) -> Result<T, ValueError> {
    if value == T::default() {
        Err(ValueError::Zero)
    } else {
        Ok(value)
    }
}

fn cidr_list(value: &str) -> Result<Vec<Cidr>, ValueError> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Cidr::from_str)
        .collect()
}

fn parse_count<T: FromStr>(value: &str) -> Result<T, ValueError> {
    value.trim().parse().map_err(|_| ValueError::Count)
}

fn size(value: &str) -> Result<usize, ValueError> {
    parse_size(value).map_err(ValueError::Unit)
}

fn duration(value: &str) -> Result<Duration, ValueError> {
    parse_duration(value).map_err(ValueError::Unit)
}

/// `on`/`off` (also `yes`/`no`, `true`/`false`, `1`/`0`).
pub fn parse_switch(value: &str) -> Result<bool, ValueError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Ok(true),
        "off" | "no" | "false" | "0" => Ok(false),
        _ => Err(ValueError::Switch),
    }
}

/// The system host name from `/proc/sys/kernel/hostname`, or `localhost`.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// One protocol worker per CPU but one: the spool writer, its sync threads
/// and delivery need a core too, and on two cores one event loop serving
/// every connection beat two (fewer wake-ups and thread switches; see the
/// README's performance section). On one CPU the accepting thread serves.
fn default_workers() -> usize {
    workers_for_cpus(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    )
}

fn workers_for_cpus(cpus: usize) -> usize {
    cpus.saturating_sub(1)
}

/// An IP network such as `192.168.0.0/16` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Does the network contain `ip`? IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`, as dual-stack sockets report them) match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = ValueError;

    /// `ADDR/PREFIX`, or a bare address meaning just that host.
    fn from_str(text: &str) -> Result<Cidr, ValueError> {
        let bad = || ValueError::Network(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network = IpAddr::from_str(addr.trim()).map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => bits,
        };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Config {
        match parse_args(&args(list)).unwrap() {
            ServeArgs::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_default_parses() {
        let mut config = Config::default();
        for spec in OPTIONS {
            if let Some(d) = spec.default {
                (spec.set)(&mut config, d).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            }
        }
    }

    #[test]
    fn metrics_needs_an_explicit_address() {
        assert_eq!(run(&[]).metrics, None);
        let c = run(&["--metrics", "127.0.0.1:9187"]);
        assert_eq!(c.metrics, Some("127.0.0.1:9187".parse().unwrap()));
        for bad in ["0.0.0.0:9187", "[::]:9187", "localhost:9187", "9187"] {
            let e = parse_args(&args(&["--metrics", bad])).unwrap_err();
            assert!(e.to_string().contains("explicit ADDR:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn no_flags_gives_safe_defaults() {
        let c = run(&[]);
        assert_eq!(c.smtp, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(c.submission, vec!["127.0.0.1:2587".parse().unwrap()]);
        assert_eq!(c.submissions, vec!["127.0.0.1:2465".parse().unwrap()]);
        assert_eq!(c.data_dir, PathBuf::from("./outpost-data"));
        assert_eq!(c.max_message_size, 25 * 1024 * 1024);
        assert_eq!(c.max_recipients, 100);
        assert_eq!(c.max_received, 50);
        assert_eq!(c.max_connections, 1000);
        assert_eq!(c.max_connections_per_ip, 50);
        assert_eq!(c.command_timeout, Duration::from_secs(300));
        assert_eq!(c.greeting_delay, Duration::ZERO);
        assert!(c.sender_check);
        assert!(!c.auth_equals_line);
        assert!(!c.smtp_auth);
        assert_eq!(c.soft_error_limit, 10);
        assert_eq!(c.hard_error_limit, 20);
        assert_eq!(c.error_delay, Duration::from_secs(1));
        assert_eq!(c.workers, default_workers());
        assert_eq!(workers_for_cpus(1), 0);
        assert_eq!(workers_for_cpus(2), 1);
        assert_eq!(workers_for_cpus(8), 7);
        assert!(!c.hostname.is_empty());
        assert!(c.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(c.is_trusted("::1".parse().unwrap()));
        assert!(!c.is_trusted("192.0.2.1".parse().unwrap()));
        assert_eq!(
            c.effective_local_domains(),
            vec![c.hostname.to_ascii_lowercase()]
        );
    }

    #[test]
    fn flags_override_defaults() {
        let c = run(&[
            "--smtp",
            "0.0.0.0:25",
            "--smtp",
            "[::]:25",
            "--submission",
            "off",
            "--hostname",
            "mx.example",
            "--local-domains",
            "Example.COM, example.net.",
            "--relay-networks",
            "none",
            "--max-message-size",
            "10M",
            "--command-timeout",
            "10m",
            "--auth-equals-line",
            "--sender-check",
            "off",
            "--workers",
            "3",
            "--smtp-auth",
            "on",
            "--soft-error-limit",
            "3",
            "--hard-error-limit",
            "5",
            "--error-delay",
            "250ms",
            "--max-connections-per-destination",
            "4",
        ]);
        assert_eq!(c.smtp.len(), 2);
        assert!(c.submission.is_empty());
        assert_eq!(c.submissions.len(), 1);
        assert_eq!(c.hostname, "mx.example");
        assert_eq!(c.local_domains, vec!["example.com", "example.net"]);
        assert!(c.relay_networks.is_empty());
        assert_eq!(c.max_message_size, 10 << 20);
        assert_eq!(c.command_timeout, Duration::from_secs(600));
        assert!(c.auth_equals_line);
        assert!(!c.sender_check);
        assert_eq!(c.workers, 3);
        assert!(c.smtp_auth);
        assert_eq!(c.soft_error_limit, 3);
        assert_eq!(c.hard_error_limit, 5);
        assert_eq!(c.error_delay, Duration::from_millis(250));
        assert_eq!(c.delivery.max_connections_per_destination, 4);
    }

    #[test]
    fn config_file_then_command_line_wins() {
        let dir = TempDir::new("config");
        let file = dir.path().join("outpost.conf");
        std::fs::write(
            &file,
            "# comment\nhostname = file.example  # trailing comment\nmax-recipients=7\n\
             smtp = 127.0.0.1:25\nsmtp = 127.0.0.1:26\nauth-equals-line\n",
        )
        .unwrap();
        let c = run(&["--config", file.to_str().unwrap(), "--max-recipients", "9"]);
        assert_eq!(c.hostname, "file.example");
        assert_eq!(c.max_recipients, 9);
        assert_eq!(c.smtp.len(), 2);
        assert!(c.auth_equals_line);
        std::fs::write(&file, "no-such-option = 1\n").unwrap();
        let err = parse_args(&args(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains(":1: unknown option"), "{err}");
        assert!(
            matches!(&err, ConfigError::UnknownFileOption { line: 1, name, suggestion: None, .. } if name == "no-such-option"),
            "{err:?}"
        );
    }

    #[test]
    fn config_file_values_quotes_repeats_and_byte_order_mark() {
        let dir = TempDir::new("config-strict");
        let file = dir.path().join("outpost.conf");
        let path = file.to_str().unwrap();
        let parse = |text: &str| {
            std::fs::write(&file, text).unwrap();
            parse_args(&args(&["--config", path]))
        };
        let c =
            match parse("\u{feff}hostname = \"mail.example.com\"\nlocal-domains = 'example.com'\n")
            {
                Ok(ServeArgs::Run(c)) => c,
                other => panic!("{other:?}"),
            };
        assert_eq!(c.hostname, "mail.example.com");
        assert_eq!(c.local_domains, ["example.com"]);
        let err = parse("hostname = a.example\n\nhostname = b.example\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{path}:3: hostname is already set on line 1")
        );
        let err = parse("hostname = \"a.example\n").unwrap_err();
        assert!(
            matches!(err, ConfigError::UnbalancedQuote { line: 1, .. }),
            "{err}"
        );
        let err = parse("max-mesage-size = 10M\n").unwrap_err();
        assert!(
            err.to_string().ends_with(
                ":1: unknown option \"max-mesage-size\" (did you mean \"max-message-size\"?)"
            ),
            "{err}"
        );
        let err = parse("\n\nmax-recipients = 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{path}:3: max-recipients = \"0\": must be above 0")
        );
        // Repeatable options may repeat.
        assert!(parse("smtp = 127.0.0.1:25\nsmtp = 127.0.0.1:26\n").is_ok());
    }

    #[test]
    fn check_config_reports_where_each_setting_came_from() {
        let dir = TempDir::new("config-check");
        let file = dir.path().join("outpost.conf");
        std::fs::write(&file, "# settings\nmax-recipients = 7\n").unwrap();
        let path = file.to_str().unwrap();
        let list = args(&[
            "--config",
            path,
            "--check-config",
            "--hostname",
            "mx.example",
        ]);
        let Ok(ServeArgs::Check(config, settings)) = parse_args(&list) else {
            panic!("not a check");
        };
        assert_eq!(config.max_recipients, 7);
        let source = |name: &str| {
            let found = settings.iter().find(|s| s.name == name).unwrap();
            (found.value.clone(), found.source.to_string())
        };
        assert_eq!(source("max-recipients"), ("7".into(), format!("{path}:2")));
        assert_eq!(
            source("hostname"),
            ("mx.example".into(), "command line".into())
        );
        assert_eq!(source("max-received"), ("50".into(), "default".into()));
        assert_eq!(source("users"), ("(not set)".into(), "default".into()));
        assert_eq!(settings.iter().filter(|s| s.name == "smtp").count(), 1);
    }

    #[test]
    fn names_are_dns_names_and_limits_above_zero() {
        for (list, want) in [
            (&["--hostname", "\"mx.example\""][..], "not a DNS name"),
            (&["--hostname", "mx..example"][..], "empty label"),
            (&["--hostname", "-mx.example"][..], "hyphen"),
            (&["--hostname", "mx_1.example"][..], "'_' is not a letter"),
            (
                &["--local-domains", "example.com,exa mple.org"][..],
                "not a DNS name",
            ),
            (&["--max-message-size", "0"][..], "must be above 0"),
            (&["--command-timeout", "0s"][..], "must be above 0"),
            (&["--max-connections", "0"][..], "must be above 0"),
            (&["--max-queue-lifetime", "0"][..], "must be above 0"),
            (
                &["--max-mesage-size", "1M"][..],
                "did you mean --max-message-size?",
            ),
        ] {
            let err = parse_args(&args(list)).unwrap_err().to_string();
            assert!(err.contains(want), "{list:?}: {err}");
        }
        let c = run(&[
            "--hostname",
            "MX.Example.",
            "--local-domains",
            "Example.com.",
        ]);
        assert_eq!(c.hostname, "MX.Example");
        assert_eq!(c.local_domains, ["example.com"]);
        // Where 0 has a meaning, it stays allowed.
        let c = run(&[
            "--greeting-delay",
            "0",
            "--shutdown-grace",
            "0",
            "--workers",
            "0",
        ]);
        assert_eq!(c.workers, 0);
        assert!(warnings(&run(&["--hostname", "mx.example"])).is_empty());
        let text = warnings(&run(&["--hostname", "mailhost"])).join("\n");
        assert!(text.contains("mailhost is not fully qualified"), "{text}");
    }

    #[test]
    fn dkim_options() {
        let c = run(&[]);
        assert_eq!(c.dkim, dkim::Settings::default());
        assert_eq!(c.dkim.algorithms, [dkim::Algorithm::Rsa]);
        let c = run(&[
            "--dkim-selector",
            "s2027",
            "--dkim-domains",
            "Example.org, example.net",
            "--dkim-algorithms",
            "rsa,ed25519",
        ]);
        assert_eq!(c.dkim.selector.as_deref(), Some("s2027"));
        assert_eq!(c.dkim.domains, ["example.org", "example.net"]);
        assert_eq!(
            c.dkim.algorithms,
            [dkim::Algorithm::Rsa, dkim::Algorithm::Ed25519]
        );
        for (flag, value) in [
            ("--dkim-selector", "a.b"),
            ("--dkim-algorithms", "dsa"),
            ("--dkim-domains", ","),
        ] {
            let err = parse_args(&args(&[flag, value])).unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
    }

    #[test]
    fn postmaster_is_an_address() {
        assert_eq!(run(&[]).postmaster, None);
        let c = run(&["--postmaster", " ops@example.org "]);
        assert_eq!(c.postmaster.as_deref(), Some("ops@example.org"));
        for value in ["root", "@example.org", "ops@", "a b@example.org", " "] {
            match parse_args(&args(&["--postmaster", value])) {
                Err(ConfigError::BadValue { reason, .. }) => assert!(
                    matches!(reason, ValueError::Address | ValueError::Empty),
                    "{value:?}: {reason:?}"
                ),
                other => panic!("{value:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        for (list, needle) in [
            (&["--smtp", "localhost"][..], "--smtp"),
            (&["--max-message-size", "lots"][..], "--max-message-size"),
            (&["--command-timeout", "5y"][..], "--command-timeout"),
            (&["--relay-networks", "10.0.0.0/33"][..], "--relay-networks"),
            (&["--sender-check", "maybe"][..], "--sender-check"),
            (&["--no-such-flag"][..], "no-such-flag"),
        ] {
            let err = parse_args(&args(list)).unwrap_err().to_string();
            assert!(err.contains(needle), "{list:?}: {err}");
        }
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (list, want) in [
            (&["--smtp", "localhost"][..], ValueError::Listener),
            (&["--max-recipients", "many"][..], ValueError::Count),
            (&["--sender-check", "maybe"][..], ValueError::Switch),
            (&["--local-domains", " , "][..], ValueError::NoDomain),
            (&["--hostname", " "][..], ValueError::Empty),
            (
                &["--relay-networks", "10.0.0.0/33"][..],
                ValueError::Network("10.0.0.0/33".into()),
            ),
        ] {
            match parse_args(&args(list)) {
                Err(ConfigError::BadValue { option, reason, .. }) => {
                    assert_eq!(option, &list[0][2..]);
                    assert_eq!(reason, want, "{list:?}");
                }
                other => panic!("{list:?}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_args(&args(&["--mx-port", "0"])),
            Err(ConfigError::BadValue {
                reason: ValueError::Delivery(_),
                ..
            })
        ));
        assert!(matches!(
            parse_args(&args(&["serve-now"])),
            Err(ConfigError::UnexpectedArgument(_))
        ));
    }

    #[test]
    fn help_lists_every_option() {
        assert!(matches!(
            parse_args(&args(&["--help"])).unwrap(),
            ServeArgs::Help
        ));
        let text = usage();
        for spec in OPTIONS {
            assert!(text.contains(&format!("--{}", spec.name)), "{}", spec.name);
        }
    }

    #[test]
    fn cidr_matching() {
        for (net, ip, want) in [
            ("127.0.0.0/8", "127.1.2.3", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("192.168.1.0/24", "192.168.1.255", true),
            ("192.168.1.0/24", "192.168.2.0", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("::1/128", "::1", true),
            ("::1/128", "::2", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("::1/128", "127.0.0.1", false),
        ] {
            let cidr: Cidr = net.parse().unwrap();
            assert_eq!(cidr.contains(ip.parse().unwrap()), want, "{net} {ip}");
        }
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "example.com/8",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }
}
