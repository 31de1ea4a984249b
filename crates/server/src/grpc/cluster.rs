//! The Cluster service: MemberList. Member add/remove/update/promote are answered
//! `Unimplemented` until runtime reconfiguration is built.

use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    cluster_server::Cluster, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::server::Shared;

/// The Cluster service of one member.
pub struct ClusterService {
    shared: Arc<Shared>,
}

impl ClusterService {
    /// A service over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> ClusterService {
        ClusterService { shared }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _r: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(Status::unimplemented("member add is not implemented yet"))
    }

    async fn member_remove(
        &self,
        _r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(Status::unimplemented(
            "member remove is not implemented yet",
        ))
    }

    async fn member_update(
        &self,
        _r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "member update is not implemented yet",
        ))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.shared.linearizable_read().await?;
        }
        let members = self
            .shared
            .cluster
            .members()
            .iter()
            .map(|m| m.to_proto())
            .collect();
        Ok(Response::new(MemberListResponse {
            header: self.shared.header(),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(Status::unimplemented(
            "member promote is not implemented yet",
        ))
    }
}
