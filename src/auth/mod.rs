//! Users and passwords: the users file (`address:hash` per line, hashes
//! `$6$`, `$2y$`/`$2b$`, `$argon2id$`), verification off the protocol
//! workers, and failed-login throttling per client IP. May import `proto`
//! (credentials, results) and nothing above it.
//!
//! Threads: [`AUTH_THREADS`] verifier threads take checks from a bounded
//! channel, so a slow hash (bcrypt, argon2 take tens to hundreds of
//! milliseconds) never runs on a protocol worker or the event loop; one
//! delay thread holds failed answers for the throttle's growing delay, so
//! a guessing client waits without occupying a verifier. Passwords are
//! never logged: only user, result and client IP.

mod cache;
mod hash;
mod throttle;
mod users;

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::RwLock;

use crate::proto::sasl::{AuthResult, Credentials};

pub use cache::{CACHE_CAPACITY, CACHE_TTL};
pub use hash::{generate_password, hash_password, StoredHash};
pub use throttle::AuthLimits;

use cache::CredentialCache;
use throttle::Throttle;
use users::{normalize, UserTable};

/// Verifier threads: enough that one slow hash does not hold up every
/// login, few enough that guessing cannot take the CPU from mail.
pub const AUTH_THREADS: usize = 2;
/// Checks waiting for a verifier; beyond this a login gets 454 4.7.0 (the
/// client retries) rather than an unbounded backlog.
pub const AUTH_QUEUE: usize = 256;

/// Errors loading the users file.
#[derive(Debug)]
pub enum AuthError {
    /// The file could not be read.
    Io {
        /// The users file.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line is not `address:hash` with a supported hash.
    BadLine {
        /// The users file.
        path: std::path::PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            AuthError::BadLine { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthError::Io { source, .. } => Some(source),
            AuthError::BadLine { .. } => None,
        }
    }
}

/// Called with the result of a check, on an auth thread. If the verifiers
/// are saturated or stopped it is called at once, on the caller's thread,
/// with [`AuthResult::TemporaryFailure`].
pub type AuthDone = Box<dyn FnOnce(AuthResult) + Send>;

/// One `address:hash` line for the users file, hashing `password` as
/// `$6$` (what `outpost passwd` prints).
pub fn users_file_line(address: &str, password: &str) -> String {
    format!("{address}:{}", hash_password(password))
}

/// The user table plus throttling and a small cache of verified
/// credentials, shared by all sessions.
pub struct Authenticator {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
}

struct Shared {
    /// The users file, for [`Authenticator::reload`]; `None` when built
    /// from a list.
    source: Option<PathBuf>,
    table: RwLock<Table>,
    cache: CredentialCache,
    limits: AuthLimits,
    /// Failures per client IP and user.
    per_login: Throttle<(IpAddr, String)>,
    /// Failures per client IP, any user.
    per_ip: Throttle<IpAddr>,
}

struct Table {
    users: UserTable,
    /// Verified in place of an unknown user's hash, so "no such user"
    /// costs as long as "wrong password": a real user's hash (same kind
    /// and cost as the file uses), whose result is ignored.
    decoy: StoredHash,
}

impl Table {
    fn new(users: UserTable) -> Table {
        let decoy = match users.users().first() {
            Some(user) => user.hash.clone(),
            // No users: any valid hash will do, nothing can log in anyway.
            None => StoredHash::ShaCrypt(hash_password("no users are configured")),
        };
        Table { users, decoy }
    }
}

struct Job {
    client: IpAddr,
    credentials: Credentials,
    done: AuthDone,
}

/// A failed answer held back until `due`.
struct Delayed {
    due: Instant,
    done: AuthDone,
    result: AuthResult,
}

impl Authenticator {
    /// Loads the users file.
    pub fn load(path: &Path) -> Result<Arc<Authenticator>, AuthError> {
        Authenticator::load_with_limits(path, AuthLimits::default())
    }

