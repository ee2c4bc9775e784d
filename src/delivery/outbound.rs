//! The blocking driver that runs one `proto::client` session over a std
//! `TcpStream`, with the RFC 5321 §4.5.3.2 timeouts the client asks for and
//! a rustls client connection after STARTTLS (or from the start, for a
//! smarthost with implicit TLS).
//!
//! Outbound TLS is opportunistic by default (RFC 7435): a certificate that
//! does not verify is accepted and logged, since refusing it would only push
//! the message to plaintext. `verify` mode checks it against webpki-roots
//! plus an optional extra CA file (smarthosts, `--outbound-tls verify`).
//!
//! [`OpenConnections`] tracks the sockets in use so that a stopping server
//! can close them rather than wait out a silent peer, and connects give up
//! when it does (a host that drops packets, as where port 25 is blocked,
//! would otherwise hold the stop for the whole connect timeout).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use parking_lot::Mutex;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::net::is_timeout;
use crate::proto::client::{
    Client, ClientAction, ClientParams, Extensions, Report, SessionEnd, TIMEOUT_DATA_BLOCK,
};
use crate::proto::dot::Stuffer;
use crate::tls::{client_config, trusted_roots, CertCheck, ClientStream};

/// Connecting to one address gives up after this (Postfix's
/// `smtp_connect_timeout` is 30s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A connect in progress checks this often whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// The TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The message body is stuffed and written in pieces of this size, so a
/// session never holds a stuffed copy of a large message.
const BODY_PIECE: usize = 64 * 1024;

/// How to treat the peer's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertPolicy {
    /// Accept any certificate; log the ones that do not verify.
    Opportunistic,
    /// Require a certificate valid for the host name.
    Verify,
}

/// Errors before an outbound session could start (connect, TLS).
#[derive(Debug)]
pub enum OutboundError {
    /// The TCP connection could not be made (try the next address).
    Connect {
        /// The address that could not be reached.
        addr: SocketAddr,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The host name is not usable as a TLS server name.
    BadServerName(String),
    /// The TLS configuration could not be built (bad CA file, …).
    TlsConfig(String),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Connect { addr, source } => write!(f, "connect to {addr}: {source}"),
            OutboundError::BadServerName(n) => write!(f, "not a valid TLS server name: {n:?}"),
            OutboundError::TlsConfig(why) => write!(f, "TLS client configuration: {why}"),
        }
    }
}

impl std::error::Error for OutboundError {}

/// The rustls client configuration for outbound mail: the system's root
/// certificates (webpki-roots) plus those in `extra_ca` (PEM), checked or
/// only logged according to `policy`.
pub fn tls_config(
    policy: CertPolicy,
    extra_ca: Option<&Path>,
) -> Result<Arc<ClientConfig>, OutboundError> {
    let roots = trusted_roots(extra_ca).map_err(|e| OutboundError::TlsConfig(e.to_string()))?;
    let check = match policy {
        CertPolicy::Verify => CertCheck::Verify,
        CertPolicy::Opportunistic => CertCheck::Observe(Box::new(log_unverified)),
    };
    let config = client_config(Arc::new(roots), check)
        .map_err(|e| OutboundError::TlsConfig(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Opportunistic TLS takes a certificate that does not verify; the log
/// says so.
fn log_unverified(server: &ServerName<'_>, verdict: Result<(), rustls::Error>) {
    if let Err(e) = verdict {
        log::info!(
            "TLS to {}: certificate not verified ({e}); using it anyway (opportunistic TLS)",
            server.to_str()
        );
    }
}

/// Where to connect and how.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The local address to connect from (`--outbound-address`); `None`:
    /// the system chooses.
    pub source: Option<IpAddr>,
    /// The host name, for SNI and certificate checks.
    pub host: String,
    /// TLS from the first byte (a smarthost on port 465).
    pub implicit_tls: bool,
}

/// The result of one session with one peer.
#[derive(Debug)]
pub struct Attempt {
    /// The client's results.
    pub report: Report,
    /// The negotiated TLS version (e.g. `TLSv1.3`), for the log.
    pub tls_version: Option<String>,
}

/// The outbound connections in progress. A stopping server closes them:
/// otherwise it would wait out the RFC 5321 §4.5.3.2 timeouts (up to ten
/// minutes) of a peer that has gone silent, and a service manager would
/// SIGKILL it first.
#[derive(Debug, Default)]
pub struct OpenConnections {
    state: Mutex<OpenState>,
}

#[derive(Debug, Default)]
struct OpenState {
    sockets: HashMap<u64, TcpStream>,
    next_key: u64,
    closed: bool,
}

impl OpenConnections {
    /// Shuts down every connection in progress, and each one registered
    /// from now on, so that their blocked reads and writes return at once.
    pub fn close_all(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        for (_, socket) in state.sockets.drain() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// The server is stopping: no new connections.
    fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Tracks `tcp` until the returned guard is dropped.
    fn register(&self, tcp: &TcpStream) -> Registration<'_> {
        let mut state = self.state.lock();
        let Ok(clone) = tcp.try_clone() else {
            // Without a second handle the connection just runs to its
            // timeouts, as it would without tracking.
            return Registration {
                open: self,
                key: None,
            };
        };
        if state.closed {
            let _ = clone.shutdown(Shutdown::Both);
            return Registration {
                open: self,
                key: None,
            };
        }
        let key = state.next_key;
        state.next_key += 1;
        state.sockets.insert(key, clone);
        Registration {
            open: self,
            key: Some(key),
        }
    }
}

/// Connects to `addr` from `source` (if given) within `timeout` (a
/// blocking socket, like `TcpStream::connect_timeout`), giving up early
/// once `open` is closed.
fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
    open: &OpenConnections,
) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let mut socket = start_connect(addr, source)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut socket, Token(0), Interest::WRITABLE)?;
    let mut events = Events::with_capacity(1);
    loop {
        if open.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the server is stopping",
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ));
        }
        match poll.poll(&mut events, Some(left.min(STOP_CHECK))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if events.is_empty() {
            continue;
        }
        // Writable: connected, or failed (mio's recipe for a non-blocking
        // connect: the pending error first, then whether there is a peer).
        if let Some(e) = socket.take_error()? {
            return Err(e);
        }
        match socket.peer_addr() {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
            Err(e) => return Err(e),
        }
    }
    poll.registry().deregister(&mut socket)?;
    let tcp = TcpStream::from(socket);
    tcp.set_nonblocking(false)?;
    Ok(tcp)
}

