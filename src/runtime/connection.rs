//! One client connection: the socket, its [`Transport`] (plain or rustls),
//! bounded input and output buffers, the [`Session`], and the [`ConnectionState`] that
//! says what the connection waits for. A `Connection` belongs to one event loop
//! for its whole life. Nothing here waits on the network: sockets are
//! non-blocking and slow work (password checks, spooling) is handed to
//! other threads whose answer comes back through the loop's mailbox. The
//! one file write done here is a big message's parts going into its spool
//! file as they arrive (writes to the page cache, as Postfix's smtpd
//! writes its queue file); the sync that makes it durable is the spool
//! writer's.
//!
//! May import: `limits`, `mailbox`, `transport` and the parent's `ServerContext`;
//! never `event_loop`, `acceptor` or `pool`, which hold connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::Token;

use super::limits::{
    CLOSING_FLUSH_TIMEOUT, IDLE_BUFFER, MAX_INPUT, MAX_OUTPUT, MAX_ROUNDS_PER_DISPATCH,
};
use super::mailbox::{Completion, LoopMessage, Notifier};
use super::transport::{ReadOutcome, Transport};
use super::ServerContext;
use crate::maillog::{self, Line};
use crate::proto::envelope::EnqueueError;
use crate::proto::proxy::{self, ProxiedClient, ProxyStatus};
use crate::proto::reply::Reply;
use crate::proto::sasl::AuthResult;
use crate::proto::session::{Action, ClientInfo, Role, Session, SessionEvent};
use crate::queue::{Done, QueueId, StreamedMessage};

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
    /// The hold on a delayed error reply is over: send it.
    ReplyDue,
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
pub(crate) enum ConnectionState {
    /// From a `--proxy-from` load balancer: reading the PROXY header that
    /// names the client, before anything else.
    ProxyHeader,
    /// `--greeting-delay`: waiting to greet; a client that talks is refused.
    GreetingDelay,
    /// A TLS handshake is running: on the implicit-TLS port before the
    /// greeting (`implicit`), or after STARTTLS.
    Handshake {
        /// Port 465: the greeting follows the handshake.
        implicit: bool,
    },
    /// Exchanging commands and replies.
    Active,
    /// STARTTLS was answered 220: once that reply is flushed the handshake
    /// starts. Nothing is read or fed meanwhile.
    StartTls,
    /// Parked until the authenticator answers.
    AwaitAuth,
    /// Parked until the spool answers.
    AwaitSpool,
    /// Holding an error reply back until `until` (the client has made too
    /// many errors). Output is flushed; nothing is read or fed meanwhile,
    /// so pipelined commands wait too.
    DelayingReply {
        /// When the reply is sent.
        until: Instant,
    },
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
    /// Time to send a delayed error reply.
    ReplyDue,
    /// The client took too long.
    Timeout,
}

/// Whether the socket may have bytes to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inbound {
    /// Bytes may be waiting: read when there is room.
    Unread,
    /// The last read emptied the socket: skip reading until a readiness
    /// event says new bytes came (edge-triggered epoll reports every
    /// arrival), saving a read that would only say "would block".
    Drained,
    /// The client closed its side: nothing more will come.
    PeerClosed,
}

/// A message the session hands out in parts (too big for memory).
#[derive(Debug)]
enum Streaming {
    /// Its spool file is being written.
    Writing(Box<StreamedMessage>),
    /// `--sink`: the parts are thrown away.
    Sink,
    /// Writing failed: the rest is thrown away and the end gets this.
    Failed(EnqueueError),
}

/// One client connection.
pub(crate) struct Connection {
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
    yielded: bool,
    /// The owning loop's mailbox, where slow operations answer.
    notify: Notifier,
    inbound: Inbound,
    state: ConnectionState,
    transport: Transport,
    /// Created with the greeting: `None` before it (greeting delay,
    /// implicit-TLS handshake).
    session: Option<Session>,
    input: Vec<u8>,
    output: Vec<u8>,
    bytes_received: u64,
    /// The message being handed out in parts, if any; dropping it removes
    /// its unfinished file.
    streaming: Option<Streaming>,
    /// The client's FIN has arrived: a short read does not drain.
    peer_closing: bool,
}

