//! The addresses this host sends mail from, when `--source-address` does
//! not name them: for each address family, the local address the routing
//! table picks towards a public address. A UDP socket is connected, which
//! only consults the routing table: nothing is sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// Public addresses to route towards: a.root-servers.net over IPv4 and
/// IPv6 (stable, and reached through the default route like any MX).
const ROUTE_TARGETS: [SocketAddr; 2] = [
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 41, 0, 4)), 53),
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0x503, 0xba3e, 0, 0, 0, 0x2, 0x30)),
        53,
    ),
];

/// This host's outbound addresses, IPv4 first; a family without a route
/// is left out.
pub fn outbound_addresses() -> Vec<IpAddr> {
    ROUTE_TARGETS
        .iter()
        .filter_map(|&target| local_address_towards(target))
        .collect()
}

fn local_address_towards(target: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(target).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}
