//! The settings of the delivery side with their defaults, and small pure
//! parsers for their command-line forms. Which flag sets which field is
//! said once, in the `OPTIONS` table of `crate::config`.
//!
//! Pure: nothing here reads files or sockets.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::outbound::CertPolicy;
use super::retry::{self, RetryPolicy, Schedule};
use super::sign::Signing;

/// SMTP's port for MX delivery (RFC 5321 §4.5.4 / IANA).
pub const SMTP_PORT: u16 = 25;
/// `--max-outbound-connections` default: enough parallelism for a small
/// server without hammering anyone.
pub const DEFAULT_MAX_OUTBOUND_CONNECTIONS: usize = 20;
/// `--max-connections-per-destination` default, Postfix's
/// `default_destination_concurrency_limit`.
pub const DEFAULT_MAX_CONNECTIONS_PER_DESTINATION: usize = 20;
/// `--max-received` default, Postfix's `hopcount_limit`.
pub const DEFAULT_MAX_RECEIVED: usize = 50;
/// Upper bound for `--max-outbound-connections` (one thread each).
pub const MAX_OUTBOUND_CONNECTIONS: usize = 1000;

/// Errors of the string forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// Not `HOST:PORT` (or `[IPv6]:PORT`) with a port 1-65535.
    BadHostPort(String),
    /// Not `IP:PORT`.
    BadSocketAddr(String),
    /// Not a port number 1-65535.
    BadPort(String),
    /// `--transport` is not `DOMAIN=HOST:PORT`, `DOMAIN=relay` or
    /// `DOMAIN=discard`.
    BadTransport(String),
    /// `--outbound-address` is not one IPv4 and/or one IPv6 address.
    BadOutboundAddress(String),
    /// `--outbound-ip-family` is not `ipv4`, `ipv6` or `both`.
    BadIpFamily(String),
    /// `--relay-tls` is not `starttls`, `tls` or `none`.
    BadRelayTls(String),
    /// `--outbound-tls` is not `opportunistic` or `verify`.
    BadOutboundTls(String),
    /// `--max-outbound-connections` or `--max-connections-per-destination`
    /// is not 1..=1000.
    BadConnections(String),
    /// A duration or retry list did not parse.
    Retry(retry::RetryError),
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingError::BadHostPort(s) => {
                write!(
                    f,
                    "bad host {s:?}: write HOST:PORT, e.g. smtp.example.com:587"
                )
            }
            SettingError::BadSocketAddr(s) => {
                write!(f, "bad address {s:?}: write IP:PORT, e.g. 127.0.0.1:53")
            }
            SettingError::BadPort(s) => write!(f, "bad port {s:?}: write a number 1-65535"),
            SettingError::BadTransport(s) => write!(
                f,
                "bad transport {s:?}: write DOMAIN=HOST:PORT, DOMAIN=relay or DOMAIN=discard"
            ),
            SettingError::BadOutboundAddress(s) => write!(
                f,
                "bad outbound address {s:?}: write one IPv4 address, one IPv6 address, or one of \
                 each separated by a comma"
            ),
            SettingError::BadIpFamily(s) => {
                write!(f, "bad IP family {s:?}: write ipv4, ipv6 or both")
            }
            SettingError::BadRelayTls(s) => {
                write!(f, "bad relay TLS mode {s:?}: write starttls, tls or none")
            }
            SettingError::BadOutboundTls(s) => {
                write!(
                    f,
                    "bad outbound TLS mode {s:?}: write opportunistic or verify"
                )
            }
            SettingError::BadConnections(s) => write!(
                f,
                "bad connection count {s:?}: write a number 1-{MAX_OUTBOUND_CONNECTIONS}"
            ),
            SettingError::Retry(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SettingError {}

impl From<retry::RetryError> for SettingError {
    fn from(e: retry::RetryError) -> SettingError {
        SettingError::Retry(e)
    }
}

/// A host name (or IP literal) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host name or IP address, without brackets.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How to talk TLS to the smarthost (`--relay-tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// STARTTLS required (port 587).
    StartTls,
    /// TLS from the first byte (port 465, RFC 8314).
    Tls,
    /// Plaintext (a relay on the local network only).
    None,
}

/// Where `--transport` sends one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportRoute {
    /// Accept and drop (benchmarks).
    Discard,
    /// Deliver to this host instead of the domain's MX.
    Host(HostPort),
    /// Through the smarthost (`--relay-host`, with its TLS and AUTH).
    Relay,
}

/// Which addresses of a destination delivery connects to
/// (`--outbound-ip-family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both, in the order DNS gives them.
    Both,
}

impl IpFamily {
    /// May delivery connect to `ip`?
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
            IpFamily::Both => true,
        }
    }
}

