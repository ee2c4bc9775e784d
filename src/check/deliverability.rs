//! The judgment of whether a domain's mail from this server will be
//! trusted: the host name, the outbound addresses, SPF evaluated for each,
//! their reverse DNS, the DKIM key records against this server's keys, and
//! DMARC. Pure functions over what `lookup`, `source` and the key files
//! gave; each problem says what to publish or change.

use std::net::IpAddr;

use super::findings::Finding;
use super::lookup::ReverseDns;
use super::spf::{Evaluation, Verdict, MAX_DNS_LOOKUPS};
use crate::delivery::dns::DnsError;
use crate::dkim::key::txt_data;

/// Host names that name no host on the internet (RFC 6762 `.local`, the
/// `.localdomain` of many distributions).
const LOCAL_SUFFIXES: [&str; 2] = [".local", ".localdomain"];

/// One DKIM key of this server and what DNS holds at its record name.
#[derive(Debug)]
pub struct KeyRecord {
    /// The key's selector.
    pub selector: String,
    /// `selector._domainkey.domain`, without the final dot.
    pub name: String,
    /// The record that publishes the key, as `outpost dns` prints it.
    pub expected: String,
    /// The TXT records at `name`, or why there are none.
    pub found: Result<Vec<String>, DnsError>,
}

/// The DKIM keys in force for a domain.
#[derive(Debug)]
pub enum LocalKeys {
    /// The server does not sign the domain's mail.
    NotSigned,
    /// A key of the domain cannot be read.
    Unreadable(String),
    /// The keys and their records.
    Keys(Vec<KeyRecord>),
}

/// Why `ip` cannot be reached from the internet, if so: loopback, private
/// (RFC 1918, RFC 4193), link-local or unspecified.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_unspecified() => Some("unspecified"),
        _ if ip.is_loopback() => Some("loopback"),
        IpAddr::V4(v4) if v4.is_private() => Some("private (RFC 1918)"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xfe00 == 0xfc00 => Some("unique local (fc00::/7)"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("link-local"),
        _ => None,
    }
}

/// The host name must be a fully qualified name: receivers compare it
/// with the EHLO name and the PTR of the sending address.
pub fn hostname_finding(hostname: &str, domain: &str) -> Finding {
    let name = hostname.trim_end_matches('.').to_ascii_lowercase();
    let local = name == "localhost"
        || !name.contains('.')
        || LOCAL_SUFFIXES.iter().any(|suffix| name.ends_with(suffix));
    if local {
        Finding::error(
            hostname,
            format!(
                "the host name {hostname} is not a fully qualified name: receivers distrust \
                 an EHLO name and reverse DNS that name no host on the internet"
            ),
            format!("set --hostname to the server's public name, e.g. mail.{domain}"),
        )
    } else {
        Finding::ok(hostname, format!("host name {name} is fully qualified"))
    }
}

/// The outbound addresses found from the routing table, and a warning for
/// each that the internet does not see (behind NAT).
pub fn discovered_findings(addrs: &[IpAddr]) -> Vec<Finding> {
    if addrs.is_empty() {
        return vec![Finding::error(
            "outbound",
            "no route to the internet: no outbound address to check SPF and reverse DNS for",
            "pass --source-address IP with the address this host sends mail from",
        )];
    }
    let mut findings = vec![Finding::ok(
        "outbound",
        format!(
            "this host sends from {} (found from the routing table; --source-address overrides)",
            join(addrs)
        ),
    )];
    for &ip in addrs {
        if let Some(kind) = non_public(ip) {
            findings.push(Finding::warning(
                &ip.to_string(),
                format!(
                    "a {kind} address: this host reaches the internet through NAT, \
                     so SPF and reverse DNS are not checked for it"
                ),
                "pass --source-address with the public address the internet sees",
            ));
        }
    }
    findings
}

