//! The inflight window of one follower in Replicate state: the last index of every
//! MsgApp sent but not yet acknowledged, with its payload bytes.
//!
//! Invariant: at most `capacity` messages and (unless a single message is larger)
//! `max_bytes` payload bytes are in flight; indexes are increasing.

use std::collections::VecDeque;

/// A bounded FIFO of in-flight appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inflights {
    queue: VecDeque<(u64, u64)>,
    capacity: usize,
    max_bytes: u64,
    bytes: u64,
}

impl Inflights {
    pub(crate) fn new(capacity: usize, max_bytes: u64) -> Self {
        Inflights {
            queue: VecDeque::new(),
            capacity,
            max_bytes,
            bytes: 0,
        }
    }

    /// Records a message whose last entry is `index` carrying `bytes` of payload.
    pub(crate) fn add(&mut self, index: u64, bytes: u64) {
        assert!(!self.full(), "cannot add into a full inflights window");
        if let Some(&(last, _)) = self.queue.back() {
            assert!(index > last, "inflight index {index} not above {last}");
        }
        self.queue.push_back((index, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is `<= to`.
    pub(crate) fn free_le(&mut self, to: u64) {
        while let Some(&(i, b)) = self.queue.front() {
            if i > to {
                break;
            }
            self.bytes -= b;
            self.queue.pop_front();
        }
        if self.queue.is_empty() && self.queue.capacity() > 4 * self.capacity.max(16) {
            self.queue.shrink_to_fit();
        }
    }

    /// Frees the oldest message (used when a heartbeat response shows the follower is
    /// alive while the window is full).
    pub(crate) fn free_first_one(&mut self) {
        if let Some((_, b)) = self.queue.pop_front() {
            self.bytes -= b;
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.queue.len() >= self.capacity || (self.max_bytes != 0 && self.bytes >= self.max_bytes)
    }

    pub(crate) fn count(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_full_at_capacity_and_frees_up_to_index() {
        let mut inf = Inflights::new(3, 0);
        inf.add(1, 10);
        inf.add(2, 10);
        assert!(!inf.full());
        inf.add(5, 10);
        assert!(inf.full());
        inf.free_le(2);
        assert_eq!(inf.count(), 1);
        assert!(!inf.full());
        inf.free_first_one();
        assert_eq!(inf.count(), 0);
    }

    #[test]
    fn window_is_full_when_bytes_reach_the_limit() {
        let mut inf = Inflights::new(100, 25);
        inf.add(1, 10);
        inf.add(2, 10);
        assert!(!inf.full());
        inf.add(3, 10);
        assert!(inf.full());
        inf.free_le(1);
        assert!(!inf.full());
    }

    #[test]
    #[should_panic(expected = "full")]
    fn adding_to_a_full_window_panics() {
        let mut inf = Inflights::new(1, 0);
        inf.add(1, 0);
        inf.add(2, 0);
    }
}
