//! An event loop: one thread with its own `mio::Poll`, the connections it
//! owns, their deadlines, and the queue of connections ready to be served.
//!
//! The accepting loop owns the listeners, the signal pipe and the worker
//! [`Pool`]: it counts each new connection against the limits and hands it
//! to a worker's loop (or, with `--workers 0`, keeps it). A loop serves its
//! connections itself ([`Conn::service`]); slow work (password checks,
//! spooling) runs on other threads and answers through the loop's mailbox.
//! A connection stays on one loop for its whole life.
//!
//! Readiness is edge-triggered. While a connection waits in the ready queue
//! or for a slow operation, events for it are remembered on its slot
//! (`pending_io`) and served when it can take them, so none is lost. Tokens
//! are never reused, so a late event or completion cannot reach a newer
//! connection. Deadlines live in a heap with lazy deletion: each slot
//! remembers the one entry that is live for it; the earliest entry is the
//! poll timeout.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use parking_lot::Mutex;

use super::conn::{Conn, DeadlineKind, State, Work};
use super::limits::{ConnectionCounter, Refusal, HARD_STOP_AFTER_GRACE};
use super::mailbox::{Completion, Inbox, LoopMessage, Notifier};
use super::pool::Pool;
use super::Shared;
use crate::proto::reply::Reply;
use crate::proto::session::Role;

/// The waker's token.
pub(crate) const WAKER: Token = Token(0);
/// The stop signals' self-pipe's token.
const STOP_SIGNAL: Token = Token(1);
/// The reload signal's self-pipe's token.
const RELOAD_SIGNAL: Token = Token(2);
/// Listener `i` has token `FIRST_LISTENER + i`.
const FIRST_LISTENER: usize = 3;
/// Connection tokens count up from here and are never reused.
const FIRST_CONNECTION: usize = 1 << 16;
/// After a failed accept (e.g. out of file descriptors) try again this soon;
/// edge-triggered listeners would otherwise not report the waiting clients again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A bound listener and its role.
pub(crate) struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// What connections on it are for.
    pub role: Role,
    /// The bound address (port 0 resolved).
    pub address: SocketAddr,
}

/// The read ends of the signal self-pipes (the handlers only write a byte).
pub(crate) struct SignalPipes {
    /// SIGTERM and SIGINT: stop gracefully (a second one stops at once).
    pub stop: UnixStream,
    /// SIGHUP: re-read the users and alias files.
    pub reload: UnixStream,
}

/// A connection the accepting loop has admitted, on its way to a loop.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The socket, not yet registered with any poll.
    pub socket: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's role.
    pub role: Role,
    /// The listener's address.
    pub local: SocketAddr,
}

/// A connection and what to do with it.
struct Job {
    conn: Box<Conn>,
    work: Work,
}

/// The loop's record of one connection.
struct Slot {
    /// The connection while it waits; `None` while it is in the ready queue.
    conn: Option<Box<Conn>>,
    /// The client IP, for the counters when it closes.
    ip: IpAddr,
    /// Readiness arrived while the connection was queued or parked.
    pending_io: bool,
    /// A completion arrived while the connection was queued.
    completion: Option<Completion>,
    /// The deadline of the live heap entry for this slot.
    scheduled: Option<Instant>,
}

/// An event loop's state; [`EventLoop::run`] is the thread's body.
pub(crate) struct EventLoop {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Option<SignalPipes>,
    inbox: Inbox,
    /// This loop's own mailbox, for its connections' slow operations.
    notify: Notifier,
    shared: Arc<Shared>,
    pool: Pool,
    counter: Arc<Mutex<ConnectionCounter>>,
    /// Connections on this loop (the pool balances by it).
    open: Arc<AtomicUsize>,
    slots: HashMap<Token, Slot>,
    next_token: usize,
    timers: BinaryHeap<Reverse<(Instant, Token)>>,
    ready: VecDeque<Job>,
    grace_deadline: Option<Instant>,
    hard_stop: Option<Instant>,
    accept_retry: Option<Instant>,
}

impl EventLoop {
    /// A loop that serves the connections it is given through `inbox`.
    /// `notify` must deliver to `inbox`; closing connections are released
    /// from `counter` and counted off `open`.
    pub fn new(
        poll: Poll,
        inbox: Inbox,
        notify: Notifier,
        shared: Arc<Shared>,
        counter: Arc<Mutex<ConnectionCounter>>,
        open: Arc<AtomicUsize>,
    ) -> EventLoop {
        EventLoop {
            poll,
            listeners: Vec::new(),
            signals: None,
            inbox,
            notify,
            shared,
            pool: Pool::none(),
            counter,
            open,
            slots: HashMap::new(),
            next_token: FIRST_CONNECTION,
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            grace_deadline: None,
            hard_stop: None,
            accept_retry: None,
        }
    }