/// One `--transport DOMAIN=ROUTE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportRule {
    /// The recipient domain, lower case.
    pub domain: String,
    /// Where its mail goes.
    pub route: TransportRoute,
}

/// Everything the delivery threads need to know.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Our name for EHLO, Reporting-MTA and Maildir file names.
    pub hostname: String,
    /// Domains delivered to Maildir here (lower case).
    pub local_domains: Vec<String>,
    /// The data directory (`queue/`, `mail/`).
    pub data_dir: PathBuf,
    /// `--dns-server`: ask this server instead of /etc/resolv.conf's.
    pub dns_server: Option<SocketAddr>,
    /// `--mx-port`: the port of MX hosts (25; tests change it).
    pub mx_port: u16,
    /// `--outbound-tls`: opportunistic (default) or verify certificates of
    /// MX hosts. In verify mode STARTTLS is also required.
    pub outbound_tls: CertPolicy,
    /// `--relay-host`: send all remote mail to this smarthost.
    pub relay_host: Option<HostPort>,
    /// `--relay-tls`: how to protect the smarthost connection.
    pub relay_tls: RelayTls,
    /// `--relay-user`: AUTH user at the smarthost.
    pub relay_user: Option<String>,
    /// `--relay-password-file`: the AUTH password (first line).
    pub relay_password_file: Option<PathBuf>,
    /// `--relay-ca`: extra CA certificates (PEM) for the smarthost.
    pub relay_ca: Option<PathBuf>,
    /// `--transport`: per-domain routes, checked before the smarthost.
    pub transports: Vec<TransportRule>,
    /// `--outbound-address`: the local addresses delivery connects from
    /// (at most one per family; none: the system chooses).
    pub outbound_addresses: Vec<IpAddr>,
    /// `--outbound-ip-family`: which destination addresses are used.
    pub ip_family: IpFamily,
    /// `--retry`, `--max-queue-lifetime`, `--delay-warning`.
    pub retry: RetryPolicy,
    /// `--max-outbound-connections`: delivery threads, hence connections.
    pub max_outbound_connections: usize,
    /// `--max-connections-per-destination`: connections open to one
    /// destination at a time, idle kept ones included (`delivery::pool`).
    pub max_connections_per_destination: usize,
    /// `--aliases`: the alias file.
    pub aliases: Option<PathBuf>,
    /// `--max-received`: a queued message with more `Received:` fields
    /// than this, besides our own, is in a loop and is returned.
    pub max_received: usize,
    /// `--maildir-group-access`: Maildirs open to the server's group
    /// (directories 2770, files 0640) instead of its user alone.
    pub maildir_group_access: bool,
    /// Our own listening addresses (filled in at start): delivery never
    /// connects to them.
    pub listening: Vec<SocketAddr>,
    /// DKIM signing of mail leaving for other domains (filled in at start;
    /// its keys are shared with the SIGHUP reload); `None`: sent unsigned.
    pub dkim: Option<Signing>,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            hostname: "localhost".into(),
            local_domains: Vec::new(),
            data_dir: PathBuf::from("outpost-data"),
            dns_server: None,
            mx_port: SMTP_PORT,
            outbound_tls: CertPolicy::Opportunistic,
            relay_host: None,
            relay_tls: RelayTls::StartTls,
            relay_user: None,
            relay_password_file: None,
            relay_ca: None,
            transports: Vec::new(),
            outbound_addresses: Vec::new(),
            ip_family: IpFamily::Both,
            retry: RetryPolicy::default(),
            max_outbound_connections: DEFAULT_MAX_OUTBOUND_CONNECTIONS,
            max_connections_per_destination: DEFAULT_MAX_CONNECTIONS_PER_DESTINATION,
            aliases: None,
            max_received: DEFAULT_MAX_RECEIVED,
            maildir_group_access: false,
            listening: Vec::new(),
            dkim: None,
        }
    }
}

impl DeliveryConfig {
    /// Adds one `--transport DOMAIN=ROUTE`; a later rule for the same
    /// domain replaces the earlier one.
    pub fn add_transport(&mut self, text: &str) -> Result<(), SettingError> {
        let rule = parse_transport(text)?;
        self.transports.retain(|r| r.domain != rule.domain);
        self.transports.push(rule);
        Ok(())
    }

    /// The `--transport` route of `domain` (any case), if one is set.
    pub fn transport_for(&self, domain: &str) -> Option<&TransportRoute> {
        let domain = domain.to_ascii_lowercase();
        self.transports
            .iter()
            .find(|r| r.domain == domain)
            .map(|r| &r.route)
    }

    /// Does the smarthost take only the domains routed to it with
    /// `--transport DOMAIN=relay` (the rest going direct), rather than all
    /// remote mail?
    pub fn relay_is_per_domain(&self) -> bool {
        self.transports
            .iter()
            .any(|r| r.route == TransportRoute::Relay)
    }