/// A non-blocking connect to `addr` under way, from `source` if given.
fn start_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let Some(source) = source else {
        return mio::net::TcpStream::connect(addr);
    };
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    rustix::net::bind(&socket, &SocketAddr::new(source, 0))?;
    match rustix::net::connect(&socket, &addr) {
        Ok(()) | Err(Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(mio::net::TcpStream::from_std(TcpStream::from(socket)))
}

/// Removes a connection from [`OpenConnections`] when dropped.
struct Registration<'a> {
    open: &'a OpenConnections,
    key: Option<u64>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.open.state.lock().sockets.remove(&key);
        }
    }
}

/// Connects to `peer` and runs `client` to its end, sending the message
/// read from `body` when the client asks for it (the message is read in
/// pieces, never whole). An error only when no connection could be made;
/// everything after that is in the report.
pub fn run(
    peer: &Peer,
    client: Client,
    mut body: impl Read,
    tls: &Arc<ClientConfig>,
) -> Result<Attempt, OutboundError> {
    let server_name = server_name(peer)?;
    let stream = open_stream(peer, &OpenConnections::default())?;
    let ended = converse(
        stream,
        peer.implicit_tls,
        client,
        &mut body,
        tls,
        &server_name,
    );
    Ok(ended.attempt)
}

/// An SMTP session kept open after a transaction that delivered to every
/// recipient, ready for the next MAIL (`delivery::pool` keeps it).
pub struct Session {
    stream: ClientStream,
    extensions: Extensions,
    /// Transactions it has carried.
    uses: u32,
    opened: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.stream.tcp().peer_addr().ok())
            .field("uses", &self.uses)
            .finish()
    }
}

/// How long the QUIT of an idle session may take to write.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

impl Session {
    /// Transactions it has carried.
    pub fn uses(&self) -> u32 {
        self.uses
    }

    /// How long ago its connection was opened.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Whether the peer has neither closed the connection nor said
    /// anything since (an idle peer that times out sends 421 and closes):
    /// a read would block.
    fn is_quiet(&self) -> bool {
        let tcp = self.stream.tcp();
        if tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let quiet =
            matches!(tcp.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        tcp.set_nonblocking(false).is_ok() && quiet
    }

    /// Ends the session: QUIT without waiting for the 221 (like Postfix),
    /// then the TLS close_notify, then the socket is closed.
    pub fn quit(mut self) {
        let _ = self.stream.tcp().set_write_timeout(Some(QUIT_TIMEOUT));
        let _ = self.stream.write_all(b"QUIT\r\n");
        if let ClientStream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
        }
        let _ = self.stream.flush();
    }
}