    /// Makes this the accepting loop: it registers the listeners (and the
    /// signal pipes) and feeds new connections to `pool` (or serves them
    /// itself when the pool is empty).
    pub fn accepting(
        mut self,
        mut listeners: Vec<Listener>,
        mut signals: Option<SignalPipes>,
        pool: Pool,
    ) -> io::Result<EventLoop> {
        for (index, listener) in listeners.iter_mut().enumerate() {
            self.poll.registry().register(
                &mut listener.socket,
                Token(FIRST_LISTENER + index),
                Interest::READABLE,
            )?;
        }
        if let Some(pipes) = signals.as_mut() {
            let registry = self.poll.registry();
            registry.register(&mut pipes.stop, STOP_SIGNAL, Interest::READABLE)?;
            registry.register(&mut pipes.reload, RELOAD_SIGNAL, Interest::READABLE)?;
        }
        self.listeners = listeners;
        self.signals = signals;
        self.pool = pool;
        Ok(self)
    }

    /// Runs until a stop has been requested, every connection is gone (or
    /// the hard stop passed) and every worker loop has ended.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("event loop failed: {e}; stopping");
                // Twice: the workers skip the grace period too.
                self.pool.stop();
                self.pool.stop();
                break;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    STOP_SIGNAL => self.on_stop_signal(),
                    RELOAD_SIGNAL => self.on_reload_signal(),
                    Token(t) if t < FIRST_CONNECTION => self.accept(t - FIRST_LISTENER),
                    token => self.on_socket_event(token),
                }
            }
            for message in self.inbox.drain() {
                self.on_message(message);
            }
            self.fire_timers();
            self.serve_ready();
            if self.finished() {
                break;
            }
        }
        let remaining = self.slots.len();
        if remaining > 0 {
            log::warn!("stopping with {remaining} connections still open");
        }
        self.ready.clear();
        self.slots.clear();
        self.pool.join();
    }

    fn finished(&self) -> bool {
        match self.grace_deadline {
            None => false,
            Some(_) => {
                self.pool.all_stopped()
                    && (self.slots.is_empty()
                        || self.hard_stop.is_some_and(|t| Instant::now() >= t))
            }
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut earliest = self.timers.peek().map(|Reverse((t, _))| *t);
        let extra = [
            self.grace_deadline.filter(|_| self.hard_stop.is_none()),
            self.hard_stop,
            self.accept_retry,
        ];
        for t in extra.into_iter().flatten() {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        earliest.map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn on_stop_signal(&mut self) {
        if let Some(pipes) = self.signals.as_mut() {
            drain(&mut pipes.stop);
        }
        log::info!("received a stop signal");
        self.begin_stop();
    }

    /// SIGHUP: the users file, the alias file and the TLS certificate are
    /// read again; a file that fails to load leaves its old version in
    /// force. All are small: new connections wait for the reading only a
    /// moment.
    fn on_reload_signal(&mut self) {
        if let Some(pipes) = self.signals.as_mut() {
            drain(&mut pipes.reload);
        }
        log::info!("received SIGHUP: reloading the users file, the aliases and the certificate");
        if let Err(e) = self.shared.users.reload() {
            log::error!("users file not reloaded, the previous one stays in force: {e}");
        }
        match self.shared.aliases.reload() {
            Ok(count) => log::info!("aliases: {count} in force"),
            Err(e) => log::error!("aliases not reloaded, the previous ones stay in force: {e}"),
        }
        match self.shared.certificate.reload() {
            Ok(()) => log::info!("TLS certificate reloaded"),
            Err(e) => {
                log::error!("TLS certificate not reloaded, the previous one stays in use: {e}")
            }
        }
    }

    fn on_message(&mut self, message: LoopMessage) {
        match message {
            LoopMessage::Adopt(accepted) => self.adopt(accepted),
            LoopMessage::Completed(token, completion) => {
                let Some(slot) = self.slots.get_mut(&token) else {
                    return; // The connection is gone; nobody waits for this.
                };
                match slot.conn.take() {
                    Some(mut conn) => {
                        // Bytes that came while it waited are read with
                        // the result.
                        if std::mem::take(&mut slot.pending_io) {
                            conn.mark_readable();
                        }
                        self.dispatch(conn, Work::from(completion));
                    }
                    None => slot.completion = Some(completion),
                }
            }
            LoopMessage::WorkerStopped => self.pool.worker_stopped(),
            LoopMessage::Stop => self.begin_stop(),
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let role = listener.role;
            let local = listener.address;
            match listener.socket.accept() {
                Ok((socket, peer)) => self.admit(Accepted {
                    socket,
                    peer,
                    role,
                    local,
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("accept on {local} failed: {e}; retrying shortly");
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Counts a new connection against the limits (or refuses it) and
    /// hands it to a worker, or keeps it when there are none.
    fn admit(&mut self, mut accepted: Accepted) {
        let Accepted {
            peer, role, local, ..
        } = accepted;
        let ip = peer.ip();
        let trusted = self.shared.config.is_trusted(ip);
        let refusal = match self.counter.lock().admit(ip, trusted) {
            Ok(()) => None,
            Err(Refusal::TooManyTotal) => Some((
                "too many connections",
                Reply::new(
                    421,
                    (4, 7, 0),
                    "Too many connections, please try again later",
                ),
            )),
            Err(Refusal::TooManyFromIp) => Some((
                "too many connections from this address",
                Reply::new(421, (4, 7, 0), "Too many connections from your address"),
            )),
        };
        if let Some((reason, reply)) = refusal {
            log::info!("{peer} on {local}: refused: {reason}");
            // On the implicit-TLS port a plaintext reply would only confuse
            // the client's TLS stack; just close there.
            if role != Role::Submissions {
                let mut bytes = Vec::new();
                reply.and_close().render(&mut bytes);
                let _ = accepted.socket.write(&bytes);
            }
            return;
        }
        if self.pool.is_empty() {
            self.open.fetch_add(1, Ordering::Relaxed);
            self.adopt(accepted);
        } else if !self.pool.hand_over(accepted) {
            log::error!("{peer}: no worker took the connection; closed");
            self.counter.lock().release(ip);
        }
    }

    /// Takes an admitted connection into this loop.
    fn adopt(&mut self, accepted: Accepted) {
        let Accepted {
            mut socket,
            peer,
            role,
            local,
        } = accepted;
        // Replies are small and pipelined dialogs wait on each one; Nagle's
        // algorithm would add a delayed-ACK round trip to many of them.
        let _ = socket.set_nodelay(true);
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("{peer}: cannot register the connection: {e}");
            self.forget(peer.ip());
            return;
        }
        let conn = Box::new(Conn::new(
            token,
            socket,
            peer,
            role,
            self.notify.clone(),
            &self.shared,
        ));
        log::info!(
            "{}: connected to {local}{}",
            conn.describe(),
            if conn.trusted { " (relay network)" } else { "" }
        );
        self.slots.insert(
            token,
            Slot {
                conn: None,
                ip: peer.ip(),
                pending_io: false,
                completion: None,
                scheduled: None,
            },
        );
        if conn.has_output() || conn.state() == State::Closed {
            self.dispatch(conn, Work::Io);
        } else {
            self.park_at_home(conn);
        }
    }

    /// A connection from `ip` has ended: it no longer counts.
    fn forget(&self, ip: IpAddr) {
        self.counter.lock().release(ip);
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    fn on_socket_event(&mut self, token: Token) {
        let Some(slot) = self.slots.get_mut(&token) else {
            return; // A late event for a connection that is gone.
        };
        match slot.conn.take() {
            Some(conn) if !conn.is_parked() => {
                slot.pending_io = false;
                self.dispatch(conn, Work::Io);
            }
            other => {
                slot.conn = other;
                slot.pending_io = true;
            }
        }
    }

    /// A connection has been served: close it, give it more work, or let
    /// it wait.
    fn come_home(&mut self, mut conn: Box<Conn>) {
        let token = conn.token;
        if conn.state() == State::Closed {
            self.close(conn);
            return;
        }
        let forcing = self.hard_stop.is_some();
        let Some(slot) = self.slots.get_mut(&token) else {
            return;
        };
        if slot.pending_io {
            conn.mark_readable();
        }
        let work = if let Some(completion) = slot.completion.take() {
            Some(Work::from(completion))
        } else if forcing && !conn.is_parked() && conn.state() != State::Closing {
            Some(Work::Shutdown)
        } else if conn.yielded || (slot.pending_io && !conn.is_parked()) {
            Some(Work::Io)
        } else {
            None
        };
        match work {
            Some(work) => {
                slot.pending_io = false;
                self.dispatch(conn, work);
            }
            None => self.park_at_home(conn),
        }
    }

    /// Keeps `conn` on its slot and makes sure its deadline is scheduled.
    fn park_at_home(&mut self, conn: Box<Conn>) {
        let deadline = conn.deadline(&self.shared).map(|(t, _)| t);
        let token = conn.token;
        let Some(slot) = self.slots.get_mut(&token) else {
            return;
        };
        slot.conn = Some(conn);
        if let Some(deadline) = deadline {
            if slot.scheduled.map_or(true, |s| deadline < s) {
                slot.scheduled = Some(deadline);
                self.timers.push(Reverse((deadline, token)));
            }
        }
    }

    fn close(&mut self, mut conn: Box<Conn>) {
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Some(slot) = self.slots.remove(&conn.token) {
            self.forget(slot.ip);
        }
        log::info!(
            "{}: disconnected after {:.1}s",
            conn.describe(),
            conn.started.elapsed().as_secs_f64()
        );
    }

    fn dispatch(&mut self, conn: Box<Conn>, work: Work) {
        self.ready.push_back(Job { conn, work });
    }

    /// Serves the connections that are ready now; work that creates waits
    /// for the next turn, after the loop has polled again (fairness).
    fn serve_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(job) = self.ready.pop_front() else {
                break;
            };
            let conn = serve(job, &self.shared);
            self.come_home(conn);
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            for index in 0..self.listeners.len() {
                self.accept(index);
            }
        }
        if self.hard_stop.is_none() && self.grace_deadline.is_some_and(|t| t <= now) {
            self.force_stop();
        }
        while let Some(&Reverse((at, token))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(&token) else {
                continue;
            };
            if slot.scheduled != Some(at) {
                continue; // Superseded by an earlier entry.
            }
            slot.scheduled = None;
            let Some(conn) = slot.conn.take() else {
                continue; // Queued; rescheduled when it has been served.
            };
            match conn.deadline(&self.shared) {
                Some((deadline, kind)) if deadline <= now => {
                    let work = match kind {
                        DeadlineKind::Greet => Work::Greet,
                        DeadlineKind::Timeout => Work::TimedOut,
                    };
                    self.dispatch(conn, work);
                }
                _ => self.park_at_home(conn),
            }
        }
    }

    /// Stops accepting and gives sessions the grace period to finish; a
    /// second request skips the grace period. Either is passed on to the
    /// workers.
    fn begin_stop(&mut self) {
        self.pool.stop();
        if self.grace_deadline.is_some() {
            self.force_stop();
            return;
        }
        let grace = self.shared.config.shutdown_grace;
        if !self.listeners.is_empty() {
            log::info!(
                "stopping: no new connections; {} open sessions have {grace:?} to finish",
                self.counter.lock().total()
            );
        }
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        self.grace_deadline = Some(Instant::now() + grace);
    }

    /// The grace period is over: 421 4.3.2 to every session (busy ones as
    /// soon as they come back from the spool).
    fn force_stop(&mut self) {
        if self.hard_stop.is_some() {
            return;
        }
        let now = Instant::now();
        self.grace_deadline.get_or_insert(now);
        self.hard_stop = Some(now + HARD_STOP_AFTER_GRACE);
        let tokens: Vec<Token> = self.slots.keys().copied().collect();
        for token in tokens {
            let Some(slot) = self.slots.get_mut(&token) else {
                continue;
            };
            let idle = slot
                .conn
                .as_ref()
                .is_some_and(|c| !c.is_parked() && c.state() != State::Closing);
            if idle {
                if let Some(conn) = slot.conn.take() {
                    self.dispatch(conn, Work::Shutdown);
                }
            }
        }
    }
}

/// Empties a signal self-pipe; the bytes themselves carry no meaning.
fn drain(pipe: &mut UnixStream) {
    let mut buffer = [0u8; 64];
    while matches!(pipe.read(&mut buffer), Ok(n) if n > 0) {}
}

/// Runs one job; a panic closes that connection only.
fn serve(Job { mut conn, work }: Job, shared: &Shared) -> Box<Conn> {
    let served = catch_unwind(AssertUnwindSafe(|| conn.service(work, shared)));
    if served.is_err() {
        log::error!(
            "{}: internal error while serving; connection closed",
            conn.describe()
        );
        conn.abandon();
    }
    conn
}
