//! One client connection: the socket, the transport (plain or rustls),
//! bounded input and output buffers, and the [`Session`]. A `Conn` belongs
//! to one event loop for its whole life. Nothing here blocks: sockets are
//! non-blocking and slow work (password checks, spooling) is handed to other
//! threads whose answer comes back through the loop's mailbox.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Token;
use rustls::ServerConnection;

use super::limits::{
    CLOSING_FLUSH_TIMEOUT, IDLE_BUFFER, MAX_INPUT, MAX_OUTPUT, MAX_ROUNDS_PER_DISPATCH, READ_CHUNK,
};
use super::mailbox::{Completion, LoopMessage, Notifier};
use super::Shared;
use crate::proto::envelope::EnqueueError;
use crate::proto::reply::{Enhanced, Reply};
use crate::proto::sasl::AuthResult;
use crate::proto::session::{Action, ClientInfo, Role, Session, SessionEvent};
use crate::queue::QueueId;

/// The first byte of a TLS handshake record (RFC 8446 §5.1, content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a connection is served for.
#[derive(Debug)]
pub(crate) enum Work {
    /// The socket may be readable or writable.
    Io,
    /// The greeting delay is over: greet.
    Greet,
    /// The answer to `Action::Authenticate`.
    AuthDone(AuthResult),
    /// The answer to `Action::Enqueue`.
    Enqueued(Result<QueueId, EnqueueError>),
    /// A deadline passed.
    TimedOut,
    /// The server is stopping and the grace period is over.
    Shutdown,
}

impl From<Completion> for Work {
    fn from(completion: Completion) -> Work {
        match completion {
            Completion::Auth(result) => Work::AuthDone(result),
            Completion::Enqueued(result) => Work::Enqueued(result),
        }
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// `--greeting-delay`: waiting to greet; a client that talks is refused.
    GreetingDelay,
    /// A TLS handshake is running (port 465 from the start, or after STARTTLS).
    Handshake,
    /// Exchanging commands and replies.
    Active,
    /// Parked until the authenticator answers.
    AwaitAuth,
    /// Parked until the spool answers.
    AwaitSpool,
    /// Sending the last replies, then closing.
    Closing,
    /// Done; the loop drops it.
    Closed,
}

/// What the deadline that fires for a connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadlineKind {
    /// Time to send the delayed greeting.
    Greet,
    /// The client took too long.
    Timeout,
}

/// One client connection.
pub(crate) struct Conn {
    /// The loop's key for this connection (never reused).
    pub token: Token,
    /// The socket, registered with the loop's poll for both directions.
    pub socket: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's role.
    pub role: Role,
    /// The client is in `--relay-networks`.
    pub trusted: bool,
    /// When it was accepted.
    pub started: Instant,
    /// Last time bytes moved in either direction (for idle timeouts).
    pub last_activity: Instant,
    /// The last dispatch stopped early for fairness; dispatch again.
    pub yielded: bool,
    /// The owning loop's mailbox, where slow operations answer.
    notify: Notifier,
    /// The socket had no more bytes at the last read: skip reading until a
    /// readiness event says new bytes came (edge-triggered epoll reports
    /// every arrival), saving a read that would only say "would block".
    socket_drained: bool,
    state: State,
    tls: Option<Box<ServerConnection>>,
    tls_version: Option<&'static str>,
    /// STARTTLS was accepted: switch to TLS once the 220 is flushed.
    starttls_pending: bool,
    session: Option<Session>,
    input: Vec<u8>,
    output: Vec<u8>,
    bytes_received: u64,
    peer_closed: bool,
}

impl Conn {
    /// A freshly accepted connection: greeted at once on the plaintext
    /// ports (the greeting waits in the output buffer), after the
    /// handshake on port 465, or after `--greeting-delay`.
    pub fn new(
        token: Token,
        socket: TcpStream,
        peer: SocketAddr,
        role: Role,
        notify: Notifier,
        shared: &Shared,
    ) -> Conn {
        let now = Instant::now();
        let trusted = shared.config.is_trusted(peer.ip());
        let mut conn = Conn {
            token,
            socket,
            peer,
            role,
            trusted,
            started: now,
            last_activity: now,
            yielded: false,
            notify,
            socket_drained: false,
            state: State::Active,
            tls: None,
            tls_version: None,
            starttls_pending: false,
            session: None,
            input: Vec::new(),
            output: Vec::new(),
            bytes_received: 0,
            peer_closed: false,
        };
        if role == Role::Submissions {
            conn.begin_tls(shared);
        } else if !shared.config.greeting_delay.is_zero() {
            conn.state = State::GreetingDelay;
        } else {
            conn.greet(shared);
        }
        conn
    }

