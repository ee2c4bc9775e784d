//! The connections to next hops: how many may be open at once per
//! destination, and the cache of idle SMTP sessions that carry the next
//! message to the same next hop without a new connection, greeting, EHLO,
//! STARTTLS or AUTH (Postfix's connection cache is the model).
//!
//! Per destination (a domain's MX hosts, a `--transport` host, the
//! smarthost) at most `--max-connections-per-destination` connections are
//! open at a time, the idle cached ones included (Postfix's
//! `default_destination_concurrency_limit` is 20 too). Politeness: after an
//! attempt that delivered nothing and failed for a transient reason (no
//! connection, a 4xx, a broken session), the destination gets one
//! connection at a time until an attempt delivers again, so a struggling or
//! throttling peer is not hit by twenty parallel retries.
//!
//! A session is kept after its transaction delivered to every recipient
//! (the peer's 2xx to the final dot), at most [`IDLE_LIMIT`] idle and
//! reused for at most [`REUSE_TIME_LIMIT`] and [`REUSE_COUNT_LIMIT`]
//! transactions; what is kept is keyed by the [`NextHop`] (address, local
//! address, name, TLS mode, credentials) and the destination it counts
//! against. Idle sessions end with QUIT when their time is up, when the
//! cache is full (the oldest), and on shutdown.
//!
//! [`PoolState`] is the bookkeeping, pure and generic over what is kept;
//! [`Pool`] adds the lock, the waiting and the QUIT. May import
//! `delivery::outbound` (the session it keeps) and `proto`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::outbound::Session;
use crate::proto::client::TlsPolicy;

/// An idle session is closed after this (Postfix's
/// `smtp_connection_cache_time_limit`): long enough for the next message
/// of a burst, short enough not to hold a peer's connection slot.
pub const IDLE_LIMIT: Duration = Duration::from_secs(2);
/// A connection is not kept after it has been open this long (Postfix's
/// `smtp_connection_reuse_time_limit`).
pub const REUSE_TIME_LIMIT: Duration = Duration::from_secs(300);
/// A connection is not kept after this many transactions (some receivers
/// close a connection after about a hundred messages anyway).
pub const REUSE_COUNT_LIMIT: u32 = 100;

/// What a kept session may be used for again: the same address from the
/// same local address, under the same name (SNI, certificate), with the
/// same TLS mode and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The local address connected from (`--outbound-address`).
    pub source: Option<IpAddr>,
    /// The host name (TLS server name).
    pub host: String,
    /// TLS from the first byte.
    pub implicit_tls: bool,
    /// The STARTTLS policy.
    pub tls: TlsPolicy,
    /// The smarthost route (its own TLS trust settings).
    pub smarthost: bool,
    /// The AUTH user name, if the session authenticated.
    pub user: Option<String>,
}

/// What a delivery thread may do about a connection to a next hop.
#[derive(Debug, PartialEq, Eq)]
pub enum Grant<T> {
    /// Use this idle session (its place in the limit comes with it).
    Reuse(T),
    /// Open a new connection; its place in the limit is taken.
    Fresh,
    /// Close this idle session of the same destination (to another
    /// address) and open a new connection in its place.
    Replace(T),
    /// The destination is at its limit: wait for a change.
    Wait,
}

#[derive(Debug, Default)]
struct Destination {
    /// Connections open, in use or idle.
    open: usize,
    /// One connection at a time until an attempt delivers again.
    throttled: bool,
}

#[derive(Debug)]
struct Idle<T> {
    destination: String,
    hop: NextHop,
    since: Instant,
    session: T,
}

/// The pure bookkeeping of a [`Pool`]; see the module docs.
#[derive(Debug)]
pub struct PoolState<T> {
    limit: usize,
    capacity: usize,
    destinations: HashMap<String, Destination>,
    /// Oldest first.
    idle: Vec<Idle<T>>,
    closed: bool,
}

impl<T> PoolState<T> {
    /// At most `limit` connections per destination, at most `capacity`
    /// idle sessions in all.
    pub fn new(limit: usize, capacity: usize) -> PoolState<T> {
        PoolState {
            limit: limit.max(1),
            capacity,
            destinations: HashMap::new(),
            idle: Vec::new(),
            closed: false,
        }
    }

    /// How many connections `destination` may have open now.
    pub fn limit_of(&self, destination: &str) -> usize {
        match self.destinations.get(destination) {
            Some(d) if d.throttled => 1,
            _ => self.limit,
        }
    }

