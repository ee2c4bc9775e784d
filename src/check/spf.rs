//! SPF evaluation (RFC 7208 §4–§6) of one sending address for one domain:
//! what a receiving server would conclude about mail from this host.
//!
//! Covers the mechanisms `all`, `include`, `a`, `mx`, `ptr`, `ip4`, `ip6`
//! and `exists` with their qualifiers and prefix lengths, the `redirect`
//! modifier, the limit of 10 DNS-querying terms (§4.6.4) and of 2 void
//! lookups. Macros (§7) are not expanded: a record that uses them is
//! reported as not evaluated. Pure logic over [`SpfDns`], so the rules are
//! unit-tested over a table; `lookup` answers it from the resolver.

use std::fmt;
use std::net::IpAddr;

use crate::delivery::dns::DnsError;

/// RFC 7208 §4.6.4: at most 10 terms that cause DNS queries.
pub const MAX_DNS_LOOKUPS: usize = 10;
/// RFC 7208 §4.6.4: at most 2 lookups that return no answer (void).
pub const MAX_VOID_LOOKUPS: usize = 2;
/// RFC 7208 §4.6.4: an `mx` mechanism looks at no more than 10 MX hosts,
/// and `ptr` at no more than 10 names.
pub const MAX_NAMES_PER_TERM: usize = 10;

/// The DNS questions SPF asks.
pub trait SpfDns {
    /// The TXT records of `name`, each with its strings joined.
    fn txt(&self, name: &str) -> Result<Vec<String>, DnsError>;
    /// The A and AAAA addresses of `name`.
    fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, DnsError>;
    /// The MX host names of `name`.
    fn mx(&self, name: &str) -> Result<Vec<String>, DnsError>;
    /// The PTR names of `ip`.
    fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError>;
}

/// The result of an evaluation (RFC 7208 §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The address may send for the domain.
    Pass,
    /// The address may not (`-`).
    Fail,
    /// Probably not (`~`).
    SoftFail,
    /// No statement (`?`, or nothing matched).
    Neutral,
    /// The domain has no SPF record.
    None,
    /// The record is broken; receivers treat this like a failure.
    PermError(String),
    /// A DNS error; receivers try again later.
    TempError(String),
    /// The record uses what this check does not evaluate (macros).
    NotEvaluated(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => write!(f, "pass"),
            Verdict::Fail => write!(f, "fail"),
            Verdict::SoftFail => write!(f, "softfail"),
            Verdict::Neutral => write!(f, "neutral"),
            Verdict::None => write!(f, "none"),
            Verdict::PermError(why) => write!(f, "permerror: {why}"),
            Verdict::TempError(why) => write!(f, "temperror: {why}"),
            Verdict::NotEvaluated(why) => write!(f, "not evaluated: {why}"),
        }
    }
}

/// A verdict and the term that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The result.
    pub verdict: Verdict,
    /// The deciding term as written (`ip4:192.0.2.0/24`, `-all`), when a
    /// mechanism matched.
    pub matched: Option<String>,
}

/// Evaluates `domain`'s SPF policy for mail sent from `ip` (RFC 7208
/// `check_host()` with `domain` as the sender's domain).
pub fn evaluate(dns: &impl SpfDns, ip: IpAddr, domain: &str) -> Evaluation {
    let mut evaluator = Evaluator {
        dns,
        ip,
        lookups: 0,
        voids: 0,
    };
    match evaluator.check_host(domain) {
        Ok(Decision::NoRecord) => Evaluation {
            verdict: Verdict::None,
            matched: None,
        },
        Ok(Decision::Matched(qualifier, term)) => Evaluation {
            verdict: qualifier.verdict(),
            matched: Some(term),
        },
        Ok(Decision::NothingMatched) => Evaluation {
            verdict: Verdict::Neutral,
            matched: None,
        },
        Err(abort) => Evaluation {
            verdict: match abort {
                Abort::Perm(why) => Verdict::PermError(why),
                Abort::Temp(why) => Verdict::TempError(why),
                Abort::Unsupported(why) => Verdict::NotEvaluated(why),
            },
            matched: None,
        },
    }
}

