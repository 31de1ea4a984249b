//! The one table that maps the server's errors to gRPC status codes and etcd's exact
//! error strings (`etcdserver: ...`). Clients match on these strings, so they are part
//! of the API: every error a client can see is a variant here, and nowhere else in the
//! server builds a `tonic::Status` by hand.

use etcd_proto::tonic::{Code, Status};

macro_rules! etcd_errors {
    ($($(#[$doc:meta])* $variant:ident => ($code:ident, $message:literal),)*) => {
        /// An error a client can see, with etcd's gRPC code and message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EtcdError {
            $($(#[$doc])* $variant,)*
        }

        impl EtcdError {
            /// Every error, in table order.
            pub const ALL: &'static [EtcdError] = &[$(EtcdError::$variant,)*];

            /// The gRPC status code etcd answers with.
            pub fn code(self) -> Code {
                match self {
                    $(EtcdError::$variant => Code::$code,)*
                }
            }

            /// etcd's error string, byte for byte.
            pub fn message(self) -> &'static str {
                match self {
                    $(EtcdError::$variant => $message,)*
                }
            }
        }
    };
}

etcd_errors! {
    /// A request without a key.
    EmptyKey => (InvalidArgument, "etcdserver: key is not provided"),
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    KeyNotFound => (InvalidArgument, "etcdserver: key not found"),
    /// A value given together with `ignore_value`.
    ValueProvided => (InvalidArgument, "etcdserver: value is provided"),
    /// A lease given together with `ignore_lease`.
    LeaseProvided => (InvalidArgument, "etcdserver: lease is provided"),
    /// A txn with more operations than `--max-txn-ops`.
    TooManyOps => (InvalidArgument, "etcdserver: too many operations in txn request"),
    /// A txn that writes one key twice.
    DuplicateKey => (InvalidArgument, "etcdserver: duplicate key given in txn request"),
    /// A read or watch at a compacted revision.
    Compacted => (OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
    /// A read at a revision the store has not reached.
    FutureRev => (OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
    /// The NOSPACE alarm is raised.
    NoSpace => (ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
    /// An unknown lease id.
    LeaseNotFound => (NotFound, "etcdserver: requested lease not found"),
    /// Granting a lease id that exists.
    LeaseExist => (FailedPrecondition, "etcdserver: lease already exists"),
    /// A TTL above the maximum.
    LeaseTtlTooLarge => (OutOfRange, "etcdserver: too large lease TTL"),
    /// A watch canceled by the server.
    WatchCanceled => (Cancelled, "etcdserver: watch canceled"),
    /// Adding a member id that exists.
    MemberExist => (FailedPrecondition, "etcdserver: member ID already exist"),
    /// Adding peer URLs another member has.
    PeerUrlExist => (FailedPrecondition, "etcdserver: Peer URLs already exists"),
    /// A reconfiguration that would lose quorum.
    MemberNotEnoughStarted => (FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members"),
    /// Peer URLs that do not parse.
    MemberBadUrls => (InvalidArgument, "etcdserver: given member URLs are invalid"),
    /// An unknown member id.
    MemberNotFound => (NotFound, "etcdserver: member not found"),
    /// Promoting a voter.
    MemberNotLearner => (FailedPrecondition, "etcdserver: can only promote a learner member"),
    /// Promoting a learner that is behind.
    LearnerNotReady => (FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"),
    /// Adding a learner beyond the limit.
    TooManyLearners => (FailedPrecondition, "etcdserver: too many learner members in cluster"),
    /// A request from another cluster.
    ClusterIdMismatch => (FailedPrecondition, "etcdserver: cluster ID mismatch"),
    /// A request above `--max-request-bytes`.
    RequestTooLarge => (InvalidArgument, "etcdserver: request is too large"),
    /// Too many proposals in flight.
    TooManyRequests => (ResourceExhausted, "etcdserver: too many requests"),
    /// Enabling auth without a root user.
    RootUserNotExist => (FailedPrecondition, "etcdserver: root user does not exist"),
    /// Enabling auth when root lacks the root role.
    RootRoleNotExist => (FailedPrecondition, "etcdserver: root user does not have root role"),
    /// Adding a user that exists.
    UserAlreadyExist => (FailedPrecondition, "etcdserver: user name already exists"),
    /// A user request without a name.
    UserEmpty => (InvalidArgument, "etcdserver: user name is empty"),
    /// An unknown user.
    UserNotFound => (FailedPrecondition, "etcdserver: user name not found"),
    /// Adding a role that exists.
    RoleAlreadyExist => (FailedPrecondition, "etcdserver: role name already exists"),
    /// An unknown role.
    RoleNotFound => (FailedPrecondition, "etcdserver: role name not found"),
    /// A role request without a name.
    RoleEmpty => (InvalidArgument, "etcdserver: role name is empty"),
    /// A wrong user name or password.
    AuthFailed => (InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"),
    /// Granting a permission without one.
    PermissionNotGiven => (InvalidArgument, "etcdserver: permission not given"),
    /// The user may not do this.
    PermissionDenied => (PermissionDenied, "etcdserver: permission denied"),
    /// Revoking a role the user does not have.
    RoleNotGranted => (FailedPrecondition, "etcdserver: role is not granted to the user"),
    /// Revoking a permission the role does not have.
    PermissionNotGranted => (FailedPrecondition, "etcdserver: permission is not granted to the role"),
    /// An auth request while auth is off.
    AuthNotEnabled => (FailedPrecondition, "etcdserver: authentication is not enabled"),
    /// A token that is unknown or expired: clients authenticate again.
    InvalidAuthToken => (Unauthenticated, "etcdserver: invalid auth token"),
    /// A change that would lock root out.
    InvalidAuthMgmt => (InvalidArgument, "etcdserver: invalid auth management"),
    /// A request checked against an auth store that has changed since.
    AuthOldRevision => (InvalidArgument, "etcdserver: revision of auth store is old"),
    /// This member knows no leader.
    NoLeader => (Unavailable, "etcdserver: no leader"),
    /// An operation only the leader can do.
    NotLeader => (FailedPrecondition, "etcdserver: not leader"),
    /// Leadership changed while the request was in flight.
    LeaderChanged => (Unavailable, "etcdserver: leader changed"),
    /// The cluster version does not support this yet.
    NotCapable => (Unavailable, "etcdserver: not capable"),
    /// The server is shutting down.
    Stopped => (Unavailable, "etcdserver: server stopped"),
    /// The request did not finish in time.
    Timeout => (Unavailable, "etcdserver: request timed out"),
    /// Timed out after a leader failure.
    TimeoutDueToLeaderFail => (Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"),
    /// Timed out after losing connections.
    TimeoutDueToConnectionLost => (Unavailable, "etcdserver: request timed out, possibly due to connection lost"),
    /// A linearizable read waited too long for the applied index.
    TimeoutWaitAppliedIndex => (Unavailable, "etcdserver: request timed out, waiting for the applied index took too long"),
    /// A reconfiguration refused on an unhealthy cluster.
    Unhealthy => (Unavailable, "etcdserver: unhealthy cluster"),
    /// The CORRUPT alarm is raised.
    Corrupt => (DataLoss, "etcdserver: corrupt cluster"),
    /// A learner refuses everything but serializable reads.
    NotSupportedForLearner => (Unavailable, "etcdserver: rpc not supported for learner"),
    /// MoveLeader to a member that cannot lead.
    BadLeaderTransferee => (FailedPrecondition, "etcdserver: bad leader transferee"),
    /// Downgrade without a known cluster version.
    ClusterVersionUnavailable => (Unavailable, "etcdserver: cluster version not found during downgrade"),
    /// Downgrade to a malformed version.
    WrongDowngradeVersionFormat => (InvalidArgument, "etcdserver: wrong downgrade target version format"),
    /// Downgrade to a version that is not one minor below.
    InvalidDowngradeTargetVersion => (InvalidArgument, "etcdserver: invalid downgrade target version"),
    /// A downgrade is already running.
    DowngradeInProcess => (FailedPrecondition, "etcdserver: cluster has a downgrade job in progress"),
    /// Cancel without a downgrade.
    NoInflightDowngrade => (FailedPrecondition, "etcdserver: no inflight downgrade job"),
    /// The client canceled the request.
    Canceled => (Cancelled, "etcdserver: request canceled"),
    /// The client's deadline passed.
    DeadlineExceeded => (DeadlineExceeded, "etcdserver: context deadline exceeded"),
}

impl From<EtcdError> for Status {
    fn from(err: EtcdError) -> Self {
        Status::new(err.code(), err.message())
    }
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for EtcdError {}

/// Any failure of a request inside the server: one of etcd's client-visible errors, or
/// an internal failure (disk, backend) that reaches the client as `Unknown` with its
/// text, as etcd does for errors without a table entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// An error from the table.
    #[error("{0}")]
    Etcd(EtcdError),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
    /// An error of etcd's lock and election recipes (`election: not leader`, ...),
    /// which etcd answers with code Unknown and the recipe's text.
    #[error("{0}")]
    Recipe(&'static str),
}

impl From<EtcdError> for ServerError {
    fn from(err: EtcdError) -> Self {
        ServerError::Etcd(err)
    }
}

impl From<etcd_mvcc::Error> for ServerError {
    fn from(err: etcd_mvcc::Error) -> Self {
        match err {
            etcd_mvcc::Error::Compacted => ServerError::Etcd(EtcdError::Compacted),
            etcd_mvcc::Error::FutureRev => ServerError::Etcd(EtcdError::FutureRev),
            other => ServerError::Internal(other.to_string()),
        }
    }
}

impl From<ServerError> for Status {
    fn from(err: ServerError) -> Self {
        match err {
            ServerError::Etcd(e) => e.into(),
            ServerError::Internal(text) => Status::new(Code::Unknown, text),
            ServerError::Recipe(text) => Status::new(Code::Unknown, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_message_is_an_etcdserver_string_and_unique() {
        let mut seen = HashSet::new();
        for err in EtcdError::ALL {
            assert!(err.message().starts_with("etcdserver: "), "{err:?}");
            assert!(seen.insert(err.message()), "duplicate message {err:?}");
        }
        assert_eq!(EtcdError::ALL.len(), 61);
    }

    #[test]
    fn mvcc_errors_become_etcds_strings() {
        let s = Status::from(ServerError::from(etcd_mvcc::Error::Compacted));
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = Status::from(ServerError::from(etcd_mvcc::Error::FutureRev));
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision is a future revision"
        );
        let s = Status::from(ServerError::Internal("disk on fire".into()));
        assert_eq!((s.code(), s.message()), (Code::Unknown, "disk on fire"));
    }

    #[test]
    fn statuses_carry_etcds_codes_and_strings() {
        let cases = [
            (
                EtcdError::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                EtcdError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                EtcdError::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                EtcdError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                EtcdError::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                EtcdError::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                EtcdError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                EtcdError::InvalidAuthToken,
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ),
            (
                EtcdError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
        ];
        for (err, code, message) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{err:?}");
            assert_eq!(status.message(), message, "{err:?}");
        }
    }
}
