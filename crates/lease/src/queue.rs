//! An ordered queue of lease deadlines: which lease is due next.
//!
//! Owns a set of `(instant, lease id)` ordered by instant, plus each lease's current
//! position, so that rescheduling or removing a lease is `O(log n)` and finding the due
//! leases costs `O(log n)` per lease handed out: the lessor never scans every lease.
//! Invariant kept: a lease id is in the queue at most once.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// Deadlines of leases, earliest first; one entry per lease at most.
#[derive(Debug, Default)]
pub(crate) struct DeadlineQueue {
    order: BTreeSet<(Instant, i64)>,
    at: HashMap<i64, Instant>,
}

impl DeadlineQueue {
    /// Schedules lease `id` at `when`, replacing any earlier entry for it.
    pub(crate) fn schedule(&mut self, id: i64, when: Instant) {
        if let Some(old) = self.at.insert(id, when) {
            self.order.remove(&(old, id));
        }
        self.order.insert((when, id));
    }

    /// Removes lease `id`; nothing happens if it is not queued.
    pub(crate) fn remove(&mut self, id: i64) {
        if let Some(old) = self.at.remove(&id) {
            self.order.remove(&(old, id));
        }
    }

    /// Whether lease `id` is queued.
    pub(crate) fn contains(&self, id: i64) -> bool {
        self.at.contains_key(&id)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, i64)> {
        let first = *self.order.first()?;
        if first.0 > now {
            return None;
        }
        self.order.remove(&first);
        self.at.remove(&first.1);
        Some(first)
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.at.clear();
    }

    /// Number of queued leases.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_entries_come_out_earliest_first_and_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut q = DeadlineQueue::default();
        q.schedule(1, t0 + s(3));
        q.schedule(2, t0 + s(1));
        q.schedule(3, t0 + s(2));
        q.schedule(1, t0 + s(2)); // reschedule replaces
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + s(2)), Some((t0 + s(1), 2)));
        assert_eq!(q.pop_due(t0 + s(2)), Some((t0 + s(2), 1)));
        q.remove(3);
        assert_eq!(q.pop_due(t0 + s(10)), None);
        assert!(!q.contains(1));
    }
}
