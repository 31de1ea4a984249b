//! The crate's error enum.
//!
//! Owns every way creating a watcher can fail. Texts are etcd's (`mvcc: ...`), because
//! the server sends them to clients as cancel reasons.

/// Errors of watch streams.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The requested watch id is in use on this stream.
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId,
    /// `range_end` is not after `key`.
    #[error("mvcc: watcher range is empty")]
    EmptyRange,
    /// A negative start revision. etcd's server answers it with a created-and-canceled
    /// response (watch id -1) carrying this text.
    #[error("mvcc: required revision has been compacted")]
    NegativeStartRevision,
    /// The watchable store was closed.
    #[error("mvcc: watchable store closed")]
    Closed,
}
