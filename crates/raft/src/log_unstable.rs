//! The unstable part of the log: entries (and possibly an incoming snapshot) that
//! raft has accepted but the application has not yet persisted to [`Storage`](crate::Storage).
//!
//! Invariant: `entries[i].index == offset + i`; if a snapshot is present, `offset ==
//! snapshot.index + 1`.

use etcd_proto::raftpb::{Entry, Snapshot};

fn meta(s: &Snapshot) -> (u64, u64) {
    s.metadata.as_ref().map_or((0, 0), |m| (m.index, m.term))
}

/// Entries and snapshot not yet persisted.
#[derive(Debug, Default)]
pub(crate) struct Unstable {
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) offset: u64,
}

impl Unstable {
    pub(crate) fn new(offset: u64) -> Self {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
        }
    }

    /// The first index, known only if a snapshot is pending.
    pub(crate) fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| meta(s).0 + 1)
    }

    pub(crate) fn maybe_last_index(&self) -> Option<u64> {
        if !self.entries.is_empty() {
            return Some(self.offset + self.entries.len() as u64 - 1);
        }
        self.snapshot.as_ref().map(|s| meta(s).0)
    }

    pub(crate) fn maybe_term(&self, i: u64) -> Option<u64> {
        if i < self.offset {
            let (si, st) = self.snapshot.as_ref().map(meta)?;
            return (si == i).then_some(st);
        }
        let last = self.maybe_last_index()?;
        if i > last {
            return None;
        }
        if self.entries.is_empty() {
            return self.snapshot.as_ref().map(|s| meta(s).1);
        }
        Some(self.entries[(i - self.offset) as usize].term)
    }

    /// The entries up to `(index, term)` were persisted: drop them, unless the entry
    /// at `index` was since replaced by one of another term.
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        if self.maybe_term(index) != Some(term) || index < self.offset {
            return;
        }
        let n = (index + 1 - self.offset) as usize;
        self.entries.drain(..n);
        self.offset = index + 1;
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| meta(s).0 == index) {
            self.snapshot = None;
        }
    }

    pub(crate) fn restore(&mut self, snap: Snapshot) {
        self.offset = meta(&snap).0 + 1;
        self.entries.clear();
        self.snapshot = Some(snap);
    }

    /// Appends `ents`, first truncating whatever they overwrite.
    #[cfg(test)]
    pub(crate) fn truncate_and_append(&mut self, mut ents: Vec<Entry>) {
        self.truncate_and_append_from(&mut ents);
    }

    /// Like [`Unstable::truncate_and_append`], moving the entries out of `ents`
    /// (which keeps its capacity, for reuse).
    pub(crate) fn truncate_and_append_from(&mut self, ents: &mut Vec<Entry>) {
        let Some(after) = ents.first().map(|e| e.index) else {
            return;
        };
        let end = self.offset + self.entries.len() as u64;
        if after <= self.offset {
            self.offset = after;
            self.entries.clear();
        } else if after < end {
            self.entries.truncate((after - self.offset) as usize);
        }
        self.entries.append(ents);
    }

    /// Entries in `[lo, hi)`, which must lie within the unstable entries.
    pub(crate) fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            lo >= self.offset && hi <= self.offset + self.entries.len() as u64 && lo <= hi,
            "unstable slice [{lo}, {hi}) out of bound [{}, {}]",
            self.offset,
            self.offset + self.entries.len() as u64
        );
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::ent;
    use etcd_proto::raftpb::SnapshotMetadata;

    #[test]
    fn stable_to_ignores_entries_replaced_by_another_term() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(vec![ent(5, 1), ent(6, 1)]);
        u.stable_to(6, 2);
        assert_eq!(u.entries.len(), 2);
        u.stable_to(5, 1);
        assert_eq!(u.offset, 6);
        assert_eq!(u.entries.len(), 1);
    }

    #[test]
    fn truncate_and_append_replaces_conflicting_tail() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(vec![ent(5, 1), ent(6, 1), ent(7, 1)]);
        u.truncate_and_append(vec![ent(6, 2)]);
        assert_eq!(u.maybe_last_index(), Some(6));
        assert_eq!(u.maybe_term(6), Some(2));
        u.truncate_and_append(vec![ent(4, 3)]);
        assert_eq!(u.offset, 4);
        assert_eq!(u.entries.len(), 1);
    }

    #[test]
    fn snapshot_defines_first_index_and_term() {
        let mut u = Unstable::new(1);
        u.restore(Snapshot {
            metadata: Some(SnapshotMetadata {
                index: 9,
                term: 3,
                conf_state: None,
            }),
            ..Default::default()
        });
        assert_eq!(u.maybe_first_index(), Some(10));
        assert_eq!(u.maybe_last_index(), Some(9));
        assert_eq!(u.maybe_term(9), Some(3));
        assert_eq!(u.maybe_term(8), None);
        u.stable_snap_to(9);
        assert!(u.snapshot.is_none());
    }
}
