//! `outpost bench --csv FILE`: the run's time line and latency histogram
//! as one CSV file that gnuplot reads as it is. The file holds two data
//! blocks separated by two blank lines (gnuplot's `index 0` and `index 1`),
//! each opened by `#` comment lines that name its columns:
//!
//! ```text
//! # outpost bench: <the settings line>
//! # time line: one row per second (the last row ends with the run)
//! # second,messages,msgs_per_s,sessions_opened,errors
//! 1.000,812,812.0,16,0
//! ...
//!
//!
//! # latency histogram (MAIL sent to final reply), microseconds
//! # upper_us,count,cumulative_fraction
//! 100,0,0.000000
//! ...
//! ```
//!
//! `second` is the end of the interval in seconds from the start;
//! `messages` is the running total of accepted messages; `msgs_per_s`,
//! `sessions_opened` and `errors` are counted within the interval. With
//! `set datafile separator ","`, `plot FILE index 0 using 1:3` draws the
//! throughput and `plot FILE index 1 using 1:3` the latency distribution.

use std::io::{self, Write};

use super::Summary;

/// Writes `summary` as the two CSV blocks; `settings` (the printed
/// description of the run) goes into the first comment line and
/// `latency_span` (what a latency measures, [`super::Options::latency_span`])
/// into the histogram's.
pub fn write(
    out: &mut impl Write,
    settings: &str,
    latency_span: &str,
    summary: &Summary,
) -> io::Result<()> {
    writeln!(out, "# {}", one_line(settings))?;
    writeln!(
        out,
        "# time line: one row per second (the last row ends with the run)"
    )?;
    writeln!(out, "# second,messages,msgs_per_s,sessions_opened,errors")?;
    for s in &summary.timeline {
        writeln!(
            out,
            "{:.3},{},{:.1},{},{}",
            s.end.as_secs_f64(),
            s.totals.sent,
            s.msgs_per_sec(),
            s.within.sessions_opened,
            s.within.errors,
        )?;
    }
    // Two blank lines end a gnuplot data block.
    writeln!(out, "\n")?;
    writeln!(
        out,
        "# latency histogram ({}), microseconds",
        one_line(latency_span)
    )?;
    writeln!(out, "# upper_us,count,cumulative_fraction")?;
    let total: u64 = summary.histogram.iter().map(|b| b.count).sum();
    let mut below = 0;
    for b in &summary.histogram {
        below += b.count;
        let fraction = if total > 0 {
            below as f64 / total as f64
        } else {
            0.0
        };
        writeln!(out, "{},{},{fraction:.6}", b.upper_us, b.count)?;
    }
    out.flush()
}

/// A comment stays one line whatever it is given.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::loadgen::timeline::{Bucket, Second, Totals};
    use crate::loadgen::Latency;

    fn summary() -> Summary {
        let second = |end_ms, length_ms, sent, within_sent, opened, errors| Second {
            end: Duration::from_millis(end_ms),
            length: Duration::from_millis(length_ms),
            totals: Totals {
                sent,
                sessions_opened: 0,
                errors: 0,
            },
            within: Totals {
                sent: within_sent,
                sessions_opened: opened,
                errors,
            },
        };
        Summary {
            sent: 1200,
            failed: 0,
            not_attempted: 0,
            error_replies: 1,
            connection_errors: 0,
            connections: 16,
            pipelined_connections: 0,
            tls_resumed: 0,
            stuck_sessions: 0,
            elapsed: Duration::from_millis(1500),
            latency: Latency::default(),
            timeline: vec![
                second(1000, 1000, 800, 800, 16, 0),
                second(1500, 500, 1200, 400, 0, 1),
            ],
            histogram: vec![
                Bucket {
                    upper_us: 100,
                    count: 0,
                },
                Bucket {
                    upper_us: 125,
                    count: 300,
                },
                Bucket {
                    upper_us: 160,
                    count: 900,
                },
            ],
        }
    }

    #[test]
    fn two_gnuplot_blocks() {
        let mut out = Vec::new();
        write(
            &mut out,
            "outpost bench: x\ny",
            "MAIL sent to final reply",
            &summary(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# outpost bench: x y\n\
             # time line: one row per second (the last row ends with the run)\n\
             # second,messages,msgs_per_s,sessions_opened,errors\n\
             1.000,800,800.0,16,0\n\
             1.500,1200,800.0,0,1\n\
             \n\n\
             # latency histogram (MAIL sent to final reply), microseconds\n\
             # upper_us,count,cumulative_fraction\n\
             100,0,0.000000\n\
             125,300,0.250000\n\
             160,900,1.000000\n"
        );
    }

    #[test]
    fn empty_run() {
        let mut empty = summary();
        empty.timeline.clear();
        empty.histogram.clear();
        let mut out = Vec::new();
        write(&mut out, "s", "l", &empty).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2);
    }
}
