//! The spool writer: takes every submission waiting in its channel, writes
//! them all, and commits them with one round of fsyncs (group commit), so
//! many concurrent messages pay for one slow sync. Each `done` is called
//! only after its message is durable.
//!
//! Two threads form a pipeline: the writer writes a batch's files and marks
//! them finished, then hands the batch to the committer, which syncs the
//! files and the directory at the same time and answers. While one batch is
//! being synced, the next is already being written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::{Done, PreparedBatch, QueueError, Spool, StreamedMessage};
use crate::proto::envelope::NewMessage;

/// At most this many messages share one commit, so the first of a long
/// burst is not kept waiting for the last.
const MAX_BATCH: usize = 64;

struct Submission {
    message: Message,
    done: Done,
}

/// A message handed to the writer.
enum Message {
    /// Held in memory: the writer writes its file.
    Whole(Box<NewMessage>),
    /// Already written as it arrived: the writer finishes its file.
    Streamed(Box<StreamedMessage>),
}

/// Counters of the writer, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Batches committed (one round of fsyncs each).
    pub batches: u64,
    /// Messages handled (stored or failed).
    pub messages: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
}

/// A thread that stores messages handed to it, batching the fsyncs of
/// concurrent messages (group commit); `done` is called after the batch is
/// durable, never before.
pub struct SpoolWriter {
    spool: Arc<Spool>,
    sender: Option<Sender<Submission>>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// A prepared batch on its way to the committer: its files, and whom to
/// answer once they are durable.
struct Prepared {
    dones: Vec<Done>,
    files: PreparedBatch,
}

impl SpoolWriter {
    /// Starts the writer and committer threads for `spool`.
    pub fn start(spool: Arc<Spool>) -> SpoolWriter {
        SpoolWriter::start_gated(spool, None)
    }

    /// Starts the writer; with a `gate` it waits for one message on it
    /// before the first batch (tests use this to line up a batch).
    fn start_gated(spool: Arc<Spool>, gate: Option<Receiver<()>>) -> SpoolWriter {
        // Unbounded on purpose: each connection has at most one message in
        // flight (the session waits for the answer), so the connection
        // limit already bounds this queue, and `submit` must never block a
        // protocol worker.
        let (sender, receiver) = crossbeam_channel::unbounded::<Submission>();
        // One batch may wait for the committer while the next is written.
        let (prepared_sender, prepared) = crossbeam_channel::bounded::<Prepared>(1);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let committer_spool = Arc::clone(&spool);
        let writer_spool = Arc::clone(&spool);
        let committer = std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || commit(&committer_spool, &prepared, &thread_counters));
        let writer = committer.and_then(|committer| {
            std::thread::Builder::new()
                .name("spool-writer".into())
                .spawn(move || {
                    if let Some(gate) = gate {
                        let _ = gate.recv();
                    }
                    write(&writer_spool, &receiver, &prepared_sender);
                })
                .map(|writer| vec![writer, committer])
        });
        match writer {
            Ok(threads) => SpoolWriter {
                spool,
                sender: Some(sender),
                threads,
                counters,
            },
            Err(error) => {
                // Without the threads every submission fails with 451 (the
                // channel's receiver is gone), which the client retries.
                log::error!("spool: cannot start the writer threads: {error}");
                SpoolWriter {
                    spool,
                    sender: None,
                    threads: Vec::new(),
                    counters,
                }
            }
        }
    }

    /// Queues `message` for writing; `done` receives the id or the error.
    pub fn submit(&self, message: Box<NewMessage>, done: Done) {
        self.send(Message::Whole(message), done);
    }

    /// Starts the file of a message too big for memory (see
    /// [`Spool::start_message`]); once its last part is appended, hand it
    /// to [`SpoolWriter::submit_streamed`].
    pub fn start_message(&self, first: &NewMessage) -> Result<StreamedMessage, QueueError> {
        self.spool.start_message(first)
    }

    /// Queues a message written with [`SpoolWriter::start_message`] for
    /// its commit; `done` receives the id or the error.
    pub fn submit_streamed(&self, message: StreamedMessage, done: Done) {
        self.send(Message::Streamed(Box::new(message)), done);
    }

