//! The spool: the only code that writes queued messages. A message is
//! durable (its file and the directory fsync'd) before the 250 that carries
//! its queue id. May import `proto` (envelope types, the
//! Received header) and `work_queue`, nothing above them.
//!
//! Layout under `<data-dir>/queue/` (mode 0700, files 0600): one file per
//! message, `<id>.msg`, holding the envelope as accepted in the line-based
//! `key: value` text form of [`envfile`] (`head` shows it), ending in its
//! trailer line `end <message-length> <checksum>`, and right after it
//! exactly the message bytes (Received header prepended). Once delivery
//! state changes it is kept in `<id>.env`, the same envelope form,
//! rewritten atomically; when present it supersedes the head of `<id>.msg`.
//! So a message that is delivered at the first attempt costs one file,
//! written, synced and removed once; and a small one's file is not even
//! created and removed, but emptied after delivery and reused, renamed
//! `free-<n>` in between (see `recycled.rs`).
//!
//! Order of writing: `<id>.msg` is created with mode 0200 (its owner may
//! write it but not read it: "being written"), written, set to 0600
//! ("finished"), and then the file and the directory are fsync'd at the same
//! time, together with those of every other message in the batch, so the
//! file system makes them durable in one journal commit rather than the two
//! that a sync, a rename and a second sync would take. A file still in mode
//! 0200 was never acknowledged: listings skip it and start-up removes it, as
//! it removes any `*.tmp` (an envelope update cut short). A reused file is
//! written while it is still named `free-<n>` and renamed to `<id>.msg`
//! when whole, so it needs no such mark. A finished file
//! that a crash cut short fails its length and checksum and is quarantined,
//! never delivered half; it was not acknowledged either, since the 250
//! waits for the fsyncs.
//! Removal takes `<id>.msg` first: a crash in between leaves an `<id>.env`
//! alone, which start-up removes, never a message with an older state.
//! Files that fail their checks are moved to `queue/corrupt/`, never
//! delivered half.

pub mod envfile;
pub mod id;
mod recipient;
mod recycled;
mod shared_sync;
pub mod stored;
mod streamed;
mod syncer;
mod writer;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use ring::digest::{Context, SHA256};

use crate::proto::envelope::{EnqueueError, Envelope, NewMessage, Origin};
use crate::proto::esmtp::{Body, Ret};
use crate::proto::header::missing_fields;
use crate::proto::received::{received_header, rfc5322_date};
use recycled::{Recycled, Recycler};
use shared_sync::SharedSync;
use syncer::Syncer;

pub use id::{InvalidQueueId, QueueId};
pub use recipient::{Failure, RecipientEntry, RecipientState, RemoteReply};
pub use stored::{StoredMessage, StoredReader};
pub use streamed::StreamedMessage;
pub use writer::{SpoolWriter, WriterStats};

/// Linux `ENOSPC`: no space left on the device.
const ENOSPC: i32 = 28;
/// Linux `EDQUOT`: disk quota exceeded.
const EDQUOT: i32 = 122;