/// `+`, `-`, `~` or `?` before a mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn verdict(self) -> Verdict {
        match self {
            Qualifier::Pass => Verdict::Pass,
            Qualifier::Fail => Verdict::Fail,
            Qualifier::SoftFail => Verdict::SoftFail,
            Qualifier::Neutral => Verdict::Neutral,
        }
    }
}

/// What one record concluded, before errors.
enum Decision {
    NoRecord,
    NothingMatched,
    Matched(Qualifier, String),
}

/// Why an evaluation stopped early.
enum Abort {
    Perm(String),
    Temp(String),
    Unsupported(String),
}

/// Prefix lengths of `a` and `mx` (`/24//64`); full length when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DualCidr {
    v4: u8,
    v6: u8,
}

/// One mechanism of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, DualCidr),
    Mx(Option<String>, DualCidr),
    Ptr(Option<String>),
    Ip(IpAddr, u8),
    Exists(String),
}

impl Mechanism {
    /// Whether evaluating it asks DNS (counted against the limit).
    fn queries_dns(&self) -> bool {
        !matches!(self, Mechanism::All | Mechanism::Ip(..))
    }
}

/// A parsed record: its mechanisms in order (each with its text) and its
/// `redirect=` target.
struct Record {
    mechanisms: Vec<(Qualifier, Mechanism, String)>,
    redirect: Option<String>,
}

struct Evaluator<'a, D> {
    dns: &'a D,
    ip: IpAddr,
    lookups: usize,
    voids: usize,
}

