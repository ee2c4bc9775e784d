//! A small cache of recently verified credentials, so a client that logs in
//! for every message (Outlook does) pays for the slow hash once per TTL.
//! It keeps SHA-256(password, stored hash) per user, never the password;
//! binding the stored hash in means a changed users file invalidates it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ring::digest::{Context, SHA256};

use super::hash::constant_time_eq;

/// Most users remembered.
pub const CACHE_CAPACITY: usize = 1024;
/// How long a verified credential is trusted without re-hashing.
pub const CACHE_TTL: Duration = Duration::from_secs(600);

/// user → (digest of password and hash, when verified).
pub struct CredentialCache {
    entries: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    capacity: usize,
    ttl: Duration,
}

impl CredentialCache {
    /// An empty cache.
    pub fn new(capacity: usize, ttl: Duration) -> CredentialCache {
        CredentialCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// Was `password` verified against `stored_hash` for `user` recently?
    pub fn contains(&self, user: &str, password: &str, stored_hash: &str, now: Instant) -> bool {
        let key = fingerprint(password, stored_hash);
        let entries = self.entries.lock();
        match entries.get(user) {
            Some((digest, at)) => {
                now.saturating_duration_since(*at) < self.ttl && constant_time_eq(digest, &key)
            }
            None => false,
        }
    }

    /// Remembers a successful verification.
    pub fn insert(&self, user: &str, password: &str, stored_hash: &str, now: Instant) {
        let key = fingerprint(password, stored_hash);
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(user) {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(u, _)| u.clone());
                if let Some(user) = oldest {
                    entries.remove(&user);
                }
            }
        }
        entries.insert(user.to_string(), (key, now));
    }

    /// How many users are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Nothing remembered?
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn fingerprint(password: &str, stored_hash: &str) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    // Length-prefixed so (password, hash) pairs cannot run into each other.
    context.update(&(password.len() as u64).to_be_bytes());
    context.update(password.as_bytes());
    context.update(stored_hash.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_ttl_and_binds_the_hash() {
        let cache = CredentialCache::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        cache.insert("a@x", "pw", "$6$h1", t0);
        assert!(cache.contains("a@x", "pw", "$6$h1", t0 + Duration::from_secs(9)));
        assert!(!cache.contains("a@x", "pw", "$6$h1", t0 + Duration::from_secs(10)));
        assert!(!cache.contains("a@x", "other", "$6$h1", t0));
        assert!(
            !cache.contains("a@x", "pw", "$6$h2", t0),
            "new hash in the file"
        );
        assert!(!cache.contains("b@x", "pw", "$6$h1", t0));
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let cache = CredentialCache::new(2, Duration::from_secs(100));
        let t0 = Instant::now();
        cache.insert("a", "1", "h", t0);
        cache.insert("b", "2", "h", t0 + Duration::from_secs(1));
        cache.insert("c", "3", "h", t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains("a", "1", "h", t0 + Duration::from_secs(2)));
        assert!(cache.contains("c", "3", "h", t0 + Duration::from_secs(2)));
    }
}