/// Errors of the spool.
#[derive(Debug)]
pub enum QueueError {
    /// An I/O call failed on `path`.
    Io {
        /// The spool file or directory the call was on.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A queue file is truncated or corrupt.
    Corrupt {
        /// The queue file that is damaged.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller passed something the spool cannot use: a message without
    /// recipients, or an update naming another id.
    Invalid {
        /// What the caller got wrong.
        reason: String,
    },
    /// The spool writer thread has stopped (server shutting down).
    Stopped,
}

impl QueueError {
    /// What the SMTP session should answer: disk full or over quota is
    /// 452 4.3.1, anything else 451 4.3.0 (RFC 3463 §3.4).
    pub fn as_enqueue_error(&self) -> EnqueueError {
        match self {
            QueueError::Io { source, .. }
                if matches!(source.raw_os_error(), Some(ENOSPC) | Some(EDQUOT)) =>
            {
                EnqueueError::NoSpace
            }
            _ => EnqueueError::Failed,
        }
    }
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            QueueError::Corrupt { path, reason } => {
                write!(f, "{}: corrupt queue file: {reason}", path.display())
            }
            QueueError::Invalid { reason } => write!(f, "invalid spool request: {reason}"),
            QueueError::Stopped => write!(f, "the spool writer has stopped"),
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Called once the message is durable (or failed), on the spool thread.
/// If the writer has already stopped it is called at once with
/// [`QueueError::Stopped`] on the submitting thread.
pub type Done = Box<dyn FnOnce(Result<QueueId, QueueError>) + Send>;

/// The MAIL FROM half of a queued envelope: the reverse-path and its
/// parameters. The RCPT half, with each recipient's delivery state, is
/// [`QueuedMessage::recipients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse-path; empty string for the null path `<>`.
    pub sender: String,
    /// `BODY=` as given.
    pub body: Option<Body>,
    /// The message asked for SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 3461 RET.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID as written.
    pub envid: Option<String>,
}

impl MailFrom {
    /// The MAIL FROM half of `envelope`.
    pub fn of(envelope: &Envelope) -> MailFrom {
        MailFrom {
            sender: envelope.sender.clone(),
            body: envelope.body,
            smtputf8: envelope.smtputf8,
            ret: envelope.ret,
            envid: envelope.envid.clone(),
        }
    }
}

/// A spooled message as read back from its envelope file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Its queue id.
    pub id: QueueId,
    /// Arrival time, seconds since the Unix epoch.
    pub arrival: u64,
    /// The sender and the MAIL parameters, as accepted.
    pub mail_from: MailFrom,
    /// Who sent it and how.
    pub origin: Origin,
    /// Every recipient with its delivery state, in the order accepted
    /// (alias expansion replaces an entry by its expansion in place).
    pub recipients: Vec<RecipientEntry>,
    /// Delivery attempts of the message so far.
    pub attempts: u32,
    /// When to try again, seconds since the Unix epoch (0: at once).
    pub next_attempt: u64,
    /// A "delayed" report (RFC 3464 `Action: delayed`) was sent already;
    /// it is sent at most once per message.
    pub delay_warned: bool,
    /// The exact length of `<id>.msg`.
    pub message_length: u64,
    /// SHA-256 of `<id>.msg`, lowercase hex.
    pub message_sha256: String,
}

impl QueuedMessage {
    /// `message` as spooled under `id` at `arrival` (seconds since the
    /// epoch), before its first attempt: every recipient pending. `length`
    /// and `sha256` describe its `<id>.msg` file.
    pub(crate) fn arrived(
        id: QueueId,
        arrival: u64,
        message: &NewMessage,
        length: u64,
        sha256: String,
    ) -> QueuedMessage {
        QueuedMessage {
            id,
            arrival,
            mail_from: MailFrom::of(&message.envelope),
            origin: message.origin.clone(),
            recipients: message
                .envelope
                .recipients
                .iter()
                .cloned()
                .map(RecipientEntry::pending)
                .collect(),
            attempts: 0,
            next_attempt: 0,
            delay_warned: false,
            message_length: length,
            message_sha256: sha256,
        }
    }

