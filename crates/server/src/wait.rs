//! Request ids and the waiters that the applier wakes by id.
//!
//! [`IdGenerator`] makes ids unique across members and restarts the way etcd does: the
//! low 16 bits of the member id on top, then a counter that starts from the wall clock
//! in milliseconds. [`Wait`] maps an id to the one task waiting for its result;
//! `trigger` on an id nobody waits for (another member's proposal, a request that timed
//! out) does nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::oneshot;

const SUFFIX_BITS: u32 = 48;
const SUFFIX_MASK: u64 = (1 << SUFFIX_BITS) - 1;

/// Unique request (and lease) ids for one member.
#[derive(Debug)]
pub struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl IdGenerator {
    /// A generator for `member_id`, seeded from the wall clock.
    pub fn new(member_id: u64) -> IdGenerator {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        IdGenerator::with_seed(member_id, ms)
    }

    /// A generator with an explicit time seed (tests).
    pub fn with_seed(member_id: u64, millis: u64) -> IdGenerator {
        IdGenerator {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((millis << 8) & SUFFIX_MASK),
        }
    }

    /// The next id; never 0.
    pub fn next(&self) -> u64 {
        loop {
            let s = self.suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & SUFFIX_MASK;
            let id = self.prefix | s;
            if id != 0 {
                return id;
            }
        }
    }
}

/// Waiters for results, keyed by request id.
#[derive(Debug)]
pub struct Wait<T> {
    waiters: Mutex<HashMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait {
            waiters: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Wait<T> {
    /// Registers a waiter for `id`; the receiver gets the value passed to `trigger`.
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id, tx);
        rx
    }

    /// Hands `value` to the waiter of `id`, if any.
    pub fn trigger(&self, id: u64, value: T) {
        if let Some(tx) = self.waiters.lock().remove(&id) {
            let _ = tx.send(value);
        }
    }

    /// Forgets the waiter of `id` (it gave up).
    pub fn cancel(&self, id: u64) {
        self.waiters.lock().remove(&id);
    }

    /// How many waiters are registered.
    pub fn len(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Whether no waiter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_carry_the_member_prefix() {
        let g = IdGenerator::with_seed(0x1234_5678_9abc_def0, 1_700_000_000_000);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = g.next();
            assert_eq!(id >> 48, 0xdef0);
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn trigger_reaches_only_the_registered_waiter() {
        let w: Wait<u32> = Wait::default();
        let mut rx = w.register(7);
        w.trigger(8, 1);
        assert!(rx.try_recv().is_err());
        w.trigger(7, 2);
        assert_eq!(rx.try_recv().unwrap(), 2);
        assert!(w.is_empty());
    }
}
