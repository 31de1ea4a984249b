//! A group of watchers indexed by what they watch: which watchers does a key concern?
//!
//! Owns the key -> watchers index of the synced group (and of each catch-up round's
//! chosen watchers). Single-key watchers sit in a hash map by key; range watchers sit in
//! an [`IntervalTree`] of distinct ranges, each holding the set of watchers on exactly
//! that range (so 10,000 watchers of one prefix are one tree node). Matching one key costs
//! a hash lookup plus `O(log ranges)` plus the watchers it reports, never a scan of all
//! watchers.
//! Invariant kept: a watcher handle is in the group at most once, under its own span.

use std::collections::{HashMap, HashSet};

use crate::interval::{IntervalTree, RangeEnd};

/// What a watcher watches: one key, or the keys in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpan {
    /// The key, or the first key of the range.
    pub start: Vec<u8>,
    /// `None` for a single key; otherwise the end of the range.
    pub end: Option<RangeEnd>,
}

impl KeySpan {
    /// Whether `key` is watched.
    #[cfg(test)]
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => self.start.as_slice() == key,
            Some(end) => self.start.as_slice() <= key && end.is_after(key),
        }
    }
}

/// Watcher handles indexed by span.
#[derive(Debug, Default)]
pub(crate) struct WatcherGroup {
    single: HashMap<Vec<u8>, HashSet<u64>>,
    ranges: IntervalTree<HashSet<u64>>,
    len: usize,
}

impl WatcherGroup {
    pub(crate) fn add(&mut self, h: u64, span: &KeySpan) {
        let added = match &span.end {
            None => self.single.entry(span.start.clone()).or_default().insert(h),
            Some(end) => {
                let mut added = false;
                self.ranges
                    .upsert(&span.start, end, |set| added = set.insert(h));
                added
            }
        };
        if added {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, h: u64, span: &KeySpan) -> bool {
        let removed = match &span.end {
            None => match self.single.get_mut(&span.start) {
                Some(set) => {
                    let removed = set.remove(&h);
                    if set.is_empty() {
                        self.single.remove(&span.start);
                    }
                    removed
                }
                None => false,
            },
            Some(end) => match self.ranges.get_mut(&span.start, end) {
                Some(set) => {
                    let removed = set.remove(&h);
                    if set.is_empty() {
                        self.ranges.remove(&span.start, end);
                    }
                    removed
                }
                None => false,
            },
        };
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` with every watcher whose span contains `key`.
    pub(crate) fn for_each_match(&self, key: &[u8], mut f: impl FnMut(u64)) {
        if let Some(set) = self.single.get(key) {
            set.iter().for_each(|h| f(*h));
        }
        if !self.ranges.is_empty() {
            self.ranges.stab(key, |set| set.iter().for_each(|h| f(*h)));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: &str, end: Option<&str>) -> KeySpan {
        KeySpan {
            start: start.as_bytes().to_vec(),
            end: end.map(|e| {
                if e.is_empty() {
                    RangeEnd::Unbounded
                } else {
                    RangeEnd::Key(e.as_bytes().to_vec())
                }
            }),
        }
    }

    fn matches(g: &WatcherGroup, key: &str) -> Vec<u64> {
        let mut v = Vec::new();
        g.for_each_match(key.as_bytes(), |h| v.push(h));
        v.sort_unstable();
        v
    }

    #[test]
    fn keys_ranges_and_open_ranges_match_what_they_watch() {
        let mut g = WatcherGroup::default();
        g.add(1, &span("foo", None));
        g.add(2, &span("foo", Some("fop"))); // prefix foo
        g.add(3, &span("a", Some(""))); // everything from a
        g.add(4, &span("foo", Some("fop")));
        g.add(4, &span("foo", Some("fop"))); // twice is once
        assert_eq!(g.len(), 4);
        assert_eq!(matches(&g, "foo"), vec![1, 2, 3, 4]);
        assert_eq!(matches(&g, "foo/bar"), vec![2, 3, 4]);
        assert_eq!(matches(&g, "fop"), vec![3]);
        assert_eq!(matches(&g, "0"), Vec::<u64>::new());
        assert!(g.remove(2, &span("foo", Some("fop"))));
        assert!(!g.remove(2, &span("foo", Some("fop"))));
        assert!(g.remove(1, &span("foo", None)));
        assert_eq!(matches(&g, "foo"), vec![3, 4]);
        assert!(g.remove(3, &span("a", Some(""))));
        assert!(g.remove(4, &span("foo", Some("fop"))));
        assert!(g.is_empty());
    }
}
