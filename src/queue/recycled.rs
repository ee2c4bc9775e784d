//! Recycled message files. Removing a file and creating the next one costs
//! the file system an inode freed and allocated again, with its blocks
//! (and, where the disk is mounted with `discard`, a synchronous trim of
//! them). So the file of a small message that delivery is done with is
//! renamed `free-<n>`, overwritten with zeros (nothing of the message stays
//! readable), and kept open here; the next message is written over it and
//! renamed to its own `<id>.msg`.
//!
//! At most [`MAX_FILES`] files of at most [`MAX_FILE_LENGTH`] octets are
//! kept, so the spool holds at most 8 MiB more than its messages.
//! Start-up removes every `free-*` file. After a crash, a renamed file
//! whose new name did not reach the disk while its zeros did comes back as
//! `<id>.msg` full of zeros: it fails its checks and is quarantined, and
//! its message had been delivered.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Most files kept for reuse.
pub(super) const MAX_FILES: usize = 64;
/// Longest file kept for reuse; longer ones are removed.
pub(super) const MAX_FILE_LENGTH: u64 = 128 * 1024;
/// The start of a kept file's name.
pub(super) const PREFIX: &str = "free-";

/// An emptied message file, open for writing, waiting for a message.
pub(super) struct FreeFile {
    file: File,
    path: PathBuf,
    length: u64,
}

impl FreeFile {
    /// Writes `parts` over the file and only then renames it to `path`,
    /// so that the message is whole when its name appears; returns the
    /// file, not yet synced. The rename cannot replace another message:
    /// queue ids are unique (strictly increasing in the one server that
    /// holds the data directory, and past every id found at start-up).
    pub(super) fn write_as(self, path: &Path, parts: &[&[u8]]) -> io::Result<File> {
        let written = self
            .write(parts)
            .and_then(|()| fs::rename(&self.path, path));
        if let Err(error) = written {
            let _ = fs::remove_file(&self.path);
            return Err(error);
        }
        Ok(self.file)
    }

    fn write(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut length = 0;
        for part in parts {
            self.file.write_all_at(part, length)?;
            length += part.len() as u64;
        }
        if length < self.length {
            self.file.set_len(length)?;
        }
        Ok(())
    }
}

/// The files kept for reuse.
#[derive(Default)]
pub(super) struct Recycler {
    free: Mutex<Vec<FreeFile>>,
    names: AtomicU64,
}

/// What became of a message file handed to [`Recycler::recycle`].
pub(super) enum Recycled {
    /// It is empty and kept (or was already gone): the message is removed.
    Kept,
    /// It is not kept: remove it as usual.
    Declined,
}

impl Recycler {
    /// Takes a kept file for a new message, if there is one.
    pub(super) fn take(&self) -> Option<FreeFile> {
        self.free.lock().pop()
    }

    /// Empties the finished message file at `path` in `dir` and keeps it,
    /// unless enough are kept or it is too long. The message is gone from
    /// the queue as soon as the file is renamed, before it is emptied.
    pub(super) fn recycle(&self, dir: &Path, path: &Path) -> io::Result<Recycled> {
        if self.free.lock().len() >= MAX_FILES {
            return Ok(Recycled::Declined);
        }
        let file = match OpenOptions::new().write(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recycled::Kept),
            Err(e) => return Err(e),
        };
        let length = file.metadata()?.len();
        if length > MAX_FILE_LENGTH {
            return Ok(Recycled::Declined);
        }
        let name = self.names.fetch_add(1, Ordering::Relaxed);
        let free_path = dir.join(format!("{PREFIX}{name}"));
        fs::rename(path, &free_path)?;
        // At most MAX_FILE_LENGTH: it fits in memory.
        let zeros = vec![0; usize::try_from(length).unwrap_or(0)];
        let emptied = file.write_all_at(&zeros, 0);
        if let Err(error) = emptied {
            let _ = fs::remove_file(&free_path);
            log::warn!(
                "spool: cannot empty {} for reuse: {error}",
                free_path.display()
            );
            return Ok(Recycled::Kept);
        }
        let mut free = self.free.lock();
        if free.len() < MAX_FILES {
            free.push(FreeFile {
                file,
                path: free_path,
                length,
            });
        } else {
            drop(free);
            let _ = fs::remove_file(&free_path);
        }
        Ok(Recycled::Kept)
    }
}

/// Is `name` a kept file?
pub(super) fn is_free_file(name: &str) -> bool {
    name.starts_with(PREFIX)
}
