//! `outpost bench`: the project's own SMTP load generator. It measures what
//! Postfix's smtp-source cannot: TLS (implicit or STARTTLS), AUTH and
//! PIPELINING, with per-message latency percentiles.
//!
//! Plain threads and blocking sockets, one thread per session: the generator
//! must be simple enough to trust and cheap enough not to be the bottleneck.
//! It only ever connects to loopback addresses. Every run is bounded in count
//! (sessions × messages) and in time (`--duration-limit`).
//!
//! Owns: option parsing (`options`), the test message (`body`), the SMTP
//! client sessions (`client`) and the summary. Uses rustls, getopts and
//! base64; from the crate only `proto` (dot-stuffing, the reply reader, EHLO
//! extensions), `tls` and `units`.

mod body;
mod client;
pub mod options;

use std::fmt;
use std::io;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

pub use options::{Options, Parsed, Security, Trust};

use crate::proto::reply::{Reply, ReplyError};

/// Time the main thread waits past the deadline for sessions to report
/// before it gives up on them (their socket timeouts end at the deadline).
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// Everything that can go wrong in a run.
#[derive(Debug)]
pub enum LoadgenError {
    /// The command line is wrong; the text says how.
    Usage(String),
    /// `--server` is not a loopback address.
    NotLoopback(String),
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
            LoadgenError::Usage(why) => write!(f, "{why}"),
            LoadgenError::NotLoopback(why) => write!(f, "refusing to send load: {why}"),
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
    /// Sessions that did not report back by the deadline plus a grace period.
    pub stuck_sessions: u64,
    /// Wall time from the first connection to the last session's end.
    pub elapsed: Duration,
    /// Latency percentiles of the accepted messages (MAIL sent to final 250).
    pub latency: Latency,
}

impl Summary {
    /// Accepted messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.sent as f64, self.elapsed)
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

/// Entry point of `outpost bench`: `args` are the arguments after `bench`.
/// Prints the results; returns the exit code: 0 if every message was accepted,
/// 1 if some were not, 2 for a usage error or a non-loopback target.
pub fn run(args: &[String]) -> i32 {
    let opts = match options::parse(args) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Help(text)) => {
            println!("{text}");
            return 0;
        }
        Err(e) => {
            eprintln!("outpost bench: {e}");
            if matches!(e, LoadgenError::Usage(_)) {
                eprintln!("{}", options::usage());
            }
            return 2;
        }
    };
    println!("{}", describe(&opts));
    match run_with(&opts) {
        Ok(summary) => {
            print!("{}", report(&opts, &summary));
            let complete = summary.sent == (opts.sessions * opts.messages) as u64;
            if complete {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("outpost bench: {e}");
            1
        }
    }
}

