//! Authenticator tests: each hash kind, unknown versus wrong password,
//! the throttle sequence with small limits, the cache and reloads.

use super::*;
use crate::directory::{users_file_line, UserTable};
use crate::test_fixtures::TempDir;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn credentials(user: &str, password: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: password.into(),
    }
}

/// Runs one check and waits for its answer; returns it with the time taken.
fn check(auth: &Authenticator, ip: &str, user: &str, password: &str) -> (AuthResult, Duration) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let started = Instant::now();
    auth.verify(
        ip.parse().unwrap(),
        credentials(user, password),
        Box::new(move |r| {
            tx.send((r, std::thread::current().name().map(String::from)))
                .unwrap()
        }),
    );
    let (result, thread) = rx.recv_timeout(WAIT).unwrap();
    let thread = thread.unwrap_or_default();
    assert!(thread.starts_with("auth-"), "answered on {thread:?}");
    (result, started.elapsed())
}

fn quick_limits() -> AuthLimits {
    AuthLimits {
        max_failures: 3,
        max_failures_per_ip: 100,
        window: Duration::from_secs(60),
        delay_step: Duration::ZERO,
    }
}

fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"fixed salt bytes").unwrap();
    hash::small_argon2()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn sample_users() -> Vec<(String, String)> {
    vec![
        ("alice@Example.org".into(), hash_password("alice pw")),
        ("bob@example.org".into(), bcrypt::hash("bob pw", 4).unwrap()),
        ("carol@example.net".into(), argon2_hash("carol pw")),
    ]
}

/// Verifiers for `users` (address, hash) with throttle `limits`.
fn authenticator(users: Vec<(String, String)>, limits: AuthLimits) -> Arc<Authenticator> {
    Authenticator::with_limits(Arc::new(UserTable::from_list(users).unwrap()), limits)
}

#[test]
fn every_hash_kind_verifies() {
    let auth = authenticator(sample_users(), quick_limits());
    let cases = [
        ("alice@example.org", "alice pw", AuthResult::Success),
        ("alice@EXAMPLE.ORG", "alice pw", AuthResult::Success),
        ("bob@example.org", "bob pw", AuthResult::Success),
        ("carol@example.net", "carol pw", AuthResult::Success),
        ("carol@example.net", "alice pw", AuthResult::Failure),
    ];
    for (i, (user, password, want)) in cases.into_iter().enumerate() {
        // A fresh IP per case keeps the throttle out of it.
        let ip = format!("192.0.2.{}", i + 1);
        assert_eq!(check(&auth, &ip, user, password).0, want, "{user}");
    }
}

#[test]
fn unknown_user_and_wrong_password_are_both_failure() {
    let auth = authenticator(sample_users(), quick_limits());
    assert_eq!(
        check(&auth, "192.0.2.1", "alice@example.org", "wrong").0,
        AuthResult::Failure
    );
    assert_eq!(
        check(&auth, "192.0.2.2", "nobody@example.org", "alice pw").0,
        AuthResult::Failure
    );
    assert_eq!(
        check(&auth, "192.0.2.3", "alice@example.com", "alice pw").0,
        AuthResult::Failure
    );
    assert_eq!(check(&auth, "192.0.2.4", "", "").0, AuthResult::Failure);
}

#[test]
fn throttle_sequence_with_growing_delay() {
    let limits = AuthLimits {
        max_failures: 3,
        max_failures_per_ip: 6,
        window: Duration::from_secs(60),
        delay_step: Duration::from_millis(40),
    };
    let auth = authenticator(sample_users(), limits);
    let ip = "198.51.100.9";
    for n in 1..=3u32 {
        let (result, took) = check(&auth, ip, "alice@example.org", "guess");
        assert_eq!(result, AuthResult::Failure, "attempt {n}");
        assert!(took >= limits.delay_step * n, "attempt {n} took {took:?}");
    }
    // Used up: even the right password is refused now, without hashing.
    assert!(matches!(
        check(&auth, ip, "alice@example.org", "alice pw").0,
        AuthResult::Throttled { .. }
    ));
    // Another user at the same address (an office NAT, new Outlook's data
    // centres) still gets in.
    assert_eq!(
        check(&auth, ip, "bob@example.org", "bob pw").0,
        AuthResult::Success
    );
    // Trying many user names from one address hits the per-IP limit.
    for n in 4..=6u32 {
        let user = format!("guess{n}@example.org");
        assert_eq!(check(&auth, ip, &user, "x").0, AuthResult::Failure, "{n}");
    }
    assert!(matches!(
        check(&auth, ip, "bob@example.org", "bob pw").0,
        AuthResult::Throttled { .. }
    ));
    // Another client is not affected.
    assert_eq!(
        check(&auth, "198.51.100.10", "alice@example.org", "alice pw").0,
        AuthResult::Success
    );
}

#[test]
fn success_clears_that_clients_count() {
    let auth = authenticator(sample_users(), quick_limits());
    for _ in 0..10 {
        assert_eq!(
            check(&auth, "192.0.2.1", "alice@example.org", "no").0,
            AuthResult::Failure
        );
        assert_eq!(
            check(&auth, "192.0.2.1", "alice@example.org", "no").0,
            AuthResult::Failure
        );
        assert_eq!(
            check(&auth, "192.0.2.1", "alice@example.org", "alice pw").0,
            AuthResult::Success
        );
    }
}