    /// The state, for the loop's decisions.
    pub fn state(&self) -> State {
        self.state
    }

    /// Replies are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// A readiness event came while the connection was queued or parked: read again before concluding there is nothing.
    pub fn mark_readable(&mut self) {
        self.socket_drained = false;
    }

    /// Waiting for the authenticator or the spool.
    pub fn is_parked(&self) -> bool {
        matches!(self.state, State::AwaitAuth | State::AwaitSpool)
    }

    /// When this connection's current wait ends, and what that means; the
    /// whole-connection limit applies in every state.
    pub fn deadline(&self, shared: &Shared) -> Option<(Instant, DeadlineKind)> {
        let config = &shared.config;
        let whole = (
            self.started + config.connection_timeout,
            DeadlineKind::Timeout,
        );
        let idle = |timeout: Duration| (self.last_activity + timeout, DeadlineKind::Timeout);
        let current = match self.state {
            State::GreetingDelay => {
                Some((self.started + config.greeting_delay, DeadlineKind::Greet))
            }
            State::Handshake => Some(idle(config.tls_handshake_timeout)),
            State::Active => {
                let in_data = self.session.as_ref().is_some_and(Session::in_data);
                Some(idle(if in_data {
                    config.data_timeout
                } else {
                    config.command_timeout
                }))
            }
            State::Closing => Some(idle(CLOSING_FLUSH_TIMEOUT)),
            State::AwaitAuth | State::AwaitSpool | State::Closed => None,
        };
        match current {
            Some(c) if c.0 < whole.0 => Some(c),
            _ => Some(whole),
        }
    }

    /// Marks the connection dead without touching it further (after a
    /// panic while serving it).
    pub fn abandon(&mut self) {
        self.state = State::Closed;
    }

    /// Runs `work`, then moves bytes until the connection waits for the
    /// network, for another thread, or for its turn.
    pub fn service(&mut self, work: Work, shared: &Shared) {
        self.yielded = false;
        match work {
            Work::Io => self.socket_drained = false,
            Work::Greet => {
                if self.state == State::GreetingDelay {
                    self.greet(shared);
                    self.state = State::Active;
                }
            }
            Work::AuthDone(result) => self.on_auth_result(result),
            Work::Enqueued(result) => self.on_enqueued(result),
            Work::TimedOut => self.on_timeout(shared),
            Work::Shutdown => self.on_shutdown(),
        }
        self.log_events(shared);
        self.pump(shared);
        self.release_idle_buffers();
    }