    /// Connections open to `destination`, in use or idle.
    pub fn open(&self, destination: &str) -> usize {
        self.destinations.get(destination).map_or(0, |d| d.open)
    }

    /// Idle sessions in all.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// What a thread that is to deliver to `hop` for `destination` may do
    /// at `now`. Expired sessions must have been taken out first
    /// ([`PoolState::expired`]). Once closed, every request gets `Fresh`
    /// (the connect then fails for the stopping server).
    pub fn grant(&mut self, destination: &str, hop: &NextHop) -> Grant<T> {
        let matching = self
            .idle
            .iter()
            .position(|i| i.destination == destination && i.hop == *hop);
        if let Some(at) = matching {
            return Grant::Reuse(self.idle.remove(at).session);
        }
        let limit = self.limit_of(destination);
        let entry = self
            .destinations
            .entry(destination.to_string())
            .or_default();
        if entry.open < limit || self.closed {
            entry.open += 1;
            return Grant::Fresh;
        }
        match self.idle.iter().position(|i| i.destination == destination) {
            Some(at) => Grant::Replace(self.idle.remove(at).session),
            None => Grant::Wait,
        }
    }

    /// A connection to `destination` was closed.
    pub fn release(&mut self, destination: &str) {
        if let Some(entry) = self.destinations.get_mut(destination) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && !entry.throttled {
                self.destinations.remove(destination);
            }
        }
    }

    /// Keeps `session` (a connection to `hop` counted against
    /// `destination`) idle from `now`. Returns a session to close: this one
    /// when the pool is closed or keeps nothing, or the oldest idle one
    /// when the cache is full; its place is released.
    pub fn keep(&mut self, destination: &str, hop: NextHop, session: T, now: Instant) -> Option<T> {
        if self.closed || self.capacity == 0 {
            self.release(destination);
            return Some(session);
        }
        self.idle.push(Idle {
            destination: destination.to_string(),
            hop,
            since: now,
            session,
        });
        if self.idle.len() > self.capacity {
            let oldest = self.idle.remove(0);
            self.release(&oldest.destination);
            return Some(oldest.session);
        }
        None
    }

    /// Takes out the sessions idle for [`IDLE_LIMIT`] at `now`, releasing
    /// their places.
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut self.idle)
            .into_iter()
            .partition(|i| now.saturating_duration_since(i.since) >= IDLE_LIMIT);
        self.idle = young;
        old.into_iter()
            .map(|i| {
                self.release(&i.destination);
                i.session
            })
            .collect()
    }

    /// When the next idle session expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.idle.iter().map(|i| i.since + IDLE_LIMIT).min()
    }

    /// What an attempt at `destination` showed: `healthy` restores its
    /// limit, a transient failure cuts it to one (see the module docs).
    pub fn feedback(&mut self, destination: &str, healthy: bool) {
        if healthy {
            if let Some(entry) = self.destinations.get_mut(destination) {
                entry.throttled = false;
            }
        } else {
            self.destinations
                .entry(destination.to_string())
                .or_default()
                .throttled = true;
        }
    }

    /// Keeps nothing from now on; returns every idle session to close.
    pub fn close(&mut self) -> Vec<T> {
        self.closed = true;
        std::mem::take(&mut self.idle)
            .into_iter()
            .map(|i| {
                self.release(&i.destination);
                i.session
            })
            .collect()
    }
}

/// The connection limits and idle sessions shared by the delivery
/// threads; see the module docs.
#[derive(Debug)]
pub struct Pool {
    state: Mutex<PoolState<Session>>,
    changed: Condvar,
}

/// One connection's place in its destination's limit, with the idle
/// session it may reuse. Dropped without [`Lease::finish`] keeping a
/// session, the place is released.
#[derive(Debug)]
pub struct Lease<'a> {
    pool: &'a Pool,
    destination: String,
    hop: NextHop,
    session: Option<Session>,
}

impl Pool {
    /// At most `limit` connections per destination, at most `capacity`
    /// idle sessions in all.
    pub fn new(limit: usize, capacity: usize) -> Pool {
        Pool {
            state: Mutex::new(PoolState::new(limit, capacity)),
            changed: Condvar::new(),
        }
    }

