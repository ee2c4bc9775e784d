//! The signing keys on disk and in force.
//!
//! A key lives at `DATA-DIR/dkim/<domain>/<selector>.key`, a PKCS#8 PEM
//! file of mode 0600 in directories of mode 0700; a key made with
//! `openssl genpkey` can be put there. Ed25519 keys use the selector with
//! `-ed25519` appended (each selector names one DNS record, so two
//! algorithms need two selectors).
//!
//! The selector, unless `--dkim-selector` names one, is the newest
//! `outpostYYYYMM` that has a key in the domain's folder, or, for a domain
//! without one, `outpost` and this month (so a key made later, to rotate,
//! sorts after the old one).
//!
//! [`KeyRing`] is the set in force: read at start (creating what is
//! missing), read again on SIGHUP.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::key::{pkcs8_pem, Algorithm, KeyError, SigningKey};
use super::sign::{signature_field, Hashed, MessageHasher, SignError, SignatureParams};

/// The prefix of default selectors, followed by the year and month.
pub const SELECTOR_PREFIX: &str = "outpost";
/// What an Ed25519 key's selector adds to the selector.
pub const ED25519_SUFFIX: &str = "-ed25519";
/// The message is read in pieces of this size to be signed.
const READ_PIECE: usize = 64 * 1024;
/// Until its header section is complete, a message is hashed in steps of
/// this size, so that a message no key signs is not hashed past it.
const HEADER_STEP: usize = 1024;

/// The DKIM settings of `outpost serve` and `outpost dns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--dkim-selector`; `None`: the default of the module docs.
    pub selector: Option<String>,
    /// `--dkim-domains`: domains signed for besides the local domains.
    pub domains: Vec<String>,
    /// `--dkim-algorithms`: one signature per algorithm.
    pub algorithms: Vec<Algorithm>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            selector: None,
            domains: Vec::new(),
            algorithms: vec![Algorithm::Rsa],
        }
    }
}

/// `--dkim-algorithms`: `rsa`, `ed25519` or both, comma-separated.
pub fn parse_algorithms(text: &str) -> Result<Vec<Algorithm>, String> {
    let mut set = BTreeSet::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word.to_ascii_lowercase().as_str() {
            "rsa" => set.insert(Algorithm::Rsa),
            "ed25519" => set.insert(Algorithm::Ed25519),
            _ => return Err(format!("{word:?} is not rsa or ed25519")),
        };
    }
    if set.is_empty() {
        return Err("expected rsa, ed25519 or rsa,ed25519".to_string());
    }
    Ok(set.into_iter().collect())
}

/// `--dkim-selector`: one DNS label (letters, digits, hyphens).
pub fn parse_selector(text: &str) -> Result<String, String> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a selector: letters, digits and inner hyphens, at most 63"
        ))
    }
}

/// Errors reading or creating keys.
#[derive(Debug)]
pub enum StoreError {
    /// A key directory or file could not be read or written.
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: KeyError,
    },
    /// A key file holds a key of the other algorithm.
    WrongAlgorithm {
        /// The file.
        path: PathBuf,
        /// What its name says it holds.
        expected: Algorithm,
    },
    /// A domain that is not a usable directory name.
    BadDomain(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "DKIM key {}: {source}", path.display()),
            StoreError::Key { path, reason } => {
                write!(f, "DKIM key {}: {reason}", path.display())
            }
            StoreError::WrongAlgorithm { path, expected } => write!(
                f,
                "DKIM key {}: expected an {} key (Ed25519 keys are named \
                 SELECTOR{ED25519_SUFFIX}.key, RSA keys SELECTOR.key)",
                path.display(),
                match expected {
                    Algorithm::Rsa => "RSA",
                    Algorithm::Ed25519 => "Ed25519",
                }
            ),
            StoreError::BadDomain(d) => write!(f, "{d:?} is not a domain to sign for"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A key with the names that publish it.
#[derive(Debug)]
pub struct DomainKey {
    /// `d=`: the domain signed for.
    pub domain: String,
    /// `s=`: the key record is at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// The key.
    pub key: SigningKey,
}

impl DomainKey {
    /// The name of the key's TXT record, with the final dot.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}.", self.selector, self.domain)
    }
}

/// The keys under `DATA-DIR/dkim`.
#[derive(Debug, Clone)]
pub struct KeyStore {
    root: PathBuf,
}

