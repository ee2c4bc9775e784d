//! A tiny authoritative DNS responder on 127.0.0.1 for tests: UDP, and TCP
//! on the same port for answers marked as truncated. It serves a fixed
//! table of MX/A/AAAA/TXT/PTR records; a name absent from the table is
//! NXDOMAIN.
//! Include it with `#[path = "support/dns.rs"] mod dns_server;`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use simple_dns::rdata::{RData, A, AAAA, MX, PTR, TXT};
use simple_dns::CharacterString;
use simple_dns::{Name, Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

/// One record of the table.
#[derive(Debug, Clone)]
pub enum Rec {
    /// MX preference and exchange (`"."` for a null MX).
    Mx(u16, String),
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A TXT record (split into 255-octet strings as needed).
    Txt(String),
    /// A TXT record of exactly these strings (each at most 255 octets).
    TxtStrings(Vec<String>),
    /// A PTR record: the host name an address's reverse name points to
    /// (add it with [`Zone::ptr`]).
    Ptr(String),
}

/// The zone the responder serves.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: HashMap<String, Vec<Rec>>,
    truncated: HashSet<String>,
}

impl Zone {
    /// An empty zone (every name NXDOMAIN).
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Adds a record for `name`.
    pub fn add(mut self, name: &str, rec: Rec) -> Zone {
        self.records
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(rec);
        self
    }

    /// Adds the PTR record of `ip` (at its `in-addr.arpa` or `ip6.arpa`
    /// name) pointing to `host`.
    pub fn ptr(self, ip: IpAddr, host: &str) -> Zone {
        self.add(&reverse_name(ip), Rec::Ptr(host.to_string()))
    }

    /// Makes `name` exist without records (NODATA for every type).
    pub fn exists(mut self, name: &str) -> Zone {
        self.records.entry(name.to_ascii_lowercase()).or_default();
        self
    }

    /// UDP answers for `name` come back truncated (TC bit, no records).
    pub fn truncate(mut self, name: &str) -> Zone {
        self.truncated.insert(name.to_ascii_lowercase());
        self
    }
}

/// A running responder; stops when dropped.
pub struct DnsServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// Queries answered over UDP.
    pub udp_queries: Arc<AtomicUsize>,
    /// Queries answered over TCP.
    pub tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts the responder on a free loopback port.
    pub fn start(zone: Zone) -> DnsServer {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().unwrap();
        let zone = Arc::new(zone);
        let stop = Arc::new(AtomicBool::new(false));
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp_thread = {
            let (zone, stop, count) = (zone.clone(), stop.clone(), udp_queries.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = answer(&zone, &buf[..n], true) {
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = udp.send_to(&reply, peer);
                    }
                }
            })
        };
        let tcp_thread = {
            let (zone, stop, count) = (zone.clone(), stop.clone(), tcp_queries.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut stream, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if stream.read_exact(&mut query).is_err() {
                        continue;
                    }
                    if let Some(reply) = answer(&zone, &query, false) {
                        count.fetch_add(1, Ordering::Relaxed);
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        let _ = stream.write_all(&framed);
                    }
                }
            })
        };
        DnsServer {
            addr,
            udp_queries,
            tcp_queries,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same loopback port.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            return (udp, tcp);
        }
    }
    panic!("no free loopback port for UDP and TCP");
}

/// `ip`'s reverse name: `4.3.2.1.in-addr.arpa`, or 32 nibbles under
/// `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut octets: Vec<String> = v4.octets().iter().map(u8::to_string).collect();
            octets.reverse();
            format!("{}.in-addr.arpa", octets.join("."))
        }
        IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            let mut nibbles: Vec<String> = hex.chars().map(String::from).collect();
            nibbles.reverse();
            format!("{}.ip6.arpa", nibbles.join("."))
        }
    }
}

/// The reply to one query, or `None` for garbage.
fn answer(zone: &Zone, query: &[u8], over_udp: bool) -> Option<Vec<u8>> {
    let q = Packet::parse(query).ok()?;
    let question = q.questions.first()?.clone();
    let name = question
        .qname
        .to_string()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut reply = Packet::new_reply(q.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    reply.questions.push(question.clone());
    match zone.records.get(&name) {
        None => *reply.rcode_mut() = RCODE::NameError,
        Some(_) if over_udp && zone.truncated.contains(&name) => {
            reply.set_flags(PacketFlag::TRUNCATION);
        }
        Some(records) => {
            let owner = Name::new_unchecked(&name).into_owned();
            for rec in records {
                let rdata = match (rec, question.qtype) {
                    (Rec::Mx(pref, host), QTYPE::TYPE(TYPE::MX)) => RData::MX(MX {
                        preference: *pref,
                        exchange: if host == "." {
                            Name::new_unchecked("")
                        } else {
                            Name::new_unchecked(host).into_owned()
                        },
                    }),
                    (Rec::A(ip), QTYPE::TYPE(TYPE::A)) => RData::A(A {
                        address: u32::from(*ip),
                    }),
                    (Rec::Aaaa(ip), QTYPE::TYPE(TYPE::AAAA)) => RData::AAAA(AAAA {
                        address: u128::from(*ip),
                    }),
                    (Rec::Txt(text), QTYPE::TYPE(TYPE::TXT)) => {
                        RData::TXT(TXT::try_from(text.as_str()).ok()?)
                    }
                    (Rec::TxtStrings(strings), QTYPE::TYPE(TYPE::TXT)) => {
                        let mut txt = TXT::new();
                        for string in strings {
                            txt.add_char_string(CharacterString::new(string.as_bytes()).ok()?);
                        }
                        RData::TXT(txt)
                    }
                    (Rec::Ptr(host), QTYPE::TYPE(TYPE::PTR)) => {
                        RData::PTR(PTR(Name::new_unchecked(host)))
                    }
                    _ => continue,
                };
                reply.answers.push(ResourceRecord::new(
                    owner.clone(),
                    CLASS::IN,
                    60,
                    rdata.into_owned(),
                ));
            }
        }
    }
    reply.build_bytes_vec().ok()
}
