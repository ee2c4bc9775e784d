//! One server per data directory: `outpost serve` holds an exclusive
//! `flock(2)` on `DATA-DIR/lock` for its whole life and writes its pid
//! into it. Two servers on one data directory would deliver every queued
//! message twice, and the second one's start-up clean-up would delete the
//! first one's messages in flight, so the lock is taken before anything
//! else in the directory is touched.
//!
//! The kernel drops the lock when the process ends, however it ends: a
//! lock file left behind by a crash never blocks a start. The file itself
//! stays (removing it would let two starts lock two different files).
//!
//! `outpost users` reads the pid here to ask the running server to reload
//! ([`running_server`]); the `queue` tools never take the lock.
//!
//! May import nothing else of the crate.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "lock";

/// Errors taking the lock.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock: a server is running on this data
    /// directory.
    Held {
        /// The data directory.
        data_dir: PathBuf,
        /// The holder's pid, as it wrote it into the file (`None` when the
        /// file holds no number yet).
        pid: Option<u32>,
    },
    /// The data directory or the lock file could not be created or locked.
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held {
                data_dir,
                pid: Some(pid),
            } => write!(
                f,
                "another outpost (pid {pid}) is serving {}",
                data_dir.display()
            ),
            LockError::Held {
                data_dir,
                pid: None,
            } => write!(f, "another outpost is serving {}", data_dir.display()),
            LockError::Io { path, source } => {
                write!(f, "cannot lock {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for LockError {}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    /// The open lock file: the lock lives as long as this descriptor.
    _file: File,
}

impl DataDirLock {
    /// Creates `data_dir` (mode 0700) if needed and takes the lock without
    /// waiting; writes this process's pid into the file.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| LockError::Io {
                path: data_dir.to_path_buf(),
                source,
            })?;
        let path = data_dir.join(LOCK_FILE);
        let failed = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(failed)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(LockError::Held {
                    data_dir: data_dir.to_path_buf(),
                    pid: read_pid(&mut file),
                })
            }
            Err(e) => return Err(failed(e.into())),
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(DataDirLock { _file: file })
    }
}

/// The pid of the server holding `data_dir`'s lock, or `None` when no
/// server runs there (nobody holds the lock, or there is no lock file).
pub fn running_server(data_dir: &Path) -> Option<u32> {
    let mut file = File::open(data_dir.join(LOCK_FILE)).ok()?;
    // A shared lock is refused exactly while a server holds the exclusive one.
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => None,
        Err(_) => read_pid(&mut file),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = TempDir::new("lock");
        let data = dir.path().join("data");
        assert_eq!(running_server(&data), None);
        let held = DataDirLock::acquire(&data).unwrap();
        let text = std::fs::read_to_string(data.join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        // flock locks belong to the open file: a second open conflicts even
        // within one process.
        match DataDirLock::acquire(&data) {
            Err(e @ LockError::Held { pid: Some(pid), .. }) => {
                assert_eq!(pid, std::process::id());
                assert!(e.to_string().contains("another outpost (pid "), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(running_server(&data), Some(std::process::id()));
        drop(held);
        assert_eq!(running_server(&data), None);
        DataDirLock::acquire(&data).unwrap();
    }
}
