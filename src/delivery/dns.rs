//! A small DNS stub resolver for MX, A, AAAA, TXT and PTR over plain std sockets:
//! UDP first, TCP when the answer is truncated (RFC 1035 §4.2, RFC 7766).
//!
//! Messages are encoded and decoded with `simple-dns`; the socket code, the
//! retries and the checks on the reply are ours. Reply parsing
//! ([`parse_response`]) is a pure function over bytes so it can be fuzzed.
//! Servers come from /etc/resolv.conf or `--dns-server IP:PORT`.
//!
//! Defences against off-path spoofing: a random query id and a fresh
//! socket (random source port) per query, the UDP socket connected to the
//! server so the kernel drops datagrams from elsewhere, and the reply's id
//! and question checked before anything in it is used.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, Question, CLASS, QCLASS, QTYPE, TYPE};

use crate::net::is_timeout;

/// Default per-query timeout (resolv.conf's default `timeout:5`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default rounds over all servers (resolv.conf's default `attempts:2`).
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// A question waiting for an answer checks this often whether it is to be
/// abandoned ([`Resolver::stopped_by`]).
pub const STOP_CHECK: Duration = Duration::from_millis(100);
/// Largest UDP reply we read; without EDNS0 a server sends at most 512
/// octets (RFC 1035 §4.2.1), but some send more and that is harmless.
pub const MAX_UDP_REPLY: usize = 4096;
/// CNAME links followed inside one answer before giving up (loops).
pub const MAX_CNAME_CHAIN: usize = 8;

/// A mail exchanger record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Lower is preferred (RFC 5321 §5.1).
    pub preference: u16,
    /// The exchange host without the trailing dot; empty for the root
    /// (`.`, a null MX, RFC 7505).
    pub exchange: String,
}

/// One record of the asked-for type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An MX record.
    Mx(Mx),
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A TXT record's strings joined without separator (RFC 7208 §3.3);
    /// records that are not UTF-8 are left out.
    Txt(String),
    /// A PTR record's host name, without the trailing dot, in lower case.
    Ptr(String),
}

/// The record types we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    /// MX (15).
    Mx,
    /// A (1).
    A,
    /// AAAA (28).
    Aaaa,
    /// TXT (16).
    Txt,
    /// PTR (12).
    Ptr,
}

impl QueryType {
    fn to_type(self) -> TYPE {
        match self {
            QueryType::Mx => TYPE::MX,
            QueryType::A => TYPE::A,
            QueryType::Aaaa => TYPE::AAAA,
            QueryType::Txt => TYPE::TXT,
            QueryType::Ptr => TYPE::PTR,
        }
    }
}

/// What a well-formed reply to our query says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The TC bit is set: ask again over TCP.
    Truncated,
    /// NOERROR with these records of the asked type (empty: the name exists
    /// but has no such records, "NODATA").
    Records(Vec<Record>),
}

/// Errors of the resolver.
#[derive(Debug)]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN, RCODE 3): permanent.
    NxDomain,
    /// The server answered with another error code (SERVFAIL, REFUSED …):
    /// temporary.
    ServerFailure(u8),
    /// No server answered in time: temporary.
    Timeout,
    /// A socket call failed: temporary.
    Io(std::io::Error),
    /// A reply that is not a valid answer to our query (wrong id, wrong
    /// question, undecodable). Over UDP such replies are ignored.
    Malformed(&'static str),
    /// The name cannot be asked for (empty label, too long, non-ASCII).
    BadName(String),
    /// No name servers configured (and /etc/resolv.conf unreadable).
    NoServers(String),
    /// The server is stopping; the question was abandoned.
    Stopped,
}

