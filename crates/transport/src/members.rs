//! The client side of the `Members` call: how a member that joins a running cluster
//! learns the cluster id and the member list (its own member id among them) from a
//! peer URL, as etcd does with `GET /members` on the peer port. The serving side is
//! [`crate::Raft::members`], answered by every running member without identity checks.
//!
//! Invariant: one call is bounded by the given timeout, connection included.

use std::time::Duration;

use etcd_proto::rafthttppb::peer_client::PeerClient;
use etcd_proto::rafthttppb::{MembersRequest, MembersResponse};
use tonic::transport::Endpoint;

use crate::error::TransportError;

/// Asks the member at peer URL `url` for the cluster id and the member list, within
/// `timeout`.
pub async fn fetch_members(
    url: &str,
    timeout: Duration,
) -> Result<MembersResponse, TransportError> {
    let remote = |reason: String| TransportError::Remote {
        url: url.to_string(),
        reason,
    };
    if !url.starts_with("http://") {
        return Err(remote("peer URLs must start with http://".into()));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| remote(e.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let call = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| remote(e.to_string()))?;
        PeerClient::new(channel)
            .members(MembersRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| remote(format!("{}: {}", s.code(), s.message())))
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| remote(format!("no answer within {timeout:?}")))?
}