/// Runs the load with parsed options and returns the merged results.
pub fn run_with(opts: &Options) -> Result<Summary, LoadgenError> {
    // The loopback guard also holds for callers that build Options by hand.
    options::loopback_target(&opts.server.to_string())?;
    let message = body::message(opts.size, &opts.from, &opts.to);
    let mut wire = Vec::with_capacity(message.len() + message.len() / 16 + 3);
    crate::proto::dot::stuff(&message, &mut wire);
    let tls = client::tls_config(opts)?;
    let deadline = Instant::now() + opts.duration_limit;
    let shared = Arc::new(client::Shared {
        opts: opts.clone(),
        wire,
        tls,
        deadline,
        errors_printed: AtomicUsize::new(0),
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
        stuck_sessions: 0,
        elapsed: Duration::ZERO,
        latency: Latency::default(),
    };
    let mut latencies = Vec::new();
    let give_up = deadline.max(started + opts.duration_limit) + REPORT_GRACE;
    let mut reported = 0;
    while reported < spawned {
        let wait = give_up.saturating_duration_since(Instant::now());
        match results_rx.recv_timeout(wait) {
            Ok(stats) => {
                reported += 1;
                summary.sent += stats.sent;
                summary.failed += stats.failed;
                summary.not_attempted += stats.not_attempted;
                summary.error_replies += stats.error_replies;
                summary.connection_errors += stats.connection_errors;
                summary.connections += stats.connections;
                summary.pipelined_connections += stats.pipelined_connections;
                latencies.extend_from_slice(&stats.latencies_us);
            }
            Err(_) => break,
        }
    }
    summary.elapsed = started.elapsed();
    summary.stuck_sessions = (spawned - reported) as u64;
    summary.not_attempted += summary.stuck_sessions * opts.messages as u64;
    latencies.sort_unstable();
    summary.latency = Latency {
        p50_ms: percentile_ms(&latencies, 50.0),
        p90_ms: percentile_ms(&latencies, 90.0),
        p99_ms: percentile_ms(&latencies, 99.0),
        max_ms: latencies.last().map_or(0.0, |&us| us as f64 / 1000.0),
    };
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

fn describe(opts: &Options) -> String {
    let security = match opts.security {
        Security::Plain => "plain",
        Security::StartTls => "starttls",
        Security::Implicit => "tls",
    };
    format!(
        "outpost bench: {} sessions={} messages/session={} size={} recipients={} {} security={} auth={} pipelining={} limit={}s",
        opts.server,
        opts.sessions,
        opts.messages,
        opts.size,
        opts.recipients,
        if opts.reuse { "reuse" } else { "no-reuse" },
        security,
        if opts.auth.is_some() { "plain" } else { "none" },
        if opts.pipelining { "if-offered" } else { "no" },
        opts.duration_limit.as_secs(),
    )
}

/// The human-readable report and the one machine-readable `result` line.
fn report(opts: &Options, s: &Summary) -> String {
    let l = &s.latency;
    let secs = s.elapsed.as_secs_f64();
    let mut out = format!(
        "messages: {} sent, {} failed, {} not attempted (error replies {}, connection errors {}{})\n\
         connections: {}, pipelining used on {}\n\
         elapsed: {secs:.3} s\n\
         rate: {:.1} msgs/s, {:.2} MB/s\n\
         latency ms: p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}\n",
        s.sent,
        s.failed,
        s.not_attempted,
        s.error_replies,
        s.connection_errors,
        if s.stuck_sessions > 0 {
            format!(", {} sessions stuck", s.stuck_sessions)
        } else {
            String::new()
        },
        s.connections,
        s.pipelined_connections,
        s.msgs_per_sec(),
        s.mb_per_sec(opts.size),
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        l.max_ms,
    );
    out.push_str(&format!(
        "result sessions={} size={} msgs={} secs={secs:.3} msgs_per_s={:.1} mb_per_s={:.2} p50_ms={:.3} p99_ms={:.3}\n",
        opts.sessions,
        opts.size,
        s.sent,
        s.msgs_per_sec(),
        s.mb_per_sec(opts.size),
        l.p50_ms,
        l.p99_ms,
    ));
    out
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

    #[test]
    fn result_line() {
        let opts = match options::parse(&["--server".into(), "127.0.0.1:25".into()]).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help(_) => unreachable!(),
        };
        let summary = Summary {
            sent: 2000,
            failed: 0,
            not_attempted: 0,
            error_replies: 0,
            connection_errors: 0,
            connections: 16,
            pipelined_connections: 0,
            stuck_sessions: 0,
            elapsed: Duration::from_secs(2),
            latency: Latency {
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: 3.0,
                max_ms: 4.0,
            },
        };
        let text = report(&opts, &summary);
        assert!(text.contains("2000 sent, 0 failed"));
        assert!(text.ends_with(
            "result sessions=16 size=1024 msgs=2000 secs=2.000 msgs_per_s=1000.0 mb_per_s=1.02 p50_ms=1.000 p99_ms=3.000\n"
        ));
    }

    #[test]
    fn refuses_non_loopback_with_exit_2() {
        assert_eq!(run(&["--server".into(), "192.0.2.1:25".into()]), 2);
        assert_eq!(run(&["--sessions".into(), "3".into()]), 2);
    }
}
