//! The I/O edge of the server, and the only home of mio, server-side rustls
//! I/O and the protocol worker threads.
//!
//! The accepting thread (`acceptor`) owns the listeners and the signals and
//! feeds each new connection (`connection`) to a fixed pool of workers (`pool`);
//! each worker runs its own serving event loop (`event_loop`) and the
//! protocol for its connections, whose bytes pass through a plain or TLS
//! `transport`. Password checks and spooling run on the authenticator's and
//! the spool writer's own threads and answer through the loop's mailbox
//! (`mailbox`), so a worker never waits for them.
//!
//! `metrics_endpoint` serves the counters over HTTP (`--metrics`).
//!
//! At start and after each reload, `summary` logs one line saying what is
//! running, with warnings for what needs attention (the certificate's
//! expiry and names, `--sink`); `systemd` tells a `Type=notify` unit's
//! manager when the server is ready, reloading and stopping.
//!
//! Imports among these files point one way: `acceptor` → `pool` →
//! `event_loop` → `connection` → `transport`, with `mailbox` and `limits` below
//! them all; each file's doc names what it may import.
//!
//! [`Server::start`] is the library entry point (tests use it with port-0
//! listeners); the `outpost` command line (`cli`) prepares the data
//! directory on the first start and calls it.

mod acceptor;
mod connection;
mod event_loop;
pub mod limits;
mod mailbox;
pub mod metrics_endpoint;
mod pool;
pub mod summary;
mod systemd;
mod transport;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::auth::quota::{DailyLimits, QuotaError, SendingQuota};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::delivery::manager::{Delivery, DeliveryError, DeliveryHandle, NewMail};
use crate::delivery::sign::Signing;
use crate::directory::{AliasError, AliasTable, LocalDirectory, UserTable, UsersError};
use crate::dkim::{KeyRing, KeyStore, StoreError};
use crate::proto::session::{Directory, MessageMemory, NoLimits, Role, SessionConfig};
use crate::queue::{QueueError, Spool, SpoolWriter};
use crate::tls::{ServerCertificate, TlsError};
use acceptor::{Acceptor, Listener, SignalPipes};
use event_loop::EventLoop;
use limits::ConnectionCounter;
use mailbox::{LoopMessage, Notifier};
use pool::Pool;
use systemd::SystemdNotify;

