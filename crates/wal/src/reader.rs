//! Reading a sequence of segments back into raft state.
//!
//! Owns: the replay rules shared by `Wal::open`, `Wal::open_for_read` and `verify`.
//! Invariant: the result is exactly what the records say, in order: the metadata (all
//! metadata records agree), the last hard state, and the entries after the snapshot
//! marker with later records at an index replacing earlier ones; a hole in the entries,
//! a torn frame outside the last segment, or a damaged frame anywhere is an error that
//! names the file and offset.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use etcd_proto::prost::Message;
use etcd_proto::raftpb::{Entry, HardState};
use etcd_proto::walpb;

use crate::decoder::{DecodedRecord, Decoder, Step};
use crate::error::{Error, Result};
use crate::record::RecordType;
use crate::segment::{self, SegmentName};

/// How the last segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment file.
    pub path: PathBuf,
    /// Offset just after the last valid frame, where the torn frame starts.
    pub offset: u64,
    /// Why the frame was judged torn.
    pub reason: String,
}

/// What the replay of the segments produced.
#[derive(Debug)]
pub(crate) struct Replay {
    pub metadata: Option<Vec<u8>>,
    pub state: HardState,
    pub entries: Vec<Entry>,
    pub snapshots: Vec<walpb::Snapshot>,
    /// The rolling CRC after the last valid record.
    pub crc: u32,
    /// The index of the last entry after the marker, or the marker's index.
    pub last_index: u64,
    /// The last segment and the offset just after its last valid frame.
    pub tail: (SegmentName, u64),
    /// Set if the last segment ends in a torn frame.
    pub torn: Option<TornTail>,
    /// True if every byte of the last segment after the valid end is zero.
    pub tail_zeroed: bool,
    /// The size of the last segment file.
    pub tail_file_len: u64,
}

/// Replays `names` (consecutive segments of `dir`, non-empty) from `marker`. With
/// `require_marker`, a log without that marker is an error. Without `with_entries`,
/// entry records are only framed and checksummed, not decoded or collected (etcd's
/// `ValidSnapshotEntries` reads only snapshot markers and hard states: a log that
/// continues after a snapshot received from the leader jumps over the indexes before
/// it, which is no gap for a reader that starts at that snapshot).
pub(crate) fn replay(
    dir: &Path,
    names: &[SegmentName],
    marker: &walpb::Snapshot,
    require_marker: bool,
    with_entries: bool,
) -> Result<Replay> {
    let Some(&last_name) = names.last() else {
        return Err(Error::NoSegment(dir.to_path_buf()));
    };
    let mut r = Replay {
        metadata: None,
        state: HardState::default(),
        entries: Vec::new(),
        snapshots: Vec::new(),
        crc: 0,
        last_index: marker.index,
        tail: (last_name, 0),
        torn: None,
        tail_zeroed: true,
        tail_file_len: 0,
    };
    let mut matched = false;
    for (i, name) in names.iter().enumerate() {
        let path = segment::path(dir, name);
        let is_last = i + 1 == names.len();
        let data = std::fs::read(&path).map_err(Error::io("read", &path))?;
        let data = Bytes::from(data);
        let mut dec = Decoder::new(data.clone(), if i == 0 { None } else { Some(r.crc) });
        loop {
            match dec.next_step() {
                Step::Record(rec) if rec.kind == RecordType::Entry && !with_entries => {}
                Step::Record(rec) => apply(&mut r, &rec, &path, marker, &mut matched)?,
                Step::End { offset } => {
                    r.tail.1 = offset;
                    break;
                }
                Step::Torn { offset, reason } => {
                    if !is_last {
                        return Err(Error::Corrupt {
                            path,
                            offset,
                            reason: format!(
                                "{reason}; a torn write can only be in the last segment"
                            ),
                        });
                    }
                    r.tail.1 = offset;
                    r.torn = Some(TornTail {
                        path: path.clone(),
                        offset,
                        reason,
                    });
                    break;
                }
                Step::Corrupt { offset, reason } => {
                    return Err(Error::Corrupt {
                        path,
                        offset,
                        reason,
                    })
                }
            }
        }
        r.crc = dec.crc();
        if is_last {
            let end = usize::try_from(r.tail.1)
                .unwrap_or(data.len())
                .min(data.len());
            r.tail_zeroed = data[end..].iter().all(|&b| b == 0);
            r.tail_file_len = data.len() as u64;
        }
    }
    if require_marker && !matched {
        return Err(Error::SnapshotNotFound {
            index: marker.index,
            term: marker.term,
        });
    }
    Ok(r)
}

fn apply(
    r: &mut Replay,
    rec: &DecodedRecord,
    path: &Path,
    marker: &walpb::Snapshot,
    matched: &mut bool,
) -> Result<()> {
    let corrupt = |what: &str, e: etcd_proto::prost::DecodeError| Error::Corrupt {
        path: path.to_path_buf(),
        offset: rec.offset,
        reason: format!("the {what} record does not decode: {e}"),
    };
    match rec.kind {
        RecordType::Entry => {
            let e = Entry::decode(rec.data.clone()).map_err(|e| corrupt("entry", e))?;
            if e.index > marker.index {
                // Entries after the marker are at marker.index + 1 + position.
                let up = e.index - marker.index - 1;
                if up > r.entries.len() as u64 {
                    return Err(Error::EntryGap {
                        index: e.index,
                        last: marker.index + r.entries.len() as u64,
                        path: path.to_path_buf(),
                        offset: rec.offset,
                    });
                }
                // `up` <= entries.len(), so it fits in usize.
                r.entries.truncate(up as usize);
                r.last_index = e.index;
                r.entries.push(e);
            }
        }
        RecordType::State => {
            r.state = HardState::decode(rec.data.clone()).map_err(|e| corrupt("hard state", e))?;
        }
        RecordType::Metadata => match &r.metadata {
            Some(m) if m.as_slice() != rec.data.as_ref() => {
                return Err(Error::MetadataConflict {
                    path: path.to_path_buf(),
                    offset: rec.offset,
                });
            }
            Some(_) => {}
            None => r.metadata = Some(rec.data.to_vec()),
        },
        RecordType::Crc => {}
        RecordType::Snapshot => {
            let s =
                walpb::Snapshot::decode(rec.data.clone()).map_err(|e| corrupt("snapshot", e))?;
            if s.index == marker.index {
                if s.term != marker.term {
                    return Err(Error::SnapshotMismatch {
                        index: s.index,
                        expected: marker.term,
                        found: s.term,
                        path: path.to_path_buf(),
                        offset: rec.offset,
                    });
                }
                *matched = true;
            }
            r.snapshots.push(s);
        }
    }
    Ok(())
}
