//! The fixed pool of protocol workers. Each worker thread runs its own
//! event loop ([`EventLoop`]) over the connections the accepting thread hands
//! it and serves them there ([`Connection::service`](super::connection::Connection::service)),
//! so a command costs no thread switch. A new connection goes to the worker
//! with the fewest open connections. (A shared queue of ready connections
//! would balance finer but costs two thread switches per command, loop to
//! worker and back: on two cores shared with a load generator that made
//! small messages about 15% slower; see the README's performance section.)
//!
//! A pool of zero workers (`--workers 0`) has no threads: the accepting
//! thread serves its connections itself, which suits a one-core host.
//!
//! May import: `event_loop` (each worker runs one), `limits`, `mailbox` and
//! the parent's `ServerContext`; never `acceptor`, which owns the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};
use parking_lot::Mutex;

use super::event_loop::EventLoop;
use super::limits::ConnectionCounter;
use super::mailbox::{mailbox, Accepted, LoopMessage, Notifier, WAKER};
use super::ServerContext;

/// The worker threads, as the accepting thread sees them.
pub(crate) struct Pool {
    workers: Vec<Worker>,
    /// Workers that have not reported their end ([`ReportStop`]). Counted
    /// from the reports, which wake the accepting thread, rather than read
    /// from the threads: a thread that has just reported may not count as
    /// finished yet.
    running: usize,
}

/// One worker: its mailbox, its load and its thread.
struct Worker {
    notify: Notifier,
    open: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

/// Tells the accepting thread that a worker's loop has ended, even when it
/// ended by a panic.
struct ReportStop(Notifier);

impl Drop for ReportStop {
    fn drop(&mut self) {
        self.0.send(LoopMessage::WorkerStopped);
    }
}

impl Pool {
    /// No workers: the accepting thread serves every connection.
    pub fn none() -> Pool {
        Pool {
            workers: Vec::new(),
            running: 0,
        }
    }

    /// Starts `count` worker loops that report to `parent` when they end.
    /// If one cannot start, those already started are stopped.
    pub fn start(
        count: usize,
        shared: &Arc<ServerContext>,
        counter: &Arc<Mutex<ConnectionCounter>>,
        parent: &Notifier,
    ) -> std::io::Result<Pool> {
        let mut pool = Pool::none();
        for index in 0..count {
            match Worker::start(index, shared, counter, parent) {
                Ok(worker) => {
                    pool.workers.push(worker);
                    pool.running += 1;
                }
                Err(e) => {
                    pool.stop();
                    pool.join();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// True when the accepting thread serves connections itself.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Gives `accepted` to the least loaded worker whose loop still runs;
    /// false (and the socket closed) when there is none.
    pub fn hand_over(&self, accepted: Accepted) -> bool {
        let Some(worker) = self
            .workers
            .iter()
            .filter(|w| !w.thread.is_finished())
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return false;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let delivered = worker.notify.send(LoopMessage::Adopt(accepted));
        if !delivered {
            worker.open.fetch_sub(1, Ordering::Relaxed);
        }
        delivered
    }

    /// Passes a stop request on to every worker.
    pub fn stop(&self) {
        for worker in &self.workers {
            worker.notify.send(LoopMessage::Stop);
        }
    }

    /// A worker reported that its loop ended.
    pub fn worker_stopped(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// Every worker loop has ended.
    pub fn all_stopped(&self) -> bool {
        self.running == 0
    }

    /// Waits for the worker threads to finish.
    pub fn join(self) {
        for worker in self.workers {
            if worker.thread.join().is_err() {
                log::error!("a worker thread panicked outside a connection");
            }
        }
    }
}

impl Worker {
    /// Starts worker `index`'s thread and loop.
    fn start(
        index: usize,
        shared: &Arc<ServerContext>,
        counter: &Arc<Mutex<ConnectionCounter>>,
        parent: &Notifier,
    ) -> std::io::Result<Worker> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (notify, inbox) = mailbox(waker);
        let open = Arc::new(AtomicUsize::new(0));
        let event_loop = EventLoop::new(
            poll,
            notify.clone(),
            shared.clone(),
            counter.clone(),
            open.clone(),
        );
        let report = ReportStop(parent.clone());
        let thread = std::thread::Builder::new()
            .name(format!("outpost-worker-{index}"))
            .spawn(move || {
                let _report = report;
                event_loop.run(inbox);
            })?;
        Ok(Worker {
            notify,
            open,
            thread,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::session::Role;
    use crate::runtime::mailbox::Inbox;

    /// A worker with `open` connections running on `thread`.
    fn worker(open: usize, thread: JoinHandle<()>) -> (Worker, Inbox) {
        let poll = Poll::new().unwrap();
        let (notify, inbox) = mailbox(Waker::new(poll.registry(), WAKER).unwrap());
        let worker = Worker {
            notify,
            open: Arc::new(AtomicUsize::new(open)),
            thread,
        };
        (worker, inbox)
    }

    /// A thread that runs until `alive` has no sender left.
    fn running(alive: &crossbeam_channel::Receiver<()>) -> JoinHandle<()> {
        let alive = alive.clone();
        std::thread::spawn(move || while alive.recv().is_ok() {})
    }

    fn accepted() -> Accepted {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(local).unwrap();
        let (socket, peer) = listener.accept().unwrap();
        Accepted {
            socket: mio::net::TcpStream::from_std(socket),
            peer,
            role: Role::Smtp,
            local,
        }
    }

    #[test]
    fn new_connections_go_to_the_least_loaded_worker() {
        let (keep, alive) = crossbeam_channel::bounded::<()>(0);
        let (workers, inboxes): (Vec<_>, Vec<_>) = [3, 1, 2]
            .map(|open| worker(open, running(&alive)))
            .into_iter()
            .unzip();
        let pool = Pool {
            workers,
            running: 3,
        };
        for _ in 0..4 {
            assert!(pool.hand_over(accepted()));
        }
        // 3,1,2 -> 3,2,2 -> 3,3,2 -> 3,3,3 -> 4,3,3
        let adopted: Vec<usize> = inboxes.iter().map(|i| i.drain().len()).collect();
        assert_eq!(adopted, [1, 2, 1]);
        let open: Vec<usize> = pool
            .workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect();
        assert_eq!(open, [4, 3, 3]);
        drop(keep);
        pool.join();
    }

    #[test]
    fn a_worker_whose_loop_has_ended_is_passed_over() {
        let (keep, alive) = crossbeam_channel::bounded::<()>(0);
        let (ended, _ended_inbox) = worker(0, std::thread::spawn(|| {}));
        let (busy, busy_inbox) = worker(5, running(&alive));
        while !ended.thread.is_finished() {
            std::thread::yield_now();
        }
        let pool = Pool {
            workers: vec![ended, busy],
            running: 2,
        };
        assert!(pool.hand_over(accepted()));
        assert_eq!(busy_inbox.drain().len(), 1);
        assert_eq!(pool.workers[0].open.load(Ordering::Relaxed), 0);
        drop(keep);
        pool.join();
    }

    #[test]
    fn a_worker_that_has_gone_takes_no_connection() {
        let (keep, alive) = crossbeam_channel::bounded::<()>(0);
        let (gone, inbox) = worker(0, running(&alive));
        drop(inbox);
        let pool = Pool {
            workers: vec![gone],
            running: 1,
        };
        assert!(!pool.hand_over(accepted()));
        assert_eq!(pool.workers[0].open.load(Ordering::Relaxed), 0);
        drop(keep);
        pool.join();
    }
}