    /// Loads the users file with throttle `limits`.
    pub fn load_with_limits(
        path: &Path,
        limits: AuthLimits,
    ) -> Result<Arc<Authenticator>, AuthError> {
        let users = read_users(path)?;
        Ok(Authenticator::start(
            Some(path.to_path_buf()),
            users,
            limits,
        ))
    }

    /// Builds an authenticator from `(address, hash)` pairs (tests, and a
    /// first start before the users file exists).
    pub fn from_users(users: Vec<(String, String)>) -> Result<Arc<Authenticator>, AuthError> {
        Authenticator::from_users_with_limits(users, AuthLimits::default())
    }

    /// [`Authenticator::from_users`] with throttle `limits`.
    pub fn from_users_with_limits(
        users: Vec<(String, String)>,
        limits: AuthLimits,
    ) -> Result<Arc<Authenticator>, AuthError> {
        let entries = users
            .into_iter()
            .enumerate()
            .map(|(i, (address, hash))| (i + 1, address, hash));
        let table = UserTable::build(entries.collect(), Path::new("<users list>"))?;
        Ok(Authenticator::start(None, table, limits))
    }

    fn start(source: Option<PathBuf>, users: UserTable, limits: AuthLimits) -> Arc<Authenticator> {
        let shared = Arc::new(Shared {
            source,
            table: RwLock::new(Table::new(users)),
            cache: CredentialCache::new(CACHE_CAPACITY, CACHE_TTL),
            limits,
            per_login: Throttle::new(limits.max_failures, limits.window),
            per_ip: Throttle::new(limits.max_failures_per_ip, limits.window),
        });
        let (jobs, job_receiver) = crossbeam_channel::bounded::<Job>(AUTH_QUEUE);
        // Unbounded, but never longer than the checks that fit through the
        // verifiers during one maximal delay.
        let (delay_sender, delay_receiver) = crossbeam_channel::unbounded::<Delayed>();
        spawn_logged("auth-delay", move || run_delays(&delay_receiver));
        for n in 0..AUTH_THREADS {
            let shared = Arc::clone(&shared);
            let receiver = job_receiver.clone();
            let delays = delay_sender.clone();
            spawn_logged(&format!("auth-{n}"), move || {
                run_verifier(&shared, &receiver, &delays)
            });
        }
        Arc::new(Authenticator { shared, jobs })
    }

    /// Checks credentials on an auth thread and calls `done`. Unknown user
    /// and wrong password take the same time and give `Failure`; too many
    /// failures from `client` give `Throttled`.
    pub fn verify(&self, client: IpAddr, credentials: Credentials, done: AuthDone) {
        match self.jobs.try_send(Job {
            client,
            credentials,
            done,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                log::warn!("auth: verifiers saturated, asking {} to retry", job.client);
                (job.done)(AuthResult::TemporaryFailure);
            }
            Err(TrySendError::Disconnected(job)) => (job.done)(AuthResult::TemporaryFailure),
        }
    }

    /// Is `address` a user (lowercase compare of the domain)?
    pub fn user_exists(&self, address: &str) -> bool {
        self.shared.table.read().users.get(address).is_some()
    }

    /// The users whose address is in `domain` (any case), in file order.
    pub fn users_for_domain(&self, domain: &str) -> Vec<String> {
        let domain = domain.to_lowercase();
        let table = self.shared.table.read();
        table
            .users
            .users()
            .iter()
            .filter(|u| u.address.rsplit_once('@').is_some_and(|(_, d)| d == domain))
            .map(|u| u.address.clone())
            .collect()
    }

    /// The first user of `domain` in file order (where `postmaster@` goes
    /// unless aliased).
    pub fn first_user(&self, domain: &str) -> Option<String> {
        self.users_for_domain(domain).into_iter().next()
    }

    /// Does authenticated `user` own `address`? A user owns its own
    /// address (domain compared case-insensitively).
    pub fn owns(&self, user: &str, address: &str) -> bool {
        normalize(user) == normalize(address)
    }

