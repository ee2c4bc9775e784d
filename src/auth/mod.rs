//! Password verification: checks `AUTH` credentials against the stored
//! hashes (`$6$`, `$2y$`/`$2b$`, `$argon2id$`) off the protocol workers,
//! with a small cache of verified credentials and failed-login throttling
//! per client (an IPv4 address or an IPv6 /64, [`client_key`]). The hashes
//! come from a [`StoredHashes`] source (the users table of `directory`).
//! May import `proto` (credentials, results), `maillog` (the wording of its
//! log lines) and `net` (the client key), nothing above them.
//!
//! Threads: [`AUTH_THREADS`] verifier threads take checks from a bounded
//! channel, so a slow hash (bcrypt, argon2 take tens to hundreds of
//! milliseconds) never runs on a protocol worker or the event loop; one
//! delay thread holds failed answers for the throttle's growing delay, so
//! a guessing client waits without occupying a verifier. Passwords are
//! never logged: only user, result and client IP.
//!
//! Also here, as the other guard of an account: [`quota`], the daily
//! sending limits per user.

mod cache;
mod hash;
pub mod quota;
mod throttle;

use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::maillog::{Line, LoginCheck, Verdict};
use crate::net::client_key;
use crate::proto::address::lookup_key;
use crate::proto::sasl::{AuthResult, Credentials};

pub use cache::{CACHE_CAPACITY, CACHE_TTL};
pub use hash::{generate_password, hash_password, StoredHash};
pub use throttle::AuthLimits;

use cache::CredentialCache;
use throttle::Throttle;

/// Verifier threads: enough that one slow hash does not hold up every
/// login, few enough that guessing cannot take the CPU from mail.
pub const AUTH_THREADS: usize = 2;
/// Checks waiting for a verifier; beyond this a login gets 454 4.7.0 (the
/// client retries) rather than an unbounded backlog.
pub const AUTH_QUEUE: usize = 256;

/// Where the verifiers find stored hashes: the users in force, which may
/// change between two checks (SIGHUP).
pub trait StoredHashes: Send + Sync {
    /// The stored hash of `user` (compared without regard to case), if it
    /// is a user.
    fn stored_hash(&self, user: &str) -> Option<StoredHash>;
    /// Some user's hash (the first one's), so that checking an unknown
    /// user costs what checking a real one does; `None` without users.
    fn sample_hash(&self) -> Option<StoredHash>;
}

/// Called with the result of a check, on an auth thread. If the verifiers
/// are saturated or stopped it is called at once, on the caller's thread,
/// with [`AuthResult::TemporaryFailure`].
pub type AuthDone = Box<dyn FnOnce(AuthResult) + Send>;

/// The verifier threads plus throttling and a small cache of verified
/// credentials, shared by all sessions.
pub struct Authenticator {
    /// The verifiers' state, which only the tests look into.
    #[cfg(test)]
    shared: Arc<AuthState>,
    jobs: Sender<Job>,
}

struct AuthState {
    users: Arc<dyn StoredHashes>,
    /// Verified in place of an unknown user's hash when there are no users
    /// (made on first need: hashing takes a while).
    no_users_decoy: OnceLock<StoredHash>,
    cache: CredentialCache,
    limits: AuthLimits,
    /// Failures per client ([`client_key`]) and user.
    per_login: Throttle<(IpAddr, String)>,
    /// Failures per client ([`client_key`]), any user.
    per_ip: Throttle<IpAddr>,
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
    /// Starts the verifiers for the hashes of `users`.
    pub fn new(users: Arc<dyn StoredHashes>) -> Arc<Authenticator> {
        Authenticator::with_limits(users, AuthLimits::default())
    }

    /// [`Authenticator::new`] with throttle `limits`.
    pub fn with_limits(users: Arc<dyn StoredHashes>, limits: AuthLimits) -> Arc<Authenticator> {
        let shared = Arc::new(AuthState {
            users,
            no_users_decoy: OnceLock::new(),
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
        Arc::new(Authenticator {
            #[cfg(test)]
            shared,
            jobs,
        })
    }

    /// Checks credentials on an auth thread and calls `done`. Unknown user
    /// and wrong password take the same time and give `Failure`; too many
    /// failures from `client` (or its IPv6 /64) give `Throttled`.
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
}

impl AuthState {
    /// Verified in place of an unknown user's hash, so "no such user" costs
    /// as long as "wrong password": a real user's hash (same kind and cost
    /// as the users file uses), whose result is ignored.
    fn decoy(&self) -> StoredHash {
        match self.users.sample_hash() {
            Some(hash) => hash,
            // No users: any valid hash will do, nothing can log in anyway.
            None => self
                .no_users_decoy
                .get_or_init(|| StoredHash::ShaCrypt(hash_password("no users are configured")))
                .clone(),
        }
    }
}

/// The name a login is throttled, cached and logged under: the form the
/// users table looks addresses up by, so `Alice@` and `alice@` are one
/// user to the throttle and the cache as they are to the table.
fn login_name(user: &str) -> String {
    lookup_key(user)
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

fn run_verifier(shared: &AuthState, jobs: &Receiver<Job>, delays: &Sender<Delayed>) {
    while let Ok(job) = jobs.recv() {
        let Job {
            client,
            credentials,
            done,
        } = job;
        let now = Instant::now();
        let user = login_name(&credentials.username);
        let counted_as = client_key(client);
        let login = (counted_as, user.clone());
        let throttled = [
            shared.per_login.throttled_for(&login, now),
            shared.per_ip.throttled_for(&counted_as, now),
        ];
        if let Some(wait) = throttled.into_iter().flatten().max() {
            LoginCheck {
                client,
                user: &user,
                verdict: Verdict::Throttled,
            }
            .log();
            done(AuthResult::Throttled { wait });
            continue;
        }
        let (hash, known) = match shared.users.stored_hash(&user) {
            Some(found) => (found, true),
            None => (shared.decoy(), false),
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
            LoginCheck {
                client,
                user: &user,
                verdict: Verdict::Success,
            }
            .log();
            done(AuthResult::Success);
            continue;
        }
        let failures = shared.per_login.record_failure(login, Instant::now());
        let from_ip = shared.per_ip.record_failure(counted_as, Instant::now());
        LoginCheck {
            client,
            user: &user,
            verdict: Verdict::Failure {
                known,
                failures,
                from_ip,
            },
        }
        .log();
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
