//! The crate's error type.
//!
//! Owns: [`Error`], the one error enum of `etcd-wal` (WAL and snapshotter).
//! Invariant: every error about bytes on disk names the file, and, for a record, the
//! byte offset of the frame that is bad, so an operator can find it with `hexdump`.

use std::io;
use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the WAL or the snapshotter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed.
    #[error("wal: {op} {path}: {source}")]
    Io {
        /// What we were doing (`"open"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A record before the tail of the log is damaged (this is never a torn write).
    #[error("wal: corrupt record in {path} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the start of the bad frame (its length header).
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process (or another handle in this one) holds the WAL directory lock.
    #[error("wal: directory {0} is locked by another process (is another etcd running on this data dir?)")]
    Locked(PathBuf),
    /// `create` was asked for a directory that already exists.
    #[error("wal: directory {0} already exists")]
    AlreadyExists(PathBuf),
    /// The directory holds no WAL segment (or no segment at or before the wanted index).
    #[error("wal: no segment file in {0} that can be read from the requested snapshot")]
    NoSegment(PathBuf),
    /// A segment file in the sequence is missing.
    #[error(
        "wal: segment sequence is broken in {dir}: expected sequence {expected:#x}, found {found}"
    )]
    SequenceGap {
        /// The WAL directory.
        dir: PathBuf,
        /// The sequence number that should come next.
        expected: u64,
        /// The file found instead.
        found: String,
    },
    /// The snapshot marker the log was opened at is not in the log.
    #[error("wal: snapshot marker (index {index}, term {term}) not found in the log")]
    SnapshotNotFound {
        /// Index of the requested marker.
        index: u64,
        /// Term of the requested marker.
        term: u64,
    },
    /// The log has a marker at the index but with another term.
    #[error("wal: snapshot marker at index {index} has term {found}, expected {expected} (in {path} at byte offset {offset})")]
    SnapshotMismatch {
        /// The index of the marker.
        index: u64,
        /// The term that was asked for.
        expected: u64,
        /// The term the log holds.
        found: u64,
        /// The segment file.
        path: PathBuf,
        /// Offset of the marker record.
        offset: u64,
    },
    /// Two metadata records disagree.
    #[error("wal: metadata record in {path} at byte offset {offset} conflicts with the first one")]
    MetadataConflict {
        /// The segment file.
        path: PathBuf,
        /// Offset of the conflicting record.
        offset: u64,
    },
    /// An entry would leave a hole in the log.
    #[error(
        "wal: entry {index} in {path} at byte offset {offset} leaves a gap after index {last}"
    )]
    EntryGap {
        /// The index of the entry read.
        index: u64,
        /// The last index the log held before it.
        last: u64,
        /// The segment file.
        path: PathBuf,
        /// Offset of the entry record.
        offset: u64,
    },
    /// `read_all` was called a second time.
    #[error("wal: read_all was already called on this handle")]
    AlreadyRead,
    /// An earlier write or fdatasync failed; the log's tail is in an unknown state and
    /// this handle refuses further writes. Restart the process: `open` repairs the tail.
    #[error("wal: an earlier write failed ({0}); restart to recover the log")]
    Failed(String),
    /// A raft index or term passed in does not fit the log (a bug in the caller).
    #[error("wal: invalid argument: {0}")]
    InvalidArgument(String),
    /// The snapshotter found no usable snapshot file.
    #[error("snap: no usable snapshot in {0}")]
    NoSnapshot(PathBuf),
    /// A snapshot file is damaged (it is renamed to `*.broken` by `load`).
    #[error("snap: snapshot file {path} is broken: {reason}")]
    BrokenSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
