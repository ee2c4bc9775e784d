//! How much of the messages being read the sessions keep in memory. Each
//! message may keep up to `per_message` octets; all sessions together up
//! to `total`. A session that cannot get more memory hands what it has to
//! the caller to write to the spool ([`super::Action::StartMessage`]), so
//! memory stays bounded whatever the size and number of messages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Memory shares are taken in steps of this many octets, so the shared
/// counter is touched once per step rather than once per read.
const STEP: usize = 16 * 1024;

/// The memory budget for messages being read, shared by every session.
#[derive(Debug)]
pub struct MessageMemory {
    per_message: usize,
    total: usize,
    used: AtomicUsize,
}

impl MessageMemory {
    /// A budget of `per_message` octets for one message and `total` for
    /// all messages being read at once.
    pub fn new(per_message: usize, total: usize) -> Arc<MessageMemory> {
        Arc::new(MessageMemory {
            per_message,
            total,
            used: AtomicUsize::new(0),
        })
    }

    /// Octets currently taken by sessions.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget, if they are there.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.total)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One message's share of the budget; given back when dropped.
#[derive(Debug)]
pub(super) struct MemoryShare {
    memory: Arc<MessageMemory>,
    bytes: usize,
}

impl MemoryShare {
    /// An empty share of `memory`.
    pub(super) fn new(memory: &Arc<MessageMemory>) -> MemoryShare {
        MemoryShare {
            memory: Arc::clone(memory),
            bytes: 0,
        }
    }

    /// Makes the share cover `bytes` (a buffer's capacity). False when
    /// that is more than one message may keep or the budget has no room:
    /// the message must go to the spool.
    pub(super) fn cover(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        if bytes > self.memory.per_message {
            return false;
        }
        let wanted = bytes.next_multiple_of(STEP).min(self.memory.per_message);
        if self.memory.take(wanted - self.bytes) {
            self.bytes = wanted;
            true
        } else {
            false
        }
    }

    /// The octets the share covers now.
    pub(super) fn covered(&self) -> usize {
        self.bytes
    }

    /// The most one message may keep in memory.
    pub(super) fn per_message(&self) -> usize {
        self.memory.per_message
    }
}

impl Drop for MemoryShare {
    fn drop(&mut self) {
        self.memory.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_grow_within_both_limits_and_come_back_when_dropped() {
        let memory = MessageMemory::new(64 * 1024, 100 * 1024);
        let mut a = MemoryShare::new(&memory);
        assert!(a.cover(1000));
        assert_eq!(memory.in_use(), STEP);
        assert!(a.cover(64 * 1024));
        assert!(!a.cover(64 * 1024 + 1), "more than one message may keep");
        let mut b = MemoryShare::new(&memory);
        assert!(b.cover(32 * 1024));
        assert!(!b.cover(48 * 1024), "over the total");
        assert_eq!(memory.in_use(), 96 * 1024);
        drop(a);
        assert!(b.cover(48 * 1024));
        drop(b);
        assert_eq!(memory.in_use(), 0);
    }
}
