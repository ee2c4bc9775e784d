//! The fixed pool of protocol workers. Jobs (a connection plus what to do
//! with it) arrive on a bounded crossbeam channel; each worker runs
//! [`Conn::service`] and sends the connection back to the event loop. A
//! panic while serving one connection closes that connection, not the
//! process.
//!
//! A pool of zero workers (`--workers 0`) has no threads: the event loop
//! serves its jobs itself. On a one-core host, or when a client shares the
//! cores, that saves two thread switches per command; slow work (password
//! hashes, fsync) runs on its own threads either way.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::conn::{Conn, Work};
use super::event_loop::LoopMessage;
use super::Shared;

/// A connection and what to do with it.
pub(crate) struct Job {
    /// The connection, owned by the worker while it runs.
    pub conn: Box<Conn>,
    /// What to do.
    pub work: Work,
}

/// The worker threads and the sending side of their queue.
pub(crate) struct Pool {
    jobs: Sender<Job>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads taking jobs from a queue of `capacity`.
    pub fn start(workers: usize, capacity: usize, shared: Arc<Shared>) -> std::io::Result<Pool> {
        let (jobs, queue) = crossbeam_channel::bounded(capacity);
        let mut threads = Vec::with_capacity(workers);
        for index in 0..workers {
            let queue: Receiver<Job> = queue.clone();
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("outpost-worker-{index}"))
                .spawn(move || work(queue, &shared))?;
            threads.push(thread);
        }
        Ok(Pool { jobs, threads })
    }

    /// No worker threads: the event loop serves the jobs itself.
    pub fn is_inline(&self) -> bool {
        self.threads.is_empty()
    }

    /// Queues `job`, or gives it back when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => Err(job),
        }
    }

    /// The queue is full (new connections get 421 4.3.2).
    pub fn is_saturated(&self) -> bool {
        self.jobs.is_full()
    }

    /// Closes the queue and waits for the workers to finish.
    pub fn join(self) {
        drop(self.jobs);
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("a worker thread panicked outside a connection");
            }
        }
    }
}

fn work(queue: Receiver<Job>, shared: &Shared) {
    while let Ok(job) = queue.recv() {
        shared
            .notify
            .send(LoopMessage::Returned(serve(job, shared)));
    }
}

/// Runs one job; a panic closes that connection only.
pub(crate) fn serve(Job { mut conn, work }: Job, shared: &Shared) -> Box<Conn> {
    let served = catch_unwind(AssertUnwindSafe(|| conn.service(work, shared)));
    if served.is_err() {
        log::error!(
            "{}: internal error while serving; connection closed",
            conn.describe()
        );
        conn.abandon();
    }
    conn
}
