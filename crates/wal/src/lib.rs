//! `etcd-wal`: the write-ahead log and the snapshotter of etcd-rs.
//!
//! The WAL is the log of record of a member: raft's entries, hard state and snapshot
//! markers are appended to it, and made durable with one fdatasync per batch (group
//! commit), before raft may act on them. It lives in a directory of segment files
//! `{sequence:016x}-{first_index:016x}.wal`; a new segment is cut when the tail reaches
//! 64 MiB, swapping in a file that a background thread has already created and
//! preallocated. Each record is framed by an 8-byte length header and padded to 8
//! bytes, and carries a CRC32C that rolls across all records (handed from one segment
//! to the next by a CRC record), in etcd's on-disk format. On open the log is replayed
//! from a snapshot marker; a record torn by a crash at the very end is cut off and
//! appending resumes, while damage anywhere else is an error naming the file and byte
//! offset. Old segments are removed with [`Wal::release_to`] once a snapshot covers
//! them. The [`snap`] module keeps the raft snapshot files beside the log.
//!
//! ```
//! use etcd_proto::raftpb::{Entry, HardState};
//! use etcd_proto::walpb;
//! use etcd_wal::Wal;
//!
//! # fn main() -> Result<(), etcd_wal::Error> {
//! let tmp = tempfile::tempdir().expect("temp dir");
//! let dir = tmp.path().join("wal");
//! let mut wal = Wal::create(&dir, b"node 1 of cluster 7")?;
//! let entry = Entry { term: 1, index: 1, data: "put foo".into(), ..Default::default() };
//! wal.save(&HardState { term: 1, vote: 1, commit: 1 }, &[entry.clone()])?;
//! wal.close()?;
//!
//! // After a restart: open at the last snapshot marker (here the empty one) and replay.
//! let mut wal = Wal::open(&dir, walpb::Snapshot::default())?;
//! let contents = wal.read_all()?;
//! assert_eq!(contents.metadata, b"node 1 of cluster 7");
//! assert_eq!(contents.hard_state.commit, 1);
//! assert_eq!(contents.entries, vec![entry]);
//! # Ok(())
//! # }
//! ```

pub mod decoder;
pub mod encoder;
mod error;
pub mod metrics;
mod pipeline;
mod reader;
pub mod record;
pub mod segment;
pub mod snap;
mod wal;

pub use error::{Error, Result};
pub use metrics::{NoMetrics, WalMetrics};
pub use reader::TornTail;
pub use record::RecordType;
pub use segment::SegmentName;
pub use snap::Snapshotter;
pub use wal::{
    must_sync, valid_snapshot_entries, verify, Verified, Wal, WalContents, WalOptions, WalReader,
    DEFAULT_SEGMENT_SIZE_BYTES, LOCK_FILE,
};