impl KeyStore {
    /// The keys of the server whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> KeyStore {
        KeyStore {
            root: data_dir.join("dkim"),
        }
    }

    fn domain_dir(&self, domain: &str) -> Result<PathBuf, StoreError> {
        let safe = !domain.is_empty()
            && !domain.starts_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !safe {
            return Err(StoreError::BadDomain(domain.to_string()));
        }
        Ok(self.root.join(domain))
    }

    /// The file of `domain`'s key for `selector` and `algorithm`.
    pub fn key_path(
        &self,
        domain: &str,
        selector: &str,
        algorithm: Algorithm,
    ) -> Result<PathBuf, StoreError> {
        let name = full_selector(selector, algorithm);
        Ok(self.domain_dir(domain)?.join(format!("{name}.key")))
    }

    /// The selector for `domain`: `configured`, else the newest
    /// `outpostYYYYMM` with a key, else `outpost` and the month of `now`
    /// (seconds since the epoch).
    pub fn selector(&self, domain: &str, configured: Option<&str>, now: u64) -> String {
        if let Some(selector) = configured {
            return selector.to_string();
        }
        let newest = self
            .domain_dir(domain)
            .ok()
            .and_then(|dir| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|name| dated_selector(&name))
            .max();
        newest.unwrap_or_else(|| {
            let (year, month) = year_month(now);
            format!("{SELECTOR_PREFIX}{year:04}{month:02}")
        })
    }

    /// Reads `domain`'s key for `selector` and `algorithm`.
    pub fn load(
        &self,
        domain: &str,
        selector: &str,
        algorithm: Algorithm,
    ) -> Result<DomainKey, StoreError> {
        let path = self.key_path(domain, selector, algorithm)?;
        let pem = std::fs::read(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let key = SigningKey::from_pem(&pem).map_err(|reason| StoreError::Key {
            path: path.clone(),
            reason,
        })?;
        if key.algorithm() != algorithm {
            return Err(StoreError::WrongAlgorithm {
                path,
                expected: algorithm,
            });
        }
        Ok(DomainKey {
            domain: domain.to_string(),
            selector: full_selector(selector, algorithm),
            key,
        })
    }

    /// Creates `domain`'s key for `selector` and `algorithm` unless it
    /// exists; returns the new file's path, or `None` when it existed.
    pub fn create_if_missing(
        &self,
        domain: &str,
        selector: &str,
        algorithm: Algorithm,
    ) -> Result<Option<PathBuf>, StoreError> {
        let path = self.key_path(domain, selector, algorithm)?;
        if path.exists() {
            return Ok(None);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let dir = self.domain_dir(domain)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        let der = SigningKey::generate(algorithm).map_err(|reason| StoreError::Key {
            path: path.clone(),
            reason,
        })?;
        // Written aside and renamed: a crash never leaves half a key under
        // the name that is read.
        let temporary = path.with_extension("key.new");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io(&temporary))?;
        file.write_all(pkcs8_pem(&der).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(io(&path))?;
        Ok(Some(path))
    }

    /// Every key in `domain`'s folder, by file name, for publishing (old
    /// selectors stay published while mail signed with them may still be
    /// checked). Files that are not keys are skipped with a warning.
    pub fn all_keys(&self, domain: &str) -> Result<Vec<DomainKey>, StoreError> {
        let dir = self.domain_dir(domain)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".key").map(str::to_string))
            .collect();
        names.sort();
        let mut keys = Vec::new();
        for name in names {
            let (selector, algorithm) = match name.strip_suffix(ED25519_SUFFIX) {
                Some(base) => (base, Algorithm::Ed25519),
                None => (name.as_str(), Algorithm::Rsa),
            };
            match self.load(domain, selector, algorithm) {
                Ok(key) => keys.push(key),
                Err(e) => log::warn!("skipped: {e}"),
            }
        }
        Ok(keys)
    }
}

/// The selector of a key of `algorithm`: Ed25519 adds [`ED25519_SUFFIX`].
pub fn full_selector(selector: &str, algorithm: Algorithm) -> String {
    match algorithm {
        Algorithm::Rsa => selector.to_string(),
        Algorithm::Ed25519 => format!("{selector}{ED25519_SUFFIX}"),
    }
}

/// `outpostYYYYMM` from a key file name `outpostYYYYMM[-ed25519].key`.
fn dated_selector(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".key")?;
    let stem = stem.strip_suffix(ED25519_SUFFIX).unwrap_or(stem);
    let digits = stem.strip_prefix(SELECTOR_PREFIX)?;
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| stem.to_string())
}

/// Seconds since the epoch, now (the signing time, a new selector's month).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The year and month (1-12) of a time in seconds since the epoch.
pub fn year_month(unix_secs: u64) -> (i64, u32) {
    // Civil from days (Howard Hinnant's algorithm), as in `proto::dsn`.
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32)
}

