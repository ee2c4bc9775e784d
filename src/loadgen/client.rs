//! One load-generating session: a blocking SMTP client over a loopback TCP
//! stream, optionally inside TLS (rustls), sending the same message again and
//! again and timing each one. Every blocking call is bounded by the run's
//! deadline through socket timeouts.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::options::{AuthMechanism, Options, Security, Trust};
use super::timeline::LiveCounters;
use super::LoadgenError;
use crate::proto::client::Extensions;
use crate::proto::reply::{Reply, ReplyReader};
use crate::tls::{client_config, CertCheck, ClientStream};

/// A session gives up after this many connections in a row fail to open.
const MAX_CONSECUTIVE_OPEN_FAILURES: usize = 3;
/// Socket timeouts are recomputed from the deadline at least this often, so a
/// blocking call never outlives the deadline by more than this.
const REARM_INTERVAL: Duration = Duration::from_millis(500);
/// Most TLS handshake round trips before giving up on a peer.
const MAX_HANDSHAKE_ROUNDS: usize = 32;

/// What is told of each session error: the session's number and the error.
pub(super) type ErrorObserver = dyn Fn(usize, &LoadgenError) + Send + Sync;

/// State shared (read-only) by all sessions.
pub(super) struct LoadShared {
    /// The run's options.
    pub opts: Options,
    /// The dot-stuffed message followed by the end-of-data line ".\r\n".
    pub wire: Vec<u8>,
    /// TLS client configuration, when the run uses TLS.
    pub tls: Option<Arc<ClientConfig>>,
    /// No session starts a new step after this instant.
    pub deadline: Instant,
    /// Told of every error with the session's number.
    pub on_error: Box<ErrorObserver>,
    /// Counts as they happen, for the time line.
    pub counters: LiveCounters,
}

impl LoadShared {
    fn report(&self, session: usize, err: &LoadgenError) {
        self.counters.error();
        (self.on_error)(session, err);
    }
}

/// What one session did.
#[derive(Debug, Default)]
pub(super) struct SessionStats {
    /// Messages the server accepted with 2xx after the final dot.
    pub sent: u64,
    /// Messages tried that were not accepted.
    pub failed: u64,
    /// Messages never tried (deadline, or the server kept refusing connections).
    pub not_attempted: u64,
    /// Unexpected SMTP replies (4xx/5xx or out of sequence).
    pub error_replies: u64,
    /// Connections that failed (connect, TLS, greeting, I/O, timeout).
    pub connection_errors: u64,
    /// Connections opened and ready for mail.
    pub connections: u64,
    /// Of those, connections where the server offered PIPELINING and it was used.
    pub pipelined_connections: u64,
    /// TLS handshakes that resumed an earlier session instead of a full one.
    pub tls_resumed: u64,
    /// Latencies in microseconds ([`Options::latency_span`]): of each
    /// accepted message, MAIL sent to final reply; with one connection per
    /// message, of each session that sent its message, connect to the reply
    /// to QUIT.
    pub latencies_us: Vec<u64>,
}

/// Runs one session to completion: `opts.messages` messages, or until the deadline.
pub(super) fn session(shared: &LoadShared, index: usize) -> SessionStats {
    let opts = &shared.opts;
    let mut stats = SessionStats {
        latencies_us: Vec::with_capacity(opts.messages.min(1 << 16)),
        ..SessionStats::default()
    };
    let mut remaining = opts.messages;
    let mut open_failures = 0;
    // Bounded: each pass either sends at least one message or counts an open
    // failure, and open failures end the loop after a few in a row.
    'connections: while remaining > 0 && Instant::now() < shared.deadline {
        let mut conn = match LoadConnection::open(shared) {
            Ok(c) => c,
            Err(e) => {
                stats.connection_errors += 1;
                if matches!(e, LoadgenError::Rejected { .. }) {
                    stats.error_replies += 1;
                }
                shared.report(index, &e);
                open_failures += 1;
                if open_failures >= MAX_CONSECUTIVE_OPEN_FAILURES {
                    break;
                }
                continue;
            }
        };
        open_failures = 0;
        stats.connections += 1;
        shared.counters.session_opened();
        stats.pipelined_connections += u64::from(conn.pipelining);
        stats.tls_resumed += u64::from(conn.tls_resumed);
        let batch = if opts.reuse { remaining } else { 1 };
        let mut sent_here = false;
        for _ in 0..batch {
            if Instant::now() >= shared.deadline {
                break 'connections;
            }
            remaining -= 1;
            match conn.send_message(shared) {
                Ok(latency) => {
                    stats.sent += 1;
                    shared.counters.message_sent();
                    sent_here = true;
                    if opts.reuse {
                        stats.latencies_us.push(micros(latency));
                    }
                }
                Err(e @ LoadgenError::Rejected { .. }) => {
                    stats.failed += 1;
                    stats.error_replies += 1;
                    shared.report(index, &e);
                    // RFC 5321 §4.1.1.5: RSET clears whatever is left of the transaction.
                    if let Err(e) = conn.command(b"RSET\r\n", 250, "RSET") {
                        stats.connection_errors += 1;
                        shared.report(index, &e);
                        continue 'connections;
                    }
                }
                Err(e) => {
                    stats.failed += 1;
                    stats.connection_errors += 1;
                    shared.report(index, &e);
                    continue 'connections;
                }
            }
        }
        match conn.command(b"QUIT\r\n", 221, "QUIT") {
            // One connection per message: the whole session is the latency,
            // as a client that connects for every message sees it.
            Ok(_) if !opts.reuse && sent_here => {
                stats.latencies_us.push(micros(conn.opened_at.elapsed()));
            }
            Ok(_) => {}
            Err(e) => {
                if matches!(e, LoadgenError::Rejected { .. }) {
                    stats.error_replies += 1;
                    shared.report(index, &e);
                }
            }
        }
    }
    stats.not_attempted = remaining as u64;
    stats
}