    fn send(&self, message: Message, done: Done) {
        let Some(sender) = &self.sender else {
            done(Err(QueueError::Stopped));
            return;
        };
        if let Err(returned) = sender.send(Submission { message, done }) {
            (returned.into_inner().done)(Err(QueueError::Stopped));
        }
    }

    /// Batches and messages handled so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            messages: self.counters.messages.load(Ordering::Relaxed),
        }
    }
}

impl Drop for SpoolWriter {
    /// Finishes what was submitted, then stops the thread.
    fn drop(&mut self) {
        self.sender = None;
        // The writer ends first (its channel closed), then the committer.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The writer thread: batches submissions and prepares their files.
fn write(spool: &Spool, receiver: &Receiver<Submission>, committer: &Sender<Prepared>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let mut dones = Vec::with_capacity(batch.len());
        let mut staged = Vec::with_capacity(batch.len());
        for Submission { message, done } in batch {
            dones.push(done);
            staged.push(match message {
                Message::Whole(message) => spool.stage(&message),
                Message::Streamed(message) => message.finish(),
            });
        }
        let files = spool.prepare_staged(staged);
        if let Err(returned) = committer.send(Prepared { dones, files }) {
            // The committer is gone: nothing was acknowledged; say so.
            for done in returned.into_inner().dones {
                done(Err(QueueError::Stopped));
            }
        }
    }
}

/// The committer thread: makes each batch durable, then answers.
fn commit(spool: &Spool, prepared: &Receiver<Prepared>, counters: &Counters) {
    for Prepared { dones, files } in prepared.iter() {
        let results = spool.commit_batch(files);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .messages
            .fetch_add(dones.len() as u64, Ordering::Relaxed);
        let mut results = results.into_iter();
        for done in dones {
            done(results.next().unwrap_or(Err(QueueError::Stopped)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::new_message;
    use crate::test_fixtures::TempDir;
    use std::time::Duration;

    #[test]
    fn waiting_submissions_share_one_commit() {
        let dir = TempDir::new("group-commit");
        let spool = Spool::open(dir.path()).unwrap();
        let (gate, gate_rx) = crossbeam_channel::bounded(1);
        let writer = SpoolWriter::start_gated(Arc::clone(&spool), Some(gate_rx));
        let (results, results_rx) = crossbeam_channel::unbounded();
        for i in 0..10 {
            let results = results.clone();
            writer.submit(
                Box::new(new_message(format!("message {i}\r\n").as_bytes())),
                Box::new(move |r| results.send(r).unwrap()),
            );
        }
        assert_eq!(writer.stats(), WriterStats::default());
        gate.send(()).unwrap();
        let mut ids = Vec::new();
        for _ in 0..10 {
            let id = results_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .unwrap();
            // Durable before `done`: the file is finished and in place.
            assert!(spool.load(&id).is_ok());
            ids.push(id);
        }
        assert_eq!(
            writer.stats(),
            WriterStats {
                batches: 1,
                messages: 10
            }
        );
        let mut listed = spool.list().unwrap();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids);
    }

    #[test]
    fn later_submissions_form_new_batches() {
        let dir = TempDir::new("batches");
        let spool = Spool::open(dir.path()).unwrap();
        let writer = SpoolWriter::start(Arc::clone(&spool));
        for i in 0..3 {
            let (tx, rx) = crossbeam_channel::bounded(1);
            writer.submit(
                Box::new(new_message(format!("{i}\r\n").as_bytes())),
                Box::new(move |r| tx.send(r).unwrap()),
            );
            rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        }
        assert_eq!(
            writer.stats(),
            WriterStats {
                batches: 3,
                messages: 3
            }
        );
    }

    #[test]
    fn failures_reach_done() {
        let dir = TempDir::new("writer-fail");
        let spool = Spool::open(dir.path()).unwrap();
        let writer = SpoolWriter::start(Arc::clone(&spool));
        let mut message = new_message(b"x\r\n");
        message.envelope.recipients.clear();
        let (tx, rx) = crossbeam_channel::bounded(1);
        writer.submit(Box::new(message), Box::new(move |r| tx.send(r).unwrap()));
        let result = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(result, Err(QueueError::Invalid { .. })));
        drop(writer);
        assert!(spool.list().unwrap().is_empty());
    }
}
