//! The Maintenance service: Status, Hash, HashKV, Defragment, Alarm, MoveLeader.
//! Snapshot and Downgrade are answered `Unimplemented` until they are built.

use std::pin::Pin;
use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    maintenance_server::Maintenance, AlarmRequest, AlarmResponse, DefragmentRequest,
    DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::config::ETCD_VERSION;
use crate::errors::{EtcdError, ServerError};
use crate::node::NodeInput;
use crate::server::Shared;

/// The Maintenance service of one member.
pub struct MaintenanceService {
    shared: Arc<Shared>,
}

impl MaintenanceService {
    /// A service over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> MaintenanceService {
        MaintenanceService { shared }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let r = request.into_inner();
        let deactivate =
            r.action == etcd_proto::etcdserverpb::alarm_request::AlarmAction::Deactivate as i32;
        let req = etcd_proto::etcdserverpb::InternalRaftRequest {
            alarm: Some(r),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            crate::apply::ApplyResponse::Alarm(alarms) => {
                if deactivate {
                    self.shared.alarm_disarmed();
                }
                Ok(Response::new(AlarmResponse {
                    header: self.shared.header(),
                    alarms,
                }))
            }
            _ => Err(ServerError::Internal("unexpected apply result".into()).into()),
        }
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let s = &self.shared;
        let store = s.store();
        let db_size = store.backend().size_bytes().unwrap_or(0) as i64;
        let db_size_in_use = store.backend().size_in_use_bytes().unwrap_or(0) as i64;
        let is_learner = s.cluster.member(s.member_id).is_some_and(|m| m.is_learner);
        let mut errors = Vec::new();
        if s.leader() == 0 {
            errors.push(EtcdError::NoLeader.message().to_string());
        }
        Ok(Response::new(StatusResponse {
            header: s.header(),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader: s.leader(),
            raft_index: s.raft_index().max(s.commit_index()),
            raft_term: s.term(),
            raft_applied_index: s.applied_index(),
            errors,
            db_size_in_use,
            is_learner,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let store = self.shared.store();
        tokio::task::spawn_blocking(move || store.backend().defrag())
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .map_err(ServerError::from)?;
        Ok(Response::new(DefragmentResponse {
            header: self.shared.header(),
        }))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let store = self.shared.store();
        let (hash, rev) = tokio::task::spawn_blocking(move || store.hash())
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .map_err(ServerError::from)?;
        let mut header = self.shared.header();
        if let Some(h) = header.as_mut() {
            h.revision = rev;
        }
        Ok(Response::new(HashResponse { header, hash }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let store = self.shared.store();
        let h = tokio::task::spawn_blocking(move || store.hash_kv(rev))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .map_err(ServerError::from)?;
        let mut header = self.shared.header();
        if let Some(hd) = header.as_mut() {
            hd.revision = h.current_revision;
        }
        Ok(Response::new(HashKvResponse {
            header,
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        Err(Status::unimplemented("snapshot is not implemented yet"))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        if !self.shared.is_leader() {
            return Err(EtcdError::NotLeader.into());
        }
        if self.shared.cluster.member(target).is_none() {
            return Err(EtcdError::BadLeaderTransferee.into());
        }
        self.shared
            .node_tx
            .try_send(NodeInput::TransferLeader(target))
            .map_err(|_| ServerError::from(EtcdError::TooManyRequests))?;
        let mut leader = self.shared.leader_watch();
        let waited = tokio::time::timeout(
            self.shared.request_timeout(),
            leader.wait_for(|l| *l == target),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(Response::new(MoveLeaderResponse {
                header: self.shared.header(),
            })),
            _ => Err(EtcdError::TimeoutDueToLeaderFail.into()),
        }
    }

    async fn downgrade(
        &self,
        _request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("downgrade is not implemented yet"))
    }
}