/// The SPF verdict for mail from `ip`; `record` is the domain's SPF record
/// when there is exactly one. No finding when the domain has no record
/// (the SPF record finding says so).
pub fn spf_finding(
    domain: &str,
    ip: IpAddr,
    evaluation: &Evaluation,
    record: Option<&str>,
) -> Option<Finding> {
    let term = match ip {
        IpAddr::V4(v4) => format!("ip4:{v4}"),
        IpAddr::V6(v6) => format!("ip6:{v6}"),
    };
    let allow = match record {
        Some(record) => format!(
            "add {term} (or mx, when this host is {domain}'s MX) to {domain}'s SPF record: `{}`",
            with_term(record, &term)
        ),
        None => format!("publish one SPF record for {domain} such as `v=spf1 mx {term} -all`"),
    };
    let said = |matched: &Option<String>| match matched {
        Some(term) => format!(" ({term})"),
        None => String::new(),
    };
    let subject = domain;
    Some(match &evaluation.verdict {
        Verdict::Pass => Finding::ok(
            subject,
            format!("SPF passes for {ip}{}", said(&evaluation.matched)),
        ),
        Verdict::Fail => Finding::error(
            subject,
            format!(
                "SPF fails for {ip}{}: receivers refuse, or file as spam, mail this host sends for {domain}",
                said(&evaluation.matched)
            ),
            allow,
        ),
        verdict @ (Verdict::SoftFail | Verdict::Neutral) => Finding::warning(
            subject,
            format!(
                "SPF gives {verdict} for {ip}{}: receivers treat mail this host sends for {domain} as suspect",
                said(&evaluation.matched)
            ),
            allow,
        ),
        Verdict::None => return None,
        Verdict::PermError(why) => Finding::error(
            subject,
            format!("SPF for {ip}: permerror: {why}: receivers treat the record as broken"),
            if why.contains("DNS lookups") {
                format!(
                    "keep the terms that ask DNS (include, a, mx, ptr, exists, redirect) at \
                     {MAX_DNS_LOOKUPS} or fewer, counting those inside includes: replace an \
                     include by the ip4:/ip6: ranges it stands for"
                )
            } else {
                format!("correct the record (RFC 7208); `outpost dns {domain}` prints one that works")
            },
        ),
        Verdict::TempError(why) => Finding::warning(
            subject,
            format!("SPF for {ip}: temperror: {why}"),
            "check the DNS server (--dns-server) and the network, then try again",
        ),
        Verdict::NotEvaluated(why) => Finding::warning(
            subject,
            format!("SPF for {ip} {why}"),
            "check the record with a tool that expands SPF macros",
        ),
    })
}

/// `record` with `term` added before its final `all` (or at the end).
fn with_term(record: &str, term: &str) -> String {
    let mut terms: Vec<&str> = record.split(' ').filter(|t| !t.is_empty()).collect();
    let last_is_all = terms.last().is_some_and(|t| {
        t.trim_start_matches(['+', '-', '~', '?'])
            .eq_ignore_ascii_case("all")
    });
    let at = if last_is_all {
        terms.len() - 1
    } else {
        terms.len()
    };
    terms.insert(at.max(1), term);
    terms.join(" ")
}

/// Reverse DNS of an outbound address: a PTR that resolves back to it
/// (forward-confirmed) and names `hostname`.
pub fn reverse_dns_finding(hostname: &str, reverse: &ReverseDns) -> Finding {
    let ip = reverse.ip;
    let subject = ip.to_string();
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let ask = format!("ask your hosting provider to set the PTR of {ip} to {host}");
    let names = match &reverse.names {
        Ok(names) if !names.is_empty() => names,
        Ok(_) | Err(DnsError::NxDomain) => {
            return Finding::error(
                &subject,
                format!(
                    "no reverse DNS (PTR) for {ip}: many receivers refuse mail from an address without one"
                ),
                ask,
            )
        }
        Err(e) => {
            return Finding::warning(
                &subject,
                format!("PTR lookup for {ip} failed: {e}"),
                "check the DNS server (--dns-server) and the network, then try again",
            )
        }
    };
    let confirmed: Vec<&str> = reverse
        .forward
        .iter()
        .filter(|(_, addrs)| addrs.as_ref().is_ok_and(|a| a.contains(&ip)))
        .map(|(name, _)| name.as_str())
        .collect();
    if confirmed.is_empty() {
        let named = names.join(", ");
        return Finding::error(
            &subject,
            format!(
                "the PTR of {ip} is {named}, which does not resolve back to {ip} \
                 (reverse DNS not forward-confirmed)"
            ),
            format!(
                "give {} an A/AAAA record {ip}, or {ask} (and give {host} an A/AAAA record {ip})",
                names[0]
            ),
        );
    }
    if confirmed.contains(&host.as_str()) {
        Finding::ok(
            &subject,
            format!("reverse DNS of {ip}: {host}, which resolves back to {ip} (forward-confirmed)"),
        )
    } else {
        Finding::warning(
            &subject,
            format!(
                "the PTR of {ip} is {} (forward-confirmed), not the host name {host}: \
                 receivers compare it with the EHLO name",
                confirmed[0]
            ),
            format!("{ask}, or set --hostname {}", confirmed[0]),
        )
    }
}