impl Connection {
    /// A freshly accepted connection: greeted at once on the plaintext
    /// ports (the greeting waits in the output buffer), after the
    /// handshake on port 465, or after `--greeting-delay`.
    pub fn new(
        token: Token,
        socket: TcpStream,
        peer: SocketAddr,
        role: Role,
        notify: Notifier,
        shared: &ServerContext,
    ) -> Connection {
        let now = Instant::now();
        let trusted = shared.config.is_trusted(peer.ip());
        let mut conn = Connection {
            token,
            socket,
            peer,
            role,
            trusted,
            started: now,
            last_activity: now,
            yielded: false,
            notify,
            inbound: Inbound::Unread,
            state: ConnectionState::Active,
            transport: Transport::Plain,
            session: None,
            input: Vec::new(),
            output: Vec::new(),
            bytes_received: 0,
            streaming: None,
            peer_closing: false,
        };
        if shared.config.is_proxy(peer.ip()) {
            conn.state = ConnectionState::ProxyHeader;
        } else {
            conn.open(shared);
        }
        conn
    }

    /// The client's connection begins: the TLS handshake on port 465, the
    /// greeting delay, or the greeting.
    fn open(&mut self, shared: &ServerContext) {
        if self.role == Role::Submissions {
            self.begin_tls(shared, true);
        } else if !shared.config.greeting_delay.is_zero() {
            self.state = ConnectionState::GreetingDelay;
            self.started = Instant::now();
        } else {
            self.state = ConnectionState::Active;
            self.greet(shared);
        }
    }

    /// Reads the PROXY header a load balancer sends first (HAProxy's
    /// `send-proxy` or `send-proxy-v2`); from then on the connection is its
    /// client's: logs, Received, relay networks, limits and the login
    /// throttle all see the client's address. A bad header closes the
    /// connection without a word.
    fn read_proxy_header(&mut self, shared: &ServerContext) -> bool {
        match proxy::parse(&self.input) {
            Ok(ProxyStatus::NeedMore) => {
                if self.inbound == Inbound::PeerClosed {
                    self.state = ConnectionState::Closed;
                }
                false
            }
            Ok(ProxyStatus::Done { client, consumed }) => {
                self.input.drain(..consumed);
                let admitted = match client {
                    ProxiedClient::Address(client) => self.move_to_client(client, shared),
                    ProxiedClient::Unknown => true,
                };
                if admitted {
                    self.open(shared);
                }
                true
            }
            Err(e) => {
                log::warn!("{}: {e}; closing", self.describe());
                self.state = ConnectionState::Closed;
                true
            }
        }
    }

    /// Counts the connection under `client`, the address its PROXY header
    /// names, instead of the load balancer's, within the per-address limit.
    fn move_to_client(&mut self, client: SocketAddr, shared: &ServerContext) -> bool {
        let trusted = shared.config.is_trusted(client.ip());
        let admitted = shared
            .counter
            .lock()
            .move_to(self.peer.ip(), client.ip(), trusted);
        if admitted.is_err() {
            log::info!(
                "{}: refused {client}: too many connections from this address",
                self.describe()
            );
            if self.role != Role::Submissions {
                Reply::new(421, (4, 7, 0), "Too many connections from your address")
                    .and_close()
                    .render(&mut self.output);
            }
            self.state = ConnectionState::Closing;
            return false;
        }
        log::info!("{}: PROXY header: the client is {client}", self.describe());
        self.peer = client;
        self.trusted = trusted;
        true
    }

