//! A client-side diagnosis of the usual mail setup problems, in plain
//! words: it probes ports (plaintext SMTP, STARTTLS or implicit TLS, the
//! certificate, AUTH), a domain's DNS records and whether outbound port 25
//! works, and reports each [`Finding`] as it is made.
//!
//! For a domain (`--dns`) it asks whether mail from this server will be
//! trusted: MX (not at a private address), SPF evaluated for each outbound
//! address, the reverse DNS of each, the DKIM records against this
//! server's keys, DMARC, and a fully qualified host name.
//!
//! Owns the order of the checks; `probe` holds the socket and TLS code,
//! `source` finds the outbound addresses, `lookup` asks DNS, `spf`
//! evaluates SPF, `findings` and `deliverability` judge (pure,
//! unit-tested). The command line (`outpost check`) is `cli::check`, the
//! only user. May import `delivery::dns`, `dkim` (the key files), `proto`
//! and `tls`.

mod deliverability;
mod findings;
mod lookup;
mod probe;
mod source;
mod spf;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::delivery::dns::{DnsError, Resolver, ResolverConfig};
use crate::dkim::store::now_secs;
use crate::dkim::{self, KeyStore};
use crate::tls::TlsError;
use deliverability::{KeyRecord, LocalKeys};
use findings::ConnectAttempt;
pub use findings::{Finding, Level};
use probe::{ProbeTarget, Settings};

/// The outbound check tries at most this many mail host addresses.
const MAX_OUTBOUND_ATTEMPTS: usize = 4;

/// What to check.
#[derive(Debug, Clone)]
pub struct Request {
    /// The ports to probe, in order.
    pub ports: Vec<PortTarget>,
    /// Check the MX and SPF records of this domain.
    pub dns: Option<String>,
    /// Check that the mail hosts of this domain can be reached.
    pub outbound: Option<String>,
    /// The port the outbound check connects to (25).
    pub outbound_port: u16,
    /// Bound on each connect and reply.
    pub timeout: Duration,
    /// The certificate name to check instead of each port's host.
    pub sni: Option<String>,
    /// Also trust the certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// Ask this DNS server instead of the ones in /etc/resolv.conf.
    pub dns_server: Option<SocketAddr>,
    /// The name sent with EHLO.
    pub ehlo_name: String,
    /// The server whose mail `dns` judges.
    pub sender: Sender,
}

/// The server that sends a domain's mail, as `outpost serve` is set up.
#[derive(Debug, Clone)]
pub struct Sender {
    /// `--hostname`: what the reverse DNS of its addresses should name.
    pub hostname: String,
    /// The data directory, which holds the DKIM keys.
    pub data_dir: PathBuf,
    /// The DKIM selector and algorithms.
    pub dkim: dkim::Settings,
    /// The domains it signs for (local domains and `--dkim-domains`).
    pub signed_domains: Vec<String>,
    /// `--source-address`: the addresses it sends from; `None`: those the
    /// routing table picks.
    pub source_addresses: Option<Vec<IpAddr>>,
}

/// One port to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortTarget {
    /// How the port was named (`HOST:PORT`); the subject of its findings.
    pub label: String,
    /// The host name or IP address.
    pub host: String,
    /// The port number.
    pub port: u16,
}

/// Why the checks cannot start.
#[derive(Debug)]
pub enum CheckError {
    /// The certificates of [`Request::ca_file`] cannot be used.
    CaFile(TlsError),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::CaFile(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckError::CaFile(e) => Some(e),
        }
    }
}