/// The result of [`run_session`].
#[derive(Debug)]
pub struct SessionRun {
    /// What the session did.
    pub attempt: Attempt,
    /// The connection, ready for another transaction ([`Report::held`]).
    pub kept: Option<Session>,
    /// Which transaction of its connection this was (1: a new one).
    pub conn_use: u32,
}

/// Runs one transaction with `params` on `cached` (a session kept from an
/// earlier one, see [`Session`]) or, when there is none or the peer closed
/// it meanwhile, on a new connection to `peer`. A cached session that
/// broke before the peer answered anything, or that the peer answered
/// only with 421, did not deliver the message, which goes on a new
/// connection at once; that is no failure.
/// After a transaction that delivered to every recipient the session is
/// returned in [`SessionRun::kept`], without QUIT.
pub fn run_session(
    peer: &Peer,
    params: ClientParams,
    cached: Option<Session>,
    mut body: impl Read,
    tls: &Arc<ClientConfig>,
    open: &OpenConnections,
) -> Result<SessionRun, OutboundError> {
    let server_name = server_name(peer)?;
    if let Some(session) = cached.filter(Session::is_quiet) {
        let tls_active = matches!(session.stream, ClientStream::Tls(_));
        let client = Client::resume(params.clone(), session.extensions, tls_active);
        let registration = open.register(session.stream.tcp());
        let ended = converse(
            session.stream,
            false,
            client.keeping_session(),
            &mut body,
            tls,
            &server_name,
        );
        drop(registration);
        if !closed_meanwhile(&ended.attempt.report) {
            return Ok(ended.into_run(session.uses + 1, session.opened));
        }
        log::debug!(
            "{}: the peer closed a kept connection; connecting again",
            peer.addr
        );
    }
    let stream = open_stream(peer, open)?;
    let opened = Instant::now();
    let _registration = open.register(stream.tcp());
    let client = Client::new(params).keeping_session();
    let ended = converse(
        stream,
        peer.implicit_tls,
        client,
        &mut body,
        tls,
        &server_name,
    );
    Ok(ended.into_run(1, opened))
}

/// Whether a transaction on a kept connection failed only because the
/// peer had closed it while it was idle: it broke before any answer, or
/// MAIL got 421 (RFC 5321 §3.8: the service is closing the channel, as a
/// peer says on its idle timeout). The message was not taken.
fn closed_meanwhile(report: &Report) -> bool {
    match report.first_code {
        None => report.end == SessionEnd::ConnectionLost,
        Some(code) => code == 421,
    }
}

/// The peer's host name as a TLS server name.
fn server_name(peer: &Peer) -> Result<ServerName<'static>, OutboundError> {
    ServerName::try_from(peer.host.trim_end_matches('.').to_string())
        .map_err(|_| OutboundError::BadServerName(peer.host.clone()))
}

/// A new connection to `peer` (plain: [`converse`] starts implicit TLS).
fn open_stream(peer: &Peer, open: &OpenConnections) -> Result<ClientStream, OutboundError> {
    let tcp = connect(peer.addr, peer.source, CONNECT_TIMEOUT, open).map_err(|source| {
        OutboundError::Connect {
            addr: peer.addr,
            source,
        }
    })?;
    let _ = tcp.set_nodelay(true);
    Ok(ClientStream::Plain(tcp))
}

/// How a conversation ended: the attempt, and the connection when the
/// client held it for another transaction.
struct Ended {
    attempt: Attempt,
    stream: Option<ClientStream>,
}

impl Ended {
    fn into_run(self, conn_use: u32, opened: Instant) -> SessionRun {
        let extensions = self.attempt.report.extensions.clone();
        let kept = self.stream.map(|stream| Session {
            stream,
            extensions,
            uses: conn_use,
            opened,
        });
        SessionRun {
            attempt: self.attempt,
            kept,
            conn_use,
        }
    }
}