    /// Some recipient is not final yet (pending or deferred).
    pub fn has_open_recipients(&self) -> bool {
        self.recipients.iter().any(RecipientEntry::is_open)
    }
}

/// The spool of one data directory.
pub struct Spool {
    dir: PathBuf,
    /// The directory, open for its fsyncs.
    dir_handle: Arc<File>,
    /// Directory syncs shared by delivery threads (removals, updates).
    shared_sync: SharedSync,
    hostname: String,
    ids: id::IdGenerator,
    /// The fsync threads, started with the first message stored.
    syncer: OnceLock<Option<Syncer>>,
    /// Messages this spool wrote and made durable itself. Their checksum
    /// guards against files torn by a crash or changed on disk, which
    /// cannot have happened to them while this process ran, so delivery
    /// does not read them through once more to check it. Nor does it look
    /// for an `<id>.env` that this spool never wrote.
    written_here: Mutex<HashMap<QueueId, WrittenHere>>,
    /// Files of delivered messages, emptied, kept for new ones.
    recycler: Recycler,
}

/// What a spool knows of a message it wrote itself.
#[derive(Debug, Clone, Copy, Default)]
struct WrittenHere {
    /// An `<id>.env` may exist: delivery has recorded a state.
    has_state: bool,
}

/// A message file opened for reading, its envelope checked.
struct Opened {
    path: PathBuf,
    file: File,
    message: QueuedMessage,
    /// Where the message starts in the file.
    head_length: usize,
    /// The bytes read so far: the envelope, then perhaps the start of the
    /// message (all of a small one).
    bytes: Vec<u8>,
}

/// A batch whose files are written and marked finished, waiting for the
/// syncs that make it durable.
pub(crate) struct PreparedBatch(Vec<Result<Staged, QueueError>>);

/// A message written to its file, not yet durable.
struct Staged {
    id: QueueId,
    path: PathBuf,
    /// The written file, still to be synced.
    file: Arc<File>,
    /// Written as a finished file (mode 0600) already.
    finished: bool,
}

/// The mode of a message file being written: its owner may write it but
/// not read it. Listings skip such a file and start-up removes it.
const WRITING_MODE: u32 = 0o200;
/// The mode of a finished message file.
const FINISHED_MODE: u32 = 0o600;

impl Spool {
    /// Opens (creating with mode 0700) `<data_dir>/queue/`, naming this
    /// host `localhost` in Received headers; the server uses
    /// [`Spool::open_with_hostname`].
    pub fn open(data_dir: &Path) -> Result<Arc<Spool>, QueueError> {
        Spool::open_with_hostname(data_dir, "localhost")
    }

    /// Opens the spool for the server: creates `<data_dir>/queue/` (0700)
    /// and removes what was never acknowledged (`*.tmp`) or outlived its
    /// message (an `.env` without its `.msg`). `hostname` goes into the
    /// Received header.
    pub fn open_with_hostname(data_dir: &Path, hostname: &str) -> Result<Arc<Spool>, QueueError> {
        let spool = Spool::attach(data_dir, hostname)?;
        spool.recover()?;
        Ok(spool)
    }

    /// Opens the spool without any clean-up, for the queue tools that run
    /// beside a live server (whose `*.tmp` files are in flight).
    pub fn attach(data_dir: &Path, hostname: &str) -> Result<Arc<Spool>, QueueError> {
        let dir = data_dir.join("queue");
        create_private_dir(&dir)?;
        let dir_handle = Arc::new(File::open(&dir).map_err(io_error(&dir))?);
        Ok(Arc::new(Spool {
            dir,
            dir_handle,
            shared_sync: SharedSync::default(),
            hostname: hostname.to_string(),
            ids: id::IdGenerator::new(),
            syncer: OnceLock::new(),
            written_here: Mutex::new(HashMap::new()),
            recycler: Recycler::default(),
        }))
    }

    /// The spool directory, `<data_dir>/queue`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `message` durably and returns its id. Blocking (fsync).
    pub fn store(&self, message: &NewMessage) -> Result<QueueId, QueueError> {
        self.store_batch(&[message])
            .pop()
            .unwrap_or(Err(QueueError::Stopped))
    }

    /// Writes several messages with one round of fsyncs (group commit);
    /// one result per message, in order. No `Ok` is returned before that
    /// message's file and directory entry are durable.
    pub fn store_batch(&self, messages: &[&NewMessage]) -> Vec<Result<QueueId, QueueError>> {
        self.commit_batch(self.prepare_batch(messages))
    }

    /// The first half of [`Spool::store_batch`]: writes every message's
    /// file and marks it finished. Nothing is durable until
    /// [`Spool::commit_batch`] has synced the files and the directory.
    pub(crate) fn prepare_batch(&self, messages: &[&NewMessage]) -> PreparedBatch {
        self.prepare_staged(messages.iter().map(|m| self.stage(m)).collect())
    }

