//! The serving event loop: one thread's `mio::Poll`, the connections it
//! owns, their deadlines, and the queue of connections ready to be served.
//! Each worker thread runs one ([`EventLoop::run`]); the accepting thread
//! drives one from its `Acceptor`, which gives it connections only with
//! `--workers 0`. A loop serves its connections itself ([`Connection::service`]);
//! slow work (password checks, spooling) runs on other threads and answers
//! through the loop's mailbox. A connection stays on one loop for its whole
//! life.
//!
//! Readiness is edge-triggered. While a connection waits in the ready queue
//! or for a slow operation, events for it are remembered on its slot
//! (`pending_io`) and served when it can take them, so none is lost. Tokens
//! are never reused, so a late event or completion cannot reach a newer
//! connection. Deadlines live in a heap with lazy deletion: each slot
//! remembers the one entry that is live for it; the earliest entry is the
//! poll timeout.
//!
//! May import: `connection`, `limits`, `mailbox` and the parent's `ServerContext`; never
//! `acceptor` or `pool`, which drive loops.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use parking_lot::Mutex;

use super::connection::{Connection, ConnectionState, DeadlineKind, Work};
use super::limits::{ConnectionCounter, HARD_STOP_AFTER_GRACE};
use super::mailbox::{Accepted, Completion, Inbox, LoopMessage, Notifier, WAKER};
use super::ServerContext;

/// Connection tokens count up from here and are never reused; the tokens
/// below are the waker's and the accepting thread's own (signals,
/// listeners).
pub(crate) const FIRST_CONNECTION: usize = 1 << 16;

/// A connection and what to do with it.
struct Job {
    conn: Box<Connection>,
    work: Work,
}

/// The loop's record of one connection.
struct Slot {
    /// The connection while it waits; `None` while it is in the ready queue.
    conn: Option<Box<Connection>>,
    /// Readiness arrived while the connection was queued or parked.
    pending_io: bool,
    /// The client's FIN has arrived (a read-closed event), not yet told to
    /// the connection.
    read_closed: bool,
    /// A completion arrived while the connection was queued.
    completion: Option<Completion>,
    /// The deadline of the live heap entry for this slot.
    scheduled: Option<Instant>,
}

/// Where the loop is in stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving as usual.
    Serving,
    /// A stop was requested: sessions may finish until `until`.
    Grace {
        /// The end of the grace period.
        until: Instant,
    },
    /// The grace period is over and every session has been told 421;
    /// connections still open at `until` are dropped.
    Forced {
        /// The hard stop.
        until: Instant,
    },
}

/// A serving loop's state.
pub(crate) struct EventLoop {
    poll: Poll,
    /// This loop's own mailbox, for its connections' slow operations.
    notify: Notifier,
    shared: Arc<ServerContext>,
    /// Every loop's connections, counted when admitted and released here
    /// when they close.
    counter: Arc<Mutex<ConnectionCounter>>,
    /// Connections on this loop (the pool balances by it).
    open: Arc<AtomicUsize>,
    slots: HashMap<Token, Slot>,
    next_token: usize,
    timers: BinaryHeap<Reverse<(Instant, Token)>>,
    ready: VecDeque<Job>,
    phase: Phase,
}

impl EventLoop {
    /// A loop polling `poll`, whose connections' slow operations answer
    /// through `notify` (which must deliver to the inbox its driver reads).
    /// Closing connections are released from `counter` and counted off
    /// `open`.
    pub fn new(
        poll: Poll,
        notify: Notifier,
        shared: Arc<ServerContext>,
        counter: Arc<Mutex<ConnectionCounter>>,
        open: Arc<AtomicUsize>,
    ) -> EventLoop {
        EventLoop {
            poll,
            notify,
            shared,
            counter,
            open,
            slots: HashMap::new(),
            next_token: FIRST_CONNECTION,
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            phase: Phase::Serving,
        }
    }