    /// How many users there are.
    pub fn user_count(&self) -> usize {
        self.shared.table.read().users.users().len()
    }

    /// Re-reads the users file (SIGHUP) and forgets cached credentials. On
    /// error the old table stays in force. Without a file it does nothing.
    pub fn reload(&self) -> Result<(), AuthError> {
        let Some(path) = &self.shared.source else {
            return Ok(());
        };
        let users = read_users(path)?;
        *self.shared.table.write() = Table::new(users);
        self.shared.cache.clear();
        log::info!(
            "auth: reloaded {} ({} users)",
            path.display(),
            self.user_count()
        );
        Ok(())
    }
}

fn read_users(path: &Path) -> Result<UserTable, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    UserTable::parse(&text, path)
}

fn spawn_logged(name: &str, body: impl FnOnce() + Send + 'static) {
    if let Err(error) = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
    {
        // Without verifiers every login gets 454 (channel disconnected).
        log::error!("auth: cannot start thread {name}: {error}");
    }
}

fn run_verifier(shared: &Shared, jobs: &Receiver<Job>, delays: &Sender<Delayed>) {
    while let Ok(job) = jobs.recv() {
        let Job {
            client,
            credentials,
            done,
        } = job;
        let now = Instant::now();
        let user = normalize(&credentials.username);
        let login = (client, user.clone());
        if shared.per_login.is_throttled(&login, now) || shared.per_ip.is_throttled(&client, now) {
            log::warn!("auth: user={user:?} result=throttled ip={client}");
            done(AuthResult::Throttled);
            continue;
        }
        let (hash, known) = {
            let table = shared.table.read();
            match table.users.get(&user) {
                Some(found) => (found.hash.clone(), true),
                None => (table.decoy.clone(), false),
            }
        };
        let password = credentials.password.as_str();
        let cached = known && shared.cache.contains(&user, password, hash.as_str(), now);
        let matched = cached || {
            // A panic inside a hash crate must cost one login, not a verifier.
            match catch_unwind(AssertUnwindSafe(|| hash.verify(password))) {
                Ok(matched) => matched,
                Err(_) => {
                    log::error!("auth: hash verification panicked for user={user:?}");
                    done(AuthResult::TemporaryFailure);
                    continue;
                }
            }
        };
        if matched && known {
            if !cached {
                shared
                    .cache
                    .insert(&user, password, hash.as_str(), Instant::now());
            }
            shared.per_login.record_success(&login);
            log::debug!("auth: user={user:?} result=success ip={client}");
            done(AuthResult::Success);
            continue;
        }
        let failures = shared.per_login.record_failure(login, Instant::now());
        let from_ip = shared.per_ip.record_failure(client, Instant::now());
        log::warn!(
            "auth: user={user:?} result=failure ip={client} failures={failures} from-ip={from_ip}"
        );
        let delay = shared.limits.delay_for(failures, from_ip);
        let result = AuthResult::Failure;
        if delay.is_zero() {
            done(result);
        } else if let Err(returned) = delays.send(Delayed {
            due: now + delay,
            done,
            result,
        }) {
            let held = returned.into_inner();
            (held.done)(held.result);
        }
    }
}

/// Holds failed answers until they are due; when the verifiers stop, the
/// remaining answers are still given at their time.
fn run_delays(receiver: &Receiver<Delayed>) {
    let mut waiting: Vec<Delayed> = Vec::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        let now = Instant::now();
        let mut index = 0;
        while index < waiting.len() {
            if waiting[index].due <= now {
                let due = waiting.swap_remove(index);
                (due.done)(due.result);
            } else {
                index += 1;
            }
        }
        let next_due = waiting.iter().map(|d| d.due).min();
        if !open {
            if let Some(due) = next_due {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            continue;
        }
        let received = match next_due {
            Some(due) => receiver.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(delayed) => waiting.push(delayed),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
    }
}

#[cfg(test)]
mod tests;
