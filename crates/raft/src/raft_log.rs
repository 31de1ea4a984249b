//! The raft log: the stable part in [`Storage`] plus the [`Unstable`] tail, with the
//! commit and applied indexes.
//!
//! Invariants (asserted): `applied <= committed <= last_index`; `committed` never
//! goes backwards; an entry that is committed is never truncated.

use etcd_proto::raftpb::{Entry, Snapshot};

use crate::errors::{Error, Result, StorageError};
use crate::log_unstable::Unstable;
use crate::storage::Storage;
use crate::util::{entry_size, limit_size};

/// The log of one node.
pub(crate) struct RaftLog<S: Storage> {
    pub(crate) store: S,
    pub(crate) unstable: Unstable,
    pub(crate) committed: u64,
    /// Highest index handed to the application in a `Ready` (not yet acknowledged).
    pub(crate) applying: u64,
    pub(crate) applied: u64,
    /// Bound on the bytes of committed entries handed out per `Ready`.
    pub(crate) max_committed_size_per_ready: u64,
    /// The lowest index whose entry may have changed (appended, overwritten or
    /// replaced by a snapshot) since [`RaftLog::take_changed_from`] last ran; 0 for a
    /// new log, `u64::MAX` when nothing changed. Lets the simulation's checker look
    /// at what changed only.
    changed_from: u64,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(store: S, max_committed_size_per_ready: u64) -> Result<Self> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        Ok(RaftLog {
            store,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applying: first - 1,
            applied: first - 1,
            max_committed_size_per_ready,
            changed_from: 0,
        })
    }

    pub(crate) fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            None => self
                .store
                .first_index()
                .expect("storage first_index must not fail"),
        }
    }

    pub(crate) fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self
                .store
                .last_index()
                .expect("storage last_index must not fail"),
        }
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.term(self.last_index())
            .expect("the term of the last index is always known")
    }

    /// The term of entry `i`; `Ok(0)` outside `[first_index - 1, last_index]` above,
    /// `Compacted` below.
    pub(crate) fn term(&self, i: u64) -> Result<u64> {
        let dummy = self.first_index() - 1;
        if i < dummy {
            return Err(StorageError::Compacted.into());
        }
        if i > self.last_index() {
            return Ok(0);
        }
        if let Some(t) = self.unstable.maybe_term(i) {
            return Ok(t);
        }
        match self.store.term(i) {
            Ok(t) => Ok(t),
            Err(Error::Storage(StorageError::Compacted | StorageError::Unavailable)) => {
                Err(StorageError::Compacted.into())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether we hold entry `i` with term `t` (never true beyond our last index, so an
    /// append can never leave a gap).
    pub(crate) fn match_term(&self, i: u64, t: u64) -> bool {
        i <= self.last_index() && self.term(i).is_ok_and(|x| x == t)
    }

    /// Whether a log ending at `(last_index, term)` is at least as up to date as ours.
    pub(crate) fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our_term = self.last_term();
        term > our_term || (term == our_term && last_index >= self.last_index())
    }

    /// Follower side of MsgApp: if our entry `index` has term `log_term`, append
    /// `ents` (truncating conflicts) and return the new last index.
    pub(crate) fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        ents: Vec<Entry>,
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + ents.len() as u64;
        let ci = self.find_conflict(&ents);
        if ci != 0 {
            assert!(
                ci > self.committed,
                "entry {ci} conflicts with committed entry (committed {})",
                self.committed
            );
            let start = (ci - (index + 1)) as usize;
            let mut ents = ents;
            ents.drain(..start);
            self.append(ents);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// The first index whose entry differs from ours (or is new), 0 if none.
    fn find_conflict(&self, ents: &[Entry]) -> u64 {
        for e in ents {
            if !self.match_term(e.index, e.term) {
                return e.index;
            }
        }
        0
    }

    /// The largest index `<= index` whose term is `<= term`, with its term: where the
    /// leader should probe next after a rejection (fast backtracking).
    pub(crate) fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index;
        loop {
            match self.term(i) {
                Ok(t) if t > term => {
                    if i == 0 {
                        return (0, 0);
                    }
                    i -= 1;
                }
                Ok(t) => return (i, t),
                Err(_) => return (i, 0),
            }
        }
    }

    pub(crate) fn append(&mut self, mut ents: Vec<Entry>) -> u64 {
        self.append_from(&mut ents)
    }

    /// Appends the entries of `ents` (which is left empty, keeping its capacity);
    /// returns the new last index.
    pub(crate) fn append_from(&mut self, ents: &mut Vec<Entry>) -> u64 {
        if let Some(first) = ents.first() {
            assert!(
                first.index > self.committed,
                "appending at {} would overwrite committed {}",
                first.index,
                self.committed
            );
            assert!(
                first.index <= self.last_index() + 1,
                "appending at {} would leave a gap after last index {}",
                first.index,
                self.last_index()
            );
            self.changed_from = self.changed_from.min(first.index);
            self.unstable.truncate_and_append_from(ents);
        }
        self.last_index()
    }

    pub(crate) fn unstable_entries(&self) -> &[Entry] {
        &self.unstable.entries
    }

    /// Entries from `i`, bounded in bytes; empty if `i > last_index`.
    pub(crate) fn entries(&self, i: u64, max_size: u64) -> Result<Vec<Entry>> {
        let last = self.last_index();
        if i > last {
            return Ok(Vec::new());
        }
        self.slice(i, last + 1, max_size)
    }

    /// Entries in `[lo, hi)`, at most `max_size` bytes (at least one entry).
    pub(crate) fn slice(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        if lo == hi {
            return Ok(Vec::new());
        }
        let first = self.first_index();
        if lo < first {
            return Err(StorageError::Compacted.into());
        }
        assert!(
            hi <= self.last_index() + 1,
            "slice [{lo}, {hi}) beyond last index {}",
            self.last_index()
        );
        let uoff = self.unstable.offset;
        let mut out = Vec::new();
        if lo < uoff {
            out = self.store.entries(lo, hi.min(uoff), max_size)?;
            if (out.len() as u64) < hi.min(uoff) - lo {
                return Ok(out);
            }
        }
        if hi > uoff {
            let u = self.unstable.slice(lo.max(uoff), hi);
            let mut size: u64 = out.iter().map(entry_size).sum();
            out.reserve(u.len().min(1024));
            for e in u {
                size = size.saturating_add(entry_size(e));
                if !out.is_empty() && size > max_size {
                    break;
                }
                out.push(e.clone());
            }
            return Ok(out);
        }
        limit_size(&mut out, max_size);
        Ok(out)
    }

    /// Committed entries not yet handed to the application, bounded by
    /// `max_committed_size_per_ready`.
    pub(crate) fn next_committed_entries(&self) -> Vec<Entry> {
        if !self.has_next_committed_entries() {
            return Vec::new();
        }
        let lo = (self.applying + 1).max(self.first_index());
        self.slice(lo, self.committed + 1, self.max_committed_size_per_ready)
            .expect("committed entries after the applied index are available")
    }

    pub(crate) fn has_next_committed_entries(&self) -> bool {
        self.unstable.snapshot.is_none()
            && self.committed > self.applying.max(self.first_index() - 1)
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        if let Some(s) = &self.unstable.snapshot {
            return Ok(s.clone());
        }
        self.store.snapshot()
    }

    pub(crate) fn commit_to(&mut self, to: u64) {
        if self.committed < to {
            assert!(
                to <= self.last_index(),
                "commit {to} is beyond last index {} (log corrupted?)",
                self.last_index()
            );
            self.committed = to;
        }
    }

    /// Commits `max_index` if its entry is of `term` (only entries of the current
    /// term are committed by counting replicas).
    pub(crate) fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.term(max_index).is_ok_and(|t| t == term) {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub(crate) fn applying_to(&mut self, i: u64) {
        assert!(
            i <= self.committed,
            "applying {i} beyond committed {}",
            self.committed
        );
        self.applying = self.applying.max(i);
    }

    pub(crate) fn applied_to(&mut self, i: u64) {
        if i == 0 {
            return;
        }
        assert!(
            i <= self.committed && i >= self.applied,
            "applied({i}) out of range [prev applied {}, committed {}]",
            self.applied,
            self.committed
        );
        self.applied = i;
        self.applying = self.applying.max(i);
    }

    pub(crate) fn stable_to(&mut self, i: u64, t: u64) {
        self.unstable.stable_to(i, t);
    }

    pub(crate) fn stable_snap_to(&mut self, i: u64) {
        self.unstable.stable_snap_to(i);
    }

    pub(crate) fn restore(&mut self, snap: Snapshot) {
        let index = snap.metadata.as_ref().map_or(0, |m| m.index);
        self.committed = index;
        self.changed_from = self.changed_from.min(index);
        self.unstable.restore(snap);
    }

    /// The lowest index that may have changed since the last call (0 for a new log),
    /// or `None` if nothing did.
    pub(crate) fn take_changed_from(&mut self) -> Option<u64> {
        let from = std::mem::replace(&mut self.changed_from, u64::MAX);
        (from != u64::MAX).then_some(from)
    }

    /// Every entry from first to last (for tests and debugging output).
    pub(crate) fn all_entries(&self) -> Vec<Entry> {
        self.entries(self.first_index(), u64::MAX)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::util::ent;

    fn log_with(terms: &[u64]) -> RaftLog<MemStorage> {
        let mut l = RaftLog::new(MemStorage::new(), u64::MAX).unwrap();
        let ents = terms
            .iter()
            .enumerate()
            .map(|(i, t)| ent(i as u64 + 1, *t))
            .collect();
        l.append(ents);
        l
    }

    #[test]
    fn maybe_append_rejects_on_term_mismatch_and_truncates_conflicts() {
        let mut l = log_with(&[1, 2, 3]);
        assert_eq!(l.maybe_append(3, 2, 3, vec![ent(4, 4)]), None);
        assert_eq!(l.maybe_append(2, 2, 2, vec![ent(3, 4), ent(4, 4)]), Some(4));
        assert_eq!(l.term(3).unwrap(), 4);
        assert_eq!(l.committed, 2);
        assert_eq!(l.maybe_append(4, 4, 10, vec![]), Some(4));
        assert_eq!(l.committed, 4, "commit is capped by the last new index");
    }

    #[test]
    #[should_panic(expected = "conflicts with committed")]
    fn truncating_a_committed_entry_panics() {
        let mut l = log_with(&[1, 2, 3]);
        l.commit_to(3);
        l.maybe_append(1, 1, 3, vec![ent(2, 5)]);
    }

    #[test]
    fn append_beyond_last_index_is_rejected_not_gapped() {
        let mut l = log_with(&[1, 1]);
        assert_eq!(l.maybe_append(5, 0, 0, vec![ent(6, 1)]), None);
        assert_eq!(l.last_index(), 2);
    }

    #[test]
    fn commit_never_goes_backwards() {
        let mut l = log_with(&[1, 1, 1]);
        l.commit_to(3);
        l.commit_to(1);
        assert_eq!(l.committed, 3);
    }

    #[test]
    fn maybe_commit_only_counts_entries_of_the_given_term() {
        let mut l = log_with(&[1, 1, 2]);
        assert!(!l.maybe_commit(2, 2));
        assert!(l.maybe_commit(3, 2));
        assert_eq!(l.committed, 3);
    }

    #[test]
    fn find_conflict_by_term_skips_higher_terms() {
        let l = log_with(&[1, 1, 4, 4, 5, 5]);
        assert_eq!(l.find_conflict_by_term(6, 4), (4, 4));
        assert_eq!(l.find_conflict_by_term(6, 2), (2, 1));
        assert_eq!(l.find_conflict_by_term(6, 0), (0, 0));
        assert_eq!(l.find_conflict_by_term(6, 7), (6, 5));
    }

    #[test]
    fn is_up_to_date_compares_term_then_index() {
        let l = log_with(&[1, 2, 3]);
        assert!(l.is_up_to_date(1, 4));
        assert!(!l.is_up_to_date(5, 2));
        assert!(l.is_up_to_date(3, 3));
        assert!(!l.is_up_to_date(2, 3));
    }

    #[test]
    fn slice_spans_stable_and_unstable_parts() {
        let s = MemStorage::new();
        s.wl().append(&[ent(1, 1), ent(2, 1)]).unwrap();
        let mut l = RaftLog::new(s, u64::MAX).unwrap();
        l.append(vec![ent(3, 2), ent(4, 2)]);
        let all = l.slice(1, 5, u64::MAX).unwrap();
        assert_eq!(
            all.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(l.slice(2, 4, 0).unwrap().len(), 1);
    }

    #[test]
    fn committed_entries_are_handed_out_once() {
        let mut l = log_with(&[1, 1, 1]);
        l.commit_to(2);
        assert_eq!(l.next_committed_entries().len(), 2);
        l.applying_to(2);
        assert!(!l.has_next_committed_entries());
        l.commit_to(3);
        assert_eq!(l.next_committed_entries().len(), 1);
    }
}