/// `tag=value` pairs of a DKIM or DMARC record (RFC 6376 §3.2), trimmed.
fn tags(record: &str) -> Vec<(&str, &str)> {
    record
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect()
}

/// A `p=` value without its folding whitespace.
fn public_key(record: &str) -> Option<String> {
    let (_, value) = tags(record).into_iter().find(|(name, _)| *name == "p")?;
    Some(value.chars().filter(|c| !c.is_whitespace()).collect())
}

/// Each DKIM key in force has its record, with this server's public key.
pub fn dkim_findings(domain: &str, keys: &LocalKeys) -> Vec<Finding> {
    let records = match keys {
        LocalKeys::NotSigned => {
            return vec![Finding::warning(
                domain,
                format!(
                    "this server does not DKIM-sign mail from {domain}: it is neither a local \
                     domain nor in --dkim-domains"
                ),
                format!(
                    "add {domain} to --local-domains or --dkim-domains, and give `outpost check` \
                     the --config of `outpost serve`"
                ),
            )]
        }
        LocalKeys::Unreadable(why) => {
            return vec![Finding::warning(
                domain,
                format!("this server's DKIM key for {domain} cannot be read: {why}"),
                format!(
                    "give `outpost check` the --config or --data-dir of `outpost serve`; \
                     `outpost dns {domain}` creates a missing key and prints its record"
                ),
            )]
        }
        LocalKeys::Keys(records) => records,
    };
    records
        .iter()
        .map(|key| dkim_finding(domain, key))
        .collect()
}

fn dkim_finding(domain: &str, key: &KeyRecord) -> Finding {
    let KeyRecord {
        selector,
        name,
        expected,
        found,
    } = key;
    let publish = format!("{name}. TXT {}", txt_data(expected));
    let texts = match found {
        Ok(texts) => texts.as_slice(),
        Err(DnsError::NxDomain) => &[],
        Err(e) => {
            return Finding::warning(
                domain,
                format!("DKIM record lookup at {name} failed: {e}"),
                "check the DNS server (--dns-server) and the network, then try again",
            )
        }
    };
    let published: Vec<String> = texts.iter().filter_map(|t| public_key(t)).collect();
    if published.is_empty() {
        return Finding::error(
            domain,
            format!(
                "no DKIM record for selector {selector} at {name}: receivers cannot check this server's signatures"
            ),
            format!("publish {publish}"),
        );
    }
    if public_key(expected).is_some_and(|mine| published.contains(&mine)) {
        return Finding::ok(
            domain,
            format!("DKIM record for selector {selector} matches this server's key"),
        );
    }
    let revoked = published.iter().all(String::is_empty);
    Finding::error(
        domain,
        if revoked {
            format!("the DKIM record for selector {selector} at {name} is revoked (empty p=)")
        } else {
            format!(
                "the DKIM record for selector {selector} at {name} does not match this server's key \
                 (p= differs): signatures fail"
            )
        },
        format!("replace it with {publish}"),
    )
}

