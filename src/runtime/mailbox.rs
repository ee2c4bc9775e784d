//! How other threads talk to an event loop: a channel of [`LoopMessage`]s
//! plus the loop's `mio::Waker`, with one wake shared by every message sent
//! while a wake is already pending. Also what travels in it: an
//! [`Accepted`] connection on its way to a worker, and the [`Completion`]
//! of a slow operation.
//!
//! May import: `proto` and `queue` (the types of the answers), mio and
//! crossbeam; no other runtime file, since every one of them imports this.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Token, Waker};

use crate::proto::envelope::EnqueueError;
use crate::proto::sasl::AuthResult;
use crate::proto::session::Role;
use crate::queue::QueueId;

/// The token of every loop's waker (a loop's own tokens start above it).
pub(crate) const WAKER: Token = Token(0);

/// A connection the accepting thread has admitted, on its way to a loop.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The socket, not yet registered with any poll.
    pub socket: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's role.
    pub role: Role,
    /// The listener's address.
    pub local: SocketAddr,
}

/// The answer of a slow operation run off the loops.
#[derive(Debug)]
pub(crate) enum Completion {
    /// The authenticator's verdict.
    Auth(AuthResult),
    /// The spool's answer.
    Enqueued(Result<QueueId, EnqueueError>),
}

/// What other threads tell a loop.
#[derive(Debug)]
pub(crate) enum LoopMessage {
    /// The accepting thread hands a worker a new connection.
    Adopt(Accepted),
    /// A slow operation for the connection with this token finished.
    Completed(Token, Completion),
    /// A worker loop has ended (told to the accepting thread, which
    /// started it).
    WorkerStopped,
    /// Stop gracefully (a second request stops at once).
    Stop,
}

/// Sends messages to a loop and wakes it. While a wake is pending the loop
/// will read the channel anyway, so messages sent meanwhile do not wake it
/// again (each wake is a syscall and a turn of the loop).
#[derive(Clone)]
pub(crate) struct Notifier {
    sender: Sender<LoopMessage>,
    waker: Arc<Waker>,
    wake_pending: Arc<AtomicBool>,
}

/// The loop's end of the [`Notifier`]'s channel.
pub(crate) struct Inbox {
    receiver: Receiver<LoopMessage>,
    wake_pending: Arc<AtomicBool>,
}

/// A notifier and the inbox it delivers to, waking the loop with `waker`.
pub(crate) fn mailbox(waker: Waker) -> (Notifier, Inbox) {
    // Unbounded, because a sender must never wait: the spool writer and the
    // password checkers serve every loop, and the accepting thread serves
    // every client, so one slow loop would stall them all. The backlog is
    // bounded anyway: a connection has at most one slow operation
    // outstanding (it is parked until the answer), and every connection
    // handed over was first counted against `--max-connections`.
    let (sender, receiver) = crossbeam_channel::unbounded();
    let wake_pending = Arc::new(AtomicBool::new(false));
    let notifier = Notifier {
        sender,
        waker: Arc::new(waker),
        wake_pending: Arc::clone(&wake_pending),
    };
    (
        notifier,
        Inbox {
            receiver,
            wake_pending,
        },
    )
}

impl Notifier {
    /// Delivers `message`; false (and the message dropped) when the loop
    /// has gone.
    pub fn send(&self, message: LoopMessage) -> bool {
        if self.sender.send(message).is_err() {
            return false;
        }
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return true;
        }
        if let Err(e) = self.waker.wake() {
            // Let the next message try again.
            self.wake_pending.store(false, Ordering::Release);
            log::error!("cannot wake an event loop: {e}");
        }
        true
    }
}

impl Inbox {
    /// Every message sent so far, then the channel is empty. Messages sent
    /// from the call on wake the loop again.
    pub fn drain(&self) -> Vec<LoopMessage> {
        // Cleared before reading: a message that finds the flag set is
        // read below; one that finds it clear wakes the loop.
        self.wake_pending.swap(false, Ordering::AcqRel);
        self.receiver.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mio::{Events, Poll};

    use super::*;

    /// The WAKER events `poll` reports at once.
    fn wakes(poll: &mut Poll, events: &mut Events) -> usize {
        poll.poll(events, Some(Duration::ZERO)).unwrap();
        events.iter().filter(|e| e.token() == WAKER).count()
    }

    #[test]
    fn messages_sent_while_a_wake_is_pending_share_it() {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(16);
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let (notifier, inbox) = mailbox(waker);
        notifier.send(LoopMessage::Stop);
        assert_eq!(wakes(&mut poll, &mut events), 1);
        // The loop has woken but not drained yet: these ride on that wake.
        notifier.send(LoopMessage::Stop);
        notifier.send(LoopMessage::Stop);
        assert_eq!(wakes(&mut poll, &mut events), 0);
        assert_eq!(inbox.drain().len(), 3);
        assert_eq!(wakes(&mut poll, &mut events), 0);
        // After a drain the next message wakes the loop again.
        notifier.send(LoopMessage::Stop);
        assert_eq!(wakes(&mut poll, &mut events), 1);
        assert_eq!(inbox.drain().len(), 1);
    }

    #[test]
    fn a_message_to_a_loop_that_has_gone_is_not_delivered() {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let (notifier, inbox) = mailbox(waker);
        drop(inbox);
        assert!(!notifier.send(LoopMessage::Stop));
    }
}
