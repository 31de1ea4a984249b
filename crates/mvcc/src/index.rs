//! The tree index: every user key's [`KeyIndex`], in key order.
//!
//! Owns the in-memory map `user key -> KeyIndex`. It is a `BTreeMap` behind a
//! `parking_lot::RwLock`, and every critical section is short and bounded:
//! a write (put, tombstone) holds the write lock for one map operation; a range walk holds
//! the read lock for at most [`WALK_CHUNK_KEYS`] keys, then releases it and resumes after the
//! last key it saw; compaction takes the write lock per chunk of keys. So a reader never
//! waits for more than one bounded chunk of a writer, and the writer (the applier) never
//! waits for a long scan.
//!
//! Why not a lock-free skip list: readers of this index always read at a fixed revision
//! that is at most the committed revision, and writers only append revisions above it, so
//! chunked walks see a consistent answer without a global snapshot; a B-tree walk is
//! several times faster than a skip list walk, and its memory per key is lower (no tower of
//! pointers, no epoch garbage), which matters with millions of keys. Compaction changes
//! history below readers' feet; the store makes that safe by publishing the new compact
//! revision before touching the index and having readers re-check it (see `store`).
//!
//! Invariant kept: no key index in the map is empty (a compaction that empties one
//! removes it).

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::key_index::KeyIndex;
use crate::revision::Revision;

/// How many keys a walk visits per acquisition of the read lock.
pub const WALK_CHUNK_KEYS: usize = 256;
/// How many keys compaction visits per acquisition of the write lock.
pub const COMPACT_CHUNK_KEYS: usize = 1024;

/// A key range as etcd's `range_end` rules define it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRange<'a> {
    /// Exactly one key (`range_end` empty).
    Single(&'a [u8]),
    /// Every key `>= key` (`range_end == [0]`).
    From(&'a [u8]),
    /// The half-open interval `[key, end)`.
    Between(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    /// Interprets `(key, range_end)` as etcd does: empty end = the single key, `\0` = all
    /// keys from `key`, otherwise `[key, range_end)` (empty when `range_end <= key`).
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::From(key),
            end => KeyRange::Between(key, end),
        }
    }

    fn start(&self) -> &'a [u8] {
        match *self {
            KeyRange::Single(k) | KeyRange::From(k) | KeyRange::Between(k, _) => k,
        }
    }

    fn contains_upper(&self, key: &[u8]) -> bool {
        match *self {
            KeyRange::Single(k) => key == k,
            KeyRange::From(_) => true,
            KeyRange::Between(_, end) => key < end,
        }
    }
}

/// The ordered map of all key indexes.
#[derive(Debug, Default)]
pub struct TreeIndex {
    tree: RwLock<BTreeMap<Box<[u8]>, KeyIndex>>,
}

