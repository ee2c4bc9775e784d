//! Failed logins across connections, counted in a sliding window: a
//! growing delay before each `535`, and `421` once a limit is reached, so a
//! password-guessing client gets a handful of tries per window.
//!
//! Two counts are kept: per client and user, and per client alone with a
//! higher limit (a client is an IPv4 address or an IPv6 /64, as
//! `net::client_key` says; the caller makes the keys). One user's typos then lock out only that user at
//! that address: many people can share one address (an office NAT, or new
//! Outlook, which sends from Microsoft's data centres), while a client
//! trying many user names still hits the per-IP limit.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Thresholds of the login throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures of one user from one IP in `window` after which that user
    /// is throttled at that IP.
    pub max_failures: u32,
    /// Failures from one IP, any users, after which the IP is throttled.
    pub max_failures_per_ip: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// Delay before a failure is reported, times the failures so far.
    pub delay_step: Duration,
}

impl Default for AuthLimits {
    /// 5 failures of a user (20 of an IP) in 10 minutes, 0.5 s more delay
    /// per failure.
    fn default() -> Self {
        AuthLimits {
            max_failures: 5,
            max_failures_per_ip: 20,
            window: Duration::from_secs(600),
            delay_step: Duration::from_millis(500),
        }
    }
}

impl AuthLimits {
    /// How long to wait before answering a failure that is the
    /// `login_failures`-th of its user and the `ip_failures`-th of its IP:
    /// the step times whichever count is nearer its limit, scaled to the
    /// per-user limit.
    pub fn delay_for(&self, login_failures: u32, ip_failures: u32) -> Duration {
        let ip_share =
            ip_failures.saturating_mul(self.max_failures) / self.max_failures_per_ip.max(1);
        self.delay_step.saturating_mul(login_failures.max(ip_share))
    }
}

/// Bound on the keys tracked, so a spray from many addresses cannot grow
/// the table without limit; the oldest entries go first.
const MAX_TRACKED: usize = 65_536;

/// Failure times per key (a client, or a client and user).
pub struct Throttle<K> {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// An empty throttle allowing `max_failures` in `window`.
    pub fn new(max_failures: u32, window: Duration) -> Throttle<K> {
        Throttle {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// If `key` has used up its failures in the current window: how long
    /// until enough of them leave it for one more try.
    pub fn throttled_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let mut table = self.failures.lock();
        let times = table.get_mut(key)?;
        expire(times, now, self.window);
        let max = self.max_failures as usize;
        let over = times.len().checked_sub(max)?;
        // Below the limit again once the failure at `over` has left.
        let leaves = times.get(over)?.checked_add(self.window)?;
        Some(leaves.saturating_duration_since(now))
    }

    /// Records a failure; returns the failures of `key` in the window,
    /// this one included.
    pub fn record_failure(&self, key: K, now: Instant) -> u32 {
        let mut table = self.failures.lock();
        if table.len() >= MAX_TRACKED && !table.contains_key(&key) {
            let window = self.window;
            table.retain(|_, times| {
                expire(times, now, window);
                !times.is_empty()
            });
            if table.len() >= MAX_TRACKED {
                let oldest = table
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(key, _)| key.clone());
                if let Some(key) = oldest {
                    table.remove(&key);
                }
            }
        }
        let times = table.entry(key).or_default();
        expire(times, now, self.window);
        times.push_back(now);
        u32::try_from(times.len()).unwrap_or(u32::MAX)
    }

    /// A successful login clears the count of `key` (other keys keep
    /// theirs).
    pub fn record_success(&self, key: &K) {
        self.failures.lock().remove(key);
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn sliding_window_sequence() {
        let throttle = Throttle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (time, failure?, failures after, throttled after)
        let steps = [(0, 1, false), (10, 2, false), (20, 3, true)];
        for (s, count, throttled) in steps {
            assert!(throttle.throttled_for(&ip, at(s)).is_none());
            assert_eq!(throttle.record_failure(ip, at(s)), count);
            assert_eq!(throttle.throttled_for(&ip, at(s)).is_some(), throttled);
        }
        assert!(
            throttle.throttled_for(&other, at(20)).is_none(),
            "other IPs are not affected"
        );
        assert_eq!(
            throttle.throttled_for(&ip, at(59)),
            Some(Duration::from_secs(1))
        );
        // The first failure leaves the window at 60 s.
        assert!(throttle.throttled_for(&ip, at(60)).is_none());
        assert_eq!(throttle.record_failure(ip, at(61)), 3);
        assert_eq!(
            AuthLimits::default().delay_for(2, 2),
            Duration::from_millis(1000)
        );
        // Many users failing from one IP slow it down as it nears its limit.
        assert_eq!(
            AuthLimits::default().delay_for(1, 16),
            Duration::from_millis(2000)
        );
        throttle.record_success(&ip);
        assert!(throttle.throttled_for(&ip, at(61)).is_none());
        assert_eq!(throttle.record_failure(ip, at(62)), 1);
    }

    #[test]
    fn table_is_bounded() {
        let throttle = Throttle::new(5, Duration::from_secs(600));
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            throttle.record_failure(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(throttle.failures.lock().len() <= MAX_TRACKED);
    }
}