impl DnsError {
    /// True only for NXDOMAIN: the domain does not exist. Everything else
    /// is worth retrying later.
    pub fn is_permanent(&self) -> bool {
        matches!(self, DnsError::NxDomain)
    }
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::NxDomain => write!(f, "the domain does not exist (NXDOMAIN)"),
            DnsError::ServerFailure(rcode) => write!(f, "DNS server error (RCODE {rcode})"),
            DnsError::Timeout => write!(f, "no answer from the DNS servers"),
            DnsError::Io(e) => write!(f, "DNS socket error: {e}"),
            DnsError::Malformed(why) => write!(f, "bad DNS reply: {why}"),
            DnsError::BadName(name) => write!(f, "cannot look up {name:?}: not a valid DNS name"),
            DnsError::NoServers(why) => write!(f, "no DNS servers: {why}"),
            DnsError::Stopped => write!(f, "the lookup was abandoned: the server is stopping"),
        }
    }
}

impl std::error::Error for DnsError {}

/// Where and how to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Name servers, tried in order.
    pub servers: Vec<SocketAddr>,
    /// How long to wait for one reply.
    pub timeout: Duration,
    /// Rounds over all servers.
    pub attempts: u32,
}

impl ResolverConfig {
    /// One explicit server (`--dns-server IP:PORT`), with default timeouts.
    pub fn with_server(server: SocketAddr) -> ResolverConfig {
        ResolverConfig {
            servers: vec![server],
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// The servers, timeout and attempts of a resolv.conf text.
    pub fn from_resolv_conf(text: &[u8]) -> Result<ResolverConfig, DnsError> {
        let conf =
            resolv_conf::Config::parse(text).map_err(|e| DnsError::NoServers(e.to_string()))?;
        let servers: Vec<SocketAddr> = conf
            .nameservers
            .iter()
            .map(|ip| SocketAddr::new(IpAddr::from(ip), 53))
            .collect();
        if servers.is_empty() {
            return Err(DnsError::NoServers(
                "no nameserver line in resolv.conf".into(),
            ));
        }
        Ok(ResolverConfig {
            servers,
            timeout: Duration::from_secs(u64::from(conf.timeout.clamp(1, 30))),
            attempts: conf.attempts.clamp(1, 5),
        })
    }

    /// Reads `/etc/resolv.conf`.
    pub fn from_system() -> Result<ResolverConfig, DnsError> {
        let text = std::fs::read("/etc/resolv.conf")
            .map_err(|e| DnsError::NoServers(format!("/etc/resolv.conf: {e}")))?;
        ResolverConfig::from_resolv_conf(&text)
    }
}

/// The stub resolver. Blocking; use it on delivery threads only.
#[derive(Debug, Clone)]
pub struct Resolver {
    config: ResolverConfig,
    stop: Arc<AtomicBool>,
}

impl Resolver {
    /// A resolver asking the configured servers.
    pub fn new(config: ResolverConfig) -> Resolver {
        Resolver {
            config,
            stop: Arc::default(),
        }
    }

    /// The same, abandoning its questions (with [`DnsError::Stopped`]) within
    /// [`STOP_CHECK`] once `stop` is set, instead of waiting out the
    /// timeouts of servers that do not answer.
    pub fn stopped_by(self, stop: Arc<AtomicBool>) -> Resolver {
        Resolver { stop, ..self }
    }

    fn stopping(&self) -> Result<(), DnsError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(DnsError::Stopped);
        }
        Ok(())
    }

