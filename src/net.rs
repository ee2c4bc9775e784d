//! Small helpers for the blocking std sockets of outbound delivery, the DNS
//! stub resolver, `outpost check` and the load generator (the server's own
//! sockets are non-blocking and never time out this way), and the key a
//! client address is counted under by the per-client limits.
//!
//! May import: std only.

use std::io;
use std::net::{IpAddr, Ipv6Addr};

/// The prefix an IPv6 client is counted by: a /64 is one site's subnet
/// (RFC 4291 §2.5.1), and one host can use every address in it.
pub const CLIENT_IPV6_PREFIX: u32 = 64;

/// The address a client is counted under by the per-client limits (the
/// per-IP connection cap, the login throttle): an IPv4 address as it is
/// (also when a dual-stack socket reports it as `::ffff:a.b.c.d`), an IPv6
/// address as its /64 network, so a client cannot escape a limit by
/// changing addresses within its own subnet.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - CLIENT_IPV6_PREFIX);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

/// True when a read or write on a blocking socket gave up at its timeout
/// (`set_read_timeout`/`set_write_timeout`): Linux reports `WouldBlock`,
/// other systems `TimedOut`.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys() {
        for (ip, key) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.2", "192.0.2.2"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
            ("2001:db8:1:2::1", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
            ("fe80::1", "fe80::"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let key: IpAddr = key.parse().unwrap();
            assert_eq!(client_key(ip), key, "{ip}");
        }
    }
}
