//! "Is this next hop ourselves?": delivery must never connect back to one
//! of this server's own listeners, or a message would go round in a loop
//! (Postfix: "mail for DOMAIN loops back to myself").
//!
//! A listener bound to a wildcard address (`0.0.0.0`, `::`) answers on
//! every local address, so any loopback address or address of this
//! machine with the listener's port is us.

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// This server's listening addresses, as bound.
#[derive(Debug, Clone, Default)]
pub struct OwnAddresses {
    listening: Vec<SocketAddr>,
}

impl OwnAddresses {
    /// The bound smtp, submission and submissions addresses.
    pub fn new(listening: &[SocketAddr]) -> OwnAddresses {
        OwnAddresses {
            listening: listening.to_vec(),
        }
    }

    /// Whether connecting to `target` would reach one of our listeners.
    pub fn is_self(&self, target: SocketAddr) -> bool {
        self.is_self_with(target, is_local_address)
    }

    /// [`Self::is_self`], with the question "is this IP one of this
    /// machine's?" answered by `is_local`.
    fn is_self_with(&self, target: SocketAddr, is_local: impl Fn(IpAddr) -> bool) -> bool {
        let ip = target.ip().to_canonical();
        self.listening
            .iter()
            .filter(|listener| listener.port() == target.port())
            .any(|listener| {
                let bound = listener.ip().to_canonical();
                bound == ip
                    || (bound.is_unspecified()
                        && (ip.is_loopback() || ip.is_unspecified() || is_local(ip)))
            })
    }
}

/// Whether `ip` is assigned to this machine: only then can a socket be
/// bound to it.
fn is_local_address(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn own_listeners_are_recognised() {
        let own = OwnAddresses::new(&[addr("192.0.2.1:25"), addr("0.0.0.0:587"), addr("[::]:465")]);
        let this_machine = |ip: IpAddr| ip == "198.51.100.9".parse::<IpAddr>().unwrap();
        let cases = [
            ("192.0.2.1:25", true),
            ("[::ffff:192.0.2.1]:25", true),
            ("192.0.2.1:2525", false),
            ("192.0.2.2:25", false),
            // The wildcard listeners: loopback and this machine's addresses.
            ("127.0.0.1:587", true),
            ("127.0.0.5:587", true),
            ("198.51.100.9:587", true),
            ("203.0.113.7:587", false),
            ("[::1]:465", true),
            ("198.51.100.9:465", true),
            ("127.0.0.1:25", false),
        ];
        for (target, expected) in cases {
            assert_eq!(
                own.is_self_with(addr(target), this_machine),
                expected,
                "{target}"
            );
        }
    }

    #[test]
    fn loopback_is_a_local_address() {
        assert!(is_local_address("127.0.0.1".parse().unwrap()));
        assert!(!is_local_address("192.0.2.200".parse().unwrap()));
    }
}