#[test]
fn delayed_failures_do_not_stall_other_logins() {
    let limits = AuthLimits {
        max_failures: 100,
        max_failures_per_ip: 100,
        window: Duration::from_secs(60),
        delay_step: Duration::from_secs(2),
    };
    let auth = authenticator(sample_users(), limits);
    let (tx, rx) = crossbeam_channel::unbounded();
    // More slow failures than there are verifier threads.
    for i in 0..(AUTH_THREADS * 2) {
        let tx = tx.clone();
        auth.verify(
            format!("203.0.113.{i}").parse().unwrap(),
            credentials("alice@example.org", "wrong"),
            Box::new(move |r| tx.send(r).unwrap()),
        );
    }
    let (result, took) = check(&auth, "192.0.2.50", "alice@example.org", "alice pw");
    assert_eq!(result, AuthResult::Success);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(rx.try_recv().is_err(), "failures are still being held back");
    for _ in 0..(AUTH_THREADS * 2) {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), AuthResult::Failure);
    }
}

#[test]
fn verified_credentials_are_cached() {
    let auth = authenticator(sample_users(), quick_limits());
    assert!(auth.shared.cache.is_empty());
    assert_eq!(
        check(&auth, "192.0.2.1", "bob@example.org", "bob pw").0,
        AuthResult::Success
    );
    assert_eq!(auth.shared.cache.len(), 1);
    assert!(auth.shared.cache.contains(
        "bob@example.org",
        "bob pw",
        auth.shared
            .users
            .stored_hash("bob@example.org")
            .unwrap()
            .as_str(),
        Instant::now()
    ));
    assert_eq!(
        check(&auth, "192.0.2.1", "bob@example.org", "bob pw").0,
        AuthResult::Success
    );
    // A cached user with a wrong password still fails.
    assert_eq!(
        check(&auth, "192.0.2.2", "bob@example.org", "bob pW").0,
        AuthResult::Failure
    );
    // Failures are not cached.
    assert_eq!(auth.shared.cache.len(), 1);
}

#[test]
fn logins_follow_a_reloaded_users_file() {
    let dir = TempDir::new("auth-reload");
    let path = dir.path().join("users");
    std::fs::write(
        &path,
        format!("# test\n{}\n", users_file_line("a@example.org", "pw")),
    )
    .unwrap();
    let users = Arc::new(UserTable::load(&path).unwrap());
    let auth = Authenticator::with_limits(users.clone(), quick_limits());
    assert_eq!(
        check(&auth, "192.0.2.1", "a@example.org", "pw").0,
        AuthResult::Success
    );
    std::fs::write(
        &path,
        format!("{}\n", users_file_line("b@example.org", "pw2")),
    )
    .unwrap();
    users.reload().unwrap();
    assert_eq!(
        check(&auth, "192.0.2.1", "a@example.org", "pw").0,
        AuthResult::Failure
    );
    assert_eq!(
        check(&auth, "192.0.2.2", "b@example.org", "pw2").0,
        AuthResult::Success
    );
}

#[test]
fn no_users_means_nobody_logs_in() {
    let auth = authenticator(Vec::new(), quick_limits());
    assert_eq!(
        check(&auth, "192.0.2.1", "a@example.org", "").0,
        AuthResult::Failure
    );
}

#[test]
fn user_names_match_without_regard_to_case() {
    let auth = authenticator(sample_users(), quick_limits());
    assert_eq!(
        check(&auth, "192.0.2.1", "Alice@example.org", "alice pw").0,
        AuthResult::Success
    );
    for name in ["bob@example.org", "Bob@Example.ORG", "BOB@example.org"] {
        assert_eq!(
            check(&auth, "192.0.2.1", name, "bob pw").0,
            AuthResult::Success,
            "{name}"
        );
    }
    // One user to the cache …
    assert_eq!(auth.shared.cache.len(), 2);
    // … and to the throttle: failures in any case count for one login.
    for name in ["bob@example.org", "Bob@example.org", "bOb@example.org"] {
        assert_eq!(
            check(&auth, "192.0.2.3", name, "wrong").0,
            AuthResult::Failure
        );
    }
    assert!(matches!(
        check(&auth, "192.0.2.3", "BOB@EXAMPLE.ORG", "bob pw").0,
        AuthResult::Throttled { .. }
    ));
}

#[test]
fn ipv6_clients_are_throttled_per_64() {
    let auth = authenticator(sample_users(), quick_limits());
    // Each guess from another address of one /64.
    for n in 1..=3 {
        let ip = format!("2001:db8:5:6::{n}");
        assert_eq!(
            check(&auth, &ip, "alice@example.org", "guess").0,
            AuthResult::Failure
        );
    }
    assert!(
        matches!(
            check(
                &auth,
                "2001:db8:5:6:abcd::99",
                "alice@example.org",
                "alice pw"
            )
            .0,
            AuthResult::Throttled { .. }
        ),
        "a new address in the same /64 is the same client"
    );
    assert_eq!(
        check(&auth, "2001:db8:5:7::1", "alice@example.org", "alice pw").0,
        AuthResult::Success,
        "the next /64 is another client"
    );
    // IPv4 (also as a dual-stack socket reports it) stays per address.
    for _ in 1..=3 {
        assert_eq!(
            check(&auth, "::ffff:192.0.2.8", "alice@example.org", "guess").0,
            AuthResult::Failure
        );
    }
    assert!(matches!(
        check(&auth, "192.0.2.8", "alice@example.org", "alice pw").0,
        AuthResult::Throttled { .. }
    ));
    assert_eq!(
        check(&auth, "192.0.2.9", "alice@example.org", "alice pw").0,
        AuthResult::Success
    );
}