/// The DMARC record at `_dmarc.DOMAIN` (RFC 7489 §6.3): present, `v=DMARC1`
/// first, `p=` a policy, `rua=` mailto: addresses.
pub fn dmarc_finding(domain: &str, found: &Result<Vec<String>, DnsError>) -> Finding {
    let name = format!("_dmarc.{domain}");
    let start = format!(
        "publish {name}. TXT {} and move to p=quarantine, then p=reject, once the reports show your mail passing",
        txt_data(&format!("v=DMARC1; p=none; rua=mailto:postmaster@{domain}"))
    );
    let texts = match found {
        Ok(texts) => texts.as_slice(),
        Err(DnsError::NxDomain) => &[],
        Err(e) => {
            return Finding::warning(
                domain,
                format!("DMARC lookup at {name} failed: {e}"),
                "check the DNS server (--dns-server) and the network, then try again",
            )
        }
    };
    let is_dmarc = |text: &&String| {
        tags(text)
            .first()
            .is_some_and(|&(tag, value)| tag == "v" && value == "DMARC1")
    };
    let records: Vec<&String> = texts.iter().filter(is_dmarc).collect();
    let misplaced = texts.iter().find(|t| t.contains("DMARC1") && !is_dmarc(t));
    let record = match (records.as_slice(), misplaced) {
        ([record], _) => record,
        ([], Some(text)) => {
            return Finding::error(
                domain,
                format!("the DMARC record at {name} does not start with v=DMARC1, so receivers ignore it: {text:?}"),
                "put v=DMARC1 first: `v=DMARC1; p=none; rua=mailto:…`",
            )
        }
        ([], None) => {
            return Finding::warning(
                domain,
                format!("no DMARC record at {name}: large providers expect one from every sender"),
                start,
            )
        }
        (several, _) => {
            return Finding::error(
                domain,
                format!(
                    "{} DMARC records at {name}: receivers ignore them all",
                    several.len()
                ),
                "keep one",
            )
        }
    };
    let record_tags = tags(record);
    let value = |tag: &str| {
        record_tags
            .iter()
            .find(|(name, _)| *name == tag)
            .map(|&(_, value)| value)
    };
    let policy = value("p");
    if !matches!(policy, Some("none" | "quarantine" | "reject")) {
        return Finding::error(
            domain,
            format!("the DMARC record at {name} has no valid policy (p=none, quarantine or reject): {record:?}"),
            start,
        );
    }
    let Some(rua) = value("rua") else {
        return Finding::warning(
            domain,
            format!("the DMARC record at {name} asks for no reports (no rua=): you will not see who fails"),
            format!("add rua=mailto:postmaster@{domain}"),
        );
    };
    let bad_uri = rua.split(',').map(str::trim).find(|uri| {
        let address = uri
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
            .map(|_| &uri[7..]);
        !address.is_some_and(|a| a.contains('@'))
    });
    if let Some(uri) = bad_uri {
        return Finding::error(
            domain,
            format!("the DMARC record at {name} has a report address that is not a mailto: URI: {uri:?}"),
            format!("write rua=mailto:postmaster@{domain} (several: comma-separated mailto: URIs)"),
        );
    }
    let policy = policy.unwrap_or("none");
    let advice = if policy == "none" {
        " (p=none only asks for reports: move to p=quarantine, then p=reject, once they show your mail passing)"
    } else {
        ""
    };
    Finding::ok(domain, format!("DMARC: {record}{advice}"))
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::findings::Level;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_and_public_addresses() {
        for (text, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("::1", Some("loopback")),
            ("10.0.0.1", Some("private (RFC 1918)")),
            ("172.16.5.4", Some("private (RFC 1918)")),
            ("192.168.1.1", Some("private (RFC 1918)")),
            ("169.254.1.1", Some("link-local")),
            ("fd00::1", Some("unique local (fc00::/7)")),
            ("fe80::1", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("::", Some("unspecified")),
            ("192.0.2.1", None),
            ("172.32.0.1", None),
            ("2001:db8::1", None),
        ] {
            assert_eq!(non_public(ip(text)), kind, "{text}");
        }
    }

    #[test]
    fn host_names_must_be_fully_qualified() {
        for bad in [
            "mailhost",
            "localhost",
            "mail.local",
            "box.localdomain",
            "MAIL.LOCAL.",
        ] {
            assert_eq!(
                hostname_finding(bad, "example.com").level,
                Level::Error,
                "{bad}"
            );
        }
        assert_eq!(
            hostname_finding("mail.example.com", "example.com").level,
            Level::Ok
        );
    }

    #[test]
    fn spf_fix_adds_the_address_before_all() {
        assert_eq!(
            with_term("v=spf1 mx -all", "ip4:192.0.2.1"),
            "v=spf1 mx ip4:192.0.2.1 -all"
        );
        assert_eq!(
            with_term("v=spf1 mx", "ip6:2001:db8::1"),
            "v=spf1 mx ip6:2001:db8::1"
        );
        assert_eq!(
            with_term("v=spf1 -all", "ip4:192.0.2.1"),
            "v=spf1 ip4:192.0.2.1 -all"
        );
        let fail = Evaluation {
            verdict: Verdict::Fail,
            matched: Some("-all".into()),
        };
        let finding = spf_finding(
            "example.com",
            ip("192.0.2.1"),
            &fail,
            Some("v=spf1 mx -all"),
        )
        .unwrap();
        assert_eq!(finding.level, Level::Error);
        assert!(
            finding.message.contains("SPF fails for 192.0.2.1 (-all)"),
            "{finding}"
        );
        assert!(finding
            .fix
            .unwrap()
            .contains("`v=spf1 mx ip4:192.0.2.1 -all`"));
        let none = Evaluation {
            verdict: Verdict::None,
            matched: None,
        };
        assert!(spf_finding("example.com", ip("192.0.2.1"), &none, None).is_none());
    }

    #[test]
    fn reverse_dns_verdicts() {
        let addr = ip("192.0.2.1");
        let reverse = |names: Result<Vec<&str>, DnsError>, forward: &[(&str, &str)]| ReverseDns {
            ip: addr,
            names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
            forward: forward
                .iter()
                .map(|(name, a)| (name.to_string(), Ok(vec![ip(a)])))
                .collect(),
        };
        let good = reverse(
            Ok(vec!["mail.example.com"]),
            &[("mail.example.com", "192.0.2.1")],
        );
        assert_eq!(
            reverse_dns_finding("mail.example.com", &good).level,
            Level::Ok
        );
        let other = reverse(
            Ok(vec!["host.provider.example"]),
            &[("host.provider.example", "192.0.2.1")],
        );
        let finding = reverse_dns_finding("mail.example.com", &other);
        assert_eq!(finding.level, Level::Warning);
        assert!(finding
            .fix
            .unwrap()
            .contains("set the PTR of 192.0.2.1 to mail.example.com"));
        let unconfirmed = reverse(
            Ok(vec!["mail.example.com"]),
            &[("mail.example.com", "192.0.2.9")],
        );
        let finding = reverse_dns_finding("mail.example.com", &unconfirmed);
        assert_eq!(finding.level, Level::Error);
        assert!(
            finding.message.contains("not forward-confirmed"),
            "{finding}"
        );
        let missing = reverse(Err(DnsError::NxDomain), &[]);
        let finding = reverse_dns_finding("mail.example.com", &missing);
        assert_eq!(finding.level, Level::Error);
        assert_eq!(
            finding.fix.as_deref(),
            Some("ask your hosting provider to set the PTR of 192.0.2.1 to mail.example.com")
        );
    }

    fn key(found: Result<Vec<&str>, DnsError>) -> KeyRecord {
        KeyRecord {
            selector: "s1".into(),
            name: "s1._domainkey.example.com".into(),
            expected: "v=DKIM1; k=rsa; p=MIIBIjANabc".into(),
            found: found.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn dkim_records_compared_with_the_key() {
        let finding = |found| dkim_finding("example.com", &key(found));
        assert_eq!(
            finding(Ok(vec!["v=DKIM1; k=rsa; p=MIIBIjANabc"])).level,
            Level::Ok
        );
        assert_eq!(
            finding(Ok(vec!["k=rsa;p=MIIBI jANa\tbc ; t=s"])).level,
            Level::Ok
        );
        let wrong = finding(Ok(vec!["v=DKIM1; k=rsa; p=MIIBIjANxyz"]));
        assert_eq!(wrong.level, Level::Error);
        assert!(wrong.message.contains("selector s1"), "{wrong}");
        let missing = finding(Err(DnsError::NxDomain));
        assert_eq!(missing.level, Level::Error);
        assert_eq!(
            missing.fix.as_deref(),
            Some("publish s1._domainkey.example.com. TXT \"v=DKIM1; k=rsa; p=MIIBIjANabc\"")
        );
        assert!(finding(Ok(vec!["v=DKIM1; p="])).message.contains("revoked"));
        assert_eq!(finding(Err(DnsError::Timeout)).level, Level::Warning);
    }

    #[test]
    fn dmarc_records() {
        let verdict = |texts: &[&str]| {
            let found = Ok(texts.iter().map(|s| s.to_string()).collect());
            dmarc_finding("example.com", &found)
        };
        let ok = verdict(&["v=DMARC1; p=none; rua=mailto:postmaster@example.com"]);
        assert_eq!(ok.level, Level::Ok);
        assert!(ok.message.contains("move to p=quarantine"), "{ok}");
        assert_eq!(
            verdict(&["v=DMARC1;p=reject;rua=mailto:a@example.com, mailto:b@report.example"]).level,
            Level::Ok
        );
        let missing = dmarc_finding("example.com", &Err(DnsError::NxDomain));
        assert_eq!(missing.level, Level::Warning);
        assert!(missing
            .fix
            .unwrap()
            .starts_with("publish _dmarc.example.com. TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.com\""));
        assert_eq!(verdict(&["some other text"]).level, Level::Warning);
        for broken in [
            &["p=none; v=DMARC1"][..],
            &["v=DMARC1; p=block"],
            &["v=DMARC1; rua=mailto:a@example.com"],
            &["v=DMARC1; p=none; rua=https://report.example"],
            &["v=DMARC1; p=none; rua=mailto:nobody"],
            &["v=DMARC1; p=none", "v=DMARC1; p=reject"],
        ] {
            assert_eq!(verdict(broken).level, Level::Error, "{broken:?}");
        }
        assert_eq!(verdict(&["v=DMARC1; p=quarantine"]).level, Level::Warning);
    }
}