/// Builds the TLS client configuration for the run, if it uses TLS.
pub(super) fn tls_config(opts: &Options) -> Result<Option<Arc<ClientConfig>>, LoadgenError> {
    if opts.security == Security::Plain {
        return Ok(None);
    }
    let public_roots = || rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let (roots, check) = match &opts.trust {
        // `--insecure`: any certificate is taken, but handshake signatures
        // are still checked, so the connection is real TLS with real
        // crypto cost.
        Trust::Any => (public_roots(), CertCheck::Observe(Box::new(|_, _| {}))),
        Trust::WebPkiRoots => (public_roots(), CertCheck::Verify),
        Trust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::tls::load_certificates(path).map_err(LoadgenError::CaFile)? {
                roots.add(cert).map_err(LoadgenError::Tls)?;
            }
            (roots, CertCheck::Verify)
        }
    };
    let mut config = client_config(Arc::new(roots), check).map_err(LoadgenError::Tls)?;
    if !opts.tls_resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Some(Arc::new(config)))
}

/// An open SMTP connection, greeted and ready for MAIL.
struct LoadConnection {
    stream: ClientStream,
    replies: ReplyReader,
    read_buf: Box<[u8]>,
    out: Vec<u8>,
    deadline: Instant,
    armed_at: Option<Instant>,
    pipelining: bool,
    /// When the connection was asked for, before the TCP connect.
    opened_at: Instant,
    /// The TLS handshake resumed an earlier session.
    tls_resumed: bool,
}

impl LoadConnection {
    /// Connects, reads the greeting, says EHLO, and does STARTTLS and AUTH if asked.
    fn open(shared: &LoadShared) -> Result<LoadConnection, LoadgenError> {
        let opts = &shared.opts;
        let opened_at = Instant::now();
        let remaining = shared
            .deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(LoadgenError::Deadline)?;
        let tcp = TcpStream::connect_timeout(&opts.server, remaining).map_err(|source| {
            LoadgenError::Io {
                during: "connect",
                source,
            }
        })?;
        // Commands are small and latency is what we measure: no Nagle delay.
        tcp.set_nodelay(true).map_err(|source| LoadgenError::Io {
            during: "setsockopt",
            source,
        })?;
        let mut conn = LoadConnection {
            stream: ClientStream::Plain(tcp),
            replies: ReplyReader::new(),
            read_buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            out: Vec::with_capacity(1024),
            deadline: shared.deadline,
            armed_at: None,
            pipelining: false,
            opened_at,
            tls_resumed: false,
        };
        if opts.security == Security::Implicit {
            conn = conn.start_tls(shared)?;
        }
        conn.expect(220, "greeting")?;
        let mut ext = conn.ehlo(opts)?;
        if opts.security == Security::StartTls {
            if !ext.starttls {
                return Err(LoadgenError::Unsupported("STARTTLS"));
            }
            conn.command(b"STARTTLS\r\n", 220, "STARTTLS")?;
            // RFC 3207 §4.2: nothing may follow the 220 in the clear; anything
            // that did would be an injection attempt, so refuse to continue.
            if !conn.replies.buffered().is_empty() {
                return Err(LoadgenError::Protocol(
                    "server sent data after its STARTTLS reply".into(),
                ));
            }
            conn = conn.start_tls(shared)?;
            // RFC 3207 §4.2: the session starts over; ask for the extensions again.
            ext = conn.ehlo(opts)?;
        }
        if let Some((user, pass)) = &opts.auth {
            conn.authenticate(opts.auth_mechanism, user, pass, &ext)?;
        }
        conn.pipelining = opts.pipelining && ext.pipelining;
        Ok(conn)
    }

