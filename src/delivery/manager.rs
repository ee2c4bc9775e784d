//! The queue manager: a scheduler thread and a fixed pool of delivery
//! threads (`--max-outbound-connections`), no async runtime.
//!
//! The scheduler loads every spooled message at start-up (so mail accepted
//! before a crash or `kill -9` is delivered), keeps a timer heap by next
//! attempt time, and hands due messages to the pool; a message is on at
//! most one thread at a time. A delivery thread runs one attempt of one
//! message (`attempt.rs`: the delivery I/O; `decide.rs`: what the results
//! mean, as a pure plan; `execute.rs`: the plan applied to the spool) and
//! reports back when to try it next and which reports it spooled. Recipients of one destination (a domain's MX, a
//! `--transport` host, the smarthost) are delivered in one transaction.
//! How many connections a destination gets at once, and which idle
//! session carries the next message to it, is the pool's
//! (`delivery::pool`); the scheduler closes idle sessions when their time
//! is up, and shutdown closes them all with QUIT.
//!
//! The server calls [`DeliveryHandle::notify`] after each 250.
//!
//! Flushing while the server runs: `outpost queue flush` is another
//! process, so it cannot use the handle. It sets `next-attempt` to 0 in
//! every envelope file (`Spool::update`) and then creates
//! `<data-dir>/queue/flush` ([`request_flush`]). The scheduler looks for
//! that file every second; when it is there it deletes it and rescans the
//! spool, scheduling every message by the `next-attempt` its file now
//! says. A rescan also picks up messages it did not know about.

mod attempt;
mod decide;
mod execute;
mod report;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustls::ClientConfig;

use super::config::DeliveryConfig;
use super::dns::{DnsError, Resolver, ResolverConfig};
use super::maildir::MailStore;
use super::myself::OwnAddresses;
use super::outbound::{self, CertPolicy, OutboundError};
use super::pool::Pool;
use crate::directory::LocalDirectory;
use crate::proto::sasl::Credentials;
use crate::queue::{QueueError, QueueId, Spool};
use crate::work_queue::WorkQueue;
use attempt::{now_millis, Finished, Next};

/// The name of the flush request file in the spool directory.
pub const FLUSH_FILE: &str = "flush";
/// How often the scheduler looks for the flush request file.
pub const FLUSH_CHECK: Duration = Duration::from_secs(1);

