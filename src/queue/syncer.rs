//! The spool's fsync threads. The files of a batch are synced at the same
//! time, so the file system and the disk can join their writes and cache
//! flushes (group commit). The threads live as long as the spool: starting
//! threads for every batch would cost more than the syncs they share.
//!
//! The threads wait on a [`WorkQueue`], which sleeps without spinning.

use std::fs::File;
use std::io;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::work_queue::WorkQueue;

/// Threads that sync files at once.
const SYNC_THREADS: usize = 16;

/// One file to sync, and the batch that waits for it.
struct SyncRequest {
    position: usize,
    file: Arc<File>,
    batch: Arc<Batch>,
}

/// The results of one [`Syncer::sync_all`] call, filled in by the threads.
struct Batch {
    state: Mutex<BatchState>,
    finished: Condvar,
}

struct BatchState {
    results: Vec<Option<io::Result<()>>>,
    left: usize,
}

impl Batch {
    fn report(&self, position: usize, result: io::Result<()>) {
        let mut state = self.state.lock();
        if let Some(slot) = state.results.get_mut(position) {
            *slot = Some(result);
        }
        state.left = state.left.saturating_sub(1);
        if state.left == 0 {
            self.finished.notify_one();
        }
    }
}

/// The pool of fsync threads.
pub(crate) struct Syncer {
    requests: Arc<WorkQueue<SyncRequest>>,
}

impl Syncer {
    /// Starts the threads; `None` if none could be started.
    pub(crate) fn start() -> Option<Syncer> {
        let requests = Arc::new(WorkQueue::default());
        let mut started = false;
        for n in 0..SYNC_THREADS {
            let requests: Arc<WorkQueue<SyncRequest>> = Arc::clone(&requests);
            let spawned = std::thread::Builder::new()
                .name(format!("spool-sync-{n}"))
                .spawn(move || {
                    while let Some(request) = requests.pop() {
                        let result = request.file.sync_all();
                        request.batch.report(request.position, result);
                    }
                });
            started |= spawned.is_ok();
        }
        started.then_some(Syncer { requests })
    }

    /// Syncs all `files` at once; the results are in the same order. The
    /// calling thread syncs the first file itself.
    pub(crate) fn sync_all(&self, files: &[Arc<File>]) -> Vec<io::Result<()>> {
        let Some((first, others)) = files.split_first() else {
            return Vec::new();
        };
        let batch = Arc::new(Batch {
            state: Mutex::new(BatchState {
                results: files.iter().map(|_| None).collect(),
                left: files.len(),
            }),
            finished: Condvar::new(),
        });
        for (index, file) in others.iter().enumerate() {
            let request = SyncRequest {
                position: index + 1,
                file: Arc::clone(file),
                batch: Arc::clone(&batch),
            };
            if let Err(request) = self.requests.push(request) {
                request
                    .batch
                    .report(request.position, request.file.sync_all());
            }
        }
        batch.report(0, first.sync_all());
        let mut state = batch.state.lock();
        while state.left > 0 {
            batch.finished.wait(&mut state);
        }
        state
            .results
            .drain(..)
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("the sync was not done"))))
            .collect()
    }
}

impl Drop for Syncer {
    /// Lets the threads end once the requests are done.
    fn drop(&mut self) {
        self.requests.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn syncs_every_file_and_reports_in_order() {
        let dir = TempDir::new("syncer");
        let files: Vec<Arc<File>> = (0..40)
            .map(|i| Arc::new(File::create(dir.path().join(format!("f{i}"))).unwrap()))
            .collect();
        let syncer = Syncer::start().unwrap();
        let results = syncer.sync_all(&files);
        assert_eq!(results.len(), 40);
        assert!(results.iter().all(Result::is_ok));
        assert!(syncer.sync_all(&[]).is_empty());
    }

    #[test]
    fn a_file_that_cannot_be_synced_is_reported_in_its_place() {
        let dir = TempDir::new("syncer-error");
        let good = Arc::new(File::create(dir.path().join("good")).unwrap());
        // fsync refuses a pipe.
        let (reader, _writer) = std::io::pipe().unwrap();
        let bad = Arc::new(File::from(std::os::fd::OwnedFd::from(reader)));
        let syncer = Syncer::start().unwrap();
        let results = syncer.sync_all(&[Arc::clone(&good), bad, good]);
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert!(results[2].is_ok());
    }
}
