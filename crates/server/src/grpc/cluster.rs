//! The Cluster service: MemberList, and MemberAdd/Remove/Update/Promote through raft
//! conf changes ([`crate::reconfig`]). Responses carry etcd's cluster header: cluster
//! and member ids and the raft term, no revision.

use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    cluster_server::Cluster, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};
use tonic::{Request, Response, Status};

use crate::membership::Member;
use crate::reconfig;
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

    fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.shared.cluster_id(),
            member_id: self.shared.member_id,
            raft_term: self.shared.term(),
            revision: 0,
        })
    }
}

fn to_proto(members: &[Member]) -> Vec<etcd_proto::etcdserverpb::Member> {
    members.iter().map(Member::to_proto).collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        let (member, members) =
            reconfig::add_member(&self.shared, &r.peer_ur_ls, r.is_learner).await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(etcd_proto::etcdserverpb::Member {
                id: member.id,
                peer_ur_ls: member.peer_urls,
                is_learner: member.is_learner,
                ..Default::default()
            }),
            members: to_proto(&members),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let members = reconfig::remove_member(&self.shared, request.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: to_proto(&members),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        let members = reconfig::update_member(&self.shared, r.id, &r.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: to_proto(&members),
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        if request.into_inner().linearizable {
            self.shared.linearizable_read().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: to_proto(&self.shared.cluster.members()),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let id = request.get_ref().id;
        let members = reconfig::promote_member(&self.shared, id, request.metadata()).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: to_proto(&members),
        }))
    }
}
