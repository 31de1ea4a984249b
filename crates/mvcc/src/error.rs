//! The crate's error enum.
//!
//! Owns every way an mvcc call can fail. The texts of [`Error::Compacted`] and
//! [`Error::FutureRev`] are etcd's own (`mvcc: ...`), because clients match on them; the
//! server maps variants to gRPC status codes in its one table.

/// Errors of the multi-version store and its backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested revision is older than the compact revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is newer than the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// A key index has no revision at or before the requested one.
    #[error("mvcc: revision not found")]
    RevisionNotFound,
    /// RocksDB reported an error.
    #[error("backend: {0}")]
    Backend(#[from] rocksdb::Error),
    /// Bytes read from disk do not decode; the backend is damaged.
    #[error(
        "backend corrupt: {what}: {detail}; restore the member from a snapshot or a healthy peer"
    )]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// A write batch was dropped without commit, or a commit failed: the in-memory state
    /// may be ahead of the backend. Writes are refused until the store is reopened (which
    /// restores it from the backend, after which the server replays the raft log from the
    /// consistent index).
    #[error("mvcc: store poisoned by an uncommitted batch; reopen it and replay from the consistent index")]
    Poisoned,
    /// Raw bucket writes may not touch the `key` bucket, which only the KV store writes.
    #[error("mvcc: the key bucket is written only through the KV store")]
    ReservedBucket,
    /// The physical compaction was stopped before it finished (the store was closed); it
    /// resumes when the store is reopened.
    #[error("mvcc: compaction interrupted; it resumes when the store is reopened")]
    CompactionInterrupted,
    /// A file-system error (checkpoint directories and the like).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