    /// The MX records of `domain` (empty when it has none: use the implicit
    /// MX). NXDOMAIN is [`DnsError::NxDomain`].
    pub fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        Ok(self
            .query(domain, QueryType::Mx)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Mx(mx) => Some(mx),
                _ => None,
            })
            .collect())
    }

    /// The TXT records of `name`, each as one string (empty when it has
    /// none). NXDOMAIN is [`DnsError::NxDomain`].
    pub fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        Ok(self
            .query(name, QueryType::Txt)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Txt(text) => Some(text),
                _ => None,
            })
            .collect())
    }

    /// The PTR names of `ip` (its reverse DNS), asked at [`reverse_name`]
    /// (empty when it has none). NXDOMAIN is [`DnsError::NxDomain`].
    pub fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        Ok(self
            .query(&reverse_name(ip), QueryType::Ptr)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Ptr(name) => Some(name),
                _ => None,
            })
            .collect())
    }

    /// The A and AAAA addresses of `host`, IPv4 first (many hosts have no
    /// IPv6 route; the caller tries them all). An error only when neither
    /// lookup gave an address; NXDOMAIN when both said so.
    pub fn ip_addrs(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let v4 = self.query(host, QueryType::A);
        let v6 = self.query(host, QueryType::Aaaa);
        let mut addrs = Vec::new();
        let mut first_error = None;
        for result in [v4, v6] {
            match result {
                Ok(records) => addrs.extend(records.into_iter().filter_map(|r| match r {
                    Record::A(ip) => Some(IpAddr::V4(ip)),
                    Record::Aaaa(ip) => Some(IpAddr::V6(ip)),
                    Record::Mx(_) | Record::Txt(_) | Record::Ptr(_) => None,
                })),
                Err(e) => {
                    // Prefer reporting a temporary error over NXDOMAIN.
                    if first_error.as_ref().map_or(true, DnsError::is_permanent) {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) if addrs.is_empty() => Err(e),
            _ => Ok(addrs),
        }
    }

    /// One question, over UDP and then TCP if truncated, with the
    /// configured attempts over all servers.
    pub fn query(&self, name: &str, qtype: QueryType) -> Result<Vec<Record>, DnsError> {
        if self.config.servers.is_empty() {
            return Err(DnsError::NoServers("none configured".into()));
        }
        let mut last_error = DnsError::Timeout;
        for _ in 0..self.config.attempts.max(1) {
            for &server in &self.config.servers {
                self.stopping()?;
                let id = random_id()?;
                let query = build_query(id, name, qtype)?;
                let result = match self.ask_udp(server, &query, id, name, qtype) {
                    Ok(Response::Truncated) => self.ask_tcp(server, &query, id, name, qtype),
                    other => other,
                };
                match result {
                    Ok(Response::Records(records)) => return Ok(records),
                    Ok(Response::Truncated) => {
                        last_error = DnsError::Malformed("truncated reply over TCP")
                    }
                    Err(DnsError::NxDomain) => return Err(DnsError::NxDomain),
                    Err(e @ (DnsError::BadName(_) | DnsError::Stopped)) => return Err(e),
                    Err(e) => last_error = e,
                }
            }
        }
        Err(last_error)
    }

    fn ask_udp(
        &self,
        server: SocketAddr,
        query: &[u8],
        id: u16,
        name: &str,
        qtype: QueryType,
    ) -> Result<Response, DnsError> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(DnsError::Io)?;
        socket.connect(server).map_err(DnsError::Io)?;
        socket.send(query).map_err(DnsError::Io)?;
        let deadline = Instant::now() + self.config.timeout;
        let mut buf = vec![0u8; MAX_UDP_REPLY];
        loop {
            self.stopping()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DnsError::Timeout);
            }
            socket
                .set_read_timeout(Some(left.min(STOP_CHECK)))
                .map_err(DnsError::Io)?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => return Err(DnsError::Io(e)),
            };
            match parse_response(&buf[..n], id, name, qtype) {
                // A stray or forged datagram: keep waiting for the real one.
                Err(DnsError::Malformed(_)) => continue,
                other => return other,
            }
        }
    }

    fn ask_tcp(
        &self,
        server: SocketAddr,
        query: &[u8],
        id: u16,
        name: &str,
        qtype: QueryType,
    ) -> Result<Response, DnsError> {
        let timeout = self.config.timeout;
        let io = |e: std::io::Error| {
            if is_timeout(&e) {
                DnsError::Timeout
            } else {
                DnsError::Io(e)
            }
        };
        let mut stream = TcpStream::connect_timeout(&server, timeout).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        // RFC 1035 §4.2.2: each message is preceded by its length.
        let len = u16::try_from(query.len()).map_err(|_| DnsError::Malformed("query too long"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).map_err(io)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).map_err(io)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).map_err(io)?;
        parse_response(&reply, id, name, qtype)
    }
}

/// The name whose PTR record is `ip`'s reverse DNS (RFC 1035 §3.5,
/// RFC 3596 §2.5): `4.3.2.1.in-addr.arpa` for 1.2.3.4, and the 32 nibbles
/// of an IPv6 address in reverse under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