/// Errors starting the server; each says what was being done.
#[derive(Debug)]
pub enum ServerError {
    /// The data directory (or a file in it) could not be created (first
    /// start).
    DataDir {
        /// The directory or file that could not be created.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Only one of `--tls-cert` and `--tls-key` was given, or only one of
    /// the generated pair exists.
    TlsPair(String),
    /// Loading or generating the certificate failed.
    Tls(TlsError),
    /// The users file could not be loaded.
    Users(UsersError),
    /// The alias file could not be loaded.
    Aliases(AliasError),
    /// The spool could not be opened.
    Spool(QueueError),
    /// The sending limits or counts could not be read.
    Quota(QuotaError),
    /// The queue manager could not be started.
    Delivery(DeliveryError),
    /// A DKIM key could not be read or created.
    Dkim(StoreError),
    /// A listener could not be bound.
    Bind {
        /// The address that could not be bound.
        address: SocketAddr,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The poll, the waker, the signal pipe or a thread could not be set up.
    Setup {
        /// The step that failed, worded to follow "cannot".
        what: &'static str,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::DataDir { path, source } => {
                write!(f, "cannot create {}: {source}", path.display())
            }
            ServerError::TlsPair(reason) => f.write_str(reason),
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Users(e) => write!(f, "{e}"),
            ServerError::Aliases(e) => write!(f, "{e}"),
            ServerError::Quota(e) => write!(f, "{e}"),
            ServerError::Spool(e) => write!(f, "queue: {e}"),
            ServerError::Delivery(e) => write!(f, "delivery: {e}"),
            ServerError::Dkim(e) => write!(f, "{e}"),
            ServerError::Bind { address, source } => {
                write!(f, "cannot listen on {address}: {source}")?;
                if source.kind() == std::io::ErrorKind::PermissionDenied && address.port() < 1024 {
                    write!(
                        f,
                        " (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: \
                         `setcap cap_net_bind_service=+ep /path/to/outpost`, or \
                         AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit)"
                    )?;
                }
                Ok(())
            }
            ServerError::Setup { what, source } => write!(f, "cannot {what}: {source}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// What every worker needs, shared read-only.
pub(crate) struct ServerContext {
    /// The settings.
    pub config: Arc<Config>,
    /// The settings the sessions see.
    pub session_config: Arc<SessionConfig>,
    /// Local domains and users.
    pub directory: Arc<dyn Directory>,
    /// rustls server settings.
    pub tls: Arc<rustls::ServerConfig>,
    /// The certificate they present (reloaded on SIGHUP).
    pub certificate: Arc<ServerCertificate>,
    /// The users in force (reloaded on SIGHUP).
    pub users: Arc<UserTable>,
    /// Password checks (on its own threads).
    pub authenticator: Arc<Authenticator>,
    /// The aliases in force (reloaded on SIGHUP with the users file).
    pub aliases: Arc<AliasTable>,
    /// The DKIM keys in force (reloaded on SIGHUP).
    pub dkim: Arc<KeyRing>,
    /// The daily sending limits (`--user-limits` reloaded on SIGHUP).
    pub quota: Arc<SendingQuota>,
    /// Durable spooling (on its own thread).
    pub spool: SpoolWriter,
    /// Wakes the queue manager for each newly spooled message (none when
    /// delivery is off).
    pub new_mail: Option<NewMail>,
    /// Tells systemd about start, reload and stop (with signals only).
    pub systemd: SystemdNotify,
    /// Open connections per client, shared by every loop (a connection
    /// behind a load balancer moves to its real client's count).
    pub counter: Arc<parking_lot::Mutex<ConnectionCounter>>,
}

/// Starts servers.
pub struct Server;

impl Server {
    /// Binds the listeners (port 0 allowed), loads the certificate, the
    /// users and the aliases, opens the spool, and starts the event loop
    /// and workers. Signals are left alone. The data directory must hold
    /// what `config` names (`outpost serve` prepares it on the first start).
    pub fn start(config: Config) -> Result<ServerHandle, ServerError> {
        let listeners = Listeners::bind(&config)?;
        let certificate = load_certificate(&config)?;
        start(config, listeners, certificate, false)
    }

    /// Like [`Server::start`] on listeners bound and a certificate read
    /// beforehand (`outpost serve` does both as root, then may switch
    /// users), and SIGTERM/SIGINT stop the server gracefully (a second
    /// signal stops it at once); SIGHUP re-reads the users and alias files
    /// and the certificate.
    pub fn start_with_signals(
        config: Config,
        listeners: Listeners,
        certificate: Arc<ServerCertificate>,
    ) -> Result<ServerHandle, ServerError> {
        start(config, listeners, certificate, true)
    }
}

/// Every listener of a configuration, bound but not yet accepting:
/// `outpost serve` binds them before it creates anything in the data
/// directory, so a port in use stops a first start before it begins.
pub struct Listeners(Vec<Listener>);

impl Listeners {
    /// Binds `config`'s smtp, submission and submissions addresses, in that
    /// order; the first that cannot be bound is the error.
    pub fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let mut listeners = Vec::new();
        for (addresses, role) in [
            (&config.smtp, Role::Smtp),
            (&config.submission, Role::Submission),
            (&config.submissions, Role::Submissions),
        ] {
            for &address in addresses {
                let socket = mio::net::TcpListener::bind(address)
                    .map_err(|source| ServerError::Bind { address, source })?;
                let address = socket
                    .local_addr()
                    .map_err(|source| ServerError::Bind { address, source })?;
                listeners.push(Listener {
                    socket,
                    role,
                    address,
                });
            }
        }
        Ok(Listeners(listeners))
    }
}

/// A running server.
pub struct ServerHandle {
    smtp: Vec<SocketAddr>,
    submission: Vec<SocketAddr>,
    submissions: Vec<SocketAddr>,
    notify: Notifier,
    thread: Option<JoinHandle<()>>,
    delivery: Option<DeliveryHandle>,
    /// The sending counts, saved when the server stops.
    quota: Arc<SendingQuota>,
}

impl ServerHandle {
    /// The bound smtp (port-25 role) addresses, in `--smtp` order.
    pub fn smtp_addrs(&self) -> &[SocketAddr] {
        &self.smtp
    }

    /// The bound submission (port-587 role) addresses.
    pub fn submission_addrs(&self) -> &[SocketAddr] {
        &self.submission
    }

    /// The bound submissions (port-465 role) addresses.
    pub fn submissions_addrs(&self) -> &[SocketAddr] {
        &self.submissions
    }

    /// Asks for a graceful stop without waiting for it.
    pub fn request_stop(&self) {
        // A loop that has gone is already stopping.
        self.notify.send(LoopMessage::Stop);
    }

    /// Stops gracefully (no new connections; sessions get the shutdown
    /// grace period, then 421 4.3.2) and waits until every thread is done.
    pub fn shutdown(mut self) {
        self.request_stop();
        self.join();
    }

    /// Waits until the server stops (after a signal or [`Self::request_stop`]).
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the event loop thread panicked");
            }
            // Sessions are done: the counts are final.
            if let Err(e) = self.quota.save() {
                log::error!("saving the sending counts: {e}");
            }
        }
        // Sessions are done: no new mail can arrive, so delivery can stop.
        if let Some(delivery) = self.delivery.take() {
            delivery.shutdown();
        }
    }
}

