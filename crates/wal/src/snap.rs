//! The snapshotter: raft snapshot files beside the WAL.
//!
//! Owns: the snapshot directory and its files `{term:016x}-{index:016x}.snap`, each an
//! encoded `snappb.snapshot` whose `crc` is the CRC32C of `data` (an encoded
//! `raftpb.Snapshot`).
//! Invariant: a `.snap` file is either absent or complete: it is written to a
//! temporary name, synced, renamed, and the directory synced. A file that fails its
//! check is never loaded; `load` renames it to `*.broken` so it is looked at once.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use etcd_proto::prost::Message;
use etcd_proto::raftpb;
use etcd_proto::snappb;
use etcd_proto::walpb;

use crate::error::{Error, Result};
use crate::segment::fsync_dir;

const SNAP_SUFFIX: &str = ".snap";

/// Saves and loads raft snapshots in one directory.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    dir: PathBuf,
}

/// The (term, index) a snapshot file is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapName {
    /// The raft term of the snapshot.
    pub term: u64,
    /// The raft index of the snapshot.
    pub index: u64,
}

impl SnapName {
    /// `{term:016x}-{index:016x}.snap`.
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}{SNAP_SUFFIX}", self.term, self.index)
    }

    /// Parses a snapshot file name; `None` for anything else.
    pub fn parse(name: &str) -> Option<SnapName> {
        let stem = name.strip_suffix(SNAP_SUFFIX)?;
        let (term, index) = stem.split_once('-')?;
        if term.len() != 16 || index.len() != 16 {
            return None;
        }
        Some(SnapName {
            term: u64::from_str_radix(term, 16).ok()?,
            index: u64::from_str_radix(index, 16).ok()?,
        })
    }
}

