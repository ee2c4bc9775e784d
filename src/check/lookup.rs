//! The DNS side of `outpost check`: a domain's mail hosts (MX records and
//! their addresses, or the implicit MX) and its SPF records, asked through
//! the delivery resolver, recorded as plain data for `findings` to judge.

use std::net::IpAddr;

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

/// `v=spf1` alone or followed by a space, in any case.
fn is_spf(text: &str) -> bool {
    let version = text.split(' ').next().unwrap_or("");
    version.eq_ignore_ascii_case("v=spf1")
}

fn addresses(resolver: &Resolver, host: &str) -> Result<Vec<IpAddr>, DnsError> {
    resolver.ip_addrs(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_records_are_recognised() {
        assert!(is_spf("v=spf1 mx -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=abc"));
        assert!(!is_spf(""));
    }
}
