//! Directory syncs shared by concurrent callers (group commit). A delivery
//! thread that removed a message, or replaced its envelope, needs that
//! directory change durable before it goes on; when several finish at
//! once, one sync that starts after all their changes serves them all,
//! instead of one sync each.

use std::fs::File;
use std::io;

use parking_lot::{Condvar, Mutex, MutexGuard};

/// A failed sync: the last ticket it covered and its error.
struct SyncFailure {
    through: u64,
    kind: io::ErrorKind,
    code: Option<i32>,
}

#[derive(Default)]
struct State {
    /// Tickets handed out, one per call, in order.
    issued: u64,
    /// Every ticket up to this one had a sync start after its change.
    synced_through: u64,
    /// A sync is running.
    running: bool,
    /// The latest failed sync.
    failure: Option<SyncFailure>,
}

/// Shares directory fsyncs between the threads that call [`SharedSync::sync`].
#[derive(Default)]
pub(crate) struct SharedSync {
    state: Mutex<State>,
    finished: Condvar,
}

impl SharedSync {
    /// Returns once a sync of `dir` that started after this call began has
    /// finished: every change the caller made before the call is durable.
    /// A caller whose change a failed sync may have covered gets its error
    /// (at worst one more caller than strictly needed, which then retries).
    pub(crate) fn sync(&self, dir: &File) -> io::Result<()> {
        let mut state = self.state.lock();
        state.issued += 1;
        let ticket = state.issued;
        while state.synced_through < ticket {
            if state.running {
                // That sync may have started before this caller's change.
                self.finished.wait(&mut state);
                continue;
            }
            state.running = true;
            let covers = state.issued;
            let result = MutexGuard::unlocked(&mut state, || dir.sync_all());
            state.running = false;
            state.synced_through = covers;
            if let Err(error) = result {
                state.failure = Some(SyncFailure {
                    through: covers,
                    kind: error.kind(),
                    code: error.raw_os_error(),
                });
            }
            self.finished.notify_all();
        }
        match &state.failure {
            Some(failure) if ticket <= failure.through => Err(match failure.code {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(failure.kind, "directory sync failed"),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_all_return_after_a_sync() {
        let dir = Arc::new(File::open(std::env::temp_dir()).unwrap());
        let shared = Arc::new(SharedSync::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (dir, shared) = (Arc::clone(&dir), Arc::clone(&shared));
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        shared.sync(&dir).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let state = shared.state.lock();
        assert_eq!(state.issued, 160);
        assert_eq!(state.synced_through, 160);
        assert!(!state.running);
    }

    #[test]
    fn a_failed_sync_reaches_its_caller_and_the_next_one_succeeds() {
        // fsync of /dev/null fails with EINVAL on Linux.
        let unsyncable = File::open("/dev/null").unwrap();
        let dir = File::open(std::env::temp_dir()).unwrap();
        let shared = SharedSync::default();
        let error = shared.sync(&unsyncable).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(22));
        shared.sync(&dir).unwrap();
    }
}
