//! The spool: the only code that writes queued messages. A message is
//! durable (file fsync'd, renamed into place, directory fsync'd) before the
//! 250 that carries its queue id.
//!
//! CONTRACT (implementation pending).
//!
//! Layout under `<data-dir>/queue/`: `<id>.msg` holds exactly the message
//! bytes (Received header prepended); `<id>.env` is the envelope in a
//! line-based `key: value` text form an operator can `cat`, ending in a
//! trailer line `end <len-of-msg> <checksum>` that proves both files whole.
//! Delivery state per recipient is kept in `<id>.env` too (rewritten
//! atomically).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::proto::session::{EnqueueError, NewMessage};

/// A queue id: 16 characters of `[0-9A-Z]`, time-ordered.
pub type QueueId = String;

/// Errors of the spool.
#[derive(Debug)]
pub enum QueueError {
    /// An I/O call failed on `path`.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A queue file is truncated or corrupt.
    Corrupt { path: PathBuf, reason: String },
}

impl QueueError {
    /// What the SMTP session should answer.
    pub fn as_enqueue_error(&self) -> EnqueueError {
        todo!()
    }
}

/// Called once the message is durable (or failed), on the spool thread.
pub type Done = Box<dyn FnOnce(Result<QueueId, QueueError>) + Send>;

/// The spool of one data directory.
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating with mode 0700) `<data_dir>/queue/`.
    pub fn open(data_dir: &Path) -> Result<Arc<Spool>, QueueError> {
        let _ = data_dir;
        todo!()
    }

    /// Writes `message` durably and returns its id. Blocking (fsync).
    pub fn store(&self, message: &NewMessage) -> Result<QueueId, QueueError> {
        let _ = (message, &self.dir);
        todo!()
    }
}

/// A thread that stores messages handed to it, batching the fsyncs of
/// concurrent messages (group commit); `done` is called after the batch is
/// durable, never before.
pub struct SpoolWriter {}

impl SpoolWriter {
    /// Starts the writer thread for `spool`.
    pub fn start(spool: Arc<Spool>) -> SpoolWriter {
        let _ = spool;
        todo!()
    }

    /// Queues `message` for writing; `done` receives the id or the error.
    pub fn submit(&self, message: Box<NewMessage>, done: Done) {
        let _ = (message, done);
        todo!()
    }
}