/// Errors when starting delivery.
#[derive(Debug)]
pub enum DeliveryError {
    /// The outbound TLS configuration could not be built (bad `--relay-ca`).
    Tls(OutboundError),
    /// The relay password file could not be read.
    Password {
        /// The password file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// `--relay-user` without `--relay-password-file`.
    RelayUserWithoutPassword,
    /// `--relay-password-file` without `--relay-user`.
    RelayPasswordWithoutUser,
    /// `--transport DOMAIN=relay` without `--relay-host`.
    RelayTransportWithoutHost,
    /// The spool could not be listed.
    Queue(QueueError),
    /// A thread could not be started.
    Spawn(std::io::Error),
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::Tls(e) => e.fmt(f),
            DeliveryError::Password { path, source } => {
                write!(f, "relay password file {}: {source}", path.display())
            }
            DeliveryError::RelayUserWithoutPassword => {
                write!(
                    f,
                    "delivery settings: --relay-user needs --relay-password-file"
                )
            }
            DeliveryError::RelayPasswordWithoutUser => {
                write!(
                    f,
                    "delivery settings: --relay-password-file needs --relay-user"
                )
            }
            DeliveryError::RelayTransportWithoutHost => write!(
                f,
                "delivery settings: --transport DOMAIN=relay needs --relay-host"
            ),
            DeliveryError::Queue(e) => e.fmt(f),
            DeliveryError::Spawn(e) => write!(f, "cannot start a delivery thread: {e}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// What the delivery threads share.
pub(crate) struct Context {
    config: DeliveryConfig,
    spool: Arc<Spool>,
    /// Where each local recipient goes (the answer RCPT was given).
    directory: Arc<LocalDirectory>,
    /// The resolver, or why there is none (no usable resolv.conf).
    resolver: Result<Resolver, DnsError>,
    mx_tls: Arc<ClientConfig>,
    relay_tls: Arc<ClientConfig>,
    credentials: Option<Credentials>,
    mail: MailStore,
    /// Connection limits per destination and idle sessions.
    pool: Pool,
    stopping: Arc<AtomicBool>,
    /// Closed on shutdown so that no delivery thread waits on a silent peer.
    connections: outbound::OpenConnections,
    /// Our own listeners, never a next hop.
    own: OwnAddresses,
}

/// What the scheduler thread is told: new mail, a flush, a finished
/// attempt, a stop.
enum SchedulerMsg {
    Notify(QueueId),
    Flush,
    Finished(Finished),
    Shutdown,
}

/// The queue manager; see the module docs.
pub struct Delivery;

impl Delivery {
    /// Starts the scheduler and `config.max_outbound_connections` delivery
    /// threads for `spool`. Local recipients go where `directory` says
    /// (aliases, postmaster, users' mailboxes). Every message already in the spool
    /// is scheduled by its recorded next attempt.
    pub fn start(
        config: DeliveryConfig,
        spool: Arc<Spool>,
        directory: Arc<LocalDirectory>,
    ) -> Result<DeliveryHandle, DeliveryError> {
        if config.relay_is_per_domain() && config.relay_host.is_none() {
            return Err(DeliveryError::RelayTransportWithoutHost);
        }
        let credentials = match (&config.relay_user, &config.relay_password_file) {
            (Some(user), Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| DeliveryError::Password {
                        path: path.clone(),
                        source,
                    })?;
                Some(Credentials {
                    username: user.clone(),
                    password: text.lines().next().unwrap_or("").to_string(),
                })
            }
            (Some(_), None) => return Err(DeliveryError::RelayUserWithoutPassword),
            (None, Some(_)) => return Err(DeliveryError::RelayPasswordWithoutUser),
            (None, None) => None,
        };
        // Set when delivery stops; DNS questions in flight are abandoned.
        let stopping = Arc::new(AtomicBool::new(false));
        let resolver = match config.dns_server {
            Some(server) => Ok(ResolverConfig::with_server(server)),
            None => ResolverConfig::from_system(),
        }
        .map(|config| Resolver::new(config).stopped_by(stopping.clone()));
        if let Err(why) = &resolver {
            log::warn!("delivery: no DNS resolver ({why}); remote mail will wait");
        }
        let mx_tls = outbound::tls_config(config.outbound_tls, None).map_err(DeliveryError::Tls)?;
        // The smarthost gets our password: always verify it (RFC 8314 §5).
        let relay_tls = outbound::tls_config(CertPolicy::Verify, config.relay_ca.as_deref())
            .map_err(DeliveryError::Tls)?;
        let workers = config.max_outbound_connections.max(1);
        let mail = MailStore::new(&config.data_dir, &config.hostname)
            .group_access(config.maildir_group_access);
        // Before any delivery thread runs, so no file of ours is being written.
        clean_maildir_tmp(&mail, &spool);
        // Bounded by the delivery threads: each holds one connection.
        let per_destination = config.max_connections_per_destination.min(workers);
        let context = Arc::new(Context {
            mail,
            own: OwnAddresses::new(&config.listening),
            config,
            spool,
            directory,
            resolver,
            mx_tls,
            relay_tls,
            credentials,
            pool: Pool::new(per_destination, workers),
            stopping,
            connections: outbound::OpenConnections::default(),
        });

        let (commands, command_rx) = crossbeam_channel::unbounded();
        let jobs = Arc::new(WorkQueue::default());
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let ctx = context.clone();
            let queue = Arc::clone(&jobs);
            let done = commands.clone();
            let thread = std::thread::Builder::new()
                .name(format!("delivery-{n}"))
                .spawn(move || worker(&ctx, &queue, &done));
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    context.stopping.store(true, Ordering::Relaxed);
                    jobs.close();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(DeliveryError::Spawn(e));
                }
            }
        }
        let scheduler = Scheduler {
            ctx: context.clone(),
            jobs,
            commands: command_rx,
            workers: threads,
            heap: BinaryHeap::new(),
            due: HashMap::new(),
            running: HashSet::new(),
            again: HashSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("delivery-scheduler".into())
            .spawn(move || scheduler.run())
            .map_err(DeliveryError::Spawn)?;
        Ok(DeliveryHandle {
            commands,
            scheduler: Some(thread),
            context,
        })
    }
}