    /// Starts the file of a message too big to keep in memory: `first`
    /// is its envelope and, as its body, the first part of the message.
    /// The other parts are appended to the [`StreamedMessage`], which the
    /// spool writer then finishes and commits like any other message.
    pub fn start_message(&self, first: &NewMessage) -> Result<StreamedMessage, QueueError> {
        StreamedMessage::start(self, first)
    }

    /// Marks written message files finished.
    fn prepare_staged(&self, mut staged: Vec<Result<Staged, QueueError>>) -> PreparedBatch {
        for slot in staged.iter_mut() {
            if let Ok(written) = slot {
                if let Err(error) = mark_finished(written) {
                    *slot = Err(error);
                }
            }
        }
        PreparedBatch(staged)
    }

    /// The second half of [`Spool::store_batch`]: the files of the batch
    /// and the directory are synced at the same time, which makes the whole
    /// batch durable.
    pub(crate) fn commit_batch(&self, prepared: PreparedBatch) -> Vec<Result<QueueId, QueueError>> {
        let mut staged = prepared.0;
        if staged.iter().any(Result::is_ok) {
            let syncer = self.syncer.get_or_init(Syncer::start).as_ref();
            let dir_synced = sync_staged(syncer, &self.dir_handle, &mut staged);
            if let Err(source) = dir_synced {
                let error = DirSyncError {
                    path: self.dir.clone(),
                    source,
                };
                // The entries may or may not survive a crash; the client is
                // told 451 and will resend, so take them back rather than
                // risk delivering a copy it never saw accepted.
                let failed = |s: Result<Staged, QueueError>| {
                    let staged = s?;
                    self.discard(&staged.id);
                    Err(QueueError::Io {
                        path: error.path().to_path_buf(),
                        source: error.copy(),
                    })
                };
                return staged.into_iter().map(failed).collect();
            }
        }
        let ids: Vec<Result<QueueId, QueueError>> =
            staged.into_iter().map(|s| s.map(|s| s.id)).collect();
        self.written_here.lock().extend(
            ids.iter()
                .filter_map(|id| Some((id.as_ref().ok()?.clone(), WrittenHere::default()))),
        );
        ids
    }

