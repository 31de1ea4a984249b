//! The key index of one user key: its generations of revisions.
//!
//! Owns the history of a single key as etcd models it. A *generation* is the life of the
//! key from a creation to a deletion: the revisions of its puts, then (if the key was
//! deleted) the revision of the tombstone as its last entry, after which an empty
//! generation starts. Invariants kept: revisions only grow across the whole key index; only
//! the last generation may be empty; a key index always holds at least one generation.
//!
//! Memory: the generations live behind one `Box` with the single-generation case inline,
//! so the common key (one generation, a few revisions) costs two small allocations. This
//! is what keeps the whole index near 120 bytes per key (see `examples/reopen.rs`).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::revision::Revision;

/// The revisions of a generation: inline while there is at most one (most keys are
/// written once between compactions), a `Vec` beyond.
#[derive(Debug, Clone, Default)]
enum Revs {
    #[default]
    Empty,
    One(Revision),
    Many(Vec<Revision>),
}

impl std::ops::Deref for Revs {
    type Target = [Revision];
    fn deref(&self) -> &[Revision] {
        match self {
            Revs::Empty => &[],
            Revs::One(r) => std::slice::from_ref(r),
            Revs::Many(v) => v,
        }
    }
}

impl PartialEq for Revs {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Revs {}

impl Revs {
    fn push(&mut self, rev: Revision) {
        *self = match std::mem::take(self) {
            Revs::Empty => Revs::One(rev),
            Revs::One(first) => Revs::Many(vec![first, rev]),
            Revs::Many(mut v) => {
                v.push(rev);
                Revs::Many(v)
            }
        };
    }

    /// Removes the `n` oldest revisions.
    fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        *self = match std::mem::take(self) {
            Revs::Many(mut v) => {
                v.drain(..n.min(v.len()));
                match v.len() {
                    0 => Revs::Empty,
                    1 => Revs::One(v[0]),
                    _ => Revs::Many(v),
                }
            }
            Revs::Empty | Revs::One(_) => Revs::Empty,
        };
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Revs::Many(v) => v.capacity() * std::mem::size_of::<Revision>(),
            Revs::Empty | Revs::One(_) => 0,
        }
    }
}

/// One life of a key: created at `created`, `ver` puts so far, its revisions in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Generation {
    ver: i64,
    created: Revision,
    revs: Revs,
}

impl Generation {
    /// True when the generation has no revision (the key does not exist in it yet).
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// The revision that created the key in this generation.
    pub fn created(&self) -> Revision {
        self.created
    }

    /// Number of puts in this generation since creation (including compacted ones).
    pub fn version(&self) -> i64 {
        self.ver
    }

    /// The revisions still held, oldest first (the last one is the tombstone if the
    /// generation is closed).
    pub fn revisions(&self) -> &[Revision] {
        &self.revs
    }