    /// Gives back the memory of empty buffers, so thousands of idle
    /// connections cost little: a busy one gets them again on its next read.
    fn release_idle_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > IDLE_BUFFER {
            self.input = Vec::new();
        }
        if self.output.is_empty() && self.output.capacity() > IDLE_BUFFER {
            self.output = Vec::new();
        }
    }

    fn greet(&mut self, shared: &Shared) {
        let client = ClientInfo {
            ip: self.peer.ip().to_canonical().to_string(),
            trusted: self.trusted,
            tls: self.tls_version.map(str::to_string),
        };
        let mut session = Session::new(
            self.role,
            shared.session_config.clone(),
            shared.directory.clone(),
            client,
        );
        session.greeting(&mut self.output);
        self.session = Some(session);
    }

    fn begin_tls(&mut self, shared: &Shared) {
        match ServerConnection::new(shared.tls.clone()) {
            Ok(mut tls) => {
                tls.set_buffer_limit(Some(MAX_OUTPUT));
                self.tls = Some(Box::new(tls));
                self.state = State::Handshake;
            }
            Err(e) => {
                log::error!("{}: cannot start TLS: {e}", self.describe());
                self.state = State::Closed;
            }
        }
    }

    fn on_auth_result(&mut self, result: AuthResult) {
        if self.state != State::AwaitAuth {
            return;
        }
        self.state = State::Active;
        if let Some(session) = self.session.as_mut() {
            session.auth_result(result, &mut self.output);
        }
        self.close_if_session_closed();
    }

    fn on_enqueued(&mut self, result: Result<QueueId, EnqueueError>) {
        if self.state != State::AwaitSpool {
            return;
        }
        self.state = State::Active;
        if let Some(session) = self.session.as_mut() {
            session.enqueued(
                result.as_ref().map(QueueId::as_str).map_err(|e| *e),
                &mut self.output,
            );
        }
        self.close_if_session_closed();
    }

    fn on_timeout(&mut self, shared: &Shared) {
        let config = &shared.config;
        let reason = match self.state {
            State::Closing | State::Closed => {
                self.state = State::Closed;
                return;
            }
            State::Handshake if self.session.is_none() => {
                log::warn!(
                    "{}: no TLS handshake within {:?} on the implicit-TLS port; a plaintext \
                     client? (use port 587 with STARTTLS, or SSL/TLS in the client)",
                    self.describe(),
                    config.tls_handshake_timeout
                );
                self.state = State::Closed;
                return;
            }
            State::Handshake => {
                // No plaintext reply is possible mid-handshake.
                log::warn!(
                    "{}: TLS handshake after STARTTLS timed out",
                    self.describe()
                );
                self.state = State::Closed;
                return;
            }
            _ if Instant::now() >= self.started + config.connection_timeout => {
                "connection lasted too long"
            }
            _ => "idle too long",
        };
        log::info!("{}: closing: {reason}", self.describe());
        match self.session.as_mut() {
            Some(session) => session.timed_out(&mut self.output),
            None => Reply::new(421, (4, 4, 2), "Timeout, closing connection")
                .and_close()
                .render(&mut self.output),
        }
        self.state = State::Closing;
    }

    fn on_shutdown(&mut self) {
        match self.state {
            State::Closing | State::Closed => {}
            State::Handshake | State::GreetingDelay => self.state = State::Closed,
            State::Active | State::AwaitAuth | State::AwaitSpool => {
                if let Some(session) = self.session.as_mut() {
                    session.shutting_down(&mut self.output);
                }
                self.state = State::Closing;
            }
        }
    }

    fn close_if_session_closed(&mut self) {
        if self.session.as_ref().is_some_and(Session::is_closed) {
            self.state = State::Closing;
        }
    }

    /// `ip:port on role` for log lines (no reverse DNS, ever).
    pub fn describe(&self) -> String {
        format!("{} on {}", self.peer, super::role_name(self.role))
    }

    /// Reads, feeds and writes until nothing moves any more, at most
    /// [`MAX_ROUNDS_PER_DISPATCH`] times.
    fn pump(&mut self, shared: &Shared) {
        for _ in 0..MAX_ROUNDS_PER_DISPATCH {
            let mut progress = false;
            if self.wants_input() {
                progress |= self.read(shared);
            }
            if self.state == State::Handshake {
                progress |= self.check_handshake(shared);
            }
            if self.state == State::Active && !self.starttls_pending {
                progress |= self.feed(shared);
            }
            progress |= self.write(shared);
            if self.peer_closed && !progress {
                let before = self.state;
                match self.state {
                    // The client closed its side; answer what it sent, then go.
                    State::Active => self.state = State::Closing,
                    // Nobody is left to greet or to shake hands with.
                    State::GreetingDelay | State::Handshake => self.state = State::Closed,
                    _ => {}
                }
                progress = self.state != before;
            }
            if self.state == State::Closed || !progress {
                return;
            }
        }
        self.yielded = true;
    }

    fn wants_input(&self) -> bool {
        matches!(
            self.state,
            State::Active | State::Handshake | State::GreetingDelay
        ) && !self.starttls_pending
            && !self.peer_closed
            && !self.socket_drained
            && self.input.len() < MAX_INPUT
            && self.output.len() < MAX_OUTPUT
    }

    /// Reads what is available into `input` (through rustls if active).
    /// Returns whether anything was read.
    fn read(&mut self, shared: &Shared) -> bool {
        let before = self.input.len();
        let result = match self.tls.as_mut() {
            None => read_plain(&mut self.socket, &mut self.input),
            Some(tls) => read_tls(tls, &mut self.socket, &mut self.input),
        };
        let got = self.input.len() - before;
        if got > 0 {
            self.last_activity = Instant::now();
        }
        match result {
            ReadOutcome::Open { drained } => self.socket_drained = drained,
            ReadOutcome::Eof => self.peer_closed = true,
            ReadOutcome::Failed(reason) => {
                self.log_read_failure(&reason, before);
                self.state = State::Closed;
                return true;
            }
        }
        if got > 0 {
            self.inspect_first_bytes(before, shared);
            self.bytes_received += got as u64;
        }
        got > 0 || self.peer_closed
    }

    fn log_read_failure(&self, reason: &str, before: usize) {
        let looks_like_plaintext = self.bytes_received == 0
            && self.role == Role::Submissions
            && self.session.is_none()
            && before == 0;
        if looks_like_plaintext && reason.contains("InvalidContentType") {
            log::warn!(
                "{}: client speaks plaintext on the implicit-TLS port; use port 587 with \
                 STARTTLS, or SSL/TLS in the client",
                self.describe()
            );
        } else {
            log::info!("{}: connection failed: {reason}", self.describe());
        }
    }

    /// Refuses early talkers and TLS on the plaintext ports by looking at
    /// the first bytes a connection sends.
    fn inspect_first_bytes(&mut self, before: usize, shared: &Shared) {
        if self.state == State::GreetingDelay {
            log::info!(
                "{}: rejected: client sent data before the greeting ({:?} delay)",
                self.describe(),
                shared.config.greeting_delay
            );
            self.input.clear();
            Reply::new(
                554,
                (5, 5, 1),
                "Protocol error: you talked before my greeting",
            )
            .and_close()
            .render(&mut self.output);
            self.state = State::Closing;
            return;
        }
        if self.bytes_received == 0
            && self.tls.is_none()
            && self.input.get(before) == Some(&TLS_HANDSHAKE_RECORD)
        {
            log::warn!(
                "{}: client speaks TLS on the plaintext port; use STARTTLS or port 465",
                self.describe()
            );
            self.input.clear();
            self.state = State::Closed;
        }
    }

    /// Finishes the handshake when rustls says it is done.
    fn check_handshake(&mut self, shared: &Shared) -> bool {
        let Some(tls) = self.tls.as_ref() else {
            return false;
        };
        if tls.is_handshaking() {
            return false;
        }
        let version = crate::tls::version_name(tls).unwrap_or("TLS");
        self.tls_version = Some(version);
        self.state = State::Active;
        log::debug!("{}: TLS established ({version})", self.describe());
        match self.session.as_mut() {
            Some(session) => session.tls_started(version),
            None => self.greet(shared),
        }
        true
    }

    /// Feeds the session until it needs more input, asks for something or
    /// its output is full.
    fn feed(&mut self, shared: &Shared) -> bool {
        let mut progress = false;
        while self.state == State::Active
            && !self.starttls_pending
            && self.output.len() < MAX_OUTPUT
        {
            let Some(session) = self.session.as_mut() else {
                return progress;
            };
            let fed = session.feed(&self.input, &mut self.output);
            self.log_events(shared);
            let consumed = fed.consumed.min(self.input.len());
            self.input.drain(..consumed);
            progress |= consumed > 0;
            match fed.action {
                None if consumed == 0 => {
                    if self.input.len() >= MAX_INPUT {
                        // The session must consume a full buffer (it discards
                        // over-long lines); stop rather than spin.
                        log::error!(
                            "{}: session made no progress on a full buffer",
                            self.describe()
                        );
                        self.state = State::Closed;
                    }
                    break;
                }
                None => {}
                Some(action) => {
                    progress = true;
                    self.act(action, shared);
                }
            }
            self.close_if_session_closed();
        }
        progress
    }

    /// Logs what the session reported: refusals with the reply's text
    /// (the session's texts are written for people), logins, and messages
    /// spooled or not. Messages taken by `--sink` are not logged one by one.
    fn log_events(&mut self, shared: &Shared) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let events = session.take_events();
        if events.is_empty() {
            return;
        }
        let client = self.describe();
        for event in events {
            match event {
                SessionEvent::Refused {
                    code,
                    enhanced: Some(Enhanced(class, subject, detail)),
                    text,
                    ..
                } => log::info!("{client}: refused: {code} {class}.{subject}.{detail} {text}"),
                SessionEvent::Refused { code, text, .. } => {
                    log::info!("{client}: refused: {code} {text}")
                }
                SessionEvent::Login { user, result } => {
                    let outcome = match result {
                        AuthResult::Success => "success",
                        AuthResult::Failure => "failure (bad user name or password)",
                        AuthResult::Throttled => "refused (too many failures from this address)",
                        AuthResult::TemporaryFailure => "temporary failure",
                    };
                    log::info!("{client}: login user={user:?} {outcome}");
                }
                SessionEvent::Queued { .. } if shared.config.sink => {}
                SessionEvent::Queued {
                    queue_id,
                    message: m,
                } => log::info!(
                    "{client}: queued {queue_id} from=<{}> recipients={} size={} auth={} tls={}",
                    m.sender,
                    m.recipients,
                    m.size,
                    m.auth_user.as_deref().unwrap_or("-"),
                    m.tls.as_deref().unwrap_or("-"),
                ),
                SessionEvent::NotQueued { message: m, error } => log::warn!(
                    "{client}: rejected message from=<{}> recipients={}: spool failed ({error:?})",
                    m.sender,
                    m.recipients
                ),
            }
        }
    }

    fn act(&mut self, action: Action, shared: &Shared) {
        match action {
            Action::StartTls => self.starttls_pending = true,
            Action::Authenticate(credentials) => {
                self.state = State::AwaitAuth;
                let notify = self.notify.clone();
                let token = self.token;
                shared.authenticator.verify(
                    self.peer.ip().to_canonical(),
                    credentials,
                    Box::new(move |result| {
                        notify.send(LoopMessage::Completed(token, Completion::Auth(result)));
                    }),
                );
            }
            Action::Enqueue(message) => {
                self.state = State::AwaitSpool;
                if shared.config.sink {
                    // Benchmark mode: the message is dropped and answered at
                    // once. Like Postfix's smtp-sink it is not logged one by
                    // one unless asked (RUST_LOG=debug).
                    log::debug!(
                        "{}: discarded a message of {} bytes (--sink)",
                        self.describe(),
                        message.body.len()
                    );
                    self.on_enqueued(Ok(sink_queue_id()));
                    return;
                }
                let notify = self.notify.clone();
                let new_mail = shared.new_mail.clone();
                let token = self.token;
                shared.spool.submit(
                    message,
                    Box::new(move |result| {
                        if let (Ok(id), Some(new_mail)) = (&result, &new_mail) {
                            new_mail.notify(id.clone());
                        }
                        let result = result.map_err(|e| {
                            log::error!("spool error: {e:?}");
                            e.as_enqueue_error()
                        });
                        notify.send(LoopMessage::Completed(token, Completion::Enqueued(result)));
                    }),
                );
            }
        }
    }

    /// Writes pending output; switches to TLS after a flushed STARTTLS
    /// reply and closes after a flushed last reply.
    fn write(&mut self, shared: &Shared) -> bool {
        let mut progress = false;
        let result = match self.tls.as_mut() {
            None => write_plain(&mut self.socket, &mut self.output, &mut progress),
            Some(tls) => write_tls(tls, &mut self.socket, &mut self.output, &mut progress),
        };
        if progress {
            self.last_activity = Instant::now();
        }
        if let Err(e) = result {
            log::debug!("{}: write failed: {e}", self.describe());
            self.state = State::Closed;
            return true;
        }
        if self.has_output() {
            return progress;
        }
        if self.starttls_pending {
            // RFC 3207 §4.2 / CVE-2011-0411: whatever the client pipelined
            // after STARTTLS was sent in plaintext and is thrown away.
            self.starttls_pending = false;
            self.input.clear();
            self.begin_tls(shared);
            return true;
        }
        if self.state == State::Closing {
            if let Some(tls) = self.tls.as_mut().filter(|t| !t.is_handshaking()) {
                tls.send_close_notify();
                let mut ignored = false;
                let _ = write_tls(tls, &mut self.socket, &mut self.output, &mut ignored);
            }
            self.state = State::Closed;
            return true;
        }
        progress
    }
}