    /// Waits until a connection to `hop` for `destination` may be used:
    /// an idle one, or a new one within the limit.
    pub fn lease(&self, destination: &str, hop: &NextHop) -> Lease<'_> {
        let mut state = self.state.lock();
        loop {
            let expired = state.expired(Instant::now());
            let grant = state.grant(destination, hop);
            if !expired.is_empty() || matches!(grant, Grant::Replace(_)) {
                self.changed.notify_all();
            }
            let (session, stale) = match grant {
                Grant::Reuse(session) => (Some(session), None),
                Grant::Fresh => (None, None),
                Grant::Replace(old) => (None, Some(old)),
                Grant::Wait => {
                    quit_all(&mut state, expired);
                    self.changed.wait_for(&mut state, IDLE_LIMIT);
                    continue;
                }
            };
            drop(state);
            expired.into_iter().chain(stale).for_each(Session::quit);
            return Lease {
                pool: self,
                destination: destination.to_string(),
                hop: hop.clone(),
                session,
            };
        }
    }

    /// What an attempt at `destination` showed (see the module docs).
    pub fn feedback(&self, destination: &str, healthy: bool) {
        self.state.lock().feedback(destination, healthy);
        self.changed.notify_all();
    }

    /// Closes the sessions idle for [`IDLE_LIMIT`] with QUIT.
    pub fn close_expired(&self) {
        let expired = self.state.lock().expired(Instant::now());
        if !expired.is_empty() {
            self.changed.notify_all();
            expired.into_iter().for_each(Session::quit);
        }
    }

    /// How long until an idle session expires, if one is kept.
    pub fn until_next_expiry(&self) -> Option<Duration> {
        let next = self.state.lock().next_expiry()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    /// Closes every idle session with QUIT and keeps none from now on
    /// (shutdown); threads waiting for a place go on at once.
    pub fn close_all(&self) {
        let idle = self.state.lock().close();
        self.changed.notify_all();
        idle.into_iter().for_each(Session::quit);
    }

    fn release(&self, destination: &str) {
        self.state.lock().release(destination);
        self.changed.notify_all();
    }
}

/// Closes `sessions` without holding the lock for their writes.
fn quit_all(state: &mut parking_lot::MutexGuard<'_, PoolState<Session>>, sessions: Vec<Session>) {
    if !sessions.is_empty() {
        parking_lot::MutexGuard::unlocked(state, || sessions.into_iter().for_each(Session::quit));
    }
}