impl TreeIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every key (before the index is rebuilt from a replaced backend).
    pub(crate) fn clear(&self) {
        self.tree.write().clear();
    }

    /// Number of keys (including keys whose latest generation is deleted but not compacted).
    pub fn len(&self) -> usize {
        self.tree.read().len()
    }

    /// True when the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the keys and key indexes asked the allocator for, not counting the B-tree's
    /// own nodes (each holds up to 11 entries of `size_of::<(Box<[u8]>, KeyIndex)>()`
    /// bytes; how full they are depends on the insertion order).
    pub fn heap_bytes_excluding_tree_nodes(&self) -> usize {
        let tree = self.tree.read();
        tree.iter().map(|(k, ki)| k.len() + ki.heap_bytes()).sum()
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&self, key: &[u8], rev: Revision) {
        let mut tree = self.tree.write();
        match tree.get_mut(key) {
            Some(ki) => ki.put(rev),
            None => {
                let mut ki = KeyIndex::new();
                ki.put(rev);
                tree.insert(key.into(), ki);
            }
        }
    }

    /// Records the deletion of `key` at `rev`.
    pub fn tombstone(&self, key: &[u8], rev: Revision) -> Result<()> {
        let mut tree = self.tree.write();
        tree.get_mut(key)
            .ok_or(Error::RevisionNotFound)?
            .tombstone(rev)
    }

    /// Inserts a key index restored from the backend (see [`KeyIndex::restored`]), or
    /// extends the existing one; used only while opening the store.
    pub(crate) fn restore(
        &self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        created: Revision,
        ver: i64,
    ) {
        let mut tree = self.tree.write();
        match tree.get_mut(key) {
            Some(ki) if tombstone => {
                // A tombstone after a deletion whose generation was compacted halfway is
                // harmless; the resumed compaction removes it.
                let _ = ki.tombstone(rev);
            }
            Some(ki) => ki.put(rev),
            // A tombstone of a key whose puts were compacted away: nothing to restore.
            None if tombstone => {}
            None => {
                tree.insert(key.into(), KeyIndex::restored(created, rev, ver));
            }
        }
    }

    /// The state of `key` at `at_rev`: `(modified, created, version)`.
    pub fn get(&self, key: &[u8], at_rev: i64) -> Result<(Revision, Revision, i64)> {
        self.tree
            .read()
            .get(key)
            .ok_or(Error::RevisionNotFound)?
            .get(at_rev)
    }

    /// Visits key indexes in key order from `start` (`None` = the first key) while
    /// `visit` returns true, holding the read lock for at most [`WALK_CHUNK_KEYS`] keys at
    /// a time.
    fn for_each_chunked(
        &self,
        start: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &KeyIndex) -> bool,
    ) {
        let mut cursor: Option<Box<[u8]>> = None;
        loop {
            let tree = self.tree.read();
            let lower = match (&cursor, start) {
                (Some(k), _) => Bound::Excluded(&k[..]),
                (None, Some(s)) => Bound::Included(s),
                (None, None) => Bound::Unbounded,
            };
            let mut seen = 0;
            let mut last: Option<&[u8]> = None;
            for (k, ki) in tree.range::<[u8], _>((lower, Bound::Unbounded)) {
                if seen == WALK_CHUNK_KEYS {
                    break;
                }
                seen += 1;
                last = Some(k);
                if !visit(k, ki) {
                    return;
                }
            }
            match last {
                Some(k) if seen == WALK_CHUNK_KEYS => cursor = Some(k.into()),
                _ => return,
            }
        }
    }

    /// Visits, in key order, every key in `range` alive at `at_rev` with its
    /// `(key, modified, created, version)`; `visit` returns false to stop. The read lock
    /// is held for at most [`WALK_CHUNK_KEYS`] keys at a time.
    pub fn walk_alive(
        &self,
        range: KeyRange<'_>,
        at_rev: i64,
        mut visit: impl FnMut(&[u8], Revision, Revision, i64) -> bool,
    ) {
        if let KeyRange::Single(key) = range {
            if let Ok((m, c, v)) = self.get(key, at_rev) {
                visit(key, m, c, v);
            }
            return;
        }
        if let KeyRange::Between(start, end) = range {
            if end <= start {
                return;
            }
        }
        self.for_each_chunked(Some(range.start()), |k, ki| {
            if !range.contains_upper(k) {
                return false;
            }
            match ki.get(at_rev) {
                Ok((m, c, v)) => visit(k, m, c, v),
                Err(_) => true,
            }
        });
    }

    /// Revisions of the keys in `range` at `at_rev`, in key order, at most `limit` of them
    /// (0 = no limit), and the total number of keys alive there.
    pub fn revisions(
        &self,
        range: KeyRange<'_>,
        at_rev: i64,
        limit: usize,
    ) -> (Vec<Revision>, usize) {
        let mut revs = Vec::new();
        let mut total = 0;
        self.walk_alive(range, at_rev, |_, m, _, _| {
            if limit == 0 || revs.len() < limit {
                revs.push(m);
            }
            total += 1;
            true
        });
        (revs, total)
    }

    /// The keys in `range` alive at `at_rev` with their modified revisions.
    pub fn keys_alive(&self, range: KeyRange<'_>, at_rev: i64) -> Vec<(Vec<u8>, Revision)> {
        let mut out = Vec::new();
        self.walk_alive(range, at_rev, |k, m, _, _| {
            out.push((k.to_vec(), m));
            true
        });
        out
    }

    /// Compacts every key index at `at_rev`, removing the ones left empty, and returns the
    /// revisions at or below `at_rev` that must stay on disk. Holds the write lock for at
    /// most [`COMPACT_CHUNK_KEYS`] keys at a time.
    pub fn compact(&self, at_rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        let mut cursor: Option<Box<[u8]>> = None;
        loop {
            let mut tree = self.tree.write();
            let lower = match &cursor {
                None => Bound::Unbounded,
                Some(k) => Bound::Excluded(&k[..]),
            };
            let mut emptied: Vec<Box<[u8]>> = Vec::new();
            let mut seen = 0;
            let mut last = None;
            for (k, ki) in tree.range_mut::<[u8], _>((lower, Bound::Unbounded)) {
                if seen == COMPACT_CHUNK_KEYS {
                    break;
                }
                seen += 1;
                ki.compact(at_rev, &mut available);
                if ki.is_empty() {
                    emptied.push(k.clone());
                }
                last = Some(k.clone());
            }
            for k in &emptied {
                tree.remove(k);
            }
            match last {
                Some(k) if seen == COMPACT_CHUNK_KEYS => cursor = Some(k),
                _ => return available,
            }
        }
    }

    /// The revisions a compaction at `at_rev` would keep, without changing the index.
    pub fn keep(&self, at_rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        self.for_each_chunked(None, |_, ki| {
            ki.keep(at_rev, &mut available);
            true
        });
        available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn keys(index: &TreeIndex, key: &[u8], end: &[u8], at: i64) -> Vec<(Vec<u8>, i64)> {
        index
            .keys_alive(KeyRange::new(key, end), at)
            .into_iter()
            .map(|(k, r)| (k, r.main))
            .collect()
    }

    #[test]
    fn range_end_rules_follow_etcd() {
        let index = TreeIndex::new();
        index.put(b"a", r(2));
        index.put(b"b", r(3));
        index.put(b"c", r(4));
        assert_eq!(keys(&index, b"b", b"", 10), vec![(b"b".to_vec(), 3)]);
        assert_eq!(keys(&index, b"b", b"\0", 10).len(), 2);
        assert_eq!(keys(&index, b"\0", b"\0", 10).len(), 3);
        assert_eq!(keys(&index, b"a", b"c", 10).len(), 2);
        assert!(keys(&index, b"c", b"a", 10).is_empty());
        assert_eq!(keys(&index, b"a", b"c", 2), vec![(b"a".to_vec(), 2)]);
    }

    #[test]
    fn walks_longer_than_a_chunk_see_every_key_once() {
        let index = TreeIndex::new();
        let n = WALK_CHUNK_KEYS * 3 + 7;
        for i in 0..n {
            index.put(format!("k{i:05}").as_bytes(), r(i as i64 + 2));
        }
        let (revs, total) = index.revisions(KeyRange::new(b"k", b"l"), n as i64 + 2, 10);
        assert_eq!((revs.len(), total), (10, n));
        let all = keys(&index, b"\0", b"\0", n as i64 + 2);
        assert_eq!(all.len(), n);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn compaction_removes_emptied_keys_across_chunks() {
        let index = TreeIndex::new();
        let n = COMPACT_CHUNK_KEYS * 2 + 3;
        let mut rev = 2;
        for i in 0..n {
            let k = format!("k{i:05}");
            index.put(k.as_bytes(), r(rev));
            rev += 1;
            if i % 2 == 0 {
                index.tombstone(k.as_bytes(), r(rev)).unwrap();
                rev += 1;
            }
        }
        let keep = index.compact(rev);
        assert_eq!(index.len(), n / 2);
        assert_eq!(keep.len(), n / 2);
        assert_eq!(index.keep(rev), keep);
    }
}
