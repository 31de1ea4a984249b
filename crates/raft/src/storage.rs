//! The [`Storage`] trait through which raft reads the stable log, and [`MemStorage`],
//! an in-memory implementation.
//!
//! Invariant kept by `MemStorage`: its entries are contiguous and start right after
//! the snapshot (a dummy entry at the snapshot's index/term sits at position 0), so
//! `first_index == snapshot.index + 1` and `last_index == snapshot.index + len - 1`.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use etcd_proto::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

use crate::errors::{Error, Result, StorageError};
use crate::util::limit_size;

/// What raft reads from stable storage. All entries returned must be persisted.
pub trait Storage {
    /// The persisted hard state and the configuration as of the last snapshot.
    fn initial_state(&self) -> Result<(HardState, ConfState)>;
    /// Entries in `[lo, hi)`, at most `max_size` bytes in total (always at least one
    /// entry if any is available). `Compacted` if `lo` was compacted away.
    fn entries(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>>;
    /// The term of entry `index`, which must be in `[first_index - 1, last_index]`.
    fn term(&self, index: u64) -> Result<u64>;
    /// The index of the first entry still available (the snapshot's index + 1).
    fn first_index(&self) -> Result<u64>;
    /// The index of the last entry.
    fn last_index(&self) -> Result<u64>;
    /// The most recent snapshot. `SnapshotTemporarilyUnavailable` asks raft to retry.
    fn snapshot(&self) -> Result<Snapshot>;
}

/// The state behind a [`MemStorage`] handle.
#[derive(Debug, Default)]
pub struct MemStorageCore {
    hard_state: HardState,
    snapshot: Snapshot,
    /// `entries[0]` is a dummy at the snapshot's index and term.
    entries: Vec<Entry>,
}

fn snap_meta(s: &Snapshot) -> (u64, u64) {
    s.metadata.as_ref().map_or((0, 0), |m| (m.index, m.term))
}

impl MemStorageCore {
    fn offset(&self) -> u64 {
        self.entries[0].index
    }

    fn last(&self) -> u64 {
        self.offset() + self.entries.len() as u64 - 1
    }

    /// Sets the persisted hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Replaces the whole content with `snap` (used when a follower receives one).
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let (index, term) = snap_meta(&snap);
        let (cur, _) = snap_meta(&self.snapshot);
        if index < cur {
            return Err(StorageError::SnapshotOutOfDate.into());
        }
        self.entries = vec![Entry {
            index,
            term,
            ..Default::default()
        }];
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        if self.hard_state.term < term {
            self.hard_state.term = term;
        }
        self.snapshot = snap;
        Ok(())
    }

    /// Makes a snapshot at `index` (which must be applied, hence stored) with the
    /// configuration `cs` as of that index and the state machine image `data`.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        cs: Option<ConfState>,
        data: Bytes,
    ) -> Result<Snapshot> {
        let (cur, _) = snap_meta(&self.snapshot);
        if index <= cur {
            return Err(StorageError::SnapshotOutOfDate.into());
        }
        if index > self.last() {
            return Err(StorageError::Unavailable.into());
        }
        let term = self.entries[(index - self.offset()) as usize].term;
        let prev_cs = self
            .snapshot
            .metadata
            .as_ref()
            .and_then(|m| m.conf_state.clone());
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: cs.or(prev_cs),
                index,
                term,
            }),
        };
        Ok(self.snapshot.clone())
    }

    /// Discards entries before `compact_index` (which must be at most the last index).
    /// The entry at `compact_index` becomes the new dummy.
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        let offset = self.offset();
        if compact_index <= offset {
            return Err(StorageError::Compacted.into());
        }
        if compact_index > self.last() {
            return Err(StorageError::Unavailable.into());
        }
        let i = (compact_index - offset) as usize;
        self.entries.drain(..i);
        self.entries[0].data = Bytes::new();
        self.entries[0].r#type = 0;
        Ok(())
    }

    /// Appends entries, truncating any conflicting suffix. Entries must be contiguous
    /// and must not leave a gap after the current last index.
    pub fn append(&mut self, ents: &[Entry]) -> Result<()> {
        let Some(first_new) = ents.first().map(|e| e.index) else {
            return Ok(());
        };
        let first = self.offset() + 1;
        let last_new = first_new + ents.len() as u64 - 1;
        if last_new < first {
            return Ok(());
        }
        let ents = if first > first_new {
            &ents[(first - first_new) as usize..]
        } else {
            ents
        };
        let start = ents[0].index;
        if start > self.last() + 1 {
            return Err(Error::Storage(StorageError::Other(format!(
                "missing log entries: last {}, appending at {}",
                self.last(),
                start
            ))));
        }
        self.entries.truncate((start - self.offset()) as usize);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// The current snapshot's metadata, as (index, term).
    pub fn snapshot_index_term(&self) -> (u64, u64) {
        snap_meta(&self.snapshot)
    }
}

/// An in-memory [`Storage`]: a cheap-to-clone handle; clones share one log, so the
/// application can keep a handle while the [`RawNode`](crate::RawNode) owns another.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    core: Arc<RwLock<MemStorageCore>>,
}

impl MemStorage {
    /// An empty storage with an empty configuration.
    pub fn new() -> Self {
        Self::new_with_conf_state(ConfState::default())
    }