    /// The `--outbound-address` to connect from to `destination`, if one
    /// of its family is set.
    pub fn source_for(&self, destination: IpAddr) -> Option<IpAddr> {
        self.outbound_addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == destination.is_ipv4())
    }

    /// Is `domain` (any case) one of ours?
    pub fn is_local(&self, domain: &str) -> bool {
        self.local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`.
pub fn parse_host_port(text: &str) -> Result<HostPort, SettingError> {
    let bad = || SettingError::BadHostPort(text.to_string());
    let t = text.trim();
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (host, rest) = rest.split_once(']').ok_or_else(bad)?;
        (host, rest.strip_prefix(':').ok_or_else(bad)?)
    } else {
        let (host, port) = t.rsplit_once(':').ok_or_else(bad)?;
        if host.contains(':') {
            return Err(bad());
        }
        (host, port)
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
    if !host_ok {
        return Err(bad());
    }
    let port = parse_port(port).map_err(|_| bad())?;
    Ok(HostPort {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// A port number 1-65535.
pub fn parse_port(text: &str) -> Result<u16, SettingError> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 && text.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(SettingError::BadPort(text.to_string())),
    }
}

/// `IP:PORT` (`--dns-server`).
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, SettingError> {
    text.trim()
        .parse()
        .map_err(|_| SettingError::BadSocketAddr(text.to_string()))
}

/// `DOMAIN=HOST:PORT` or `DOMAIN=discard`.
pub fn parse_transport(text: &str) -> Result<TransportRule, SettingError> {
    let bad = || SettingError::BadTransport(text.to_string());
    let (domain, route) = text.trim().split_once('=').ok_or_else(bad)?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !domain_ok {
        return Err(bad());
    }
    let route = match route.trim() {
        r if r.eq_ignore_ascii_case("discard") => TransportRoute::Discard,
        r if r.eq_ignore_ascii_case("relay") => TransportRoute::Relay,
        r => TransportRoute::Host(parse_host_port(r).map_err(|_| bad())?),
    };
    Ok(TransportRule { domain, route })
}

/// `--outbound-address`: one IPv4 address, one IPv6 address, or one of
/// each, comma-separated.
pub fn parse_outbound_addresses(text: &str) -> Result<Vec<IpAddr>, SettingError> {
    let bad = || SettingError::BadOutboundAddress(text.to_string());
    let mut addresses: Vec<IpAddr> = Vec::new();
    for part in text.split(',') {
        let ip: IpAddr = part.trim().parse().map_err(|_| bad())?;
        if ip.is_unspecified() || addresses.iter().any(|a| a.is_ipv4() == ip.is_ipv4()) {
            return Err(bad());
        }
        addresses.push(ip);
    }
    Ok(addresses)
}

/// `ipv4`, `ipv6` or `both`.
pub fn parse_ip_family(text: &str) -> Result<IpFamily, SettingError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "ipv4" | "4" => Ok(IpFamily::V4),
        "ipv6" | "6" => Ok(IpFamily::V6),
        "both" | "any" => Ok(IpFamily::Both),
        _ => Err(SettingError::BadIpFamily(text.to_string())),
    }
}

/// `starttls`, `tls` or `none`.
pub fn parse_relay_tls(text: &str) -> Result<RelayTls, SettingError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "starttls" => Ok(RelayTls::StartTls),
        "tls" | "ssl" => Ok(RelayTls::Tls),
        "none" => Ok(RelayTls::None),
        _ => Err(SettingError::BadRelayTls(text.to_string())),
    }
}

/// `opportunistic` or `verify`.
pub fn parse_outbound_tls(text: &str) -> Result<CertPolicy, SettingError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "opportunistic" => Ok(CertPolicy::Opportunistic),
        "verify" => Ok(CertPolicy::Verify),
        _ => Err(SettingError::BadOutboundTls(text.to_string())),
    }
}

/// `--retry LIST` as a schedule (`1s,1s,2s`; the last delay repeats).
pub fn parse_retry(text: &str) -> Result<Schedule, SettingError> {
    Ok(Schedule::List(retry::parse_schedule(text)?))
}

/// `--max-outbound-connections` and `--max-connections-per-destination`:
/// 1 to [`MAX_OUTBOUND_CONNECTIONS`].
pub fn parse_connections(text: &str) -> Result<usize, SettingError> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_OUTBOUND_CONNECTIONS).contains(&n) => Ok(n),
        _ => Err(SettingError::BadConnections(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn host_ports() {
        let good = [
            ("smtp.example.com:587", hp("smtp.example.com", 587)),
            ("127.0.0.1:2525", hp("127.0.0.1", 2525)),
            ("[::1]:25", hp("::1", 25)),
            ("Relay.Example:465", hp("relay.example", 465)),
        ];
        for (text, want) in good {
            assert_eq!(parse_host_port(text), Ok(want.clone()), "{text}");
            assert_eq!(parse_host_port(&want.to_string()), Ok(want), "{text}");
        }
        for bad in [
            "",
            "host",
            "host:",
            ":25",
            "host:0",
            "host:65536",
            "host:+25",
            "::1:25",
            "[::1]25",
            "a b:25",
            "host:25x",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outbound_addresses_and_families() {
        let both = parse_outbound_addresses("192.0.2.1, 2001:db8::1").unwrap();
        assert_eq!(both.len(), 2);
        for bad in [
            "",
            "192.0.2.1,192.0.2.2",
            "0.0.0.0",
            "mail.example",
            "::1,::2",
        ] {
            assert!(parse_outbound_addresses(bad).is_err(), "{bad}");
        }
        let config = DeliveryConfig {
            outbound_addresses: both,
            ..DeliveryConfig::default()
        };
        let v6: IpAddr = "2001:db8::9".parse().unwrap();
        assert_eq!(config.source_for(v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_ip_family("IPv4"), Ok(IpFamily::V4));
        assert_eq!(parse_ip_family("both"), Ok(IpFamily::Both));
        assert!(parse_ip_family("ipv5").is_err());
        assert!(IpFamily::V4.allows("192.0.2.9".parse().unwrap()));
        assert!(!IpFamily::V4.allows(v6));
    }

    #[test]
    fn transports() {
        let table = [
            (
                "example.com=127.0.0.1:2525",
                "example.com",
                TransportRoute::Host(hp("127.0.0.1", 2525)),
            ),
            ("Bench.Test.=discard", "bench.test", TransportRoute::Discard),
            ("x.test=DISCARD", "x.test", TransportRoute::Discard),
            ("gmail.com=relay", "gmail.com", TransportRoute::Relay),
        ];
        for (text, domain, route) in table {
            let rule = parse_transport(text).unwrap();
            assert_eq!(
                (rule.domain.as_str(), rule.route),
                (domain, route),
                "{text}"
            );
        }
        for bad in [
            "",
            "example.com",
            "=discard",
            "a/b=discard",
            "x.test=nowhere",
        ] {
            assert!(parse_transport(bad).is_err(), "{bad}");
        }
        let mut config = DeliveryConfig::default();
        config.add_transport("a.test=discard").unwrap();
        config.add_transport("A.test=h:1").unwrap();
        assert_eq!(config.transports.len(), 1);
        assert_eq!(
            config.transport_for("A.TEST"),
            Some(&TransportRoute::Host(hp("h", 1)))
        );
    }

    #[test]
    fn modes_and_numbers() {
        assert_eq!(parse_relay_tls("STARTTLS"), Ok(RelayTls::StartTls));
        assert_eq!(parse_relay_tls("tls"), Ok(RelayTls::Tls));
        assert_eq!(parse_relay_tls("none"), Ok(RelayTls::None));
        assert!(parse_relay_tls("maybe").is_err());
        assert_eq!(parse_outbound_tls("verify"), Ok(CertPolicy::Verify));
        assert_eq!(
            parse_outbound_tls("opportunistic"),
            Ok(CertPolicy::Opportunistic)
        );
        assert!(parse_outbound_tls("strict").is_err());
        assert_eq!(parse_connections("20"), Ok(20));
        assert!(parse_connections("0").is_err());
        assert!(parse_connections("1001").is_err());
        assert_eq!(parse_port("25"), Ok(25));
        assert!(parse_port("0").is_err());
        assert_eq!(
            parse_socket_addr("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert!(parse_socket_addr("localhost:53").is_err());
        assert_eq!(
            parse_retry("1s,2s"),
            Ok(Schedule::List(vec![
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(2)
            ]))
        );
        assert!(parse_retry("1s,0").is_err());
    }

    #[test]
    fn defaults_are_postfix_like_and_opportunistic() {
        let c = DeliveryConfig::default();
        assert_eq!(c.mx_port, 25);
        assert_eq!(c.outbound_tls, CertPolicy::Opportunistic);
        assert_eq!(c.relay_tls, RelayTls::StartTls);
        assert_eq!(c.retry.max_lifetime, retry::DEFAULT_MAX_LIFETIME);
        assert_eq!(c.retry.delay_warning, Some(retry::DEFAULT_DELAY_WARNING));
        assert_eq!(c.max_outbound_connections, 20);
        assert_eq!(c.max_connections_per_destination, 20);
        assert!(!c.is_local("x"));
    }
}