fn random_id() -> Result<u16, DnsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DnsError::Io(std::io::Error::other("no system randomness")))?;
    Ok(u16::from_be_bytes(bytes))
}

/// The wire form of a recursive query for `name`/`qtype`.
pub fn build_query(id: u16, name: &str, qtype: QueryType) -> Result<Vec<u8>, DnsError> {
    let bad = || DnsError::BadName(name.to_string());
    let trimmed = name.trim_end_matches('.');
    // RFC 1035 §2.3.4: labels of 1 to 63 octets, 255 in all.
    let labels_ok = trimmed.split('.').all(|l| !l.is_empty() && l.len() <= 63);
    if trimmed.is_empty() || trimmed.len() > 253 || !trimmed.is_ascii() || !labels_ok {
        return Err(bad());
    }
    let qname = Name::new(trimmed).map_err(|_| bad())?;
    let mut packet = Packet::new_query(id);
    packet.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        qname,
        QTYPE::TYPE(qtype.to_type()),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.build_bytes_vec().map_err(|_| bad())
}

/// Decodes a reply to the query `id` for `name`/`qtype`: checks that it is
/// a reply, to our id and our question, maps the RCODE, follows CNAMEs in
/// the answer, and returns the records of the asked type. Pure, for fuzzing.
pub fn parse_response(
    bytes: &[u8],
    id: u16,
    name: &str,
    qtype: QueryType,
) -> Result<Response, DnsError> {
    // Check the fixed header by hand first: a truncated message may not
    // decode, and its TC bit is all we need from it.
    if bytes.len() < 12 {
        return Err(DnsError::Malformed("shorter than a DNS header"));
    }
    if u16::from_be_bytes([bytes[0], bytes[1]]) != id {
        return Err(DnsError::Malformed("wrong query id"));
    }
    if bytes[2] & 0x80 == 0 {
        return Err(DnsError::Malformed("not a reply"));
    }
    if bytes[2] & 0x02 != 0 {
        return Ok(Response::Truncated);
    }
    let packet = Packet::parse(bytes).map_err(|_| DnsError::Malformed("undecodable"))?;
    let wanted = name.trim_end_matches('.').to_ascii_lowercase();
    let question_matches = packet.questions.len() == 1
        && packet.questions.iter().all(|q| {
            q.qtype == QTYPE::TYPE(qtype.to_type())
                && q.qname
                    .to_string()
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(&wanted)
        });
    if !question_matches {
        return Err(DnsError::Malformed("reply to another question"));
    }
    match bytes[3] & 0x0f {
        0 => {}
        3 => return Err(DnsError::NxDomain),
        rcode => return Err(DnsError::ServerFailure(rcode)),
    }
    // RFC 1034 §3.6.2: the answer may be a CNAME chain; records of the
    // asked type belong to the last name in it.
    let mut names = vec![wanted];
    for _ in 0..MAX_CNAME_CHAIN {
        let next = packet.answers.iter().find_map(|rr| match &rr.rdata {
            RData::CNAME(target) if owner_in(&rr.name, &names) => {
                let t = target
                    .0
                    .to_string()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                (!names.contains(&t)).then_some(t)
            }
            _ => None,
        });
        match next {
            Some(t) => names.push(t),
            None => break,
        }
    }
    let records = packet
        .answers
        .iter()
        .filter(|rr| owner_in(&rr.name, &names))
        .filter_map(|rr| match (&rr.rdata, qtype) {
            (RData::MX(mx), QueryType::Mx) => Some(Record::Mx(Mx {
                preference: mx.preference,
                exchange: mx
                    .exchange
                    .to_string()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            })),
            (RData::A(a), QueryType::A) => Some(Record::A(Ipv4Addr::from(a.address))),
            (RData::AAAA(a), QueryType::Aaaa) => Some(Record::Aaaa(Ipv6Addr::from(a.address))),
            (RData::TXT(txt), QueryType::Txt) => {
                String::try_from(txt.clone()).ok().map(Record::Txt)
            }
            (RData::PTR(target), QueryType::Ptr) => Some(Record::Ptr(
                target
                    .0
                    .to_string()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            )),
            _ => None,
        })
        .collect();
    Ok(Response::Records(records))
}

