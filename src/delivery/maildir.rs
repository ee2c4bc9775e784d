//! Local delivery into Maildir (<https://cr.yp.to/proto/maildir.html>) at
//! `<data-dir>/mail/<domain>/<local-part>/`, readable by Dovecot and mutt.
//!
//! The Maildir way makes a delivery atomic: write the whole file under
//! `tmp/`, fsync it, then rename it into `new/` and fsync `new/`; a reader
//! never sees half a message and a crash leaves at most a stale `tmp/` file.
//!
//! Exactly once across crashes: the file of one recipient of one queued
//! message has one name, `<arrival>.outpost-<queue id>-<recipient>.<host>`,
//! computed the same by every attempt. A crash after the rename but before
//! the queue recorded the delivery leaves that name in `new/` (or in `cur/`,
//! with flags after a `:`, once a mail client has seen it); the next
//! attempt finds it there and counts the recipient as delivered without
//! writing a second copy.
//!
//! Stale `tmp/` files are removed at start-up, before any delivery runs
//! (see [`MailStore::clean_tmp`]).

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::queue::stored::PIECE;
use crate::queue::QueueId;

/// What the unique part of Outpost's file names starts with.
const MARKER: &str = "outpost-";

/// The Maildir convention: a `tmp/` file untouched this long is abandoned.
pub const TMP_STALE_AFTER: Duration = Duration::from_secs(36 * 60 * 60);

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

/// An I/O error on `path`, for `map_err`.
fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> MaildirError {
    let path = path.to_path_buf();
    move |source| MaildirError::Io { path, source }
}

/// One recipient of one queued message: what names its Maildir file.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryKey<'a> {
    /// The message's queue id.
    pub queue_id: &'a QueueId,
    /// The recipient's index in the message's recipient list.
    pub recipient: usize,
    /// The message's arrival time (seconds since the epoch), as spooled.
    pub arrival: u64,
}

/// How a delivery ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The message was written to this file in `new/`.
    Written(PathBuf),
    /// An earlier attempt had delivered it already: this file, in `new/`
    /// or `cur/`. Nothing was written.
    Found(PathBuf),
}

impl Delivered {
    /// The mailbox file, wherever it is.
    pub fn path(&self) -> &Path {
        match self {
            Delivered::Written(path) | Delivered::Found(path) => path,
        }
    }
}

/// Modes of what a store creates, the server's user alone.
const PRIVATE: Modes = Modes {
    dir: 0o700,
    file: 0o600,
};
/// Modes with `--maildir-group-access`: the group (an IMAP server's user
/// is in it) may read the messages, and may write the directories, as it
/// must to move messages from `new/` to `cur/`, change their flags (a
/// rename) and keep its own index files; no message is ever rewritten in
/// place, so files stay read-only to it. The set-group-ID bit keeps what
/// the IMAP server creates in the server's group.
const GROUP: Modes = Modes {
    dir: 0o2770,
    file: 0o640,
};

/// The permission bits of new directories and files.
#[derive(Debug, Clone, Copy)]
struct Modes {
    dir: u32,
    file: u32,
}