/// The keys in force, by domain, and how to read them again.
pub struct KeyRing {
    store: KeyStore,
    domains: Vec<String>,
    settings: Settings,
    keys: RwLock<Arc<Vec<Arc<DomainKey>>>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The keys of `domains` (the local domains and `--dkim-domains`) for
    /// each algorithm of `settings`; a missing key is created first.
    /// `now` (seconds since the epoch) names a new default selector.
    pub fn open(
        store: KeyStore,
        domains: &[String],
        settings: &Settings,
        now: u64,
    ) -> Result<KeyRing, StoreError> {
        let mut domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        domains.extend(settings.domains.iter().map(|d| d.to_ascii_lowercase()));
        domains.sort();
        domains.dedup();
        for domain in &domains {
            let selector = store.selector(domain, settings.selector.as_deref(), now);
            for &algorithm in &settings.algorithms {
                if let Some(path) = store.create_if_missing(domain, &selector, algorithm)? {
                    log::info!(
                        "created the DKIM key {} (publish it: outpost dns {domain})",
                        path.display()
                    );
                }
            }
        }
        let ring = KeyRing {
            store,
            domains,
            settings: settings.clone(),
            keys: RwLock::new(Arc::new(Vec::new())),
        };
        ring.reload(now)?;
        Ok(ring)
    }

    /// Reads the keys again (SIGHUP): all of them, or none if one fails,
    /// so the keys in force stay whole. Returns how many are in force.
    pub fn reload(&self, now: u64) -> Result<usize, StoreError> {
        let mut keys = Vec::new();
        for domain in &self.domains {
            let selector = self
                .store
                .selector(domain, self.settings.selector.as_deref(), now);
            for &algorithm in &self.settings.algorithms {
                keys.push(Arc::new(self.store.load(domain, &selector, algorithm)?));
            }
        }
        let count = keys.len();
        *self.keys.write() = Arc::new(keys);
        Ok(count)
    }

    /// The keys in force, as the names of their DNS records
    /// (`selector._domainkey.domain`), for the log.
    pub fn in_force(&self) -> Vec<String> {
        let keys = self.keys.read().clone();
        keys.iter()
            .map(|k| k.record_name().trim_end_matches('.').to_string())
            .collect()
    }

    /// The keys that sign mail whose `From:` is in `domain`: those of the
    /// domain itself, else of the nearest parent domain signed for (mail
    /// from `MAILER-DAEMON@mx.example.com` is signed by `example.com`,
    /// which DMARC's relaxed alignment accepts).
    pub fn keys_for(&self, domain: &str) -> Vec<Arc<DomainKey>> {
        let keys = self.keys.read().clone();
        let mut candidate = domain.trim_end_matches('.').to_ascii_lowercase();
        loop {
            let found: Vec<Arc<DomainKey>> = keys
                .iter()
                .filter(|k| k.domain == candidate)
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            match candidate.split_once('.') {
                Some((_, parent)) if parent.contains('.') => candidate = parent.to_string(),
                _ => return Vec::new(),
            }
        }
    }

    /// The `DKIM-Signature:` fields to put in front of `message` (read to
    /// its end in pieces), one per key of its `From:` domain; empty when
    /// the domain is not signed for. `now` is the signing time (`t=`).
    pub fn sign(
        &self,
        mut message: impl std::io::Read,
        now: u64,
    ) -> Result<Vec<u8>, SignMessageError> {
        let mut hasher = MessageHasher::new();
        let mut piece = vec![0u8; READ_PIECE];
        let mut decided = false;
        loop {
            let n = match message.read(&mut piece) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SignMessageError::Read(e)),
            };
            // Relayed mail from other domains is the common case: until the
            // header section is complete the message goes in in small
            // steps, and once it shows that no key applies, nothing of the
            // body is hashed.
            let step = if decided { n } else { HEADER_STEP };
            for chunk in piece[..n].chunks(step) {
                hasher.update(chunk);
                if decided {
                    continue;
                }
                if let Some(from) = hasher.from_domain() {
                    decided = true;
                    let signed = from.is_some_and(|domain| !self.keys_for(&domain).is_empty());
                    if !signed {
                        return Ok(Vec::new());
                    }
                }
            }
        }
        let hashed: Hashed = hasher.finish().map_err(SignMessageError::Sign)?;
        let Some(from) = hashed.from_domain() else {
            return Ok(Vec::new());
        };
        let mut fields = Vec::new();
        for key in self.keys_for(&from) {
            let params = SignatureParams {
                domain: &key.domain,
                selector: &key.selector,
                timestamp: now,
            };
            let field =
                signature_field(&hashed, &key.key, &params).map_err(SignMessageError::Sign)?;
            fields.extend_from_slice(field.as_bytes());
        }
        Ok(fields)
    }
}

/// Why a message could not be signed.
#[derive(Debug)]
pub enum SignMessageError {
    /// The message could not be read.
    Read(std::io::Error),
    /// It could not be signed.
    Sign(SignError),
}

