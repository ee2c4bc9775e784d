//! Resource limits of the runtime: buffer sizes, the per-dispatch work cap,
//! and the connection counter (in total and per client, an IPv4 address or
//! an IPv6 /64) shared by the event loops. The protocol limits (line
//! lengths, message size, recipients) live in `proto` and `config`.
//!
//! May import: `proto` (the line limits the buffers must hold) and `net`
//! (the client key); no other runtime file.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::net::client_key;
use crate::proto::line::MAX_COMMAND_LINE;

/// Bytes read from a socket (or taken from rustls) at a time.
pub const READ_CHUNK: usize = 16 * 1024;

/// Unconsumed input kept per connection: one longest command line (RFC
/// 5321 §4.5.3.1.4) plus one read chunk, which also holds an AUTH line
/// (RFC 4954 §4). The session consumes whole lines and discards over-long
/// ones, and consumes DATA as it arrives, so this is always enough.
pub const MAX_INPUT: usize = MAX_COMMAND_LINE + READ_CHUNK;

/// Reply bytes waiting for a client that does not read. Past this the
/// session is not fed any more, so a pipelining client that never reads
/// cannot make us buffer without end.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// An empty buffer larger than this is freed when its connection goes
/// idle (a reply or a command line fits in less).
pub const IDLE_BUFFER: usize = 1024;

/// Read/feed/write rounds one dispatch may run before the connection waits
/// for the loop's next turn, so a fast sender cannot hold a loop forever.
pub const MAX_ROUNDS_PER_DISPATCH: usize = 64;

/// How long a closing connection may take to read its last reply.
pub const CLOSING_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// After the shutdown grace period and the 421s, connections that still
/// have not gone are dropped after this much longer.
pub const HARD_STOP_AFTER_GRACE: Duration = Duration::from_secs(5);

/// Why a new connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// `--max-connections` reached.
    TooManyTotal,
    /// `--max-connections-per-ip` reached for this address (its /64 for
    /// IPv6).
    TooManyFromIp,
}

/// Open connections in total and per client (keyed by
/// [`client_key`]: an IPv4 address, an IPv6 /64). The accepting loop
/// admits, the loop that closes a connection releases it (behind one lock).
#[derive(Debug)]
pub struct ConnectionCounter {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    /// Open connections by [`client_key`].
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionCounter {
    /// A counter with these limits.
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnectionCounter {
        ConnectionCounter {
            max_total,
            max_per_ip,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip`, or says why not. `exempt` clients
    /// (relay networks) skip the per-IP limit but not the total.
    pub fn admit(&mut self, ip: IpAddr, exempt: bool) -> Result<(), ConnectionRefusal> {
        if self.total >= self.max_total {
            return Err(ConnectionRefusal::TooManyTotal);
        }
        let key = client_key(ip);
        let count = self.per_ip.get(&key).copied().unwrap_or(0);
        if !exempt && count >= self.max_per_ip {
            return Err(ConnectionRefusal::TooManyFromIp);
        }
        self.total += 1;
        self.per_ip.insert(key, count + 1);
        Ok(())
    }

    /// A connection from `ip` has ended.
    pub fn release(&mut self, ip: IpAddr) {
        let key = client_key(ip);
        self.total = self.total.saturating_sub(1);
        if let Some(count) = self.per_ip.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&key);
            }
        }
    }

    /// Counts a connection admitted under `from` (a load balancer) under
    /// `to` instead (the client its PROXY header names), within the
    /// per-address limit unless `exempt`. On refusal it stays under `from`.
    pub fn move_to(
        &mut self,
        from: IpAddr,
        to: IpAddr,
        exempt: bool,
    ) -> Result<(), ConnectionRefusal> {
        let count = self.per_ip.get(&client_key(to)).copied().unwrap_or(0);
        if !exempt && count >= self.max_per_ip {
            return Err(ConnectionRefusal::TooManyFromIp);
        }
        self.release(from);
        self.total += 1;
        *self.per_ip.entry(client_key(to)).or_insert(0) += 1;
        Ok(())
    }

    /// Open connections.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxied_connection_moves_to_its_client_within_the_limit() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut counter = ConnectionCounter::new(10, 1);
        counter.admit(proxy, true).unwrap();
        counter.admit(proxy, true).unwrap();
        assert_eq!(counter.move_to(proxy, client, false), Ok(()));
        assert_eq!(
            counter.move_to(proxy, client, false),
            Err(ConnectionRefusal::TooManyFromIp)
        );
        assert_eq!(counter.total(), 2);
        counter.release(client);
        counter.release(proxy);
        assert_eq!(counter.total(), 0);
        assert!(counter.per_ip.is_empty());
    }

    #[test]
    fn limits_total_and_per_ip() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let mut counter = ConnectionCounter::new(4, 2);
        assert_eq!(counter.admit(a, false), Ok(()));
        assert_eq!(counter.admit(mapped, false), Ok(()));
        assert_eq!(
            counter.admit(a, false),
            Err(ConnectionRefusal::TooManyFromIp)
        );
        assert_eq!(counter.admit(a, true), Ok(()), "relay networks are exempt");

        assert_eq!(counter.admit(b, false), Ok(()));
        assert_eq!(counter.admit(b, true), Err(ConnectionRefusal::TooManyTotal));
        counter.release(a);
        counter.release(mapped);
        counter.release(a);
        assert_eq!(counter.total(), 1);
        assert_eq!(counter.admit(a, false), Ok(()));
        assert_eq!(counter.admit(a, false), Ok(()));
        assert_eq!(
            counter.admit(a, false),
            Err(ConnectionRefusal::TooManyFromIp)
        );
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
        let mut counter = ConnectionCounter::new(10, 2);
        assert_eq!(counter.admit(ip("2001:db8:1:2::1"), false), Ok(()));
        assert_eq!(counter.admit(ip("2001:db8:1:2::2"), false), Ok(()));
        assert_eq!(
            counter.admit(ip("2001:db8:1:2:ffff::9"), false),
            Err(ConnectionRefusal::TooManyFromIp),
            "another address in the same /64"
        );
        assert_eq!(
            counter.admit(ip("2001:db8:1:3::1"), false),
            Ok(()),
            "the next /64 is another client"
        );
        counter.release(ip("2001:db8:1:2::1"));
        assert_eq!(counter.admit(ip("2001:db8:1:2::3"), false), Ok(()));
        // IPv4 stays per address.
        assert_eq!(counter.admit(ip("192.0.2.1"), false), Ok(()));
        assert_eq!(counter.admit(ip("192.0.2.1"), false), Ok(()));
        assert_eq!(counter.admit(ip("192.0.2.2"), false), Ok(()));
        assert_eq!(counter.total(), 6);
    }
}
