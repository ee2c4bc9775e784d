//! The project's own SMTP load generator (behind `outpost bench`). It
//! measures what Postfix's smtp-source cannot: TLS (implicit or STARTTLS),
//! AUTH and PIPELINING, with per-message latency percentiles.
//!
//! Plain threads and blocking sockets, one thread per session: the generator
//! must be simple enough to trust and cheap enough not to be the bottleneck.
//! It only ever connects to loopback addresses. Every run is bounded in count
//! (sessions × messages) and in time ([`Options::duration_limit`]).
//!
//! Owns: what a run is asked to do and the loopback guard (`options`), the
//! test message (`body`), the SMTP client sessions (`client`), the
//! counters sampled each second and the latency histogram (`timeline`),
//! the `--csv` file (`csv`) and the [`Summary`]. The command line (`outpost bench`: parsing, printing, exit
//! codes) is `cli::bench`, the only user. Uses rustls and base64; from the
//! crate only `proto` (dot-stuffing, the reply reader, EHLO extensions) and
//! `tls`.

mod body;
mod client;
pub mod csv;
pub mod options;
pub mod timeline;

use std::fmt;
use std::io;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

pub use options::{AuthMechanism, Options, Security, TargetError, Trust};
pub use timeline::{Bucket, Second, Totals};

use crate::proto::reply::{Reply, ReplyError};

/// Time the main thread waits past the deadline for sessions to report
/// before it gives up on them (their socket timeouts end at the deadline).
const REPORT_GRACE: Duration = Duration::from_secs(5);
/// How often the counters are sampled into the time line.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Everything that can go wrong in a run.
#[derive(Debug)]
pub enum LoadgenError {
    /// The target is not a loopback address with a port.
    Target(TargetError),
    /// A socket operation failed.
    Io {
        /// What was being done.
        during: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// TLS setup failed.
    Tls(rustls::Error),
    /// The `--ca` file could not be used (the error names the file).
    CaFile(crate::tls::TlsError),
    /// The server broke the protocol (malformed reply, unexpected close).
    Protocol(String),
    /// The server answered with an unexpected (usually 4xx/5xx) reply.
    Rejected {
        /// The command the reply answered.
        during: &'static str,
        /// The reply.
        reply: Reply,
    },
    /// The server sent bytes that are no SMTP reply.
    Reply(ReplyError),
    /// The server does not offer an extension the options require.
    Unsupported(&'static str),
    /// The duration limit was reached in the middle of a step.
    Deadline,
    /// A session thread could not be started.
    Spawn(io::Error),
}

impl fmt::Display for LoadgenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadgenError::Target(e) => write!(f, "{e}"),
            LoadgenError::Io { during, source } => write!(f, "{during}: {source}"),
            LoadgenError::Tls(e) => write!(f, "TLS: {e}"),
            LoadgenError::CaFile(e) => write!(f, "CA file: {e}"),
            LoadgenError::Protocol(why) => write!(f, "protocol error: {why}"),
            LoadgenError::Rejected { during, reply } => write!(f, "{during} answered {reply}"),
            LoadgenError::Reply(e) => write!(f, "protocol error: {e}"),
            LoadgenError::Unsupported(what) => write!(f, "the server does not offer {what}"),
            LoadgenError::Deadline => write!(f, "duration limit reached"),
            LoadgenError::Spawn(e) => write!(f, "cannot start a session thread: {e}"),
        }
    }
}

impl std::error::Error for LoadgenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadgenError::Io { source, .. } | LoadgenError::Spawn(source) => Some(source),
            LoadgenError::Tls(e) => Some(e),
            LoadgenError::Reply(e) => Some(e),
            LoadgenError::Target(e) => Some(e),
            _ => None,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest message.
    pub max_ms: f64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Messages accepted by the server.
    pub sent: u64,
    /// Messages tried and not accepted.
    pub failed: u64,
    /// Messages never tried (deadline reached or connections refused).
    pub not_attempted: u64,
    /// Unexpected SMTP replies seen.
    pub error_replies: u64,
    /// Connections that failed or broke.
    pub connection_errors: u64,
    /// Connections opened and ready for mail.
    pub connections: u64,
    /// Connections on which PIPELINING was offered and used.
    pub pipelined_connections: u64,
    /// Connections whose TLS handshake resumed an earlier session.
    pub tls_resumed: u64,
    /// Sessions that did not report back by the deadline plus a grace period.
    pub stuck_sessions: u64,
    /// Wall time from the first connection to the last session's end.
    pub elapsed: Duration,
    /// Latency percentiles ([`Options::latency_span`]): of the accepted
    /// messages, or with one connection per message, of the sessions that
    /// sent their message and ended with QUIT answered.
    pub latency: Latency,
    /// The run second by second.
    pub timeline: Vec<Second>,
    /// The latency histogram, the same samples as `latency`.
    pub histogram: Vec<Bucket>,
}

impl Summary {
    /// Accepted messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.sent as f64, self.elapsed)
    }

    /// Connections opened (and ready for mail) per second.
    pub fn sessions_per_sec(&self) -> f64 {
        per_sec(self.connections as f64, self.elapsed)
    }

    /// Accepted message bytes (before dot-stuffing) per second, in 10^6 bytes.
    pub fn mb_per_sec(&self, size: usize) -> f64 {
        per_sec(self.sent as f64 * size as f64 / 1e6, self.elapsed)
    }
}

fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Runs the load of `opts` and returns the merged results. Each session's
/// errors go to `on_error` (with the session's number) as they happen; the
/// run goes on. `on_second` is told of each second of the run as it ends
/// (and of the last, shorter one).
pub fn run(
    opts: &Options,
    on_error: impl Fn(usize, &LoadgenError) + Send + Sync + 'static,
    mut on_second: impl FnMut(&Second),
) -> Result<Summary, LoadgenError> {
    // The loopback guard also holds for callers that build Options by hand.
    options::check_loopback(opts.server).map_err(LoadgenError::Target)?;
    let message = body::message(opts.size, &opts.from, &opts.to);
    let mut wire = Vec::with_capacity(message.len() + message.len() / 16 + 3);
    crate::proto::dot::stuff(&message, &mut wire);
    let tls = client::tls_config(opts)?;
    let deadline = Instant::now() + opts.duration_limit;
    let shared = Arc::new(client::LoadShared {
        opts: opts.clone(),
        wire,
        tls,
        deadline,
        on_error: Box::new(on_error),
        counters: timeline::LiveCounters::default(),
    });
    let (results_tx, results_rx) = mpsc::channel();
    // Sessions start together so the first ones do not run alone for a while.
    let start_line = Arc::new(Barrier::new(opts.sessions + 1));
    let mut spawned = 0;
    let mut spawn_error = None;
    for index in 0..opts.sessions {
        let shared = Arc::clone(&shared);
        let start_line = Arc::clone(&start_line);
        let results_tx = results_tx.clone();
        let spawn = std::thread::Builder::new()
            .name(format!("bench-{index}"))
            .spawn(move || {
                start_line.wait();
                let stats = client::session(&shared, index);
                // The receiver is gone only if the run already gave up on us.
                let _ = results_tx.send(stats);
            });
        match spawn {
            Ok(_) => spawned += 1,
            Err(e) => {
                spawn_error = Some(e);
                break;
            }
        }
    }
    drop(results_tx);
    if let Some(e) = spawn_error {
        // The threads already started wait at the barrier forever otherwise;
        // they are detached and end with the process.
        return Err(LoadgenError::Spawn(e));
    }
    let started = Instant::now();
    start_line.wait();
    let mut summary = Summary {
        sent: 0,
        failed: 0,
        not_attempted: 0,
        error_replies: 0,
        connection_errors: 0,
        connections: 0,
        pipelined_connections: 0,
        tls_resumed: 0,
        stuck_sessions: 0,
        elapsed: Duration::ZERO,
        latency: Latency::default(),
        timeline: Vec::new(),
        histogram: Vec::new(),
    };
    let mut latencies = Vec::new();
    let give_up = deadline.max(started + opts.duration_limit) + REPORT_GRACE;
    let mut sampler = timeline::Sampler::default();
    let mut next_sample = started + SAMPLE_INTERVAL;
    let mut reported = 0;
    // Bounded: every pass takes a result, takes a sample (the next one is
    // a second later), or ends at `give_up`.
    while reported < spawned {
        let now = Instant::now();
        if now >= next_sample {
            let second = sampler.sample(now - started, shared.counters.totals());
            on_second(&second);
            summary.timeline.push(second);
            next_sample += SAMPLE_INTERVAL;
            continue;
        }
        if now >= give_up {
            break;
        }
        match results_rx.recv_timeout(next_sample.min(give_up) - now) {
            Ok(stats) => {
                reported += 1;
                summary.sent += stats.sent;
                summary.failed += stats.failed;
                summary.not_attempted += stats.not_attempted;
                summary.error_replies += stats.error_replies;
                summary.connection_errors += stats.connection_errors;
                summary.connections += stats.connections;
                summary.pipelined_connections += stats.pipelined_connections;
                summary.tls_resumed += stats.tls_resumed;
                latencies.extend_from_slice(&stats.latencies_us);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    summary.elapsed = started.elapsed();
    let last = sampler.sample(summary.elapsed, shared.counters.totals());
    if !last.length.is_zero() {
        on_second(&last);
        summary.timeline.push(last);
    }
    summary.stuck_sessions = (spawned - reported) as u64;
    summary.not_attempted += summary.stuck_sessions * opts.messages as u64;
    latencies.sort_unstable();
    summary.latency = Latency {
        p50_ms: percentile_ms(&latencies, 50.0),
        p90_ms: percentile_ms(&latencies, 90.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        max_ms: latencies.last().map_or(0.0, |&us| us as f64 / 1000.0),
    };
    summary.histogram = timeline::histogram(&latencies);
    Ok(summary)
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[index] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        for (p, want) in [
            (50.0, 50.0),
            (90.0, 90.0),
            (99.0, 99.0),
            (100.0, 100.0),
            (0.0, 1.0),
        ] {
            assert_eq!(percentile_ms(&samples, p), want, "p{p}");
        }
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
        assert_eq!(percentile_ms(&[1500], 99.0), 1.5);
        assert_eq!(percentile_ms(&[1000, 2000], 50.0), 1.0);
    }
}