    /// AUTH with `mechanism`, which the server must offer.
    fn authenticate(
        &mut self,
        mechanism: AuthMechanism,
        user: &str,
        pass: &str,
        ext: &Extensions,
    ) -> Result<(), LoadgenError> {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let (name, unsupported) = match mechanism {
            AuthMechanism::Plain => ("PLAIN", "AUTH PLAIN"),
            AuthMechanism::Login => ("LOGIN", "AUTH LOGIN"),
        };
        if !ext.auth.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            return Err(LoadgenError::Unsupported(unsupported));
        }
        match mechanism {
            AuthMechanism::Plain => {
                // RFC 4616 §2: authzid NUL authcid NUL passwd, as an initial
                // response (RFC 4954 §4).
                let token = b64(&format!("\0{user}\0{pass}"));
                self.command(format!("AUTH PLAIN {token}\r\n").as_bytes(), 235, "AUTH")?;
            }
            AuthMechanism::Login => {
                // No initial response: Outlook waits for the `Username:`
                // challenge, then the `Password:` one.
                self.command(b"AUTH LOGIN\r\n", 334, "AUTH LOGIN")?;
                self.command(
                    format!("{}\r\n", b64(user)).as_bytes(),
                    334,
                    "AUTH LOGIN user",
                )?;
                self.command(
                    format!("{}\r\n", b64(pass)).as_bytes(),
                    235,
                    "AUTH LOGIN password",
                )?;
            }
        }
        Ok(())
    }

    fn ehlo(&mut self, opts: &Options) -> Result<Extensions, LoadgenError> {
        let reply = self.command(format!("EHLO {}\r\n", opts.helo).as_bytes(), 250, "EHLO")?;
        Ok(Extensions::from_reply(&reply))
    }

    /// Wraps the TCP stream in TLS and completes the handshake before any SMTP.
    fn start_tls(self, shared: &LoadShared) -> Result<LoadConnection, LoadgenError> {
        let ClientStream::Plain(mut tcp) = self.stream else {
            return Err(LoadgenError::Protocol("TLS requested twice".into()));
        };
        let config = shared
            .tls
            .clone()
            .ok_or(LoadgenError::Protocol("no TLS configuration".into()))?;
        let name = match &shared.opts.sni {
            Some(sni) => ServerName::try_from(sni.clone())
                .map_err(|_| LoadgenError::Protocol(format!("bad server name {sni:?}")))?,
            None => ServerName::IpAddress(shared.opts.server.ip().into()),
        };
        let mut tls = ClientConnection::new(config, name).map_err(LoadgenError::Tls)?;
        let mut rounds = 0;
        while tls.is_handshaking() {
            rounds += 1;
            if rounds > MAX_HANDSHAKE_ROUNDS {
                return Err(LoadgenError::Protocol(
                    "TLS handshake does not finish".into(),
                ));
            }
            arm(&tcp, self.deadline)?;
            tls.complete_io(&mut tcp)
                .map_err(|source| LoadgenError::Io {
                    during: "TLS handshake",
                    source,
                })?;
        }
        let tls_resumed = tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Ok(LoadConnection {
            stream: ClientStream::Tls(Box::new(StreamOwned::new(tls, tcp))),
            armed_at: None,
            tls_resumed,
            ..self
        })
    }

    /// Sends one message; returns the time from MAIL sent to the final reply.
    fn send_message(&mut self, shared: &LoadShared) -> Result<Duration, LoadgenError> {
        let opts = &shared.opts;
        self.out.clear();
        let _ = write!(self.out, "MAIL FROM:<{}>\r\n", opts.from);
        let started = Instant::now();
        if self.pipelining {
            // RFC 2920 §3.1: MAIL, RCPT and DATA may go in one group; DATA ends it.
            for i in 0..opts.recipients {
                push_rcpt(&mut self.out, &opts.to, i);
            }
            self.out.extend_from_slice(b"DATA\r\n");
            self.send_out()?;
            // Read every reply of the group, even after a failure, to stay in step.
            let mut first_error = expect_code(self.read_reply()?, 250, "MAIL");
            for _ in 0..opts.recipients {
                let r = expect_code(self.read_reply()?, 250, "RCPT");
                first_error = first_error.and(r);
            }
            let data = self.read_reply()?;
            if data.code != 354 {
                first_error?;
                return Err(rejected("DATA", data));
            }
            self.write_all(&shared.wire)?;
            let r = expect_code(self.read_reply()?, 250, "end of data");
            first_error.and(r)?;
        } else {
            self.send_out()?;
            self.expect(250, "MAIL")?;
            for i in 0..opts.recipients {
                self.out.clear();
                push_rcpt(&mut self.out, &opts.to, i);
                self.send_out()?;
                self.expect(250, "RCPT")?;
            }
            self.command(b"DATA\r\n", 354, "DATA")?;
            self.write_all(&shared.wire)?;
            self.expect(250, "end of data")?;
        }
        Ok(started.elapsed())
    }

    /// Sends a command and expects `code`.
    fn command(
        &mut self,
        line: &[u8],
        code: u16,
        during: &'static str,
    ) -> Result<Reply, LoadgenError> {
        self.write_all(line)?;
        self.expect(code, during)
    }

    fn expect(&mut self, code: u16, during: &'static str) -> Result<Reply, LoadgenError> {
        let reply = self.read_reply()?;
        expect_code(reply, code, during)
    }

    fn send_out(&mut self) -> Result<(), LoadgenError> {
        let out = std::mem::take(&mut self.out);
        let result = self.write_all(&out);
        self.out = out;
        result
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LoadgenError> {
        self.rearm()?;
        let io = |source| LoadgenError::Io {
            during: "write",
            source,
        };
        self.stream.write_all(bytes).map_err(io)?;
        self.stream.flush().map_err(io)
    }

    fn read_reply(&mut self) -> Result<Reply, LoadgenError> {
        // Bounded: each pass reads at least one byte or fails, the reader
        // holds at most one reply (MAX_REPLY_LINES lines of MAX_REPLY_LINE),
        // and the socket timeout ends at the deadline.
        loop {
            if let Some(reply) = self.replies.next_reply().map_err(LoadgenError::Reply)? {
                return Ok(reply);
            }
            self.rearm()?;
            let n = match self.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    return Err(LoadgenError::Protocol(
                        "server closed the connection".into(),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if crate::net::is_timeout(&e) => return Err(LoadgenError::Deadline),
                Err(source) => {
                    return Err(LoadgenError::Io {
                        during: "read",
                        source,
                    })
                }
            };
            self.replies.push(&self.read_buf[..n]);
        }
    }

    /// Keeps the socket timeouts pointing at the deadline without a system call per read.
    fn rearm(&mut self) -> Result<(), LoadgenError> {
        let now = Instant::now();
        if self
            .armed_at
            .is_some_and(|at| now.duration_since(at) < REARM_INTERVAL)
        {
            return Ok(());
        }
        arm(self.stream.tcp(), self.deadline)?;
        self.armed_at = Some(now);
        Ok(())
    }
}

/// A latency in whole microseconds.
fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)
}

