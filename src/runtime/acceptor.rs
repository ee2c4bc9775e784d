//! The accepting thread: it owns the listeners, the signal pipes and the
//! worker [`Pool`], counts each new connection against the limits (or
//! refuses it) and hands it to the least loaded worker. With `--workers 0`
//! there are no workers and it serves the connections itself, in the
//! serving [`EventLoop`] it drives on the same poll. It also starts the
//! stop: no new connections, the grace period passed on to every loop.
//!
//! May import: `event_loop`, `pool`, `limits`, `mailbox`, `summary` and the
//! parent's `ServerContext` (with its `systemd` notifier); nothing imports
//! this but the parent.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Token};
use parking_lot::Mutex;

use super::event_loop::{EventLoop, FIRST_CONNECTION};
use super::limits::{ConnectionCounter, ConnectionRefusal};
use super::mailbox::{Accepted, Inbox, LoopMessage, WAKER};
use super::pool::Pool;
use super::ServerContext;
use crate::proto::reply::Reply;
use crate::proto::session::Role;

/// The stop signals' self-pipe's token.
const STOP_SIGNAL: Token = Token(1);
/// The reload signal's self-pipe's token.
const RELOAD_SIGNAL: Token = Token(2);
/// Listener `i` has token `FIRST_LISTENER + i` (below the serving loop's
/// [`FIRST_CONNECTION`]).
const FIRST_LISTENER: usize = 3;
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

/// The accepting thread's state; [`Acceptor::run`] is the thread's body.
pub(crate) struct Acceptor {
    /// Serves the connections kept on this thread (`--workers 0`); its poll
    /// is the thread's poll.
    serving: EventLoop,
    /// This thread's mailbox: stop requests, workers' ends, and the
    /// answers for connections served here.
    inbox: Inbox,
    listeners: Vec<Listener>,
    signals: Option<SignalPipes>,
    pool: Pool,
    counter: Arc<Mutex<ConnectionCounter>>,
    shared: Arc<ServerContext>,
    accept_retry: Option<Instant>,
}

impl Acceptor {
    /// Registers the listeners (and the signal pipes) with `serving`'s
    /// poll; new connections go to `pool`, or to `serving` when the pool
    /// is empty. `inbox` is the mailbox `serving`'s notifier delivers to.
    pub fn new(
        serving: EventLoop,
        inbox: Inbox,
        shared: Arc<ServerContext>,
        counter: Arc<Mutex<ConnectionCounter>>,
        mut listeners: Vec<Listener>,
        mut signals: Option<SignalPipes>,
        pool: Pool,
    ) -> io::Result<Acceptor> {
        let registry = serving.registry();
        for (index, listener) in listeners.iter_mut().enumerate() {
            registry.register(
                &mut listener.socket,
                Token(FIRST_LISTENER + index),
                Interest::READABLE,
            )?;
        }
        if let Some(pipes) = signals.as_mut() {
            registry.register(&mut pipes.stop, STOP_SIGNAL, Interest::READABLE)?;
            registry.register(&mut pipes.reload, RELOAD_SIGNAL, Interest::READABLE)?;
        }
        Ok(Acceptor {
            serving,
            inbox,
            listeners,
            signals,
            pool,
            counter,
            shared,
            accept_retry: None,
        })
    }

    /// Runs until a stop has been requested, every connection is gone (or
    /// the hard stop passed) and every worker loop has ended.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            match self.serving.poll(&mut events, self.accept_retry) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("event loop failed: {e}; stopping");
                    // Twice: the workers skip the grace period too.
                    self.pool.stop();
                    self.pool.stop();
                    break;
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    STOP_SIGNAL => self.on_stop_signal(),
                    RELOAD_SIGNAL => self.on_reload_signal(),
                    Token(t) if t < FIRST_CONNECTION => self.accept(t - FIRST_LISTENER),
                    token => self.serving.on_event(token, event.is_read_closed()),
                }
            }
            for message in self.inbox.drain() {
                match message {
                    LoopMessage::WorkerStopped => self.pool.worker_stopped(),
                    LoopMessage::Stop => self.begin_stop(),
                    message => self.serving.on_message(message),
                }
            }
            if self.accept_retry.is_some_and(|t| t <= Instant::now()) {
                self.accept_retry = None;
                for index in 0..self.listeners.len() {
                    self.accept(index);
                }
            }
            self.serving.serve();
            if self.serving.finished() && self.pool.all_stopped() {
                break;
            }
        }
        self.serving.end();
        self.pool.join();
    }

    fn on_stop_signal(&mut self) {
        if let Some(pipes) = self.signals.as_mut() {
            drain(&mut pipes.stop);
        }
        log::info!("received a stop signal");
        self.begin_stop();
    }

    /// SIGHUP: the users file, the alias file, the TLS certificate, the
    /// DKIM keys and the `--user-limits` file are read again; a file that
    /// fails to load leaves its old version in force. All are small: new
    /// connections wait for the reading only a moment.
    fn on_reload_signal(&mut self) {
        if let Some(pipes) = self.signals.as_mut() {
            drain(&mut pipes.reload);
        }
        log::info!(
            "received SIGHUP: reloading the users file, the aliases, the certificate, the DKIM keys and the user limits"
        );
        self.shared.systemd.reloading();
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
        match self.shared.dkim.reload(crate::dkim::store::now_secs()) {
            Ok(_) => log::info!(
                "DKIM keys in force: {}",
                self.shared.dkim.in_force().join(", ")
            ),
            Err(e) => log::error!("DKIM keys not reloaded, the previous ones stay in use: {e}"),
        }
        match self.shared.quota.reload_user_limits() {
            Ok(Some(count)) => log::info!("user limits: {count} in force"),
            Ok(None) => {}
            Err(e) => log::error!("user limits not reloaded, the previous ones stay in force: {e}"),
        }
        super::summary::log_summary(&self.shared);
        self.shared.systemd.ready("serving");
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
        // A load balancer is exempt from the per-address limit: its
        // connections count under the clients its headers name.
        let exempt = self.shared.config.is_trusted(ip) || self.shared.config.is_proxy(ip);
        let refusal = match self.counter.lock().admit(ip, exempt) {
            Ok(()) => None,
            Err(ConnectionRefusal::TooManyTotal) => Some((
                "too many connections",
                Reply::new(
                    421,
                    (4, 7, 0),
                    "Too many connections, please try again later",
                ),
            )),
            Err(ConnectionRefusal::TooManyFromIp) => Some((
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
            self.serving.adopt_own(accepted);
        } else if !self.pool.hand_over(accepted) {
            log::error!("{peer}: no worker took the connection; closed");
            self.counter.lock().release(ip);
        }
    }

    /// Stops accepting, passes the stop on to the workers and gives the
    /// sessions served here the grace period; a second request skips the
    /// grace period everywhere.
    fn begin_stop(&mut self) {
        self.shared.systemd.stopping();
        self.pool.stop();
        if !self.listeners.is_empty() {
            log::info!(
                "stopping: no new connections; {} open sessions have {:?} to finish",
                self.counter.lock().total(),
                self.shared.config.shutdown_grace
            );
        }
        for mut listener in self.listeners.drain(..) {
            let _ = self.serving.registry().deregister(&mut listener.socket);
        }
        self.serving.begin_stop();
    }
}

/// Empties a signal self-pipe; the bytes themselves carry no meaning.
fn drain(pipe: &mut UnixStream) {
    let mut buffer = [0u8; 64];
    while matches!(pipe.read(&mut buffer), Ok(n) if n > 0) {}
}