    /// A worker thread's body: serves the connections handed over through
    /// `inbox` until a stop has been requested and every connection is
    /// gone (or the hard stop passed).
    pub fn run(mut self, inbox: Inbox) {
        let mut events = Events::with_capacity(1024);
        loop {
            match self.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("event loop failed: {e}; stopping");
                    break;
                }
            }
            for event in events.iter() {
                self.on_event(event.token(), event.is_read_closed());
            }
            for message in inbox.drain() {
                self.on_message(message);
            }
            self.serve();
            if self.finished() {
                break;
            }
        }
        self.end();
    }

    /// Where the driver registers its own sources (below
    /// [`FIRST_CONNECTION`]).
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Waits for events until this loop's next deadline, or `also_by` if
    /// that is earlier; at once when connections are ready.
    pub fn poll(&mut self, events: &mut Events, also_by: Option<Instant>) -> io::Result<()> {
        let timeout = if self.ready.is_empty() {
            let mut earliest = self.timers.peek().map(|Reverse((t, _))| *t);
            let phase_ends = match self.phase {
                Phase::Serving => None,
                Phase::Grace { until } | Phase::Forced { until } => Some(until),
            };
            for t in [phase_ends, also_by].into_iter().flatten() {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            earliest.map(|t| t.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO)
        };
        self.poll.poll(events, timeout)
    }

    /// Readiness for one of this loop's tokens; `read_closed` when the
    /// event says the peer has closed its side.
    pub fn on_event(&mut self, token: Token, read_closed: bool) {
        match token {
            WAKER => {}
            token => self.on_socket_event(token, read_closed),
        }
    }

    /// A message from another thread.
    pub fn on_message(&mut self, message: LoopMessage) {
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
                        if std::mem::take(&mut slot.read_closed) {
                            conn.mark_peer_closing();
                        }
                        self.dispatch(conn, Work::from(completion));
                    }
                    None => slot.completion = Some(completion),
                }
            }
            LoopMessage::Stop => self.begin_stop(),
            // Only the accepting thread starts workers, and its acceptor
            // counts their ends.
            LoopMessage::WorkerStopped => {}
        }
    }

    /// Fires the deadlines that have passed, then serves the connections
    /// that are ready.
    pub fn serve(&mut self) {
        self.fire_timers();
        self.serve_ready();
    }

    /// A stop has been requested and every connection is gone (or the hard
    /// stop has passed).
    pub fn finished(&self) -> bool {
        match self.phase {
            Phase::Serving => false,
            Phase::Grace { .. } => self.slots.is_empty(),
            Phase::Forced { until } => self.slots.is_empty() || Instant::now() >= until,
        }
    }

    /// Drops the connections that are left (after [`Self::finished`], or
    /// when polling failed).
    pub fn end(mut self) {
        let remaining = self.slots.len();
        if remaining > 0 {
            log::warn!("stopping with {remaining} connections still open");
        }
        self.ready.clear();
        self.slots.clear();
    }

    /// Takes in a connection the accepting thread admitted for this loop
    /// itself (`--workers 0`), counting it as the pool counts one it hands
    /// a worker.
    pub fn adopt_own(&mut self, accepted: Accepted) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.adopt(accepted);
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
        let conn = Box::new(Connection::new(
            token,
            socket,
            peer,
            role,
            self.notify.clone(),
            &self.shared,
        ));
        crate::metrics::connection(super::role_name(role));
        log::info!(
            "{}: connected to {local}{}",
            conn.describe(),
            if conn.trusted { " (relay network)" } else { "" }
        );
        self.slots.insert(
            token,
            Slot {
                conn: None,
                pending_io: false,
                read_closed: false,
                completion: None,
                scheduled: None,
            },
        );
        if conn.has_output() || conn.state() == ConnectionState::Closed {
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

    fn on_socket_event(&mut self, token: Token, read_closed: bool) {
        let Some(slot) = self.slots.get_mut(&token) else {
            return; // A late event for a connection that is gone.
        };
        slot.read_closed |= read_closed;
        match slot.conn.take() {
            Some(mut conn) if !conn.is_parked() => {
                slot.pending_io = false;
                if std::mem::take(&mut slot.read_closed) {
                    conn.mark_peer_closing();
                }
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
    fn come_home(&mut self, mut conn: Box<Connection>) {
        let token = conn.token;
        if conn.state() == ConnectionState::Closed {
            self.close(conn);
            return;
        }
        let forcing = matches!(self.phase, Phase::Forced { .. });
        let Some(slot) = self.slots.get_mut(&token) else {
            return;
        };
        if slot.pending_io {
            conn.mark_readable();
        }
        if std::mem::take(&mut slot.read_closed) {
            conn.mark_peer_closing();
        }
        let work = if let Some(completion) = slot.completion.take() {
            Some(Work::from(completion))
        } else if forcing && !conn.is_parked() && conn.state() != ConnectionState::Closing {
            Some(Work::Shutdown)
        } else if conn.yielded() || (slot.pending_io && !conn.is_parked()) {
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
    fn park_at_home(&mut self, conn: Box<Connection>) {
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

    fn close(&mut self, mut conn: Box<Connection>) {
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if self.slots.remove(&conn.token).is_some() {
            // The address it counts under: its client's, once a PROXY
            // header named one.
            self.forget(conn.peer.ip());
        }
        log::info!(
            "{}: disconnected after {:.1}s",
            conn.describe(),
            conn.started.elapsed().as_secs_f64()
        );
    }

    fn dispatch(&mut self, conn: Box<Connection>, work: Work) {
        self.ready.push_back(Job { conn, work });
    }

    /// Serves the connections that are ready now; work that creates waits
    /// for the next turn, after the loop has polled again (fairness).
    fn serve_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(job) = self.ready.pop_front() else {
                break;
            };
            let conn = run_job(job, &self.shared);
            self.come_home(conn);
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        if matches!(self.phase, Phase::Grace { until } if until <= now) {
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
                        DeadlineKind::ReplyDue => Work::ReplyDue,
                        DeadlineKind::Timeout => Work::TimedOut,
                    };
                    self.dispatch(conn, work);
                }
                _ => self.park_at_home(conn),
            }
        }
    }

    /// Gives the sessions the grace period to finish; a second request
    /// skips the grace period.
    pub fn begin_stop(&mut self) {
        match self.phase {
            Phase::Serving => {
                self.phase = Phase::Grace {
                    until: Instant::now() + self.shared.config.shutdown_grace,
                }
            }
            Phase::Grace { .. } | Phase::Forced { .. } => self.force_stop(),
        }
    }

    /// The grace period is over: 421 4.3.2 to every session (busy ones as
    /// soon as they come back from the spool).
    fn force_stop(&mut self) {
        if matches!(self.phase, Phase::Forced { .. }) {
            return;
        }
        self.phase = Phase::Forced {
            until: Instant::now() + HARD_STOP_AFTER_GRACE,
        };
        let tokens: Vec<Token> = self.slots.keys().copied().collect();
        for token in tokens {
            let Some(slot) = self.slots.get_mut(&token) else {
                continue;
            };
            let idle = slot
                .conn
                .as_ref()
                .is_some_and(|c| !c.is_parked() && c.state() != ConnectionState::Closing);
            if idle {
                if let Some(conn) = slot.conn.take() {
                    self.dispatch(conn, Work::Shutdown);
                }
            }
        }
    }
}

/// Runs one job; a panic closes that connection only.
fn run_job(Job { mut conn, work }: Job, shared: &ServerContext) -> Box<Connection> {
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