/// The Maildir root of all local mail: `<data-dir>/mail`.
#[derive(Debug, Clone)]
pub struct MailStore {
    root: PathBuf,
    hostname: String,
    modes: Modes,
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
            modes: PRIVATE,
        }
    }

    /// With `on`, what the store creates is open to the server's group
    /// (directories 2770, files 0640; `--maildir-group-access`); otherwise
    /// to its user alone (0700 and 0600).
    pub fn group_access(self, on: bool) -> MailStore {
        MailStore {
            modes: if on { GROUP } else { PRIVATE },
            ..self
        }
    }

    /// The mailbox directory of `local@domain`.
    pub fn mailbox_dir(&self, local: &str, domain: &str) -> Result<PathBuf, MaildirError> {
        Ok(self.root.join(safe_name(domain)?).join(safe_name(local)?))
    }

    /// Delivers `message` (CRLF line ends, as received; read in pieces)
    /// to `local@domain` with a `Return-Path: <sender>` line first (`<>`
    /// for reports; RFC 5321 §4.4), under the name of `key`, unless a file
    /// of that name is already in `new/` or `cur/`. Blocking (fsync).
    pub fn deliver(
        &self,
        local: &str,
        domain: &str,
        sender: &str,
        message: &mut dyn Read,
        key: DeliveryKey<'_>,
    ) -> Result<Delivered, MaildirError> {
        let dir = self.mailbox_dir(local, domain)?;
        let domain_dir = dir.parent().unwrap_or(&self.root);
        for path in [&self.root, domain_dir, &dir] {
            self.create_dir(path)?;
        }
        for sub in ["tmp", "new", "cur"] {
            self.create_dir(&dir.join(sub))?;
        }
        let name = self.file_name(key);
        if let Some(found) = find_delivered(&dir, &name)? {
            return Ok(Delivered::Found(found));
        }
        let tmp = dir.join("tmp").join(&name);
        let new = dir.join("new").join(&name);
        let result = write_and_rename(&tmp, &new, sender, message, self.modes.file);
        if result.is_err() {
            // Best effort: a failed delivery leaves no partial file behind.
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| Delivered::Written(new))
    }

    /// Creates `path` if missing, with the store's mode set explicitly
    /// (the umask, 0077 under the systemd unit, would take the group's
    /// bits, and mkdir(2) ignores the set-group-ID bit).
    fn create_dir(&self, path: &Path) -> Result<(), MaildirError> {
        match DirBuilder::new().mode(self.modes.dir).create(path) {
            Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(self.modes.dir))
                .map_err(io_at(path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_at(path)(e)),
        }
    }

    /// `<arrival>.outpost-<queue id>-<recipient>.<host>`: the Maildir
    /// spec's `time.unique.host` form, with a unique part that no other
    /// delivery has (queue ids are never reused) and that every attempt of
    /// this one computes again.
    pub fn file_name(&self, key: DeliveryKey<'_>) -> String {
        format!(
            "{}.{MARKER}{}-{}.{}",
            key.arrival, key.queue_id, key.recipient, self.hostname
        )
    }

    /// Removes abandoned files from every mailbox's `tmp/` and returns how
    /// many. Abandoned means untouched for [`TMP_STALE_AFTER`] (the
    /// Maildir convention: whoever wrote it gave up long ago), or one of
    /// Outpost's own names whose queue entry is gone (`is_queued` says no):
    /// nothing will deliver it any more. A file with Outpost's name whose
    /// message is still queued stays; its next attempt writes it again
    /// from the start. Call before delivery starts: then no file of ours
    /// is being written, and another program's file is only removed when
    /// nobody has written to it for 36 hours. Best effort: failures are
    /// logged and skipped.
    pub fn clean_tmp(&self, now: SystemTime, is_queued: &dyn Fn(&QueueId) -> bool) -> usize {
        let mut removed = 0;
        for tmp in self.tmp_dirs() {
            let Ok(entries) = fs::read_dir(&tmp) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if is_abandoned(&path, &entry.file_name(), now, is_queued) {
                    match fs::remove_file(&path) {
                        Ok(()) => removed += 1,
                        Err(e) => log::warn!("maildir: cannot remove {}: {e}", path.display()),
                    }
                }
            }
        }
        removed
    }

    /// Every `<domain>/<user>/tmp` under the root.
    fn tmp_dirs(&self) -> Vec<PathBuf> {
        let subdirs = |dir: &Path| -> Vec<PathBuf> {
            fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default()
        };
        subdirs(&self.root)
            .iter()
            .flat_map(|domain| subdirs(domain))
            .map(|mailbox| mailbox.join("tmp"))
            .filter(|tmp| tmp.is_dir())
            .collect()
    }
}