impl<D: SpfDns> Evaluator<'_, D> {
    fn check_host(&mut self, domain: &str) -> Result<Decision, Abort> {
        let Some(text) = self.record(domain)? else {
            return Ok(Decision::NoRecord);
        };
        let record = parse(&text)?;
        for (qualifier, mechanism, term) in record.mechanisms {
            if mechanism.queries_dns() {
                self.count_lookup()?;
            }
            if self.matches(&mechanism, domain)? {
                return Ok(Decision::Matched(qualifier, term));
            }
        }
        // RFC 7208 §6.1: redirect applies only when nothing matched.
        let Some(target) = record.redirect else {
            return Ok(Decision::NothingMatched);
        };
        self.count_lookup()?;
        match self.check_host(&target)? {
            Decision::NoRecord => Err(Abort::Perm(format!(
                "redirect={target}: {target} has no SPF record"
            ))),
            decision => Ok(decision),
        }
    }

    /// The one SPF record of `domain` (RFC 7208 §4.5).
    fn record(&mut self, domain: &str) -> Result<Option<String>, Abort> {
        let texts = match self.dns.txt(domain) {
            Ok(texts) => texts,
            Err(DnsError::NxDomain) => return Ok(None),
            Err(e) => return Err(Abort::Temp(format!("TXT of {domain}: {e}"))),
        };
        let mut spf: Vec<String> = texts.into_iter().filter(|t| is_spf(t)).collect();
        match spf.len() {
            0 => Ok(None),
            1 => Ok(spf.pop()),
            n => Err(Abort::Perm(format!("{domain} has {n} SPF records"))),
        }
    }

    fn count_lookup(&mut self) -> Result<(), Abort> {
        self.lookups += 1;
        if self.lookups > MAX_DNS_LOOKUPS {
            return Err(Abort::Perm(format!(
                "more than {MAX_DNS_LOOKUPS} DNS lookups"
            )));
        }
        Ok(())
    }

    /// A lookup's answer; NXDOMAIN and "no records" count as void.
    fn answer<T>(&mut self, result: Result<Vec<T>, DnsError>, what: &str) -> Result<Vec<T>, Abort> {
        let found = match result {
            Ok(found) => found,
            Err(DnsError::NxDomain) => Vec::new(),
            Err(e) => return Err(Abort::Temp(format!("{what}: {e}"))),
        };
        if found.is_empty() {
            self.voids += 1;
            if self.voids > MAX_VOID_LOOKUPS {
                return Err(Abort::Perm(format!(
                    "more than {MAX_VOID_LOOKUPS} void DNS lookups"
                )));
            }
        }
        Ok(found)
    }

    fn matches(&mut self, mechanism: &Mechanism, domain: &str) -> Result<bool, Abort> {
        let ip = self.ip;
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip(net, len) => Ok(in_prefix(ip, *net, *len)),
            Mechanism::Include(target) => match self.check_host(target)? {
                Decision::Matched(Qualifier::Pass, _) => Ok(true),
                Decision::Matched(..) | Decision::NothingMatched => Ok(false),
                Decision::NoRecord => Err(Abort::Perm(format!(
                    "include:{target}: {target} has no SPF record"
                ))),
            },
            Mechanism::A(target, cidr) => {
                let name = target.as_deref().unwrap_or(domain);
                let addrs = self.answer(self.dns.addrs(name), name)?;
                Ok(addrs.iter().any(|&a| cidr_match(ip, a, *cidr)))
            }
            Mechanism::Mx(target, cidr) => {
                let name = target.as_deref().unwrap_or(domain);
                let hosts = self.answer(self.dns.mx(name), name)?;
                if hosts.len() > MAX_NAMES_PER_TERM {
                    return Err(Abort::Perm(format!(
                        "mx: {name} has more than {MAX_NAMES_PER_TERM} MX hosts"
                    )));
                }
                for host in hosts {
                    let addrs = self.answer(self.dns.addrs(&host), &host)?;
                    if addrs.iter().any(|&a| cidr_match(ip, a, *cidr)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(target) => {
                let target = target.as_deref().unwrap_or(domain).to_ascii_lowercase();
                // RFC 7208 §5.5: a DNS error here means no match.
                let names = self.dns.ptr(ip).unwrap_or_default();
                for name in names.into_iter().take(MAX_NAMES_PER_TERM) {
                    let within = name == target || name.ends_with(&format!(".{target}"));
                    if within && self.dns.addrs(&name).is_ok_and(|a| a.contains(&ip)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Exists(name) => {
                let addrs = self.answer(self.dns.addrs(name), name)?;
                Ok(addrs.iter().any(IpAddr::is_ipv4))
            }
        }
    }
}

/// `v=spf1` alone or followed by a space, in any case (RFC 7208 §4.5).
pub fn is_spf(text: &str) -> bool {
    let version = text.split(' ').next().unwrap_or("");
    version.eq_ignore_ascii_case("v=spf1")
}

fn parse(text: &str) -> Result<Record, Abort> {
    let mut record = Record {
        mechanisms: Vec::new(),
        redirect: None,
    };
    for term in text.split(' ').skip(1).filter(|t| !t.is_empty()) {
        if term.contains('%') {
            return Err(Abort::Unsupported(format!(
                "{term} uses a macro, which this check does not expand"
            )));
        }
        let bad = || Abort::Perm(format!("unknown or malformed term {term:?}"));
        if let Some((name, value)) = modifier(term) {
            if name.eq_ignore_ascii_case("redirect") {
                if record.redirect.is_some() {
                    return Err(Abort::Perm("redirect= given twice".into()));
                }
                record.redirect = Some(domain_spec(value).ok_or_else(bad)?);
            }
            // exp= and unknown modifiers do not change the result (§6).
            continue;
        }
        let (qualifier, rest) = match term.as_bytes()[0] {
            b'+' => (Qualifier::Pass, &term[1..]),
            b'-' => (Qualifier::Fail, &term[1..]),
            b'~' => (Qualifier::SoftFail, &term[1..]),
            b'?' => (Qualifier::Neutral, &term[1..]),
            _ => (Qualifier::Pass, term),
        };
        let mechanism = mechanism(rest).ok_or_else(bad)?;
        record
            .mechanisms
            .push((qualifier, mechanism, term.to_string()));
    }
    Ok(record)
}

/// `name=value` when `term` is a modifier (§6: a name, then `=`).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let is_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    is_name.then_some((name, value))
}

fn mechanism(text: &str) -> Option<Mechanism> {
    let split = text.find([':', '/']).unwrap_or(text.len());
    let (name, rest) = text.split_at(split);
    let name = name.to_ascii_lowercase();
    let argument = rest.strip_prefix(':');
    match name.as_str() {
        "all" if rest.is_empty() => Some(Mechanism::All),
        "include" => Some(Mechanism::Include(domain_spec(argument?)?)),
        "exists" => Some(Mechanism::Exists(domain_spec(argument?)?)),
        "ptr" => match argument {
            Some(target) => Some(Mechanism::Ptr(Some(domain_spec(target)?))),
            None if rest.is_empty() => Some(Mechanism::Ptr(None)),
            None => None,
        },
        "a" | "mx" => {
            let (target, cidr) = target_and_cidr(rest)?;
            Some(if name == "a" {
                Mechanism::A(target, cidr)
            } else {
                Mechanism::Mx(target, cidr)
            })
        }
        "ip4" | "ip6" => {
            let argument = argument?;
            let (addr, len) = match argument.split_once('/') {
                Some((addr, len)) => (addr, Some(len.parse::<u8>().ok()?)),
                None => (argument, None),
            };
            let ip: IpAddr = addr.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = len.unwrap_or(max);
            let family_ok = (name == "ip4") == ip.is_ipv4();
            (family_ok && len <= max).then_some(Mechanism::Ip(ip, len))
        }
        _ => None,
    }
}

/// `[:domain][/len4][//len6]` after `a` or `mx`.
fn target_and_cidr(rest: &str) -> Option<(Option<String>, DualCidr)> {
    let (before, v6) = match rest.split_once("//") {
        Some((before, v6)) => (before, v6.parse::<u8>().ok().filter(|&l| l <= 128)?),
        None => (rest, 128),
    };
    let (target, v4) = match before.split_once('/') {
        Some((target, v4)) => (target, v4.parse::<u8>().ok().filter(|&l| l <= 32)?),
        None => (before, 32),
    };
    let target = match target {
        "" => None,
        _ => Some(domain_spec(target.strip_prefix(':')?)?),
    };
    Some((target, DualCidr { v4, v6 }))
}

/// A target domain: lower case, without a final dot; at least one label.
fn domain_spec(text: &str) -> Option<String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty() && name.split('.').all(|label| !label.is_empty());
    valid.then_some(name)
}

fn cidr_match(ip: IpAddr, addr: IpAddr, cidr: DualCidr) -> bool {
    let len = if addr.is_ipv4() { cidr.v4 } else { cidr.v6 };
    in_prefix(ip, addr, len)
}

/// Whether `ip` is in `net/len` (addresses of the other family never are).
fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let diff = u32::from(ip) ^ u32::from(net);
            diff.checked_shr(32 - u32::from(len)).unwrap_or(0) == 0
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let diff = u128::from(ip) ^ u128::from(net);
            diff.checked_shr(128 - u32::from(len)).unwrap_or(0) == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A zone as a table: name → TXT, addresses, MX hosts; reverse names
    /// as `ptr:IP`.
    #[derive(Default)]
    struct Table {
        txt: HashMap<String, Vec<String>>,
        addrs: HashMap<String, Vec<IpAddr>>,
        mx: HashMap<String, Vec<String>>,
        ptr: HashMap<IpAddr, Vec<String>>,
    }

    impl Table {
        fn txt(mut self, name: &str, text: &str) -> Table {
            self.txt
                .entry(name.into())
                .or_default()
                .push(text.to_string());
            self
        }
        fn a(mut self, name: &str, ip: &str) -> Table {
            self.addrs
                .entry(name.into())
                .or_default()
                .push(ip.parse().unwrap());
            self
        }
        fn mx(mut self, name: &str, host: &str) -> Table {
            self.mx.entry(name.into()).or_default().push(host.into());
            self
        }
        fn ptr(mut self, ip: &str, name: &str) -> Table {
            self.ptr
                .entry(ip.parse().unwrap())
                .or_default()
                .push(name.into());
            self
        }
        fn exists(&self, name: &str) -> bool {
            self.txt.contains_key(name)
                || self.addrs.contains_key(name)
                || self.mx.contains_key(name)
        }
        fn get<T: Clone>(
            &self,
            map: &HashMap<String, Vec<T>>,
            name: &str,
        ) -> Result<Vec<T>, DnsError> {
            if name == "timeout.example" {
                return Err(DnsError::Timeout);
            }
            match map.get(name) {
                Some(found) => Ok(found.clone()),
                None if self.exists(name) => Ok(Vec::new()),
                None => Err(DnsError::NxDomain),
            }
        }
    }

    impl SpfDns for Table {
        fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
            self.get(&self.txt, name)
        }
        fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
            self.get(&self.addrs, name)
        }
        fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
            self.get(&self.mx, name)
        }
        fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
            self.ptr.get(&ip).cloned().ok_or(DnsError::NxDomain)
        }
    }

    fn zone() -> Table {
        let mut t = Table::default()
            .txt(
                "example.com",
                "v=spf1 mx ip4:198.51.100.0/24 include:_spf.provider.example ~all",
            )
            .txt("example.com", "google-site-verification=xyz")
            .mx("example.com", "mx.example.com")
            .a("mx.example.com", "192.0.2.10")
            .a("mx.example.com", "2001:db8::10")
            .txt(
                "_spf.provider.example",
                "v=spf1 ip6:2001:db8:beef::/48 a:out.provider.example/28 -all",
            )
            .a("out.provider.example", "203.0.113.16")
            .txt("strict.example", "v=spf1 a -all")
            .a("strict.example", "192.0.2.20")
            .txt("dual.example", "v=spf1 a/24//64 -all")
            .a("dual.example", "192.0.2.20")
            .a("dual.example", "2001:db8:1:2::1")
            .txt("other-mx.example", "v=spf1 mx:example.com/30 ?all")
            .txt("redirected.example", "v=spf1 redirect=example.com")
            .txt("open.example", "v=spf1 +all")
            .txt("nothing.example", "v=spf1 ip4:192.0.2.99")
            .txt("two.example", "v=spf1 -all")
            .txt("two.example", "v=spf1 mx -all")
            .txt("broken.example", "v=spf1 ipv4:192.0.2.1 -all")
            .txt("macro.example", "v=spf1 exists:%{i}.list.example -all")
            .txt("dangling.example", "v=spf1 include:absent.example -all")
            .txt("temp.example", "v=spf1 include:timeout.example -all")
            .txt("ptr.example", "v=spf1 ptr -all")
            .ptr("192.0.2.30", "host.ptr.example")
            .a("host.ptr.example", "192.0.2.30")
            .txt("exists.example", "v=spf1 exists:ok.exists.example -all")
            .a("ok.exists.example", "127.0.0.2")
            .txt(
                "voids.example",
                "v=spf1 a:v1.example a:v2.example a:v3.example -all",
            )
            .txt("redirect-nowhere.example", "v=spf1 redirect=absent.example")
            .txt("no-spf.example", "just text");
        // 11 lookups through a chain of includes.
        for i in 0..11 {
            t = t.txt(
                &format!("chain{i}.example"),
                &format!("v=spf1 include:chain{}.example -all", i + 1),
            );
        }
        // 10 lookups exactly: 9 includes and an mx.
        for i in 0..10 {
            let next = if i == 9 {
                "mx:example.com".to_string()
            } else {
                format!("include:ten{}.example", i + 1)
            };
            t = t.txt(&format!("ten{i}.example"), &format!("v=spf1 {next} -all"));
        }
        t
    }

    #[test]
    fn evaluates_over_a_table() {
        let table = zone();
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("192.0.2.10", "example.com", "pass", Some("mx")),
            ("2001:db8::10", "example.com", "pass", Some("mx")),
            ("198.51.100.77", "example.com", "pass", Some("ip4:198.51.100.0/24")),
            ("2001:db8:beef:1::5", "example.com", "pass", Some("include:_spf.provider.example")),
            ("203.0.113.20", "example.com", "pass", Some("include:_spf.provider.example")),
            ("203.0.113.40", "example.com", "softfail", Some("~all")),
            ("192.0.2.20", "strict.example", "pass", Some("a")),
            ("192.0.2.21", "strict.example", "fail", Some("-all")),
            ("192.0.2.200", "dual.example", "pass", Some("a/24//64")),
            ("2001:db8:1:2::99", "dual.example", "pass", Some("a/24//64")),
            ("2001:db8:1:3::1", "dual.example", "fail", Some("-all")),
            ("192.0.2.9", "other-mx.example", "pass", Some("mx:example.com/30")),
            ("192.0.2.1", "other-mx.example", "neutral", Some("?all")),
            ("192.0.2.10", "redirected.example", "pass", Some("mx")),
            ("203.0.113.40", "redirected.example", "softfail", Some("~all")),
            ("8.8.8.8", "open.example", "pass", Some("+all")),
            ("192.0.2.1", "nothing.example", "neutral", None),
            ("192.0.2.1", "no-spf.example", "none", None),
            ("192.0.2.1", "absent.example", "none", None),
            ("192.0.2.1", "two.example", "permerror: two.example has 2 SPF records", None),
            ("192.0.2.1", "broken.example", "permerror: unknown or malformed term \"ipv4:192.0.2.1\"", None),
            ("192.0.2.1", "macro.example", "not evaluated: exists:%{i}.list.example uses a macro, which this check does not expand", None),
            ("192.0.2.1", "dangling.example", "permerror: include:absent.example: absent.example has no SPF record", None),
            ("192.0.2.1", "temp.example", "temperror: TXT of timeout.example: no answer from the DNS servers", None),
            ("192.0.2.30", "ptr.example", "pass", Some("ptr")),
            ("192.0.2.31", "ptr.example", "fail", Some("-all")),
            ("192.0.2.1", "exists.example", "pass", Some("exists:ok.exists.example")),
            ("192.0.2.1", "voids.example", "permerror: more than 2 void DNS lookups", None),
            ("192.0.2.1", "redirect-nowhere.example", "permerror: redirect=absent.example: absent.example has no SPF record", None),
            ("192.0.2.1", "chain0.example", "permerror: more than 10 DNS lookups", None),
            ("192.0.2.10", "ten0.example", "pass", Some("include:ten1.example")),
        ];
        for &(ip, domain, verdict, matched) in cases {
            let got = evaluate(&table, ip.parse().unwrap(), domain);
            assert_eq!(got.verdict.to_string(), verdict, "{ip} for {domain}");
            assert_eq!(got.matched.as_deref(), matched, "{ip} for {domain}");
        }
    }

    #[test]
    fn terms_parse_or_are_refused() {
        let all = DualCidr { v4: 32, v6: 128 };
        assert_eq!(mechanism("a"), Some(Mechanism::A(None, all)));
        assert_eq!(
            mechanism("MX:Example.COM./24"),
            Some(Mechanism::Mx(
                Some("example.com".into()),
                DualCidr { v4: 24, v6: 128 }
            ))
        );
        assert_eq!(
            mechanism("a//48"),
            Some(Mechanism::A(None, DualCidr { v4: 32, v6: 48 }))
        );
        assert_eq!(
            mechanism("ip6:2001:db8::/32"),
            Some(Mechanism::Ip("2001:db8::".parse().unwrap(), 32))
        );
        for bad in [
            "ip4:2001:db8::1",
            "ip4:192.0.2.1/33",
            "ip6:::1/129",
            "a/33",
            "mx:",
            "include",
            "all:x",
            "ptr/24",
            "foo",
            "a:ex..ample",
        ] {
            assert_eq!(mechanism(bad), None, "{bad}");
        }
        assert_eq!(
            modifier("redirect=example.com"),
            Some(("redirect", "example.com"))
        );
        assert_eq!(modifier("ip4:192.0.2.1"), None);
        assert!(in_prefix(
            "10.1.2.3".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            8
        ));
        assert!(in_prefix(
            "10.1.2.3".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
        assert!(!in_prefix(
            "11.1.2.3".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            8
        ));
        assert!(!in_prefix(
            "::1".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            0
        ));
        assert!(is_spf("V=SPF1 -all") && !is_spf("v=spf10"));
    }
}
