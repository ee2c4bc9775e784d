//! The spool's fsync threads. The files of a batch are synced at the same
//! time, so the file system and the disk can join their writes and cache
//! flushes (group commit). The threads live as long as the spool: starting
//! threads for every batch would cost more than the syncs they share.
//!
//! The threads sleep on a condition variable, not on a channel: a channel's
//! receiver spins and yields the processor a few times before it sleeps,
//! and with a dozen threads woken for every batch that spinning cost more
//! processor time than the syncs themselves on a two-core host.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

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

/// Requests waiting for a thread, and whether the pool is closing.
#[derive(Default)]
struct Queue {
    requests: VecDeque<SyncRequest>,
    closing: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
}

/// The pool of fsync threads.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
}

impl Syncer {
    /// Starts the threads; `None` if none could be started.
    pub(crate) fn start() -> Option<Syncer> {
        let shared = Arc::new(Shared::default());
        let mut started = false;
        for n in 0..SYNC_THREADS {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("spool-sync-{n}"))
                .spawn(move || serve(&shared));
            started |= spawned.is_ok();
        }
        started.then_some(Syncer { shared })
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
        {
            let mut queue = self.shared.queue.lock();
            for (index, file) in others.iter().enumerate() {
                queue.requests.push_back(SyncRequest {
                    position: index + 1,
                    file: Arc::clone(file),
                    batch: Arc::clone(&batch),
                });
            }
        }
        for _ in others {
            self.shared.work.notify_one();
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
        self.shared.queue.lock().closing = true;
        self.shared.work.notify_all();
    }
}

/// One sync thread: takes requests until the pool closes.
fn serve(shared: &Shared) {
    loop {
        let request = {
            let mut queue = shared.queue.lock();
            loop {
                if let Some(request) = queue.requests.pop_front() {
                    break request;
                }
                if queue.closing {
                    return;
                }
                shared.work.wait(&mut queue);
            }
        };
        let result = request.file.sync_all();
        request.batch.report(request.position, result);
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
