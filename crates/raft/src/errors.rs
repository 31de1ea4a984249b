//! Errors of the raft crate: one enum for the state machine ([`Error`]) and one for
//! storage back ends ([`StorageError`]). Nothing here panics; every fallible public
//! function returns [`Result`].

/// Errors a [`Storage`](crate::Storage) implementation reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The requested index is older than the existing snapshot (it was compacted).
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// The requested index is newer than the last entry.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// The snapshot given is older than the one already held.
    #[error("requested index is older than the existing snapshot")]
    SnapshotOutOfDate,
    /// A snapshot is being built; the caller should retry later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Any other failure of the back end.
    #[error("storage error: {0}")]
    Other(String),
}

/// Errors of the raft state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The proposal was not appended: no leader is known, forwarding is disabled, a
    /// leader transfer is in progress, the node was removed, or the uncommitted log is full.
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// A message type that only the local node may create arrived from the network.
    #[error("raft: cannot step raft local message")]
    StepLocalMsg,
    /// A response arrived from a peer that is not in the configuration.
    #[error("raft: cannot step as peer not found")]
    StepPeerNotFound,
    /// A message from a peer that no correct peer sends (unknown type, no sender,
    /// not for us, entries that do not follow its index, ...); it changed nothing.
    #[error("raft: malformed message: {0}")]
    MalformedMessage(&'static str),
    /// The configuration given to [`RawNode::new`](crate::RawNode::new) is invalid.
    #[error("invalid raft config: {0}")]
    ConfigInvalid(String),
    /// A configuration change cannot be applied to the current configuration.
    #[error("invalid conf change: {0}")]
    ConfChangeInvalid(String),
    /// A conf change entry could not be decoded.
    #[error("cannot decode conf change: {0}")]
    Decode(String),
    /// The storage back end failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