impl Lease<'_> {
    /// The idle session to try first, if one was kept for this next hop.
    pub fn take_session(&mut self) -> Option<Session> {
        self.session.take()
    }

    /// The connection is done with: `kept` (the session after a delivered
    /// transaction) stays idle for the next message, otherwise the place
    /// is released.
    pub fn finish(mut self, kept: Option<Session>) {
        let Some(session) = kept else {
            return;
        };
        if session.uses() >= REUSE_COUNT_LIMIT || session.age() >= REUSE_TIME_LIMIT {
            session.quit();
            return;
        }
        let destination = std::mem::take(&mut self.destination);
        let hop = self.hop.clone();
        let closed = self
            .pool
            .state
            .lock()
            .keep(&destination, hop, session, Instant::now());
        self.pool.changed.notify_all();
        if let Some(session) = closed {
            session.quit();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // An unused idle session is closed; `finish` kept its session and
        // emptied the destination.
        if let Some(session) = self.session.take() {
            session.quit();
        }
        if !self.destination.is_empty() {
            self.pool.release(&self.destination);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(port: u16) -> NextHop {
        NextHop {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            source: None,
            host: "mx.example".into(),
            implicit_tls: false,
            tls: TlsPolicy::Opportunistic,
            smarthost: false,
            user: None,
        }
    }

    #[test]
    fn new_connections_up_to_the_limit_then_wait() {
        let mut pool: PoolState<u32> = PoolState::new(2, 10);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Wait);
        // Another destination has its own limit.
        assert_eq!(pool.grant("mx:b", &hop(25)), Grant::Fresh);
        pool.release("mx:a");
        assert_eq!(pool.open("mx:a"), 1);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
    }

    #[test]
    fn a_kept_session_keeps_its_place_and_is_reused_for_its_next_hop_only() {
        let now = Instant::now();
        let mut pool: PoolState<u32> = PoolState::new(2, 10);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.keep("mx:a", hop(25), 7, now), None);
        assert_eq!(pool.open("mx:a"), 1, "an idle session counts");
        // Another destination at the same address does not take it.
        assert_eq!(pool.grant("mx:b", &hop(25)), Grant::Fresh);
        // Another address of the same destination: a new connection.
        assert_eq!(pool.grant("mx:a", &hop(26)), Grant::Fresh);
        assert_eq!(pool.open("mx:a"), 2);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Reuse(7));
        assert_eq!(pool.open("mx:a"), 2);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn at_the_limit_an_idle_session_to_another_address_gives_up_its_place() {
        let now = Instant::now();
        let mut pool: PoolState<u32> = PoolState::new(1, 10);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.keep("mx:a", hop(25), 7, now), None);
        assert_eq!(pool.grant("mx:a", &hop(26)), Grant::Replace(7));
        assert_eq!(pool.open("mx:a"), 1);
    }

    #[test]
    fn the_key_includes_tls_mode_and_credentials() {
        let now = Instant::now();
        let mut pool: PoolState<u32> = PoolState::new(5, 10);
        assert_eq!(pool.grant("relay", &hop(25)), Grant::Fresh);
        assert_eq!(pool.keep("relay", hop(25), 1, now), None);
        let other_user = NextHop {
            user: Some("bob".into()),
            ..hop(25)
        };
        let other_tls = NextHop {
            tls: TlsPolicy::Required,
            ..hop(25)
        };
        let other_name = NextHop {
            host: "mx2.example".into(),
            ..hop(25)
        };
        for other in [other_user, other_tls, other_name] {
            assert_eq!(pool.grant("relay", &other), Grant::Fresh);
        }
        assert_eq!(pool.grant("relay", &hop(25)), Grant::Reuse(1));
    }

    #[test]
    fn idle_sessions_expire_and_release_their_places() {
        let now = Instant::now();
        let mut pool: PoolState<u32> = PoolState::new(2, 10);
        pool.grant("mx:a", &hop(25));
        pool.grant("mx:a", &hop(25));
        pool.keep("mx:a", hop(25), 1, now);
        pool.keep("mx:a", hop(25), 2, now + Duration::from_secs(1));
        assert_eq!(pool.next_expiry(), Some(now + IDLE_LIMIT));
        assert!(pool
            .expired(now + IDLE_LIMIT - Duration::from_millis(1))
            .is_empty());
        assert_eq!(pool.expired(now + IDLE_LIMIT), vec![1]);
        assert_eq!(pool.open("mx:a"), 1);
        assert_eq!(pool.expired(now + Duration::from_secs(3)), vec![2]);
        assert_eq!(pool.open("mx:a"), 0);
        assert_eq!(pool.next_expiry(), None);
    }

    #[test]
    fn a_full_cache_closes_its_oldest_session() {
        let now = Instant::now();
        let mut pool: PoolState<u32> = PoolState::new(5, 2);
        for port in [25, 26, 27] {
            pool.grant("mx:a", &hop(port));
        }
        assert_eq!(pool.keep("mx:a", hop(25), 1, now), None);
        assert_eq!(pool.keep("mx:a", hop(26), 2, now), None);
        assert_eq!(pool.keep("mx:a", hop(27), 3, now), Some(1));
        assert_eq!(pool.idle(), 2);
        assert_eq!(pool.open("mx:a"), 2);
        // A pool that keeps nothing closes at once.
        let mut none: PoolState<u32> = PoolState::new(5, 0);
        none.grant("mx:a", &hop(25));
        assert_eq!(none.keep("mx:a", hop(25), 9, now), Some(9));
        assert_eq!(none.open("mx:a"), 0);
    }

    #[test]
    fn a_transient_failure_means_one_connection_until_a_delivery() {
        let mut pool: PoolState<u32> = PoolState::new(3, 10);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        pool.feedback("mx:a", false);
        assert_eq!(pool.limit_of("mx:a"), 1);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Wait);
        pool.release("mx:a");
        assert_eq!(pool.limit_of("mx:a"), 1, "released, still throttled");
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        pool.feedback("mx:a", true);
        assert_eq!(pool.limit_of("mx:a"), 3);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.limit_of("mx:b"), 3, "others unaffected");
    }

    #[test]
    fn closing_returns_the_idle_sessions_and_keeps_nothing_more() {
        let now = Instant::now();
        let mut pool: PoolState<u32> = PoolState::new(1, 10);
        pool.grant("mx:a", &hop(25));
        pool.keep("mx:a", hop(25), 1, now);
        assert_eq!(pool.close(), vec![1]);
        // Stopping: nobody waits, nothing is kept.
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.grant("mx:a", &hop(25)), Grant::Fresh);
        assert_eq!(pool.keep("mx:a", hop(25), 2, now), Some(2));
    }
}