impl fmt::Display for SignMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignMessageError::Read(e) => write!(f, "reading the message: {e}"),
            SignMessageError::Sign(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SignMessageError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;
    use std::os::unix::fs::PermissionsExt;

    /// 2026-12-15.
    const DECEMBER_2026: u64 = 1_797_292_800;

    #[test]
    fn months_of_the_default_selector() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(DECEMBER_2026), (2026, 12));
        assert_eq!(year_month(951_782_400), (2000, 2)); // 2000-02-29
        assert_eq!(year_month(951_868_800), (2000, 3));
    }

    /// A body that cannot be read.
    struct Unreadable;

    impl std::io::Read for Unreadable {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the body was read"))
        }
    }

    #[test]
    fn a_message_no_key_signs_is_not_read_past_its_header() {
        let dir = TempDir::new("dkim-skip");
        let settings = Settings {
            algorithms: vec![Algorithm::Ed25519],
            ..Settings::default()
        };
        let store = KeyStore::new(dir.path());
        let ring = KeyRing::open(store, &["local.test".into()], &settings, DECEMBER_2026).unwrap();
        let sign = |from: &str| {
            let header = format!("From: <a@{from}>\r\nSubject: x\r\n\r\n").into_bytes();
            ring.sign(
                std::io::Read::chain(header.as_slice(), Unreadable),
                DECEMBER_2026,
            )
        };
        assert!(sign("other.test").unwrap().is_empty());
        assert!(matches!(sign("local.test"), Err(SignMessageError::Read(_))));
    }

    #[test]
    fn option_values() {
        assert_eq!(parse_algorithms("rsa").unwrap(), [Algorithm::Rsa]);
        assert_eq!(
            parse_algorithms("ed25519, RSA").unwrap(),
            [Algorithm::Rsa, Algorithm::Ed25519]
        );
        assert!(parse_algorithms("dsa").is_err());
        assert!(parse_algorithms(" , ").is_err());
        assert_eq!(parse_selector(" s2027 ").unwrap(), "s2027");
        for bad in ["", "a.b", "-a", "a_b", &"x".repeat(64)] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_created_private_then_found_and_reloaded() {
        let dir = TempDir::new("dkim-store");
        let store = KeyStore::new(dir.path());
        let settings = Settings {
            algorithms: vec![Algorithm::Rsa, Algorithm::Ed25519],
            domains: vec!["Extra.Test".into()],
            ..Settings::default()
        };
        let ring = KeyRing::open(
            store.clone(),
            &["local.test".into()],
            &settings,
            DECEMBER_2026,
        )
        .unwrap();
        let folder = dir.path().join("dkim/local.test");
        for name in ["outpost202612.key", "outpost202612-ed25519.key"] {
            let mode = std::fs::metadata(folder.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let keys = ring.keys_for("local.test");
        let names: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(names, ["outpost202612", "outpost202612-ed25519"]);
        assert_eq!(ring.in_force().len(), 4);
        assert!(ring
            .in_force()
            .contains(&"outpost202612._domainkey.extra.test".to_string()));
        assert_eq!(ring.keys_for("mx.local.test").len(), 2);
        assert_eq!(ring.keys_for("extra.test").len(), 2);
        assert!(ring.keys_for("other.test").is_empty());
        assert!(ring.keys_for("test").is_empty());

        // A later month keeps the selector that has keys; a key made for
        // a newer one is taken on reload.
        let later = DECEMBER_2026 + 90 * 86_400;
        assert_eq!(store.selector("local.test", None, later), "outpost202612");
        assert_eq!(store.selector("new.test", None, later), "outpost202703");
        store
            .create_if_missing("local.test", "outpost202703", Algorithm::Rsa)
            .unwrap();
        store
            .create_if_missing("local.test", "outpost202703", Algorithm::Ed25519)
            .unwrap();
        assert_eq!(ring.reload(later).unwrap(), 4);
        assert_eq!(ring.keys_for("local.test")[0].selector, "outpost202703");
        assert_eq!(store.all_keys("local.test").unwrap().len(), 4);

        // A broken file leaves the keys in force as they were.
        std::fs::write(folder.join("outpost202703.key"), "junk").unwrap();
        assert!(matches!(ring.reload(later), Err(StoreError::Key { .. })));
        assert_eq!(ring.keys_for("local.test")[0].selector, "outpost202703");
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_named() {
        let dir = TempDir::new("dkim-wrong");
        let store = KeyStore::new(dir.path());
        let path = store.key_path("a.test", "s", Algorithm::Rsa).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let der = SigningKey::generate(Algorithm::Ed25519).unwrap();
        std::fs::write(&path, pkcs8_pem(&der)).unwrap();
        let err = store.load("a.test", "s", Algorithm::Rsa).unwrap_err();
        assert!(matches!(err, StoreError::WrongAlgorithm { .. }), "{err}");
        assert!(matches!(
            store.key_path("../etc", "s", Algorithm::Rsa),
            Err(StoreError::BadDomain(_))
        ));
    }
}
