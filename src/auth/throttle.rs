//! Failed logins per client IP across connections, in a sliding window:
//! a growing delay before each `535`, and `421` once the limit is reached,
//! so a password-guessing client gets a handful of tries per window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Thresholds of the login throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures in `window` after which the client is throttled.
    pub max_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// Delay before a failure is reported, times the failures so far.
    pub delay_step: Duration,
}

impl Default for AuthLimits {
    /// 5 failures in 10 minutes, 0.5 s more delay per failure.
    fn default() -> Self {
        AuthLimits {
            max_failures: 5,
            window: Duration::from_secs(600),
            delay_step: Duration::from_millis(500),
        }
    }
}

/// Bound on the IPs tracked, so a spray from many addresses cannot grow
/// the table without limit; the oldest entries go first.
const MAX_TRACKED: usize = 65_536;

/// Failure times per client IP.
pub struct Throttle {
    limits: AuthLimits,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Throttle {
    /// An empty throttle with `limits`.
    pub fn new(limits: AuthLimits) -> Throttle {
        Throttle {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Has `client` used up its failures in the current window?
    pub fn is_throttled(&self, client: IpAddr, now: Instant) -> bool {
        let mut table = self.failures.lock();
        let Some(times) = table.get_mut(&client) else {
            return false;
        };
        expire(times, now, self.limits.window);
        times.len() >= self.limits.max_failures as usize
    }

    /// Records a failure; returns the failures of `client` in the window,
    /// this one included.
    pub fn record_failure(&self, client: IpAddr, now: Instant) -> u32 {
        let mut table = self.failures.lock();
        if table.len() >= MAX_TRACKED && !table.contains_key(&client) {
            let window = self.limits.window;
            table.retain(|_, times| {
                expire(times, now, window);
                !times.is_empty()
            });
            if table.len() >= MAX_TRACKED {
                let oldest = table
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(ip) = oldest {
                    table.remove(&ip);
                }
            }
        }
        let times = table.entry(client).or_default();
        expire(times, now, self.limits.window);
        times.push_back(now);
        u32::try_from(times.len()).unwrap_or(u32::MAX)
    }

    /// A successful login from `client` clears its count (other IPs keep
    /// theirs).
    pub fn record_success(&self, client: IpAddr) {
        self.failures.lock().remove(&client);
    }

    /// How long to wait before answering the `failures`-th failure.
    pub fn delay_for(&self, failures: u32) -> Duration {
        self.limits.delay_step.saturating_mul(failures)
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
    use super::*;

    #[test]
    fn sliding_window_sequence() {
        let throttle = Throttle::new(AuthLimits {
            max_failures: 3,
            window: Duration::from_secs(60),
            delay_step: Duration::from_millis(100),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (time, failure?, failures after, throttled after)
        let steps = [(0, 1, false), (10, 2, false), (20, 3, true)];
        for (s, count, throttled) in steps {
            assert!(!throttle.is_throttled(ip, at(s)));
            assert_eq!(throttle.record_failure(ip, at(s)), count);
            assert_eq!(throttle.is_throttled(ip, at(s)), throttled);
        }
        assert!(
            !throttle.is_throttled(other, at(20)),
            "other IPs are not affected"
        );
        assert!(throttle.is_throttled(ip, at(59)));
        // The first failure leaves the window at 60 s.
        assert!(!throttle.is_throttled(ip, at(60)));
        assert_eq!(throttle.record_failure(ip, at(61)), 3);
        assert_eq!(throttle.delay_for(2), Duration::from_millis(200));
        throttle.record_success(ip);
        assert!(!throttle.is_throttled(ip, at(61)));
        assert_eq!(throttle.record_failure(ip, at(62)), 1);
    }

    #[test]
    fn table_is_bounded() {
        let throttle = Throttle::new(AuthLimits::default());
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            throttle.record_failure(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(throttle.failures.lock().len() <= MAX_TRACKED);
    }
}
