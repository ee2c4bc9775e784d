//! The retry schedule as pure functions: when to try a deferred message
//! again, when to give up, and when to warn the sender with a "delayed" DSN.
//! Also the duration syntax of the command line (`30s`, `10m`, `4h`, `5d`).
//!
//! Times are ages of the message (time since arrival) and attempt counts;
//! the caller owns the clock and the seed.

use std::time::Duration;

use crate::proto::splitmix::splitmix64;

/// First delay of the default schedule (Postfix's `minimal_backoff_time` is
/// 300s).
pub const DEFAULT_FIRST_DELAY: Duration = Duration::from_secs(5 * 60);
/// The default schedule doubles up to this (Postfix's `maximal_backoff_time`
/// is 4000s; an hour keeps the numbers round).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60 * 60);
/// `--max-queue-lifetime` default (Postfix's `maximal_queue_lifetime`).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(5 * 24 * 3600);
/// `--delay-warning` default (Postfix's `delay_warning_time` when enabled).
pub const DEFAULT_DELAY_WARNING: Duration = Duration::from_secs(4 * 3600);
/// Jitter of the default schedule: ±10%, so that messages deferred together
/// do not all come back in the same second.
pub const JITTER_PERCENT: u64 = 10;

/// Why a duration or a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError {
    /// Not a number followed by `s`, `m`, `h` or `d` (or a bare number of
    /// seconds); holds the text.
    BadDuration(String),
    /// A retry list with no entries, or a zero delay in it.
    BadSchedule(String),
}

impl std::fmt::Display for RetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryError::BadDuration(s) => {
                write!(
                    f,
                    "bad duration {s:?}: write a number and s, m, h or d, e.g. 30s or 4h"
                )
            }
            RetryError::BadSchedule(s) => {
                write!(
                    f,
                    "bad retry list {s:?}: write delays like 1s,1s,2s (none zero)"
                )
            }
        }
    }
}

impl std::error::Error for RetryError {}

/// Parses `30s`, `10m`, `4h`, `5d`, or a bare number of seconds (`0`).
pub fn parse_duration(text: &str) -> Result<Duration, RetryError> {
    crate::units::parse_duration(text).map_err(|_| RetryError::BadDuration(text.to_string()))
}

/// Parses `--retry LIST`: comma-separated durations, none zero.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, RetryError> {
    let bad = || RetryError::BadSchedule(text.to_string());
    let list = text
        .split(',')
        .map(|part| parse_duration(part).map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() || list.iter().any(Duration::is_zero) {
        return Err(bad());
    }
    Ok(list)
}

/// The delays between attempts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Schedule {
    /// 5m, 10m, 20m, 40m, then every 60m, each ±10% (from the seed).
    #[default]
    Default,
    /// A configured list; the last delay repeats. Used as written, without
    /// jitter, so tests are exact.
    List(Vec<Duration>),
}

impl Schedule {
    /// The delay after the `failures`-th failed attempt (1 = after the
    /// first). `seed` picks the jitter (use e.g. the queue id's hash).
    pub fn delay(&self, failures: u32, seed: u64) -> Duration {
        let n = failures.max(1);
        match self {
            Schedule::List(list) => match list.get(n as usize - 1).or(list.last()) {
                Some(d) => *d,
                None => DEFAULT_FIRST_DELAY,
            },
            Schedule::Default => {
                let doublings = (n - 1).min(16);
                let base = DEFAULT_FIRST_DELAY
                    .saturating_mul(1 << doublings)
                    .min(DEFAULT_MAX_DELAY);
                jitter(base, splitmix64(seed ^ u64::from(n)))
            }
        }
    }
}

/// `base` moved by up to ±JITTER_PERCENT, chosen by `random`.
fn jitter(base: Duration, random: u64) -> Duration {
    let millis = base.as_millis() as u64;
    let span = millis * JITTER_PERCENT / 100;
    if span == 0 {
        return base;
    }
    let offset = random % (2 * span + 1);
    Duration::from_millis(millis - span + offset)
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again this long from now.
    RetryAfter(Duration),
    /// The lifetime is over: return the message to the sender (RFC 5321
    /// §4.5.4.1, "give up ... at least 4-5 days").
    GiveUp,
}

