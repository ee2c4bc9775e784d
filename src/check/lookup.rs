//! The DNS side of `outpost check`: a domain's mail hosts (MX records and
//! their addresses, or the implicit MX), its SPF, DKIM and DMARC records,
//! and the reverse DNS of an address, asked through the delivery resolver,
//! recorded as plain data for `findings` and `deliverability` to judge.
//! The resolver also answers the questions of the SPF evaluator.

use std::net::IpAddr;

use super::spf::{is_spf, SpfDns};
use crate::delivery::dns::{DnsError, Resolver};

/// One MX record and the addresses of its host.
#[derive(Debug)]
pub struct MxHost {
    /// The preference (lower first).
    pub preference: u16,
    /// The exchange host.
    pub host: String,
    /// Its A and AAAA addresses, or why there are none.
    pub addrs: Result<Vec<IpAddr>, DnsError>,
}

/// Where mail for a domain goes, as DNS says.
#[derive(Debug)]
pub enum MailHosts {
    /// The domain does not exist (NXDOMAIN).
    NoDomain,
    /// The MX lookup failed.
    LookupFailed(DnsError),
    /// A null MX (RFC 7505): the domain accepts no mail.
    NullMx,
    /// MX records, lowest preference first.
    Mx(Vec<MxHost>),
    /// No MX records: mail goes to the domain's own addresses (RFC 5321
    /// §5.1), or why it has none.
    NoMx(Result<Vec<IpAddr>, DnsError>),
}

impl MailHosts {
    /// The addresses to deliver to, in order, each with its host name.
    pub fn delivery_addresses(&self, domain: &str) -> Vec<(String, IpAddr)> {
        match self {
            MailHosts::Mx(hosts) => hosts
                .iter()
                .flat_map(|mx| {
                    let addrs = mx.addrs.as_deref().unwrap_or(&[]);
                    addrs.iter().map(|&ip| (mx.host.clone(), ip))
                })
                .collect(),
            MailHosts::NoMx(Ok(addrs)) => {
                addrs.iter().map(|&ip| (domain.to_string(), ip)).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Looks up where mail for `domain` goes.
pub fn mail_hosts(resolver: &Resolver, domain: &str) -> MailHosts {
    let mut records = match resolver.mx(domain) {
        Ok(records) => records,
        Err(DnsError::NxDomain) => return MailHosts::NoDomain,
        Err(e) => return MailHosts::LookupFailed(e),
    };
    if records.iter().any(|mx| mx.exchange.is_empty()) {
        return MailHosts::NullMx;
    }
    if records.is_empty() {
        return MailHosts::NoMx(addresses(resolver, domain));
    }
    records.sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
    MailHosts::Mx(
        records
            .into_iter()
            .map(|mx| MxHost {
                preference: mx.preference,
                addrs: addresses(resolver, &mx.exchange),
                host: mx.exchange,
            })
            .collect(),
    )
}

/// The SPF records of `domain`: its TXT records that start with `v=spf1`
/// (RFC 7208 §4.5), or why the lookup failed.
pub fn spf_records(resolver: &Resolver, domain: &str) -> Result<Vec<String>, DnsError> {
    let records = resolver.txt(domain)?;
    Ok(records.into_iter().filter(|text| is_spf(text)).collect())
}

fn addresses(resolver: &Resolver, host: &str) -> Result<Vec<IpAddr>, DnsError> {
    resolver.ip_addrs(host)
}

/// The TXT records at `name` (a DKIM key record, `_dmarc.DOMAIN`).
pub fn txt_records(resolver: &Resolver, name: &str) -> Result<Vec<String>, DnsError> {
    resolver.txt(name)
}

/// An address's reverse DNS: its PTR names, and each name's addresses.
#[derive(Debug)]
pub struct ReverseDns {
    /// The address.
    pub ip: IpAddr,
    /// Its PTR names, or why there are none.
    pub names: Result<Vec<String>, DnsError>,
    /// The A and AAAA addresses of each PTR name.
    pub forward: Vec<(String, Result<Vec<IpAddr>, DnsError>)>,
}

/// Looks up the PTR names of `ip` and the addresses of each.
pub fn reverse_dns(resolver: &Resolver, ip: IpAddr) -> ReverseDns {
    let names = resolver.ptr(ip);
    let forward = names
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|name| (name.clone(), resolver.ip_addrs(name)))
        .collect();
    ReverseDns { ip, names, forward }
}

impl SpfDns for Resolver {
    fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        Resolver::txt(self, name)
    }

    fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        self.ip_addrs(name)
    }

    fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let records = Resolver::mx(self, name)?;
        // A null MX (RFC 7505) names no host.
        let hosts = records.into_iter().map(|mx| mx.exchange);
        Ok(hosts.filter(|host| !host.is_empty()).collect())
    }

    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        Resolver::ptr(self, ip)
    }
}