    /// The state, for the loop's decisions.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Replies are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty() || self.transport.wants_write()
    }

    /// The last dispatch stopped early for fairness: dispatch it again.
    pub fn yielded(&self) -> bool {
        self.yielded
    }

    /// A readiness event came while the connection was queued or parked:
    /// read again before concluding there is nothing.
    pub fn mark_readable(&mut self) {
        if self.inbound == Inbound::Drained {
            self.inbound = Inbound::Unread;
        }
    }

    /// The client's FIN has arrived: read on until the end of the stream,
    /// even after a short read. Its edge may have come with the last
    /// data, so no later event would say that the end is there.
    pub fn mark_peer_closing(&mut self) {
        self.peer_closing = true;
        self.mark_readable();
    }

    /// Waiting for the authenticator or the spool.
    pub fn is_parked(&self) -> bool {
        matches!(
            self.state,
            ConnectionState::AwaitAuth | ConnectionState::AwaitSpool
        )
    }

    /// When this connection's current wait ends, and what that means; the
    /// whole-connection limit applies in every state.
    pub fn deadline(&self, shared: &ServerContext) -> Option<(Instant, DeadlineKind)> {
        let config = &shared.config;
        let whole = (
            self.started + config.connection_timeout,
            DeadlineKind::Timeout,
        );
        let idle = |timeout: Duration| (self.last_activity + timeout, DeadlineKind::Timeout);
        let current = match self.state {
            ConnectionState::GreetingDelay => {
                Some((self.started + config.greeting_delay, DeadlineKind::Greet))
            }
            ConnectionState::Handshake { .. } | ConnectionState::ProxyHeader => {
                Some(idle(config.tls_handshake_timeout))
            }
            ConnectionState::Active | ConnectionState::StartTls => {
                let in_data = self.session.as_ref().is_some_and(Session::in_data);
                Some(idle(if in_data {
                    config.data_timeout
                } else {
                    config.command_timeout
                }))
            }
            ConnectionState::DelayingReply { until } => Some((until, DeadlineKind::ReplyDue)),
            ConnectionState::Closing => Some(idle(CLOSING_FLUSH_TIMEOUT)),
            ConnectionState::AwaitAuth | ConnectionState::AwaitSpool | ConnectionState::Closed => {
                None
            }
        };
        match current {
            Some(c) if c.0 < whole.0 => Some(c),
            _ => Some(whole),
        }
    }

    /// Marks the connection dead without touching it further (after a
    /// panic while serving it).
    pub fn abandon(&mut self) {
        self.state = ConnectionState::Closed;
    }

    /// Runs `work`, then moves bytes until the connection waits for the
    /// network, for another thread, or for its turn.
    pub fn service(&mut self, work: Work, shared: &ServerContext) {
        self.yielded = false;
        match work {
            Work::Io => self.mark_readable(),
            Work::Greet => {
                if self.state == ConnectionState::GreetingDelay {
                    self.greet(shared);
                    self.state = ConnectionState::Active;
                }
            }
            Work::AuthDone(result) => self.on_auth_result(result),
            Work::ReplyDue => self.on_reply_due(),
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

    fn greet(&mut self, shared: &ServerContext) {
        let client = ClientInfo {
            ip: self.peer.ip().to_canonical().to_string(),
            trusted: self.trusted,
            tls: self.transport.established().map(str::to_string),
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

    /// Starts the TLS handshake: at once on the implicit-TLS port, after the
    /// flushed 220 for STARTTLS.
    fn begin_tls(&mut self, shared: &ServerContext, implicit: bool) {
        // On port 465 behind a load balancer, the client's first TLS bytes
        // may have come with the PROXY header.
        let early = std::mem::take(&mut self.input);
        match self.transport.upgrade(&shared.tls, &early) {
            Ok(()) => self.state = ConnectionState::Handshake { implicit },
            Err(e) => {
                log::error!("{}: cannot start TLS: {e}", self.describe());
                self.state = ConnectionState::Closed;
            }
        }
    }

    fn on_auth_result(&mut self, result: AuthResult) {
        if self.state != ConnectionState::AwaitAuth {
            return;
        }
        self.state = ConnectionState::Active;
        if let Some(session) = self.session.as_mut() {
            session.auth_result(result, &mut self.output);
        }
        self.close_if_session_closed();
    }

    fn on_reply_due(&mut self) {
        if !matches!(self.state, ConnectionState::DelayingReply { .. }) {
            return;
        }
        self.state = ConnectionState::Active;
        if let Some(session) = self.session.as_mut() {
            session.send_delayed_reply(&mut self.output);
        }
    }

    fn on_enqueued(&mut self, result: Result<QueueId, EnqueueError>) {
        if self.state != ConnectionState::AwaitSpool {
            return;
        }
        self.state = ConnectionState::Active;
        if let Some(session) = self.session.as_mut() {
            session.enqueued(
                result.as_ref().map(QueueId::as_str).map_err(|e| *e),
                &mut self.output,
            );
        }
        self.close_if_session_closed();
    }

    fn on_timeout(&mut self, shared: &ServerContext) {
        let config = &shared.config;
        let reason = match self.state {
            ConnectionState::Closing | ConnectionState::Closed => {
                self.state = ConnectionState::Closed;
                return;
            }
            ConnectionState::Handshake { implicit: true } => {
                log::warn!(
                    "{}: no TLS handshake within {:?} on the implicit-TLS port; a plaintext \
                     client? (use port 587 with STARTTLS, or SSL/TLS in the client)",
                    self.describe(),
                    config.tls_handshake_timeout
                );
                self.state = ConnectionState::Closed;
                return;
            }
            ConnectionState::Handshake { implicit: false } => {
                // No plaintext reply is possible mid-handshake.
                log::warn!(
                    "{}: TLS handshake after STARTTLS timed out",
                    self.describe()
                );
                self.state = ConnectionState::Closed;
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
        self.state = ConnectionState::Closing;
    }

    fn on_shutdown(&mut self) {
        match self.state {
            ConnectionState::Closing | ConnectionState::Closed => {}
            ConnectionState::ProxyHeader
            | ConnectionState::Handshake { .. }
            | ConnectionState::GreetingDelay => self.state = ConnectionState::Closed,
            ConnectionState::Active
            | ConnectionState::StartTls
            | ConnectionState::AwaitAuth
            | ConnectionState::AwaitSpool
            | ConnectionState::DelayingReply { .. } => {
                if let Some(session) = self.session.as_mut() {
                    session.shutting_down(&mut self.output);
                }
                self.state = ConnectionState::Closing;
            }
        }
    }

    fn close_if_session_closed(&mut self) {
        if self.session.as_ref().is_some_and(Session::is_closed) {
            self.state = ConnectionState::Closing;
        }
    }

    /// `ip:port on role` for log lines (no reverse DNS, ever).
    pub fn describe(&self) -> String {
        format!("{} on {}", self.peer, super::role_name(self.role))
    }

    /// Reads, feeds and writes until nothing moves any more, at most
    /// [`MAX_ROUNDS_PER_DISPATCH`] times.
    fn pump(&mut self, shared: &ServerContext) {
        for _ in 0..MAX_ROUNDS_PER_DISPATCH {
            let mut progress = false;
            if self.wants_input() {
                progress |= self.read(shared);
            }
            if self.state == ConnectionState::ProxyHeader {
                progress |= self.read_proxy_header(shared);
            }
            if matches!(self.state, ConnectionState::Handshake { .. }) {
                progress |= self.check_handshake(shared);
            }
            if self.state == ConnectionState::Active {
                progress |= self.feed(shared);
            }
            progress |= self.write(shared);
            if self.inbound == Inbound::PeerClosed && !progress {
                let before = self.state;
                match self.state {
                    // The client closed its side; answer what it sent, then go.
                    ConnectionState::Active | ConnectionState::StartTls => {
                        self.state = ConnectionState::Closing
                    }
                    // Nobody is left to greet or to shake hands with.
                    ConnectionState::GreetingDelay | ConnectionState::Handshake { .. } => {
                        self.state = ConnectionState::Closed
                    }
                    _ => {}
                }
                progress = self.state != before;
            }
            if self.state == ConnectionState::Closed || !progress {
                return;
            }
        }
        self.yielded = true;
    }

    fn wants_input(&self) -> bool {
        matches!(
            self.state,
            ConnectionState::Active
                | ConnectionState::Handshake { .. }
                | ConnectionState::GreetingDelay
                | ConnectionState::ProxyHeader
        ) && self.inbound == Inbound::Unread
            && self.input.len() < MAX_INPUT
            && self.output.len() < MAX_OUTPUT
    }

    /// Reads what is available into `input` (through rustls if active).
    /// Returns whether anything was read.
    fn read(&mut self, shared: &ServerContext) -> bool {
        let before = self.input.len();
        let result = self.transport.read(&mut self.socket, &mut self.input);
        let got = self.input.len() - before;
        if got > 0 {
            self.last_activity = Instant::now();
        }
        match result {
            ReadOutcome::Open { drained: true } if !self.peer_closing => {
                self.inbound = Inbound::Drained
            }
            ReadOutcome::Open { .. } => self.inbound = Inbound::Unread,
            ReadOutcome::Eof => self.inbound = Inbound::PeerClosed,
            ReadOutcome::Failed(reason) => {
                log::info!("{}: connection failed: {reason}", self.describe());
                self.state = ConnectionState::Closed;
                return true;
            }
            ReadOutcome::NotTls => {
                self.log_not_tls(before);
                self.state = ConnectionState::Closed;
                return true;
            }
        }
        if got > 0 {
            self.inspect_first_bytes(before, shared);
            self.bytes_received += got as u64;
        }
        got > 0 || self.inbound == Inbound::PeerClosed
    }

    fn log_not_tls(&self, before: usize) {
        let looks_like_plaintext = self.bytes_received == 0
            && self.state == ConnectionState::Handshake { implicit: true }
            && before == 0;
        if looks_like_plaintext {
            log::warn!(
                "{}: client speaks plaintext on the implicit-TLS port; use port 587 with \
                 STARTTLS, or SSL/TLS in the client",
                self.describe()
            );
        } else {
            log::info!(
                "{}: connection failed: the client sent something that is not TLS",
                self.describe()
            );
        }
    }

    /// Refuses early talkers and TLS on the plaintext ports by looking at
    /// the first bytes a connection sends.
    fn inspect_first_bytes(&mut self, before: usize, shared: &ServerContext) {
        if self.state == ConnectionState::GreetingDelay {
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
            self.state = ConnectionState::Closing;
            return;
        }
        if self.bytes_received == 0
            && !self.transport.is_tls()
            && self.input.get(before) == Some(&TLS_HANDSHAKE_RECORD)
        {
            log::warn!(
                "{}: client speaks TLS on the plaintext port; use STARTTLS or port 465",
                self.describe()
            );
            self.input.clear();
            self.state = ConnectionState::Closed;
        }
    }

    /// Finishes the handshake when rustls says it is done: greets on the
    /// implicit-TLS port, restarts the session after STARTTLS.
    fn check_handshake(&mut self, shared: &ServerContext) -> bool {
        let ConnectionState::Handshake { implicit } = self.state else {
            return false;
        };
        let Some(version) = self.transport.established() else {
            return false;
        };
        self.state = ConnectionState::Active;
        log::debug!("{}: TLS established ({version})", self.describe());
        crate::metrics::tls_handshake(version);
        if implicit {
            self.greet(shared);
        } else if let Some(session) = self.session.as_mut() {
            session.tls_started(version);
        }
        true
    }

    /// Feeds the session until it needs more input, asks for something or
    /// its output is full.
    fn feed(&mut self, shared: &ServerContext) -> bool {
        let mut progress = false;
        while self.state == ConnectionState::Active && self.output.len() < MAX_OUTPUT {
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
                        self.state = ConnectionState::Closed;
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
    fn log_events(&mut self, shared: &ServerContext) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let events = session.take_events();
        if events.is_empty() {
            return;
        }
        let client = self.describe();
        let client = client.as_str();
        for event in events {
            match event {
                SessionEvent::Refused {
                    verb,
                    code,
                    enhanced,
                    text,
                    context,
                } => maillog::Refused {
                    client,
                    verb,
                    context: &context,
                    code,
                    enhanced,
                    text: &text,
                }
                .log(),
                SessionEvent::Login { user, result } => maillog::Login {
                    client,
                    user: &user,
                    result,
                }
                .log(),
                SessionEvent::Queued { .. } if shared.config.sink => {}
                SessionEvent::Queued { queue_id, message } => maillog::Queued {
                    client,
                    queue_id: &queue_id,
                    message: &message,
                }
                .log(),
                SessionEvent::NotQueued { message, error } => maillog::NotQueued {
                    client,
                    message: &message,
                    error,
                }
                .log(),
            }
        }
    }

    fn act(&mut self, action: Action, shared: &ServerContext) {
        match action {
            Action::StartTls => self.state = ConnectionState::StartTls,
            Action::DelayReply(delay) => {
                // A timer of the loop, not a sleep: the worker serves other
                // connections meanwhile.
                self.state = ConnectionState::DelayingReply {
                    until: Instant::now() + delay,
                };
            }
            Action::Authenticate(credentials) => {
                self.state = ConnectionState::AwaitAuth;
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
                self.state = ConnectionState::AwaitSpool;
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
                shared.spool.submit(message, self.spool_answer(shared));
            }
            Action::StartMessage(first) => {
                // A message dropped half-way (refused at its end, its
                // transaction reset) goes with its file here.
                self.streaming = Some(if shared.config.sink {
                    Streaming::Sink
                } else {
                    match shared.spool.start_message(&first) {
                        Ok(message) => Streaming::Writing(Box::new(message)),
                        Err(e) => {
                            log::error!("spool error: {e:?}");
                            Streaming::Failed(e.as_enqueue_error())
                        }
                    }
                });
            }
            Action::AppendMessage(part) => self.append_part(&part),
            Action::FinishMessage { last_part, .. } => {
                self.state = ConnectionState::AwaitSpool;
                self.append_part(&last_part);
                match self.streaming.take() {
                    Some(Streaming::Writing(message)) => {
                        shared
                            .spool
                            .submit_streamed(*message, self.spool_answer(shared));
                    }
                    Some(Streaming::Sink) => self.on_enqueued(Ok(sink_queue_id())),
                    Some(Streaming::Failed(error)) => self.on_enqueued(Err(error)),
                    None => self.on_enqueued(Err(EnqueueError::Failed)),
                }
            }
        }
    }

    /// Appends a part of the message being streamed to its file; a write
    /// that fails ends the file, and the message is answered with the
    /// error once the client has sent all of it.
    fn append_part(&mut self, part: &[u8]) {
        if let Some(Streaming::Writing(message)) = &mut self.streaming {
            if let Err(e) = message.append(part) {
                log::error!("spool error: {e:?}");
                self.streaming = Some(Streaming::Failed(e.as_enqueue_error()));
            }
        }
    }

    /// What the spool calls once a message is durable (or failed): wake
    /// delivery, and answer the session through the loop's mailbox.
    fn spool_answer(&self, shared: &ServerContext) -> Done {
        let notify = self.notify.clone();
        let new_mail = shared.new_mail.clone();
        let token = self.token;
        Box::new(move |result| {
            if let (Ok(id), Some(new_mail)) = (&result, &new_mail) {
                new_mail.notify(id.clone());
            }
            let result = result.map_err(|e| {
                log::error!("spool error: {e:?}");
                e.as_enqueue_error()
            });
            notify.send(LoopMessage::Completed(token, Completion::Enqueued(result)));
        })
    }

    /// Writes pending output; switches to TLS after a flushed STARTTLS
    /// reply and closes after a flushed last reply.
    fn write(&mut self, shared: &ServerContext) -> bool {
        let progress = match self.transport.flush(&mut self.socket, &mut self.output) {
            Ok(progress) => progress,
            Err(e) => {
                log::debug!("{}: write failed: {e}", self.describe());
                self.state = ConnectionState::Closed;
                return true;
            }
        };
        if progress {
            self.last_activity = Instant::now();
        }
        if self.has_output() {
            return progress;
        }
        match self.state {
            ConnectionState::StartTls => {
                self.start_tls_after_reply(shared);
                true
            }
            ConnectionState::Closing => {
                self.transport.close_notify(&mut self.socket);
                self.state = ConnectionState::Closed;
                true
            }
            _ => progress,
        }
    }

    /// The 220 to STARTTLS is out: the handshake starts. The session owns
    /// the rule that nothing the client pipelined after STARTTLS counts
    /// (RFC 3207 §4.2, CVE-2011-0411): it consumed the rest of the input
    /// with the command, and nothing has been read since. Bytes still in
    /// the socket go to rustls, which refuses plaintext. Input found here
    /// would break that rule, so the connection closes rather than feed
    /// plaintext to a session that believes it is encrypted.
    fn start_tls_after_reply(&mut self, shared: &ServerContext) {
        if !self.input.is_empty() {
            log::error!(
                "{}: input left over at STARTTLS; connection closed",
                self.describe()
            );
            self.state = ConnectionState::Closed;
            return;
        }
        self.begin_tls(shared, false);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
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