    /// An empty storage whose initial configuration is `cs` (how a cluster is
    /// bootstrapped: every member starts with the same `cs`).
    pub fn new_with_conf_state(cs: ConfState) -> Self {
        let core = MemStorageCore {
            hard_state: HardState::default(),
            snapshot: Snapshot {
                data: Bytes::new(),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(cs),
                    index: 0,
                    term: 0,
                }),
            },
            entries: vec![Entry::default()],
        };
        MemStorage {
            core: Arc::new(RwLock::new(core)),
        }
    }

    /// Read access to the state.
    pub fn rl(&self) -> RwLockReadGuard<'_, MemStorageCore> {
        self.core.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access to the state.
    pub fn wl(&self) -> RwLockWriteGuard<'_, MemStorageCore> {
        self.core.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<(HardState, ConfState)> {
        let core = self.rl();
        let cs = core
            .snapshot
            .metadata
            .as_ref()
            .and_then(|m| m.conf_state.clone())
            .unwrap_or_default();
        Ok((core.hard_state, cs))
    }

    fn entries(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        let core = self.rl();
        let offset = core.offset();
        if lo <= offset {
            return Err(StorageError::Compacted.into());
        }
        if hi > core.last() + 1 {
            return Err(StorageError::Unavailable.into());
        }
        let mut ents = core.entries[(lo - offset) as usize..(hi - offset) as usize].to_vec();
        limit_size(&mut ents, max_size);
        Ok(ents)
    }

    fn term(&self, index: u64) -> Result<u64> {
        let core = self.rl();
        let offset = core.offset();
        if index < offset {
            return Err(StorageError::Compacted.into());
        }
        if index > core.last() {
            return Err(StorageError::Unavailable.into());
        }
        Ok(core.entries[(index - offset) as usize].term)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.rl().offset() + 1)
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.rl().last())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.rl().snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::ent;

    fn storage_with(ents: &[Entry]) -> MemStorage {
        let s = MemStorage::new();
        s.wl().entries = ents.to_vec();
        s
    }

    #[test]
    fn term_of_compacted_index_is_an_error() {
        let s = storage_with(&[ent(3, 3), ent(4, 4), ent(5, 5)]);
        assert_eq!(s.term(2), Err(StorageError::Compacted.into()));
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.term(5), Ok(5));
        assert_eq!(s.term(6), Err(StorageError::Unavailable.into()));
    }

    #[test]
    fn entries_respect_bounds_and_size_limit() {
        let mut e = vec![ent(3, 3), ent(4, 4), ent(5, 5), ent(6, 6)];
        for x in &mut e {
            x.data = Bytes::from_static(b"0123456789");
        }
        let s = storage_with(&e);
        assert_eq!(
            s.entries(2, 6, u64::MAX),
            Err(StorageError::Compacted.into())
        );
        assert_eq!(
            s.entries(4, 8, u64::MAX),
            Err(StorageError::Unavailable.into())
        );
        assert_eq!(s.entries(4, 7, u64::MAX).unwrap().len(), 3);
        assert_eq!(
            s.entries(4, 7, 0).unwrap().len(),
            1,
            "always at least one entry"
        );
        assert_eq!(s.entries(4, 7, 44).unwrap().len(), 2);
    }

    #[test]
    fn append_truncates_conflicting_suffix() {
        let s = storage_with(&[ent(3, 3), ent(4, 4), ent(5, 5)]);
        s.wl().append(&[ent(4, 6), ent(5, 6)]).unwrap();
        assert_eq!(s.term(4), Ok(6));
        assert_eq!(s.last_index(), Ok(5));
        s.wl().append(&[ent(6, 6)]).unwrap();
        assert_eq!(s.last_index(), Ok(6));
        assert!(s.wl().append(&[ent(9, 6)]).is_err(), "gaps are refused");
        s.wl()
            .append(&[ent(1, 1), ent(2, 2), ent(3, 3), ent(4, 7)])
            .unwrap();
        assert_eq!(s.last_index(), Ok(4));
        assert_eq!(s.term(4), Ok(7));
    }

    #[test]
    fn compact_moves_first_index() {
        let s = storage_with(&[ent(3, 3), ent(4, 4), ent(5, 5)]);
        assert!(s.wl().compact(2).is_err());
        s.wl().compact(4).unwrap();
        assert_eq!(s.first_index(), Ok(5));
        assert_eq!(s.term(4), Ok(4));
        assert!(s.wl().compact(6).is_err());
    }

    #[test]
    fn snapshot_is_created_and_applied() {
        let s = storage_with(&[ent(3, 3), ent(4, 4), ent(5, 5)]);
        let cs = ConfState {
            voters: vec![1, 2],
            ..Default::default()
        };
        let snap = s
            .wl()
            .create_snapshot(4, Some(cs.clone()), Bytes::from_static(b"x"))
            .unwrap();
        assert_eq!(snap.metadata.as_ref().unwrap().term, 4);
        assert!(s.wl().create_snapshot(3, None, Bytes::new()).is_err());
        let other = MemStorage::new();
        other.wl().apply_snapshot(snap).unwrap();
        assert_eq!(other.first_index(), Ok(5));
        assert_eq!(other.last_index(), Ok(4));
        assert_eq!(other.initial_state().unwrap().1, cs);
    }
}
