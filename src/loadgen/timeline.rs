//! What a run records as it goes and what it makes of the latencies at the
//! end: the counters every session bumps (`LiveCounters`), one [`Second`]
//! sampled from them each second (the live progress line and the time line
//! of `--csv`), and the latency [`Bucket`]s of the histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of one decade of latency buckets in microseconds: the R10
/// preferred numbers (ISO 3), ten steps a decade, each about 26% above
/// the last, so a histogram on a log axis has evenly wide bars.
const DECADE_US: [u64; 10] = [100, 125, 160, 200, 250, 315, 400, 500, 630, 800];

/// Counts so far, summed over every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages the server accepted.
    pub sent: u64,
    /// Connections opened and ready for mail.
    pub sessions_opened: u64,
    /// Errors reported (error replies, failed or broken connections).
    pub errors: u64,
}

impl Totals {
    /// What happened between `earlier` and `self`.
    fn since(self, earlier: Totals) -> Totals {
        Totals {
            sent: self.sent.saturating_sub(earlier.sent),
            sessions_opened: self.sessions_opened.saturating_sub(earlier.sessions_opened),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

/// The counters the sessions bump while they run; read once a second.
#[derive(Debug, Default)]
pub(super) struct LiveCounters {
    sent: AtomicU64,
    sessions_opened: AtomicU64,
    errors: AtomicU64,
}

impl LiveCounters {
    /// A message was accepted.
    pub(super) fn message_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection is open and ready for mail.
    pub(super) fn session_opened(&self) {
        self.sessions_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// An error was reported.
    pub(super) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts right now.
    pub(super) fn totals(&self) -> Totals {
        Totals {
            sent: self.sent.load(Ordering::Relaxed),
            sessions_opened: self.sessions_opened.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// One interval of the run: a second, except the last, which ends with
/// the run and is usually shorter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Second {
    /// Time from the start of the run to the end of this interval.
    pub end: Duration,
    /// Length of this interval.
    pub length: Duration,
    /// Counts from the start of the run to the end of this interval.
    pub totals: Totals,
    /// Counts within this interval.
    pub within: Totals,
}

impl Second {
    /// Messages accepted per second within this interval.
    pub fn msgs_per_sec(&self) -> f64 {
        super::per_sec(self.within.sent as f64, self.length)
    }
}

/// Turns successive readings of the counters into [`Second`]s.
#[derive(Debug, Default)]
pub(super) struct Sampler {
    last_end: Duration,
    last_totals: Totals,
}

impl Sampler {
    /// The interval from the previous reading to this one, taken `end`
    /// after the start of the run.
    pub(super) fn sample(&mut self, end: Duration, totals: Totals) -> Second {
        let second = Second {
            end,
            length: end.saturating_sub(self.last_end),
            totals,
            within: totals.since(self.last_totals),
        };
        self.last_end = end;
        self.last_totals = totals;
        second
    }
}

/// One bar of the latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Latencies up to this many microseconds (and above the previous
    /// bucket's bound) fall in this bucket.
    pub upper_us: u64,
    /// How many.
    pub count: u64,
}

/// The histogram of sorted microsecond samples: buckets from 100 µs (which
/// also holds everything faster) up to the first bound at or above the
/// slowest sample, on the R10 series; empty if there are no samples.
pub(super) fn histogram(sorted_us: &[u64]) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    let mut rest = sorted_us;
    let mut scale: u64 = 1;
    // Bounded: each decade multiplies the bound by ten, and the loop ends
    // when every sample is placed or the bounds would overflow (then the
    // last bucket takes the rest).
    'decades: while !rest.is_empty() {
        for step in DECADE_US {
            let Some(upper_us) = step.checked_mul(scale) else {
                break 'decades;
            };
            let count = rest.partition_point(|&us| us <= upper_us);
            buckets.push(Bucket {
                upper_us,
                count: count as u64,
            });
            rest = &rest[count..];
            if rest.is_empty() {
                break 'decades;
            }
        }
        scale = match scale.checked_mul(10) {
            Some(s) => s,
            None => break,
        };
    }
    if let Some(last) = buckets.last_mut() {
        last.count += rest.len() as u64;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(upper_us: u64, count: u64) -> Bucket {
        Bucket { upper_us, count }
    }

    #[test]
    fn histogram_buckets() {
        assert_eq!(histogram(&[]), vec![]);
        assert_eq!(histogram(&[3, 100]), vec![bucket(100, 2)]);
        assert_eq!(
            histogram(&[90, 101, 125, 126, 190]),
            vec![
                bucket(100, 1),
                bucket(125, 2),
                bucket(160, 1),
                bucket(200, 1)
            ]
        );
        // The second decade goes on from 1000 µs; empty buckets stay, so
        // the bars are evenly spaced.
        let h = histogram(&[1100]);
        assert_eq!(h.len(), 12);
        assert_eq!(h[9], bucket(800, 0));
        assert_eq!(h[10], bucket(1000, 0));
        assert_eq!(h[11], bucket(1250, 1));
        // Every sample is counted once, however slow.
        let slow = [50, 5_000, 86_400_000_000, u64::MAX];
        let h = histogram(&slow);
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 4);
        assert!(h.windows(2).all(|w| w[0].upper_us < w[1].upper_us));
    }

    #[test]
    fn seconds_from_readings() {
        let mut sampler = Sampler::default();
        let totals = |sent, sessions_opened, errors| Totals {
            sent,
            sessions_opened,
            errors,
        };
        let first = sampler.sample(Duration::from_secs(1), totals(800, 16, 0));
        assert_eq!(first.within, totals(800, 16, 0));
        assert_eq!(first.msgs_per_sec(), 800.0);
        let last = sampler.sample(Duration::from_millis(1500), totals(1000, 16, 2));
        assert_eq!(last.length, Duration::from_millis(500));
        assert_eq!(last.within, totals(200, 0, 2));
        assert_eq!(last.totals, totals(1000, 16, 2));
        assert_eq!(last.msgs_per_sec(), 400.0);
    }

    #[test]
    fn counters_add_up() {
        let counters = LiveCounters::default();
        counters.message_sent();
        counters.message_sent();
        counters.session_opened();
        counters.error();
        assert_eq!(
            counters.totals(),
            Totals {
                sent: 2,
                sessions_opened: 1,
                errors: 1
            }
        );
    }
}