    /// The queue ids of all messages (their finished `.msg` files), oldest
    /// first.
    pub fn list(&self) -> Result<Vec<QueueId>, QueueError> {
        let mut ids: Vec<QueueId> = self
            .entries()?
            .into_iter()
            .filter(|name| !self.being_written(name))
            .filter_map(|name| name.strip_suffix(".msg")?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Is `name` a message file still being written (mode 0200)? One that
    /// vanished meanwhile counts as not listed either.
    fn being_written(&self, name: &str) -> bool {
        name.ends_with(".msg")
            && fs::symlink_metadata(self.dir.join(name))
                .map_or(true, |m| m.permissions().mode() & 0o777 == WRITING_MODE)
    }

    /// Reads and checks the envelope of `id` (its `.env` if delivery
    /// state was recorded, else the head of its `.msg`) and the length of
    /// the message. A torn or altered file is [`QueueError::Corrupt`];
    /// quarantine it.
    pub fn load(&self, id: &QueueId) -> Result<QueuedMessage, QueueError> {
        Ok(self.open_message(id)?.message)
    }

    /// Opens `id` for delivery: its envelope (as [`Spool::load`]) and its
    /// message, checked against the length the envelope records and, unless
    /// this spool wrote it since it was opened, the SHA-256, by reading it
    /// through once, in pieces. The message stays in
    /// its file; delivery reads it again from there for each recipient and
    /// host, so no message is ever held whole in memory.
    pub fn load_with_message(
        &self,
        id: &QueueId,
    ) -> Result<(QueuedMessage, StoredMessage), QueueError> {
        let Opened {
            path,
            file,
            message,
            head_length,
            mut bytes,
        } = self.open_message(id)?;
        let corrupt = || QueueError::Corrupt {
            path: path.clone(),
            reason: "message checksum mismatch".to_string(),
        };
        // A small message came whole with its envelope: it is not read again.
        let whole = bytes.len() as u64 == head_length as u64 + message.message_length;
        let read_already = whole.then(|| bytes.split_off(head_length));
        let stored = StoredMessage::new(
            file,
            head_length as u64,
            message.message_length,
            read_already,
        );
        if self.written_here.lock().contains_key(id) {
            return Ok((message, stored));
        }
        let mut digest = Context::new(&SHA256);
        match stored.for_each_piece(|piece| {
            digest.update(piece);
            true
        }) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(corrupt()),
            Err(source) => return Err(io_error(&path)(source)),
        }
        if envfile::hex(digest.finish().as_ref()) != message.message_sha256 {
            return Err(corrupt());
        }
        Ok((message, stored))
    }

    /// Reads the message bytes of `id` whole (for the queue tools), checked
    /// as in [`Spool::load_with_message`].
    pub fn read_message(&self, id: &QueueId) -> Result<Vec<u8>, QueueError> {
        let (_, stored) = self.load_with_message(id)?;
        stored
            .head(usize::MAX)
            .map_err(io_error(&self.message_path(id)))
    }

    /// The queue file of `id`: its envelope as accepted, then the message.
    pub fn message_path(&self, id: &QueueId) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    /// Opens the message file of `id` and reads and checks its envelope.
    fn open_message(&self, id: &QueueId) -> Result<Opened, QueueError> {
        let path = self.message_path(id);
        let mut file = File::open(&path).map_err(io_error(&path))?;
        let metadata = file.metadata().map_err(io_error(&path))?;
        // Only a tool beside the server, given the id by hand, gets here
        // with a file the server is still writing: it is no message yet.
        if metadata.permissions().mode() & 0o777 == WRITING_MODE {
            return Err(QueueError::Invalid {
                reason: format!("{id} is still being received"),
            });
        }
        let file_length = metadata.len();
        let (head_length, bytes) = read_head(&mut file, &path)?;
        let message = self.envelope(id, &bytes[..head_length])?;
        check_length(&path, file_length, head_length, &message)?;
        Ok(Opened {
            path,
            file,
            message,
            head_length,
            bytes,
        })
    }

    /// The current envelope of `id`: `<id>.env` if delivery has written
    /// one, else `head` (the start of `<id>.msg`), parsed and checked.
    fn envelope(&self, id: &QueueId, head: &[u8]) -> Result<QueuedMessage, QueueError> {
        let env_path = self.env_path(id);
        let stateless = self
            .written_here
            .lock()
            .get(id)
            .is_some_and(|written| !written.has_state);
        let updated = if stateless {
            None
        } else {
            read_if_present(&env_path)?
        };
        let (bytes, path) = match &updated {
            Some(bytes) => (bytes.as_slice(), env_path),
            None => (head, self.message_path(id)),
        };
        let message = envfile::parse(bytes).map_err(|e| QueueError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if message.id != *id {
            return Err(QueueError::Corrupt {
                path,
                reason: format!("file names id {}", message.id),
            });
        }
        Ok(message)
    }

    /// Replaces the envelope of `id` (delivery state, attempts) atomically:
    /// temporary file, fsync, rename, directory fsync.
    pub fn update(&self, id: &QueueId, message: &QueuedMessage) -> Result<(), QueueError> {
        if message.id != *id {
            return Err(QueueError::Invalid {
                reason: format!("update of {id} names {}", message.id),
            });
        }
        if message.recipients.is_empty() {
            return Err(QueueError::Invalid {
                reason: format!("update of {id} without recipients"),
            });
        }
        let msg_path = self.message_path(id);
        // Do not write a state for a message deleted meanwhile (`queue
        // delete`); start-up would remove it, but nothing needs it.
        fs::metadata(&msg_path).map_err(io_error(&msg_path))?;
        if let Some(written) = self.written_here.lock().get_mut(id) {
            written.has_state = true;
        }
        let tmp = self.dir.join(format!("{id}.env.update.tmp"));
        write_synced(&tmp, &[&envfile::render(message)])?;
        let env_path = self.env_path(id);
        if let Err(source) = fs::rename(&tmp, &env_path) {
            let _ = fs::remove_file(&tmp);
            return Err(QueueError::Io {
                path: env_path,
                source,
            });
        }
        self.sync_shared()
    }

    /// Removes a message (delivered, bounced or deleted): the `.msg`
    /// first, so a crash in between leaves only an `.env` that start-up
    /// removes, never the message with its state as accepted.
    pub fn remove(&self, id: &QueueId) -> Result<(), QueueError> {
        self.written_here.lock().remove(id);
        for path in [self.message_path(id), self.env_path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(QueueError::Io { path, source }),
            }
        }
        self.sync_shared()
    }

    /// Removes a message delivery is done with. Like [`Spool::remove`],
    /// but without the directory sync when the message had no `.env`, as
    /// most have (delivered at the first attempt): a crash right after may
    /// then bring the file back, and the message gets one more attempt of
    /// what it just did, the duplicate RFC 5321 §6.1 allows (Maildir
    /// delivery recognises its own file and does not repeat it). Once
    /// delivery has recorded a state, the removal is synced, so that a
    /// crash never brings back a message with an older state. A small
    /// message's file is emptied and kept for a new message rather than
    /// removed (see `recycled.rs`).
    pub fn retire(&self, id: &QueueId) -> Result<(), QueueError> {
        let written = self.written_here.lock().remove(id);
        let msg_path = self.message_path(id);
        let removed = match self.recycler.recycle(&self.dir, &msg_path) {
            Ok(Recycled::Kept) => Ok(()),
            Ok(Recycled::Declined) => fs::remove_file(&msg_path),
            Err(error) => {
                log::warn!(
                    "spool: cannot keep {} for reuse: {error}",
                    msg_path.display()
                );
                fs::remove_file(&msg_path)
            }
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(QueueError::Io {
                    path: msg_path,
                    source,
                })
            }
        }
        if written.is_some_and(|written| !written.has_state) {
            return Ok(());
        }
        let env_path = self.env_path(id);
        match fs::remove_file(&env_path) {
            Ok(()) => self.sync_shared(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(QueueError::Io {
                path: env_path,
                source,
            }),
        }
    }

    /// Moves the files of `id` to `queue/corrupt/` for an operator to look
    /// at; they are never delivered.
    pub fn quarantine(&self, id: &QueueId) -> Result<(), QueueError> {
        self.written_here.lock().remove(id);
        let corrupt = self.dir.join("corrupt");
        create_private_dir(&corrupt)?;
        for name in [format!("{id}.msg"), format!("{id}.env")] {
            let from = self.dir.join(&name);
            match fs::rename(&from, corrupt.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(QueueError::Io { path: from, source }),
            }
        }
        sync_dir_at(&corrupt).map_err(DirSyncError::into_queue_error)?;
        self.sync_dir().map_err(DirSyncError::into_queue_error)
    }

    fn env_path(&self, id: &QueueId) -> PathBuf {
        self.dir.join(format!("{id}.env"))
    }

    /// Writes the file of one message, marked as being written, not yet
    /// synced.
    fn stage(&self, message: &NewMessage) -> Result<Staged, QueueError> {
        if message.envelope.recipients.is_empty() {
            return Err(QueueError::Invalid {
                reason: "a message without recipients".into(),
            });
        }
        let (id, arrival, header) = self.arrival(message);
        let mut digest = Context::new(&SHA256);
        digest.update(header.as_bytes());
        digest.update(&message.body);
        let queued = QueuedMessage::arrived(
            id.clone(),
            arrival,
            message,
            (header.len() + message.body.len()) as u64,
            envfile::hex(digest.finish().as_ref()),
        );
        let path = self.message_path(&id);
        // Envelope and Received header in one write, then the message.
        let mut head = envfile::render(&queued);
        head.extend_from_slice(header.as_bytes());
        let parts: [&[u8]; 2] = [&head, &message.body];
        let written = match self.recycler.take() {
            Some(free) => free
                .write_as(&path, &parts)
                .map(|file| (file, true))
                .map_err(io_error(&path)),
            None => write_new(&path, &parts).map(|file| (file, false)),
        };
        match written {
            Ok((file, finished)) => Ok(Staged {
                id,
                path,
                file: Arc::new(file),
                finished,
            }),
            Err(error) => {
                let _ = fs::remove_file(&path);
                Err(error)
            }
        }
    }

    /// A new message's queue id, arrival time (seconds since the epoch)
    /// and the fields it is stored with before its own bytes: our Received
    /// field, then the fields it lacks (a Message-ID, a Date).
    fn arrival(&self, message: &NewMessage) -> (QueueId, u64, String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let id = self.ids.next(millis);
        let date = rfc5322_date(now.as_secs());
        let mut header = received_header(&message.origin, &self.hostname, id.as_str(), &date);
        header.push_str(&missing_fields(
            message.missing,
            id.as_str(),
            &self.hostname,
            &date,
        ));
        (id, now.as_secs(), header)
    }

    /// Best-effort removal of a message that was not acknowledged.
    fn discard(&self, id: &QueueId) {
        let _ = fs::remove_file(self.message_path(id));
    }

    fn sync_dir(&self) -> Result<(), DirSyncError> {
        self.dir_handle.sync_all().map_err(|source| DirSyncError {
            path: self.dir.clone(),
            source,
        })
    }

    /// A directory sync shared with other delivery threads that need one.
    fn sync_shared(&self) -> Result<(), QueueError> {
        self.shared_sync
            .sync(&self.dir_handle)
            .map_err(io_error(&self.dir))
    }

    fn entries(&self) -> Result<Vec<String>, QueueError> {
        let read = fs::read_dir(&self.dir).map_err(io_error(&self.dir))?;
        let mut names = Vec::new();
        for entry in read {
            let entry = entry.map_err(io_error(&self.dir))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Start-up clean-up after a crash (see
    /// [`Spool::open_with_hostname`]); new ids then sort after every id on
    /// disk, even if the clock was set back since they were made.
    fn recover(&self) -> Result<(), QueueError> {
        let names = self.entries()?;
        let mut changed = false;
        for name in &names {
            let path = self.dir.join(name);
            let orphan_env = name
                .strip_suffix(".env")
                .is_some_and(|stem| !names.iter().any(|n| *n == format!("{stem}.msg")));
            if name.ends_with(".tmp")
                || self.being_written(name)
                || orphan_env
                || recycled::is_free_file(name)
            {
                log::info!("spool: removing unfinished {}", path.display());
                fs::remove_file(&path).map_err(io_error(&path))?;
                changed = true;
            }
        }
        if let Some(last) = names
            .iter()
            .filter_map(|name| name.get(..id::ID_LEN)?.parse::<QueueId>().ok())
            .max()
        {
            self.ids.advance_past(&last);
        }
        if changed {
            self.sync_dir().map_err(DirSyncError::into_queue_error)?;
        }
        Ok(())
    }
}

/// Reads `file` (a `.msg`) up to the end of its envelope head; returns the
/// head's length and the bytes read, which may run into the message.
fn read_head(file: &mut File, path: &Path) -> Result<(usize, Vec<u8>), QueueError> {
    const CHUNK: usize = 16 * 1024;
    let mut bytes = Vec::new();
    loop {
        let filled = bytes.len();
        bytes.resize(filled + CHUNK, 0);
        let n = file.read(&mut bytes[filled..]).map_err(io_error(path))?;
        bytes.truncate(filled + n);
        if let Some(length) = envfile::head_length(&bytes) {
            return Ok((length, bytes));
        }
        if n == 0 {
            return Err(QueueError::Corrupt {
                path: path.to_path_buf(),
                reason: "no envelope trailer line".into(),
            });
        }
    }
}

/// The bytes of the file at `path`, or `None` if there is none.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, QueueError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(QueueError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Is the `.msg` file exactly its head and the message the envelope
/// describes?
fn check_length(
    path: &Path,
    file_length: u64,
    head_length: usize,
    message: &QueuedMessage,
) -> Result<(), QueueError> {
    let length = file_length.saturating_sub(head_length as u64);
    if length == message.message_length {
        return Ok(());
    }
    Err(QueueError::Corrupt {
        path: path.to_path_buf(),
        reason: format!(
            "message length {length}, envelope says {}",
            message.message_length
        ),
    })
}

/// A failed directory fsync, kept apart because its error is reported for
/// every message of a batch.
struct DirSyncError {
    path: PathBuf,
    source: io::Error,
}

impl DirSyncError {
    fn path(&self) -> &Path {
        &self.path
    }

    /// An equivalent error for one more message of the batch.
    fn copy(&self) -> io::Error {
        match self.source.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.source.kind(), self.source.to_string()),
        }
    }

    fn into_queue_error(self) -> QueueError {
        QueueError::Io {
            path: self.path,
            source: self.source,
        }
    }
}

fn sync_dir_at(dir: &Path) -> Result<(), DirSyncError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| DirSyncError {
            path: dir.to_path_buf(),
            source,
        })
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and parents) and makes it 0700: the spool holds other
/// people's mail.
fn create_private_dir(dir: &Path) -> Result<(), QueueError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error(dir))
}

