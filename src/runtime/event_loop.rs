//! The event loop: one thread owns the listeners, every waiting connection,
//! the deadlines and the connection counters. It accepts, hands connections
//! that have something to do to the worker pool and takes them back through
//! a channel plus the single `mio::Waker`.
//!
//! Readiness is edge-triggered. While a worker holds a connection, events
//! for it are remembered on its slot (`pending_io`) and the connection is
//! dispatched again when it comes back, so none is lost. Tokens are never
//! reused, so a late event or completion cannot reach a newer connection.
//! Deadlines live in a heap with lazy deletion: each slot remembers the one
//! entry that is live for it; the earliest entry is the poll timeout.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, DeadlineKind, State, Work};
use super::limits::JOBS_PER_WORKER;
use super::limits::{ConnectionCounter, Refusal, HARD_STOP_AFTER_GRACE};
use super::pool::{self, Job, Pool};
use super::Shared;
use crate::proto::reply::Reply;
use crate::proto::session::{AuthResult, EnqueueError, Role};
use crate::queue::QueueId;

/// The waker's token.
pub(crate) const WAKER: Token = Token(0);
/// The signal self-pipe's token.
pub(crate) const SIGNALS: Token = Token(1);
/// Listener `i` has token `FIRST_LISTENER + i`.
const FIRST_LISTENER: usize = 2;
/// Connection tokens count up from here and are never reused.
const FIRST_CONNECTION: usize = 1 << 16;
/// After a failed accept (e.g. out of file descriptors) try again this soon;
/// edge-triggered listeners would otherwise not report the waiting clients again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The answer of a slow operation run off the workers.
#[derive(Debug)]
pub(crate) enum Completion {
    /// The authenticator's verdict.
    Auth(AuthResult),
    /// The spool's answer.
    Enqueued(Result<QueueId, EnqueueError>),
}

/// What other threads tell the loop.
#[derive(Debug)]
pub(crate) enum LoopMessage {
    /// A worker is done with a connection.
    Returned(Box<Conn>),
    /// A slow operation for the connection with this token finished.
    Completed(Token, Completion),
    /// Stop gracefully (a second request stops at once).
    Stop,
}

/// Sends a message to the loop and wakes it. While a wake is pending the
/// loop will read the channel anyway, so messages sent meanwhile do not
/// wake it again (each wake is a syscall and a turn of the loop).
#[derive(Clone)]
pub(crate) struct Notifier {
    sender: Sender<LoopMessage>,
    waker: Arc<Waker>,
    wake_pending: Arc<AtomicBool>,
}

/// The loop's end of the [`Notifier`]'s channel.
pub(crate) struct Inbox {
    receiver: Receiver<LoopMessage>,
    wake_pending: Arc<AtomicBool>,
}

/// A notifier and the inbox it delivers to, waking the loop with `waker`.
pub(crate) fn mailbox(waker: Waker) -> (Notifier, Inbox) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let wake_pending = Arc::new(AtomicBool::new(false));
    let notifier = Notifier {
        sender,
        waker: Arc::new(waker),
        wake_pending: Arc::clone(&wake_pending),
    };
    (
        notifier,
        Inbox {
            receiver,
            wake_pending,
        },
    )
}

impl Notifier {
    /// Delivers `message`; after the loop has gone it is dropped.
    pub fn send(&self, message: LoopMessage) {
        if self.sender.send(message).is_err() || self.wake_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = self.waker.wake() {
            // Let the next message try again.
            self.wake_pending.store(false, Ordering::Release);
            log::error!("cannot wake the event loop: {e}");
        }
    }
}

impl Inbox {
    /// Every message sent so far, then the channel is empty. Messages sent
    /// from the call on wake the loop again.
    fn drain(&self) -> Vec<LoopMessage> {
        // Cleared before reading: a message that finds the flag set is
        // read below; one that finds it clear wakes the loop.
        self.wake_pending.swap(false, Ordering::AcqRel);
        self.receiver.try_iter().collect()
    }
}

/// A bound listener and its role.
pub(crate) struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// What connections on it are for.
    pub role: Role,
    /// The bound address (port 0 resolved).
    pub address: SocketAddr,
}