/// Removes abandoned files from the mailboxes' `tmp/` (the rule is
/// [`MailStore::clean_tmp`]'s) and logs how many there were.
fn clean_maildir_tmp(mail: &MailStore, spool: &Spool) {
    let is_queued = |id: &QueueId| spool.message_path(id).exists();
    let removed = mail.clean_tmp(std::time::SystemTime::now(), &is_queued);
    if removed > 0 {
        log::info!("maildir: removed {removed} abandoned files from tmp/");
    }
}

/// Creates the flush request file for a running server (see the module
/// docs); the caller has already set `next-attempt` in the files.
pub fn request_flush(spool_dir: &Path) -> std::io::Result<()> {
    std::fs::write(spool_dir.join(FLUSH_FILE), b"")
}

/// The running manager. Dropping it shuts it down.
pub struct DeliveryHandle {
    commands: Sender<SchedulerMsg>,
    scheduler: Option<JoinHandle<()>>,
    context: Arc<Context>,
}

/// Tells the manager about newly spooled messages, from any thread.
#[derive(Clone)]
pub struct NewMail(Sender<SchedulerMsg>);

impl NewMail {
    /// A message was spooled (call after its 250): deliver it now.
    pub fn notify(&self, id: QueueId) {
        let _ = self.0.send(SchedulerMsg::Notify(id));
    }
}

impl DeliveryHandle {
    /// A message was spooled (call after its 250): deliver it now.
    pub fn notify(&self, id: QueueId) {
        let _ = self.commands.send(SchedulerMsg::Notify(id));
    }

    /// A handle for [`NewMail::notify`] that other threads can keep.
    pub fn new_mail(&self) -> NewMail {
        NewMail(self.commands.clone())
    }

    /// Try every waiting message now.
    pub fn flush(&self) {
        let _ = self.commands.send(SchedulerMsg::Flush);
    }

    /// Stops the scheduler and the delivery threads and waits for them.
    /// A message being delivered finishes its current destination; the
    /// rest of it stays queued for the next start.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.context.stopping.store(true, Ordering::Relaxed);
        self.context.pool.close_all();
        self.context.connections.close_all();
        let _ = self.commands.send(SchedulerMsg::Shutdown);
        if let Some(thread) = self.scheduler.take() {
            if thread.join().is_err() {
                log::error!("delivery: the scheduler thread panicked");
            }
        }
    }
}

impl Drop for DeliveryHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(ctx: &Context, jobs: &WorkQueue<QueueId>, done: &Sender<SchedulerMsg>) {
    while let Some(id) = jobs.pop() {
        let finished =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attempt::run(ctx, &id)))
                .unwrap_or_else(|_| {
                    log::error!("{id}: delivery thread panicked; trying again later");
                    Finished {
                        id: id.clone(),
                        next: Next::RetryAt(attempt::now_secs() + 300),
                        injected: Vec::new(),
                    }
                });
        if done.send(SchedulerMsg::Finished(finished)).is_err() {
            return;
        }
    }
}

struct Scheduler {
    ctx: Arc<Context>,
    /// Messages for the delivery threads; closed when delivery stops.
    jobs: Arc<WorkQueue<QueueId>>,
    commands: Receiver<SchedulerMsg>,
    workers: Vec<JoinHandle<()>>,
    /// (due time in ms, id); entries whose time no longer matches `due`
    /// are stale and skipped.
    heap: BinaryHeap<Reverse<(u64, QueueId)>>,
    due: HashMap<QueueId, u64>,
    running: HashSet<QueueId>,
    /// Running messages to try again as soon as they come back (flush).
    again: HashSet<QueueId>,
}

