//! The spool's fsync threads. The files of a batch are synced at the same
//! time, so the file system joins the syncs into about one journal commit
//! (group commit). The threads live as long as the spool: starting threads
//! for every batch would cost more than the syncs they share.

use std::fs::File;
use std::io;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

/// Threads that sync files at once.
const SYNC_THREADS: usize = 16;

/// One file to sync, and where to report its position's result.
struct SyncRequest {
    position: usize,
    file: Arc<File>,
    done: Sender<(usize, io::Result<()>)>,
}

/// The pool of fsync threads.
pub(crate) struct Syncer {
    requests: Sender<SyncRequest>,
}

impl Syncer {
    /// Starts the threads; `None` if none could be started.
    pub(crate) fn start() -> Option<Syncer> {
        let (requests, queue) = crossbeam_channel::unbounded::<SyncRequest>();
        let mut started = false;
        for n in 0..SYNC_THREADS {
            let queue: Receiver<SyncRequest> = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("spool-sync-{n}"))
                .spawn(move || {
                    for request in queue.iter() {
                        let result = request.file.sync_all();
                        let _ = request.done.send((request.position, result));
                    }
                });
            started |= spawned.is_ok();
        }
        started.then_some(Syncer { requests })
    }

    /// Syncs all `files` at once; the results are in the same order. A file
    /// whose sync thread died before answering is an error.
    pub(crate) fn sync_all(&self, files: &[Arc<File>]) -> Vec<io::Result<()>> {
        let (done, answers) = crossbeam_channel::unbounded();
        for (position, file) in files.iter().enumerate() {
            let request = SyncRequest {
                position,
                file: Arc::clone(file),
                done: done.clone(),
            };
            if let Err(returned) = self.requests.send(request) {
                // No thread is left: sync here.
                let _ = done.send((position, returned.into_inner().file.sync_all()));
            }
        }
        drop(done);
        let mut results: Vec<io::Result<()>> = files
            .iter()
            .map(|_| Err(io::Error::other("the sync thread stopped")))
            .collect();
        // Ends once every request has answered or been dropped.
        for (position, result) in answers.iter() {
            if let Some(slot) = results.get_mut(position) {
                *slot = result;
            }
        }
        results
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
    }
}
