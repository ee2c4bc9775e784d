//! A queue of work for a fixed set of threads that sleep on a condition
//! variable while it is empty. A channel's receiver spins and yields the
//! processor a few times before it sleeps; with a dozen idle threads woken
//! for every few items (the spool's sync threads, the delivery threads),
//! that spinning cost a good share of the processor on a two-core host.
//! Imports nothing of the crate.

use std::collections::VecDeque;

use parking_lot::{Condvar, Mutex};

/// Items waiting for a thread, and whether more may come.
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A first-in, first-out queue shared by the threads that take from it.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> WorkQueue<T> {
    /// Adds `item` and wakes one waiting thread; gives the item back if
    /// the queue is closed.
    pub fn push(&self, item: T) -> Result<(), T> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(item);
            }
            state.items.push_back(item);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The next item, waiting for one; `None` once the queue is closed and
    /// every item has been taken.
    pub fn pop(&self) -> Option<T> {
        let mut state = self.state.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            self.ready.wait(&mut state);
        }
    }

    /// Takes no more items; the threads finish those queued, then
    /// [`WorkQueue::pop`] returns `None`.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_take_every_item_once_then_end_when_closed() {
        let queue = Arc::new(WorkQueue::default());
        let takers: Vec<_> = (0..4)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    let mut taken = Vec::new();
                    while let Some(item) = queue.pop() {
                        taken.push(item);
                    }
                    taken
                })
            })
            .collect();
        for item in 0..1000 {
            queue.push(item).unwrap();
        }
        queue.close();
        assert_eq!(queue.push(1000), Err(1000));
        let mut all: Vec<i32> = takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}
