//! The stub resolver against a DNS responder on loopback (never the
//! machine's own resolver): MX, implicit MX, null MX, NXDOMAIN, and a
//! truncated UDP answer retried over TCP, and a question abandoned when the
//! server stops.

#[path = "support/dns.rs"]
mod dns_server;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dns_server::{DnsServer, Rec, Zone};
use outpost::delivery::dns::{DnsError, Mx, Resolver, ResolverConfig};
use outpost::delivery::route::{self, RouteError};

fn resolver(addr: SocketAddr) -> Resolver {
    Resolver::new(ResolverConfig {
        servers: vec![addr],
        timeout: Duration::from_secs(2),
        attempts: 1,
    })
}

fn zone() -> Zone {
    let many: Vec<String> = (0..40)
        .map(|i| format!("mx{i:02}.a-rather-long-name-for-padding.big.example"))
        .collect();
    let mut z = Zone::new()
        .add("example.com", Rec::Mx(20, "mx2.example.com".into()))
        .add("example.com", Rec::Mx(10, "mx1.example.com".into()))
        .add("mx1.example.com", Rec::A(Ipv4Addr::new(127, 0, 0, 2)))
        .add("mx1.example.com", Rec::Aaaa(Ipv6Addr::LOCALHOST))
        .add("nomx.example", Rec::A(Ipv4Addr::new(127, 0, 0, 3)))
        .add("null.example", Rec::Mx(0, ".".into()))
        .exists("empty.example")
        .truncate("big.example");
    for (i, host) in many.iter().enumerate() {
        z = z.add("big.example", Rec::Mx(i as u16, host.clone()));
    }
    z
}

#[test]
fn mx_records_in_preference_order() {
    let server = DnsServer::start(zone());
    let r = resolver(server.addr);
    let mut mx = r.mx("Example.COM").unwrap();
    mx.sort_by_key(|m| m.preference);
    assert_eq!(
        mx,
        vec![
            Mx {
                preference: 10,
                exchange: "mx1.example.com".into()
            },
            Mx {
                preference: 20,
                exchange: "mx2.example.com".into()
            },
        ]
    );
    let targets = route::select("example.com", &mx, 1).unwrap();
    assert_eq!(targets[0].host, "mx1.example.com");
    assert_eq!(
        r.ip_addrs("mx1.example.com").unwrap(),
        vec![
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
}

#[test]
fn implicit_mx_when_there_is_no_mx() {
    let server = DnsServer::start(zone());
    let r = resolver(server.addr);
    let mx = r.mx("nomx.example").unwrap();
    assert!(mx.is_empty());
    let targets = route::select("nomx.example", &mx, 0).unwrap();
    assert!(targets[0].implicit);
    assert_eq!(
        r.ip_addrs(&targets[0].host).unwrap(),
        vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))]
    );
    assert!(r.ip_addrs("empty.example").unwrap().is_empty());
}

#[test]
fn null_mx_and_nxdomain() {
    let server = DnsServer::start(zone());
    let r = resolver(server.addr);
    let mx = r.mx("null.example").unwrap();
    assert_eq!(
        mx,
        vec![Mx {
            preference: 0,
            exchange: String::new()
        }]
    );
    assert_eq!(
        route::select("null.example", &mx, 0),
        Err(RouteError::NullMx)
    );
    let err = r.mx("does-not-exist.example").unwrap_err();
    assert!(matches!(err, DnsError::NxDomain) && err.is_permanent());
    assert!(matches!(
        r.ip_addrs("does-not-exist.example"),
        Err(DnsError::NxDomain)
    ));
}

#[test]
fn truncated_answer_is_retried_over_tcp() {
    let server = DnsServer::start(zone());
    let r = resolver(server.addr);
    let mx = r.mx("big.example").unwrap();
    assert_eq!(mx.len(), 40);
    assert_eq!(server.tcp_queries.load(Ordering::Relaxed), 1);
    assert!(server.udp_queries.load(Ordering::Relaxed) >= 1);
}

#[test]
fn silent_server_times_out_as_a_temporary_error() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = Resolver::new(ResolverConfig {
        servers: vec![silent.local_addr().unwrap()],
        timeout: Duration::from_millis(200),
        attempts: 2,
    });
    let started = Instant::now();
    let err = r.mx("example.com").unwrap_err();
    assert!(matches!(err, DnsError::Timeout), "{err:?}");
    assert!(!err.is_permanent());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_stopping_server_abandons_a_question_nobody_answers() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let resolver = Resolver::new(ResolverConfig {
        servers: vec![silent.local_addr().unwrap()],
        timeout: Duration::from_secs(5),
        attempts: 2,
    })
    .stopped_by(stop.clone());
    let asking = std::thread::spawn(move || resolver.mx("example.com"));
    std::thread::sleep(Duration::from_millis(300));
    let stopped = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let result = asking.join().unwrap();
    assert!(matches!(result, Err(DnsError::Stopped)), "{result:?}");
    assert!(stopped.elapsed() < Duration::from_secs(2));
}
