//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use etcd_proto::etcdserverpb::{
    kv_server::Kv, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    InternalRaftRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest,
    TxnResponse,
};
use tonic::{Request, Response, Status};

use crate::apply::ApplyResponse;
use crate::errors::{EtcdError, ServerError};
use crate::kv;
use crate::server::Shared;

/// The KV service of one member.
pub struct KvService {
    shared: Arc<Shared>,
}

impl KvService {
    /// A service over the member's shared state.
    pub fn new(shared: Arc<Shared>) -> KvService {
        KvService { shared }
    }
}

fn unexpected() -> Status {
    ServerError::Internal("unexpected apply result".into()).into()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        // A learner answers serializable reads only (the rest of its refusals are in
        // `LearnerLayer`).
        if !request.get_ref().serializable && self.shared.is_learner() {
            return Err(EtcdError::NotSupportedForLearner.into());
        }
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        kv::check_range(&r).map_err(ServerError::from)?;
        if !r.serializable {
            self.shared.linearizable_read().await?;
        }
        let store = self.shared.store();
        let mut resp = {
            let _gate = self.shared.read_gate.read();
            kv::range(&store.read(), &r)?
        };
        self.shared.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        kv::check_put(&r).map_err(ServerError::from)?;
        let req = InternalRaftRequest {
            put: Some(r),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            ApplyResponse::Put(mut resp) => {
                self.shared.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        kv::check_delete(&r).map_err(ServerError::from)?;
        let req = InternalRaftRequest {
            delete_range: Some(r),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            ApplyResponse::DeleteRange(mut resp) => {
                self.shared.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        kv::check_txn(&r, self.shared.cfg.max_txn_ops as usize).map_err(ServerError::from)?;
        if kv::txn_is_read_only(&r) {
            if !kv::txn_is_serializable(&r) {
                self.shared.linearizable_read().await?;
            }
            let store = self.shared.store();
            let mut resp = {
                let _gate = self.shared.read_gate.read();
                kv::read_txn(&store.read(), &r)?
            };
            self.shared.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        let req = InternalRaftRequest {
            txn: Some(r),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            ApplyResponse::Txn(mut resp) => {
                self.shared.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.shared.check_has_leader(request.metadata())?;
        let r = request.into_inner();
        let req = InternalRaftRequest {
            compaction: Some(r),
            ..Default::default()
        };
        match self.shared.propose(req).await? {
            ApplyResponse::Compaction(mut resp, handle) => {
                if let Some(handle) = handle {
                    // physical: answer once the compaction has removed the old revisions.
                    let waited = tokio::task::spawn_blocking(move || handle.wait()).await;
                    match waited {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => return Err(ServerError::from(err).into()),
                        Err(err) => return Err(ServerError::Internal(err.to_string()).into()),
                    }
                }
                self.shared.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }
}