/// The loop's record of one connection.
struct Slot {
    /// The connection while it is at home; `None` while a worker has it.
    conn: Option<Box<Conn>>,
    /// The client IP, for the counters when it closes.
    ip: IpAddr,
    /// Readiness arrived while the connection was away or parked.
    pending_io: bool,
    /// A completion arrived while the connection was at a worker.
    completion: Option<Completion>,
    /// The deadline of the live heap entry for this slot.
    scheduled: Option<Instant>,
}

/// The event loop's state; [`EventLoop::run`] is the thread's body.
pub(crate) struct EventLoop {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Option<UnixStream>,
    inbox: Inbox,
    shared: Arc<Shared>,
    pool: Pool,
    slots: HashMap<Token, Slot>,
    next_token: usize,
    counter: ConnectionCounter,
    timers: BinaryHeap<Reverse<(Instant, Token)>>,
    backlog: VecDeque<Job>,
    grace_deadline: Option<Instant>,
    hard_stop: Option<Instant>,
    accept_retry: Option<Instant>,
}

impl EventLoop {
    /// Registers the listeners (and the signal pipe) with `poll`.
    pub fn new(
        poll: Poll,
        mut listeners: Vec<Listener>,
        mut signals: Option<UnixStream>,
        inbox: Inbox,
        shared: Arc<Shared>,
        pool: Pool,
    ) -> io::Result<EventLoop> {
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut listener.socket,
                Token(FIRST_LISTENER + index),
                Interest::READABLE,
            )?;
        }
        if let Some(pipe) = signals.as_mut() {
            poll.registry()
                .register(pipe, SIGNALS, Interest::READABLE)?;
        }
        let counter = ConnectionCounter::new(
            shared.config.max_connections,
            shared.config.max_connections_per_ip,
        );
        Ok(EventLoop {
            poll,
            listeners,
            signals,
            inbox,
            shared,
            pool,
            slots: HashMap::new(),
            next_token: FIRST_CONNECTION,
            counter,
            timers: BinaryHeap::new(),
            backlog: VecDeque::new(),
            grace_deadline: None,
            hard_stop: None,
            accept_retry: None,
        })
    }

    /// Runs until a stop has been requested and every connection is gone
    /// (or the hard stop passed), then joins the workers.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("event loop failed: {e}; stopping");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    SIGNALS => self.on_signal(),
                    Token(t) if t < FIRST_CONNECTION => self.accept(t - FIRST_LISTENER),
                    token => self.on_socket_event(token),
                }
            }
            for message in self.inbox.drain() {
                self.on_message(message);
            }
            self.fire_timers();
            self.flush_backlog();
            if self.finished() {
                break;
            }
        }
        let remaining = self.slots.len();
        if remaining > 0 {
            log::warn!("stopping with {remaining} connections still open");
        }
        self.backlog.clear();
        self.slots.clear();
        self.pool.join();
        log::info!("stopped");
    }

    fn finished(&self) -> bool {
        match self.grace_deadline {
            None => false,
            Some(_) => self.slots.is_empty() || self.hard_stop.is_some_and(|t| Instant::now() >= t),
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        if self.pool.is_inline() && !self.backlog.is_empty() {
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

    fn on_signal(&mut self) {
        let mut buffer = [0u8; 64];
        if let Some(pipe) = self.signals.as_mut() {
            // Drain the self-pipe; the bytes themselves carry no meaning.
            while matches!(pipe.read(&mut buffer), Ok(n) if n > 0) {}
        }
        log::info!("received a stop signal");
        self.begin_stop();
    }

    fn on_message(&mut self, message: LoopMessage) {
        match message {
            LoopMessage::Returned(conn) => self.come_home(conn),
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
                Ok((socket, peer)) => self.admit(socket, peer, role, local),
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

    fn admit(&mut self, mut socket: TcpStream, peer: SocketAddr, role: Role, local: SocketAddr) {
        let ip = peer.ip();
        let trusted = self.shared.config.is_trusted(ip);
        let refusal = if self.pool_saturated() {
            Some((
                "server busy",
                Reply::new(421, (4, 3, 2), "Server busy, please try again later"),
            ))
        } else {
            match self.counter.admit(ip, trusted) {
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
            }
        };
        if let Some((reason, reply)) = refusal {
            log::info!("{peer} on {local}: refused: {reason}");
            // On the implicit-TLS port a plaintext reply would only confuse
            // the client's TLS stack; just close there.
            if role != Role::Submissions {
                let mut bytes = Vec::new();
                reply.and_close().render(&mut bytes);
                let _ = socket.write(&bytes);
            }
            return;
        }
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
            self.counter.release(ip);
            return;
        }
        let conn = Box::new(Conn::new(token, socket, peer, role, &self.shared));
        log::info!(
            "{}: connected to {local}{}",
            conn.describe(),
            if trusted { " (relay network)" } else { "" }
        );
        self.slots.insert(
            token,
            Slot {
                conn: None,
                ip,
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

    /// A connection is back from a worker: close it, give it more work, or
    /// let it wait.
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
            self.counter.release(slot.ip);
        }
        log::info!(
            "{}: disconnected after {:.1}s",
            conn.describe(),
            conn.started.elapsed().as_secs_f64()
        );
    }

    fn dispatch(&mut self, conn: Box<Conn>, work: Work) {
        let job = Job { conn, work };
        if !self.backlog.is_empty() || self.pool.is_inline() {
            self.backlog.push_back(job);
        } else if let Err(job) = self.pool.try_submit(job) {
            self.backlog.push_back(job);
        }
    }

    /// Jobs that did not fit the queue wait here in order; the loop is woken
    /// whenever a worker returns a connection, so they move on soon.
    fn flush_backlog(&mut self) {
        if self.pool.is_inline() {
            // Serve what is waiting now; work it creates waits for the next
            // turn, after the loop has polled again (fairness).
            for _ in 0..self.backlog.len() {
                let Some(job) = self.backlog.pop_front() else {
                    break;
                };
                let conn = pool::serve(job, &self.shared);
                self.come_home(conn);
            }
            return;
        }
        while let Some(job) = self.backlog.pop_front() {
            if let Err(job) = self.pool.try_submit(job) {
                self.backlog.push_front(job);
                break;
            }
        }
    }

    fn pool_saturated(&self) -> bool {
        if self.pool.is_inline() {
            return self.backlog.len() >= JOBS_PER_WORKER;
        }
        !self.backlog.is_empty() || self.pool.is_saturated()
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
                continue; // At a worker; rescheduled when it comes back.
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
    /// second request skips the grace period.
    fn begin_stop(&mut self) {
        if self.grace_deadline.is_some() {
            self.force_stop();
            return;
        }
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        let grace = self.shared.config.shutdown_grace;
        log::info!(
            "stopping: no new connections; {} open sessions have {grace:?} to finish",
            self.slots.len()
        );
        self.grace_deadline = Some(Instant::now() + grace);
    }

    /// The grace period is over: 421 4.3.2 to every session (busy ones as
    /// soon as they come back from their worker or the spool).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The WAKER events `poll` reports at once.
    fn wakes(poll: &mut Poll, events: &mut Events) -> usize {
        poll.poll(events, Some(Duration::ZERO)).unwrap();
        events.iter().filter(|e| e.token() == WAKER).count()
    }

    #[test]
    fn messages_sent_while_a_wake_is_pending_share_it() {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(16);
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let (notifier, inbox) = mailbox(waker);
        notifier.send(LoopMessage::Stop);
        assert_eq!(wakes(&mut poll, &mut events), 1);
        // The loop has woken but not drained yet: these ride on that wake.
        notifier.send(LoopMessage::Stop);
        notifier.send(LoopMessage::Stop);
        assert_eq!(wakes(&mut poll, &mut events), 0);
        assert_eq!(inbox.drain().len(), 3);
        assert_eq!(wakes(&mut poll, &mut events), 0);
        // After a drain the next message wakes the loop again.
        notifier.send(LoopMessage::Stop);
        assert_eq!(wakes(&mut poll, &mut events), 1);
        assert_eq!(inbox.drain().len(), 1);
    }
}