/// Writes the file under `tmp/`, syncs it, renames it to `new/` and syncs
/// `new/`. A `tmp/` file of the same name can only be left by an earlier
/// attempt of this delivery that crashed: it is overwritten.
fn write_and_rename(
    tmp: &Path,
    new: &Path,
    sender: &str,
    message: &mut dyn Read,
    mode: u32,
) -> Result<(), MaildirError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)
        .map_err(io_at(tmp))?;
    // Past the umask, and over a file an earlier attempt left.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_at(tmp))?;
    let sender = sender.replace(['\r', '\n'], "");
    file.write_all(format!("Return-Path: <{sender}>\r\n").as_bytes())
        .and_then(|()| copy_in_pieces(message, &mut file))
        .and_then(|()| file.sync_all())
        .map_err(io_at(tmp))?;
    fs::rename(tmp, new).map_err(io_at(new))?;
    let new_dir = new.parent().unwrap_or(Path::new("."));
    File::open(new_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(new_dir))
}

/// Copies `from` to `to` a [`PIECE`] at a time.
fn copy_in_pieces(from: &mut dyn Read, to: &mut File) -> std::io::Result<()> {
    let mut piece = vec![0; PIECE];
    loop {
        match from.read(&mut piece) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&piece[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The file named `name` in the mailbox `dir` if a delivery put it there:
/// `new/<name>`, or in `cur/` as `<name>` followed by nothing, by the `:`
/// that starts the flags, or by the `,` of fields some readers add
/// (Dovecot's `,S=<size>`).
fn find_delivered(dir: &Path, name: &str) -> Result<Option<PathBuf>, MaildirError> {
    let in_new = dir.join("new").join(name);
    match fs::symlink_metadata(&in_new) {
        Ok(_) => return Ok(Some(in_new)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(MaildirError::Io {
                path: in_new,
                source,
            })
        }
    }
    let cur = dir.join("cur");
    for entry in fs::read_dir(&cur).map_err(io_at(&cur))? {
        let entry = entry.map_err(io_at(&cur))?;
        if is_same_delivery(&entry.file_name(), name) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// `file` is the delivery named `name`, perhaps with flags or fields added.
fn is_same_delivery(file: &OsStr, name: &str) -> bool {
    match file.as_bytes().strip_prefix(name.as_bytes()) {
        Some(rest) => matches!(rest.first(), None | Some(b':' | b',')),
        None => false,
    }
}

/// The queue id in one of Outpost's file names, if `name` is one.
fn queue_id_of(name: &str) -> Option<QueueId> {
    let unique = name.split('.').nth(1)?;
    let (id, recipient) = unique.strip_prefix(MARKER)?.rsplit_once('-')?;
    if recipient.is_empty() || !recipient.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// See [`MailStore::clean_tmp`] for the rule.
fn is_abandoned(
    path: &Path,
    name: &OsStr,
    now: SystemTime,
    is_queued: &dyn Fn(&QueueId) -> bool,
) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let untouched = meta
        .modified()
        .ok()
        .and_then(|modified| now.duration_since(modified).ok())
        .is_some_and(|age| age >= TMP_STALE_AFTER);
    let orphan = name
        .to_str()
        .and_then(queue_id_of)
        .is_some_and(|id| !is_queued(&id));
    untouched || orphan
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

    const ID: &str = "0J5Z3K1M2N3P4Q5R";

    fn key(id: &QueueId, recipient: usize) -> DeliveryKey<'_> {
        DeliveryKey {
            queue_id: id,
            recipient,
            arrival: 1_795_718_460,
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_come_from_arrival_queue_id_and_recipient() {
        let store = MailStore::new(Path::new("/data"), "mx.example:25/x");
        let id: QueueId = ID.parse().unwrap();
        let name = store.file_name(key(&id, 3));
        assert_eq!(
            name,
            "1795718460.outpost-0J5Z3K1M2N3P4Q5R-3.mx.example\\07225\\057x"
        );
        assert_eq!(store.file_name(key(&id, 3)), name, "every attempt agrees");
        assert_ne!(store.file_name(key(&id, 4)), name);
        assert_eq!(queue_id_of(&name), Some(id));
    }

    #[test]
    fn recognises_outpost_names_only() {
        let table = [
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-0.mx.test", Some(ID)),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-12.mx", Some(ID)),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-.mx", None),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-x.mx", None),
            ("1795718460.outpost-short-1.mx", None),
            ("1795718460.M12P34Q5.mx.test", None),
            ("1795718460.12345_6.mx.test", None),
            ("junk", None),
        ];
        for (name, want) in table {
            let want: Option<QueueId> = want.map(|id| id.parse().unwrap());
            assert_eq!(queue_id_of(name), want, "{name}");
        }
    }

    #[test]
    fn same_delivery_ignores_flags_and_reader_fields() {
        let name = "1795718460.outpost-0J5Z3K1M2N3P4Q5R-1.mx";
        let table = [
            (name, true),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-1.mx:2,S", true),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-1.mx:2,", true),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-1.mx,S=120:2,RS", true),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-10.mx", false),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-1.mxx", false),
            ("1795718460.outpost-0J5Z3K1M2N3P4Q5R-1.m", false),
        ];
        for (file, want) in table {
            assert_eq!(is_same_delivery(OsStr::new(file), name), want, "{file}");
        }
    }

    #[test]
    fn delivers_with_return_path_and_distinct_names() {
        let temp = TempDir::new("maildir-deliver");
        let data = temp.path();
        let store = MailStore::new(data, "mx.example:25/x");
        let id: QueueId = ID.parse().unwrap();
        let first = store
            .deliver(
                "Bob",
                "Example.ORG",
                "",
                &mut &b"Subject: hi\r\n\r\nbody\r\n"[..],
                key(&id, 0),
            )
            .unwrap();
        let second = store
            .deliver(
                "bob",
                "example.org",
                "a@b.c",
                &mut &b"x\r\n"[..],
                key(&id, 1),
            )
            .unwrap();
        let (Delivered::Written(first), Delivered::Written(second)) = (first, second) else {
            panic!("both are new deliveries");
        };
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
        assert_eq!(
            first.file_name().unwrap().to_str().unwrap(),
            store.file_name(key(&id, 0))
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(dir.join("new")).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn modes_are_private_or_open_to_the_group() {
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        let id: QueueId = ID.parse().unwrap();
        for (on, dir_mode, file_mode) in [(false, 0o700, 0o600), (true, 0o2770, 0o640)] {
            let temp = TempDir::new("maildir-modes");
            let store = MailStore::new(temp.path(), "mx.test").group_access(on);
            let written = store
                .deliver("bob", "example.org", "", &mut &b"x\r\n"[..], key(&id, 0))
                .unwrap();
            let mailbox = temp.path().join("mail/example.org/bob");
            for dir in ["mail", "mail/example.org", "mail/example.org/bob"] {
                assert_eq!(mode(&temp.path().join(dir)), dir_mode, "{dir}");
            }
            for sub in ["tmp", "new", "cur"] {
                assert_eq!(mode(&mailbox.join(sub)), dir_mode, "{sub}");
            }
            assert_eq!(mode(written.path()), file_mode);
        }
    }

    #[test]
    fn a_second_attempt_finds_the_file_in_new() {
        let temp = TempDir::new("maildir-again-new");
        let store = MailStore::new(temp.path(), "mx.test");
        let id: QueueId = ID.parse().unwrap();
        let first = store.deliver(
            "bob",
            "b.test",
            "a@a.test",
            &mut &b"one\r\n"[..],
            key(&id, 0),
        );
        let Ok(Delivered::Written(path)) = first else {
            panic!("{first:?}");
        };
        let again = store.deliver(
            "bob",
            "b.test",
            "a@a.test",
            &mut &b"two\r\n"[..],
            key(&id, 0),
        );
        assert_eq!(again.unwrap(), Delivered::Found(path.clone()));
        let dir = temp.path().join("mail/b.test/bob");
        assert_eq!(names_in(&dir.join("new")).len(), 1);
        assert_eq!(
            fs::read(&path).unwrap(),
            b"Return-Path: <a@a.test>\r\none\r\n"
        );
        assert!(names_in(&dir.join("tmp")).is_empty());
    }

    #[test]
    fn a_second_attempt_finds_the_file_a_reader_moved_to_cur() {
        let temp = TempDir::new("maildir-again-cur");
        let store = MailStore::new(temp.path(), "mx.test");
        let id: QueueId = ID.parse().unwrap();
        let dir = temp.path().join("mail/b.test/bob");
        for (recipient, suffix) in [(0, ":2,S"), (1, ",S=20,W=21:2,RS")] {
            let written = store
                .deliver("bob", "b.test", "", &mut &b"x\r\n"[..], key(&id, recipient))
                .unwrap();
            let name = store.file_name(key(&id, recipient));
            let seen = dir.join("cur").join(format!("{name}{suffix}"));
            fs::rename(written.path(), &seen).unwrap();
            let again = store.deliver("bob", "b.test", "", &mut &b"x\r\n"[..], key(&id, recipient));
            assert_eq!(again.unwrap(), Delivered::Found(seen), "{suffix}");
        }
        assert!(names_in(&dir.join("new")).is_empty());
        assert_eq!(names_in(&dir.join("cur")).len(), 2);
    }

    #[test]
    fn a_tmp_file_left_by_a_crashed_attempt_is_written_over() {
        let temp = TempDir::new("maildir-stale-tmp");
        let store = MailStore::new(temp.path(), "mx.test");
        let id: QueueId = ID.parse().unwrap();
        let dir = temp.path().join("mail/b.test/bob");
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let name = store.file_name(key(&id, 0));
        fs::write(dir.join("tmp").join(&name), b"half a mess").unwrap();
        let delivered = store.deliver("bob", "b.test", "", &mut &b"whole\r\n"[..], key(&id, 0));
        let Ok(Delivered::Written(path)) = delivered else {
            panic!("{delivered:?}");
        };
        assert_eq!(fs::read(path).unwrap(), b"Return-Path: <>\r\nwhole\r\n");
        assert!(names_in(&dir.join("tmp")).is_empty());
    }

    #[test]
    fn start_up_removes_abandoned_tmp_files_only() {
        let temp = TempDir::new("maildir-clean");
        let store = MailStore::new(temp.path(), "mx.test");
        let queued: QueueId = ID.parse().unwrap();
        let gone: QueueId = "0J5Z3K1M2N3P4Q5S".parse().unwrap();
        let tmp = temp.path().join("mail/b.test/bob/tmp");
        fs::create_dir_all(&tmp).unwrap();
        let other_tmp = temp.path().join("mail/c.test/carol/tmp");
        fs::create_dir_all(&other_tmp).unwrap();
        let ours_queued = store.file_name(key(&queued, 0));
        let ours_gone = store.file_name(key(&gone, 1));
        for name in [&ours_queued, &ours_gone, "1795718460.M1P2Q3.other", "old"] {
            fs::write(tmp.join(name), b"x").unwrap();
        }
        fs::write(other_tmp.join("being-written"), b"x").unwrap();
        let now = SystemTime::now();
        let long_ago = now - TMP_STALE_AFTER - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(tmp.join("old"))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();

        let removed = store.clean_tmp(now, &|id| *id == queued);

        assert_eq!(removed, 2);
        assert_eq!(
            names_in(&tmp),
            vec!["1795718460.M1P2Q3.other".to_string(), ours_queued]
        );
        assert_eq!(names_in(&other_tmp), vec!["being-written".to_string()]);
    }
}