/// Dropping a handle stops the server at once (no grace period).
impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.request_stop();
            self.request_stop();
            self.join();
        }
    }
}

/// Reads the certificate and key `config` names (see [`certificate_paths`]).
pub fn load_certificate(config: &Config) -> Result<Arc<ServerCertificate>, ServerError> {
    let (cert, key) = certificate_paths(config)?;
    let certificate = ServerCertificate::load(&cert, &key).map_err(ServerError::Tls)?;
    Ok(Arc::new(certificate))
}

fn start(
    config: Config,
    listeners: Listeners,
    certificate: Arc<ServerCertificate>,
    handle_signals: bool,
) -> Result<ServerHandle, ServerError> {
    let tls = crate::tls::server_config(certificate.clone()).map_err(ServerError::Tls)?;
    let users = Arc::new(UserTable::load(&config.users_path()).map_err(ServerError::Users)?);
    let authenticator = Authenticator::new(users.clone());
    let aliases = Arc::new(
        AliasTable::load(config.delivery.aliases.as_deref()).map_err(ServerError::Aliases)?,
    );
    let directory = Arc::new(LocalDirectory::new(
        &config.effective_local_domains(),
        users.clone(),
        aliases.clone(),
        config.postmaster.clone(),
    ));
    for domain in directory.domains_without_postmaster() {
        log::warn!("postmaster@{domain} has no mailbox: mail to it is refused (add a user or set --postmaster)");
    }
    let spool = Spool::open_with_hostname(&config.data_dir, &config.hostname)
        .map_err(ServerError::Spool)?;
    let quota = Arc::new(
        SendingQuota::open(
            DailyLimits {
                messages: config.max_messages_per_day,
                recipients: config.max_recipients_per_day,
            },
            config.user_limits.as_deref(),
            &config.data_dir,
        )
        .map_err(ServerError::Quota)?,
    );
    let session_config = Arc::new(SessionConfig {
        hostname: config.hostname.clone(),
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
        max_bad_commands: config.max_bad_commands,
        soft_error_limit: config.soft_error_limit,
        hard_error_limit: config.hard_error_limit,
        error_delay: config.error_delay,
        smtp_auth: config.smtp_auth,
        max_received: config.max_received,
        auth_equals_line: config.auth_equals_line,
        sender_check: config.sender_check,
        tls_available: true,
        sender_domain: config.effective_sender_domain(),
        // --sink throws mail away: nothing is sent, nothing is counted.
        limits: if config.sink {
            Arc::new(NoLimits)
        } else {
            quota.clone()
        },
        memory: MessageMemory::new(config.message_memory, config.message_memory_total),
    });

    let listeners = listeners.0;
    let bound = |role: Role| -> Vec<SocketAddr> {
        listeners
            .iter()
            .filter(|l| l.role == role)
            .map(|l| l.address)
            .collect()
    };
    let (smtp, submission, submissions) = (
        bound(Role::Smtp),
        bound(Role::Submission),
        bound(Role::Submissions),
    );

    let mut delivery_config = config.delivery.clone();
    delivery_config.hostname = config.hostname.clone();
    delivery_config.local_domains = config.effective_local_domains();
    delivery_config.data_dir = config.data_dir.clone();
    delivery_config.max_received = config.max_received;
    // Delivery must know our own listeners, so it never connects to them.
    delivery_config.listening = listeners.iter().map(|l| l.address).collect();
    // Keys missing for a domain signed for are created here, at start.
    let dkim = Arc::new(
        KeyRing::open(
            KeyStore::new(&config.data_dir),
            &config.effective_local_domains(),
            &config.dkim,
            crate::dkim::store::now_secs(),
        )
        .map_err(ServerError::Dkim)?,
    );
    log::info!("DKIM keys in force: {}", dkim.in_force().join(", "));
    let relay_networks = config.relay_networks.clone();
    delivery_config.dkim = Some(Signing {
        keys: dkim.clone(),
        trusted: Arc::new(move |ip| relay_networks.iter().any(|net| net.contains(ip))),
    });
    let delivery = if config.deliver {
        Some(
            Delivery::start(delivery_config, spool.clone(), directory.clone())
                .map_err(ServerError::Delivery)?,
        )
    } else {
        log::warn!("delivery is off: accepted mail stays in the queue");
        None
    };
    let spool = SpoolWriter::start(spool);
    let directory: Arc<dyn Directory> = directory;

    let setup = |what| move |source| ServerError::Setup { what, source };
    let poll = Poll::new().map_err(setup("create the event poll"))?;
    let waker = Waker::new(poll.registry(), mailbox::WAKER).map_err(setup("create the waker"))?;
    let (notify, inbox) = mailbox::mailbox(waker);
    let signals = if handle_signals {
        Some(signal_pipes().map_err(setup("install the signal handlers"))?)
    } else {
        None
    };
    let workers = config.workers;
    let counter = Arc::new(parking_lot::Mutex::new(ConnectionCounter::new(
        config.max_connections,
        config.max_connections_per_ip,
    )));
    let shared = Arc::new(ServerContext {
        config: Arc::new(config),
        session_config,
        directory,
        tls,
        certificate,
        users,
        authenticator,
        aliases,
        dkim,
        quota: quota.clone(),
        spool,
        new_mail: delivery.as_ref().map(DeliveryHandle::new_mail),
        systemd: if handle_signals {
            SystemdNotify::from_env()
        } else {
            SystemdNotify::disabled()
        },
        counter: counter.clone(),
    });
    let pool = Pool::start(workers, &shared, &counter, &notify)
        .map_err(setup("start the worker threads"))?;
    let open = Arc::new(AtomicUsize::new(0));
    let serving = EventLoop::new(poll, notify.clone(), shared.clone(), counter.clone(), open);
    for listener in &listeners {
        log::info!(
            "listening on {} ({})",
            listener.address,
            role_name(listener.role)
        );
    }
    summary::log_summary(&shared);
    // The listeners are bound and the queue recovered: connections are
    // accepted from here on.
    shared.systemd.ready("serving");
    let acceptor = Acceptor::new(serving, inbox, shared, counter, listeners, signals, pool)
        .map_err(setup("register the listeners"))?;
    let thread = std::thread::Builder::new()
        .name("outpost-loop".to_string())
        .spawn(move || {
            acceptor.run();
            log::info!("stopped");
        })
        .map_err(setup("start the event loop thread"))?;
    Ok(ServerHandle {
        smtp,
        submission,
        submissions,
        notify,
        thread: Some(thread),
        delivery,
        quota,
    })
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Smtp => "smtp",
        Role::Submission => "submission",
        Role::Submissions => "submissions",
    }
}

/// Self-pipes for SIGTERM/SIGINT (stop) and SIGHUP (reload): a handler
/// only writes a byte (signal-hook), the loop sees a read end become
/// readable.
fn signal_pipes() -> std::io::Result<SignalPipes> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::low_level::pipe;
    let pair = || -> std::io::Result<_> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok((mio::net::UnixStream::from_std(read), write))
    };
    let (stop, stop_write) = pair()?;
    pipe::register(SIGTERM, stop_write.try_clone()?)?;
    pipe::register(SIGINT, stop_write)?;
    let (reload, reload_write) = pair()?;
    pipe::register(SIGHUP, reload_write)?;
    Ok(SignalPipes { stop, reload })
}

/// The certificate and key to serve: the given pair, or the pair in
/// `<data-dir>/tls/` that the first start generates.
pub fn certificate_paths(config: &Config) -> Result<(PathBuf, PathBuf), ServerError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Ok((cert.clone(), key.clone())),
        (None, None) => {
            let dir = config.data_dir.join("tls");
            Ok((dir.join("cert.pem"), dir.join("key.pem")))
        }
        (Some(_), None) | (None, Some(_)) => Err(ServerError::TlsPair(
            "--tls-cert and --tls-key must be given together".to_string(),
        )),
    }
}