fn owner_in(owner: &Name<'_>, names: &[String]) -> bool {
    let owner = owner.to_string();
    let owner = owner.trim_end_matches('.');
    names.iter().any(|n| n.eq_ignore_ascii_case(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::rdata::{A, AAAA, CNAME, MX};
    use simple_dns::{PacketFlag, ResourceRecord, RCODE};

    fn reply(
        id: u16,
        name: &str,
        qtype: QueryType,
        answers: Vec<ResourceRecord<'static>>,
    ) -> Packet<'static> {
        let mut p = Packet::new_reply(id);
        p.questions.push(Question::new(
            Name::new_unchecked(name).into_owned(),
            QTYPE::TYPE(qtype.to_type()),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.answers = answers;
        p
    }

    fn rr(name: &'static str, rdata: RData<'static>) -> ResourceRecord<'static> {
        ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, 300, rdata)
    }

    fn mx(pref: u16, host: &'static str) -> RData<'static> {
        RData::MX(MX {
            preference: pref,
            exchange: Name::new_unchecked(host),
        })
    }

    #[test]
    fn query_round_trips() {
        let q = build_query(0x1234, "Example.COM.", QueryType::Mx).unwrap();
        let p = Packet::parse(&q).unwrap();
        assert_eq!(p.id(), 0x1234);
        assert!(p.has_flags(PacketFlag::RECURSION_DESIRED));
        assert_eq!(p.questions[0].qname.to_string(), "Example.COM");
        for bad in ["", ".", "a..b", "bücher.example", &"x".repeat(64)] {
            assert!(
                matches!(build_query(1, bad, QueryType::A), Err(DnsError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_mx_a_aaaa_and_follows_cnames() {
        let p = reply(
            7,
            "example.com",
            QueryType::Mx,
            vec![
                rr("example.com", mx(10, "mx1.example.com")),
                rr("example.com", mx(20, "MX2.example.com")),
                rr("other.com", mx(5, "evil.example")),
            ],
        );
        let got = parse_response(
            &p.build_bytes_vec().unwrap(),
            7,
            "EXAMPLE.com.",
            QueryType::Mx,
        )
        .unwrap();
        assert_eq!(
            got,
            Response::Records(vec![
                Record::Mx(Mx {
                    preference: 10,
                    exchange: "mx1.example.com".into()
                }),
                Record::Mx(Mx {
                    preference: 20,
                    exchange: "mx2.example.com".into()
                }),
            ])
        );
        let p = reply(
            8,
            "www.example",
            QueryType::A,
            vec![
                rr(
                    "www.example",
                    RData::CNAME(CNAME(Name::new_unchecked("host.example"))),
                ),
                rr(
                    "host.example",
                    RData::A(A {
                        address: u32::from(Ipv4Addr::new(192, 0, 2, 1)),
                    }),
                ),
                rr("host.example", RData::AAAA(AAAA { address: 1 })),
            ],
        );
        let got = parse_response(
            &p.build_bytes_vec().unwrap(),
            8,
            "www.example",
            QueryType::A,
        )
        .unwrap();
        assert_eq!(
            got,
            Response::Records(vec![Record::A(Ipv4Addr::new(192, 0, 2, 1))])
        );
    }

    #[test]
    fn parses_txt_joining_its_strings() {
        use simple_dns::rdata::TXT;
        use simple_dns::CharacterString;
        let split = TXT::new()
            .with_char_string(CharacterString::new(b"v=spf1 mx ").unwrap())
            .with_char_string(CharacterString::new(b"-all").unwrap());
        let p = reply(
            10,
            "example.com",
            QueryType::Txt,
            vec![
                rr("example.com", RData::TXT(split)),
                rr("example.com", mx(10, "mx.example.com")),
            ],
        );
        let got = parse_response(
            &p.build_bytes_vec().unwrap(),
            10,
            "example.com",
            QueryType::Txt,
        )
        .unwrap();
        assert_eq!(
            got,
            Response::Records(vec![Record::Txt("v=spf1 mx -all".into())])
        );
    }

    #[test]
    fn parses_ptr_and_names_the_reverse_zone() {
        use simple_dns::rdata::PTR;
        let name = "1.2.0.192.in-addr.arpa";
        assert_eq!(reverse_name("192.0.2.1".parse().unwrap()), name);
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        let p = reply(
            11,
            name,
            QueryType::Ptr,
            vec![rr(
                "1.2.0.192.in-addr.arpa",
                RData::PTR(PTR(Name::new_unchecked("Mail.Example.com"))),
            )],
        );
        let got = parse_response(&p.build_bytes_vec().unwrap(), 11, name, QueryType::Ptr);
        assert_eq!(
            got.unwrap(),
            Response::Records(vec![Record::Ptr("mail.example.com".into())])
        );
    }

    #[test]
    fn maps_rcodes_and_rejects_foreign_replies() {
        let mut p = reply(9, "nx.example", QueryType::Mx, vec![]);
        *p.rcode_mut() = RCODE::NameError;
        let bytes = p.build_bytes_vec().unwrap();
        assert!(matches!(
            parse_response(&bytes, 9, "nx.example", QueryType::Mx),
            Err(DnsError::NxDomain)
        ));
        assert!(matches!(
            parse_response(&bytes, 10, "nx.example", QueryType::Mx),
            Err(DnsError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(&bytes, 9, "other.example", QueryType::Mx),
            Err(DnsError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(&bytes, 9, "nx.example", QueryType::A),
            Err(DnsError::Malformed(_))
        ));
        *p.rcode_mut() = RCODE::ServerFailure;
        let bytes = p.build_bytes_vec().unwrap();
        assert!(matches!(
            parse_response(&bytes, 9, "nx.example", QueryType::Mx),
            Err(DnsError::ServerFailure(2))
        ));
        let empty = reply(11, "a.example", QueryType::Mx, vec![])
            .build_bytes_vec()
            .unwrap();
        assert_eq!(
            parse_response(&empty, 11, "a.example", QueryType::Mx).unwrap(),
            Response::Records(vec![])
        );
        let query = build_query(11, "a.example", QueryType::Mx).unwrap();
        assert!(matches!(
            parse_response(&query, 11, "a.example", QueryType::Mx),
            Err(DnsError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_flag_wins_over_a_partial_body() {
        let mut p = reply(
            3,
            "big.example",
            QueryType::Mx,
            vec![rr("big.example", mx(1, "a.example"))],
        );
        p.set_flags(PacketFlag::TRUNCATION);
        let bytes = p.build_bytes_vec().unwrap();
        assert_eq!(
            parse_response(&bytes[..20], 3, "big.example", QueryType::Mx).unwrap(),
            Response::Truncated
        );
    }

    #[test]
    fn garbage_never_panics() {
        let p = reply(
            5,
            "g.example",
            QueryType::Mx,
            vec![rr("g.example", mx(1, "a.example"))],
        );
        let bytes = p.build_bytes_vec().unwrap();
        for i in 0..bytes.len() {
            let _ = parse_response(&bytes[..i], 5, "g.example", QueryType::Mx);
            let mut flipped = bytes.clone();
            flipped[i] ^= 0xff;
            let _ = parse_response(&flipped, 5, "g.example", QueryType::Mx);
        }
    }

    #[test]
    fn reads_resolv_conf() {
        let c = ResolverConfig::from_resolv_conf(
            b"nameserver 192.0.2.53\nnameserver 2001:db8::1\noptions timeout:2 attempts:3\n",
        )
        .unwrap();
        assert_eq!(
            c.servers,
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
        assert_eq!((c.timeout, c.attempts), (Duration::from_secs(2), 3));
        assert!(ResolverConfig::from_resolv_conf(b"search example\n").is_err());
    }
}