impl Scheduler {
    fn run(mut self) {
        self.rescan(false);
        let mut last_check = Instant::now();
        loop {
            self.dispatch();
            let wait = self.wait_time();
            match self.commands.recv_timeout(wait) {
                Ok(SchedulerMsg::Notify(id)) => self.schedule(id, 0),
                Ok(SchedulerMsg::Flush) => self.flush_all(),
                Ok(SchedulerMsg::Finished(f)) => self.finished(f),
                Ok(SchedulerMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.ctx.pool.close_expired();
            if last_check.elapsed() >= FLUSH_CHECK {
                last_check = Instant::now();
                self.check_flush_file();
            }
        }
        self.ctx.stopping.store(true, Ordering::Relaxed);
        self.jobs.close();
        for thread in self.workers.drain(..) {
            if thread.join().is_err() {
                log::error!("delivery: a delivery thread panicked");
            }
        }
    }

    /// Loads every message in the spool and schedules it by its file.
    /// After a flush request, messages on a delivery thread go again as
    /// soon as they come back.
    fn rescan(&mut self, flush: bool) {
        let ids = match self.ctx.spool.list() {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("delivery: cannot list the queue: {e}");
                return;
            }
        };
        for id in ids {
            if self.running.contains(&id) {
                if flush {
                    self.again.insert(id);
                }
                continue;
            }
            match self.ctx.spool.load(&id) {
                Ok(message) => self.schedule(id, message.next_attempt.saturating_mul(1000)),
                Err(QueueError::Corrupt { path, reason }) => {
                    log::error!(
                        "{id}: corrupt queue file {}: {reason}; moving it to queue/corrupt/",
                        path.display()
                    );
                    if let Err(e) = self.ctx.spool.quarantine(&id) {
                        log::error!("{id}: quarantine failed: {e}");
                    }
                }
                // Removed meanwhile (delivered, or deleted by the tool).
                Err(_) => {}
            }
        }
    }

    fn check_flush_file(&mut self) {
        let path = self.ctx.spool.dir().join(FLUSH_FILE);
        if path.exists() {
            if let Err(e) = std::fs::remove_file(&path) {
                log::error!("delivery: cannot remove {}: {e}", path.display());
            }
            log::info!("delivery: flush requested; rescanning the queue");
            self.rescan(true);
        }
    }

    /// Schedules `id` at `at_ms` (0: now). A message on a delivery thread
    /// is left alone: when it comes back it says when it is due.
    fn schedule(&mut self, id: QueueId, at_ms: u64) {
        if self.running.contains(&id) {
            return;
        }
        self.due.insert(id.clone(), at_ms);
        self.heap.push(Reverse((at_ms, id)));
    }

    /// Everything waiting is due now; what is running goes again as soon
    /// as it comes back.
    fn flush_all(&mut self) {
        let waiting: Vec<QueueId> = self.due.keys().cloned().collect();
        for id in waiting {
            self.schedule(id, 0);
        }
        self.again.extend(self.running.iter().cloned());
    }

    fn finished(&mut self, f: Finished) {
        self.running.remove(&f.id);
        let again = self.again.remove(&f.id);
        for id in f.injected {
            self.schedule(id, 0);
        }
        match f.next {
            Next::Removed | Next::Gone => {}
            Next::RetryAt(secs) => {
                let at = if again { 0 } else { secs.saturating_mul(1000) };
                self.schedule(f.id, at);
            }
        }
    }

    /// Hands due messages to idle delivery threads.
    fn dispatch(&mut self) {
        let now = now_millis();
        while self.running.len() < self.workers.len() {
            let Some(Reverse((at, id))) = self.heap.peek().cloned() else {
                break;
            };
            if self.due.get(&id) != Some(&at) {
                self.heap.pop();
                continue;
            }
            if at > now {
                break;
            }
            self.heap.pop();
            self.due.remove(&id);
            if self.jobs.push(id.clone()).is_err() {
                break;
            }
            self.running.insert(id);
        }
    }

    /// Until the next due message or idle session expiry, at most
    /// [`FLUSH_CHECK`].
    fn wait_time(&mut self) -> Duration {
        let limit = match self.ctx.pool.until_next_expiry() {
            Some(expiry) => expiry.min(FLUSH_CHECK),
            None => FLUSH_CHECK,
        };
        self.due_in().min(limit)
    }

    /// Until the next due message, at most [`FLUSH_CHECK`].
    fn due_in(&mut self) -> Duration {
        if self.running.len() >= self.workers.len() {
            return FLUSH_CHECK;
        }
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if self.due.get(id) == Some(at) {
                let left = at.saturating_sub(now_millis());
                return Duration::from_millis(left).min(FLUSH_CHECK);
            }
            self.heap.pop();
        }
        FLUSH_CHECK
    }
}
