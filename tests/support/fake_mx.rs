//! `FakeMx`: a scripted receiving SMTP server on 127.0.0.1 port 0 for tests
//! of the outbound side (delivery transport, the queue manager, `outpost
//! bench`, `outpost check`). Each connection is served on its own thread: a greeting, an EHLO
//! reply built from the offered extensions, optional STARTTLS (rustls) and
//! AUTH PLAIN, a scripted reply per command, and a record of what the client
//! sent. Replies are the same for every client unless the script says
//! otherwise; the client's protocol mistakes are recorded, not panicked on.
//! It counts the connections open at once (their peak), can answer slowly,
//! and can drop a connection that carried some messages (as a peer that
//! closes an idle connection does).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::READ_TIMEOUT;

/// The verb whose scripted reply answers the final dot of a message.
pub const END_OF_DATA: &str = ".";

/// Computes a reply from the connection's number (0-based, in accept order)
/// and the number of messages that connection carried before.
type ReplyFn = Arc<dyn Fn(usize, usize) -> String + Send + Sync>;

/// What a [`FakeMx`] says and offers; build with the methods, then
/// [`MxScript::start`].
#[derive(Clone)]
pub struct MxScript {
    greeting: Vec<u8>,
    name: String,
    keywords: Vec<String>,
    tls: Option<Arc<ServerConfig>>,
    auth: Option<String>,
    replies: HashMap<String, ReplyFn>,
    pauses: HashMap<String, Duration>,
    hang_up_after: Option<usize>,
}

impl Default for MxScript {
    fn default() -> MxScript {
        MxScript::new()
    }
}

impl MxScript {
    /// Greets with `220 rx.test ESMTP`, offers `PIPELINING` and `8BITMIME`,
    /// and accepts every command.
    pub fn new() -> MxScript {
        MxScript {
            greeting: b"220 rx.test ESMTP\r\n".to_vec(),
            name: "rx.test".into(),
            keywords: vec!["PIPELINING".into(), "8BITMIME".into()],
            tls: None,
            auth: None,
            replies: HashMap::new(),
            pauses: HashMap::new(),
            hang_up_after: None,
        }
    }

    /// Sends these bytes first instead of the 220 (another protocol's banner).
    pub fn greeting(mut self, bytes: &[u8]) -> MxScript {
        self.greeting = bytes.to_vec();
        self
    }

    /// The EHLO keywords after STARTTLS and AUTH, in order.
    pub fn keywords(mut self, keywords: &[&str]) -> MxScript {
        self.keywords = keywords.iter().map(|k| k.to_string()).collect();
        self
    }

    /// Offers STARTTLS (until TLS is on) with this certificate.
    pub fn starttls(mut self, config: Arc<ServerConfig>) -> MxScript {
        self.tls = Some(config);
        self
    }

    /// Offers `AUTH PLAIN LOGIN` (after TLS when STARTTLS is offered) and
    /// accepts AUTH PLAIN for `user` and `password`, under TLS only when
    /// STARTTLS is offered.
    pub fn auth(mut self, user: &str, password: &str) -> MxScript {
        self.auth = Some(format!("\0{user}\0{password}"));
        self
    }

    /// Answers `verb` (`MAIL`, `RCPT`, `DATA`, [`END_OF_DATA`] …) with
    /// `reply` (without the final CRLF) on every connection.
    pub fn reply(self, verb: &str, reply: &str) -> MxScript {
        let reply = reply.to_string();
        self.reply_per_connection(verb, move |_| reply.clone())
    }

