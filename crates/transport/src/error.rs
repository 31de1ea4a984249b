//! The transport's error types: what can fail when starting or configuring it, and what
//! a [`crate::Raft`] handler answers when it cannot take a message.
//!
//! Owns no state. Mapping to etcd's client-facing errors happens in the server.

/// Errors of the transport's own API.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A configuration value is out of range.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// TLS was configured but is not implemented yet.
    #[error("peer TLS is not supported yet: run peers over plain http:// URLs")]
    TlsNotSupported,
    /// A peer URL could not be parsed.
    #[error("invalid peer URL {url:?} for member {id:x}: {reason}")]
    InvalidUrl {
        /// The member the URL belongs to.
        id: u64,
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A peer must have at least one URL.
    #[error("member {0:x} has no peer URLs")]
    NoUrls(u64),
    /// Listening or staging failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The transport was stopped.
    #[error("transport is stopped")]
    Stopped,
    /// A call to a peer failed.
    #[error("peer {url}: {reason}")]
    Remote {
        /// The peer URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A handler's refusal to take a message or snapshot; the sender sees it as a gRPC
/// `Unavailable` status carrying this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);
