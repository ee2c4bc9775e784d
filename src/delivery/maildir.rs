//! Local delivery into Maildir (<https://cr.yp.to/proto/maildir.html>) at
//! `<data-dir>/mail/<domain>/<local-part>/`, readable by Dovecot and mutt.
//!
//! The Maildir way makes a delivery atomic: write the whole file under
//! `tmp/`, fsync it, then rename it into `new/` and fsync `new/`; a reader
//! never sees half a message and a crash leaves at most a stale `tmp/` file.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-process delivery counter for unique names (the `Q` part).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Errors of local delivery.
#[derive(Debug)]
pub enum MaildirError {
    /// The local part or domain cannot be made into a safe directory name.
    BadName(String),
    /// A file system call failed on `path`.
    Io {
        /// The file or directory the call was on.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl std::fmt::Display for MaildirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaildirError::BadName(name) => write!(f, "no safe mailbox name for {name:?}"),
            MaildirError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for MaildirError {}

/// The Maildir root of all local mail: `<data-dir>/mail`.
#[derive(Debug, Clone)]
pub struct MailStore {
    root: PathBuf,
    hostname: String,
}

impl MailStore {
    /// A store under `<data_dir>/mail`; `hostname` goes into file names.
    pub fn new(data_dir: &Path, hostname: &str) -> MailStore {
        // The host part of a Maildir name must not contain `/` or `:`
        // (the spec replaces them with \057 and \072).
        let hostname = hostname.replace('/', "\\057").replace(':', "\\072");
        MailStore {
            root: data_dir.join("mail"),
            hostname,
        }
    }

    /// The mailbox directory of `local@domain`.
    pub fn mailbox_dir(&self, local: &str, domain: &str) -> Result<PathBuf, MaildirError> {
        Ok(self.root.join(safe_name(domain)?).join(safe_name(local)?))
    }

    /// Delivers `message` (CRLF line ends, as received) to `local@domain`
    /// with a `Return-Path: <sender>` line first (`<>` for reports; RFC 5321
    /// §4.4). Returns the path of the file in `new/`. Blocking (fsync).
    pub fn deliver(
        &self,
        local: &str,
        domain: &str,
        sender: &str,
        message: &[u8],
    ) -> Result<PathBuf, MaildirError> {
        let dir = self.mailbox_dir(local, domain)?;
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for sub in ["tmp", "new", "cur"] {
            let path = dir.join(sub);
            builder
                .create(&path)
                .map_err(|source| MaildirError::Io { path, source })?;
        }
        let name = self.unique_name();
        let tmp = dir.join("tmp").join(&name);
        let new = dir.join("new").join(&name);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MaildirError::Io { path, source }
        };
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            let sender = sender.replace(['\r', '\n'], "");
            file.write_all(format!("Return-Path: <{sender}>\r\n").as_bytes())
                .and_then(|()| file.write_all(message))
                .and_then(|()| file.sync_all())
                .map_err(io(&tmp))?;
            fs::rename(&tmp, &new).map_err(io(&new))?;
            let new_dir = dir.join("new");
            File::open(&new_dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&new_dir))
        })();
        if result.is_err() {
            // Best effort: a failed delivery leaves no partial file behind.
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| new)
    }

    /// `<secs>.M<micros>P<pid>Q<counter>.<host>` (the Maildir spec's
    /// recommended form): unique per host, process and delivery.
    fn unique_name(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            counter,
            self.hostname
        )
    }
}

/// A local part or domain as one safe directory name: lower case, no `/`,
/// no NUL or control characters, not starting with a dot (no `..`, no
/// hidden directories), not empty, at most 255 octets.
pub fn safe_name(part: &str) -> Result<String, MaildirError> {
    let lowered = part.trim_matches('"').to_lowercase();
    let cleaned: String = lowered
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() || cleaned.len() > 255 {
        return Err(MaildirError::BadName(part.to_string()));
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn sanitises_names() {
        let table = [
            ("Bob", Some("bob")),
            ("../../etc", Some("_.._etc")),
            ("..", None),
            (".hidden", Some("hidden")),
            ("a/b", Some("a_b")),
            ("\"quoted x\"", Some("quoted x")),
            ("", None),
            ("ÄÖ", Some("äö")),
            ("a\nb", Some("a_b")),
        ];
        for (input, want) in table {
            assert_eq!(safe_name(input).ok().as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn delivers_with_return_path_and_unique_names() {
        let temp = TempDir::new("maildir-deliver");
        let data = temp.path();
        let store = MailStore::new(data, "mx.example:25/x");
        let first = store
            .deliver("Bob", "Example.ORG", "", b"Subject: hi\r\n\r\nbody\r\n")
            .unwrap();
        let second = store
            .deliver("bob", "example.org", "a@b.c", b"x\r\n")
            .unwrap();
        assert_ne!(first, second);
        let dir = data.join("mail/example.org/bob");
        assert_eq!(first.parent().unwrap(), dir.join("new"));
        assert_eq!(
            fs::read(&first).unwrap(),
            b"Return-Path: <>\r\nSubject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(fs::read(&second).unwrap(), b"Return-Path: <a@b.c>\r\nx\r\n");
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        assert!(dir.join("cur").is_dir());
        let name = first.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.contains(".M") && name.contains('P') && name.contains('Q'),
            "{name}"
        );
        assert!(name.ends_with(".mx.example\\07225\\057x"), "{name}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(dir.join("new")).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
