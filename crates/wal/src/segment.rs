//! Segment files: names, listing, and the file-system helpers the log relies on.
//!
//! Owns: the naming scheme `{sequence:016x}-{first_index:016x}.wal` and the rule for
//! choosing the segments that hold a given index.
//! Invariant: the segments of a directory form one unbroken sequence (0, 1, 2, ...
//! after the oldest kept), each named with the raft index of the first entry that may
//! follow it; `list` refuses a directory where that does not hold.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The name of one segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Position in the sequence of segments (0 for the first segment ever written).
    pub seq: u64,
    /// The raft index the segment starts after: entries in it have index >= this.
    pub first_index: u64,
}

impl SegmentName {
    /// `{seq:016x}-{first_index:016x}.wal`.
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}.wal", self.seq, self.first_index)
    }

    /// Parses a segment file name; `None` for anything else.
    pub fn parse(name: &str) -> Option<SegmentName> {
        let stem = name.strip_suffix(".wal")?;
        let (seq, index) = stem.split_once('-')?;
        if seq.len() != 16 || index.len() != 16 {
            return None;
        }
        Some(SegmentName {
            seq: u64::from_str_radix(seq, 16).ok()?,
            first_index: u64::from_str_radix(index, 16).ok()?,
        })
    }
}

/// The segments in `dir`, oldest first, checked to form an unbroken sequence.
pub fn list(dir: &Path) -> Result<Vec<SegmentName>> {
    let mut names = Vec::new();
    for ent in fs::read_dir(dir).map_err(Error::io("read dir", dir))? {
        let ent = ent.map_err(Error::io("read dir", dir))?;
        let file_name = ent.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if let Some(seg) = SegmentName::parse(name) {
            names.push(seg);
        } else if name.ends_with(".wal") {
            tracing::warn!(dir = %dir.display(), file = name, "ignoring a file with a .wal suffix that is not a segment name");
        }
    }
    names.sort();
    for pair in names.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(Error::SequenceGap {
                dir: dir.to_path_buf(),
                expected: pair[0].seq + 1,
                found: pair[1].file_name(),
            });
        }
    }
    Ok(names)
}

/// The position of the segment to start reading at for a snapshot at `index`: the last
/// one whose first index is at or below it.
pub fn search_index(names: &[SegmentName], index: u64) -> Option<usize> {
    names.iter().rposition(|n| n.first_index <= index)
}

/// Opens `dir` and fsyncs it, so that renames and removals in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(Error::io("open dir", dir))?;
    d.sync_all().map_err(Error::io("fsync dir", dir))
}

/// Reserves `len` bytes for `file` and makes its size at least `len`; bytes beyond the
/// old end read as zero.
pub fn preallocate(file: &File, len: u64, path: &Path) -> Result<()> {
    fs4::FileExt::allocate(file, len).map_err(Error::io("fallocate", path))?;
    let size = file.metadata().map_err(Error::io("stat", path))?.len();
    if size < len {
        file.set_len(len).map_err(Error::io("extend", path))?;
    }
    Ok(())
}

/// The path of a segment in `dir`.
pub fn path(dir: &Path, name: &SegmentName) -> PathBuf {
    dir.join(name.file_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_sequence() {
        let n = SegmentName {
            seq: 0x12,
            first_index: 0xabcdef,
        };
        assert_eq!(n.file_name(), "0000000000000012-0000000000abcdef.wal");
        assert_eq!(SegmentName::parse(&n.file_name()), Some(n));
        assert_eq!(SegmentName::parse("0.tmp"), None);
        assert_eq!(SegmentName::parse("12-34.wal"), None);
    }

    #[test]
    fn search_index_picks_last_segment_starting_at_or_below() {
        let names: Vec<_> = [(0, 0), (1, 10), (2, 20)]
            .into_iter()
            .map(|(seq, first_index)| SegmentName { seq, first_index })
            .collect();
        assert_eq!(search_index(&names, 0), Some(0));
        assert_eq!(search_index(&names, 9), Some(0));
        assert_eq!(search_index(&names, 10), Some(1));
        assert_eq!(search_index(&names, 25), Some(2));
        assert_eq!(search_index(&names[1..], 5), None);
    }
}