/// Sets read and write timeouts so a blocking call ends by the deadline.
fn arm(tcp: &TcpStream, deadline: Instant) -> Result<(), LoadgenError> {
    let remaining = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(LoadgenError::Deadline)?;
    let io = |source| LoadgenError::Io {
        during: "setsockopt",
        source,
    };
    tcp.set_read_timeout(Some(remaining)).map_err(io)?;
    tcp.set_write_timeout(Some(remaining)).map_err(io)
}

/// Recipient `i`: the first is `to` itself, the others `local+i@domain` so each is distinct.
fn push_rcpt(out: &mut Vec<u8>, to: &str, i: usize) {
    let _ = match (i, to.rsplit_once('@')) {
        (0, _) | (_, None) => write!(out, "RCPT TO:<{to}>\r\n"),
        (i, Some((local, domain))) => write!(out, "RCPT TO:<{local}+{i}@{domain}>\r\n"),
    };
}

fn expect_code(reply: Reply, code: u16, during: &'static str) -> Result<Reply, LoadgenError> {
    if reply.code == code {
        Ok(reply)
    } else {
        Err(rejected(during, reply))
    }
}

fn rejected(during: &'static str, reply: Reply) -> LoadgenError {
    LoadgenError::Rejected { during, reply }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        let mut out = Vec::new();
        for i in 0..3 {
            push_rcpt(&mut out, "rcpt@example.net", i);
        }
        assert_eq!(
            out,
            b"RCPT TO:<rcpt@example.net>\r\nRCPT TO:<rcpt+1@example.net>\r\nRCPT TO:<rcpt+2@example.net>\r\n"
        );
    }
}
