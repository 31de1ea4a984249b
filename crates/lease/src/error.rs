//! The crate's error enum.
//!
//! Owns every way a lessor call can fail. The texts are etcd's lease error texts without
//! the `etcdserver: ` prefix (which the server adds in its one table of gRPC errors).

/// Errors of the lessor.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// No lease with this id.
    #[error("lease not found")]
    NotFound,
    /// A lease with this id already exists.
    #[error("lease already exists")]
    Exists,
    /// The requested TTL is above [`crate::MAX_LEASE_TTL`].
    #[error("too large lease TTL")]
    TtlTooLarge,
    /// Renewal is done by the primary lessor (the leader) only.
    #[error("not a primary lessor")]
    NotPrimary,
    /// The multi-version store failed (a revoke's deletes, a lease record write, recovery).
    /// The applier's batch must not be committed after this error.
    #[error(transparent)]
    Store(#[from] etcd_mvcc::Error),
}