/// Runs `client` over `stream` to its end, sending the message read from
/// `body` when the client asks for it (in pieces, never whole). With
/// `implicit_tls` (a new connection to a port-465 smarthost) the TLS
/// handshake comes first.
fn converse(
    mut stream: ClientStream,
    implicit_tls: bool,
    mut client: Client,
    body: &mut impl Read,
    tls: &Arc<ClientConfig>,
    server_name: &ServerName<'static>,
) -> Ended {
    let lost = |mut client: Client, why: String, stream: Option<&ClientStream>| {
        client.connection_lost(&why);
        let tls_version = stream.and_then(|s| s.tls_version()).map(str::to_string);
        Ended {
            attempt: Attempt {
                report: client.finish(),
                tls_version,
            },
            stream: None,
        }
    };
    if implicit_tls {
        match start_tls(stream, tls, server_name) {
            Ok(s) => stream = s,
            Err(e) => return lost(client, e.to_string(), None),
        }
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let mut action = client.begin(&mut out);
    loop {
        // Write what the client wrote, and do what it asked.
        loop {
            if let Err(e) = send(&mut stream, &mut out) {
                return lost(client, describe(&e), Some(&stream));
            }
            match action {
                None => break,
                Some(ClientAction::SendBody) => {
                    if let Err(e) = send_body(&mut stream, body, &mut out) {
                        return lost(client, describe(&e), Some(&stream));
                    }
                    action = client.body_sent(&mut out);
                }
                Some(ClientAction::Done) => {
                    let tls_version = stream.tls_version().map(str::to_string);
                    let report = client.finish();
                    let stream = if report.held {
                        Some(stream)
                    } else {
                        if let ClientStream::Tls(s) = &mut stream {
                            s.conn.send_close_notify();
                            let _ = s.flush();
                        }
                        None
                    };
                    return Ended {
                        attempt: Attempt {
                            report,
                            tls_version,
                        },
                        stream,
                    };
                }
                Some(ClientAction::StartTls) => match start_tls(stream, tls, server_name) {
                    Ok(s) => {
                        stream = s;
                        client.tls_started(&mut out);
                        action = None;
                    }
                    Err(e) => return lost(client, e.to_string(), None),
                },
            }
        }
        if let Err(e) = stream.tcp().set_read_timeout(Some(client.reply_timeout())) {
            return lost(client, e.to_string(), Some(&stream));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                let why = "the server closed the connection".to_string();
                return lost(client, why, Some(&stream));
            }
            Ok(n) => n,
            Err(e) => return lost(client, describe(&e), Some(&stream)),
        };
        action = client.receive(&buf[..n], &mut out);
    }
}

fn send(stream: &mut ClientStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // RFC 5321 §4.5.3.2.5: each write of data may take up to 3 minutes.
    stream.tcp().set_write_timeout(Some(TIMEOUT_DATA_BLOCK))?;
    stream.write_all(out)?;
    stream.flush()?;
    out.clear();
    Ok(())
}

/// Writes the message read from `body` dot-stuffed with its end marker, a
/// piece at a time. A message that cannot be read is not ended: the
/// connection is dropped and the attempt fails, never half a message
/// delivered.
fn send_body(stream: &mut ClientStream, body: &mut impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    let mut stuffer = Stuffer::new();
    let mut piece = vec![0; BODY_PIECE];
    loop {
        let n = match body.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io::Error::other(format!("reading the queued message: {e}"))),
        };
        stuffer.push(&piece[..n], out);
        send(stream, out)?;
    }
    stuffer.finish(out);
    send(stream, out)
}

/// Why a TLS session could not be started; the session ends as a lost
/// connection with this text.
#[derive(Debug)]
enum StartTlsError {
    /// STARTTLS was asked for on a connection already encrypted.
    AlreadyTls,
    /// rustls refused to set up the connection.
    Setup(rustls::Error),
    /// The handshake timeouts could not be set on the socket.
    Socket(io::Error),
    /// The handshake failed (certificate, protocol, timeout, reset).
    Handshake(io::Error),
}

impl std::fmt::Display for StartTlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartTlsError::AlreadyTls => write!(f, "STARTTLS inside TLS"),
            StartTlsError::Setup(e) => write!(f, "TLS setup failed: {e}"),
            StartTlsError::Socket(e) => e.fmt(f),
            StartTlsError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl std::error::Error for StartTlsError {}

/// Wraps the plain stream in TLS and completes the handshake.
fn start_tls(
    stream: ClientStream,
    tls: &Arc<ClientConfig>,
    name: &ServerName<'static>,
) -> Result<ClientStream, StartTlsError> {
    let ClientStream::Plain(mut tcp) = stream else {
        return Err(StartTlsError::AlreadyTls);
    };
    let mut conn =
        ClientConnection::new(tls.clone(), name.clone()).map_err(StartTlsError::Setup)?;
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(StartTlsError::Socket)?;
    tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(StartTlsError::Socket)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(StartTlsError::Handshake)?;
    }
    Ok(ClientStream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

fn describe(e: &std::io::Error) -> String {
    if is_timeout(e) {
        return "timed out waiting for the server".to_string();
    }
    e.to_string()
}