/// How a read ended.
enum ReadOutcome {
    /// The socket is still open; `drained` when it had nothing more to
    /// give (rather than the buffer being full).
    Open { drained: bool },
    /// The client closed its side.
    Eof,
    /// A socket or TLS error; the text says what.
    Failed(String),
}

fn read_plain(socket: &mut TcpStream, input: &mut Vec<u8>) -> ReadOutcome {
    SCRATCH.with_borrow_mut(|scratch| {
        while input.len() < MAX_INPUT {
            let room = READ_CHUNK.min(MAX_INPUT - input.len());
            match socket.read(&mut scratch[..room]) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => {
                    input.extend_from_slice(&scratch[..n]);
                    // A short read from a TCP socket took all it had; the
                    // next arrival raises a new edge.
                    if n < room {
                        return ReadOutcome::Open { drained: true };
                    }
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return ReadOutcome::Open { drained: true },
                    io::ErrorKind::Interrupted => {}
                    _ => return ReadOutcome::Failed(e.to_string()),
                },
            }
        }
        ReadOutcome::Open { drained: false }
    })
}

thread_local! {
    /// Each loop thread's read buffer: bytes land here and only what arrived is
    /// copied into the connection's input, instead of zeroing a whole chunk
    /// of the input for every read.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Moves decrypted bytes out of rustls, then feeds it more from the socket,
/// until the socket would block or `input` is full.
fn read_tls(
    tls: &mut ServerConnection,
    socket: &mut TcpStream,
    input: &mut Vec<u8>,
) -> ReadOutcome {
    loop {
        match drain_plaintext(tls, input) {
            Ok(false) => {}
            Ok(true) => return ReadOutcome::Eof,
            Err(e) => return ReadOutcome::Failed(e.to_string()),
        }
        if input.len() >= MAX_INPUT {
            return ReadOutcome::Open { drained: false };
        }
        match tls.read_tls(socket) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Send the alert rustls prepared, if the socket takes it.
                    let _ = tls.write_tls(socket);
                    return ReadOutcome::Failed(format!("TLS error: {e:?}"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return ReadOutcome::Open { drained: true }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadOutcome::Failed(e.to_string()),
        }
    }
}

/// Copies plaintext rustls has decrypted into `input` (up to the limit).
/// Returns true when the client sent close_notify.
fn drain_plaintext(tls: &mut ServerConnection, input: &mut Vec<u8>) -> io::Result<bool> {
    SCRATCH.with_borrow_mut(|scratch| {
        while input.len() < MAX_INPUT {
            let room = READ_CHUNK.min(MAX_INPUT - input.len());
            match tls.reader().read(&mut scratch[..room]) {
                Ok(0) => return Ok(true),
                Ok(n) => input.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    })
}

fn write_plain(
    socket: &mut TcpStream,
    output: &mut Vec<u8>,
    progress: &mut bool,
) -> io::Result<()> {
    while !output.is_empty() {
        match socket.write(output) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                output.drain(..n);
                *progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_tls(
    tls: &mut ServerConnection,
    socket: &mut TcpStream,
    output: &mut Vec<u8>,
    progress: &mut bool,
) -> io::Result<()> {
    loop {
        if !output.is_empty() && !tls.is_handshaking() {
            let taken = tls.writer().write(output)?;
            output.drain(..taken);
        }
        if !tls.wants_write() {
            return Ok(());
        }
        match tls.write_tls(socket) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => *progress = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("token", &self.token)
            .field("peer", &self.peer)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A queue id for a message accepted by `--sink` and thrown away: the same
/// form as a real id (so clients and scripts parse it alike), from a counter.
fn sink_queue_id() -> QueueId {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000_000_000;
    format!("SINK{n:012}")
        .parse()
        .expect("SINK and 12 digits form a queue id")
}
