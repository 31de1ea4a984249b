//! The identity every peer request carries (gRPC metadata) and the receiver's checks.
//!
//! Invariant: the receiver reads no message before the cluster id, the sender (not a
//! removed member) and the target (this member) are verified; each refusal is a gRPC
//! status naming both ids, and a log line.

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::Status;

use crate::handler::Raft;

/// Metadata key of the cluster id (lower-case hex).
pub const CLUSTER_ID_HEADER: &str = "x-etcd-cluster-id";
/// Metadata key of the sender's member id (lower-case hex).
pub const FROM_HEADER: &str = "x-etcd-from";
/// Metadata key of the receiver's member id (lower-case hex).
pub const TO_HEADER: &str = "x-etcd-to";
/// Metadata key naming the stream kind (`msgapp` or `message`), for logs.
pub const STREAM_KIND_HEADER: &str = "x-etcd-stream";

/// Who sends to whom within which cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) cluster_id: u64,
    pub(crate) from: u64,
    pub(crate) to: u64,
}

fn hex(v: u64) -> AsciiMetadataValue {
    AsciiMetadataValue::try_from(format!("{v:x}"))
        .unwrap_or_else(|_| AsciiMetadataValue::from_static("0"))
}

impl Identity {
    /// Writes the identity into outgoing request metadata.
    pub(crate) fn insert(&self, md: &mut MetadataMap) {
        md.insert(CLUSTER_ID_HEADER, hex(self.cluster_id));
        md.insert(FROM_HEADER, hex(self.from));
        md.insert(TO_HEADER, hex(self.to));
    }

    /// Reads the identity from incoming request metadata.
    pub(crate) fn parse(md: &MetadataMap) -> Result<Identity, Status> {
        let field = |key: &str| -> Result<u64, Status> {
            let v = md
                .get(key)
                .ok_or_else(|| Status::invalid_argument(format!("missing {key} metadata")))?;
            let s = v
                .to_str()
                .map_err(|_| Status::invalid_argument(format!("{key} metadata is not ASCII")))?;
            u64::from_str_radix(s, 16).map_err(|_| {
                Status::invalid_argument(format!("{key} metadata {s:?} is not a hex member id"))
            })
        };
        Ok(Identity {
            cluster_id: field(CLUSTER_ID_HEADER)?,
            from: field(FROM_HEADER)?,
            to: field(TO_HEADER)?,
        })
    }
}

/// The receiver's side of the checks.
pub(crate) struct Gate {
    pub(crate) local_id: u64,
    pub(crate) cluster_id: u64,
}

impl Gate {
    /// Verifies the identity of an incoming call before any message is read.
    pub(crate) fn check(&self, md: &MetadataMap, raft: &dyn Raft) -> Result<Identity, Status> {
        let id = Identity::parse(md)?;
        if id.cluster_id != self.cluster_id {
            tracing::warn!(local_member_id = %format!("{:x}", self.local_id),
                local_cluster_id = %format!("{:x}", self.cluster_id),
                remote_member_id = %format!("{:x}", id.from),
                remote_cluster_id = %format!("{:x}", id.cluster_id),
                "rejected peer request: cluster id mismatch; the remote member belongs to another cluster (check --initial-cluster-token and member lists)");
            return Err(Status::failed_precondition(format!(
                "cluster id mismatch: member {:x} of cluster {:x} sent to member {:x} of cluster {:x}",
                id.from, id.cluster_id, self.local_id, self.cluster_id
            )));
        }
        if id.to != self.local_id {
            tracing::warn!(local_member_id = %format!("{:x}", self.local_id),
                remote_member_id = %format!("{:x}", id.from), target_member_id = %format!("{:x}", id.to),
                "rejected peer request for another member; the remote member has a stale peer URL for it");
            return Err(Status::failed_precondition(format!(
                "member id mismatch: member {:x} sent a request for member {:x} to member {:x}",
                id.from, id.to, self.local_id
            )));
        }
        self.check_removed(id.from, raft)?;
        Ok(id)
    }

    /// Refuses a sender that was removed from the cluster, with `PermissionDenied`: the
    /// one status code that tells a sender it was removed (it calls
    /// [`Raft::report_removed`] on it), so nothing else may answer with it.
    pub(crate) fn check_removed(&self, from: u64, raft: &dyn Raft) -> Result<(), Status> {
        if raft.is_id_removed(from) {
            tracing::warn!(local_member_id = %format!("{:x}", self.local_id),
                removed_member_id = %format!("{:x}", from),
                "rejected peer request from a removed member; stop that member's process");
            return Err(Status::permission_denied(format!(
                "member {:x} was removed from cluster {:x}; member {:x} refuses its messages",
                from, self.cluster_id, self.local_id
            )));
        }
        Ok(())
    }

    /// Verifies one message against the call's identity.
    pub(crate) fn check_message(
        &self,
        id: &Identity,
        m: &etcd_proto::raftpb::Message,
    ) -> Result<(), Status> {
        if m.to != self.local_id {
            tracing::warn!(local_member_id = %format!("{:x}", self.local_id),
                remote_member_id = %format!("{:x}", id.from), message_to = %format!("{:x}", m.to),
                "rejected raft message addressed to another member");
            return Err(Status::invalid_argument(format!(
                "raft message from member {:x} is addressed to member {:x}, not to member {:x}",
                m.from, m.to, self.local_id
            )));
        }
        if m.from != id.from {
            return Err(Status::invalid_argument(format!(
                "raft message claims to come from member {:x} but the request is from member {:x}",
                m.from, id.from
            )));
        }
        Ok(())
    }
}