impl Snapshotter {
    /// A snapshotter for `dir`, which is created if missing. Leftover temporary files
    /// from an interrupted save are removed.
    pub fn new(dir: impl AsRef<Path>) -> Result<Snapshotter> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(Error::io("create dir", &dir))?;
        for ent in fs::read_dir(&dir).map_err(Error::io("read dir", &dir))? {
            let ent = ent.map_err(Error::io("read dir", &dir))?;
            if ent
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".snap.tmp"))
            {
                let p = ent.path();
                fs::remove_file(&p).map_err(Error::io("remove", &p))?;
            }
        }
        Ok(Snapshotter { dir })
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `snapshot` atomically as `{term}-{index}.snap`. An empty snapshot (index 0)
    /// is not saved.
    pub fn save(&self, snapshot: &raftpb::Snapshot) -> Result<()> {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        if meta.index == 0 {
            return Ok(());
        }
        let data = snapshot.encode_to_vec();
        let rec = snappb::Snapshot {
            crc: crc32c::crc32c(&data),
            data,
        };
        let name = SnapName {
            term: meta.term,
            index: meta.index,
        };
        let path = self.dir.join(name.file_name());
        let tmp = self.dir.join(format!("{}.tmp", name.file_name()));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(Error::io("create", &tmp))?;
        f.write_all(&rec.encode_to_vec())
            .map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
        fsync_dir(&self.dir)?;
        Ok(())
    }

    /// The snapshot files, newest first.
    pub fn list(&self) -> Result<Vec<SnapName>> {
        let mut names = Vec::new();
        for ent in fs::read_dir(&self.dir).map_err(Error::io("read dir", &self.dir))? {
            let ent = ent.map_err(Error::io("read dir", &self.dir))?;
            if let Some(n) = ent.file_name().to_str().and_then(SnapName::parse) {
                names.push(n);
            }
        }
        names.sort_by(|a, b| b.cmp(a));
        Ok(names)
    }

    /// Loads the newest snapshot that passes its check.
    pub fn load(&self) -> Result<raftpb::Snapshot> {
        self.load_matching(|_| true)
    }

    /// Loads the newest snapshot that is also recorded in the WAL (one of `wal_snaps`,
    /// e.g. from [`crate::valid_snapshot_entries`]) and passes its check.
    pub fn load_newest_available(&self, wal_snaps: &[walpb::Snapshot]) -> Result<raftpb::Snapshot> {
        self.load_matching(|n| {
            wal_snaps
                .iter()
                .any(|s| s.term == n.term && s.index == n.index)
        })
    }

    /// Removes all but the newest `keep` snapshot files; returns how many were removed.
    pub fn purge(&self, keep: usize) -> Result<usize> {
        let names = self.list()?;
        let mut removed = 0;
        for n in names.iter().skip(keep) {
            let p = self.dir.join(n.file_name());
            fs::remove_file(&p).map_err(Error::io("remove", &p))?;
            removed += 1;
        }
        if removed > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Reads and checks one snapshot file.
    pub fn read(path: &Path) -> Result<raftpb::Snapshot> {
        let bytes = fs::read(path).map_err(Error::io("read", path))?;
        let broken = |reason: String| Error::BrokenSnapshot {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.is_empty() {
            return Err(broken("the file is empty".into()));
        }
        let rec = snappb::Snapshot::decode(bytes.as_slice())
            .map_err(|e| broken(format!("does not decode: {e}")))?;
        if rec.data.is_empty() {
            return Err(broken("no snapshot data".into()));
        }
        let crc = crc32c::crc32c(&rec.data);
        if crc != rec.crc {
            return Err(broken(format!(
                "CRC mismatch: computed {crc:#010x}, the file says {:#010x}",
                rec.crc
            )));
        }
        raftpb::Snapshot::decode(rec.data.as_slice())
            .map_err(|e| broken(format!("the raft snapshot does not decode: {e}")))
    }

    fn load_matching(&self, wanted: impl Fn(&SnapName) -> bool) -> Result<raftpb::Snapshot> {
        for name in self.list()?.into_iter().filter(|n| wanted(n)) {
            let path = self.dir.join(name.file_name());
            match Snapshotter::read(&path) {
                Ok(s) => return Ok(s),
                Err(Error::BrokenSnapshot { reason, .. }) => {
                    let mut broken = path.clone().into_os_string();
                    broken.push(".broken");
                    tracing::warn!(
                        file = %path.display(),
                        reason = %reason,
                        "snap: skipping a broken snapshot file and renaming it to *.broken; an older snapshot will be used"
                    );
                    fs::rename(&path, &broken).map_err(Error::io("rename", &path))?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoSnapshot(self.dir.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(term: u64, index: u64) -> raftpb::Snapshot {
        raftpb::Snapshot {
            data: bytes::Bytes::from(format!("state at {index}")),
            metadata: Some(raftpb::SnapshotMetadata {
                conf_state: Some(raftpb::ConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                }),
                index,
                term,
            }),
        }
    }

    #[test]
    fn save_then_load_returns_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        assert!(matches!(s.load(), Err(Error::NoSnapshot(_))));
        s.save(&snap(1, 10)).unwrap();
        s.save(&snap(2, 20)).unwrap();
        assert_eq!(s.load().unwrap(), snap(2, 20));
        assert_eq!(
            s.list().unwrap(),
            vec![
                SnapName { term: 2, index: 20 },
                SnapName { term: 1, index: 10 }
            ]
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")));
    }

    #[test]
    fn empty_snapshot_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        s.save(&raftpb::Snapshot::default()).unwrap();
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn broken_snapshot_is_skipped_and_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        s.save(&snap(1, 10)).unwrap();
        s.save(&snap(2, 20)).unwrap();
        let newest = dir.path().join(SnapName { term: 2, index: 20 }.file_name());
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newest, bytes).unwrap();
        assert_eq!(s.load().unwrap(), snap(1, 10));
        assert!(!newest.exists());
        assert!(dir
            .path()
            .join(format!(
                "{}.broken",
                SnapName { term: 2, index: 20 }.file_name()
            ))
            .exists());
        // An empty file (e.g. a crash of a non-atomic writer) is broken too.
        fs::write(
            dir.path().join(SnapName { term: 3, index: 30 }.file_name()),
            b"",
        )
        .unwrap();
        assert_eq!(s.load().unwrap(), snap(1, 10));
    }

    #[test]
    fn interrupted_save_leaves_no_snapshot_and_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        s.save(&snap(1, 10)).unwrap();
        // A crash between write and rename leaves only the temporary file.
        let tmp = dir.path().join(format!(
            "{}.tmp",
            SnapName { term: 2, index: 20 }.file_name()
        ));
        fs::write(&tmp, b"half a snap").unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        assert!(!tmp.exists());
        assert_eq!(s.load().unwrap(), snap(1, 10));
    }

    #[test]
    fn load_newest_available_picks_the_newest_the_wal_knows() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        s.save(&snap(1, 10)).unwrap();
        s.save(&snap(2, 20)).unwrap();
        s.save(&snap(2, 30)).unwrap();
        let wal = [
            walpb::Snapshot {
                index: 10,
                term: 1,
                conf_state: None,
            },
            walpb::Snapshot {
                index: 20,
                term: 2,
                conf_state: None,
            },
        ];
        assert_eq!(s.load_newest_available(&wal).unwrap(), snap(2, 20));
        assert!(matches!(
            s.load_newest_available(&[]),
            Err(Error::NoSnapshot(_))
        ));
    }

    #[test]
    fn purge_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path()).unwrap();
        for i in 1..=5 {
            s.save(&snap(1, i * 10)).unwrap();
        }
        assert_eq!(s.purge(2).unwrap(), 3);
        assert_eq!(
            s.list().unwrap(),
            vec![
                SnapName { term: 1, index: 50 },
                SnapName { term: 1, index: 40 }
            ]
        );
        assert_eq!(s.purge(5).unwrap(), 0);
    }
}