/// Why a host name gave no address.
#[derive(Debug)]
enum ResolveError {
    /// The lookup through [`Request::dns_server`] failed.
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

/// Runs the checks of `request` in order (ports, DNS records, outbound
/// port) and hands each finding to `report` as soon as it is made.
pub fn run(request: &Request, mut report: impl FnMut(Finding)) -> Result<(), CheckError> {
    let roots =
        crate::tls::trusted_roots(request.ca_file.as_deref()).map_err(CheckError::CaFile)?;
    let settings = Settings {
        timeout: request.timeout,
        ehlo_name: request.ehlo_name.clone(),
        roots: Arc::new(roots),
    };
    let mut report_all = |findings: Vec<Finding>| findings.into_iter().for_each(&mut report);
    let resolver = resolver(request);
    for target in &request.ports {
        report_all(check_port(
            target,
            request,
            resolver.as_ref().ok(),
            &settings,
        ));
    }
    for (domain, outbound) in [(&request.dns, false), (&request.outbound, true)] {
        let Some(domain) = domain else { continue };
        let resolver = match &resolver {
            Ok(resolver) => resolver,
            Err(e) => {
                report_all(vec![no_resolver(domain, e)]);
                continue;
            }
        };
        let hosts = lookup::mail_hosts(resolver, domain);
        if outbound {
            let attempts = outbound_attempts(domain, &hosts, request);
            report_all(findings::outbound_findings(
                domain,
                request.outbound_port,
                &hosts,
                &attempts,
            ));
        } else {
            report_all(findings::dns_findings(domain, &hosts));
            if !matches!(hosts, lookup::MailHosts::NoDomain) {
                let spf = lookup::spf_records(resolver, domain);
                report_all(findings::spf_findings(domain, &spf));
                report_all(deliverability(resolver, domain, &request.sender, &spf));
            }
        }
    }
    Ok(())
}

/// Whether `domain`'s mail from `sender` will be trusted: its host name,
/// SPF and reverse DNS for each outbound address, DKIM and DMARC.
fn deliverability(
    resolver: &Resolver,
    domain: &str,
    sender: &Sender,
    spf: &Result<Vec<String>, DnsError>,
) -> Vec<Finding> {
    let mut findings = vec![deliverability::hostname_finding(&sender.hostname, domain)];
    let addrs = match &sender.source_addresses {
        Some(given) => given.clone(),
        None => {
            let found = source::outbound_addresses();
            findings.extend(deliverability::discovered_findings(&found));
            // What the internet sees of a host behind NAT is not known here.
            found
                .into_iter()
                .filter(|&ip| deliverability::non_public(ip).is_none())
                .collect()
        }
    };
    let record = match spf.as_deref() {
        Ok([record]) => Some(record.as_str()),
        _ => None,
    };
    for &ip in &addrs {
        let evaluation = spf::evaluate(resolver, ip, domain);
        findings.extend(deliverability::spf_finding(domain, ip, &evaluation, record));
    }
    for &ip in &addrs {
        let reverse = lookup::reverse_dns(resolver, ip);
        findings.push(deliverability::reverse_dns_finding(
            &sender.hostname,
            &reverse,
        ));
    }
    let keys = local_keys(resolver, domain, sender);
    findings.extend(deliverability::dkim_findings(domain, &keys));
    let dmarc = lookup::txt_records(resolver, &format!("_dmarc.{domain}"));
    findings.push(deliverability::dmarc_finding(domain, &dmarc));
    findings
}

/// The keys `outpost serve` signs `domain`'s mail with (the selector in
/// force, one key per algorithm), each with the TXT records at its name.
fn local_keys(resolver: &Resolver, domain: &str, sender: &Sender) -> LocalKeys {
    let signed = sender
        .signed_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(domain));
    if !signed {
        return LocalKeys::NotSigned;
    }
    let domain = &domain.trim_end_matches('.').to_ascii_lowercase();
    let store = KeyStore::new(&sender.data_dir);
    let selector = store.selector(domain, sender.dkim.selector.as_deref(), now_secs());
    let mut records = Vec::new();
    for &algorithm in &sender.dkim.algorithms {
        let key = match store.load(domain, &selector, algorithm) {
            Ok(key) => key,
            Err(e) => return LocalKeys::Unreadable(e.to_string()),
        };
        let name = key.record_name().trim_end_matches('.').to_string();
        records.push(KeyRecord {
            found: lookup::txt_records(resolver, &name),
            expected: key.key.dns_record(),
            selector: key.selector,
            name,
        });
    }
    LocalKeys::Keys(records)
}

fn no_resolver(subject: &str, error: &DnsError) -> Finding {
    Finding::error(
        subject,
        format!("cannot ask DNS: {error}"),
        "pass --dns-server IP",
    )
}

/// The resolver of [`Request::dns_server`], or of /etc/resolv.conf.
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

/// Probes one port.
fn check_port(
    target: &PortTarget,
    request: &Request,
    resolver: Option<&Resolver>,
    settings: &Settings,
) -> Vec<Finding> {
    let PortTarget { label, host, port } = target;
    let failed = |message: String, fix: &str| vec![Finding::error(label, message, fix)];
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match resolve(host, *port, request.dns_server.and(resolver)) {
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
    let probe_target = ProbeTarget {
        addr: SocketAddr::new(ip, *port),
        tls_name,
        checked_name,
    };
    let outcome = probe::probe_port(&probe_target, settings);
    findings::port_findings(label, *port, &outcome)
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
fn outbound_attempts(
    domain: &str,
    hosts: &lookup::MailHosts,
    request: &Request,
) -> Vec<ConnectAttempt> {
    let mut attempts = Vec::new();
    for (host, ip) in hosts
        .delivery_addresses(domain)
        .into_iter()
        .take(MAX_OUTBOUND_ATTEMPTS)
    {
        let greeting = probe::greeting(SocketAddr::new(ip, request.outbound_port), request.timeout);
        let greeted = matches!(greeting, probe::Greeting::Received(_));
        attempts.push(ConnectAttempt { host, ip, greeting });
        if greeted {
            break;
        }
    }
    attempts
}