/// Writes `parts` to a new file at `path`, marked as being written (never
/// overwriting: two messages can never share a file), and returns it, not
/// yet synced.
fn write_new(path: &Path, parts: &[&[u8]]) -> Result<File, QueueError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(WRITING_MODE)
        .open(path)
        .map_err(io_error(path))?;
    for part in parts {
        file.write_all(part).map_err(io_error(path))?;
    }
    Ok(file)
}

/// Writes `parts` to a 0600 file at `path`, replacing it, and fsyncs it.
fn write_synced(path: &Path, parts: &[&[u8]]) -> Result<(), QueueError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    for part in parts {
        file.write_all(part).map_err(io_error(path))?;
    }
    file.sync_all().map_err(io_error(path))
}

/// Marks a written message file finished (mode 0600), so that it counts
/// as a message once it is durable. On failure the file is removed.
fn mark_finished(staged: &Staged) -> Result<(), QueueError> {
    if staged.finished {
        return Ok(());
    }
    staged
        .file
        .set_permissions(fs::Permissions::from_mode(FINISHED_MODE))
        .map_err(|source| {
            let _ = fs::remove_file(&staged.path);
            QueueError::Io {
                path: staged.path.clone(),
                source,
            }
        })
}

/// Fsyncs every staged file and the spool directory `dir` at once (on the
/// spool's sync threads, or here if they could not start), and returns the
/// directory's result. A message whose file fails to sync becomes an error
/// and its file is removed: it was never acknowledged.
fn sync_staged(
    syncer: Option<&Syncer>,
    dir: &Arc<File>,
    staged: &mut [Result<Staged, QueueError>],
) -> io::Result<()> {
    let owners: Vec<usize> = staged
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.is_ok())
        .map(|(i, _)| i)
        .collect();
    let mut files: Vec<Arc<File>> = staged
        .iter()
        .filter_map(|slot| slot.as_ref().ok())
        .map(|s| Arc::clone(&s.file))
        .collect();
    files.push(Arc::clone(dir));
    let mut results = match syncer {
        Some(syncer) => syncer.sync_all(&files),
        None => files.iter().map(|f| f.sync_all()).collect(),
    };
    let dir_synced = results.pop().unwrap_or(Ok(()));
    for (&i, result) in owners.iter().zip(results) {
        let Err(source) = result else { continue };
        if let Some(slot) = staged.get_mut(i) {
            if let Ok(failed) = slot {
                let _ = fs::remove_file(&failed.path);
                *slot = Err(QueueError::Io {
                    path: failed.path.clone(),
                    source,
                });
            }
        }
    }
    dir_synced
}

#[cfg(test)]
mod tests;