/// Retry settings (`--retry`, `--max-queue-lifetime`, `--delay-warning`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delays between attempts.
    pub schedule: Schedule,
    /// How long a message may stay queued.
    pub max_lifetime: Duration,
    /// When to send a "delayed" DSN; `None` = never (`--delay-warning 0`).
    pub delay_warning: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            schedule: Schedule::Default,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            delay_warning: Some(DEFAULT_DELAY_WARNING),
        }
    }
}

impl RetryPolicy {
    /// After the `failures`-th failed attempt of a message that is `age`
    /// old. The last retry is moved to the end of the lifetime rather than
    /// skipped, so a message gets its final chance before it is returned.
    pub fn after_failure(&self, age: Duration, failures: u32, seed: u64) -> Decision {
        if age >= self.max_lifetime {
            return Decision::GiveUp;
        }
        let delay = self.schedule.delay(failures, seed);
        Decision::RetryAfter(delay.min(self.max_lifetime - age))
    }

    /// True when a "delayed" DSN is due: the message is still queued at
    /// `age`, past the warning time, and none was sent yet.
    pub fn warn_now(&self, age: Duration, already_warned: bool) -> bool {
        match self.delay_warning {
            Some(after) => !already_warned && age >= after && age < self.max_lifetime,
            None => false,
        }
    }

    /// Until when (as an age) the message will be retried, for the
    /// `Will-Retry-Until` field of a delayed DSN.
    pub fn retry_until(&self) -> Duration {
        self.max_lifetime
    }
}

/// `--delay-warning`: `0` switches the warning off.
pub fn parse_delay_warning(text: &str) -> Result<Option<Duration>, RetryError> {
    let d = parse_duration(text)?;
    Ok(if d.is_zero() { None } else { Some(d) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn parses_durations() {
        let table = [
            ("30s", S(30)),
            ("10m", S(600)),
            ("4h", S(14_400)),
            ("5d", S(432_000)),
            ("0", S(0)),
            ("7", S(7)),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "s",
            "10x",
            "-1s",
            "1.5h",
            "10 m",
            "99999999999999999999d",
            "1h30m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_delay_warning("0"), Ok(None));
        assert_eq!(parse_delay_warning("4h"), Ok(Some(S(14_400))));
    }

    #[test]
    fn configured_list_repeats_its_last_entry() {
        let s = Schedule::List(parse_schedule("1s,1s,2s").unwrap());
        let delays: Vec<_> = (1..=5).map(|n| s.delay(n, 42)).collect();
        assert_eq!(delays, vec![S(1), S(1), S(2), S(2), S(2)]);
        assert!(parse_schedule("").is_err());
        assert!(parse_schedule("1s,0s").is_err());
        assert!(parse_schedule("1s,,2s").is_err());
    }

    #[test]
    fn default_schedule_doubles_to_an_hour_within_jitter() {
        let bases = [5, 10, 20, 40, 60, 60, 60];
        for seed in 0..50 {
            for (i, base) in bases.iter().enumerate() {
                let d = Schedule::Default.delay(i as u32 + 1, seed).as_secs_f64();
                let base = (base * 60) as f64;
                assert!(
                    d >= base * 0.9 && d <= base * 1.1,
                    "attempt {} seed {seed}: {d}",
                    i + 1
                );
            }
        }
        // Different seeds spread; the same seed repeats.
        assert_ne!(Schedule::Default.delay(1, 1), Schedule::Default.delay(1, 2));
        assert_eq!(Schedule::Default.delay(3, 9), Schedule::Default.delay(3, 9));
        assert!(Schedule::Default.delay(u32::MAX, 0) <= S(66 * 60));
    }

    #[test]
    fn gives_up_after_the_lifetime_with_a_last_try_at_its_end() {
        let p = RetryPolicy {
            schedule: Schedule::List(vec![S(10)]),
            max_lifetime: S(25),
            delay_warning: Some(S(15)),
        };
        assert_eq!(p.after_failure(S(0), 1, 0), Decision::RetryAfter(S(10)));
        assert_eq!(p.after_failure(S(20), 3, 0), Decision::RetryAfter(S(5)));
        assert_eq!(p.after_failure(S(25), 4, 0), Decision::GiveUp);
        assert!(!p.warn_now(S(14), false));
        assert!(p.warn_now(S(15), false));
        assert!(!p.warn_now(S(16), true));
        let off = RetryPolicy {
            delay_warning: None,
            ..p
        };
        assert!(!off.warn_now(S(20), false));
        let d = RetryPolicy::default();
        assert_eq!(
            (d.max_lifetime, d.delay_warning),
            (S(432_000), Some(S(14_400)))
        );
    }
}