    /// Answers `verb` with what `reply` computes from the connection's
    /// number (0-based, in accept order).
    pub fn reply_per_connection(
        self,
        verb: &str,
        reply: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> MxScript {
        self.reply_per_transaction(verb, move |connection, _| reply(connection))
    }

    /// Answers `verb` with what `reply` computes from the connection's
    /// number and how many messages that connection carried before.
    pub fn reply_per_transaction(
        mut self,
        verb: &str,
        reply: impl Fn(usize, usize) -> String + Send + Sync + 'static,
    ) -> MxScript {
        self.replies
            .insert(verb.to_ascii_uppercase(), Arc::new(reply));
        self
    }

    /// Waits this long before answering `verb` (a slow peer, so that
    /// deliveries overlap).
    pub fn pause(mut self, verb: &str, wait: Duration) -> MxScript {
        self.pauses.insert(verb.to_ascii_uppercase(), wait);
        self
    }

    /// After `messages` messages on a connection, closes it without a word
    /// when the next command arrives (a peer that dropped a connection
    /// the client kept idle).
    pub fn hang_up_after(mut self, messages: usize) -> MxScript {
        self.hang_up_after = Some(messages);
        self
    }

    /// Listens on 127.0.0.1 port 0 and serves until dropped.
    pub fn start(self) -> FakeMx {
        self.start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Listens on `addr` (e.g. `[::1]:PORT`) and serves until dropped.
    pub fn start_on(self, addr: SocketAddr) -> FakeMx {
        FakeMx::start(self, addr)
    }
}

/// What one connection saw, recorded when it ended.
#[derive(Debug, Clone, Default)]
pub struct MxSession {
    /// Every byte the client sent (commands and message data as sent).
    pub transcript: Vec<u8>,
    /// Each message after dot-unstuffing, CRLF line ends kept.
    pub messages: Vec<Vec<u8>>,
    /// The decoded AUTH PLAIN responses.
    pub auth: Vec<String>,
    /// AUTH PLAIN succeeded.
    pub authenticated: bool,
    /// STARTTLS was done.
    pub tls: bool,
    /// MAIL arrived with RCPT and DATA already behind it (pipelined).
    pub pipelined: bool,
    /// What the client did wrong (bare LF, pipelining after STARTTLS, …).
    pub mistakes: Vec<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

impl MxSession {
    /// The transcript as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.transcript).into_owned()
    }
}

/// A running scripted SMTP receiver; stops accepting when dropped.
pub struct FakeMx {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Open now, and the most open at once.
    open: Arc<Mutex<(usize, usize)>>,
    sessions: Arc<Mutex<Vec<MxSession>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeMx {
    fn start(script: MxScript, addr: SocketAddr) -> FakeMx {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Mutex::new((0, 0)));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (connections, sessions, stop, open) = (
                connections.clone(),
                sessions.clone(),
                stop.clone(),
                open.clone(),
            );
            let script = Arc::new(script);
            std::thread::spawn(move || {
                // Polls: a blocking accept could not see `stop`.
                while !stop.load(Ordering::Relaxed) {
                    let Ok((tcp, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let number = connections.fetch_add(1, Ordering::Relaxed);
                    {
                        let mut open = open.lock().unwrap();
                        open.0 += 1;
                        open.1 = open.1.max(open.0);
                    }
                    let (script, sessions, open) = (script.clone(), sessions.clone(), open.clone());
                    std::thread::spawn(move || {
                        let session = serve(tcp, number, &script);
                        sessions.lock().unwrap().push(session);
                        open.lock().unwrap().0 -= 1;
                    });
                }
            })
        };
        FakeMx {
            addr,
            connections,
            open,
            sessions,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The most connections that were open at once.
    pub fn peak_connections(&self) -> usize {
        self.open.lock().unwrap().1
    }

    /// The sessions that have ended, in the order they ended.
    pub fn sessions(&self) -> Vec<MxSession> {
        self.sessions.lock().unwrap().clone()
    }

    /// Every message received, in the order the sessions ended.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.sessions()
            .into_iter()
            .flat_map(|s| s.messages)
            .collect()
    }

    /// Every mistake a client made.
    pub fn mistakes(&self) -> Vec<String> {
        self.sessions()
            .into_iter()
            .flat_map(|s| s.mistakes)
            .collect()
    }

    /// Waits until `n` sessions have ended (a session is recorded after the
    /// client's QUIT or close); panics after [`READ_TIMEOUT`].
    pub fn wait_for_sessions(&self, n: usize) -> Vec<MxSession> {
        let end = Instant::now() + READ_TIMEOUT;
        loop {
            let sessions = self.sessions();
            if sessions.len() >= n {
                return sessions;
            }
            assert!(
                Instant::now() < end,
                "only {} of {n} sessions ended",
                sessions.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FakeMx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A self-signed certificate for `names` as a rustls server configuration
/// (ring provider), for [`MxScript::starttls`].
pub fn self_signed_tls(names: &[&str]) -> Arc<ServerConfig> {
    self_signed_tls_and_pem(names).0
}

/// Like [`self_signed_tls`], also returning the certificate's PEM for a
/// client that is to trust it.
pub fn self_signed_tls_and_pem(names: &[&str]) -> (Arc<ServerConfig>, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::generate_simple_self_signed(names).unwrap();
    let pem = key.cert.pem();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    (Arc::new(config), pem)
}

/// The connection, before or after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }
}

/// One connection's reader: whole lines out of what arrived.
struct Lines {
    stream: Stream,
    buffer: Vec<u8>,
}

impl Lines {
    /// The next line with its line end; `None` when the client closed or
    /// went silent.
    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(lf) = self.buffer.iter().position(|&b| b == b'\n') {
                return Some(self.buffer.drain(..=lf).collect());
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Serves one connection to its end.
fn serve(tcp: TcpStream, number: usize, script: &MxScript) -> MxSession {
    let mut seen = MxSession {
        peer: tcp.peer_addr().ok(),
        ..MxSession::default()
    };
    tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut lines = Lines {
        stream: Stream::Plain(tcp),
        buffer: Vec::new(),
    };
    // Messages this connection carried so far.
    let carried = std::cell::Cell::new(0);
    let reply_for = |verb: &str, default: &str| -> Vec<u8> {
        let text = match script.replies.get(verb) {
            Some(reply) => reply(number, carried.get()),
            None => default.to_string(),
        };
        if let Some(wait) = script.pauses.get(verb) {
            std::thread::sleep(*wait);
        }
        format!("{text}\r\n").into_bytes()
    };
    let mut mail = false;
    let mut accepted = 0;
    if lines.stream.send(&script.greeting).is_err() {
        return seen;
    }
    while let Some(line) = lines.next() {
        seen.transcript.extend_from_slice(&line);
        if script.hang_up_after == Some(seen.messages.len()) {
            break;
        }
        if !line.ends_with(b"\r\n") {
            seen.mistakes
                .push(format!("bare LF in {:?}", String::from_utf8_lossy(&line)));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("").to_string();
        let reply = match verb.as_str() {
            "EHLO" => ehlo_reply(script, &seen),
            "HELO" => reply_for("HELO", &format!("250 {}", script.name)),
            "STARTTLS" => match (&script.tls, &lines.stream) {
                (Some(config), Stream::Plain(tcp)) => {
                    let (config, tcp) = (config.clone(), tcp.try_clone().unwrap());
                    if !lines.buffer.is_empty() {
                        // RFC 3207 §4.2: nothing sent before TLS may count.
                        seen.mistakes.push("pipelined after STARTTLS".into());
                        lines.buffer.clear();
                    }
                    if lines
                        .stream
                        .send(b"220 2.0.0 Ready to start TLS\r\n")
                        .is_err()
                    {
                        break;
                    }
                    let connection = ServerConnection::new(config).unwrap();
                    lines.stream = Stream::Tls(Box::new(StreamOwned::new(connection, tcp)));
                    seen.tls = true;
                    mail = false;
                    accepted = 0;
                    continue;
                }
                _ => {
                    seen.mistakes.push("STARTTLS not offered".into());
                    reply_for("STARTTLS", "454 4.7.0 TLS not available")
                }
            },
            "AUTH" => {
                let response = text.split(' ').nth(2).unwrap_or("");
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(response)
                    .unwrap_or_default();
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                let allowed = script.tls.is_none() || seen.tls;
                let good = upper.starts_with("AUTH PLAIN ")
                    && allowed
                    && script.auth.as_deref() == Some(decoded.as_str());
                seen.auth.push(decoded);
                seen.authenticated |= good;
                if good {
                    reply_for("AUTH", "235 2.7.0 Authentication successful")
                } else {
                    b"535 5.7.8 Authentication credentials invalid\r\n".to_vec()
                }
            }
            "MAIL" => {
                // MAIL, RCPT and DATA arrived together: the client pipelined.
                if String::from_utf8_lossy(&lines.buffer).contains("DATA\r\n") {
                    seen.pipelined = true;
                }
                let reply = reply_for("MAIL", "250 2.1.0 Ok");
                mail = reply.starts_with(b"2");
                accepted = 0;
                reply
            }
            "RCPT" => {
                let reply = reply_for("RCPT", "250 2.1.5 Ok");
                accepted += usize::from(reply.starts_with(b"2"));
                reply
            }
            "DATA" if !mail => {
                seen.mistakes.push("DATA without MAIL".into());
                b"503 5.5.1 Send MAIL first\r\n".to_vec()
            }
            "DATA" if accepted == 0 => b"554 5.5.1 No valid recipients\r\n".to_vec(),
            "DATA" => {
                let go = reply_for("DATA", "354 End data with <CR><LF>.<CR><LF>");
                if lines.stream.send(&go).is_err() {
                    break;
                }
                if !go.starts_with(b"354") {
                    continue;
                }
                let Some(message) = read_message(&mut lines, &mut seen) else {
                    break;
                };
                let reply = reply_for(END_OF_DATA, "250 2.0.0 Ok: queued");
                seen.messages.push(message);
                carried.set(seen.messages.len());
                mail = false;
                accepted = 0;
                reply
            }
            "RSET" => {
                mail = false;
                accepted = 0;
                reply_for("RSET", "250 2.0.0 Ok")
            }
            "NOOP" => reply_for("NOOP", "250 2.0.0 Ok"),
            "QUIT" => {
                let _ = lines.stream.send(&reply_for("QUIT", "221 2.0.0 Bye"));
                break;
            }
            _ => {
                seen.mistakes.push(format!("unexpected command {text:?}"));
                b"500 5.5.1 What?\r\n".to_vec()
            }
        };
        if lines.stream.send(&reply).is_err() {
            break;
        }
    }
    seen
}

/// The EHLO reply: the name, then STARTTLS (before TLS), AUTH (when it
/// may be used), then the script's keywords.
fn ehlo_reply(script: &MxScript, seen: &MxSession) -> Vec<u8> {
    let mut lines = vec![script.name.clone()];
    if script.tls.is_some() && !seen.tls {
        lines.push("STARTTLS".into());
    }
    if script.auth.is_some() && (seen.tls || script.tls.is_none()) {
        lines.push("AUTH PLAIN LOGIN".into());
    }
    lines.extend(script.keywords.iter().cloned());
    let last = lines.len() - 1;
    let mut reply = String::new();
    for (i, line) in lines.iter().enumerate() {
        let separator = if i == last { ' ' } else { '-' };
        reply.push_str(&format!("250{separator}{line}\r\n"));
    }
    reply.into_bytes()
}

/// Reads message data up to the final dot; returns it dot-unstuffed (RFC
/// 5321 §4.5.2), or `None` when the client went away first.
fn read_message(lines: &mut Lines, seen: &mut MxSession) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    loop {
        let line = lines.next()?;
        seen.transcript.extend_from_slice(&line);
        if line == b".\r\n" {
            return Some(message);
        }
        if !line.ends_with(b"\r\n") {
            seen.mistakes
                .push(format!("bare LF in {:?}", String::from_utf8_lossy(&line)));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        message.extend_from_slice(unstuffed);
    }
}