    /// Index of the newest revision with `main <= at_rev`, if any.
    fn newest_at_or_before(&self, at_rev: i64) -> Option<usize> {
        // revs is sorted; partition_point gives the count of revs with main <= at_rev.
        let n = self.revs.partition_point(|r| r.main <= at_rev);
        n.checked_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Generations {
    One(Generation),
    Many(Vec<Generation>),
}

/// The history of one key: its generations, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    gens: Box<Generations>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyIndex {
    /// A key index with no revision.
    pub fn new() -> Self {
        KeyIndex {
            gens: Box::new(Generations::One(Generation::default())),
        }
    }

    /// A key index restored from the backend, where the oldest revision still on disk is
    /// `modified` and its stored value says the key was created at `created` and had
    /// version `ver` (older revisions may have been compacted away).
    pub fn restored(created: Revision, modified: Revision, ver: i64) -> Self {
        KeyIndex {
            gens: Box::new(Generations::One(Generation {
                ver,
                created,
                revs: Revs::One(modified),
            })),
        }
    }

    /// The generations, oldest first; never empty.
    pub fn generations(&self) -> &[Generation] {
        match &*self.gens {
            Generations::One(g) => std::slice::from_ref(g),
            Generations::Many(v) => v,
        }
    }

    fn last_gen_mut(&mut self) -> &mut Generation {
        match &mut *self.gens {
            Generations::One(g) => g,
            Generations::Many(v) => v.last_mut().expect("a key index always has a generation"),
        }
    }

    fn push_gen(&mut self, g: Generation) {
        let gens = std::mem::replace(&mut *self.gens, Generations::Many(Vec::new()));
        *self.gens = match gens {
            Generations::One(first) => Generations::Many(vec![first, g]),
            Generations::Many(mut v) => {
                v.push(g);
                Generations::Many(v)
            }
        };
    }

    /// Drops the generations before `idx` (keeps `idx..`).
    fn drop_gens_before(&mut self, idx: usize) {
        if idx == 0 {
            return;
        }
        let gens = std::mem::replace(&mut *self.gens, Generations::Many(Vec::new()));
        *self.gens = match gens {
            Generations::One(g) => Generations::One(g),
            Generations::Many(mut v) => {
                v.drain(..idx);
                if v.len() == 1 {
                    Generations::One(v.pop().expect("length checked"))
                } else {
                    Generations::Many(v)
                }
            }
        };
    }

    /// Bytes this key index asked the allocator for (its box, generations and revisions).
    pub fn heap_bytes(&self) -> usize {
        let gens = match &*self.gens {
            Generations::One(_) => 0,
            Generations::Many(v) => v.capacity() * std::mem::size_of::<Generation>(),
        };
        let revs: usize = self.generations().iter().map(|g| g.revs.heap_bytes()).sum();
        std::mem::size_of::<Generations>() + gens + revs
    }

    /// The newest revision recorded (put or tombstone), if any.
    pub fn modified(&self) -> Option<Revision> {
        self.generations()
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
    }

    /// True when the key index holds no revision at all (it can be removed from the tree).
    pub fn is_empty(&self) -> bool {
        let gens = self.generations();
        gens.len() == 1 && gens[0].is_empty()
    }

    /// Records a put at `rev`. Panics if `rev` is not newer than every recorded revision:
    /// that would be a bug in the store, and continuing would corrupt the history.
    pub fn put(&mut self, rev: Revision) {
        if let Some(m) = self.modified() {
            assert!(rev > m, "key index: put at {rev:?} not after {m:?}");
        }
        let g = self.last_gen_mut();
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
    }

    /// Records a deletion at `rev`: the tombstone closes the current generation and an
    /// empty one starts. Deleting a key that does not exist is [`Error::RevisionNotFound`].
    pub fn tombstone(&mut self, rev: Revision) -> Result<()> {
        if self.last_gen_mut().is_empty() {
            return Err(Error::RevisionNotFound);
        }
        self.put(rev);
        self.push_gen(Generation::default());
        Ok(())
    }

    /// Index of the generation that holds the key's state at `at_rev`: the key is alive
    /// at `at_rev` in it. `None` when the key did not exist at `at_rev`.
    fn find_generation(&self, at_rev: i64) -> Option<usize> {
        let gens = self.generations();
        let last = gens.len() - 1;
        for (i, g) in gens.iter().enumerate().rev() {
            let (Some(first), Some(newest)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && newest.main <= at_rev {
                // This generation was closed by its tombstone at or before at_rev.
                return None;
            }
            if first.main <= at_rev {
                return Some(i);
            }
        }
        None
    }

    /// The key's state at `at_rev`: `(modified, created, version)` of the newest put at or
    /// before it. [`Error::RevisionNotFound`] if the key did not exist then.
    pub fn get(&self, at_rev: i64) -> Result<(Revision, Revision, i64)> {
        let gi = self
            .find_generation(at_rev)
            .ok_or(Error::RevisionNotFound)?;
        let g = &self.generations()[gi];
        let n = g
            .newest_at_or_before(at_rev)
            .ok_or(Error::RevisionNotFound)?;
        let newer = (g.revs.len() - n - 1) as i64;
        Ok((g.revs[n], g.created, g.ver - newer))
    }

    /// The revisions with `main >= rev`, oldest first, at most one per main revision (the
    /// highest sub wins: only the last change of a transaction to a key is visible).
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let since = Revision::new(rev, 0);
        let gens = self.generations();
        // Start at the newest generation created at or before `since`.
        let mut start = gens.len() - 1;
        while start > 0 {
            let g = &gens[start];
            if !g.is_empty() && since > g.created {
                break;
            }
            start -= 1;
        }
        let mut out: Vec<Revision> = Vec::new();
        for g in &gens[start..] {
            for &r in g.revs.iter() {
                if r < since {
                    continue;
                }
                match out.last_mut() {
                    Some(last) if last.main == r.main => *last = r,
                    _ => out.push(r),
                }
            }
        }
        out
    }

    /// Walks to the generation that holds `at_rev` (or the first created after it) and
    /// adds the newest revision at or before `at_rev` in it to `available`.
    fn do_compact(&self, at_rev: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let gens = self.generations();
        let mut gi = 0;
        while gi < gens.len() - 1 {
            let tomb = gens[gi].revs.last().map_or(i64::MIN, |r| r.main);
            if tomb > at_rev {
                break;
            }
            gi += 1;
        }
        let ri = gens[gi].newest_at_or_before(at_rev);
        if let Some(ri) = ri {
            available.insert(gens[gi].revs[ri]);
        }
        (gi, ri)
    }

    /// Compacts the history at `at_rev`: removes every revision older than the newest one
    /// at or before `at_rev` (which stays readable) and whole generations that ended at or
    /// before it. A tombstone at or before `at_rev` is removed too: the key simply does not
    /// exist then. Revisions that must stay on disk are added to `available`.
    pub fn compact(&mut self, at_rev: i64, available: &mut HashSet<Revision>) {
        let (mut gi, ri) = self.do_compact(at_rev, available);
        let last = self.generations().len() - 1;
        let g = match &mut *self.gens {
            Generations::One(g) => g,
            Generations::Many(v) => &mut v[gi],
        };
        if !g.is_empty() {
            if let Some(ri) = ri {
                g.revs.drop_front(ri);
            }
            // A closed generation reduced to its tombstone goes away entirely.
            if g.revs.len() == 1 && gi != last {
                available.remove(&g.revs[0]);
                gi += 1;
            }
        }
        self.drop_gens_before(gi);
    }

    /// What [`compact`](Self::compact) at `at_rev` would keep, without changing anything:
    /// adds to `available` the revisions a compaction at `at_rev` keeps.
    pub fn keep(&self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gi, ri) = self.do_compact(at_rev, available);
        let gens = self.generations();
        let g = &gens[gi];
        if let Some(ri) = ri {
            if !g.is_empty() && ri == g.revs.len() - 1 && gi != gens.len() - 1 {
                available.remove(&g.revs[ri]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// puts at 2, 4, 6; tombstone at 8; puts at 10, 12; tombstone at 14; puts at 16
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::new();
        for m in [2, 4, 6] {
            ki.put(r(m));
        }
        ki.tombstone(r(8)).unwrap();
        ki.put(r(10));
        ki.put(r(12));
        ki.tombstone(r(14)).unwrap();
        ki.put(r(16));
        ki
    }

    fn revs_of(ki: &KeyIndex) -> Vec<Vec<i64>> {
        ki.generations()
            .iter()
            .map(|g| g.revisions().iter().map(|r| r.main).collect())
            .collect()
    }

    #[test]
    fn put_counts_versions_and_records_creation() {
        let mut ki = KeyIndex::new();
        assert!(ki.is_empty());
        ki.put(Revision::new(5, 0));
        ki.put(Revision::new(5, 1));
        ki.put(r(7));
        let g = &ki.generations()[0];
        assert_eq!(g.created(), Revision::new(5, 0));
        assert_eq!(g.version(), 3);
        assert_eq!(ki.modified(), Some(r(7)));
    }

    #[test]
    #[should_panic(expected = "not after")]
    fn put_at_an_older_revision_is_a_bug() {
        let mut ki = KeyIndex::new();
        ki.put(r(5));
        ki.put(r(4));
    }

    #[test]
    fn tombstone_closes_the_generation_and_starts_an_empty_one() {
        let ki = sample();
        assert_eq!(
            revs_of(&ki),
            vec![vec![2, 4, 6, 8], vec![10, 12, 14], vec![16]]
        );
        let mut empty = KeyIndex::new();
        assert!(matches!(
            empty.tombstone(r(3)),
            Err(Error::RevisionNotFound)
        ));
        let mut dead = KeyIndex::new();
        dead.put(r(2));
        dead.tombstone(r(3)).unwrap();
        assert!(matches!(dead.tombstone(r(4)), Err(Error::RevisionNotFound)));
    }

    #[test]
    fn get_returns_the_state_at_a_revision() {
        let ki = sample();
        // (read at, Some((modified, created, version)) or None when absent)
        type Case = (i64, Option<(i64, i64, i64)>);
        let cases: &[Case] = &[
            (1, None),
            (2, Some((2, 2, 1))),
            (3, Some((2, 2, 1))),
            (4, Some((4, 2, 2))),
            (7, Some((6, 2, 3))),
            (8, None), // deleted at 8
            (9, None),
            (10, Some((10, 10, 1))),
            (13, Some((12, 10, 2))),
            (14, None),
            (15, None),
            (16, Some((16, 16, 1))),
            (100, Some((16, 16, 1))),
        ];
        for &(at, want) in cases {
            let got = ki.get(at).ok().map(|(m, c, v)| (m.main, c.main, v));
            assert_eq!(got, want, "get at {at}");
        }
    }

    #[test]
    fn since_returns_one_revision_per_main_across_generations() {
        let mut ki = KeyIndex::new();
        ki.put(Revision::new(2, 0));
        ki.put(Revision::new(2, 1));
        ki.tombstone(Revision::new(3, 0)).unwrap();
        ki.put(Revision::new(4, 0));
        assert_eq!(
            ki.since(1),
            vec![
                Revision::new(2, 1),
                Revision::new(3, 0),
                Revision::new(4, 0)
            ]
        );
        assert_eq!(ki.since(3), vec![Revision::new(3, 0), Revision::new(4, 0)]);
        assert_eq!(ki.since(5), vec![]);
        let s = sample();
        let mains: Vec<i64> = s.since(9).iter().map(|r| r.main).collect();
        assert_eq!(mains, vec![10, 12, 14, 16]);
    }

    fn compacted(at: i64) -> (Vec<Vec<i64>>, Vec<i64>) {
        let mut ki = sample();
        let mut keep = HashSet::new();
        ki.compact(at, &mut keep);
        let mut keep: Vec<i64> = keep.into_iter().map(|r| r.main).collect();
        keep.sort_unstable();
        // keep() must predict exactly what compact() keeps.
        let mut predicted = HashSet::new();
        sample().keep(at, &mut predicted);
        let mut predicted: Vec<i64> = predicted.into_iter().map(|r| r.main).collect();
        predicted.sort_unstable();
        assert_eq!(keep, predicted, "keep() vs compact() at {at}");
        (revs_of(&ki), keep)
    }

    #[test]
    fn compact_before_the_first_revision_changes_nothing() {
        assert_eq!(
            compacted(1),
            (vec![vec![2, 4, 6, 8], vec![10, 12, 14], vec![16]], vec![])
        );
    }

    #[test]
    fn compact_at_a_version_keeps_that_version_readable() {
        assert_eq!(
            compacted(2),
            (vec![vec![2, 4, 6, 8], vec![10, 12, 14], vec![16]], vec![2])
        );
        assert_eq!(
            compacted(5),
            (vec![vec![4, 6, 8], vec![10, 12, 14], vec![16]], vec![4])
        );
        assert_eq!(
            compacted(6),
            (vec![vec![6, 8], vec![10, 12, 14], vec![16]], vec![6])
        );
    }

    #[test]
    fn compact_at_a_tombstone_drops_the_whole_generation() {
        assert_eq!(compacted(8), (vec![vec![10, 12, 14], vec![16]], vec![]));
        assert_eq!(compacted(9), (vec![vec![10, 12, 14], vec![16]], vec![]));
        assert_eq!(compacted(14), (vec![vec![16]], vec![]));
    }

    #[test]
    fn compact_across_generations_keeps_only_the_live_one() {
        assert_eq!(compacted(12), (vec![vec![12, 14], vec![16]], vec![12]));
        assert_eq!(compacted(16), (vec![vec![16]], vec![16]));
    }

    #[test]
    fn compact_at_the_latest_version_keeps_it() {
        assert_eq!(compacted(100), (vec![vec![16]], vec![16]));
    }

    #[test]
    fn compact_of_a_deleted_key_empties_the_index() {
        let mut ki = KeyIndex::new();
        ki.put(r(2));
        ki.put(r(3));
        ki.tombstone(r(4)).unwrap();
        let mut keep = HashSet::new();
        ki.compact(3, &mut keep);
        assert!(!ki.is_empty());
        assert_eq!(keep, HashSet::from([r(3)]));
        let mut keep = HashSet::new();
        ki.compact(4, &mut keep);
        assert!(ki.is_empty(), "{ki:?}");
        assert!(keep.is_empty());
        // A compacted, emptied key index accepts a new life.
        ki.put(r(5));
        assert_eq!(ki.get(5).unwrap().2, 1);
    }

    #[test]
    fn compact_keeps_get_answers_at_and_after_the_compact_revision() {
        for at in 1..=17 {
            let mut ki = sample();
            ki.compact(at, &mut HashSet::new());
            for read in at..=17 {
                assert_eq!(
                    ki.get(read).ok(),
                    sample().get(read).ok(),
                    "compact at {at} read at {read}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Against brute force: a history of puts (true) and deletes (false) at growing
        /// revisions; after compaction at `at`, every read at or after `at` is unchanged,
        /// and exactly the revision visible at `at` (if any) is kept.
        #[test]
        fn compaction_never_changes_reads_at_or_after_it(
            ops in proptest::collection::vec(proptest::bool::weighted(0.7), 1..30),
            at_pick in 0usize..40,
        ) {
            let mut ki = KeyIndex::new();
            // model: (rev, Some((created, version)) for a put, None for a delete)
            let mut history: Vec<(i64, Option<(i64, i64)>)> = Vec::new();
            let mut alive: Option<(i64, i64)> = None;
            for (i, put) in ops.iter().enumerate() {
                let rev = i as i64 + 2;
                if *put {
                    ki.put(r(rev));
                    let (created, ver) = alive.map_or((rev, 1), |(c, v)| (c, v + 1));
                    alive = Some((created, ver));
                    history.push((rev, alive));
                } else if ki.tombstone(r(rev)).is_ok() {
                    proptest::prop_assert!(alive.is_some());
                    alive = None;
                    history.push((rev, None));
                } else {
                    proptest::prop_assert!(alive.is_none());
                }
            }
            let model_get = |at: i64| {
                history
                    .iter()
                    .rev()
                    .find(|(rev, _)| *rev <= at)
                    .and_then(|(rev, st)| st.map(|(c, v)| (*rev, c, v)))
            };
            let last = ops.len() as i64 + 2;
            for at in 0..=last {
                let got = ki.get(at).ok().map(|(m, c, v)| (m.main, c.main, v));
                proptest::prop_assert_eq!(got, model_get(at), "get at {}", at);
            }
            let at = at_pick as i64 % (last + 1);
            let mut keep = HashSet::new();
            ki.compact(at, &mut keep);
            for read in at..=last {
                let got = ki.get(read).ok().map(|(m, c, v)| (m.main, c.main, v));
                proptest::prop_assert_eq!(got, model_get(read), "after compact at {}, get at {}", at, read);
            }
            let want_keep: HashSet<Revision> = model_get(at).map(|(m, _, _)| r(m)).into_iter().collect();
            proptest::prop_assert_eq!(keep, want_keep);
        }
    }

    #[test]
    fn restored_key_index_keeps_the_stored_version() {
        let mut ki = KeyIndex::restored(r(2), r(7), 4);
        ki.put(r(9));
        assert_eq!(ki.get(8).unwrap(), (r(7), r(2), 4));
        assert_eq!(ki.get(9).unwrap(), (r(9), r(2), 5));
        assert!(ki.get(6).is_err());
    }
}
